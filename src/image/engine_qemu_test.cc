// Interop tests of the write path on temp files: images created by qemu-img, written by the
// engine, then checked by `qemu-img check` and read back by `qemu-io`. Skipped when qemu-img is
// not installed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "image/engine.h"
#include "image/test_image.h"
#include "io/posix_file.h"

namespace vhdx::image {
namespace {

using format::kMiB;

struct Command {
  int status = -1;
  std::string output;
};

Command run(const std::string& command) {
  Command result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buf;
  while (std::fgets(buf.data(), buf.size(), pipe) != nullptr) result.output += buf.data();
  const int status = ::pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

bool have_qemu() { return run("qemu-img --version").status == 0; }

class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "vhdx-write-XXXXXX").string();
    if (::mkdtemp(templ.data()) != nullptr) path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::unique_ptr<Engine> open_engine(const std::string& path, bool writable) {
  auto file = open_posix_file(path, {.writable = writable});
  EXPECT_TRUE(file) << file.error().to_string();
  if (!file) return nullptr;
  auto engine = Engine::open(std::move(*file), {.read_only = !writable});
  EXPECT_TRUE(engine) << engine.error().to_string();
  return engine ? std::move(*engine) : nullptr;
}

std::vector<std::uint8_t> fill(std::size_t n, std::uint8_t value) {
  return std::vector<std::uint8_t>(n, value);
}

void expect_qemu_check_clean(const std::string& path) {
  Command check = run("qemu-img check -f vhdx '" + path + "'");
  EXPECT_EQ(check.status, 0) << check.output;
  EXPECT_NE(check.output.find("No errors were found on the image."), std::string::npos)
      << check.output;
}

void expect_qemu_reads(const std::string& path, std::uint64_t offset, std::uint64_t length,
                       int value) {
  char cmd[256];
  std::snprintf(cmd, sizeof cmd, "read -P 0x%02x %llu %llu", value,
                static_cast<unsigned long long>(offset), static_cast<unsigned long long>(length));
  Command io = run("qemu-io -f vhdx -r -c '" + std::string(cmd) + "' '" + path + "'");
  EXPECT_EQ(io.status, 0) << cmd << ": " << io.output;
  EXPECT_EQ(io.output.find("Pattern verification failed"), std::string::npos)
      << cmd << ": " << io.output;
  EXPECT_NE(io.output.find("read " + std::to_string(length) + "/" + std::to_string(length)),
            std::string::npos)
      << cmd << ": " << io.output;
}

std::vector<std::uint8_t> read_range(Engine& engine, std::uint64_t offset, std::size_t length) {
  std::vector<std::uint8_t> out(length, 0xEE);
  auto r = engine.read(offset, out);
  EXPECT_TRUE(r) << r.error().to_string();
  return out;
}

// Writes a fixed set of patterns and discards, closes, then checks the file with our reader and,
// when `qemu` (QEMU 7.2 opens only 512-byte logical sectors), with qemu-img check and qemu-io.
void write_and_check(const std::string& path, bool qemu = true) {
  {
    auto engine = open_engine(path, true);
    ASSERT_NE(engine, nullptr);
    const std::uint64_t size = engine->virtual_size();
    ASSERT_TRUE(engine->write(0, fill(4096, 0x5a)));
    ASSERT_TRUE(engine->write(kMiB - 1000, fill(3000, 0x5b)));          // across a block boundary
    ASSERT_TRUE(engine->write(3 * kMiB + 17, fill(70000, 0x5c)));       // unaligned
    ASSERT_TRUE(engine->write(size - 2 * kMiB, fill(2 * kMiB, 0x5d)));  // last blocks
    ASSERT_TRUE(engine->flush());
    ASSERT_TRUE(engine->discard(size - kMiB, kMiB, false));     // whole last block
    ASSERT_TRUE(engine->discard(size - 2 * kMiB, 4096, true));  // partial
    ASSERT_TRUE(engine->close());
  }
  auto engine = open_engine(path, false);
  ASSERT_NE(engine, nullptr);
  const std::uint64_t size = engine->virtual_size();
  EXPECT_TRUE(engine->info().headers[0].log_guid.is_zero());
  EXPECT_TRUE(engine->info().headers[1].log_guid.is_zero());
  EXPECT_EQ(read_range(*engine, 0, 4096), fill(4096, 0x5a));
  EXPECT_EQ(read_range(*engine, kMiB - 1000, 3000), fill(3000, 0x5b));
  EXPECT_EQ(read_range(*engine, kMiB + 2000, 4096), fill(4096, 0));
  EXPECT_EQ(read_range(*engine, 3 * kMiB + 17, 70000), fill(70000, 0x5c));
  EXPECT_EQ(read_range(*engine, size - 2 * kMiB, 4096), fill(4096, 0));
  EXPECT_EQ(read_range(*engine, size - 2 * kMiB + 4096, kMiB - 4096), fill(kMiB - 4096, 0x5d));
  EXPECT_EQ(read_range(*engine, size - kMiB, kMiB), fill(kMiB, 0));
  if (!qemu) return;
  expect_qemu_check_clean(path);
  expect_qemu_reads(path, 0, 4096, 0x5a);
  expect_qemu_reads(path, kMiB - 1000, 3000, 0x5b);
  expect_qemu_reads(path, kMiB + 2000, 4096, 0x00);
  expect_qemu_reads(path, 3 * kMiB + 17, 70000, 0x5c);
  expect_qemu_reads(path, size - 2 * kMiB, 4096, 0x00);
  expect_qemu_reads(path, size - 2 * kMiB + 4096, kMiB - 4096, 0x5d);
  expect_qemu_reads(path, size - kMiB, kMiB, 0x00);
}

TEST(EngineQemu, DynamicImageWrittenByUsPassesQemuCheck) {
  if (!have_qemu()) GTEST_SKIP() << "qemu-img not installed";
  TempDir dir;
  const std::string path = dir.file("dynamic.vhdx");
  Command create =
      run("qemu-img create -q -f vhdx -o subformat=dynamic,block_size=1M '" + path + "' 16M");
  ASSERT_EQ(create.status, 0) << create.output;
  write_and_check(path);
}

TEST(EngineQemu, FixedImageWrittenByUsPassesQemuCheck) {
  if (!have_qemu()) GTEST_SKIP() << "qemu-img not installed";
  TempDir dir;
  const std::string path = dir.file("fixed.vhdx");
  Command create =
      run("qemu-img create -q -f vhdx -o subformat=fixed,block_size=1M '" + path + "' 8M");
  ASSERT_EQ(create.status, 0) << create.output;
  write_and_check(path);
}

TEST(EngineQemu, DefaultBlockSizeImage) {
  if (!have_qemu()) GTEST_SKIP() << "qemu-img not installed";
  TempDir dir;
  const std::string path = dir.file("default.vhdx");
  Command create = run("qemu-img create -q -f vhdx '" + path + "' 100M");
  ASSERT_EQ(create.status, 0) << create.output;
  write_and_check(path);
}

// Images laid out by the test builder (log at 1 MiB, metadata at 2 MiB, BAT at 3 MiB), written to
// a temp file and then by the engine. QEMU 7.2 refuses 4096-byte logical sectors, so that image
// is checked with our reader only.
void builder_image(std::uint32_t sector_size) {
  if (!have_qemu()) GTEST_SKIP() << "qemu-img not installed";
  TempDir dir;
  const std::string path = dir.file("built.vhdx");
  testing::TestImage t(
      {.block_size = 1 * kMiB, .virtual_size = 6 * kMiB, .logical_sector_size = sector_size});
  {
    auto file = open_posix_file(path, {.writable = true, .create = true});
    ASSERT_TRUE(file) << file.error().to_string();
    ASSERT_TRUE((*file)->write_at(0, t.bytes()));
  }
  write_and_check(path, sector_size == 512);
}

TEST(EngineQemu, BuiltImage512PassesQemuCheck) { builder_image(512); }
TEST(EngineQemu, BuiltImage4096ReadsBack) { builder_image(4096); }

}  // namespace
}  // namespace vhdx::image

namespace vhdx::image {
namespace {

// A file left dirty by us (flushed, not closed) is replayed by QEMU: our log entries are valid to
// another implementation. The BAT written in place is undone first, so only the log can bring
// the new block back.
TEST(EngineQemu, QemuReplaysOurLog) {
  if (!have_qemu()) GTEST_SKIP() << "qemu-img not installed";
  TempDir dir;
  const std::string path = dir.file("dirty.vhdx");
  const std::string copy = dir.file("copy.vhdx");
  Command create =
      run("qemu-img create -q -f vhdx -o subformat=dynamic,block_size=1M '" + path + "' 16M");
  ASSERT_EQ(create.status, 0) << create.output;
  std::uint64_t bat_offset = 0;
  std::vector<std::uint8_t> old_bat(4096);
  {
    auto engine = open_engine(path, true);
    ASSERT_NE(engine, nullptr);
    for (const auto& region : engine->info().regions)
      if (region.name == "BAT") bat_offset = region.file_offset;
    ASSERT_TRUE(engine->file().read_at(bat_offset, old_bat));
    ASSERT_TRUE(engine->write(5 * kMiB + 512, fill(8192, 0x5e)));
    ASSERT_TRUE(engine->flush());
    std::filesystem::copy_file(path, copy);
  }
  {
    auto file = open_posix_file(copy, {.writable = true});
    ASSERT_TRUE(file);
    ASSERT_TRUE((*file)->write_at(bat_offset, old_bat));
  }
  Command dirty = run("qemu-io -f vhdx -r -c 'read 0 512' '" + copy + "'");
  EXPECT_NE(dirty.status, 0) << dirty.output;  // QEMU will not open a dirty log read-only
  Command repair = run("qemu-img check -r all -f vhdx '" + copy + "'");
  EXPECT_EQ(repair.status, 0) << repair.output;
  expect_qemu_reads(copy, 5 * kMiB + 512, 8192, 0x5e);
  expect_qemu_reads(copy, 5 * kMiB, 512, 0x00);
}

}  // namespace
}  // namespace vhdx::image
