// Component tests of image::Engine on small images built in memory with the format encoders.
#include "image/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "image/test_image.h"

namespace vhdx::image {
namespace {

using format::kMiB;
using testing::kBatOffset;
using testing::kLogOffset;
using testing::kMetadataOffset;
using testing::TestImage;

std::vector<std::uint8_t> read_range(Engine& engine, std::uint64_t offset, std::size_t length) {
  std::vector<std::uint8_t> out(length, 0xEE);
  auto r = engine.read(offset, out);
  EXPECT_TRUE(r) << r.error().to_string();
  return out;
}

void expect_error(const Result<void>& r, ErrorCode code, const std::string& needle) {
  ASSERT_FALSE(r) << "expected " << error_code_name(code);
  EXPECT_EQ(r.error().code(), code) << r.error().to_string();
  EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
}

template <typename T>
void expect_error(const Result<T>& r, ErrorCode code, const std::string& needle) {
  ASSERT_FALSE(r) << "expected " << error_code_name(code);
  EXPECT_EQ(r.error().code(), code) << r.error().to_string();
  EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
}

// 4 blocks of 1 MiB over 3.5 MiB: block 0 data, 1 ZERO, 2 data placed before block 0 in the
// file, 3 (partial) data.
TestImage mixed_image() {
  TestImage t({.block_size = 1 * kMiB, .virtual_size = 3 * kMiB + 512 * 1024});
  t.allocate(2, 0x20);
  t.allocate(0, 0x01);
  t.set_payload(1, format::PayloadState::kZero);
  t.allocate(3, 0x30);
  return t;
}

TEST(Engine, InfoOfABuiltImage) {
  TestImage t = mixed_image();
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);
  const ImageInfo& info = engine->info();
  EXPECT_EQ(info.creator, "libvhdx engine test");
  EXPECT_EQ(info.type, DiskType::kDynamic);
  EXPECT_EQ(info.virtual_size, 3 * kMiB + 512 * 1024);
  EXPECT_EQ(info.block_size, kMiB);
  EXPECT_EQ(info.logical_sector_size, 512u);
  EXPECT_EQ(info.physical_sector_size, 4096u);
  EXPECT_EQ(info.current_header, 1);
  EXPECT_EQ(info.headers[0].sequence_number, 10u);
  EXPECT_EQ(info.headers[1].sequence_number, 11u);
  EXPECT_TRUE(info.headers[0].valid && info.headers[1].valid);
  EXPECT_EQ(info.region_table_used, 0);
  ASSERT_EQ(info.regions.size(), 2u);
  EXPECT_EQ(info.regions[0].name, "BAT");
  EXPECT_EQ(info.regions[0].file_offset, kBatOffset);
  EXPECT_EQ(info.regions[1].name, "metadata");
  ASSERT_EQ(info.metadata_items.size(), 5u);
  EXPECT_EQ(info.metadata_items[0].name, "file-parameters");
  EXPECT_EQ(info.metadata_items[4].name, "virtual-disk-id");
  EXPECT_EQ(info.virtual_disk_id.to_string(), "01234567-89ab-cdef-0123-456789abcdef");
  EXPECT_EQ(info.chunk_ratio, 4096u);
  EXPECT_EQ(info.payload_blocks, 4u);
  EXPECT_EQ(info.bat_entries, 4u);
  EXPECT_EQ(info.file_size, t.bytes().size());
  EXPECT_EQ(info.log_state, LogState::kEmpty);
  auto counts = engine->count_blocks();
  ASSERT_TRUE(counts) << counts.error().to_string();
  EXPECT_EQ(counts->fully_present, 3u);
  EXPECT_EQ(counts->zero, 1u);
  EXPECT_EQ(counts->not_present, 0u);
}

TEST(Engine, ReadsAcrossBlockBoundariesMatchTheModel) {
  TestImage t = mixed_image();
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);
  const auto disk = t.expected_disk();
  EXPECT_EQ(read_range(*engine, 0, disk.size()), disk);
  std::mt19937_64 rng(42);
  for (int i = 0; i < 500; ++i) {
    const std::uint64_t off = rng() % disk.size();
    const std::size_t len = static_cast<std::size_t>(rng() % (disk.size() - off + 1));
    auto got = read_range(*engine, off, len);
    ASSERT_TRUE(std::equal(got.begin(), got.end(), disk.begin() + static_cast<std::ptrdiff_t>(off)))
        << "read of " << len << " at " << off;
  }
  // Exactly the partial last block.
  auto tail = read_range(*engine, 3 * kMiB, 512 * 1024);
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), disk.begin() + 3 * kMiB));
}

TEST(Engine, OutOfRangeReads) {
  TestImage t = mixed_image();
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);
  std::vector<std::uint8_t> buf(2);
  const std::uint64_t size = engine->virtual_size();
  expect_error(engine->read(size - 1, buf), ErrorCode::kOutOfRange, "outside the virtual disk");
  expect_error(engine->read(~std::uint64_t{0}, buf), ErrorCode::kOutOfRange, "outside");
  EXPECT_TRUE(engine->read(size, std::span<std::uint8_t>()));
  expect_error(engine->block_status(0, size + 1), ErrorCode::kOutOfRange, "outside");
}

TEST(Engine, ContiguousBlocksReadInOnePieceAndMergeInBlockStatus) {
  TestImage t({.block_size = 1 * kMiB, .virtual_size = 6 * kMiB});
  const std::uint64_t first = t.allocate(0, 1);
  t.allocate(1, 2);
  t.allocate(2, 3);  // 0-2 contiguous in the file
  t.set_payload(3, format::PayloadState::kUndefined);
  t.set_payload(4, format::PayloadState::kUnmapped);
  t.set_payload(5, format::PayloadState::kUnmappedV095);
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(read_range(*engine, 0, 6 * kMiB), t.expected_disk());
  auto extents = engine->block_status(0, 6 * kMiB);
  ASSERT_TRUE(extents) << extents.error().to_string();
  ASSERT_EQ(extents->size(), 2u);
  EXPECT_EQ((*extents)[0].kind, ExtentKind::kData);
  EXPECT_EQ((*extents)[0].length, 3 * kMiB);
  EXPECT_EQ((*extents)[0].file_offset, first);
  EXPECT_EQ((*extents)[1].kind, ExtentKind::kZero);
  EXPECT_EQ((*extents)[1].offset, 3 * kMiB);
  EXPECT_EQ((*extents)[1].length, 3 * kMiB);
  EXPECT_FALSE((*extents)[1].file_offset.has_value());
}

TEST(Engine, BlockStatusKindsAndNonContiguousData) {
  TestImage t = mixed_image();
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);
  auto extents = engine->block_status(100, 3 * kMiB + 512 * 1024 - 200);
  ASSERT_TRUE(extents) << extents.error().to_string();
  ASSERT_EQ(extents->size(), 4u);
  EXPECT_EQ((*extents)[0].kind, ExtentKind::kData);
  EXPECT_EQ((*extents)[0].offset, 100u);
  EXPECT_EQ((*extents)[0].length, kMiB - 100);
  EXPECT_EQ((*extents)[0].file_offset, engine->lookup_block(0).value().file_offset + 100);
  EXPECT_EQ((*extents)[1].kind, ExtentKind::kZero);
  EXPECT_EQ((*extents)[2].kind, ExtentKind::kData);
  EXPECT_EQ((*extents)[3].kind, ExtentKind::kData);  // block 3 is not right after block 2
  EXPECT_EQ((*extents)[3].offset + (*extents)[3].length, 3 * kMiB + 512 * 1024 - 100);
}

TEST(Engine, NotPresentIsUnallocatedAndReadsZero) {
  TestImage t({.block_size = 2 * kMiB, .virtual_size = 8 * kMiB});
  t.allocate(2, 9);
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);
  auto extents = engine->block_status(0, 8 * kMiB);
  ASSERT_TRUE(extents);
  ASSERT_EQ(extents->size(), 3u);
  EXPECT_EQ((*extents)[0].kind, ExtentKind::kUnallocated);
  EXPECT_EQ((*extents)[0].length, 4 * kMiB);
  EXPECT_EQ((*extents)[1].kind, ExtentKind::kData);
  EXPECT_EQ((*extents)[2].kind, ExtentKind::kUnallocated);
  EXPECT_EQ(read_range(*engine, 0, 8 * kMiB), t.expected_disk());
}

// The last block may hold less than a whole block in the file when the disk ends inside it.
TEST(Engine, PartialLastBlockOnlyNeedsItsVirtualBytesInTheFile) {
  TestImage t({.block_size = 2 * kMiB, .virtual_size = 3 * kMiB});
  const std::uint64_t offset = t.allocate(1, 5);
  t.bytes().resize(offset + kMiB);  // the file ends where the disk does
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(read_range(*engine, 0, 3 * kMiB), t.expected_disk());
}

TEST(Engine, BatCacheEvictsAndStillReadsRight) {
  // 3 BAT pages of entries; one data block in each page.
  const std::uint64_t blocks = 3 * BatCache::kEntriesPerPage;
  TestImage t({.block_size = 1 * kMiB, .virtual_size = blocks * kMiB});
  const std::uint64_t picks[] = {5, BatCache::kEntriesPerPage + 7,
                                 2 * BatCache::kEntriesPerPage + 9};
  for (std::uint64_t b : picks) t.allocate(b, static_cast<std::uint8_t>(b));
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->bat_cache().page_loads(), 0u) << "open must not read the BAT";
  engine->set_bat_cache_limit(1);  // one page
  for (int round = 0; round < 3; ++round) {
    for (std::uint64_t b : picks) {
      auto got = read_range(*engine, b * kMiB + 4096, 8192);
      for (std::size_t i = 0; i < got.size(); ++i) {
        const std::uint64_t k = 4096 + i;
        ASSERT_EQ(got[i],
                  static_cast<std::uint8_t>(static_cast<std::uint8_t>(b) + k * 7 + (k >> 9)));
      }
      auto zero = read_range(*engine, (b + 1) * kMiB, 512);
      ASSERT_TRUE(std::all_of(zero.begin(), zero.end(), [](auto v) { return v == 0; }));
    }
  }
  EXPECT_EQ(engine->bat_cache().resident_pages(), 1u);
  EXPECT_EQ(engine->bat_cache().page_loads(), 9u);  // every switch of page reloads

  engine->set_bat_cache_limit(64 * kMiB);
  for (int round = 0; round < 3; ++round)
    for (std::uint64_t b : picks) read_range(*engine, b * kMiB, 512);
  EXPECT_EQ(engine->bat_cache().page_loads(), 9u + 2u);  // the two others load once more
  auto counts = engine->count_blocks();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->fully_present, 3u);
  EXPECT_EQ(counts->not_present, blocks - 3);
}

struct BadEntryCase {
  const char* name;
  std::uint64_t raw;
  const char* needle;
  std::uint64_t extra_file_bytes = 0;  // appended to the file before opening
};

TEST(Engine, BadBatEntriesFailTheReadThatTouchesThem) {
  TestImage base({.block_size = 1 * kMiB, .virtual_size = 4 * kMiB});
  const std::uint64_t good = base.allocate(0, 1);
  const std::uint64_t file_size = base.bytes().size();
  const BadEntryCase cases[] = {
      {"state 4", format::encode_bat_entry(4, 0), "state 4 is not a valid payload state"},
      {"state 7 without parent", format::encode_bat_entry(7, good),
       "state 7 is not a valid payload state"},
      {"reserved bits", format::encode_bat_entry(6, good) | 0x100, "reserved bits"},
      {"offset in header", format::encode_bat_entry(6, 0), "header section"},
      {"past EOF", format::encode_bat_entry(6, *align_up(file_size, kMiB)), "past the end"},
      {"straddles EOF", format::encode_bat_entry(6, file_size), "past the end", kMiB / 2},
      {"overlaps log", format::encode_bat_entry(6, kLogOffset), "overlaps the log"},
      {"overlaps metadata", format::encode_bat_entry(6, kMetadataOffset), "overlaps the metadata"},
      {"overlaps BAT", format::encode_bat_entry(6, kBatOffset), "overlaps the BAT"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TestImage t = base;
    t.set_entry(2, c.raw);
    t.bytes().resize(t.bytes().size() + c.extra_file_bytes);
    auto engine = t.open_ok();
    ASSERT_NE(engine, nullptr);
    std::vector<std::uint8_t> buf(4096);
    expect_error(engine->read(2 * kMiB + 100, buf), ErrorCode::kCorrupt,
                 "BAT entry 2 (payload block 2): ");
    expect_error(engine->read(2 * kMiB + 100, buf), ErrorCode::kCorrupt, c.needle);
    // A read spanning blocks 1-2 fails too; reads of the other blocks work.
    expect_error(engine->read(2 * kMiB - 10, buf), ErrorCode::kCorrupt, "BAT entry 2");
    EXPECT_TRUE(engine->read(0, buf));
    EXPECT_TRUE(engine->read(3 * kMiB, buf));
    expect_error(engine->block_status(0, 4 * kMiB), ErrorCode::kCorrupt, "BAT entry 2");
    expect_error(engine->count_blocks(), ErrorCode::kCorrupt, c.needle);
  }
}

TEST(Engine, SectorBitmapEntryMustBeZeroWithoutParent) {
  // 4097 blocks of 1 MiB with 512-byte sectors: chunk ratio 4096, so entry 4096 is a bitmap.
  TestImage t({.block_size = 1 * kMiB, .virtual_size = 4097 * kMiB});
  ASSERT_EQ(t.geometry().chunk_ratio, 4096u);
  t.set_entry(4096, format::encode_bat_entry(6, 5 * kMiB));
  t.allocate(4096, 3);  // payload block 4096 sits at entry 4097
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);
  expect_error(engine->count_blocks(), ErrorCode::kCorrupt,
               "BAT entry 4096 (sector bitmap of chunk 0)");
  // Payload reads do not use the bitmap entry.
  auto got = read_range(*engine, 4096 * kMiB, 16);
  EXPECT_EQ(got[0], 3);
}

TEST(Engine, DifferencingOpensReadsOwnBlocksAndRefusesParentBlocks) {
  TestImage t({.block_size = 1 * kMiB, .virtual_size = 4 * kMiB, .has_parent = true});
  t.allocate(1, 0x40);
  t.set_payload(2, format::PayloadState::kZero);
  const std::uint64_t partial = t.allocate(3, 0x50);
  t.set_payload(3, format::PayloadState::kPartiallyPresent, partial);
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);
  const ImageInfo& info = engine->info();
  EXPECT_EQ(info.type, DiskType::kDifferencing);
  ASSERT_TRUE(info.parent_locator_type.has_value());
  EXPECT_EQ(*info.parent_locator_type, format::kVhdxParentLocatorType);
  ASSERT_EQ(info.parent_locator.size(), 2u);
  EXPECT_EQ(info.parent_locator[0].first, "parent_linkage");
  EXPECT_EQ(info.bat_entries, 4097u);  // one whole chunk plus its bitmap entry

  auto own = read_range(*engine, kMiB, 4096);
  EXPECT_EQ(own[0], 0x40);
  auto zero = read_range(*engine, 2 * kMiB, 4096);
  EXPECT_TRUE(std::all_of(zero.begin(), zero.end(), [](auto v) { return v == 0; }));
  std::vector<std::uint8_t> buf(4096);
  expect_error(engine->read(0, buf), ErrorCode::kUnsupported,
               "in the parent image, which is not open");
  // Block 3 is partially present but its chunk has no sector bitmap.
  expect_error(engine->read(3 * kMiB, buf), ErrorCode::kCorrupt,
               "BAT entry 3 (payload block 3): partially present, but the sector bitmap of chunk "
               "0 is not present");
  expect_error(engine->block_status(0, 4 * kMiB), ErrorCode::kCorrupt, "sector bitmap");
  auto counts = engine->count_blocks();
  ASSERT_TRUE(counts) << counts.error().to_string();
  EXPECT_EQ(counts->not_present, 1u);
  EXPECT_EQ(counts->fully_present, 1u);
  EXPECT_EQ(counts->zero, 1u);
  EXPECT_EQ(counts->partially_present, 1u);
}

// Makes block 3 of a 1 MiB-block image with a parent partially present: its payload (0x50
// bytes) and, in a new 1 MiB block at the end of the file, the sector bitmap of chunk 0 (one
// bit per 512-byte sector, all clear). Returns the payload's and the bitmap's file offsets.
std::pair<std::uint64_t, std::uint64_t> add_partial_block_3(TestImage& t) {
  const std::uint64_t partial = t.allocate(3, 0x50);
  t.set_payload(3, format::PayloadState::kPartiallyPresent, partial);
  const std::uint64_t bitmap = *align_up(t.bytes().size(), kMiB);
  t.bytes().resize(bitmap + kMiB, 0);
  t.set_entry(4096, format::encode_bat_entry(6, bitmap));
  return {partial, bitmap};
}

TEST(Engine, PartiallyPresentBlockUsesTheSectorBitmap) {
  TestImage t({.block_size = 1 * kMiB, .virtual_size = 4 * kMiB, .has_parent = true});
  const auto [partial, bitmap] = add_partial_block_3(t);
  const std::uint64_t first_sector = 3 * 2048;        // block 3's first sector
  t.bytes()[bitmap + (first_sector + 8) / 8] = 0xFF;  // sectors 8-15 of the block: 4 KiB
  const std::uint64_t lone = first_sector + 100;      // and sector 100 alone
  t.bytes()[bitmap + lone / 8] |= static_cast<std::uint8_t>(1u << (lone % 8));
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);

  const auto& bytes = t.bytes_view();
  auto got = read_range(*engine, 3 * kMiB + 4096, 4096);
  EXPECT_TRUE(std::equal(got.begin(), got.end(),
                         bytes.begin() + static_cast<std::ptrdiff_t>(partial + 4096)));
  got = read_range(*engine, 3 * kMiB + 100 * 512 + 10, 502);
  EXPECT_TRUE(std::equal(got.begin(), got.end(),
                         bytes.begin() + static_cast<std::ptrdiff_t>(partial + 100 * 512 + 10)));
  std::vector<std::uint8_t> buf(4096);
  expect_error(engine->read(3 * kMiB, buf), ErrorCode::kUnsupported,
               "parent image, which is not open");
  expect_error(engine->read(3 * kMiB + 4096 + 1, buf), ErrorCode::kUnsupported,
               "parent image, which is not open");

  auto extents = engine->block_status(3 * kMiB, kMiB);
  ASSERT_TRUE(extents) << extents.error().to_string();
  ASSERT_EQ(extents->size(), 5u);
  const std::uint64_t base = 3 * kMiB;
  const Extent expect[] = {
      {base, 4096, ExtentKind::kUnallocated, std::nullopt},
      {base + 4096, 4096, ExtentKind::kData, partial + 4096},
      {base + 8192, 100 * 512 - 8192, ExtentKind::kUnallocated, std::nullopt},
      {base + 100 * 512, 512, ExtentKind::kData, partial + 100 * 512},
      {base + 101 * 512, kMiB - 101 * 512, ExtentKind::kUnallocated, std::nullopt},
  };
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ((*extents)[i].offset, expect[i].offset) << i;
    EXPECT_EQ((*extents)[i].length, expect[i].length) << i;
    EXPECT_EQ((*extents)[i].kind, expect[i].kind) << i;
    EXPECT_EQ((*extents)[i].file_offset, expect[i].file_offset) << i;
  }
  // Blocks 0-2 are NOT_PRESENT: unallocated, merged with block 3's leading absent sectors.
  auto all = engine->block_status(0, 4 * kMiB);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ((*all)[0].offset, 0u);
  EXPECT_EQ((*all)[0].length, 3 * kMiB + 4096);
  auto counts = engine->count_blocks();
  ASSERT_TRUE(counts) << counts.error().to_string();
  EXPECT_EQ(counts->partially_present, 1u);
  EXPECT_EQ(counts->not_present, 3u);
}

// Block status of a partially present block against a sector-by-sector reading of its bitmap,
// on bitmaps mixing all-set, all-clear and mixed bytes, over ranges of any alignment.
TEST(Engine, PartialBlockStatusMatchesTheBitmapSectorBySector) {
  TestImage t({.block_size = 1 * kMiB, .virtual_size = 4 * kMiB, .has_parent = true});
  const auto [partial, bitmap] = add_partial_block_3(t);
  const std::uint64_t first_sector = 3 * 2048;
  std::mt19937_64 rng(11);
  for (std::uint64_t i = 0; i < 2048 / 8; ++i) {
    const std::uint64_t kind = rng() % 4;
    t.bytes()[bitmap + first_sector / 8 + i] = kind == 0   ? 0x00
                                               : kind == 1 ? 0xFF
                                                           : static_cast<std::uint8_t>(rng());
  }
  auto present = [&](std::uint64_t sector) {
    const std::uint64_t s = first_sector + sector;
    return (t.bytes()[bitmap + s / 8] >> (s % 8)) & 1;
  };
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);
  for (int round = 0; round < 200; ++round) {
    const std::uint64_t offset = rng() % kMiB;
    const std::uint64_t length = 1 + rng() % (kMiB - offset);
    auto extents = engine->block_status(3 * kMiB + offset, length);
    ASSERT_TRUE(extents) << extents.error().to_string();
    std::uint64_t at = offset;
    for (const Extent& e : *extents) {
      ASSERT_EQ(e.offset, 3 * kMiB + at) << "round " << round;
      for (std::uint64_t b = at; b < at + e.length; b += 512 - b % 512) {
        const bool data = present(b / 512);
        ASSERT_EQ(e.kind, data ? ExtentKind::kData : ExtentKind::kUnallocated)
            << "round " << round << " byte " << b;
      }
      if (e.kind == ExtentKind::kData) {
        EXPECT_EQ(e.file_offset, partial + at);
      }
      at += e.length;
    }
    EXPECT_EQ(at, offset + length) << "round " << round;
  }
}

TEST(Engine, NotVhdx) {
  std::vector<std::uint8_t> junk(2 * kMiB, 0x5A);
  auto r = Engine::open(std::make_unique<MemFile>(junk, false), {});
  expect_error(r, ErrorCode::kNotVhdx, "not a VHDX file: no 'vhdxfile' signature");
  auto tiny =
      Engine::open(std::make_unique<MemFile>(std::vector<std::uint8_t>{'v', 'h'}, false), {});
  expect_error(tiny, ErrorCode::kNotVhdx, "no 'vhdxfile' signature");
}

TEST(Engine, ShortFileWithSignatureIsCorrupt) {
  TestImage t = mixed_image();
  t.bytes().resize(300 * 1024);
  expect_error(t.open(), ErrorCode::kCorrupt, "header section");
}

TEST(Engine, OneTornHeaderDoesNotStopTheOpen) {
  for (int torn : {0, 1}) {
    TestImage t = mixed_image();
    t.bytes()[format::kHeaderOffsets[torn] + 100] ^= 0xFF;
    auto engine = t.open_ok();
    ASSERT_NE(engine, nullptr);
    const ImageInfo& info = engine->info();
    EXPECT_EQ(info.current_header, 1 - torn);
    EXPECT_FALSE(info.headers[torn].valid);
    EXPECT_FALSE(info.headers[torn].invalid_reason.empty());
    EXPECT_EQ(info.headers[torn].sequence_number, 10u + torn) << "raw fields still shown";
    EXPECT_TRUE(info.headers[1 - torn].valid);
    const auto disk = t.expected_disk();
    EXPECT_EQ(read_range(*engine, 0, disk.size()), disk);
  }
  TestImage both = mixed_image();
  for (std::uint64_t off : format::kHeaderOffsets) both.bytes()[off + 100] ^= 0xFF;
  expect_error(both.open(), ErrorCode::kCorrupt, "");
}

TEST(Engine, SecondRegionTableIsTheFallback) {
  TestImage t = mixed_image();
  t.bytes()[format::kRegionTableOffsets[0] + 40] ^= 0xFF;
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->info().region_table_used, 1);
  const auto disk = t.expected_disk();
  EXPECT_EQ(read_range(*engine, 0, disk.size()), disk);
  t.bytes()[format::kRegionTableOffsets[1] + 40] ^= 0xFF;
  expect_error(t.open(), ErrorCode::kCorrupt, "both copies are invalid");
}

// The second copy is the fallback only: with the first valid, a damaged second copy changes
// nothing about the open (check reports it; see ops/check_test.cc).
TEST(Engine, ValidFirstRegionTableIgnoresTheSecond) {
  TestImage t = mixed_image();
  std::fill_n(t.bytes().begin() + format::kRegionTableOffsets[1], 4096, std::uint8_t{0xA5});
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->info().region_table_used, 0);
  const auto disk = t.expected_disk();
  EXPECT_EQ(read_range(*engine, 0, disk.size()), disk);
}

// A log GUID with no entry under it (a crash right after a session's first header update): no
// update was made in place, so a read-only open serves the file as it is and reports the log.
TEST(Engine, DirtyLogWithoutEntriesReadsAsIs) {
  TestImage t = mixed_image();
  const auto expected_bytes = [&] {
    auto clean = t.open_ok({});
    return read_range(*clean, 0, 3 * kMiB + 512 * 1024);
  }();
  t.header(1).log_guid = *Guid::parse("c3f5caec-4c1d-c54e-90d5-48e9bc17ac53");
  t.write_headers();
  auto engine = t.open_ok({});
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->info().log_state, LogState::kNeedsReplay);
  EXPECT_TRUE(engine->log_replayed_in_memory());
  EXPECT_EQ(read_range(*engine, 0, 3 * kMiB + 512 * 1024), expected_bytes);
}

TEST(Engine, LogMustLieInsideTheFile) {
  TestImage t = mixed_image();
  t.header(1).log_offset = 64 * kMiB;
  t.write_headers();
  expect_error(t.open(), ErrorCode::kCorrupt, "past the end of the file");
}

TEST(Engine, BatRegionTooSmallNamesBothNumbers) {
  // 1 MiB of BAT holds 131072 entries; a 200 GiB disk of 1 MiB blocks needs 204800 + 49.
  TestImage t({.block_size = 1 * kMiB, .virtual_size = 100 * kMiB});
  format::RegionTable table;
  table.entries.push_back(
      {format::kBatRegionGuid, kBatOffset, static_cast<std::uint32_t>(kMiB), true});
  table.entries.push_back(
      {format::kMetadataRegionGuid, kMetadataOffset, static_cast<std::uint32_t>(kMiB), true});
  auto region = std::span(t.bytes()).subspan(kMetadataOffset, kMiB);
  // Rewrite the virtual size item (third item written: file parameters, size, ...).
  format::encode_virtual_disk_size(200 * format::kGiB, region.subspan(64 * 1024 + 8, 8));
  auto r = t.open();
  expect_error(r, ErrorCode::kCorrupt, "131072 entries");
  expect_error(r, ErrorCode::kCorrupt, std::to_string(204800 + 49));
}

// Items may lie anywhere in the metadata region, not only right after the table: the open reads
// as far as the furthest one reaches.
TEST(Engine, MetadataItemsFarPastTheTable) {
  TestImage t = mixed_image();
  auto region = std::span(t.bytes()).subspan(kMetadataOffset, kMiB);
  auto table = format::decode_metadata_table(region.first(format::kMetadataTableSize));
  ASSERT_TRUE(table) << table.error().to_string();
  constexpr std::uint32_t kMoveBy = 512 * 1024;
  for (auto& e : table->entries) {
    std::copy_n(region.begin() + e.offset, e.length, region.begin() + e.offset + kMoveBy);
    std::fill_n(region.begin() + e.offset, e.length, std::uint8_t{0});
    e.offset += kMoveBy;
  }
  format::encode_metadata_table(*table, region.first(format::kMetadataTableSize));
  auto engine = t.open_ok();
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->info().virtual_size, t.expected_disk().size());
  EXPECT_EQ(engine->info().metadata_items.front().offset, table->entries.front().offset);
  const auto disk = t.expected_disk();
  EXPECT_EQ(read_range(*engine, 0, disk.size()), disk);
}

TEST(Engine, RegionPastTheEndOfTheFile) {
  TestImage t = mixed_image();
  format::RegionTable table;
  table.entries.push_back(
      {format::kBatRegionGuid, kBatOffset, static_cast<std::uint32_t>(kMiB), true});
  table.entries.push_back(
      {format::kMetadataRegionGuid, 512 * kMiB, static_cast<std::uint32_t>(kMiB), true});
  for (std::uint64_t off : format::kRegionTableOffsets)
    format::encode_region_table(table, std::span(t.bytes()).subspan(off, format::kRegionTableSize));
  expect_error(t.open(), ErrorCode::kCorrupt, "past the end of the file");
}

TEST(Engine, RegionOverlappingTheLog) {
  TestImage t = mixed_image();
  t.header(0).log_offset = t.header(1).log_offset = kBatOffset;
  t.write_headers();
  expect_error(t.open(), ErrorCode::kCorrupt, "overlaps the log");
}

}  // namespace
}  // namespace vhdx::image
