#include "format/bat.h"

#include <gtest/gtest.h>

#include "format/constants.h"
#include "format/test_util.h"

namespace vhdx::format {
namespace {

using testing::describe;

TEST(BatEntry, DecodesStateOffsetAndReservedBits) {
  BatEntry e = decode_bat_entry(0x0000000000300006ull);
  EXPECT_EQ(e.state, 6);
  EXPECT_EQ(e.file_offset, 3 * kMiB);
  EXPECT_FALSE(e.reserved_bits_set);
  e = decode_bat_entry(0xFFFFFFFFFFF00007ull);
  EXPECT_EQ(e.state, 7);
  EXPECT_EQ(e.file_offset, 0xFFFFFFFFFFF00000ull);
  EXPECT_FALSE(e.reserved_bits_set);
  e = decode_bat_entry(0x0000000000100008ull);  // bit 3
  EXPECT_EQ(e.state, 0);
  EXPECT_EQ(e.file_offset, kMiB);
  EXPECT_TRUE(e.reserved_bits_set);
  EXPECT_TRUE(decode_bat_entry(0x80000ull).reserved_bits_set);    // bit 19
  EXPECT_FALSE(decode_bat_entry(0x100000ull).reserved_bits_set);  // bit 20 is offset
}

TEST(BatEntry, EncodeGoldenAndRoundTrip) {
  EXPECT_EQ(encode_bat_entry(6, 4 * kMiB), 0x0000000000400006ull);
  EXPECT_EQ(encode_bat_entry(2, 0), 2u);
  // Bits outside the fields are dropped.
  EXPECT_EQ(encode_bat_entry(6, 4 * kMiB + 123), 0x0000000000400006ull);
  for (std::uint8_t state : {0, 1, 2, 3, 6, 7}) {
    for (std::uint64_t offset :
         {std::uint64_t{0}, kMiB, 64 * kTiB, std::uint64_t{0xFFFFFFFFFFF00000}}) {
      BatEntry e = decode_bat_entry(encode_bat_entry(state, offset));
      EXPECT_EQ(e.state, state);
      EXPECT_EQ(e.file_offset, offset);
      EXPECT_FALSE(e.reserved_bits_set);
    }
  }
}

TEST(BatEntry, PayloadStateValidity) {
  for (bool parent : {false, true}) {
    SCOPED_TRACE(parent);
    EXPECT_TRUE(is_valid_payload_state(0, parent));
    EXPECT_TRUE(is_valid_payload_state(1, parent));
    EXPECT_TRUE(is_valid_payload_state(2, parent));
    EXPECT_TRUE(is_valid_payload_state(3, parent));
    EXPECT_FALSE(is_valid_payload_state(4, parent));
    EXPECT_TRUE(is_valid_payload_state(5, parent));  // v0.95 UNMAPPED, read like 3
    EXPECT_TRUE(is_valid_payload_state(6, parent));
    EXPECT_FALSE(is_valid_payload_state(8, parent));
  }
  EXPECT_FALSE(is_valid_payload_state(7, false));  // PARTIALLY_PRESENT needs a parent
  EXPECT_TRUE(is_valid_payload_state(7, true));
}

TEST(BatEntry, BitmapStateValidity) {
  EXPECT_TRUE(is_valid_bitmap_state(0, false));
  EXPECT_TRUE(is_valid_bitmap_state(0, true));
  EXPECT_FALSE(is_valid_bitmap_state(6, false));
  EXPECT_TRUE(is_valid_bitmap_state(6, true));
  for (std::uint8_t s : {1, 2, 3, 4, 5, 7}) {
    EXPECT_FALSE(is_valid_bitmap_state(s, false));
    EXPECT_FALSE(is_valid_bitmap_state(s, true));
  }
}

TEST(BatGeometry, WindowsDynamicImage) {
  // dissect-dynamic: 10 MiB, 32 MiB blocks, 512-byte sectors: CR 128, one entry.
  auto g = compute_bat_geometry(32 * kMiB, 10 * kMiB, 512, false);
  ASSERT_TRUE(g) << describe(g);
  EXPECT_EQ(g->chunk_ratio, 128u);
  EXPECT_EQ(g->payload_blocks, 1u);
  EXPECT_EQ(g->sector_bitmap_blocks, 1u);
  EXPECT_EQ(g->total_entries, 1u);
  EXPECT_EQ(g->min_region_length(), kMiB);
  EXPECT_EQ(g->block_size, 32 * kMiB);
  EXPECT_EQ(g->virtual_size, 10 * kMiB);
  EXPECT_EQ(g->logical_sector_size, 512u);
}

TEST(BatGeometry, WindowsDifferencingImage) {
  // dissect-differencing: 8 GiB, 2 MiB blocks: CR 2048, 4096 payload blocks, 2 chunks, 4098
  // entries (corpus README).
  auto g = compute_bat_geometry(2 * kMiB, 8 * kGiB, 512, true);
  ASSERT_TRUE(g) << describe(g);
  EXPECT_EQ(g->chunk_ratio, 2048u);
  EXPECT_EQ(g->payload_blocks, 4096u);
  EXPECT_EQ(g->sector_bitmap_blocks, 2u);
  EXPECT_EQ(g->total_entries, 4098u);
  EXPECT_EQ(g->bitmap_entry_index(0), 2048u);
  EXPECT_EQ(g->bitmap_entry_index(1), 4097u);
  EXPECT_EQ(g->payload_entry_index(2047), 2047u);
  EXPECT_EQ(g->payload_entry_index(2048), 2049u);
  EXPECT_EQ(g->payload_entry_index(4095), 4096u);
}

TEST(BatGeometry, FixedAndDynamicEndWithLastPayloadEntry) {
  // 100 MiB in 1 MiB blocks, 512-byte sectors: CR 4096, 100 entries, no bitmap slot needed.
  auto g = compute_bat_geometry(kMiB, 100 * kMiB, 512, false);
  ASSERT_TRUE(g) << describe(g);
  EXPECT_EQ(g->chunk_ratio, 4096u);
  EXPECT_EQ(g->total_entries, 100u);
  // Exactly CR + 1 payload blocks: one bitmap slot sits between them.
  g = compute_bat_geometry(kMiB, 4097 * kMiB, 512, false);
  ASSERT_TRUE(g) << describe(g);
  EXPECT_EQ(g->payload_blocks, 4097u);
  EXPECT_EQ(g->sector_bitmap_blocks, 2u);
  EXPECT_EQ(g->total_entries, 4098u);
  EXPECT_EQ(g->payload_entry_index(4096), 4097u);
  // Exactly CR blocks: the chunk's bitmap slot is not part of the table.
  g = compute_bat_geometry(kMiB, 4096 * kMiB, 512, false);
  ASSERT_TRUE(g) << describe(g);
  EXPECT_EQ(g->total_entries, 4096u);
  // And differencing of the same size needs it.
  g = compute_bat_geometry(kMiB, 4096 * kMiB, 512, true);
  ASSERT_TRUE(g) << describe(g);
  EXPECT_EQ(g->total_entries, 4097u);
}

TEST(BatGeometry, PartialLastBlock) {
  auto g = compute_bat_geometry(2 * kMiB, 5 * kMiB + 512, 512, false);
  ASSERT_TRUE(g) << describe(g);
  EXPECT_EQ(g->payload_blocks, 3u);
  EXPECT_EQ(g->total_entries, 3u);
}

TEST(BatGeometry, ChunkRatioExtremes) {
  auto g = compute_bat_geometry(256 * kMiB, kGiB, 512, false);
  ASSERT_TRUE(g) << describe(g);
  EXPECT_EQ(g->chunk_ratio, 16u);  // 4 GiB chunk / 256 MiB
  g = compute_bat_geometry(kMiB, kGiB, 4096, false);
  ASSERT_TRUE(g) << describe(g);
  EXPECT_EQ(g->chunk_ratio, 32768u);  // 32 GiB chunk / 1 MiB
  g = compute_bat_geometry(32 * kMiB, kGiB, 4096, false);
  ASSERT_TRUE(g) << describe(g);
  EXPECT_EQ(g->chunk_ratio, 1024u);
}

TEST(BatGeometry, LargestDiskRegionLength) {
  // 64 TiB in 1 MiB blocks: 2^26 payload blocks, CR 4096, 2^14 chunks.
  auto g = compute_bat_geometry(kMiB, 64 * kTiB, 512, false);
  ASSERT_TRUE(g) << describe(g);
  EXPECT_EQ(g->payload_blocks, 67108864u);
  EXPECT_EQ(g->total_entries, 67108864u + (67108864u - 1) / 4096);  // 67125247
  EXPECT_EQ(g->min_region_length(), 513 * kMiB);                    // 537001976 bytes rounded up
  g = compute_bat_geometry(kMiB, 64 * kTiB, 512, true);
  ASSERT_TRUE(g) << describe(g);
  EXPECT_EQ(g->total_entries, 16384u * 4097u);
  EXPECT_EQ(g->min_region_length(), 513 * kMiB);
}

TEST(BatGeometry, MinRegionLengthRoundsUp) {
  BatGeometry g;
  g.total_entries = 131072;  // exactly 1 MiB of entries
  EXPECT_EQ(g.min_region_length(), kMiB);
  g.total_entries = 131073;
  EXPECT_EQ(g.min_region_length(), 2 * kMiB);
}

TEST(BatGeometry, RejectsBlockSizeNotPowerOfTwo) {
  EXPECT_FAILS(compute_bat_geometry(3 * kMiB, kGiB, 512, false), kCorrupt,
               "BAT geometry: block size 0x300000 is not a power of two from 1 MiB to 256 MiB");
}

TEST(BatGeometry, RejectsBlockSizeOutOfRange) {
  EXPECT_FAILS(compute_bat_geometry(kMiB / 2, kGiB, 512, false), kCorrupt, "block size 0x80000");
  EXPECT_FAILS(compute_bat_geometry(512 * kMiB, kGiB, 512, false), kCorrupt,
               "block size 0x20000000");
  EXPECT_FAILS(compute_bat_geometry(0, kGiB, 512, false), kCorrupt, "block size 0x0");
}

TEST(BatGeometry, RejectsSectorSizeAsUnsupported) {
  EXPECT_FAILS(compute_bat_geometry(kMiB, kGiB, 1024, false), kUnsupported,
               "BAT geometry: logical sector size 1024 is not supported");
}

TEST(BatGeometry, RejectsZeroVirtualSize) {
  EXPECT_FAILS(compute_bat_geometry(kMiB, 0, 512, false), kCorrupt,
               "BAT geometry: virtual size is 0");
}

TEST(BatGeometry, RejectsVirtualSizeNotSectorMultiple) {
  EXPECT_FAILS(compute_bat_geometry(kMiB, kGiB + 512, 4096, false), kCorrupt,
               "BAT geometry: virtual size 0x40000200 is not a multiple of the logical sector "
               "size 4096");
}

TEST(BatGeometry, RejectsVirtualSizeAbove64TiBAsUnsupported) {
  EXPECT_FAILS(compute_bat_geometry(kMiB, 64 * kTiB + 512, 512, false), kUnsupported,
               "BAT geometry: virtual size 0x400000000200 exceeds 64 TiB");
  EXPECT_FAILS(compute_bat_geometry(kMiB, ~std::uint64_t{0} - 511, 512, false), kUnsupported,
               "exceeds 64 TiB");
}

}  // namespace
}  // namespace vhdx::format
