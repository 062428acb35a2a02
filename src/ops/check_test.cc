// Component tests of ops::check_image on images from the test builder: clean images, and each
// kind of damage reported as a corruption naming the structure, and leaked space counted.
#include "ops/check.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "base/endian.h"
#include "format/bat.h"
#include "format/constants.h"
#include "format/region_table.h"
#include "image/test_image.h"
#include "io/mem_file.h"
#include "io/posix_file.h"
#include "ops/create.h"

namespace vhdx::ops {
namespace {

using format::kMiB;
using image::testing::TestImage;

constexpr auto kPresent = static_cast<std::uint8_t>(format::PayloadState::kFullyPresent);

CheckReport check_bytes(std::vector<std::uint8_t> bytes) {
  auto report = check_image(std::make_unique<MemFile>(std::move(bytes), false));
  EXPECT_TRUE(report) << report.error().to_string();
  return report ? *report : CheckReport{};
}

bool mentions(const CheckReport& r, const std::string& text) {
  for (const auto& m : r.corruptions)
    if (m.find(text) != std::string::npos) return true;
  return false;
}

std::string all(const CheckReport& r) {
  std::string s;
  for (const auto& m : r.corruptions) s += m + "\n";
  for (const auto& m : r.check_errors) s += "check error: " + m + "\n";
  return s;
}

// Dynamic, 8 blocks of 1 MiB, blocks 0, 2 and 3 allocated at 4, 5 and 6 MiB (file: 7 MiB).
struct Dynamic {
  TestImage t{{.block_size = kMiB, .virtual_size = 8 * kMiB}};
  std::uint64_t offsets[4] = {};
  Dynamic() {
    offsets[0] = t.allocate(0, 1);
    offsets[2] = t.allocate(2, 2);
    offsets[3] = t.allocate(3, 3);
  }
  std::uint64_t bat_entry(std::uint64_t block) const {
    return image::testing::kBatOffset + 8 * t.geometry().payload_entry_index(block);
  }
};

TEST(CheckTest, CleanDynamicAndFixedImages) {
  Dynamic d;
  auto bytes = d.t.bytes_view();
  CheckReport r = check_bytes(bytes);
  EXPECT_EQ(r.corruption_count, 0u) << all(r);
  EXPECT_TRUE(r.check_errors.empty()) << all(r);
  EXPECT_EQ(r.leaked_bytes, 0u);
  EXPECT_EQ(r.total_blocks, 8u);
  EXPECT_EQ(r.allocated_blocks, 3u);
  EXPECT_EQ(r.file_size, 7 * kMiB);
  EXPECT_EQ(r.image_end_offset, 7 * kMiB);

  TestImage fixed({.block_size = kMiB, .virtual_size = 5 * kMiB + 512, .fixed = true});
  for (std::uint64_t b = 0; b < 6; ++b) fixed.allocate(b, static_cast<std::uint8_t>(b));
  r = check_bytes(fixed.bytes_view());
  EXPECT_EQ(r.corruption_count, 0u) << all(r);
  EXPECT_EQ(r.allocated_blocks, 6u);
  EXPECT_EQ(r.leaked_bytes, 0u);
}

TEST(CheckTest, CleanOnCreateOutput) {
  const auto dir = std::filesystem::temp_directory_path() / "vhdx-check-create";
  std::filesystem::create_directories(dir);
  for (DiskType type : {DiskType::kDynamic, DiskType::kFixed}) {
    CreateParams params;
    params.type = type;
    params.virtual_size = 40 * kMiB + 4096;
    params.block_size = 4 * kMiB;
    params.overwrite = true;
    const std::string p = (dir / "c.vhdx").string();
    ASSERT_TRUE(create_image(p, params));
    auto file = open_posix_file(p, {});
    ASSERT_TRUE(file);
    auto r = check_image(std::move(*file));
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(r->corruption_count, 0u) << all(*r);
    EXPECT_EQ(r->leaked_bytes, 0u);
    EXPECT_EQ(r->total_blocks, 11u);
    EXPECT_EQ(r->allocated_blocks, type == DiskType::kFixed ? 11u : 0u);
  }
  std::filesystem::remove_all(dir);
}

TEST(CheckTest, TwoEntriesSharingABlock) {
  Dynamic d;
  auto bytes = d.t.bytes_view();
  // Block 3's entry points at block 2's space.
  store_le64(bytes, d.bat_entry(3), format::encode_bat_entry(kPresent, d.offsets[2]));
  CheckReport r = check_bytes(bytes);
  EXPECT_EQ(r.corruption_count, 1u) << all(r);
  EXPECT_TRUE(mentions(r, "payload block 3 overlaps payload block 2")) << all(r);
  // Block 3's old space (the last 1 MiB, at 6 MiB) is now referenced by nothing, but lies
  // below 8 MiB (4 MiB past the structures), where QEMU starts payload: not leaked.
  EXPECT_EQ(r.image_end_offset, d.offsets[3]);
  EXPECT_EQ(r.leaked_bytes, 0u);
}

TEST(CheckTest, EntryPastTheEndOfTheFile) {
  Dynamic d;
  auto bytes = d.t.bytes_view();
  store_le64(bytes, d.bat_entry(5), format::encode_bat_entry(kPresent, 64 * kMiB));
  CheckReport r = check_bytes(bytes);
  EXPECT_EQ(r.corruption_count, 1u) << all(r);
  EXPECT_TRUE(mentions(r, "extends past the end of the file")) << all(r);
  EXPECT_TRUE(mentions(r, "BAT: ")) << all(r);
}

TEST(CheckTest, EntryIntoTheHeaderSectionOrMetadata) {
  Dynamic d;
  auto bytes = d.t.bytes_view();
  store_le64(bytes, d.bat_entry(5), format::encode_bat_entry(kPresent, 0));
  store_le64(bytes, d.bat_entry(6),
             format::encode_bat_entry(kPresent, image::testing::kMetadataOffset));
  CheckReport r = check_bytes(bytes);
  EXPECT_EQ(r.corruption_count, 2u) << all(r);
  EXPECT_TRUE(mentions(r, "header section")) << all(r);
  EXPECT_TRUE(mentions(r, "metadata region")) << all(r);
}

TEST(CheckTest, InvalidStatesForTheDiskType) {
  Dynamic d;
  auto bytes = d.t.bytes_view();
  // PARTIALLY_PRESENT in an image without a parent.
  store_le64(bytes, d.bat_entry(7), format::encode_bat_entry(7, 0));
  CheckReport r = check_bytes(bytes);
  EXPECT_EQ(r.corruption_count, 1u) << all(r);
  EXPECT_TRUE(mentions(r, "state 7")) << all(r);
  // A present sector bitmap in a dynamic image (chunk ratio 16: 256 MiB blocks).
  TestImage big({.block_size = 256 * kMiB, .virtual_size = 17ull * 256 * kMiB});
  big.set_entry(big.geometry().bitmap_entry_index(0), format::encode_bat_entry(6, 4 * kMiB));
  big.bytes().resize(5 * kMiB);
  r = check_bytes(big.bytes_view());
  EXPECT_EQ(r.corruption_count, 1u) << all(r);
  EXPECT_TRUE(mentions(r, "sector bitmap of chunk 0")) << all(r);
}

TEST(CheckTest, TornHeaderAndDamagedRegionTableCopy) {
  Dynamic d;
  auto bytes = d.t.bytes_view();
  bytes[format::kHeaderOffsets[1] + 100] ^= 0xFF;  // checksum no longer matches: a torn write
  CheckReport r = check_bytes(bytes);
  EXPECT_EQ(r.corruption_count, 1u) << all(r);
  EXPECT_TRUE(mentions(r, "header 2: ")) << all(r);
  EXPECT_TRUE(mentions(r, "header 1 is used")) << all(r);

  bytes = d.t.bytes_view();
  bytes[format::kRegionTableOffsets[1] + 40] ^= 0x01;
  r = check_bytes(bytes);
  EXPECT_EQ(r.corruption_count, 1u) << all(r);
  EXPECT_TRUE(mentions(r, "region table 2: ")) << all(r);

  // Both copies valid but different: the second lists the metadata region elsewhere.
  bytes = d.t.bytes_view();
  format::RegionTable table;
  table.entries = {
      {format::kBatRegionGuid, image::testing::kBatOffset, static_cast<std::uint32_t>(kMiB), true},
      {format::kMetadataRegionGuid, 10 * kMiB, static_cast<std::uint32_t>(kMiB), true}};
  format::encode_region_table(
      table, std::span(bytes).subspan(format::kRegionTableOffsets[1], format::kRegionTableSize));
  r = check_bytes(bytes);
  EXPECT_TRUE(mentions(r, "the two copies differ")) << all(r);
}

TEST(CheckTest, UnopenableCorruptImageIsOneCorruption) {
  Dynamic d;
  auto bytes = d.t.bytes_view();
  // Metadata signature gone: the engine refuses the image as corrupt.
  bytes[image::testing::kMetadataOffset] = 'X';
  CheckReport r = check_bytes(bytes);
  EXPECT_EQ(r.corruption_count, 1u) << all(r);
  EXPECT_TRUE(r.check_errors.empty());
}

TEST(CheckTest, NotVhdxIsAnError) {
  auto r = check_image(std::make_unique<MemFile>(std::vector<std::uint8_t>(2 * kMiB, 0), false));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kNotVhdx);
}

TEST(CheckTest, LeakedSpaceAtTheEnd) {
  Dynamic d;
  auto bytes = d.t.bytes_view();
  ASSERT_EQ(bytes.size(), 7 * kMiB);
  bytes.resize(10 * kMiB + 4096, 0);
  CheckReport r = check_bytes(bytes);
  EXPECT_EQ(r.corruption_count, 0u) << all(r);
  // Counted from 8 MiB, 4 MiB past the structures: where QEMU starts payload.
  EXPECT_EQ(r.leaked_bytes, 2 * kMiB + 4096);
  EXPECT_EQ(r.leaked_clusters, 3u);
  EXPECT_EQ(r.image_end_offset, 7 * kMiB);

  // A fixed image (LeaveBlockAllocated) reserves its whole disk after that.
  TestImage fixed({.block_size = kMiB, .virtual_size = 5 * kMiB, .fixed = true});
  fixed.bytes().resize(8 * kMiB);
  for (std::uint64_t b = 0; b < 5; ++b) fixed.allocate(b, 9);
  ASSERT_EQ(fixed.bytes_view().size(), 13 * kMiB);
  for (std::uint64_t b = 0; b < 5; ++b) fixed.set_payload(b, format::PayloadState::kZero);
  r = check_bytes(fixed.bytes_view());
  EXPECT_EQ(r.corruption_count, 0u) << all(r);
  EXPECT_EQ(r.leaked_bytes, 0u);
  bytes = fixed.bytes_view();
  bytes.resize(14 * kMiB);
  r = check_bytes(bytes);
  EXPECT_EQ(r.leaked_bytes, kMiB);
}

}  // namespace
}  // namespace vhdx::ops
