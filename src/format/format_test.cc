// The codecs against real structures: the libvhdi fragments and a Windows-made dynamic image
// (values from shared/corpus/dissect-dynamic/inspect.json and the fragments' bytes).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/endian.h"
#include "format/bat.h"
#include "format/constants.h"
#include "format/file_identifier.h"
#include "format/header.h"
#include "format/log_entry.h"
#include "format/metadata.h"
#include "format/parent_locator.h"
#include "format/region_table.h"
#include "format/test_util.h"

namespace vhdx::format {
namespace {

using testing::corpus_dir;
using testing::describe;
using testing::guid;
using testing::read_whole_file;

std::vector<std::uint8_t> fragment(const std::string& name) {
  auto bytes = read_whole_file(corpus_dir() + "/libvhdi-fragments/" + name);
  EXPECT_FALSE(bytes.empty()) << "missing corpus fragment " << name << " in " << corpus_dir();
  return bytes;
}

TEST(Fragments, FileIdentifier) {
  auto bytes = fragment("file_identifier.1");
  ASSERT_EQ(bytes.size(), 520u);
  auto id = decode_file_identifier(bytes);
  ASSERT_TRUE(id) << describe(id);
  EXPECT_EQ(id->creator, "Microsoft Windows 10.0.19041.0");
}

TEST(Fragments, Header) {
  auto bytes = fragment("image_header.1");
  ASSERT_EQ(bytes.size(), 4096u);
  auto h = decode_header(bytes);
  ASSERT_TRUE(h) << describe(h);
  EXPECT_EQ(h->checksum, 0x9f69b235u);
  EXPECT_EQ(h->sequence_number, 6u);
  EXPECT_EQ(h->file_write_guid, guid("a3cccdd4-e8ce-4321-9243-cdaa37d5a0e2"));
  EXPECT_EQ(h->data_write_guid, guid("0ffbcd55-1320-498f-9c15-1a97335aafcd"));
  EXPECT_TRUE(h->log_guid.is_zero());
  EXPECT_EQ(h->log_version, 0u);
  EXPECT_EQ(h->version, 1u);
  EXPECT_EQ(h->log_length, 1048576u);
  EXPECT_EQ(h->log_offset, 1048576u);
  // Re-encoding reproduces the stored bytes, checksum included.
  std::vector<std::uint8_t> again(4096);
  encode_header(*h, again);
  EXPECT_EQ(again, bytes);
}

TEST(Fragments, RegionTable) {
  auto bytes = fragment("region_table.1");
  ASSERT_EQ(bytes.size(), 80u);
  // The fragment is the used part of the 64 KiB table; the rest is zero, which the stored
  // checksum covers.
  bytes.resize(kRegionTableSize, 0);
  auto table = decode_region_table(bytes);
  ASSERT_TRUE(table) << describe(table);
  ASSERT_EQ(table->entries.size(), 2u);
  EXPECT_EQ(table->entries[0].guid, kBatRegionGuid);
  EXPECT_EQ(table->entries[0].file_offset, 3u * kMiB);
  EXPECT_EQ(table->entries[0].length, 1u * kMiB);
  EXPECT_TRUE(table->entries[0].required);
  EXPECT_EQ(table->entries[1].guid, kMetadataRegionGuid);
  EXPECT_EQ(table->entries[1].file_offset, 2u * kMiB);
  EXPECT_EQ(table->entries[1].length, 1u * kMiB);
  EXPECT_TRUE(table->entries[1].required);
  EXPECT_EQ(load_le32(bytes, 4), 0xc66b8caeu);
  auto known = find_known_regions(*table);
  ASSERT_TRUE(known) << describe(known);
  EXPECT_EQ(known->bat.file_offset, 3u * kMiB);
  EXPECT_EQ(known->metadata.file_offset, 2u * kMiB);
  std::vector<std::uint8_t> again(kRegionTableSize);
  encode_region_table(*table, again);
  EXPECT_EQ(again, bytes);
  // The separate header and entry fragments are the same bytes.
  auto header = fragment("region_table_header.1");
  auto entry = fragment("region_table_entry.1");
  EXPECT_TRUE(std::equal(header.begin(), header.end(), bytes.begin()));
  EXPECT_TRUE(std::equal(entry.begin(), entry.end(), bytes.begin() + 16));
}

TEST(Fragments, MetadataTableHeaderAndEntry) {
  auto header = fragment("metadata_table_header.1");
  ASSERT_EQ(header.size(), 32u);
  EXPECT_EQ(std::string(header.begin(), header.begin() + 8), "metadata");
  EXPECT_EQ(load_le16(header, 10), 5u);  // entry count
  auto entry_bytes = fragment("metadata_table_entry.1");
  auto entry = decode_metadata_entry(entry_bytes);
  ASSERT_TRUE(entry) << describe(entry);
  EXPECT_EQ(entry->item_id, kFileParametersGuid);
  EXPECT_STREQ(metadata_item_name(entry->item_id), "file-parameters");
  EXPECT_EQ(entry->offset, 65536u);
  EXPECT_EQ(entry->length, 8u);
  EXPECT_FALSE(entry->is_user);
  EXPECT_FALSE(entry->is_virtual_disk);
  EXPECT_TRUE(entry->is_required);

  // A table made of the header fragment with the entry in slot 0 and four more system items.
  std::vector<std::uint8_t> table_bytes(kMetadataTableSize, 0);
  std::copy(header.begin(), header.end(), table_bytes.begin());
  std::copy(entry_bytes.begin(), entry_bytes.end(), table_bytes.begin() + 32);
  const Guid others[4] = {kVirtualDiskSizeGuid, kLogicalSectorSizeGuid, kPhysicalSectorSizeGuid,
                          kVirtualDiskIdGuid};
  for (int i = 0; i < 4; ++i) {
    std::size_t at = 64 + 32 * i;
    others[i].store(std::span<std::uint8_t, 16>(table_bytes.data() + at, 16));
    testing::put_le(table_bytes, at + 16, 65544 + 16 * i, 4);
    testing::put_le(table_bytes, at + 20, 4, 4);
    testing::put_le(table_bytes, at + 24, 6, 4);
  }
  auto table = decode_metadata_table(table_bytes);
  ASSERT_TRUE(table) << describe(table);
  ASSERT_EQ(table->entries.size(), 5u);
  EXPECT_EQ(table->entries[0].item_id, kFileParametersGuid);
  EXPECT_EQ(table->entries[0].offset, 65536u);
}

TEST(Fragments, ParentLocatorHeaderAndEntry) {
  auto header_bytes = fragment("parent_locator_header.1");
  ASSERT_EQ(header_bytes.size(), 20u);
  auto header = decode_parent_locator_header(header_bytes);
  ASSERT_TRUE(header) << describe(header);
  EXPECT_EQ(header->locator_type, kVhdxParentLocatorType);
  EXPECT_EQ(header->key_value_count, 5u);
  auto entry_bytes = fragment("parent_locator_entry.1");
  ASSERT_EQ(entry_bytes.size(), 12u);
  auto entry = decode_parent_locator_entry(entry_bytes);
  ASSERT_TRUE(entry) << describe(entry);
  EXPECT_EQ(entry->key_offset, 80u);     // 20 + 5 * 12: the strings follow the table
  EXPECT_EQ(entry->value_offset, 108u);  // right after the 28-byte key
  EXPECT_EQ(entry->key_length, 28u);     // "parent_linkage"
  EXPECT_EQ(entry->value_length, 76u);   // a braced GUID, 38 characters

  // The header alone claims 5 entries it does not hold.
  EXPECT_FAILS(decode_parent_locator(header_bytes), kCorrupt, "key/value count 5 needs 80 bytes");
}

// The Windows-made dynamic image, decompressed once for the suite.
class DynamicImage : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char dir_template[] = "/tmp/vhdx-format-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    const std::string path = dir_ + "/dynamic.vhdx";
    // The header section, log, metadata and BAT all lie in the first 4 MiB (inspect.json).
    const std::string cmd = "zcat '" + corpus_dir() +
                            "/dissect-dynamic/dynamic.vhdx.gz' | head -c 4194304 > '" + path + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    image_ = new std::vector<std::uint8_t>(read_whole_file(path));
    std::remove(path.c_str());
    rmdir(dir_.c_str());
  }
  static void TearDownTestSuite() {
    delete image_;
    image_ = nullptr;
  }
  static std::span<const std::uint8_t> at(std::uint64_t offset, std::uint64_t length) {
    return std::span<const std::uint8_t>(*image_).subspan(offset, length);
  }

  static inline std::string dir_;
  static inline std::vector<std::uint8_t>* image_ = nullptr;
};

TEST_F(DynamicImage, FileIdentifier) {
  ASSERT_EQ(image_->size(), 4194304u);
  auto id = decode_file_identifier(at(0, kFileIdentifierSize));
  ASSERT_TRUE(id) << describe(id);
  EXPECT_EQ(id->creator, "Microsoft Windows 10.0.18363.0");
}

TEST_F(DynamicImage, BothHeadersAndTheCurrentOne) {
  auto h1 = decode_header(at(kHeaderOffsets[0], kHeaderSize));
  auto h2 = decode_header(at(kHeaderOffsets[1], kHeaderSize));
  ASSERT_TRUE(h1) << describe(h1);
  ASSERT_TRUE(h2) << describe(h2);
  EXPECT_EQ(h1->sequence_number, 14u);
  EXPECT_EQ(h2->sequence_number, 15u);
  for (const Header* h : {&*h1, &*h2}) {
    EXPECT_EQ(h->file_write_guid, guid("affd6e38-6e57-4764-8caa-7218669affba"));
    EXPECT_EQ(h->data_write_guid, guid("28e09ae1-ab94-4815-a155-f143e2d00a3f"));
    EXPECT_TRUE(h->log_guid.is_zero());
    EXPECT_EQ(h->log_version, 0u);
    EXPECT_EQ(h->version, 1u);
    EXPECT_EQ(h->log_length, 1048576u);
    EXPECT_EQ(h->log_offset, 1048576u);
  }
  auto choice = choose_current_header(h1, h2, at(kHeaderOffsets[0], kHeaderSize),
                                      at(kHeaderOffsets[1], kHeaderSize));
  ASSERT_TRUE(choice) << describe(choice);
  EXPECT_EQ(choice->current, 1);  // inspect.json: current_header 2
}

TEST_F(DynamicImage, BothRegionTables) {
  for (std::uint64_t offset : kRegionTableOffsets) {
    auto table = decode_region_table(at(offset, kRegionTableSize));
    ASSERT_TRUE(table) << describe(table);
    ASSERT_EQ(table->entries.size(), 2u);
    EXPECT_EQ(table->entries[0].guid, kBatRegionGuid);
    EXPECT_EQ(table->entries[0].file_offset, 3145728u);
    EXPECT_EQ(table->entries[0].length, 1048576u);
    EXPECT_TRUE(table->entries[0].required);
    EXPECT_EQ(table->entries[1].guid, kMetadataRegionGuid);
    EXPECT_EQ(table->entries[1].file_offset, 2097152u);
    EXPECT_EQ(table->entries[1].length, 1048576u);
    EXPECT_TRUE(table->entries[1].required);
  }
}

TEST_F(DynamicImage, Metadata) {
  auto region = at(2097152, 1048576);
  auto table = decode_metadata_table(region);
  ASSERT_TRUE(table) << describe(table);
  struct Expected {
    Guid id;
    std::uint32_t offset, length;
    bool is_virtual_disk;
  };
  const Expected expected[] = {{kFileParametersGuid, 65536, 8, false},
                               {kVirtualDiskSizeGuid, 65544, 8, true},
                               {kLogicalSectorSizeGuid, 65552, 4, true},
                               {kPhysicalSectorSizeGuid, 65556, 4, true},
                               {kVirtualDiskIdGuid, 65560, 16, true}};
  ASSERT_EQ(table->entries.size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(table->entries[i].item_id, expected[i].id);
    EXPECT_EQ(table->entries[i].offset, expected[i].offset);
    EXPECT_EQ(table->entries[i].length, expected[i].length);
    EXPECT_FALSE(table->entries[i].is_user);
    EXPECT_EQ(table->entries[i].is_virtual_disk, expected[i].is_virtual_disk);
    EXPECT_TRUE(table->entries[i].is_required);
  }
  auto md = decode_disk_metadata(*table, region);
  ASSERT_TRUE(md) << describe(md);
  EXPECT_EQ(md->file_parameters.block_size, 33554432u);
  EXPECT_FALSE(md->file_parameters.leave_block_allocated);
  EXPECT_FALSE(md->file_parameters.has_parent);
  EXPECT_EQ(md->virtual_size, 10485760u);
  EXPECT_EQ(md->logical_sector_size, 512u);
  EXPECT_EQ(md->physical_sector_size, 4096u);
  EXPECT_EQ(md->virtual_disk_id, guid("788015f0-5e93-4bd2-a5de-b0cd8459db11"));
  EXPECT_FALSE(md->parent_locator.has_value());
}

TEST_F(DynamicImage, OldLogEntriesBelongToAnotherLog) {
  // Windows leaves entries in the log after a clean close, under a GUID the header no longer
  // carries (inspect.json: log_entries).
  const Guid old_guid = guid("d8f57516-064a-443d-a3f1-1baaa49589b6");
  const std::uint64_t log = 1048576;
  auto first = decode_log_entry(at(log, 4096), old_guid, 1048576);
  ASSERT_TRUE(first) << describe(first);
  EXPECT_EQ(first->header.entry_length, 4096u);
  EXPECT_EQ(first->header.tail, 0u);
  EXPECT_EQ(first->header.sequence_number, 2766278055522667019u);
  EXPECT_EQ(first->header.descriptor_count, 0u);
  EXPECT_EQ(first->header.flushed_file_offset, 37748736u);
  EXPECT_EQ(first->header.last_file_offset, 37748736u);
  EXPECT_TRUE(first->updates.empty());
  auto second = decode_log_entry(at(log + 4096, 8192), old_guid, 1048576);
  ASSERT_TRUE(second) << describe(second);
  EXPECT_EQ(second->header.tail, 4096u);
  EXPECT_EQ(second->header.sequence_number, 2766278055522667020u);
  EXPECT_EQ(second->header.descriptor_count, 1u);
  EXPECT_EQ(second->header.flushed_file_offset, 4194304u);
  EXPECT_EQ(second->header.last_file_offset, 37748736u);
  ASSERT_EQ(second->updates.size(), 1u);
  // Against the header's (zero) log GUID the entries are not part of any log to replay.
  EXPECT_FAILS(decode_log_entry(at(log, 4096), Guid(), 1048576), kCorrupt,
               "log GUID d8f57516-064a-443d-a3f1-1baaa49589b6 does not match the header's "
               "00000000-0000-0000-0000-000000000000");
}

TEST_F(DynamicImage, BatGeometryAndOnlyEntry) {
  auto g = compute_bat_geometry(33554432, 10485760, 512, false);
  ASSERT_TRUE(g) << describe(g);
  EXPECT_EQ(g->chunk_ratio, 128u);  // inspect.json: bat
  EXPECT_EQ(g->payload_blocks, 1u);
  EXPECT_EQ(g->total_entries, 1u);
  EXPECT_LE(g->min_region_length(), 1048576u);  // the BAT region's length
  BatEntry e = decode_bat_entry(load_le64(at(3145728, 8), 0));
  EXPECT_EQ(e.state, static_cast<std::uint8_t>(PayloadState::kFullyPresent));
  EXPECT_EQ(e.file_offset, 4194304u);  // §15a: payload from 4 MiB
  EXPECT_FALSE(e.reserved_bits_set);
  EXPECT_EQ(load_le64(at(3145728 + 8, 8), 0), 0u);  // nothing after the last entry
}

// The first `length` bytes of a compressed corpus image, decompressed through a pipe.
std::vector<std::uint8_t> image_prefix(const std::string& tool, const std::string& relative,
                                       std::size_t length) {
  const std::string cmd =
      tool + " '" + corpus_dir() + "/" + relative + "' | head -c " + std::to_string(length);
  std::vector<std::uint8_t> bytes(length);
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return {};
  std::size_t got = std::fread(bytes.data(), 1, length, pipe);
  pclose(pipe);
  bytes.resize(got);
  return bytes;
}

TEST(QemuDirtyLogImage, HeadersMetadataAndPendingLogEntry) {
  auto image =
      image_prefix("bzcat", "local-qemu72-dirtylog/qemu72-pending-bat-log.vhdx.bz2", 4 * kMiB);
  ASSERT_EQ(image.size(), 4 * kMiB);
  std::span<const std::uint8_t> bytes(image);
  auto id = decode_file_identifier(bytes.first(kFileIdentifierSize));
  ASSERT_TRUE(id) << describe(id);
  EXPECT_EQ(id->creator, "QEMU v7.2.22");
  auto h1 = decode_header(bytes.subspan(kHeaderOffsets[0], kHeaderSize));
  auto h2 = decode_header(bytes.subspan(kHeaderOffsets[1], kHeaderSize));
  ASSERT_TRUE(h1) << describe(h1);
  ASSERT_TRUE(h2) << describe(h2);
  EXPECT_EQ(h1->sequence_number, 547144593u);
  EXPECT_EQ(h2->sequence_number, 547144594u);
  EXPECT_EQ(h2->data_write_guid, guid("ebbd38fd-6808-2845-9d62-129cd3afe70a"));
  const Guid log_guid = guid("c3f5caec-4c1d-c54e-90d5-48e9bc17ac53");
  EXPECT_EQ(h2->log_guid, log_guid);
  auto choice = choose_current_header(h1, h2, bytes.subspan(kHeaderOffsets[0], kHeaderSize),
                                      bytes.subspan(kHeaderOffsets[1], kHeaderSize));
  ASSERT_TRUE(choice) << describe(choice);
  EXPECT_EQ(choice->current, 1);

  // QEMU marks its regions not required and puts the BAT first at 2 MiB.
  auto table = decode_region_table(bytes.subspan(kRegionTableOffsets[0], kRegionTableSize));
  ASSERT_TRUE(table) << describe(table);
  auto known = find_known_regions(*table);
  ASSERT_TRUE(known) << describe(known);
  EXPECT_EQ(known->bat.file_offset, 2 * kMiB);
  EXPECT_FALSE(known->bat.required);
  EXPECT_EQ(known->metadata.file_offset, 3 * kMiB);

  auto region = bytes.subspan(3 * kMiB, kMiB);
  auto mt = decode_metadata_table(region);
  ASSERT_TRUE(mt) << describe(mt);
  ASSERT_EQ(mt->entries.size(), 5u);
  EXPECT_EQ(mt->entries[2].item_id, kVirtualDiskIdGuid);  // QEMU's order (§15a)
  auto md = decode_disk_metadata(*mt, region);
  ASSERT_TRUE(md) << describe(md);
  EXPECT_EQ(md->file_parameters.block_size, kMiB);
  EXPECT_EQ(md->virtual_size, 16 * kMiB);
  EXPECT_EQ(md->logical_sector_size, 512u);
  EXPECT_EQ(md->physical_sector_size, 512u);
  EXPECT_EQ(md->virtual_disk_id, guid("8e80e099-cff2-ed4f-a38b-f1fcebc5b75a"));

  // The pending entry: one data descriptor carrying the first BAT sector (at 2 MiB).
  auto entry = decode_log_entry(bytes.subspan(h2->log_offset, 8192), log_guid, h2->log_length);
  ASSERT_TRUE(entry) << describe(entry);
  EXPECT_EQ(entry->header.checksum, 0xda9ff4c7u);
  EXPECT_EQ(entry->header.entry_length, 8192u);
  EXPECT_EQ(entry->header.tail, 0u);
  EXPECT_EQ(entry->header.sequence_number, 1u);
  EXPECT_EQ(entry->header.flushed_file_offset, 9437184u);
  EXPECT_EQ(entry->header.last_file_offset, 9437184u);
  ASSERT_EQ(entry->updates.size(), 1u);
  const LogUpdate& u = entry->updates[0];
  EXPECT_EQ(u.kind, LogUpdate::Kind::kData);
  EXPECT_EQ(u.file_offset, 2 * kMiB);
  // BAT entry 0 becomes FULLY_PRESENT at 8 MiB; blocks 1-15 stay ZERO; the rest is unused.
  EXPECT_EQ(load_le64(u.data, 0), 0x800006u);
  for (std::size_t i = 1; i < 512; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(load_le64(u.data, 8 * i), i < 16 ? 2u : 0u);
  }
  // And it re-encodes to the same bytes.
  auto again = encode_log_entry(entry->header, entry->updates);
  EXPECT_TRUE(std::equal(again.begin(), again.end(), bytes.begin() + h2->log_offset));
}

TEST(WindowsDifferencingImage, MetadataAndParentLocator) {
  auto image = image_prefix("zcat", "dissect-differencing/differencing.avhdx.gz", 3 * kMiB);
  ASSERT_EQ(image.size(), 3 * kMiB);
  std::span<const std::uint8_t> bytes(image);
  auto table = decode_region_table(bytes.subspan(kRegionTableOffsets[1], kRegionTableSize));
  ASSERT_TRUE(table) << describe(table);
  auto known = find_known_regions(*table);
  ASSERT_TRUE(known) << describe(known);
  EXPECT_EQ(known->metadata.file_offset, 2 * kMiB);
  auto region = bytes.subspan(2 * kMiB, kMiB);
  auto mt = decode_metadata_table(region);
  ASSERT_TRUE(mt) << describe(mt);
  ASSERT_EQ(mt->entries.size(), 6u);
  EXPECT_EQ(mt->entries[5].item_id, kParentLocatorGuid);
  EXPECT_EQ(mt->entries[5].offset, 65576u);
  EXPECT_EQ(mt->entries[5].length, 1014u);
  auto md = decode_disk_metadata(*mt, region);
  ASSERT_TRUE(md) << describe(md);
  EXPECT_EQ(md->file_parameters.block_size, 2 * kMiB);
  EXPECT_TRUE(md->file_parameters.has_parent);
  EXPECT_EQ(md->virtual_size, 8 * kGiB);
  EXPECT_EQ(md->virtual_disk_id, guid("89ca62b5-b00d-4b8e-b79a-87e20cad5a40"));
  ASSERT_TRUE(md->parent_locator.has_value());
  const ParentLocator& pl = *md->parent_locator;
  EXPECT_EQ(pl.locator_type, kVhdxParentLocatorType);
  EXPECT_EQ(pl.entries.size(), 5u);
  EXPECT_EQ(pl.find("parent_linkage"), "{ff34003b-11ed-4cf8-a166-b2be05e20b80}");
  EXPECT_EQ(pl.find("parent_linkage2"), "{00000000-0000-0000-0000-000000000000}");
  EXPECT_EQ(pl.find("relative_path"), ".\\Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx");
  EXPECT_EQ(pl.find("absolute_win32_path"),
            "C:\\Users\\Public\\Documents\\Hyper-V\\Virtual hard disks\\Generation "
            "1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx");
  EXPECT_EQ(pl.find("volume_path"),
            "\\\\?\\Volume{0eba351e-5634-46d6-a8cf-4ddc2d6ac0b9}\\Users\\Public\\Documents\\"
            "Hyper-V\\Virtual hard disks\\Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx");
  // The first entry is the one the parent_locator_entry.1 fragment shows for the same layout.
  auto item = region.subspan(65576, 1014);
  auto first = decode_parent_locator_entry(item.subspan(20, 12));
  ASSERT_TRUE(first) << describe(first);
  EXPECT_EQ(first->key_offset, 80u);
}

}  // namespace
}  // namespace vhdx::format
