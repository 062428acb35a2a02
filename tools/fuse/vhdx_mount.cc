// vhdx-mount: shows the virtual disk of a VHDX image as one file, MOUNTPOINT/disk, through FUSE.
//
//   vhdx-mount [-r [-U]] [-f] [-o FUSE_OPTIONS] IMAGE MOUNTPOINT
//   mount -o loop,ro MOUNTPOINT/disk /mnt/fs      # or fdisk, dd, a forensic tool...
//   fusermount3 -u MOUNTPOINT
//
// The image is opened (and checked) before anything is mounted, so a bad image fails with the
// library's message and exit status 1. Then the program mounts, goes to the background (unless
// -f) and serves until unmounted or signalled. A writable mount holds the image's advisory
// lock, so nothing else can write it meanwhile; -r opens read-only (never writing a byte of the
// file, a dirty log replayed in memory) and -U with -r reads an image another process holds.
//
// Durability: fsync flushes the image; so does every close of a descriptor opened for writing.
// When the last such descriptor is closed the image is also marked clean (its log GUID
// cleared), so a mounted image is consistent on disk whenever no one has the disk open for
// writing, not only after the unmount.
//
// FUSE runs single-threaded here: vhdx::Image is not thread-safe, and one thread keeps the
// order of writes and flushes that of the requests. Errors reach the caller as errno
// (vhdx::errno_for) and the message goes to stderr, or to syslog once in the background.
#define FUSE_USE_VERSION 31
#include <fcntl.h>
#include <fuse.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <vector>

#include "vhdx/error.h"
#include "vhdx/image.h"
#include "vhdx/types.h"

namespace {

using vhdx::Error;
using vhdx::Image;

constexpr const char* kDiskPath = "/disk";

struct Mounted {
  std::unique_ptr<Image> image;
  bool read_only = true;
  bool in_background = false;
  std::uint64_t virtual_size = 0;
  std::uint32_t sector_size = 512;
  struct stat image_stat {};      // owner and times shown for the mount
  struct timespec disk_mtime {};  // the disk file's, moved on by writes
  int writers = 0;                // open descriptors that may write
};

Mounted& mounted() { return *static_cast<Mounted*>(fuse_get_context()->private_data); }

void log_message(const std::string& text) {
  if (mounted().in_background)
    syslog(LOG_ERR, "%s", text.c_str());
  else
    std::fprintf(stderr, "vhdx-mount: %s\n", text.c_str());
}

// Logs the error and returns what FUSE hands the caller.
int fail(const Error& error, const char* what) {
  log_message(std::string(what) + ": " + error.to_string());
  return -vhdx::errno_for(error);
}

// Runs a callback's body; an exception (only std::bad_alloc is expected) becomes an errno.
template <typename Body>
auto guarded(const char* what, Body body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    log_message(std::string(what) + ": out of memory");
    return -ENOMEM;
  } catch (const std::exception& e) {
    log_message(std::string(what) + ": " + e.what());
    return -EIO;
  }
}

bool is_disk(const char* path) { return std::strcmp(path, kDiskPath) == 0; }
bool is_root(const char* path) { return std::strcmp(path, "/") == 0; }
// Whether a descriptor may write, remembered in its handle at open: FUSE passes the open flags
// to release but not to flush.
constexpr std::uint64_t kWritableHandle = 1;
bool opened_for_writing(const fuse_file_info* fi) { return fi->fh == kWritableHandle; }

void* op_init(fuse_conn_info*, fuse_config* config) {
  // The disk is only ever changed through this mount: the kernel may keep its pages.
  config->kernel_cache = 1;
  config->use_ino = 0;
  return fuse_get_context()->private_data;
}

int op_getattr(const char* path, struct stat* st, fuse_file_info*) {
  const Mounted& m = mounted();
  std::memset(st, 0, sizeof *st);
  st->st_uid = m.image_stat.st_uid;
  st->st_gid = m.image_stat.st_gid;
  st->st_atim = m.image_stat.st_atim;
  st->st_ctim = m.image_stat.st_ctim;
  if (is_root(path)) {
    st->st_mode = S_IFDIR | 0555;
    st->st_nlink = 2;
    st->st_mtim = m.image_stat.st_mtim;
    return 0;
  }
  if (!is_disk(path)) return -ENOENT;
  st->st_mode = S_IFREG | (m.read_only ? 0444 : 0644);
  st->st_nlink = 1;
  st->st_size = static_cast<off_t>(m.virtual_size);
  st->st_blksize = std::max<std::uint32_t>(4096, m.sector_size);
  // As if fully allocated; SEEK_DATA and SEEK_HOLE (op_lseek) say where the data really is.
  st->st_blocks = static_cast<blkcnt_t>((m.virtual_size + 511) / 512);
  st->st_mtim = m.disk_mtime;
  return 0;
}

int op_readdir(const char* path, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info*,
               fuse_readdir_flags) {
  if (!is_root(path)) return -ENOTDIR;
  const auto flags = static_cast<fuse_fill_dir_flags>(0);
  fill(buf, ".", nullptr, 0, flags);
  fill(buf, "..", nullptr, 0, flags);
  fill(buf, kDiskPath + 1, nullptr, 0, flags);
  return 0;
}

int op_open(const char* path, fuse_file_info* fi) {
  if (!is_disk(path)) return -ENOENT;
  Mounted& m = mounted();
  fi->fh = 0;
  if ((fi->flags & O_ACCMODE) != O_RDONLY) {
    if (m.read_only) return -EROFS;
    fi->fh = kWritableHandle;
    ++m.writers;
  }
  return 0;
}

int op_read(const char*, char* buf, size_t size, off_t offset, fuse_file_info*) {
  return guarded("read", [&]() -> int {
    Mounted& m = mounted();
    if (offset < 0) return -EINVAL;
    const auto at = static_cast<std::uint64_t>(offset);
    if (at >= m.virtual_size) return 0;
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(size, m.virtual_size - at));
    auto r = m.image->read(at, std::span(reinterpret_cast<std::uint8_t*>(buf), n));
    return r ? static_cast<int>(n) : fail(r.error(), "read");
  });
}

// Like a block device: the disk never grows, a write at its end fails with ENOSPC and one
// across it is cut short.
int op_write(const char*, const char* buf, size_t size, off_t offset, fuse_file_info*) {
  return guarded("write", [&]() -> int {
    Mounted& m = mounted();
    if (offset < 0) return -EINVAL;
    const auto at = static_cast<std::uint64_t>(offset);
    if (size == 0) return 0;
    if (at >= m.virtual_size) return -ENOSPC;
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(size, m.virtual_size - at));
    auto r = m.image->write(at, std::span(reinterpret_cast<const std::uint8_t*>(buf), n));
    if (!r) return fail(r.error(), "write");
    clock_gettime(CLOCK_REALTIME, &m.disk_mtime);
    return static_cast<int>(n);
  });
}

int flush_image(const char* what) {
  return guarded(what, [&]() -> int {
    Mounted& m = mounted();
    if (m.read_only) return 0;
    auto r = m.image->flush();
    return r ? 0 : fail(r.error(), what);
  });
}

// Called on every close(2) of a descriptor: what was written through it is made durable.
int op_flush(const char*, fuse_file_info* fi) {
  return opened_for_writing(fi) ? flush_image("flush on close") : 0;
}

int op_fsync(const char*, int, fuse_file_info*) { return flush_image("fsync"); }

// The last descriptor that may write is gone: flush and mark the image clean.
int op_release(const char*, fuse_file_info* fi) {
  return guarded("release", [&]() -> int {
    Mounted& m = mounted();
    if (!opened_for_writing(fi) || m.read_only) return 0;
    if (--m.writers > 0) return 0;
    auto r = m.image->close();
    return r ? 0 : fail(r.error(), "closing the image");
  });
}

// Punching a hole releases whole blocks (they read as zeros); zeroing a range keeps it
// allocated where it must (vhdx::Image::discard). Plain allocation is not offered: a dynamic
// image allocates on write, and saying otherwise would promise space it has not reserved.
int op_fallocate(const char*, int mode, off_t offset, off_t length, fuse_file_info*) {
  return guarded("fallocate", [&]() -> int {
    Mounted& m = mounted();
    if (m.read_only) return -EROFS;
    if (offset < 0 || length <= 0) return -EINVAL;
    const bool punch = mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
    const bool zero = (mode & ~FALLOC_FL_KEEP_SIZE) == FALLOC_FL_ZERO_RANGE;
    if (!punch && !zero) return -EOPNOTSUPP;
    const auto at = static_cast<std::uint64_t>(offset);
    const auto len = static_cast<std::uint64_t>(length);
    if (at >= m.virtual_size || len > m.virtual_size - at) {
      // Past the end: nothing to do there with KEEP_SIZE, and the disk cannot grow without.
      if (!(mode & FALLOC_FL_KEEP_SIZE)) return -EOPNOTSUPP;
      if (at >= m.virtual_size) return 0;
    }
    const std::uint64_t n = std::min(len, m.virtual_size - at);
    auto r = m.image->discard(at, n, /*unmap=*/punch);
    if (!r) return fail(r.error(), punch ? "punching a hole" : "zeroing a range");
    clock_gettime(CLOCK_REALTIME, &m.disk_mtime);
    return 0;
  });
}

// SEEK_DATA and SEEK_HOLE from the image's block status (the kernel does the other whences).
// Data in a parent counts as data; unallocated and zero blocks are holes.
off_t op_lseek(const char*, off_t offset, int whence, fuse_file_info*) {
  return guarded("lseek", [&]() -> off_t {
    Mounted& m = mounted();
    if (whence != SEEK_DATA && whence != SEEK_HOLE) return -EINVAL;
    if (offset < 0) return -EINVAL;
    const auto at = static_cast<std::uint64_t>(offset);
    if (at >= m.virtual_size) return -ENXIO;
    auto extents = m.image->block_status(at, m.virtual_size - at);
    if (!extents) return fail(extents.error(), "block status");
    for (const vhdx::Extent& e : *extents) {
      const bool data = e.kind == vhdx::ExtentKind::kData;
      if (data == (whence == SEEK_DATA)) return static_cast<off_t>(std::max(at, e.offset));
    }
    // No data after offset: ENXIO. No hole: the end of the disk is one.
    return whence == SEEK_DATA ? -ENXIO : static_cast<off_t>(m.virtual_size);
  });
}

// The disk's size is the image's virtual size; only `vhdx resize` may change it.
int op_truncate(const char* path, off_t size, fuse_file_info*) {
  if (!is_disk(path)) return -EISDIR;
  const Mounted& m = mounted();
  if (m.read_only) return -EROFS;
  if (size >= 0 && static_cast<std::uint64_t>(size) == m.virtual_size) return 0;
  log_message("truncate: the disk's size is fixed at " + std::to_string(m.virtual_size) +
              " bytes (write with conv=notrunc, or resize the image)");
  return -EPERM;
}

int op_utimens(const char* path, const struct timespec times[2], fuse_file_info*) {
  if (!is_disk(path)) return 0;
  Mounted& m = mounted();
  if (times[1].tv_nsec == UTIME_NOW)
    clock_gettime(CLOCK_REALTIME, &m.disk_mtime);
  else if (times[1].tv_nsec != UTIME_OMIT)
    m.disk_mtime = times[1];
  return 0;
}

int op_statfs(const char*, struct statvfs* st) {
  const Mounted& m = mounted();
  std::memset(st, 0, sizeof *st);
  st->f_bsize = st->f_frsize = 4096;
  st->f_blocks = (m.virtual_size + 4095) / 4096;
  st->f_files = 2;
  st->f_namemax = 255;
  return 0;
}

fuse_operations make_operations() {
  fuse_operations ops{};
  ops.init = op_init;
  ops.getattr = op_getattr;
  ops.readdir = op_readdir;
  ops.open = op_open;
  ops.read = op_read;
  ops.write = op_write;
  ops.flush = op_flush;
  ops.fsync = op_fsync;
  ops.release = op_release;
  ops.fallocate = op_fallocate;
  ops.lseek = op_lseek;
  ops.truncate = op_truncate;
  ops.utimens = op_utimens;
  ops.statfs = op_statfs;
  return ops;
}

// A value inside one -o option: FUSE splits options at commas unless escaped.
std::string escape_option_value(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == ',' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

int report(const std::string& message) {
  std::fprintf(stderr, "vhdx-mount: %s\n", message.c_str());
  return 1;
}

struct Options {
  std::string image_path;
  std::string mountpoint;
  bool read_only = false;
  bool force_share = false;
  bool foreground = false;
  bool debug = false;
  std::vector<std::string> fuse_options;
};

int run(const Options& options) {
  struct stat mount_stat {};
  if (::stat(options.mountpoint.c_str(), &mount_stat) != 0)
    return report(options.mountpoint + ": " + std::strerror(errno));
  if (!S_ISDIR(mount_stat.st_mode)) return report(options.mountpoint + ": not a directory");

  Mounted state;
  state.read_only = options.read_only;
  auto image = Image::open(
      options.image_path,
      vhdx::OpenOptions{.read_only = options.read_only, .force_share = options.force_share});
  if (!image) return report(image.error().to_string());
  state.image = std::move(*image);
  if (!options.read_only && state.image->info().type == vhdx::DiskType::kDifferencing)
    return report(options.image_path +
                  ": differencing images cannot be written yet; mount it read-only (-r)");
  if (::stat(options.image_path.c_str(), &state.image_stat) != 0)
    return report(options.image_path + ": " + std::strerror(errno));
  state.virtual_size = state.image->virtual_size();
  state.sector_size = state.image->info().logical_sector_size;
  state.disk_mtime = state.image_stat.st_mtim;

  char* absolute = ::realpath(options.image_path.c_str(), nullptr);
  std::string fsname = absolute ? absolute : options.image_path;
  std::free(absolute);
  std::string mount_options =
      "fsname=" + escape_option_value(fsname) + ",subtype=vhdx,default_permissions";
  if (options.read_only) mount_options += ",ro";
  for (const std::string& o : options.fuse_options) mount_options += "," + o;
  std::vector<std::string> args = {"vhdx-mount", "-o", mount_options};
  if (options.debug) args.push_back("-d");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  fuse_args fuse_arguments = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());

  const fuse_operations ops = make_operations();
  fuse* fs = fuse_new(&fuse_arguments, &ops, sizeof ops, &state);
  fuse_opt_free_args(&fuse_arguments);
  if (!fs) return report("FUSE refused the mount options: " + mount_options);
  if (fuse_mount(fs, options.mountpoint.c_str()) != 0) {
    fuse_destroy(fs);
    return report("cannot mount on " + options.mountpoint +
                  " (is /dev/fuse there, and fusermount3?)");
  }
  fuse_session* session = fuse_get_session(fs);
  if (fuse_set_signal_handlers(session) != 0) {
    fuse_unmount(fs);
    fuse_destroy(fs);
    return report("cannot install signal handlers");
  }
  if (!options.foreground && !options.debug) {
    openlog("vhdx-mount", LOG_PID, LOG_USER);
    state.in_background = true;
    fuse_daemonize(0);  // returns in the child; the parent exits 0 once the mount is served
  }
  const int loop_status = fuse_loop(fs);
  fuse_remove_signal_handlers(session);
  fuse_unmount(fs);
  fuse_destroy(fs);

  // fuse_loop returns the signal that stopped it (SIGTERM, Ctrl-C: a normal way to stop), or
  // -errno when serving failed.
  int status = 0;
  if (loop_status < 0) {
    const std::string text =
        std::string("serving the mount failed: ") + std::strerror(-loop_status);
    if (state.in_background) syslog(LOG_ERR, "%s", text.c_str());
    std::fprintf(stderr, "vhdx-mount: %s\n", text.c_str());
    status = 1;
  }
  if (!options.read_only) {
    if (auto r = state.image->close(); !r) {
      const std::string text = "closing " + options.image_path + ": " + r.error().to_string();
      if (state.in_background) syslog(LOG_ERR, "%s", text.c_str());
      std::fprintf(stderr, "vhdx-mount: %s\n", text.c_str());
      status = 1;
    }
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(
      "vhdx-mount: shows the virtual disk of a VHDX image as the file MOUNTPOINT/disk (FUSE).\n"
      "Unmount with: fusermount3 -u MOUNTPOINT",
      "vhdx-mount");
  app.set_version_flag("-V,--version", "vhdx-mount version " VHDX_VERSION);
  Options options;
  app.add_option("IMAGE", options.image_path, "The VHDX image")->required();
  app.add_option("MOUNTPOINT", options.mountpoint, "An existing directory")->required();
  app.add_flag("-r,--read-only", options.read_only,
               "Open the image read-only: the file is never written");
  app.add_flag("-U,--force-share", options.force_share,
               "With -r: read an image another process holds for writing (may be inconsistent)");
  app.add_flag("-f,--foreground", options.foreground, "Stay in the foreground");
  app.add_flag("-d,--debug", options.debug, "Print FUSE's request log (stays in the foreground)");
  app.add_option("-o", options.fuse_options, "FUSE mount options, e.g. allow_other")
      ->delimiter(',')
      ->allow_extra_args(false);
  app.footer("Exit status: 0 once mounted (or, with -f, once unmounted cleanly), 1 on error.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // -o ro is -r: the image must be opened read-only too, not just the mount.
  if (std::find(options.fuse_options.begin(), options.fuse_options.end(), "ro") !=
      options.fuse_options.end())
    options.read_only = true;
  if (options.force_share && !options.read_only)
    return report("--force-share (-U) needs --read-only (-r): only readers may share an image");
  try {
    return run(options);
  } catch (const std::exception& e) {
    return report(e.what());
  }
}
