// Component tests of ops::convert_to_raw on images built in memory, converted from a MemFile
// (the buffered path) and from a file on disk (the copy_file_range path).
#include "ops/convert.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "format/log_entry.h"
#include "image/test_image.h"
#include "io/posix_file.h"

namespace vhdx::ops {
namespace {

using format::kMiB;
using image::Engine;
using image::testing::TestImage;

class ConvertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "vhdx-ops-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // Opens the image either from memory or from a file written to the scratch folder.
  std::unique_ptr<Engine> open(const TestImage& t, bool from_disk) {
    if (!from_disk) return t.open_ok();
    const std::string file = path("image.vhdx");
    std::ofstream(file, std::ios::binary)
        .write(reinterpret_cast<const char*>(t.bytes_view().data()),
               static_cast<std::streamsize>(t.bytes_view().size()));
    auto f = open_posix_file(file, {});
    EXPECT_TRUE(f);
    auto engine = Engine::open(std::move(*f), {});
    EXPECT_TRUE(engine) << engine.error().to_string();
    (*engine)->set_source_path(file);
    return std::move(*engine);
  }

  static std::vector<std::uint8_t> read_file(const std::string& p) {
    std::ifstream in(p, std::ios::binary | std::ios::ate);
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(in.tellg()));
    in.seekg(0);
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return bytes;
  }
  static std::uint64_t allocated(const std::string& p) {
    struct stat st;
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    return static_cast<std::uint64_t>(st.st_blocks) * 512;
  }

  std::string dir_;
};

// 8 blocks of 1 MiB over 7.5 MiB: data, zero state, a data block of zeros, data whose first
// 4 KiB are zero, unallocated, two contiguous data blocks, and a partial last data block.
TestImage mixed() {
  TestImage t({.block_size = 1 * kMiB, .virtual_size = 7 * kMiB + 512 * 1024});
  t.allocate(0, 1);
  t.set_payload(1, format::PayloadState::kZero);
  const std::uint64_t zeros = t.allocate(2, 2);
  std::fill_n(t.bytes().begin() + static_cast<std::ptrdiff_t>(zeros), kMiB, 0);
  const std::uint64_t late = t.allocate(3, 3);
  std::fill_n(t.bytes().begin() + static_cast<std::ptrdiff_t>(late), 4096 + 17, 0);
  t.allocate(5, 5);
  t.allocate(6, 6);
  t.allocate(7, 7);
  return t;
}

TEST_F(ConvertTest, OutputEqualsTheVirtualDiskBothWays) {
  const TestImage t = mixed();
  for (bool from_disk : {false, true}) {
    for (bool sparse : {true, false}) {
      SCOPED_TRACE(testing::Message() << "from_disk=" << from_disk << " sparse=" << sparse);
      auto engine = open(t, from_disk);
      ASSERT_NE(engine, nullptr);
      const std::string out = path("out.raw");
      RawConvertOptions options;
      options.sparse = sparse;
      std::vector<std::pair<std::uint64_t, std::uint64_t>> progress;
      options.progress = [&](std::uint64_t done, std::uint64_t total) {
        progress.emplace_back(done, total);
      };
      auto r = convert_to_raw(*engine, out, options);
      ASSERT_TRUE(r) << r.error().to_string();
      EXPECT_EQ(read_file(out), t.expected_disk());
      ASSERT_GE(progress.size(), 3u);
      EXPECT_EQ(progress.front().first, 0u);
      EXPECT_EQ(progress.back().first, engine->virtual_size());
      for (std::size_t i = 1; i < progress.size(); ++i) {
        EXPECT_GT(progress[i].first, progress[i - 1].first);
        EXPECT_EQ(progress[i].second, engine->virtual_size());
      }
      // Sparse output holds only the non-zero data: blocks 0, 3, 5, 6 and half of 7.
      if (sparse) {
        EXPECT_LE(allocated(out), 4 * kMiB + 512 * 1024);
      } else {
        EXPECT_GE(allocated(out), engine->virtual_size());
      }
    }
  }
}

TEST_F(ConvertTest, ExistingOutputIsTruncated) {
  const TestImage t = mixed();
  auto engine = open(t, true);
  ASSERT_NE(engine, nullptr);
  const std::string out = path("out.raw");
  std::ofstream(out) << std::string(20 << 20, 'x');
  ASSERT_TRUE(convert_to_raw(*engine, out, {}));
  EXPECT_EQ(read_file(out), t.expected_disk());
}

TEST_F(ConvertTest, RefusesToOverwriteItsSource) {
  const TestImage t = mixed();
  auto engine = open(t, true);
  ASSERT_NE(engine, nullptr);
  const std::string source = path("image.vhdx");
  const auto before = read_file(source);
  auto r = convert_to_raw(*engine, source, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(read_file(source), before);
}

TEST_F(ConvertTest, CorruptEntryFailsAndRemovesTheOutput) {
  TestImage t = mixed();
  t.set_entry(5, format::encode_bat_entry(6, 1 * kMiB));  // block 5 on top of the log
  for (bool from_disk : {false, true}) {
    auto engine = open(t, from_disk);
    ASSERT_NE(engine, nullptr);
    const std::string out = path("out.raw");
    auto r = convert_to_raw(*engine, out, {});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
    EXPECT_NE(r.error().message().find("BAT entry 5 (payload block 5)"), std::string::npos)
        << r.error().message();
    EXPECT_FALSE(std::filesystem::exists(out));
  }
}

// A dirty log that cannot be replayed (its entry claims a file far larger than this one): the
// image opens for inspection only, and convert refuses before creating any output.
TEST_F(ConvertTest, UnreplayableLogCreatesNoOutput) {
  TestImage t = mixed();
  const Guid log_guid = *Guid::parse("c3f5caec-4c1d-c54e-90d5-48e9bc17ac53");
  t.header(1).log_guid = log_guid;
  t.write_headers();
  format::LogEntryHeader header;
  header.sequence_number = 1;
  header.log_guid = log_guid;
  header.flushed_file_offset = 1024 * kMiB;
  header.last_file_offset = 1024 * kMiB;
  format::LogUpdate update;
  update.file_offset = image::testing::kBatOffset;
  const auto entry = format::encode_log_entry(header, std::span(&update, 1));
  std::copy(entry.begin(), entry.end(), t.bytes().begin() + image::testing::kLogOffset);
  auto engine = t.open_ok({.read_only = true, .allow_dirty_log = true});
  ASSERT_NE(engine, nullptr);
  const std::string out = path("out.raw");
  auto r = convert_to_raw(*engine, out, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kNeedsLogReplay);
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST_F(ConvertTest, DifferencingImageIsRefusedBeforeAnyOutput) {
  TestImage t({.block_size = 1 * kMiB, .virtual_size = 4 * kMiB, .has_parent = true});
  t.allocate(1, 0x40);
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);
  const std::string out = path("out.raw");
  auto r = convert_to_raw(*engine, out, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST_F(ConvertTest, UnwritableOutputIsAnIoError) {
  const TestImage t = mixed();
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);
  auto r = convert_to_raw(*engine, path("missing-dir/out.raw"), {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kIo);
  EXPECT_EQ(r.error().sys_errno(), ENOENT);
}

}  // namespace
}  // namespace vhdx::ops
