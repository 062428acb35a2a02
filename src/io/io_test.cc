#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include "io/mem_file.h"
#include "io/posix_file.h"

namespace vhdx {
namespace {

std::vector<std::uint8_t> pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(seed + i * 13);
  return v;
}

std::vector<std::uint8_t> read_back(File& file, std::uint64_t offset, std::size_t n) {
  std::vector<std::uint8_t> out(n, 0xCD);
  auto r = file.read_at(offset, out);
  EXPECT_TRUE(r) << (r ? "" : r.error().to_string());
  return out;
}

// MemFile.

TEST(MemFile, WriteReadAndSize) {
  MemFile file;
  EXPECT_EQ(*file.size(), 0u);
  auto data = pattern(100, 1);
  ASSERT_TRUE(file.write_at(10, data));
  EXPECT_EQ(*file.size(), 110u);
  EXPECT_EQ(read_back(file, 10, 100), data);
  EXPECT_EQ(read_back(file, 0, 10), std::vector<std::uint8_t>(10, 0));  // the gap reads as zeros
  EXPECT_TRUE(file.flush());
  EXPECT_TRUE(file.writable());
  EXPECT_EQ(file.name(), "<memory>");
  EXPECT_EQ(file.bytes().size(), 110u);
}

TEST(MemFile, OverwriteInPlace) {
  MemFile file(pattern(64, 0));
  ASSERT_TRUE(file.write_at(8, std::vector<std::uint8_t>{0xAA, 0xBB}));
  auto all = read_back(file, 0, 64);
  const auto original = pattern(64, 0);
  EXPECT_EQ(all[7], original[7]);
  EXPECT_EQ(all[8], 0xAA);
  EXPECT_EQ(all[9], 0xBB);
  EXPECT_EQ(all[10], original[10]);
  EXPECT_EQ(*file.size(), 64u);
}

TEST(MemFile, ReadPastEndIsAnError) {
  MemFile file(pattern(16, 0));
  std::vector<std::uint8_t> out(8);
  auto r = file.read_at(12, out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kIo);
  EXPECT_EQ(r.error().message(), "unexpected end of file at offset 12 of <memory>");
  r = file.read_at(~std::uint64_t{0}, out);  // offset + size overflows
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kIo);
  EXPECT_TRUE(file.read_at(8, out));  // exactly to the end
  EXPECT_TRUE(file.read_at(16, std::span<std::uint8_t>()));
}

TEST(MemFile, TruncateShrinksAndGrowsWithZeros) {
  MemFile file(pattern(32, 5));
  ASSERT_TRUE(file.truncate(8));
  EXPECT_EQ(*file.size(), 8u);
  ASSERT_TRUE(file.truncate(20));
  auto all = read_back(file, 0, 20);
  const auto original = pattern(32, 5);
  EXPECT_EQ(std::vector<std::uint8_t>(all.begin(), all.begin() + 8),
            std::vector<std::uint8_t>(original.begin(), original.begin() + 8));
  EXPECT_EQ(std::vector<std::uint8_t>(all.begin() + 8, all.end()),
            std::vector<std::uint8_t>(12, 0));
}

TEST(MemFile, PunchHoleZeroesAndKeepsSize) {
  MemFile file(std::vector<std::uint8_t>(32, 0xFF));
  ASSERT_TRUE(file.punch_hole(4, 8));
  auto all = read_back(file, 0, 32);
  for (std::size_t i = 0; i < 32; ++i) EXPECT_EQ(all[i], i >= 4 && i < 12 ? 0 : 0xFF) << i;
  ASSERT_TRUE(file.punch_hole(28, 100));  // clipped at the end
  EXPECT_EQ(*file.size(), 32u);
  EXPECT_EQ(read_back(file, 28, 4), std::vector<std::uint8_t>(4, 0));
  ASSERT_TRUE(file.punch_hole(40, 8));  // entirely past the end: nothing
  ASSERT_TRUE(file.punch_hole(0, ~std::uint64_t{0}));
  EXPECT_EQ(read_back(file, 0, 32), std::vector<std::uint8_t>(32, 0));
  EXPECT_EQ(*file.size(), 32u);
}

TEST(MemFile, ReadOnlyRefusesChanges) {
  MemFile file(pattern(16, 0), /*writable=*/false);
  EXPECT_FALSE(file.writable());
  std::uint8_t b[1] = {1};
  auto w = file.write_at(0, b);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code(), ErrorCode::kReadOnly);
  EXPECT_EQ(file.truncate(0).error().code(), ErrorCode::kReadOnly);
  EXPECT_EQ(file.punch_hole(0, 4).error().code(), ErrorCode::kReadOnly);
  EXPECT_EQ(read_back(file, 0, 16), pattern(16, 0));
}

TEST(MemFile, SizeLimit) {
  MemFile file;
  std::uint8_t b[1] = {1};
  auto w = file.write_at(MemFile::kMaxSize, b);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code(), ErrorCode::kNoSpace);
  w = file.write_at(~std::uint64_t{0}, b);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code(), ErrorCode::kNoSpace);
  EXPECT_EQ(file.truncate(MemFile::kMaxSize + 1).error().code(), ErrorCode::kNoSpace);
  EXPECT_EQ(*file.size(), 0u);
}

// PosixFile, on a file in a fresh temporary directory.

class PosixFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vhdx-io-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/file.bin";
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  std::unique_ptr<File> open(PosixOpenOptions options) {
    auto f = open_posix_file(path_, options);
    EXPECT_TRUE(f) << (f ? "" : f.error().to_string());
    return f ? std::move(*f) : nullptr;
  }
  std::unique_ptr<File> create() { return open({.writable = true, .create = true}); }

  std::string dir_;
  std::string path_;
};

TEST_F(PosixFileTest, WriteReadSizeAndName) {
  auto file = create();
  ASSERT_TRUE(file);
  EXPECT_TRUE(file->writable());
  EXPECT_EQ(file->name(), path_);
  EXPECT_EQ(*file->size(), 0u);
  auto data = pattern(10000, 3);
  ASSERT_TRUE(file->write_at(5000, data));
  EXPECT_EQ(*file->size(), 15000u);
  EXPECT_EQ(read_back(*file, 5000, 10000), data);
  EXPECT_EQ(read_back(*file, 0, 5000), std::vector<std::uint8_t>(5000, 0));
  ASSERT_TRUE(file->flush());
  file.reset();
  // Reopened read-only, the bytes are there.
  auto ro = open({});
  ASSERT_TRUE(ro);
  EXPECT_FALSE(ro->writable());
  EXPECT_EQ(read_back(*ro, 5000, 10000), data);
}

TEST_F(PosixFileTest, ShortReadPastEndIsAnError) {
  auto file = create();
  ASSERT_TRUE(file);
  ASSERT_TRUE(file->write_at(0, pattern(100, 0)));
  std::vector<std::uint8_t> out(50);
  auto r = file->read_at(60, out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kIo);
  EXPECT_EQ(r.error().message(), "unexpected end of file at offset 100 of '" + path_ + "'");
  r = file->read_at(1000, out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "unexpected end of file at offset 1000 of '" + path_ + "'");
}

TEST_F(PosixFileTest, Truncate) {
  auto file = create();
  ASSERT_TRUE(file);
  ASSERT_TRUE(file->write_at(0, pattern(4096, 1)));
  ASSERT_TRUE(file->truncate(1000));
  EXPECT_EQ(*file->size(), 1000u);
  ASSERT_TRUE(file->truncate(3 << 20));
  EXPECT_EQ(*file->size(), 3u << 20);
  EXPECT_EQ(read_back(*file, 1000, 3096), std::vector<std::uint8_t>(3096, 0));
  auto head = read_back(*file, 0, 1000);
  auto expected = pattern(4096, 1);
  expected.resize(1000);
  EXPECT_EQ(head, expected);
}

TEST_F(PosixFileTest, PunchHoleReadsZerosAndKeepsSize) {
  auto file = create();
  ASSERT_TRUE(file);
  const std::size_t kLen = 4 << 20;
  ASSERT_TRUE(file->write_at(0, std::vector<std::uint8_t>(kLen, 0xAB)));
  ASSERT_TRUE(file->flush());
  auto before = allocated_bytes(path_);
  ASSERT_TRUE(before);
  ASSERT_TRUE(file->punch_hole(1 << 20, 2 << 20));
  EXPECT_EQ(*file->size(), kLen);
  EXPECT_EQ(read_back(*file, 1 << 20, 2 << 20), std::vector<std::uint8_t>(2 << 20, 0));
  EXPECT_EQ(read_back(*file, 0, 1 << 20), std::vector<std::uint8_t>(1 << 20, 0xAB));
  EXPECT_EQ(read_back(*file, 3 << 20, 1 << 20), std::vector<std::uint8_t>(1 << 20, 0xAB));
  auto after = allocated_bytes(path_);
  ASSERT_TRUE(after);
  EXPECT_LE(*after, *before);           // freed where the file system can punch holes
  EXPECT_TRUE(file->punch_hole(0, 0));  // empty range: nothing to do
  EXPECT_EQ(*file->size(), kLen);
}

TEST_F(PosixFileTest, ReadOnlyFileRefusesChanges) {
  ASSERT_TRUE(create());
  auto file = open({});
  ASSERT_TRUE(file);
  std::uint8_t b[1] = {1};
  auto w = file->write_at(0, b);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code(), ErrorCode::kReadOnly);
  EXPECT_EQ(file->truncate(10).error().code(), ErrorCode::kReadOnly);
  EXPECT_EQ(file->punch_hole(0, 10).error().code(), ErrorCode::kReadOnly);
  EXPECT_EQ(*file->size(), 0u);
}

TEST_F(PosixFileTest, CreateRefusesExistingUnlessTruncating) {
  auto file = create();
  ASSERT_TRUE(file);
  ASSERT_TRUE(file->write_at(0, pattern(10, 0)));
  file.reset();
  auto again = open_posix_file(path_, {.writable = true, .create = true});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kIo);
  EXPECT_EQ(again.error().sys_errno(), EEXIST);
  EXPECT_EQ(again.error().message(), "cannot open '" + path_ + "'");
  auto truncated = open({.writable = true, .create = true, .truncate_existing = true});
  ASSERT_TRUE(truncated);
  EXPECT_EQ(*truncated->size(), 0u);
}

TEST_F(PosixFileTest, OpenErrors) {
  auto missing = open_posix_file(dir_ + "/missing", {});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kIo);
  EXPECT_EQ(missing.error().sys_errno(), ENOENT);
  EXPECT_NE(missing.error().to_string().find("No such file or directory"), std::string::npos);
  auto dir = open_posix_file(dir_, {});
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(dir.error().sys_errno(), EISDIR);
  EXPECT_EQ(dir.error().message(), "'" + dir_ + "' is a directory");
  auto alloc = allocated_bytes(dir_ + "/missing");
  ASSERT_FALSE(alloc);
  EXPECT_EQ(alloc.error().sys_errno(), ENOENT);
}

}  // namespace
}  // namespace vhdx
