// Damaged images: each test builds a valid image with the test-side builder, damages one
// structure, and asserts the exact outcome: an error code and a phrase of its message, or a
// correct read where the format allows one. Every image goes through Image::open on a POSIX
// temp file and through Image::open_file on a MemFile. The suite also runs under ASan+UBSan.
//
// Each failed open prints a "CATALOGUE|test|code|message" line; catalogue.md is filled from them.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "format/constants.h"
#include "format/log_entry.h"
#include "io/mem_file.h"
#include "support/corpus.h"
#include "support/image_builder.h"
#include "vhdx/image.h"

namespace vhdx::testing {
namespace {

using format::kGiB;
using format::kKiB;
using format::kMiB;
using format::kTiB;
using format::PayloadState;
using Bytes = std::vector<std::uint8_t>;

enum class Via { kPosix, kMemory };
const char* via_name(Via via) { return via == Via::kPosix ? "posix file" : "memory file"; }

std::string test_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return info ? info->name() : "?";
}

Result<std::unique_ptr<Image>> open_via(Via via, const Bytes& bytes,
                                        const OpenOptions& options = {}) {
  if (via == Via::kMemory)
    return Image::open_file(std::make_unique<MemFile>(bytes, /*writable=*/false), options);
  static const std::string dir = make_temp_dir();
  static std::atomic<int> counter{0};
  std::string path = dir + "/" + test_name() + "-" + std::to_string(counter++) + ".vhdx";
  if (!write_bytes_file(path, bytes)) return Error(ErrorCode::kIo, "cannot write " + path);
  return Image::open(path, options);
}

void record(const Error& error, Via via) {
  // Print once per test (the POSIX message may name the path; the memory one is stable).
  if (via == Via::kMemory)
    std::cout << "CATALOGUE|" << test_name() << "|" << error_code_name(error.code()) << "|"
              << error.message() << "\n";
}

// The open fails on both files with `code` and a message containing `phrase`.
void expect_open_error(const Bytes& bytes, ErrorCode code, const std::string& phrase,
                       const OpenOptions& options = {}) {
  for (Via via : {Via::kPosix, Via::kMemory}) {
    SCOPED_TRACE(via_name(via));
    auto image = open_via(via, bytes, options);
    ASSERT_FALSE(image) << "opened, expected " << error_code_name(code);
    const Error& error = image.error();
    record(error, via);
    EXPECT_EQ(error.code(), code) << error.to_string();
    EXPECT_NE(error.message().find(phrase), std::string::npos)
        << "message lacks \"" << phrase << "\": " << error.message();
  }
}

// The open succeeds on both files; `check` then inspects the image.
void expect_open(const Bytes& bytes, const std::function<void(Image&)>& check,
                 const OpenOptions& options = {}) {
  for (Via via : {Via::kPosix, Via::kMemory}) {
    SCOPED_TRACE(via_name(via));
    auto image = open_via(via, bytes, options);
    ASSERT_TRUE(image) << image.error().to_string();
    check(**image);
  }
}

// A read of [offset, offset+length) fails with `code` and `phrase`.
void expect_read_error(Image& image, std::uint64_t offset, std::uint64_t length, ErrorCode code,
                       const std::string& phrase, Via via = Via::kMemory) {
  Bytes buf(length);
  auto r = image.read(offset, buf);
  ASSERT_FALSE(r) << "read at " << offset << " succeeded";
  record(r.error(), via);
  EXPECT_EQ(r.error().code(), code) << r.error().to_string();
  EXPECT_NE(r.error().message().find(phrase), std::string::npos)
      << "message lacks \"" << phrase << "\": " << r.error().message();
}

// Reads [offset, offset+length) and compares it with the builder's expectation.
void expect_bytes(Image& image, const ImageBuilder& builder, std::uint64_t offset,
                  std::uint64_t length) {
  Bytes buf(length);
  auto r = image.read(offset, buf);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(buf == builder.expected_bytes(offset, length))
      << "content differs in [" << offset << ", " << offset + length << ")";
}

void expect_whole_content(Image& image, const ImageBuilder& builder) {
  EXPECT_EQ(image.info().virtual_size, builder.spec().virtual_size);
  expect_bytes(image, builder, 0, builder.spec().virtual_size);
}

// The base image: dynamic, 8 MiB, 1 MiB blocks, 512-byte sectors; block 0 a pattern, block 1
// filled with 0x5A, block 2 ZERO, block 3 NOT_PRESENT, block 4 UNMAPPED with stale data,
// block 5 a pattern, blocks 6 and 7 NOT_PRESENT.
ImageSpec base_spec() {
  ImageSpec spec;
  spec.virtual_size = 8 * kMiB;
  spec.block_size = 1 * kMiB;
  return spec;
}

void add_base_blocks(ImageBuilder& b) {
  b.set_block(0, BlockSpec::present_pieces({{0, pattern_bytes(1, 0, kMiB)}}));
  b.set_block(1, BlockSpec::present_fill(0x5A));
  b.set_block(2, BlockSpec::with_state(PayloadState::kZero));
  BlockSpec stale = BlockSpec::with_state(PayloadState::kUnmapped);
  stale.fill = 0xEE;
  stale.allocate = true;
  b.set_block(4, stale);
  b.set_block(5, BlockSpec::present_pieces({{4096, pattern_bytes(5, 0, 64 * kKiB)}}));
}

ImageBuilder base_builder(ImageSpec spec = base_spec()) {
  ImageBuilder b(std::move(spec));
  add_base_blocks(b);
  return b;
}

// ---------------------------------------------------------------------------------------
// Sanity: the undamaged base image opens and reads right, so every failure below is due to
// its damage.

TEST(Corruption, UndamagedBaseImageOpens) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  expect_open(bytes, [&](Image& image) {
    EXPECT_EQ(image.info().current_header, 1);
    EXPECT_EQ(image.info().region_table_used, 0);
    expect_whole_content(image, b);
  });
}

// ---- truncated files ----

TEST(Corruption, EmptyFile) { expect_open_error(Bytes{}, ErrorCode::kNotVhdx, "signature"); }

TEST(Corruption, TruncatedInsideIdentifier) {
  Bytes bytes = base_builder().build();
  bytes.resize(100);  // signature intact, creator cut
  expect_open_error(bytes, ErrorCode::kCorrupt, "shorter than the 1 MiB header section");
}

TEST(Corruption, TruncatedInsideHeader) {
  Bytes bytes = base_builder().build();
  bytes.resize(64 * kKiB + 2000);
  expect_open_error(bytes, ErrorCode::kCorrupt, "shorter than the 1 MiB header section");
}

TEST(Corruption, TruncatedInsideRegionTable) {
  Bytes bytes = base_builder().build();
  bytes.resize(192 * kKiB + 1000);
  expect_open_error(bytes, ErrorCode::kCorrupt, "shorter than the 1 MiB header section");
}

TEST(Corruption, TruncatedBeforeMetadataRegionEnd) {
  // Metadata last (BAT at 2 MiB, metadata at 3 MiB) so the cut hits only the metadata region.
  ImageSpec spec = base_spec();
  spec.bat_offset = 2 * kMiB;
  spec.metadata_offset = 3 * kMiB;
  ImageBuilder b(spec);
  Bytes bytes = b.build();
  ASSERT_EQ(bytes.size(), 4 * kMiB);
  bytes.resize(3 * kMiB + 512 * kKiB);  // table and items intact, region end missing
  expect_open_error(bytes, ErrorCode::kCorrupt,
                    "region metadata (offset 3145728, length 1048576): extends past the end");
}

TEST(Corruption, TruncatedBeforeBatReferencedBlock) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  std::uint64_t block5 = b.layout().block_offsets[5];
  ASSERT_EQ(block5 + kMiB, bytes.size());
  bytes.resize(block5 + 512 * kKiB);  // block 5 half gone
  for (Via via : {Via::kPosix, Via::kMemory}) {
    SCOPED_TRACE(via_name(via));
    auto image = open_via(via, bytes);
    ASSERT_TRUE(image) << image.error().to_string();
    expect_bytes(**image, b, 0, 5 * kMiB);  // blocks before it still read
    expect_read_error(**image, 5 * kMiB, 4096, ErrorCode::kCorrupt,
                      "extends past the end of the file", via);
    expect_bytes(**image, b, 6 * kMiB, 2 * kMiB);
  }
}

// ---- file identifier and headers ----

TEST(Corruption, BadFileSignature) {
  Bytes bytes = base_builder().build();
  bytes[0] = 'V';
  expect_open_error(bytes, ErrorCode::kNotVhdx, "signature");
}

TEST(Corruption, BadHeaderSignatureInCurrentHeader) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  bytes[b.layout().headers[1]] = 'H';  // header 2 (seq 2, the current one)
  fix_header_checksum(bytes, 1);
  expect_open(bytes, [&](Image& image) {
    const ImageInfo& info = image.info();
    EXPECT_EQ(info.current_header, 0);
    EXPECT_TRUE(info.headers[0].valid);
    EXPECT_EQ(info.headers[0].sequence_number, 1u);
    EXPECT_FALSE(info.headers[1].valid);
    EXPECT_NE(info.headers[1].invalid_reason.find("signature"), std::string::npos)
        << info.headers[1].invalid_reason;
    expect_whole_content(image, b);
  });
}

TEST(Corruption, BadChecksumInOneHeader) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  bytes[b.layout().headers[0] + 200] ^= 0x01;  // reserved byte of header 1, CRC now wrong
  expect_open(bytes, [&](Image& image) {
    const ImageInfo& info = image.info();
    EXPECT_EQ(info.current_header, 1);
    EXPECT_FALSE(info.headers[0].valid);
    EXPECT_NE(info.headers[0].invalid_reason.find("checksum"), std::string::npos)
        << info.headers[0].invalid_reason;
    EXPECT_TRUE(info.headers[1].valid);
    expect_whole_content(image, b);
  });
}

TEST(Corruption, BothHeadersTorn) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  bytes[b.layout().headers[0] + 9] ^= 0xFF;  // sequence numbers, CRC not fixed
  bytes[b.layout().headers[1] + 9] ^= 0xFF;
  expect_open_error(bytes, ErrorCode::kCorrupt, "checksum");
}

TEST(Corruption, EqualSequenceNumbersDifferentContents) {
  ImageSpec spec = base_spec();
  spec.sequence_numbers[0] = spec.sequence_numbers[1] = 7;
  ImageBuilder b(spec);
  add_base_blocks(b);
  Bytes bytes = b.build();
  poke_guid(bytes, b.layout().headers[0] + 16,
            *Guid::parse("01234567-89ab-4cde-8f01-23456789abcd"));
  fix_header_checksum(bytes, 0);
  expect_open_error(bytes, ErrorCode::kCorrupt, "sequence number");
}

TEST(Corruption, EqualSequenceNumbersIdenticalHeadersOpen) {
  // The Disk2vhd quirk: two identical headers with one sequence number are accepted.
  ImageSpec spec = base_spec();
  spec.sequence_numbers[0] = spec.sequence_numbers[1] = 7;
  ImageBuilder b(spec);
  add_base_blocks(b);
  expect_open(b.build(), [&](Image& image) {
    EXPECT_EQ(image.info().headers[0].sequence_number, 7u);
    EXPECT_EQ(image.info().headers[1].sequence_number, 7u);
    expect_whole_content(image, b);
  });
}

TEST(Corruption, HeaderVersion2) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  for (int slot = 0; slot < 2; ++slot) {
    poke_le16(bytes, b.layout().headers[slot] + 66, 2);
    fix_header_checksum(bytes, slot);
  }
  expect_open_error(bytes, ErrorCode::kUnsupported, "version 2");
}

// A header log GUID with no entry under it: nothing was updated in place (a crash right after the
// session's first header update), so the image opens read-only as it is and reports the log.
TEST(Corruption, LogGuidSetWithEmptyLogReadsAsIs) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  poke_guid(bytes, b.layout().headers[1] + 48,
            *Guid::parse("5e5e5e5e-1234-4567-89ab-cdef01234567"));
  fix_header_checksum(bytes, 1);
  expect_open(bytes, [&](Image& image) {
    EXPECT_EQ(image.info().log_state, LogState::kNeedsReplay);
    expect_bytes(image, b, 0, 8 * kMiB);
  });
}

// A log whose entry claims a flushed file size far past the end of the file: the file lost its
// tail, so the log cannot be replayed. A plain open fails; an inspection open refuses reads.
Bytes image_with_unreplayable_log(ImageBuilder& b) {
  Bytes bytes = b.build();
  const Guid log_guid = *Guid::parse("5e5e5e5e-1234-4567-89ab-cdef01234567");
  poke_guid(bytes, b.layout().headers[1] + 48, log_guid);
  fix_header_checksum(bytes, 1);
  format::LogEntryHeader header;
  header.sequence_number = 1;
  header.log_guid = log_guid;
  header.flushed_file_offset = 1024 * kMiB;
  header.last_file_offset = 1024 * kMiB;
  format::LogUpdate update;
  update.kind = format::LogUpdate::Kind::kData;
  update.file_offset = b.layout().bat_offset;
  const Bytes entry = format::encode_log_entry(header, std::span(&update, 1));
  std::copy(entry.begin(), entry.end(), bytes.begin() + b.layout().log_offset);
  return bytes;
}

TEST(Corruption, LogEntryPastEndOfFile) {
  ImageBuilder b = base_builder();
  expect_open_error(image_with_unreplayable_log(b), ErrorCode::kCorrupt, "flushed file offset");
}

TEST(Corruption, LogEntryPastEndOfFileOpensForInspection) {
  ImageBuilder b = base_builder();
  OpenOptions options;
  options.allow_dirty_log = true;
  expect_open(
      image_with_unreplayable_log(b),
      [&](Image& image) {
        EXPECT_EQ(image.info().log_state, LogState::kNeedsReplay);
        EXPECT_EQ(image.info().virtual_size, 8 * kMiB);
        expect_read_error(image, 0, 4096, ErrorCode::kNeedsLogReplay, "flushed file offset");
      },
      options);
}

TEST(Corruption, LogOffsetNotMiBAligned) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  for (int slot = 0; slot < 2; ++slot) {
    poke_le64(bytes, b.layout().headers[slot] + 72, kMiB + 4 * kKiB);
    fix_header_checksum(bytes, slot);
  }
  expect_open_error(bytes, ErrorCode::kCorrupt, "log offset");
}

TEST(Corruption, LogPastEndOfFile) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  for (int slot = 0; slot < 2; ++slot) {
    poke_le64(bytes, b.layout().headers[slot] + 72, 1 * kGiB);
    fix_header_checksum(bytes, slot);
  }
  expect_open_error(bytes, ErrorCode::kCorrupt, "extends past the end of the file");
}

// ---- region tables ----

TEST(Corruption, RegionTable1BadChecksumFallsBackToTable2) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  bytes[b.layout().region_tables[0] + 1000] ^= 0x40;
  expect_open(bytes, [&](Image& image) {
    EXPECT_EQ(image.info().region_table_used, 1);
    expect_whole_content(image, b);
  });
}

TEST(Corruption, BothRegionTablesBad) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  bytes[b.layout().region_tables[0] + 1000] ^= 0x40;
  bytes[b.layout().region_tables[1] + 2] = 'X';  // signature
  fix_region_table_checksum(bytes, 1);
  expect_open_error(bytes, ErrorCode::kCorrupt, "region table");
}

// Applies `edit` to both region table copies and fixes their checksums.
void edit_region_tables(Bytes& bytes, const Layout& layout,
                        const std::function<void(Bytes&, std::uint64_t table)>& edit) {
  for (int copy = 0; copy < 2; ++copy) {
    edit(bytes, layout.region_tables[copy]);
    fix_region_table_checksum(bytes, copy);
  }
}

TEST(Corruption, RegionOverlapBatOverMetadata) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  // Entry 0 is the BAT (3 MiB); move it to 2 MiB + length 2 MiB, over the metadata region.
  edit_region_tables(bytes, b.layout(), [](Bytes& v, std::uint64_t t) {
    poke_le64(v, t + 16 + 16, 2 * kMiB);
    poke_le32(v, t + 16 + 24, 2 * kMiB);
  });
  expect_open_error(bytes, ErrorCode::kCorrupt, "overlap");
}

TEST(Corruption, RegionOverlapsLog) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  // Entry 1 is the metadata region (2 MiB); move it onto the log at 1 MiB.
  edit_region_tables(bytes, b.layout(),
                     [](Bytes& v, std::uint64_t t) { poke_le64(v, t + 16 + 32 + 16, kMiB); });
  expect_open_error(bytes, ErrorCode::kCorrupt, "log");
}

TEST(Corruption, RegionPastEndOfFile) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  edit_region_tables(bytes, b.layout(),
                     [](Bytes& v, std::uint64_t t) { poke_le64(v, t + 16 + 16, 1 * kTiB); });
  expect_open_error(bytes, ErrorCode::kCorrupt, "extends past the end of the file");
}

TEST(Corruption, RegionCount5000) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  edit_region_tables(bytes, b.layout(),
                     [](Bytes& v, std::uint64_t t) { poke_le32(v, t + 8, 5000); });
  expect_open_error(bytes, ErrorCode::kCorrupt, "5000");
}

TEST(Corruption, DuplicateBatRegion) {
  ImageSpec spec = base_spec();
  spec.extra_regions.push_back(
      {format::kBatRegionGuid, 5 * kMiB, static_cast<std::uint32_t>(kMiB), true});
  spec.payload_offset = 6 * kMiB;
  ImageBuilder b(spec);
  add_base_blocks(b);
  expect_open_error(b.build(), ErrorCode::kCorrupt, "repeats entry 0");
}

TEST(Corruption, UnknownRequiredRegion) {
  ImageSpec spec = base_spec();
  Guid unknown = *Guid::parse("c0ffee00-1111-4222-8333-444444444444");
  spec.extra_regions.push_back({unknown, 4 * kMiB, static_cast<std::uint32_t>(kMiB), true});
  ImageBuilder b(spec);
  add_base_blocks(b);
  expect_open_error(b.build(), ErrorCode::kUnsupported, "c0ffee00-1111-4222-8333-444444444444");
}

TEST(Corruption, UnknownOptionalRegionIgnored) {
  ImageSpec spec = base_spec();
  Guid unknown = *Guid::parse("c0ffee00-1111-4222-8333-444444444444");
  spec.extra_regions.push_back({unknown, 4 * kMiB, static_cast<std::uint32_t>(kMiB), false});
  ImageBuilder b(spec);
  add_base_blocks(b);
  Bytes bytes = b.build();
  ASSERT_EQ(b.layout().payload_offset, 5 * kMiB);
  expect_open(bytes, [&](Image& image) {
    ASSERT_EQ(image.info().regions.size(), 3u);
    EXPECT_EQ(image.info().regions[2].guid, unknown);
    EXPECT_EQ(image.info().regions[2].name, "unknown");
    EXPECT_FALSE(image.info().regions[2].required);
    expect_whole_content(image, b);
  });
}

// ---- metadata ----

TEST(Corruption, MetadataBadSignature) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  bytes[b.layout().metadata_offset + 7] = 'A';
  expect_open_error(bytes, ErrorCode::kCorrupt, "signature");
}

TEST(Corruption, MetadataEntryCountHuge) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  poke_le16(bytes, b.layout().metadata_offset + 10, 0xFFFF);
  expect_open_error(bytes, ErrorCode::kCorrupt, "65535");
}

TEST(Corruption, MetadataItemPastRegionEnd) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  // Virtual disk size item (entry 1, 8 bytes) starting 4 bytes before the 1 MiB region ends.
  poke_le32(bytes, b.layout().metadata_entry(1) + 16, static_cast<std::uint32_t>(kMiB - 4));
  expect_open_error(bytes, ErrorCode::kCorrupt, "metadata");
}

TEST(Corruption, OverlappingMetadataItems) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  // Virtual disk size item (8 bytes at +64 KiB+8) moved to +64 KiB+4, over file parameters.
  poke_le32(bytes, b.layout().metadata_entry(1) + 16, static_cast<std::uint32_t>(64 * kKiB + 4));
  expect_open_error(bytes, ErrorCode::kCorrupt, "overlap");
}

TEST(Corruption, MissingVirtualDiskSizeItem) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  const Layout& l = b.layout();
  // Move the last entry (virtual disk id, 4) over entry 1 and drop one from the count.
  std::copy_n(bytes.begin() + l.metadata_entry(4), 32, bytes.begin() + l.metadata_entry(1));
  std::fill_n(bytes.begin() + l.metadata_entry(4), 32, 0);
  poke_le16(bytes, l.metadata_offset + 10, 4);
  expect_open_error(bytes, ErrorCode::kCorrupt, "virtual-disk-size");
}

TEST(Corruption, UnknownRequiredMetadataItem) {
  ImageSpec spec = base_spec();
  spec.extra_metadata_items.push_back(
      {*Guid::parse("facade00-aaaa-4bbb-8ccc-dddddddddddd"), Bytes(12, 0x42), false, false, true});
  ImageBuilder b(spec);
  add_base_blocks(b);
  expect_open_error(b.build(), ErrorCode::kUnsupported, "facade00-aaaa-4bbb-8ccc-dddddddddddd");
}

TEST(Corruption, UnknownOptionalMetadataItemIgnored) {
  ImageSpec spec = base_spec();
  Guid id = *Guid::parse("facade00-aaaa-4bbb-8ccc-dddddddddddd");
  spec.extra_metadata_items.push_back({id, Bytes(12, 0x42), true, false, false});
  ImageBuilder b(spec);
  add_base_blocks(b);
  expect_open(b.build(), [&](Image& image) {
    ASSERT_EQ(image.info().metadata_items.size(), 6u);
    EXPECT_EQ(image.info().metadata_items[5].item_id, id);
    EXPECT_TRUE(image.info().metadata_items[5].is_user);
    expect_whole_content(image, b);
  });
}

TEST(Corruption, BlockSizeNotPowerOfTwo) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  poke_le32(bytes, b.layout().file_parameters, static_cast<std::uint32_t>(3 * kMiB));
  expect_open_error(bytes, ErrorCode::kCorrupt, "block size");
}

TEST(Corruption, BlockSize512MiB) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  poke_le32(bytes, b.layout().file_parameters, static_cast<std::uint32_t>(512 * kMiB));
  expect_open_error(bytes, ErrorCode::kCorrupt, "block size");
}

TEST(Corruption, FileParametersReservedFlagBits) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  poke_le32(bytes, b.layout().file_parameters + 4, 0x10);
  expect_open_error(bytes, ErrorCode::kCorrupt, "reserved");
}

TEST(Corruption, LogicalSectorSize1024) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  poke_le32(bytes, b.layout().logical_sector_size, 1024);
  expect_open_error(bytes, ErrorCode::kUnsupported, "1024");
}

TEST(Corruption, VirtualSizeOver64TiB) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  poke_le64(bytes, b.layout().virtual_disk_size, 64 * kTiB + kMiB);
  // Past the format's limit but self-consistent: the library declines it (kUnsupported), like
  // a 1024-byte sector, rather than calling it corrupt.
  expect_open_error(bytes, ErrorCode::kUnsupported, "exceeds 64 TiB");
}

TEST(Corruption, VirtualSizeNotSectorMultiple) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  poke_le64(bytes, b.layout().virtual_disk_size, 8 * kMiB + 100);
  expect_open_error(bytes, ErrorCode::kCorrupt, "multiple");
}

TEST(Corruption, VirtualDiskIdOf256BytesAccepted) {
  // Old QEMU wrote a 256-byte virtual disk id item; the first 16 bytes are the GUID.
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  poke_le32(bytes, b.layout().metadata_entry(4) + 20, 256);
  expect_open(bytes, [&](Image& image) {
    EXPECT_EQ(image.info().virtual_disk_id, b.spec().virtual_disk_id);
    expect_whole_content(image, b);
  });
}

TEST(Corruption, DifferencingImageWithoutParentLocator) {
  ImageSpec spec = base_spec();
  spec.has_parent = true;
  ImageBuilder b(spec);
  Bytes bytes = b.build();
  poke_le16(bytes, b.layout().metadata_offset + 10, 5);  // drop entry 5, the locator
  std::fill_n(bytes.begin() + b.layout().metadata_entry(5), 32, 0);
  expect_open_error(bytes, ErrorCode::kCorrupt, "parent-locator");
}

// ---- BAT ----

TEST(Corruption, BatRegionTooSmallForVirtualSize) {
  ImageBuilder b = base_builder();
  Bytes bytes = b.build();
  // 1 MiB of BAT holds 131072 entries; 200 GiB of 1 MiB blocks needs about 204850.
  poke_le64(bytes, b.layout().virtual_disk_size, 200 * kGiB);
  expect_open_error(bytes, ErrorCode::kCorrupt, "BAT");
}

TEST(Corruption, BatEntryPastEndOfFile) {
  ImageBuilder b = base_builder();
  BlockSpec far = BlockSpec::present_fill(0x11);
  far.entry_offset = 1 * kGiB;
  b.set_block(6, far);
  Bytes bytes = b.build();
  for (Via via : {Via::kPosix, Via::kMemory}) {
    SCOPED_TRACE(via_name(via));
    auto image = open_via(via, bytes);
    ASSERT_TRUE(image) << image.error().to_string();
    expect_read_error(**image, 6 * kMiB + 4096, 512, ErrorCode::kCorrupt,
                      "extends past the end of the file", via);
    expect_bytes(**image, b, 0, 6 * kMiB);
    expect_bytes(**image, b, 7 * kMiB, kMiB);
  }
}

TEST(Corruption, BatEntryOverlappingMetadataRegion) {
  ImageBuilder b = base_builder();
  BlockSpec bad = BlockSpec::with_state(PayloadState::kFullyPresent);
  bad.allocate = false;
  bad.entry_offset = b.layout().metadata_offset;
  b.set_block(6, bad);
  Bytes bytes = b.build();
  for (Via via : {Via::kPosix, Via::kMemory}) {
    SCOPED_TRACE(via_name(via));
    auto image = open_via(via, bytes);
    ASSERT_TRUE(image) << image.error().to_string();
    expect_read_error(**image, 6 * kMiB, kMiB, ErrorCode::kCorrupt, "metadata", via);
    expect_bytes(**image, b, 0, 6 * kMiB);
  }
}

TEST(Corruption, BatEntryInsideHeaderSection) {
  ImageBuilder b = base_builder();
  BlockSpec bad = BlockSpec::with_state(PayloadState::kFullyPresent);
  bad.allocate = false;
  bad.raw_entry = 6;  // FULLY_PRESENT at file offset 0
  b.set_block(7, bad);
  Bytes bytes = b.build();
  for (Via via : {Via::kPosix, Via::kMemory}) {
    SCOPED_TRACE(via_name(via));
    auto image = open_via(via, bytes);
    ASSERT_TRUE(image) << image.error().to_string();
    expect_read_error(**image, 7 * kMiB, 4096, ErrorCode::kCorrupt, "header section", via);
    expect_bytes(**image, b, 0, 7 * kMiB);
  }
}

TEST(Corruption, BatEntryReservedState4) {
  ImageBuilder b = base_builder();
  BlockSpec bad;
  bad.raw_entry = 4;
  b.set_block(3, bad);
  Bytes bytes = b.build();
  for (Via via : {Via::kPosix, Via::kMemory}) {
    SCOPED_TRACE(via_name(via));
    auto image = open_via(via, bytes);
    ASSERT_TRUE(image) << image.error().to_string();
    expect_read_error(**image, 3 * kMiB, 4096, ErrorCode::kCorrupt, "state 4", via);
    auto counts = (*image)->count_blocks();
    ASSERT_FALSE(counts);
    EXPECT_EQ(counts.error().code(), ErrorCode::kCorrupt) << counts.error().to_string();
    expect_bytes(**image, b, 0, 3 * kMiB);
    expect_bytes(**image, b, 4 * kMiB, 4 * kMiB);
  }
}

TEST(Corruption, BatEntryReservedBitsSet) {
  ImageBuilder b = base_builder();
  BlockSpec bad = BlockSpec::present_fill(0x33);
  b.set_block(6, bad);
  b.build();
  std::uint64_t offset = b.layout().block_offsets[6];
  bad.raw_entry = format::encode_bat_entry(6, offset) | (1u << 10);
  b.set_block(6, bad);
  Bytes bytes = b.build();
  ASSERT_EQ(b.layout().block_offsets[6], offset);
  for (Via via : {Via::kPosix, Via::kMemory}) {
    SCOPED_TRACE(via_name(via));
    auto image = open_via(via, bytes);
    ASSERT_TRUE(image) << image.error().to_string();
    expect_read_error(**image, 6 * kMiB, 4096, ErrorCode::kCorrupt, "reserved", via);
  }
}

TEST(Corruption, PartiallyPresentInDynamicImage) {
  ImageBuilder b = base_builder();
  b.set_block(6, BlockSpec::with_state(PayloadState::kPartiallyPresent));
  Bytes bytes = b.build();
  for (Via via : {Via::kPosix, Via::kMemory}) {
    SCOPED_TRACE(via_name(via));
    auto image = open_via(via, bytes);
    ASSERT_TRUE(image) << image.error().to_string();
    expect_read_error(**image, 6 * kMiB, 4096, ErrorCode::kCorrupt,
                      "state 7 is not a valid payload state", via);
    expect_bytes(**image, b, 0, 6 * kMiB);
  }
}

TEST(Corruption, DuplicateBlockOffsets) {
  ImageBuilder b = base_builder();
  b.build();
  BlockSpec dup = BlockSpec::with_state(PayloadState::kFullyPresent);
  dup.allocate = false;
  dup.entry_offset = b.layout().block_offsets[0];
  b.set_block(7, dup);
  Bytes bytes = b.build();
  // Two entries sharing one block is a violation a reader cannot see without scanning the whole
  // BAT; reads need not fail, but must stay inside the file: block 7 shows block 0's bytes.
  expect_open(bytes, [&](Image& image) {
    Bytes got(kMiB);
    ASSERT_TRUE(image.read(7 * kMiB, got));
    EXPECT_TRUE(got == b.expected_bytes(0, kMiB));
  });
}

TEST(Corruption, SectorBitmapPresentInDynamicImage) {
  // 4097 blocks of 1 MiB with 512-byte sectors: chunk ratio 4096, so the BAT holds chunk 0's
  // bitmap entry at index 4096, between payload blocks 4095 and 4096.
  ImageSpec spec = base_spec();
  spec.virtual_size = 4097 * kMiB;
  ImageBuilder b(spec);
  add_base_blocks(b);
  b.set_block(4096, BlockSpec::present_fill(0x77));
  b.build();
  ASSERT_EQ(b.layout().bat_entries, 4098u);
  b.set_bitmap_entry(0, format::encode_bat_entry(6, b.layout().payload_offset + 3 * kMiB));
  Bytes bytes = b.build();
  for (Via via : {Via::kPosix, Via::kMemory}) {
    SCOPED_TRACE(via_name(via));
    auto image = open_via(via, bytes);
    ASSERT_TRUE(image) << image.error().to_string();
    auto counts = (*image)->count_blocks();
    ASSERT_FALSE(counts) << "count_blocks accepted a present sector bitmap in a dynamic image";
    record(counts.error(), via);
    EXPECT_EQ(counts.error().code(), ErrorCode::kCorrupt) << counts.error().to_string();
    EXPECT_NE(counts.error().message().find("bitmap"), std::string::npos)
        << counts.error().message();
    // Payload entries around the bitmap slot still map right.
    expect_bytes(**image, b, 0, 2 * kMiB);
    expect_bytes(**image, b, 4096 * kMiB, kMiB);
  }
}

TEST(Corruption, HugeVirtualSizeTinyFile) {
  // 64 TiB with 256 MiB blocks: 262144 payload entries in a 3 MiB BAT, a 6 MiB file. (A data
  // block would add 256 MiB, so the blocks are ZERO, UNMAPPED and NOT_PRESENT.)
  ImageSpec spec;
  spec.virtual_size = 64 * kTiB;
  spec.block_size = 256 * kMiB;
  ImageBuilder b(spec);
  std::uint64_t last = 64 * kTiB / (256 * kMiB) - 1;
  b.set_block(0, BlockSpec::with_state(PayloadState::kZero));
  b.set_block(last, BlockSpec::with_state(PayloadState::kUnmapped));
  Bytes bytes = b.build();
  ASSERT_EQ(bytes.size(), 6 * kMiB);
  expect_open(bytes, [&](Image& image) {
    EXPECT_EQ(image.info().virtual_size, 64 * kTiB);
    EXPECT_EQ(image.info().payload_blocks, last + 1);
    expect_bytes(image, b, 0, 8192);
    expect_bytes(image, b, 32 * kTiB + 12345, 4096);
    expect_bytes(image, b, 64 * kTiB - 8192, 8192);
    auto extents = image.block_status(0, 64 * kTiB);
    ASSERT_TRUE(extents) << extents.error().to_string();
    auto want = b.expected_extents(0, 64 * kTiB);
    ASSERT_EQ(extents->size(), want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ((*extents)[i].offset, want[i].offset);
      EXPECT_EQ((*extents)[i].length, want[i].length);
      EXPECT_EQ((*extents)[i].kind, want[i].kind);
    }
    Bytes past(1);
    auto r = image.read(64 * kTiB, past);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ErrorCode::kOutOfRange);
  });
}

}  // namespace
}  // namespace vhdx::testing
