#include "format/region_table.h"

#include <gtest/gtest.h>

#include <vector>

#include "base/crc32c.h"
#include "base/endian.h"
#include "format/constants.h"
#include "format/test_util.h"

namespace vhdx::format {
namespace {

using testing::describe;
using testing::guid;

const Guid kOtherRegion = guid("01020304-0506-0708-090a-0b0c0d0e0f10");

RegionTable sample_table() {
  RegionTable t;
  t.entries.push_back({kBatRegionGuid, 3 * kMiB, static_cast<std::uint32_t>(kMiB), true});
  t.entries.push_back({kMetadataRegionGuid, 2 * kMiB, static_cast<std::uint32_t>(kMiB), true});
  t.entries.push_back({kOtherRegion, 8 * kMiB, static_cast<std::uint32_t>(4 * kMiB), false});
  return t;
}

std::vector<std::uint8_t> encoded(const RegionTable& t) {
  std::vector<std::uint8_t> bytes(kRegionTableSize, 0xEE);
  encode_region_table(t, bytes);
  return bytes;
}

void reseal(std::vector<std::uint8_t>& bytes) {
  store_le32(bytes, 4, crc32c_with_zeroed_field(bytes, 4));
}

// A table with one entry whose fields are written raw (bypassing the encoder's types).
std::vector<std::uint8_t> one_entry(const Guid& g, std::uint64_t offset, std::uint32_t length) {
  RegionTable t;
  t.entries.push_back({g, offset, length, true});
  return encoded(t);
}

TEST(RegionTable, GoldenBytes) {
  std::vector<std::uint8_t> expected(kRegionTableSize, 0);
  testing::put_bytes(expected, 0, {'r', 'e', 'g', 'i'});
  testing::put_bytes(expected, 8, {3, 0, 0, 0});  // entry count; 12..15 reserved
  // Entry 0 at 16: BAT GUID bytes from the §5 table, offset 3 MiB, length 1 MiB, required.
  testing::put_bytes(expected, 16,
                     {0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6, 0x00, 0x42, 0x9D, 0x64, 0x11, 0x5E, 0x9B,
                      0xFD, 0x4A, 0x08});
  testing::put_bytes(expected, 32, {0x00, 0x00, 0x30, 0x00, 0, 0, 0, 0});
  testing::put_bytes(expected, 40, {0x00, 0x00, 0x10, 0x00});
  testing::put_bytes(expected, 44, {1, 0, 0, 0});
  // Entry 1 at 48: metadata.
  testing::put_bytes(expected, 48,
                     {0x06, 0xA2, 0x7C, 0x8B, 0x90, 0x47, 0x9A, 0x4B, 0xB8, 0xFE, 0x57, 0x5F, 0x05,
                      0x0F, 0x88, 0x6E});
  testing::put_bytes(expected, 64, {0x00, 0x00, 0x20, 0x00, 0, 0, 0, 0});
  testing::put_bytes(expected, 72, {0x00, 0x00, 0x10, 0x00});
  testing::put_bytes(expected, 76, {1, 0, 0, 0});
  // Entry 2 at 80: an optional unknown region, 4 MiB at 8 MiB.
  testing::put_bytes(expected, 80,
                     {0x04, 0x03, 0x02, 0x01, 0x06, 0x05, 0x08, 0x07, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
                      0x0e, 0x0f, 0x10});
  testing::put_bytes(expected, 96, {0x00, 0x00, 0x80, 0x00, 0, 0, 0, 0});
  testing::put_bytes(expected, 104, {0x00, 0x00, 0x40, 0x00});
  testing::put_bytes(expected, 108, {0, 0, 0, 0});
  testing::put_le(expected, 4, crc32c(expected), 4);
  EXPECT_EQ(encoded(sample_table()), expected);
}

TEST(RegionTable, RoundTrip) {
  RegionTable t = sample_table();
  auto decoded = decode_region_table(encoded(t));
  ASSERT_TRUE(decoded) << describe(decoded);
  ASSERT_EQ(decoded->entries.size(), t.entries.size());
  for (std::size_t i = 0; i < t.entries.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(decoded->entries[i].guid, t.entries[i].guid);
    EXPECT_EQ(decoded->entries[i].file_offset, t.entries[i].file_offset);
    EXPECT_EQ(decoded->entries[i].length, t.entries[i].length);
    EXPECT_EQ(decoded->entries[i].required, t.entries[i].required);
  }
}

TEST(RegionTable, EmptyTableDecodes) {
  auto decoded = decode_region_table(encoded(RegionTable{}));
  ASSERT_TRUE(decoded) << describe(decoded);
  EXPECT_TRUE(decoded->entries.empty());
}

TEST(RegionTable, MaximumEntryCount) {
  RegionTable t;
  for (std::uint32_t i = 0; i < kMaxRegionEntries; ++i) {
    std::array<std::uint8_t, 16> id{};
    store_le32(id, 0, i + 1);
    t.entries.push_back(
        {Guid::from_bytes(id), (i + 1) * kMiB, static_cast<std::uint32_t>(kMiB), false});
  }
  auto decoded = decode_region_table(encoded(t));
  ASSERT_TRUE(decoded) << describe(decoded);
  EXPECT_EQ(decoded->entries.size(), 2047u);
  EXPECT_EQ(decoded->entries[2046].file_offset, 2047 * kMiB);
}

TEST(RegionTable, RequiredUsesBit0Only) {
  auto bytes = encoded(sample_table());
  store_le32(bytes, 16 + 28, 0xFFFFFFFEu);  // reserved bits set, bit 0 clear
  reseal(bytes);
  auto decoded = decode_region_table(bytes);
  ASSERT_TRUE(decoded) << describe(decoded);
  EXPECT_FALSE(decoded->entries[0].required);
}

TEST(RegionTable, RejectsTruncated) {
  auto bytes = encoded(sample_table());
  bytes.resize(kRegionTableSize - 1);
  EXPECT_FAILS(decode_region_table(bytes), kCorrupt,
               "region table: truncated (65535 bytes, need 65536)");
}

TEST(RegionTable, RejectsBadSignature) {
  auto bytes = encoded(sample_table());
  bytes[3] = 'I';
  reseal(bytes);
  EXPECT_FAILS(decode_region_table(bytes), kCorrupt, "region table: signature is 'regI'");
}

TEST(RegionTable, RejectsChecksumMismatch) {
  auto bytes = encoded(sample_table());
  bytes[65535] = 1;  // the checksum covers the whole 64 KiB
  EXPECT_FAILS(decode_region_table(bytes), kCorrupt, "region table: checksum mismatch (stored 0x");
}

TEST(RegionTable, RejectsTooManyEntries) {
  auto bytes = encoded(sample_table());
  store_le32(bytes, 8, 2048);
  reseal(bytes);
  EXPECT_FAILS(decode_region_table(bytes), kCorrupt,
               "region table: entry count 2048 exceeds the maximum of 2047");
  store_le32(bytes, 8, 0xFFFFFFFFu);
  reseal(bytes);
  EXPECT_FAILS(decode_region_table(bytes), kCorrupt, "entry count 4294967295");
}

TEST(RegionTable, RejectsMisalignedOffset) {
  EXPECT_FAILS(decode_region_table(one_entry(kBatRegionGuid, 3 * kMiB + 512, kMiB)), kCorrupt,
               "region table: entry 0 (BAT): file offset 0x300200 is not a multiple of 1 MiB");
}

TEST(RegionTable, RejectsOffsetInsideHeaderSection) {
  EXPECT_FAILS(decode_region_table(one_entry(kMetadataRegionGuid, 0, kMiB)), kCorrupt,
               "entry 0 (metadata): file offset 0x0 lies inside the header section");
}

TEST(RegionTable, RejectsZeroLength) {
  EXPECT_FAILS(decode_region_table(one_entry(kBatRegionGuid, kMiB, 0)), kCorrupt,
               "entry 0 (BAT): length is 0");
}

TEST(RegionTable, RejectsMisalignedLength) {
  EXPECT_FAILS(decode_region_table(one_entry(kOtherRegion, kMiB, kMiB + 4096)), kCorrupt,
               "entry 0 (region 01020304-0506-0708-090a-0b0c0d0e0f10): length 0x101000 is not a "
               "multiple of 1 MiB");
}

TEST(RegionTable, RejectsEndPast2To64) {
  EXPECT_FAILS(decode_region_table(one_entry(kBatRegionGuid, 0xFFFFFFFFFFF00000ull, 2 * kMiB)),
               kCorrupt, "file offset 0xfffffffffff00000 + length 0x200000 overflows");
}

TEST(RegionTable, RejectsDuplicateGuid) {
  RegionTable t = sample_table();
  t.entries[2].guid = kBatRegionGuid;
  EXPECT_FAILS(decode_region_table(encoded(t)), kCorrupt,
               "entry 2 (BAT): GUID 2dc27766-f623-4200-9d64-115e9bfd4a08 repeats entry 0");
}

TEST(RegionTable, RejectsOverlap) {
  RegionTable t = sample_table();
  t.entries[2].file_offset = 2 * kMiB;  // [2 MiB, 6 MiB) covers both regions
  EXPECT_FAILS(decode_region_table(encoded(t)), kCorrupt,
               "entry 2 (region 01020304-0506-0708-090a-0b0c0d0e0f10): [0x200000, +0x400000) "
               "overlaps entry 0 (BAT) [0x300000, +0x100000)");
  // Adjacent regions do not overlap.
  t.entries[2].file_offset = 4 * kMiB;
  EXPECT_TRUE(decode_region_table(encoded(t)));
}

TEST(KnownRegions, FindsBatAndMetadataIgnoringOptionalUnknown) {
  auto known = find_known_regions(sample_table());
  ASSERT_TRUE(known) << describe(known);
  EXPECT_EQ(known->bat.guid, kBatRegionGuid);
  EXPECT_EQ(known->bat.file_offset, 3 * kMiB);
  EXPECT_EQ(known->metadata.guid, kMetadataRegionGuid);
  EXPECT_EQ(known->metadata.file_offset, 2 * kMiB);
}

TEST(KnownRegions, RejectsUnknownRequiredRegionAsUnsupported) {
  RegionTable t = sample_table();
  t.entries[2].required = true;
  EXPECT_FAILS(find_known_regions(t), kUnsupported,
               "region table: entry 2 (region 01020304-0506-0708-090a-0b0c0d0e0f10): unknown "
               "region marked required");
}

TEST(KnownRegions, RejectsMissingBat) {
  RegionTable t = sample_table();
  t.entries.erase(t.entries.begin());
  EXPECT_FAILS(find_known_regions(t), kCorrupt,
               "region table: no BAT region (2dc27766-f623-4200-9d64-115e9bfd4a08)");
}

TEST(KnownRegions, RejectsMissingMetadata) {
  RegionTable t = sample_table();
  t.entries.erase(t.entries.begin() + 1);
  EXPECT_FAILS(find_known_regions(t), kCorrupt,
               "region table: no metadata region (8b7ca206-4790-4b9a-b8fe-575f050f886e)");
}

TEST(KnownRegions, RejectsRepeatedKnownRegion) {
  RegionTable t = sample_table();  // not from the decoder, so duplicates can reach it
  t.entries[2] = t.entries[1];
  EXPECT_FAILS(find_known_regions(t), kCorrupt,
               "entry 2 (metadata): region appears more than once");
}

}  // namespace
}  // namespace vhdx::format
