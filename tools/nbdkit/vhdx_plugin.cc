// The nbdkit plugin: serves the virtual disk of a VHDX file over NBD.
//
//   nbdkit [-r] PLUGIN [file=]disk.vhdx [force-share=true]
//
// Every connection shares one vhdx::Image, opened when the first client connects (read-only
// when nbdkit runs with -r) and closed, flushed and marked clean, when the last one leaves, so
// the image is never left dirty between clients and its advisory lock is held only while it is
// served. Requests are serialized across connections (vhdx::Image is not thread-safe), which
// also makes multi-conn safe: a flush on any connection flushes everything.
//
// Differencing images are served read-only, reading through their parent chain; a dirty log
// is replayed in place on a writable open and in memory under -r (the file is never written).
// nbdkit checks the file when it starts, so a damaged image fails before anything is served.
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <string>

#include "vhdx/error.h"
#include "vhdx/image.h"
#include "vhdx/types.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS

namespace {

using vhdx::Error;
using vhdx::Image;

// Configuration, set before any connection.
std::string image_path;
bool force_share = false;

// The image every connection shares.
struct Served {
  std::mutex mutex;  // guards open and close, which nbdkit may run beside other requests
  std::unique_ptr<Image> image;
  bool read_only = true;
  int clients = 0;
};
Served served;

// Each connection's handle only remembers whether it may write.
struct Handle {
  bool writable = false;
};

int fail(const Error& error, const char* what) {
  nbdkit_error("vhdx: %s: %s", what, error.to_string().c_str());
  nbdkit_set_error(vhdx::errno_for(error));
  return -1;
}

// Runs a callback's body; an exception (only std::bad_alloc is expected) becomes an error.
template <typename Body>
int guarded(const char* what, Body body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    nbdkit_error("vhdx: %s: out of memory", what);
    nbdkit_set_error(ENOMEM);
  } catch (const std::exception& e) {
    nbdkit_error("vhdx: %s: %s", what, e.what());
    nbdkit_set_error(EIO);
  }
  return -1;
}

int vhdx_config(const char* key, const char* value) {
  const std::string k = key;
  if (k == "file") {
    image_path = value;
    return 0;
  }
  if (k == "force-share") {
    const int b = nbdkit_parse_bool(value);
    if (b == -1) return -1;
    force_share = b == 1;
    return 0;
  }
  nbdkit_error("vhdx: unknown parameter '%s' (see nbdkit PLUGIN --help)", key);
  return -1;
}

int vhdx_config_complete() {
  if (image_path.empty()) {
    nbdkit_error("vhdx: no image given: file=PATH is required");
    return -1;
  }
  return 0;
}

// Fails nbdkit's start on a file that is not a readable VHDX image, before serving anything.
// The check opens read-only without replaying the log (it only reads).
int vhdx_get_ready() {
  return guarded("opening the image", [] {
    auto image = Image::open(
        image_path,
        vhdx::OpenOptions{.read_only = true, .allow_dirty_log = true, .force_share = force_share});
    if (!image) return fail(image.error(), image_path.c_str());
    return 0;
  });
}

void* vhdx_open(int readonly) {
  try {
    std::lock_guard lock(served.mutex);
    if (!served.image) {
      auto image = Image::open(
          image_path, vhdx::OpenOptions{.read_only = readonly != 0, .force_share = force_share});
      if (!image) {
        fail(image.error(), image_path.c_str());
        return nullptr;
      }
      served.image = std::move(*image);
      served.read_only = readonly != 0;
    } else if (!readonly && served.read_only) {
      nbdkit_error("vhdx: %s is served read-only to another client", image_path.c_str());
      return nullptr;
    }
    ++served.clients;
    const bool differencing = served.image->info().type == vhdx::DiskType::kDifferencing;
    return new Handle{.writable = !served.read_only && !differencing};
  } catch (const std::exception& e) {
    nbdkit_error("vhdx: opening %s: %s", image_path.c_str(), e.what());
    return nullptr;
  }
}

void vhdx_close(void* handle) {
  delete static_cast<Handle*>(handle);
  std::lock_guard lock(served.mutex);
  if (--served.clients > 0 || !served.image) return;
  if (!served.read_only) {
    if (auto r = served.image->close(); !r) fail(r.error(), "closing the image");
  }
  served.image.reset();
}

int64_t vhdx_get_size(void*) { return static_cast<int64_t>(served.image->virtual_size()); }

int vhdx_can_write(void* handle) { return static_cast<Handle*>(handle)->writable ? 1 : 0; }
int vhdx_can_flush(void*) { return 1; }
int vhdx_is_rotational(void*) { return 0; }
int vhdx_can_fua(void*) { return NBDKIT_FUA_EMULATE; }  // nbdkit flushes after the write
int vhdx_can_multi_conn(void*) { return 1; }
int vhdx_can_extents(void*) { return 1; }
int vhdx_can_fast_zero(void*) { return 0; }  // zeroing part of a block writes zeros

// Any alignment works (partial sectors are read, patched and written whole); whole sectors
// of at least 4 KiB avoid that.
int vhdx_block_size(void*, uint32_t* minimum, uint32_t* preferred, uint32_t* maximum) {
  *minimum = 1;
  *preferred = std::max<uint32_t>(4096, served.image->info().logical_sector_size);
  *maximum = 0xffffffff;
  return 0;
}

int vhdx_pread(void*, void* buf, uint32_t count, uint64_t offset, uint32_t) {
  return guarded("read", [&] {
    auto r = served.image->read(offset, std::span(static_cast<std::uint8_t*>(buf), count));
    return r ? 0 : fail(r.error(), "read");
  });
}

int vhdx_pwrite(void*, const void* buf, uint32_t count, uint64_t offset, uint32_t) {
  return guarded("write", [&] {
    auto r = served.image->write(offset, std::span(static_cast<const std::uint8_t*>(buf), count));
    return r ? 0 : fail(r.error(), "write");
  });
}

int vhdx_flush(void*, uint32_t) {
  return guarded("flush", [&] {
    auto r = served.image->flush();
    return r ? 0 : fail(r.error(), "flush");
  });
}

// Trim gives whole blocks back (UNMAPPED); either way the range then reads as zeros.
int vhdx_trim(void*, uint32_t count, uint64_t offset, uint32_t) {
  return guarded("trim", [&] {
    auto r = served.image->discard(offset, count, /*unmap=*/true);
    return r ? 0 : fail(r.error(), "trim");
  });
}

int vhdx_zero(void*, uint32_t count, uint64_t offset, uint32_t flags) {
  return guarded("zero", [&] {
    auto r = served.image->discard(offset, count, (flags & NBDKIT_FLAG_MAY_TRIM) != 0);
    return r ? 0 : fail(r.error(), "zero");
  });
}

// Data (in this file or a parent) is allocated; ZERO blocks and blocks never written are
// holes that read as zeros.
int vhdx_extents(void*, uint32_t count, uint64_t offset, uint32_t flags,
                 struct nbdkit_extents* extents) {
  return guarded("block status", [&] {
    const std::uint64_t size = served.image->virtual_size();
    const std::uint64_t length = offset < size ? std::min<std::uint64_t>(count, size - offset) : 0;
    auto status = served.image->block_status(offset, length);
    if (!status) return fail(status.error(), "block status");
    for (const vhdx::Extent& e : *status) {
      const uint32_t type =
          e.kind == vhdx::ExtentKind::kData ? 0 : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
      if (nbdkit_add_extent(extents, e.offset, e.length, type) == -1) return -1;
      if (flags & NBDKIT_FLAG_REQ_ONE) break;
    }
    return 0;
  });
}

void vhdx_dump_plugin() { std::printf("vhdx_version=%s\n", VHDX_VERSION); }

nbdkit_plugin make_plugin() {
  nbdkit_plugin p{};
  p.name = "vhdx";
  p.longname = "libvhdx VHDX plugin";
  p.version = VHDX_VERSION;
  p.description = "Serves the virtual disk of a Microsoft VHDX image (Hyper-V).";
  p.config = vhdx_config;
  p.config_complete = vhdx_config_complete;
  p.config_help =
      "[file=]<PATH>         (required) The VHDX image to serve.\n"
      "force-share=<BOOL>    With -r: read an image another process holds for writing.";
  p.magic_config_key = "file";
  p.get_ready = vhdx_get_ready;
  p.open = vhdx_open;
  p.close = vhdx_close;
  p.get_size = vhdx_get_size;
  p.block_size = vhdx_block_size;
  p.can_write = vhdx_can_write;
  p.can_flush = vhdx_can_flush;
  p.is_rotational = vhdx_is_rotational;
  p.can_trim = vhdx_can_write;
  p.can_zero = vhdx_can_write;
  p.can_fast_zero = vhdx_can_fast_zero;
  p.can_fua = vhdx_can_fua;
  p.can_multi_conn = vhdx_can_multi_conn;
  p.can_extents = vhdx_can_extents;
  p.pread = vhdx_pread;
  p.pwrite = vhdx_pwrite;
  p.flush = vhdx_flush;
  p.trim = vhdx_trim;
  p.zero = vhdx_zero;
  p.extents = vhdx_extents;
  p.dump_plugin = vhdx_dump_plugin;
  return p;
}

nbdkit_plugin plugin = make_plugin();

}  // namespace

NBDKIT_REGISTER_PLUGIN(plugin)
