// Component tests of ops::convert_*_to_vhdx and convert_raw_to_raw: content read back through
// the engine equals the source byte for byte, and only non-zero blocks take space.
#include "ops/convert_vhdx.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "format/constants.h"
#include "image/test_image.h"
#include "io/mem_file.h"
#include "io/posix_file.h"

namespace vhdx::ops {
namespace {

using format::kMiB;
using image::testing::TestImage;

// Bytes that differ at every position and per seed.
std::vector<std::uint8_t> pattern_bytes(std::uint32_t seed, std::uint64_t length) {
  std::vector<std::uint8_t> out(length);
  for (std::uint64_t i = 0; i < length; ++i)
    out[i] = static_cast<std::uint8_t>((i * 131 + seed * 977 + (i >> 8)) % 251 + 1);
  return out;
}

class ConvertVhdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "vhdx-cv-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  static std::unique_ptr<image::Engine> open(const std::string& p) {
    auto file = open_posix_file(p, {});
    EXPECT_TRUE(file) << file.error().to_string();
    if (!file) return nullptr;
    auto engine = image::Engine::open(std::move(*file), {});
    EXPECT_TRUE(engine) << engine.error().to_string();
    if (!engine) return nullptr;
    (*engine)->set_source_path(p);
    return std::move(*engine);
  }
  static std::vector<std::uint8_t> read_all(image::Engine& e) {
    std::vector<std::uint8_t> out(e.virtual_size());
    auto r = e.read(0, out);
    EXPECT_TRUE(r) << r.error().to_string();
    return out;
  }
  static std::vector<std::uint8_t> read_file(const std::string& p) {
    std::ifstream in(p, std::ios::binary | std::ios::ate);
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(in.tellg()));
    in.seekg(0);
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return bytes;
  }
  // A raw file with pattern data in some blocks, holes and explicit zero blocks elsewhere.
  // Returns the content.
  std::vector<std::uint8_t> make_raw(const std::string& p, std::uint64_t size) {
    EXPECT_GE(size, 4 * kMiB);  // block 3 holds data
    std::vector<std::uint8_t> content(size, 0);
    // Nonzero: block 0 (whole), a few bytes in block 3, the last bytes of the disk.
    auto a = pattern_bytes(1, kMiB);
    std::copy(a.begin(), a.end(), content.begin());
    auto b = pattern_bytes(2, 700);
    std::copy(b.begin(), b.end(), content.begin() + 3 * kMiB + 5000);
    auto c = pattern_bytes(3, 512);
    std::copy(c.begin(), c.end(), content.end() - 512);
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    // Zeros written explicitly into block 1 (allocated in the raw file, but all-zero).
    out.write(reinterpret_cast<const char*>(content.data()),
              static_cast<std::streamsize>(2 * kMiB));
    out.seekp(static_cast<std::streamoff>(3 * kMiB + 5000));
    out.write(reinterpret_cast<const char*>(b.data()), 700);
    out.seekp(static_cast<std::streamoff>(size - 512));
    out.write(reinterpret_cast<const char*>(c.data()), 512);
    return content;
  }

  std::string dir_;
};

TEST_F(ConvertVhdxTest, RawToDynamicRoundTripsAndStaysSparse) {
  const std::uint64_t size = 9 * kMiB + 512;  // a partial last block
  const auto content = make_raw(path("in.raw"), size);
  CreateParams params;
  params.block_size = kMiB;
  std::vector<std::uint64_t> seen;
  auto r = convert_raw_to_vhdx(path("in.raw"), path("out.vhdx"), params,
                               [&](std::uint64_t done, std::uint64_t total) {
                                 EXPECT_EQ(total, size);
                                 seen.push_back(done);
                               });
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front(), 0u);
  EXPECT_EQ(seen.back(), size);
  auto e = open(path("out.vhdx"));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->info().virtual_size, size);
  EXPECT_EQ(read_all(*e), content);
  // Blocks 0, 3 and 9 hold non-zero bytes; the explicit zeros of block 1 are not stored.
  auto counts = e->count_blocks();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->fully_present, 3u);
  EXPECT_EQ(counts->not_present, 7u);
  EXPECT_EQ(e->info().file_size, 4 * kMiB + 3 * kMiB);
  auto m3 = e->lookup_block(3);
  ASSERT_TRUE(m3);
  EXPECT_EQ(m3->file_offset, 5 * kMiB);  // sequential: after block 0
}

TEST_F(ConvertVhdxTest, RawToFixedAllocatesEveryBlock) {
  const std::uint64_t size = 6 * kMiB;
  const auto content = make_raw(path("in.raw"), size);
  CreateParams params;
  params.type = DiskType::kFixed;
  params.block_size = 2 * kMiB;
  params.logical_sector_size = 4096;
  ASSERT_TRUE(convert_raw_to_vhdx(path("in.raw"), path("out.vhdx"), params, nullptr));
  auto e = open(path("out.vhdx"));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->info().type, DiskType::kFixed);
  EXPECT_EQ(e->info().logical_sector_size, 4096u);
  EXPECT_EQ(read_all(*e), content);
  auto counts = e->count_blocks();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->fully_present, 3u);
}

TEST_F(ConvertVhdxTest, OddRawSizeRoundsUpToTheSector) {
  std::vector<std::uint8_t> bytes = pattern_bytes(9, 1000);
  std::ofstream(path("odd.raw"), std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), 1000);
  ASSERT_TRUE(convert_raw_to_vhdx(path("odd.raw"), path("odd.vhdx"), CreateParams{}, nullptr));
  auto e = open(path("odd.vhdx"));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->info().virtual_size, 1024u);
  auto all = read_all(*e);
  bytes.resize(1024, 0);
  EXPECT_EQ(all, bytes);
}

TEST_F(ConvertVhdxTest, ImageToVhdxKeepsContent) {
  TestImage t({.block_size = 2 * kMiB, .virtual_size = 12 * kMiB, .logical_sector_size = 4096});
  t.allocate(0, 1);
  t.set_payload(1, format::PayloadState::kZero);
  const std::uint64_t zeros = t.allocate(2, 2);  // allocated, but all zero
  std::fill_n(t.bytes().begin() + static_cast<std::ptrdiff_t>(zeros), 2 * kMiB, 0);
  const std::uint64_t late = t.allocate(4, 4);  // data only after 1 MiB + 4 KiB of zeros
  std::fill_n(t.bytes().begin() + static_cast<std::ptrdiff_t>(late), kMiB + 4096, 0);
  const std::uint64_t stale = t.allocate(5, 5);  // UNMAPPED over stale bytes: reads as zeros
  t.set_payload(5, format::PayloadState::kUnmapped, stale);
  const std::string src_path = path("src.vhdx");
  std::ofstream(src_path, std::ios::binary)
      .write(reinterpret_cast<const char*>(t.bytes_view().data()),
             static_cast<std::streamsize>(t.bytes_view().size()));
  auto src = open(src_path);
  ASSERT_NE(src, nullptr);
  ASSERT_EQ(read_all(*src), t.expected_disk());
  CreateParams params;
  params.block_size = kMiB;  // a different block size than the source
  params.logical_sector_size = 4096;
  params.physical_sector_size = 4096;
  auto r = convert_image_to_vhdx(*src, path("dst.vhdx"), params, nullptr);
  ASSERT_TRUE(r) << r.error().to_string();
  auto dst = open(path("dst.vhdx"));
  ASSERT_NE(dst, nullptr);
  EXPECT_EQ(read_all(*dst), t.expected_disk());
  EXPECT_EQ(dst->info().block_size, kMiB);
  auto counts = dst->count_blocks();
  ASSERT_TRUE(counts);
  // Source block 0 is two 1 MiB blocks of data; block 4 keeps data only in its second half.
  EXPECT_EQ(counts->fully_present, 3u);
  EXPECT_EQ(counts->not_present, 9u);
  // Converting onto the source itself is refused before anything is touched.
  auto self = convert_image_to_vhdx(*src, src_path, params, nullptr);
  ASSERT_FALSE(self);
  EXPECT_EQ(self.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(std::filesystem::file_size(src_path), t.bytes_view().size());
}

TEST_F(ConvertVhdxTest, RawToRawCopiesAndKeepsHoles) {
  const std::uint64_t size = 9 * kMiB + 512;
  const auto content = make_raw(path("in.raw"), size);
  RawConvertOptions options;
  ASSERT_TRUE(convert_raw_to_raw(path("in.raw"), path("out.raw"), options));
  EXPECT_EQ(read_file(path("out.raw")), content);
  struct stat st {};
  ASSERT_EQ(::stat(path("out.raw").c_str(), &st), 0);
  // 1 MiB of data, 700 bytes and 512 bytes: well under 2 MiB, although block 1 held zeros.
  EXPECT_LT(static_cast<std::uint64_t>(st.st_blocks) * 512, 2 * kMiB);
  options.sparse = false;
  ASSERT_TRUE(convert_raw_to_raw(path("in.raw"), path("full.raw"), options));
  EXPECT_EQ(read_file(path("full.raw")), content);
  auto self = convert_raw_to_raw(path("in.raw"), path("in.raw"), options);
  ASSERT_FALSE(self);
  EXPECT_EQ(self.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(ConvertVhdxTest, ExistingOutputIsKeptUnlessOverwrite) {
  make_raw(path("in.raw"), 5 * kMiB);
  { std::ofstream(path("out.vhdx")) << "keep"; }
  auto r = convert_raw_to_vhdx(path("in.raw"), path("out.vhdx"), CreateParams{}, nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(std::filesystem::file_size(path("out.vhdx")), 4u);
  CreateParams params;
  params.overwrite = true;
  ASSERT_TRUE(convert_raw_to_vhdx(path("in.raw"), path("out.vhdx"), params, nullptr));
  EXPECT_NE(open(path("out.vhdx")), nullptr);
}

}  // namespace
}  // namespace vhdx::ops
