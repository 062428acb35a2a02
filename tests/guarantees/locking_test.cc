// Advisory locking, as QEMU does it: a writable open is exclusive, a read-only open is shared,
// force_share reads without a lock, and QEMU and libvhdx refuse each other.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "guarantees/guarantee_util.h"
#include "io/posix_file.h"
#include "support/cli_run.h"
#include "support/corpus.h"
#include "support/image_builder.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

using testing::have_program;
using testing::make_temp_dir;
using testing::run_command;
using testing::run_vhdx;
using testing::shell_quote;

const char kBusyText[] = "image is in use by another process (locked)";

class Locking : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::ImageBuilder b(testing::ImageSpec{});
    b.set_block(0, testing::BlockSpec::present_fill(0x6b));
    auto bytes = b.build();
    path_ = make_temp_dir() + "/locked.vhdx";
    ASSERT_TRUE(testing::write_bytes_file(path_, bytes));
  }

  Result<std::unique_ptr<File>> open(bool writable, bool force_share = false) {
    return open_posix_file(path_, {.writable = writable, .force_share = force_share});
  }

  static void expect_busy(const Result<std::unique_ptr<File>>& r, const std::string& path) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ErrorCode::kBusy);
    EXPECT_EQ(r.error().message(), "'" + path + "': " + kBusyText);
  }

  std::string path_;
};

TEST_F(Locking, ReadersShare) {
  auto a = open(false);
  auto b = open(false);
  ASSERT_TRUE(a) << a.error().to_string();
  ASSERT_TRUE(b) << b.error().to_string();
}

TEST_F(Locking, WriterExcludesReaderAndWriter) {
  auto writer = open(true);
  ASSERT_TRUE(writer) << writer.error().to_string();
  expect_busy(open(false), path_);
  expect_busy(open(true), path_);
}

TEST_F(Locking, ReaderExcludesWriter) {
  auto reader = open(false);
  ASSERT_TRUE(reader);
  expect_busy(open(true), path_);
  // Once the reader is gone, a writer gets in.
  reader = Error(ErrorCode::kInternal, "closed");
  auto writer = open(true);
  EXPECT_TRUE(writer) << writer.error().to_string();
}

TEST_F(Locking, ForceShareReadsBesideAWriter) {
  auto writer = open(true);
  ASSERT_TRUE(writer);
  auto reader = open(false, /*force_share=*/true);
  ASSERT_TRUE(reader) << reader.error().to_string();
  std::vector<std::uint8_t> buf(8);
  ASSERT_TRUE((*reader)->read_at(0, buf));
  EXPECT_EQ(std::string(buf.begin(), buf.end()), "vhdxfile");
}

TEST_F(Locking, ForceShareTakesNoLockSoWritersStillGetIn) {
  auto reader = open(false, /*force_share=*/true);
  ASSERT_TRUE(reader);
  auto writer = open(true);
  EXPECT_TRUE(writer) << writer.error().to_string();
}

TEST_F(Locking, ForceShareWritableRefused) {
  auto r = open(true, /*force_share=*/true);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(Locking, TruncatingCreateOfLockedFileRefusedAndFileKept) {
  const auto before = testing::sha256_file(path_);
  auto reader = open(false);
  ASSERT_TRUE(reader);
  auto r = open_posix_file(path_, {.writable = true, .create = true, .truncate_existing = true});
  expect_busy(r, path_);
  EXPECT_EQ(testing::sha256_file(path_), before);
}

TEST_F(Locking, TruncatingCreateTruncatesWhenFree) {
  auto r = open_posix_file(path_, {.writable = true, .create = true, .truncate_existing = true});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(*(*r)->size(), 0u);
}

TEST_F(Locking, ImageOpenRefusedWhileWriterHoldsFile) {
  auto writer = open(true);
  ASSERT_TRUE(writer);
  auto image = Image::open(path_, OpenOptions{});
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().code(), ErrorCode::kBusy);
  EXPECT_NE(image.error().message().find(kBusyText), std::string::npos);
}

// Needs src/api/image.cc to pass OpenOptions::force_share to open_posix_file (see the
// hardening report); enable then.
TEST_F(Locking, ImageOpenForceShareWhileWriterHoldsFile) {
  auto writer = open(true);
  ASSERT_TRUE(writer);
  auto image = Image::open(path_, OpenOptions{.force_share = true});
  ASSERT_TRUE(image) << image.error().to_string();
  std::vector<std::uint8_t> buf(4096);
  ASSERT_TRUE((*image)->read(0, buf));
  EXPECT_EQ(buf, std::vector<std::uint8_t>(4096, 0x6b));
}

// The lock is visible across processes: the CLI refuses an image this process holds writable.
TEST_F(Locking, CliRefusedWhileWriterHoldsFile) {
  auto writer = open(true);
  ASSERT_TRUE(writer);
  auto r = run_vhdx("info " + shell_quote(path_));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(kBusyText), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("(busy"), std::string::npos) << r.err;
}

// -U (force share), qemu-img's option, lets inspection read beside a writer; a writable open
// with -U is refused.
TEST_F(Locking, CliForceShareReadsBesideAWriter) {
  auto writer = open(true);
  ASSERT_TRUE(writer);
  auto info = run_vhdx("info -U --output=json " + shell_quote(path_));
  EXPECT_EQ(info.status, 0) << info.err;
  EXPECT_NE(info.out.find("\"virtual-size\""), std::string::npos) << info.out;
  auto read = run_vhdx("io -r -U -c 'read -P 0x6b 0 64k' " + shell_quote(path_));
  EXPECT_EQ(read.status, 0) << read.out << read.err;
  auto map = run_vhdx("map -U " + shell_quote(path_));
  EXPECT_EQ(map.status, 0) << map.err;
  auto write = run_vhdx("io -U -c 'write -P 1 0 4k' " + shell_quote(path_));
  EXPECT_EQ(write.status, 1);
  EXPECT_NE(write.err.find("(invalid-argument"), std::string::npos) << write.err;
}

// QEMU and libvhdx see each other's locks.
class QemuLocking : public Locking {
 protected:
  void SetUp() override {
    if (!have_program("qemu-img") || !have_program("qemu-io")) {
      if (testing::in_ci()) FAIL() << "qemu-img/qemu-io missing";
      GTEST_SKIP() << "qemu-img/qemu-io not installed";
    }
    Locking::SetUp();
  }

  // Starts qemu-io holding the image (writable unless read_only) for a while; returns its pid
  // once it holds the lock.
  pid_t start_qemu_io(bool read_only) {
    pid_t pid = ::fork();
    if (pid == 0) {
      if (read_only)
        ::execlp("qemu-io", "qemu-io", "-r", "-f", "vhdx", "-c", "sleep 20000", path_.c_str(),
                 nullptr);
      else
        ::execlp("qemu-io", "qemu-io", "-f", "vhdx", "-c", "sleep 20000", path_.c_str(), nullptr);
      ::_exit(127);
    }
    // Wait until qemu-io holds its lock on byte 100 ("uses consistent read"); testing with
    // F_OFD_GETLK takes no lock, so it cannot make qemu-io's open fail.
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    for (int i = 0; i < 200 && fd >= 0; ++i) {
      struct flock fl = {};
      fl.l_type = F_WRLCK;
      fl.l_whence = SEEK_SET;
      fl.l_start = 100;
      fl.l_len = 1;
      if (::fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (fd >= 0) ::close(fd);
    return pid;
  }

  static void stop(pid_t pid) {
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
};

TEST_F(QemuLocking, QemuWriterExcludesUs) {
  pid_t pid = start_qemu_io(/*read_only=*/false);
  expect_busy(open(false), path_);
  expect_busy(open(true), path_);
  auto shared = open(false, /*force_share=*/true);
  EXPECT_TRUE(shared);
  stop(pid);
  EXPECT_TRUE(open(true));
}

TEST_F(QemuLocking, QemuReaderSharesWithUsButExcludesOurWriter) {
  pid_t pid = start_qemu_io(/*read_only=*/true);
  EXPECT_TRUE(open(false));
  expect_busy(open(true), path_);
  stop(pid);
}

TEST_F(QemuLocking, OurWriterExcludesQemu) {
  auto writer = open(true);
  ASSERT_TRUE(writer);
  std::string out;
  EXPECT_NE(run_command("qemu-img info " + shell_quote(path_) + " 2>&1", &out), 0);
  EXPECT_NE(out.find("lock"), std::string::npos) << out;
  EXPECT_EQ(run_command("qemu-img info -U " + shell_quote(path_) + " >/dev/null 2>&1"), 0);
}

TEST_F(QemuLocking, OurReaderExcludesQemuWriterNotQemuReader) {
  auto reader = open(false);
  ASSERT_TRUE(reader);
  std::string out;
  EXPECT_EQ(run_command("qemu-img info " + shell_quote(path_) + " >/dev/null 2>&1"), 0);
  EXPECT_NE(run_command("qemu-io -f vhdx -c 'write 0 512' " + shell_quote(path_) + " 2>&1", &out),
            0);
  EXPECT_NE(out.find("lock"), std::string::npos) << out;
}

}  // namespace
}  // namespace vhdx
