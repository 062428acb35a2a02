// vhdx-mount: images read and written through the FUSE mount's file, checked against the
// corpus hashes, a reference buffer, our check and convert, qemu-img, and ext4 over a loop
// device; read-only mounts leave the file alone; bad images fail before anything is mounted.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "guarantees/guarantee_util.h"
#include "support/cli_run.h"
#include "support/corpus.h"

namespace vhdx {
namespace {

using testing::CliRun;
using testing::run_shell;
using testing::run_vhdx;
using testing::sha256_file;
using testing::shell_quote;

std::string mount_program() { return std::string(VHDX_BINARY_DIR) + "/bin/vhdx-mount"; }

bool is_mount_point(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, device, root, point;
    fields >> id >> parent >> device >> root >> point;
    if (point == dir) return true;
  }
  return false;
}

// vhdx-mount -f run as a child process: mounted on construction (when ok()), unmounted and
// waited for by unmount() or, failing that, the destructor.
class Mount {
 public:
  Mount(const std::string& image, const std::string& dir, const std::vector<std::string>& flags)
      : dir_(dir), log_(dir + ".log") {
    std::vector<std::string> args = {mount_program(), "-f"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(image);
    args.push_back(dir);
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (is_mount_point(dir_)) {
        mounted_ = true;
        return;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~Mount() {
    if (mounted_) run_shell("fusermount3 -u -z " + shell_quote(dir_));
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;

  bool ok() const { return mounted_; }
  std::string disk() const { return dir_ + "/disk"; }
  // What vhdx-mount printed (its errors).
  std::string log() const { return testing::read_file_text(log_); }

  // Unmounts and returns vhdx-mount's exit status (after it has closed the image).
  int unmount() {
    if (mounted_) {
      CliRun r = run_shell("fusermount3 -u " + shell_quote(dir_));
      EXPECT_EQ(r.status, 0) << r.err;
      mounted_ = false;
    }
    if (pid_ > 0) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      int status = 0;
      while (::waitpid(pid_, &status, WNOHANG) != pid_) {
        if (std::chrono::steady_clock::now() > deadline) {
          ADD_FAILURE() << "vhdx-mount did not exit after the unmount";
          ::kill(pid_, SIGKILL);
          ::waitpid(pid_, &status, 0);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      pid_ = -1;
      exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return exit_status_;
  }
  int exit_status() const { return exit_status_; }

 private:
  std::string dir_;
  std::string log_;
  pid_t pid_ = -1;
  bool mounted_ = false;
  int exit_status_ = -1;
};

class FuseMount : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/dev/fuse", R_OK | W_OK) != 0) {
      if (testing::in_ci()) FAIL() << "/dev/fuse is not usable, and CI=true requires it";
      GTEST_SKIP() << "/dev/fuse is not usable here";
    }
    VHDX_REQUIRE_PROGRAM("fusermount3");
    dir_ = testing::make_temp_dir();
    mount_dir_ = dir_ + "/mnt";
    ASSERT_EQ(::mkdir(mount_dir_.c_str(), 0755), 0);
  }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  std::string create(const std::string& name, const std::string& size,
                     const std::string& options = "block_size=1M") {
    const std::string image = path(name);
    CliRun r = run_vhdx("create -q -o " + options + " " + shell_quote(image) + " " + size);
    EXPECT_EQ(r.status, 0) << r.err;
    return image;
  }

  std::string dir_;
  std::string mount_dir_;
};

// Deterministic bytes, different for every seed.
std::vector<std::uint8_t> pattern(std::size_t length, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> out(length);
  for (auto& b : out) b = static_cast<std::uint8_t>(rng());
  return out;
}

std::vector<std::uint8_t> read_all(int fd, std::uint64_t size) {
  std::vector<std::uint8_t> out(size);
  std::uint64_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, out.data() + done, size - done, static_cast<off_t>(done));
    if (n <= 0) {
      ADD_FAILURE() << "pread at " << done << ": " << (n < 0 ? std::strerror(errno) : "EOF");
      return {};
    }
    done += static_cast<std::uint64_t>(n);
  }
  return out;
}

std::string write_raw(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  return path;
}

TEST_F(FuseMount, CorpusImagesReadThroughTheMount) {
  for (const testing::CorpusContent& c : testing::corpus_contents()) {
    SCOPED_TRACE(c.file);
    const std::string image = testing::corpus_image(c.file);
    const guarantees::FileState before = guarantees::file_state(image);
    Mount mount(image, mount_dir_, {"-r"});
    ASSERT_TRUE(mount.ok()) << mount.log();
    EXPECT_EQ(sha256_file(mount.disk()), c.content_sha256);
    struct stat st {};
    ASSERT_EQ(::stat(mount.disk().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0444u);
    EXPECT_EQ(mount.unmount(), 0) << mount.log();
    EXPECT_EQ(guarantees::file_state(image), before) << "a read-only mount changed the file";
  }
}

class FuseMountWrites : public FuseMount, public ::testing::WithParamInterface<int> {};

// Unaligned writes across block boundaries, a punched hole and a zeroed range, read back
// through the mount, then after the unmount by our check and convert (and qemu-img's compare
// for 512-byte sectors).
TEST_P(FuseMountWrites, ReachTheImage) {
  const int sector = GetParam();
  constexpr std::uint64_t kSize = 20 << 20;
  const std::string image =
      create("w.vhdx", "20M", "block_size=1M,logical_sector_size=" + std::to_string(sector));
  std::vector<std::uint8_t> expected(kSize, 0);
  {
    Mount mount(image, mount_dir_, {});
    ASSERT_TRUE(mount.ok()) << mount.log();
    const int fd = ::open(mount.disk().c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    const struct {
      std::uint64_t offset, length;
    } writes[] = {{0, 4096},
                  {1000, 333},
                  {(1 << 20) - 700, 5000},
                  {3 << 20, 3 << 20},
                  {(9 << 20) + 17, 1},
                  {(12 << 20) - 1, 2 << 20},
                  {kSize - 4096, 4096},
                  {(4 << 20) + 3, 70000}};
    std::uint32_t seed = 1;
    for (const auto& w : writes) {
      const auto bytes = pattern(w.length, seed++);
      ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(w.offset)),
                static_cast<ssize_t>(bytes.size()))
          << std::strerror(errno);
      std::copy(bytes.begin(), bytes.end(), expected.begin() + static_cast<long>(w.offset));
    }
    // Block 4 released whole; an unaligned range inside block 12 zeroed in place.
    ASSERT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 << 20, 1 << 20), 0)
        << std::strerror(errno);
    std::fill_n(expected.begin() + (4 << 20), 1 << 20, 0);
    ASSERT_EQ(::fallocate(fd, FALLOC_FL_ZERO_RANGE, (12 << 20) + 5, 12345), 0)
        << std::strerror(errno);
    std::fill_n(expected.begin() + (12 << 20) + 5, 12345, 0);
    EXPECT_EQ(::fsync(fd), 0);
    EXPECT_TRUE(read_all(fd, kSize) == expected) << "the mount does not read what was written";
    EXPECT_EQ(::close(fd), 0);
    EXPECT_EQ(mount.unmount(), 0) << mount.log();
  }
  CliRun r = run_vhdx("check " + shell_quote(image));
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  const std::string raw = path("w.raw");
  r = run_vhdx("convert -O raw " + shell_quote(image) + " " + shell_quote(raw));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(sha256_file(raw), testing::sha256_hex(expected));
  // The punched block holds no data in the file any more (zero, not data, no offset).
  r = run_vhdx("map --output=json " + shell_quote(image));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("{ \"start\": 4194304, \"length\": 1048576, \"depth\": 0, "
                       "\"present\": true, \"zero\": true, \"data\": false}"),
            std::string::npos)
      << "the punched block is not released:\n"
      << r.out;
  if (sector == 512) {
    VHDX_REQUIRE_PROGRAM("qemu-img");
    const std::string reference = write_raw(path("expected.raw"), expected);
    r = run_shell("qemu-img compare -f vhdx -F raw " + shell_quote(image) + " " +
                  shell_quote(reference));
    EXPECT_EQ(r.status, 0) << r.out << r.err;
  }
}

INSTANTIATE_TEST_SUITE_P(SectorSizes, FuseMountWrites, ::testing::Values(512, 4096));

// Reads 4 KiB at 2 MiB of a copy of `image` (what a crash at this moment would leave) and
// compares them with `expected`; the rest of the 8 MiB disk must read as zeros.
void expect_copy_holds(const std::string& image, const std::string& dir,
                       const std::vector<std::uint8_t>& expected) {
  const std::string copy = dir + "/copy.vhdx";
  ASSERT_EQ(run_shell("cp " + shell_quote(image) + " " + shell_quote(copy)).status, 0);
  CliRun r =
      run_vhdx("io -r -c 'read -q -P 0 0 2M' -c 'read -q -P 0 2052k 6140k' " + shell_quote(copy));
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  const std::string raw = dir + "/copy.raw";
  ASSERT_EQ(run_vhdx("convert -O raw " + shell_quote(copy) + " " + shell_quote(raw)).status, 0);
  const std::string written = write_raw(dir + "/written.bin", expected);
  r = run_shell("cmp -n 4096 -i 2097152:0 " + shell_quote(raw) + " " + shell_quote(written));
  EXPECT_EQ(r.status, 0) << "a copy taken while mounted lacks the data: " << r.out;
}

// Closing a descriptor that wrote makes its writes durable; once the last descriptor open for
// writing is closed, the image is also clean on disk (log GUID cleared) while still mounted:
// a crash of the mount then loses nothing and needs no replay.
TEST_F(FuseMount, ImageIsDurableOnCloseAndCleanOnceNoOneWrites) {
  const std::string image = create("c.vhdx", "8M");
  Mount mount(image, mount_dir_, {});
  ASSERT_TRUE(mount.ok()) << mount.log();
  const auto bytes = pattern(4096, 7);
  const int holder = ::open(mount.disk().c_str(), O_RDWR);  // keeps a writer around
  ASSERT_GE(holder, 0) << std::strerror(errno);
  {
    const int fd = ::open(mount.disk().c_str(), O_WRONLY);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), 2 << 20), 4096);
    ASSERT_EQ(::close(fd), 0);
  }
  {
    SCOPED_TRACE("after close, with another writer open");
    expect_copy_holds(image, dir_, bytes);
  }
  ASSERT_EQ(::close(holder), 0);
  // FUSE releases a file after close() returns: give it a moment.
  bool clean = false;
  for (int i = 0; i < 200 && !clean; ++i) {
    CliRun r = run_vhdx("info -U --output=json " + shell_quote(image));
    ASSERT_EQ(r.status, 0) << r.err;
    clean = r.out.find("\"dirty-flag\": false") != std::string::npos;
    if (!clean) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_TRUE(clean) << "the image still needs log replay after the last writer closed";
  {
    SCOPED_TRACE("after the last writer closed");
    expect_copy_holds(image, dir_, bytes);
  }
  EXPECT_EQ(mount.unmount(), 0) << mount.log();
}

TEST_F(FuseMount, ReadOnlyMountRefusesWritesAndChangesNothing) {
  const std::string image = create("ro.vhdx", "8M");
  ASSERT_EQ(run_vhdx("io -c 'write -q -P 0x5a 1M 1M' " + shell_quote(image)).status, 0);
  const guarantees::FileState before = guarantees::file_state(image);
  Mount mount(image, mount_dir_, {"-r"});
  ASSERT_TRUE(mount.ok()) << mount.log();
  errno = 0;
  EXPECT_EQ(::open(mount.disk().c_str(), O_WRONLY), -1);
  EXPECT_EQ(errno, EROFS);
  // A reader holds the image: a writer is turned away, another reader is not.
  CliRun r = run_vhdx("io -c 'write 0 512' " + shell_quote(image));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("in use"), std::string::npos) << r.err;
  r = run_vhdx("io -r -c 'read -q -P 0x5a 1M 1M' " + shell_quote(image));
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  const int fd = ::open(mount.disk().c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  const auto data = read_all(fd, 8 << 20);
  ::close(fd);
  EXPECT_EQ(testing::sha256_hex(std::span(data).subspan(1 << 20, 1 << 20)),
            testing::sha256_hex(std::vector<std::uint8_t>(1 << 20, 0x5a)));
  EXPECT_EQ(mount.unmount(), 0) << mount.log();
  EXPECT_EQ(guarantees::file_state(image), before);
}

// Without -f the program returns once the mount is served; the background process holds the
// image's lock until it has been unmounted and has closed the image.
TEST_F(FuseMount, BackgroundMountHoldsTheLockUntilUnmounted) {
  const std::string image = create("bg.vhdx", "8M");
  CliRun r = run_shell(shell_quote(mount_program()) + " " + shell_quote(image) + " " +
                       shell_quote(mount_dir_));
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(is_mount_point(mount_dir_));
  struct stat st {};
  EXPECT_EQ(::stat((mount_dir_ + "/disk").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 8 << 20);
  r = run_vhdx("info " + shell_quote(image));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("in use"), std::string::npos) << r.err;
  EXPECT_EQ(run_vhdx("info -U " + shell_quote(image)).status, 0);
  r = run_shell("fusermount3 -u " + shell_quote(mount_dir_));
  ASSERT_EQ(r.status, 0) << r.err;
  int status = 1;
  for (int i = 0; i < 400 && status != 0; ++i) {
    status = run_vhdx("info " + shell_quote(image)).status;
    if (status != 0) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_EQ(status, 0) << "the image stayed locked after the unmount";
}

// A real file system on the mounted disk, through the kernel's loop driver; then read back
// from a read-only mount and checked by e2fsck, qemu-img and our check.
TEST_F(FuseMount, Ext4OverALoopDevice) {
  if (::geteuid() != 0) {
    if (testing::in_ci()) FAIL() << "CI runs as root, which loop mounts need";
    GTEST_SKIP() << "loop mounts need root";
  }
  VHDX_REQUIRE_PROGRAM("mkfs.ext4");
  VHDX_REQUIRE_PROGRAM("e2fsck");
  const std::string image = create("fs.vhdx", "64M");
  const std::string fs_dir = path("fs");
  ASSERT_EQ(::mkdir(fs_dir.c_str(), 0755), 0);
  std::string sums;
  {
    Mount mount(image, mount_dir_, {});
    ASSERT_TRUE(mount.ok()) << mount.log();
    CliRun r = run_shell("mkfs.ext4 -q -F " + shell_quote(mount.disk()));
    ASSERT_EQ(r.status, 0) << r.err;
    r = run_shell("mount -o loop " + shell_quote(mount.disk()) + " " + shell_quote(fs_dir));
    if (r.status != 0 && !testing::in_ci()) GTEST_SKIP() << "no loop devices here: " << r.err;
    ASSERT_EQ(r.status, 0) << r.err;
    r = run_shell("cd " + shell_quote(fs_dir) +
                  " && head -c 5M /dev/urandom > big && seq 1 20000 > small && mkdir d && "
                  "cp small d/copy && sha256sum big small d/copy");
    sums = r.out;
    const CliRun unmount = run_shell("umount " + shell_quote(fs_dir));
    ASSERT_EQ(r.status, 0) << r.err;
    ASSERT_EQ(unmount.status, 0) << unmount.err;
    EXPECT_EQ(mount.unmount(), 0) << mount.log();
  }
  CliRun r = run_vhdx("check " + shell_quote(image));
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  if (testing::have_program("qemu-img")) {
    r = run_shell("qemu-img check -f vhdx " + shell_quote(image));
    EXPECT_EQ(r.status, 0) << r.out << r.err;
  }
  Mount mount(image, mount_dir_, {"-r"});
  ASSERT_TRUE(mount.ok()) << mount.log();
  r = run_shell("e2fsck -fn " + shell_quote(mount.disk()));
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  r = run_shell("mount -o loop,ro " + shell_quote(mount.disk()) + " " + shell_quote(fs_dir));
  ASSERT_EQ(r.status, 0) << r.err;
  r = run_shell("cd " + shell_quote(fs_dir) + " && sha256sum big small d/copy");
  run_shell("umount " + shell_quote(fs_dir));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, sums);
  EXPECT_NE(sums.find(" big\n"), std::string::npos) << sums;
  EXPECT_EQ(mount.unmount(), 0) << mount.log();
}

// SEEK_DATA and SEEK_HOLE follow the image's allocated blocks.
TEST_F(FuseMount, SeekDataAndHoleFollowTheBlocks) {
  const std::string image = create("s.vhdx", "8M");
  ASSERT_EQ(run_vhdx("io -c 'write -q -P 1 1M 64k' -c 'write -q -P 2 3M 1M' "
                     "-c 'write -q -P 3 5632k 4k' " +
                     shell_quote(image))
                .status,
            0);
  Mount mount(image, mount_dir_, {"-r"});
  ASSERT_TRUE(mount.ok()) << mount.log();
  const int fd = ::open(mount.disk().c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  constexpr off_t M = 1 << 20;
  EXPECT_EQ(::lseek(fd, 0, SEEK_DATA), 1 * M);
  EXPECT_EQ(::lseek(fd, 1 * M + 100, SEEK_DATA), 1 * M + 100);
  EXPECT_EQ(::lseek(fd, 1 * M, SEEK_HOLE), 2 * M);
  EXPECT_EQ(::lseek(fd, 2 * M, SEEK_DATA), 3 * M);
  EXPECT_EQ(::lseek(fd, 3 * M, SEEK_HOLE), 4 * M);
  EXPECT_EQ(::lseek(fd, 4 * M, SEEK_DATA), 5 * M);
  EXPECT_EQ(::lseek(fd, 5 * M, SEEK_HOLE), 6 * M);
  errno = 0;
  EXPECT_EQ(::lseek(fd, 6 * M, SEEK_DATA), -1);
  EXPECT_EQ(errno, ENXIO);
  EXPECT_EQ(::lseek(fd, 7 * M, SEEK_HOLE), 7 * M);
  ::close(fd);
  EXPECT_EQ(mount.unmount(), 0) << mount.log();
}

// The disk's size is fixed: truncating to another size fails, O_TRUNC is ignored (as on a block
// device), a write at the end fails with ENOSPC and one across it is cut short.
TEST_F(FuseMount, TheDiskKeepsItsSize) {
  const std::string image = create("t.vhdx", "4M");
  Mount mount(image, mount_dir_, {});
  ASSERT_TRUE(mount.ok()) << mount.log();
  const auto bytes = pattern(8192, 3);
  int fd = ::open(mount.disk().c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes.data(), 4096, 0), 4096);
  errno = 0;
  EXPECT_EQ(::pwrite(fd, bytes.data(), 4096, 4 << 20), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(::pwrite(fd, bytes.data(), 8192, (4 << 20) - 4096), 4096);
  EXPECT_EQ(::ftruncate(fd, 4 << 20), 0);
  errno = 0;
  EXPECT_EQ(::ftruncate(fd, 1 << 20), -1);
  EXPECT_EQ(errno, EPERM);
  ::close(fd);
  fd = ::open(mount.disk().c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ::close(fd);
  struct stat st {};
  ASSERT_EQ(::stat(mount.disk().c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 4 << 20);
  fd = ::open(mount.disk().c_str(), O_RDONLY);
  const auto data = read_all(fd, 4 << 20);
  ::close(fd);
  ASSERT_EQ(data.size(), 4u << 20);
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.begin() + 4096, data.begin()));
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.begin() + 4096, data.end() - 4096));
  EXPECT_EQ(mount.unmount(), 0) << mount.log();
}

// A differencing image reads through its parent; it is not writable yet, so a writable mount
// is refused with the way out in the message.
TEST_F(FuseMount, DifferencingImageMountsReadOnly) {
  const std::string parent = create("parent.vhdx", "8M");
  ASSERT_EQ(run_vhdx("io -c 'write -q -P 0x11 0 3M' " + shell_quote(parent)).status, 0);
  const std::string child = path("child.vhdx");
  ASSERT_EQ(run_vhdx("create -q -b " + shell_quote(parent) + " " + shell_quote(child)).status, 0);
  {
    Mount mount(child, mount_dir_, {});
    EXPECT_FALSE(mount.ok());
    EXPECT_EQ(mount.exit_status(), 1);
    EXPECT_NE(mount.log().find("mount it read-only (-r)"), std::string::npos) << mount.log();
  }
  const std::string raw = path("parent.raw");
  ASSERT_EQ(run_vhdx("convert -O raw " + shell_quote(parent) + " " + shell_quote(raw)).status, 0);
  Mount mount(child, mount_dir_, {"-r"});
  ASSERT_TRUE(mount.ok()) << mount.log();
  EXPECT_EQ(sha256_file(mount.disk()), sha256_file(raw));
  EXPECT_EQ(mount.unmount(), 0) << mount.log();
}

// Each bad input: exit status 1, one "vhdx-mount: " line naming the problem, nothing mounted.
TEST_F(FuseMount, BadInputsFailBeforeMounting) {
  const std::string text = path("notes.txt");
  ASSERT_EQ(run_shell("echo 'not a disk' > " + shell_quote(text)).status, 0);
  const std::string damaged = create("damaged.vhdx", "8M");
  // Both region tables (192 KiB and 256 KiB) zeroed.
  ASSERT_EQ(run_shell("dd if=/dev/zero of=" + shell_quote(damaged) +
                      " bs=64k seek=3 count=2 conv=notrunc status=none")
                .status,
            0);
  const std::string good = create("good.vhdx", "8M");
  const struct {
    std::string args;
    std::string message;
  } cases[] = {
      {shell_quote(text) + " " + shell_quote(mount_dir_), "(not-vhdx)"},
      {shell_quote(damaged) + " " + shell_quote(mount_dir_), "region tables"},
      {shell_quote(path("missing.vhdx")) + " " + shell_quote(mount_dir_), "missing.vhdx"},
      {shell_quote(good) + " " + shell_quote(path("no-such-dir")), "no-such-dir"},
      {shell_quote(good) + " " + shell_quote(text), "not a directory"},
      {"-U " + shell_quote(good) + " " + shell_quote(mount_dir_), "needs --read-only"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args);
    CliRun r = run_shell(shell_quote(mount_program()) + " " + c.args);
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err.rfind("vhdx-mount: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_FALSE(is_mount_point(mount_dir_));
  }
}

}  // namespace
}  // namespace vhdx
