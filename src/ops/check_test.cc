// Component tests of ops::check_image on images from the test builder: clean images, and each
// kind of damage reported as a corruption naming the structure, and leaked space counted.
#include "ops/check.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "base/endian.h"
#include "format/bat.h"
#include "format/constants.h"
#include "format/log_entry.h"
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
  EXPECT_TRUE(mentions(r, "BAT entry 5 (payload block 5): ")) << all(r);
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
  // One torn slot beside a valid current header is what a crashed header update leaves: a
  // warning, not a corruption.
  EXPECT_EQ(r.corruption_count, 0u) << all(r);
  ASSERT_EQ(r.warnings.size(), 1u) << all(r);
  EXPECT_EQ(r.warnings[0].rfind("header 2: checksum mismatch", 0), 0u) << r.warnings[0];
  EXPECT_NE(r.warnings[0].find("header 1 is current"), std::string::npos) << r.warnings[0];

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

// The dirty-log images below: Dynamic's image with the current header naming kLogGuid and one
// log entry (sequence 7) at the start of the log that rewrites the first BAT sector.
const Guid kLogGuid = *Guid::parse("c3f5caec-4c1d-c54e-90d5-48e9bc17ac53");

// Makes `d` dirty: its log holds one entry rewriting the BAT sector holding `block`'s entry to
// map it FULLY_PRESENT at `offset`, while the file's BAT still says what it said before. The
// entry promises a file of at least `flushed` bytes.
std::vector<std::uint8_t> dirty_image(Dynamic& d, std::uint64_t block, std::uint64_t offset,
                                      std::uint64_t flushed) {
  d.t.header(1).log_guid = kLogGuid;
  d.t.write_headers();
  std::vector<std::uint8_t> bytes = d.t.bytes_view();
  const std::uint64_t entry_at = d.bat_entry(block);
  const std::uint64_t sector = entry_at / 4096 * 4096;
  format::LogUpdate update;
  update.file_offset = sector;
  std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(sector), 4096, update.data.begin());
  store_le64(update.data, entry_at - sector, format::encode_bat_entry(kPresent, offset));
  format::LogEntryHeader header;
  header.sequence_number = 7;
  header.log_guid = kLogGuid;
  header.flushed_file_offset = flushed;
  header.last_file_offset = flushed;
  const auto entry = format::encode_log_entry(header, std::span(&update, 1));
  std::copy(entry.begin(), entry.end(),
            bytes.begin() + static_cast<std::ptrdiff_t>(image::testing::kLogOffset));
  return bytes;
}

TEST(CheckTest, CleanImageReportsAnEmptyLog) {
  Dynamic d;
  CheckReport r = check_bytes(d.t.bytes_view());
  EXPECT_TRUE(r.log.known);
  EXPECT_EQ(r.log.state, LogState::kEmpty);
  EXPECT_TRUE(r.log.guid.is_zero());
  EXPECT_EQ(r.log.offset, image::testing::kLogOffset);
  EXPECT_EQ(r.log.length, kMiB);
  EXPECT_EQ(r.log.entries, 0u);
  EXPECT_FALSE(r.log.replayed);
  EXPECT_TRUE(r.log.replay_error.empty());
}

// A clean image (zero log GUID) has nothing to replay, whatever its log region holds.
TEST(CheckTest, GarbageInTheLogOfACleanImageIsFine) {
  Dynamic d;
  auto bytes = d.t.bytes_view();
  std::uint32_t x = 12345;
  for (std::uint64_t i = 0; i < kMiB; ++i) {
    x = x * 1103515245 + 12345;
    bytes[image::testing::kLogOffset + i] = static_cast<std::uint8_t>(x >> 16);
  }
  // A well-formed entry under some GUID the header does not name is garbage too.
  const auto stale = dirty_image(d, 5, 64 * kMiB, 7 * kMiB);
  std::copy_n(stale.begin() + static_cast<std::ptrdiff_t>(image::testing::kLogOffset), 8192,
              bytes.begin() + static_cast<std::ptrdiff_t>(image::testing::kLogOffset));
  CheckReport r = check_bytes(bytes);
  EXPECT_EQ(r.corruption_count, 0u) << all(r);
  EXPECT_TRUE(r.check_errors.empty()) << all(r);
  EXPECT_EQ(r.log.state, LogState::kEmpty);
  EXPECT_EQ(r.log.entries, 0u);
  EXPECT_EQ(r.allocated_blocks, 3u);
  EXPECT_EQ(r.leaked_bytes, 0u);
}

// The log maps block 5 to a new block at 7 MiB: the check sees the replayed BAT (4 blocks, the
// new one accounted for), not the file's (3 blocks), and reports the log it replayed.
TEST(CheckTest, DirtyLogIsReplayedAndTheReplayedImageChecked) {
  Dynamic d;
  d.t.bytes().resize(8 * kMiB, 0x5A);  // block 5's data, written before its BAT update
  auto bytes = dirty_image(d, 5, 7 * kMiB, 8 * kMiB);
  const auto before = bytes;
  auto report = check_image(std::make_unique<MemFile>(bytes, false));
  ASSERT_TRUE(report) << report.error().to_string();
  const CheckReport& r = *report;
  EXPECT_EQ(r.corruption_count, 0u) << all(r);
  EXPECT_TRUE(r.check_errors.empty()) << all(r);
  EXPECT_EQ(r.log.state, LogState::kNeedsReplay);
  EXPECT_EQ(r.log.guid, kLogGuid);
  EXPECT_EQ(r.log.entries, 1u);
  EXPECT_EQ(r.log.first_sequence, 7u);
  EXPECT_EQ(r.log.last_sequence, 7u);
  EXPECT_TRUE(r.log.replayed);
  EXPECT_TRUE(r.log.replay_error.empty());
  EXPECT_EQ(r.allocated_blocks, 4u);
  EXPECT_EQ(r.image_end_offset, 8 * kMiB);
  EXPECT_EQ(r.leaked_bytes, 0u);
  EXPECT_EQ(bytes, before);
}

// The replayed BAT is what gets validated: here the log maps block 6 past the end of the file,
// which the file's own BAT does not.
TEST(CheckTest, DamageThatOnlyTheReplayedImageHasIsReported) {
  Dynamic d;
  const auto clean = check_bytes(d.t.bytes_view());
  ASSERT_EQ(clean.corruption_count, 0u) << all(clean);
  CheckReport r = check_bytes(dirty_image(d, 6, 64 * kMiB, 7 * kMiB));
  EXPECT_TRUE(r.log.replayed);
  EXPECT_EQ(r.corruption_count, 1u) << all(r);
  EXPECT_TRUE(mentions(r, "BAT entry 6 (payload block 6): ")) << all(r);
  EXPECT_TRUE(mentions(r, "extends past the end of the file")) << all(r);
}

// A log GUID with no entry under it: nothing was made durable, nothing to replay.
TEST(CheckTest, DirtyHeaderWithAnEmptyLogHasNothingToReplay) {
  Dynamic d;
  d.t.header(1).log_guid = kLogGuid;
  d.t.write_headers();
  CheckReport r = check_bytes(d.t.bytes_view());
  EXPECT_EQ(r.corruption_count, 0u) << all(r);
  EXPECT_EQ(r.log.state, LogState::kNeedsReplay);
  EXPECT_EQ(r.log.entries, 0u);
  EXPECT_TRUE(r.log.replayed);
  EXPECT_EQ(r.allocated_blocks, 3u);
}

// The entry promises a 1 GiB file; this one is 7 MiB: replaying it would read data that is not
// there. A corruption naming the reason, and the BAT is not checked.
TEST(CheckTest, UnreplayableLogIsACorruptionNamingTheReason) {
  Dynamic d;
  CheckReport r = check_bytes(dirty_image(d, 5, 7 * kMiB, 1024 * kMiB));
  ASSERT_EQ(r.corruption_count, 1u) << all(r);
  EXPECT_TRUE(r.check_errors.empty()) << all(r);
  EXPECT_EQ(r.corruptions[0],
            "log: the active sequence cannot be replayed: file is shorter (7340032) than the "
            "log's flushed file offset (1073741824)");
  EXPECT_EQ(r.log.state, LogState::kNeedsReplay);
  EXPECT_FALSE(r.log.replayed);
  EXPECT_NE(r.log.replay_error.find("flushed file offset"), std::string::npos);
  EXPECT_EQ(r.allocated_blocks, 0u);
}

// Log placement: inside the file, past the header section, 1 MiB aligned, clear of every region.
// Offsets the header codec refuses make both headers invalid (one corruption each); the others
// stop the engine's open (one corruption). Dirty or clean, the same.
TEST(CheckTest, LogRegionOutOfPlace) {
  struct Case {
    std::uint64_t offset;
    std::uint64_t length;
    std::uint64_t corruptions;
    const char* message;
  };
  const Case cases[] = {
      {6 * kMiB, 4 * kMiB, 1,
       "log (offset 6291456, length 4194304): extends past the end of the file (7340032 bytes)"},
      {0, kMiB, 2, "header 2: log offset 0x0 lies inside the header section (below 1 MiB)"},
      {kMiB + 4096, kMiB, 2, "header 1: log offset 0x101000 is not a multiple of 1 MiB"},
      {image::testing::kMetadataOffset, kMiB, 1,
       "region table 1: region metadata (offset 2097152, length 1048576): overlaps the log"},
      {image::testing::kBatOffset - kMiB / 2 * 2, 2 * kMiB, 1,
       "region table 1: region BAT (offset 3145728, length 1048576): overlaps the log"},
  };
  for (bool dirty : {false, true}) {
    for (const Case& c : cases) {
      Dynamic d;
      for (int i = 0; i < 2; ++i) {
        d.t.header(i).log_offset = c.offset;
        d.t.header(i).log_length = static_cast<std::uint32_t>(c.length);
        if (dirty) d.t.header(i).log_guid = kLogGuid;
      }
      d.t.write_headers();
      CheckReport r = check_bytes(d.t.bytes_view());
      EXPECT_EQ(r.corruption_count, c.corruptions) << c.message << "\n" << all(r);
      EXPECT_TRUE(mentions(r, c.message)) << all(r);
      EXPECT_FALSE(r.log.known);
    }
  }
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
