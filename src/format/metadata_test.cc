#include "format/metadata.h"

#include <gtest/gtest.h>

#include <vector>

#include "base/endian.h"
#include "format/constants.h"
#include "format/parent_locator.h"
#include "format/test_util.h"

namespace vhdx::format {
namespace {

using testing::describe;
using testing::guid;

const Guid kUserItem = guid("a0a1a2a3-b0b1-c0c1-d0d1-d2d3d4d5d6d7");

std::vector<std::uint8_t> encoded(const MetadataTable& t) {
  std::vector<std::uint8_t> bytes(kMetadataTableSize, 0xEE);
  encode_metadata_table(t, bytes);
  return bytes;
}

MetadataTable sample_table() {
  MetadataTable t;
  t.entries.push_back({kFileParametersGuid, 0x10000, 8, false, false, true});
  t.entries.push_back({kVirtualDiskSizeGuid, 0x10008, 8, false, true, true});
  t.entries.push_back({kUserItem, 0x20000, 0x100, true, false, false});
  t.entries.push_back({kUserItem, 0, 0, false, true, false});  // same id, system: present, empty
  return t;
}

TEST(MetadataTable, GoldenBytes) {
  std::vector<std::uint8_t> expected(kMetadataTableSize, 0);
  testing::put_ascii(expected, 0, "metadata");
  testing::put_bytes(expected, 10, {4, 0});  // entry count
  // Entry 0 at 32: File Parameters GUID (CAA16737-FA36-4D43-B3B6-33F0AA44E76B), offset 64 KiB,
  // length 8, flags IsRequired.
  testing::put_bytes(expected, 32,
                     {0x37, 0x67, 0xA1, 0xCA, 0x36, 0xFA, 0x43, 0x4D, 0xB3, 0xB6, 0x33, 0xF0, 0xAA,
                      0x44, 0xE7, 0x6B});
  testing::put_bytes(expected, 48, {0x00, 0x00, 0x01, 0x00, 8, 0, 0, 0, 4, 0, 0, 0});
  // Entry 1 at 64: Virtual Disk Size (2FA54224-CD1B-4876-B211-5DBED83BF4B8), flags 0x6.
  testing::put_bytes(expected, 64,
                     {0x24, 0x42, 0xA5, 0x2F, 0x1B, 0xCD, 0x76, 0x48, 0xB2, 0x11, 0x5D, 0xBE, 0xD8,
                      0x3B, 0xF4, 0xB8});
  testing::put_bytes(expected, 80, {0x08, 0x00, 0x01, 0x00, 8, 0, 0, 0, 6, 0, 0, 0});
  // Entry 2 at 96: a user item, flags IsUser.
  testing::put_bytes(expected, 96,
                     {0xa3, 0xa2, 0xa1, 0xa0, 0xb1, 0xb0, 0xc1, 0xc0, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4,
                      0xd5, 0xd6, 0xd7});
  testing::put_bytes(expected, 112, {0x00, 0x00, 0x02, 0x00, 0x00, 0x01, 0, 0, 1, 0, 0, 0});
  // Entry 3 at 128: same GUID, not user, empty, flags IsVirtualDisk.
  testing::put_bytes(expected, 128,
                     {0xa3, 0xa2, 0xa1, 0xa0, 0xb1, 0xb0, 0xc1, 0xc0, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4,
                      0xd5, 0xd6, 0xd7});
  testing::put_bytes(expected, 144, {0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0});
  EXPECT_EQ(encoded(sample_table()), expected);
}

TEST(MetadataTable, RoundTrip) {
  MetadataTable t = sample_table();
  auto decoded = decode_metadata_table(encoded(t));
  ASSERT_TRUE(decoded) << describe(decoded);
  ASSERT_EQ(decoded->entries.size(), t.entries.size());
  for (std::size_t i = 0; i < t.entries.size(); ++i) {
    SCOPED_TRACE(i);
    const MetadataEntry& a = decoded->entries[i];
    const MetadataEntry& b = t.entries[i];
    EXPECT_EQ(a.item_id, b.item_id);
    EXPECT_EQ(a.offset, b.offset);
    EXPECT_EQ(a.length, b.length);
    EXPECT_EQ(a.is_user, b.is_user);
    EXPECT_EQ(a.is_virtual_disk, b.is_virtual_disk);
    EXPECT_EQ(a.is_required, b.is_required);
  }
}

TEST(MetadataTable, EntryDecoderNeeds32Bytes) {
  std::vector<std::uint8_t> b(31, 0);
  EXPECT_FAILS(decode_metadata_entry(b), kCorrupt,
               "metadata table entry: truncated (31 bytes, need 32)");
}

TEST(MetadataTable, RejectsTruncated) {
  auto bytes = encoded(sample_table());
  bytes.resize(kMetadataTableSize - 1);
  EXPECT_FAILS(decode_metadata_table(bytes), kCorrupt,
               "metadata table: truncated (65535 bytes, need 65536)");
}

TEST(MetadataTable, RejectsBadSignature) {
  auto bytes = encoded(sample_table());
  bytes[7] = 'A';
  EXPECT_FAILS(decode_metadata_table(bytes), kCorrupt,
               "metadata table: signature is 'metadatA', not 'metadata'");
}

TEST(MetadataTable, RejectsTooManyEntries) {
  auto bytes = encoded(sample_table());
  store_le16(bytes, 10, 2048);
  EXPECT_FAILS(decode_metadata_table(bytes), kCorrupt,
               "metadata table: entry count 2048 exceeds the maximum of 2047");
}

TEST(MetadataTable, RejectsMoreThan1024UserEntries) {
  MetadataTable t;
  for (std::uint32_t i = 0; i < 1025; ++i) {
    std::array<std::uint8_t, 16> id{};
    store_le32(id, 0, i + 1);
    t.entries.push_back({Guid::from_bytes(id), 0, 0, true, false, false});
  }
  t.entries.pop_back();
  auto ok = decode_metadata_table(encoded(t));
  ASSERT_TRUE(ok) << describe(ok);
  EXPECT_EQ(ok->entries.size(), 1024u);
  std::array<std::uint8_t, 16> id{};
  store_le32(id, 0, 5000);
  t.entries.push_back({Guid::from_bytes(id), 0, 0, true, false, false});
  EXPECT_FAILS(decode_metadata_table(encoded(t)), kCorrupt,
               "entry 1024 (user item 00001388-0000-0000-0000-000000000000): more than 1024 "
               "user entries");
}

TEST(MetadataTable, RejectsItemLongerThan1MiB) {
  MetadataTable t;
  t.entries.push_back(
      {kVirtualDiskIdGuid, 0x10000, static_cast<std::uint32_t>(kMiB + 1), false, true, true});
  EXPECT_FAILS(decode_metadata_table(encoded(t)), kCorrupt,
               "metadata table: entry 0 (virtual-disk-id): length 0x100001 exceeds 1 MiB");
  t.entries[0].length = static_cast<std::uint32_t>(kMiB);
  EXPECT_TRUE(decode_metadata_table(encoded(t)));
}

TEST(MetadataTable, RejectsEmptyItemWithOffset) {
  MetadataTable t;
  t.entries.push_back({kFileParametersGuid, 0x10000, 0, false, false, true});
  EXPECT_FAILS(decode_metadata_table(encoded(t)), kCorrupt,
               "entry 0 (file-parameters): length is 0 but offset is 0x10000 (must be 0)");
}

TEST(MetadataTable, RejectsOffsetInsideTable) {
  MetadataTable t;
  t.entries.push_back({kFileParametersGuid, 0xFFFF, 8, false, false, true});
  EXPECT_FAILS(decode_metadata_table(encoded(t)), kCorrupt,
               "entry 0 (file-parameters): offset 0xffff lies inside the 64 KiB table");
}

TEST(MetadataTable, RejectsRepeatedItem) {
  MetadataTable t = sample_table();
  t.entries.push_back({kVirtualDiskSizeGuid, 0x10010, 8, false, true, true});
  EXPECT_FAILS(decode_metadata_table(encoded(t)), kCorrupt,
               "entry 4 (virtual-disk-size): repeats entry 1");
}

TEST(MetadataLayout, AcceptsAdjacentItemsInsideRegion) {
  MetadataTable t;
  t.entries.push_back({kFileParametersGuid, 0x10000, 8, false, false, true});
  t.entries.push_back({kVirtualDiskSizeGuid, 0x10008, 8, false, true, true});
  t.entries.push_back({kUserItem, 0, 0, true, false, false});
  t.entries.push_back({kVirtualDiskIdGuid, 0x1FFF0, 16, false, true, true});  // ends at the end
  EXPECT_TRUE(validate_metadata_layout(t, 0x20000));
}

TEST(MetadataLayout, RejectsItemPastRegion) {
  MetadataTable t;
  t.entries.push_back({kVirtualDiskIdGuid, 0x1FFF0, 17, false, true, true});
  EXPECT_FAILS(validate_metadata_layout(t, 0x20000), kCorrupt,
               "metadata table: entry 0 (virtual-disk-id): [0x1fff0, +0x11) ends past the region "
               "(0x20000 bytes)");
}

TEST(MetadataLayout, RejectsOverlap) {
  MetadataTable t;
  t.entries.push_back({kVirtualDiskSizeGuid, 0x10008, 8, false, true, true});
  t.entries.push_back({kFileParametersGuid, 0x10000, 9, false, false, true});
  EXPECT_FAILS(validate_metadata_layout(t, kMiB), kCorrupt,
               "entry 1 (file-parameters) overlaps entry 0 (virtual-disk-size)");
}

// Item payloads.
TEST(FileParameters, GoldenBytesAndRoundTrip) {
  std::uint8_t out[8];
  encode_file_parameters({32 * 1024 * 1024, true, false}, out);
  EXPECT_EQ(std::vector<std::uint8_t>(out, out + 8),
            (std::vector<std::uint8_t>{0, 0, 0, 2, 1, 0, 0, 0}));
  encode_file_parameters({1024 * 1024, false, true}, out);
  EXPECT_EQ(std::vector<std::uint8_t>(out, out + 8),
            (std::vector<std::uint8_t>{0, 0, 0x10, 0, 2, 0, 0, 0}));
  auto p = decode_file_parameters(out);
  ASSERT_TRUE(p) << describe(p);
  EXPECT_EQ(p->block_size, 1024u * 1024u);
  EXPECT_FALSE(p->leave_block_allocated);
  EXPECT_TRUE(p->has_parent);
  for (std::uint32_t bs = 1u << 20; bs <= 1u << 28; bs <<= 1) {
    encode_file_parameters({bs, true, true}, out);
    auto q = decode_file_parameters(out);
    ASSERT_TRUE(q) << describe(q);
    EXPECT_EQ(q->block_size, bs);
    EXPECT_TRUE(q->leave_block_allocated);
    EXPECT_TRUE(q->has_parent);
  }
}

TEST(FileParameters, RejectsTruncated) {
  std::uint8_t b[7] = {};
  EXPECT_FAILS(decode_file_parameters(b), kCorrupt,
               "file-parameters item: truncated (7 bytes, need 8)");
}

TEST(FileParameters, RejectsBlockSizeNotPowerOfTwo) {
  std::uint8_t b[8];
  encode_file_parameters({3 * 1024 * 1024, false, false}, b);
  EXPECT_FAILS(
      decode_file_parameters(b), kCorrupt,
      "file-parameters item: block size 0x300000 is not a power of two from 1 MiB to 256 MiB");
}

TEST(FileParameters, RejectsBlockSizeBelow1MiB) {
  std::uint8_t b[8];
  encode_file_parameters({512 * 1024, false, false}, b);
  EXPECT_FAILS(decode_file_parameters(b), kCorrupt, "block size 0x80000 is not a power of two");
  encode_file_parameters({0, false, false}, b);
  EXPECT_FAILS(decode_file_parameters(b), kCorrupt, "block size 0x0");
}

TEST(FileParameters, RejectsBlockSizeAbove256MiB) {
  std::uint8_t b[8];
  encode_file_parameters({512u * 1024 * 1024, false, false}, b);
  EXPECT_FAILS(decode_file_parameters(b), kCorrupt, "block size 0x20000000 is not a power of two");
}

TEST(FileParameters, RejectsReservedFlags) {
  std::uint8_t b[8];
  encode_file_parameters({1024 * 1024, true, false}, b);
  b[4] |= 4;
  EXPECT_FAILS(decode_file_parameters(b), kCorrupt,
               "file-parameters item: reserved flag bits set (flags 0x5)");
}

TEST(VirtualDiskSize, RoundTripAndGolden) {
  std::uint8_t b[8];
  encode_virtual_disk_size(0x0000400000000000ull, b);  // 64 TiB
  EXPECT_EQ(std::vector<std::uint8_t>(b, b + 8),
            (std::vector<std::uint8_t>{0, 0, 0, 0, 0, 0x40, 0, 0}));
  auto v = decode_virtual_disk_size(b);
  ASSERT_TRUE(v) << describe(v);
  EXPECT_EQ(*v, 64 * kTiB);
  EXPECT_FAILS(decode_virtual_disk_size(std::span(b, 7)), kCorrupt,
               "virtual-disk-size item: truncated");
}

TEST(SectorSize, AcceptsOnly512And4096) {
  std::uint8_t b[4];
  for (std::uint32_t size : {512u, 4096u}) {
    encode_sector_size(size, b);
    auto v = decode_sector_size(b);
    ASSERT_TRUE(v) << describe(v);
    EXPECT_EQ(*v, size);
  }
  encode_sector_size(4096, b);
  EXPECT_EQ(std::vector<std::uint8_t>(b, b + 4), (std::vector<std::uint8_t>{0, 0x10, 0, 0}));
  encode_sector_size(1024, b);
  EXPECT_FAILS(decode_sector_size(b), kUnsupported,
               "sector-size item: 1024 is not supported (only 512 and 4096)");
  encode_sector_size(0, b);
  EXPECT_FAILS(decode_sector_size(b), kUnsupported, "sector-size item: 0 is not supported");
  EXPECT_FAILS(decode_sector_size(std::span(b, 3)), kCorrupt, "sector-size item: truncated");
}

TEST(VirtualDiskId, AcceptsSixteenOrMoreBytes) {
  std::vector<std::uint8_t> b(256, 0xCC);
  guid("788015f0-5e93-4bd2-a5de-b0cd8459db11").store(std::span<std::uint8_t, 16>(b.data(), 16));
  auto id = decode_virtual_disk_id(b);  // old QEMU's 256-byte item: the first 16 bytes count
  ASSERT_TRUE(id) << describe(id);
  EXPECT_EQ(*id, guid("788015f0-5e93-4bd2-a5de-b0cd8459db11"));
  id = decode_virtual_disk_id(std::span(b).first(16));
  ASSERT_TRUE(id) << describe(id);
  EXPECT_EQ(id->to_string(), "788015f0-5e93-4bd2-a5de-b0cd8459db11");
  EXPECT_FAILS(decode_virtual_disk_id(std::span(b).first(15)), kCorrupt,
               "virtual disk id: truncated (15 bytes, need 16)");
}

TEST(MetadataItemName, NamesEveryKnownItem) {
  EXPECT_STREQ(metadata_item_name(kFileParametersGuid), "file-parameters");
  EXPECT_STREQ(metadata_item_name(kVirtualDiskSizeGuid), "virtual-disk-size");
  EXPECT_STREQ(metadata_item_name(kVirtualDiskIdGuid), "virtual-disk-id");
  EXPECT_STREQ(metadata_item_name(kLogicalSectorSizeGuid), "logical-sector-size");
  EXPECT_STREQ(metadata_item_name(kPhysicalSectorSizeGuid), "physical-sector-size");
  EXPECT_STREQ(metadata_item_name(kParentLocatorGuid), "parent-locator");
  EXPECT_STREQ(metadata_item_name(kUserItem), "unknown");
}

// A metadata region built item by item, Windows-style (§15a): items packed from 64 KiB.
struct RegionBuilder {
  struct Item {
    MetadataEntry entry;
    std::vector<std::uint8_t> payload;
  };
  std::vector<Item> items;
  std::uint64_t region_length = kMiB;

  RegionBuilder& add(const Guid& id, std::vector<std::uint8_t> payload, bool is_virtual_disk,
                     bool is_required = true, bool is_user = false) {
    items.push_back({{id, 0, 0, is_user, is_virtual_disk, is_required}, std::move(payload)});
    return *this;
  }
  Item* find(const Guid& id) {
    for (auto& item : items)
      if (item.entry.item_id == id) return &item;
    return nullptr;
  }
  void remove(const Guid& id) {
    std::erase_if(items, [&](const Item& item) { return item.entry.item_id == id; });
  }
  MetadataTable table;
  std::vector<std::uint8_t> region;
  void build() {
    table.entries.clear();
    region.assign(region_length, 0);
    std::uint32_t at = 0x10000;
    for (auto& item : items) {
      MetadataEntry e = item.entry;
      e.length = static_cast<std::uint32_t>(item.payload.size());
      e.offset = e.length == 0 ? 0 : at;
      std::copy(item.payload.begin(), item.payload.end(), region.begin() + e.offset);
      at += e.length;
      table.entries.push_back(e);
    }
    encode_metadata_table(table, region);
  }
  Result<DiskMetadata> decode() {
    build();
    auto t = decode_metadata_table(region);
    if (!t) return t.error();
    return decode_disk_metadata(*t, region);
  }
};

std::vector<std::uint8_t> file_parameters(std::uint32_t block_size, bool leave, bool parent) {
  std::vector<std::uint8_t> b(8);
  encode_file_parameters({block_size, leave, parent}, b);
  return b;
}
std::vector<std::uint8_t> u64_bytes(std::uint64_t v) {
  std::vector<std::uint8_t> b(8);
  store_le64(b, 0, v);
  return b;
}
std::vector<std::uint8_t> u32_bytes(std::uint32_t v) {
  std::vector<std::uint8_t> b(4);
  store_le32(b, 0, v);
  return b;
}
std::vector<std::uint8_t> guid_bytes(const Guid& g) {
  return std::vector<std::uint8_t>(g.bytes().begin(), g.bytes().end());
}

const Guid kDiskId = guid("788015f0-5e93-4bd2-a5de-b0cd8459db11");

RegionBuilder dynamic_region() {
  RegionBuilder b;
  b.add(kFileParametersGuid, file_parameters(32 * 1024 * 1024, false, false), false)
      .add(kVirtualDiskSizeGuid, u64_bytes(10 * kMiB), true)
      .add(kLogicalSectorSizeGuid, u32_bytes(512), true)
      .add(kPhysicalSectorSizeGuid, u32_bytes(4096), true)
      .add(kVirtualDiskIdGuid, guid_bytes(kDiskId), true);
  return b;
}

ParentLocator sample_locator() {
  ParentLocator l;
  l.locator_type = kVhdxParentLocatorType;
  l.entries = {{"parent_linkage", "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}"},
               {"relative_path", "..\\parent.vhdx"}};
  return l;
}

RegionBuilder differencing_region() {
  RegionBuilder b = dynamic_region();
  b.find(kFileParametersGuid)->payload = file_parameters(2 * 1024 * 1024, false, true);
  b.add(kParentLocatorGuid, encode_parent_locator(sample_locator()), false);
  return b;
}

TEST(DiskMetadata, DecodesDynamic) {
  auto md = dynamic_region().decode();
  ASSERT_TRUE(md) << describe(md);
  EXPECT_EQ(md->file_parameters.block_size, 32u * 1024 * 1024);
  EXPECT_FALSE(md->file_parameters.leave_block_allocated);
  EXPECT_FALSE(md->file_parameters.has_parent);
  EXPECT_EQ(md->virtual_size, 10 * kMiB);
  EXPECT_EQ(md->logical_sector_size, 512u);
  EXPECT_EQ(md->physical_sector_size, 4096u);
  EXPECT_EQ(md->virtual_disk_id, kDiskId);
  EXPECT_FALSE(md->parent_locator.has_value());
}

TEST(DiskMetadata, DecodesFixedWith4KSectors) {
  RegionBuilder b = dynamic_region();
  b.find(kFileParametersGuid)->payload = file_parameters(1024 * 1024, true, false);
  b.find(kLogicalSectorSizeGuid)->payload = u32_bytes(4096);
  auto md = b.decode();
  ASSERT_TRUE(md) << describe(md);
  EXPECT_TRUE(md->file_parameters.leave_block_allocated);
  EXPECT_EQ(md->logical_sector_size, 4096u);
}

TEST(DiskMetadata, DecodesDifferencingWithParentLocator) {
  auto md = differencing_region().decode();
  ASSERT_TRUE(md) << describe(md);
  EXPECT_TRUE(md->file_parameters.has_parent);
  ASSERT_TRUE(md->parent_locator.has_value());
  EXPECT_EQ(md->parent_locator->locator_type, kVhdxParentLocatorType);
  EXPECT_EQ(md->parent_locator->find("parent_linkage"), "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}");
  EXPECT_EQ(md->parent_locator->find("relative_path"), "..\\parent.vhdx");
}

TEST(DiskMetadata, IgnoresParentLocatorWithoutHasParent) {
  RegionBuilder b = differencing_region();
  b.find(kFileParametersGuid)->payload = file_parameters(2 * 1024 * 1024, false, false);
  b.find(kParentLocatorGuid)->payload = {1, 2, 3};  // not even decodable: it is not used
  auto md = b.decode();
  ASSERT_TRUE(md) << describe(md);
  EXPECT_FALSE(md->parent_locator.has_value());
}

TEST(DiskMetadata, AcceptsLongVirtualDiskIdItem) {
  RegionBuilder b = dynamic_region();
  auto id = guid_bytes(kDiskId);
  id.resize(256, 0x11);
  b.find(kVirtualDiskIdGuid)->payload = id;
  auto md = b.decode();
  ASSERT_TRUE(md) << describe(md);
  EXPECT_EQ(md->virtual_disk_id, kDiskId);
}

TEST(DiskMetadata, IgnoresUnknownOptionalItems) {
  RegionBuilder b = dynamic_region();
  b.add(kUserItem, {1, 2, 3, 4}, false, false, true);
  b.add(kUserItem, {5, 6}, true, false, false);
  // A user item that reuses a system GUID is user data, not the system item.
  b.add(kVirtualDiskSizeGuid, u64_bytes(12345), false, false, true);
  auto md = b.decode();
  ASSERT_TRUE(md) << describe(md);
  EXPECT_EQ(md->virtual_size, 10 * kMiB);
}

TEST(DiskMetadata, RejectsUnknownRequiredItemAsUnsupported) {
  RegionBuilder b = dynamic_region();
  b.add(kUserItem, {1, 2, 3, 4}, false, true, false);
  EXPECT_FAILS(b.decode(), kUnsupported,
               "metadata: entry 5 (item a0a1a2a3-b0b1-c0c1-d0d1-d2d3d4d5d6d7) is marked required "
               "but unknown");
}

TEST(DiskMetadata, RejectsRequiredUserItemAsUnsupported) {
  RegionBuilder b = dynamic_region();
  b.add(kFileParametersGuid, {1}, false, true, true);
  EXPECT_FAILS(b.decode(), kUnsupported,
               "entry 5 (user item caa16737-fa36-4d43-b3b6-33f0aa44e76b) is marked required");
}

TEST(DiskMetadata, RejectsEachMissingSystemItem) {
  const std::pair<Guid, std::string> items[] = {
      {kFileParametersGuid, "missing file-parameters item (caa16737-fa36-4d43-b3b6-33f0aa44e76b)"},
      {kVirtualDiskSizeGuid,
       "missing virtual-disk-size item (2fa54224-cd1b-4876-b211-5dbed83bf4b8)"},
      {kLogicalSectorSizeGuid,
       "missing logical-sector-size item (8141bf1d-a96f-4709-ba47-f233a8faab5f)"},
      {kPhysicalSectorSizeGuid,
       "missing physical-sector-size item (cda348c7-445d-4471-9cc9-e9885251c556)"},
      {kVirtualDiskIdGuid, "missing virtual-disk-id item (beca12ab-b2e6-4523-93ef-c309e000c746)"},
  };
  for (const auto& [id, message] : items) {
    SCOPED_TRACE(message);
    RegionBuilder b = dynamic_region();
    b.remove(id);
    EXPECT_FAILS(b.decode(), kCorrupt, "metadata: " + message);
  }
}

TEST(DiskMetadata, RejectsSystemItemOnlyPresentAsUserItem) {
  RegionBuilder b = dynamic_region();
  b.find(kVirtualDiskSizeGuid)->entry.is_user = true;
  b.find(kVirtualDiskSizeGuid)->entry.is_required = false;
  EXPECT_FAILS(b.decode(), kCorrupt, "missing virtual-disk-size item");
}

TEST(DiskMetadata, RejectsWrongItemLengths) {
  RegionBuilder b = dynamic_region();
  b.find(kFileParametersGuid)->payload.resize(12);
  EXPECT_FAILS(b.decode(), kCorrupt, "metadata: file-parameters item: length 12, expected 8");
  b = dynamic_region();
  b.find(kLogicalSectorSizeGuid)->payload.resize(8);
  EXPECT_FAILS(b.decode(), kCorrupt, "logical-sector-size item: length 8, expected 4");
  b = dynamic_region();
  b.find(kVirtualDiskIdGuid)->payload.resize(8);
  EXPECT_FAILS(b.decode(), kCorrupt, "virtual-disk-id item: length 8, need at least 16");
  b = dynamic_region();
  b.find(kVirtualDiskSizeGuid)->payload.clear();  // present but empty
  EXPECT_FAILS(b.decode(), kCorrupt, "virtual-disk-size item: length 0, expected 8");
}

TEST(DiskMetadata, RejectsBadFileParameters) {
  RegionBuilder b = dynamic_region();
  b.find(kFileParametersGuid)->payload = file_parameters(3 * 1024 * 1024, false, false);
  EXPECT_FAILS(b.decode(), kCorrupt, "metadata: file-parameters item: block size 0x300000");
}

TEST(DiskMetadata, RejectsLogicalSectorSize1024AsUnsupported) {
  RegionBuilder b = dynamic_region();
  b.find(kLogicalSectorSizeGuid)->payload = u32_bytes(1024);
  EXPECT_FAILS(b.decode(), kUnsupported,
               "metadata: logical-sector-size item: 1024 is not supported");
}

TEST(DiskMetadata, RejectsPhysicalSectorSize1024AsUnsupported) {
  RegionBuilder b = dynamic_region();
  b.find(kPhysicalSectorSizeGuid)->payload = u32_bytes(1024);
  EXPECT_FAILS(b.decode(), kUnsupported,
               "metadata: physical-sector-size item: 1024 is not supported");
}

TEST(DiskMetadata, RejectsZeroVirtualSize) {
  RegionBuilder b = dynamic_region();
  b.find(kVirtualDiskSizeGuid)->payload = u64_bytes(0);
  EXPECT_FAILS(b.decode(), kCorrupt, "metadata: virtual disk size is 0");
}

TEST(DiskMetadata, RejectsVirtualSizeNotSectorMultiple) {
  RegionBuilder b = dynamic_region();
  b.find(kLogicalSectorSizeGuid)->payload = u32_bytes(4096);
  b.find(kVirtualDiskSizeGuid)->payload = u64_bytes(10 * kMiB + 512);
  EXPECT_FAILS(b.decode(), kCorrupt,
               "metadata: virtual disk size 0xa00200 is not a multiple of the logical sector "
               "size 4096");
}

// Past 64 TiB is outside the format's limit (§13) yet self-consistent: the library declines it
// as kUnsupported rather than calling the file corrupt.
TEST(DiskMetadata, RejectsVirtualSizeAbove64TiBAsUnsupported) {
  RegionBuilder b = dynamic_region();
  b.find(kVirtualDiskSizeGuid)->payload = u64_bytes(64 * kTiB + 512);
  EXPECT_FAILS(b.decode(), kUnsupported,
               "metadata: virtual disk size 0x400000000200 exceeds 64 TiB");
  b.find(kVirtualDiskSizeGuid)->payload = u64_bytes(64 * kTiB);
  auto md = b.decode();
  ASSERT_TRUE(md) << describe(md);
  EXPECT_EQ(md->virtual_size, 64 * kTiB);
}

TEST(DiskMetadata, RejectsDifferencingWithoutParentLocator) {
  RegionBuilder b = differencing_region();
  b.remove(kParentLocatorGuid);
  EXPECT_FAILS(b.decode(), kCorrupt,
               "metadata: missing parent-locator item (a8d35f2d-b30b-454d-abf7-d3d84834ab0c) in "
               "a differencing image");
}

TEST(DiskMetadata, RejectsBadParentLocator) {
  RegionBuilder b = differencing_region();
  auto& payload = b.find(kParentLocatorGuid)->payload;
  store_le16(payload, 18, 50);  // more entries than the item holds
  EXPECT_FAILS(b.decode(), kCorrupt, "metadata: parent-locator item: key/value count 50");
}

TEST(DiskMetadata, RejectsItemOutsideRegion) {
  RegionBuilder b = dynamic_region();
  b.build();
  // The table claims an item past the region's end (the table decoder cannot know the length).
  auto table = decode_metadata_table(b.region);
  ASSERT_TRUE(table) << describe(table);
  EXPECT_FAILS(decode_disk_metadata(*table, std::span(b.region).first(0x10010)), kCorrupt,
               "metadata table: entry 2 (logical-sector-size): [0x10010, +0x4) ends past the "
               "region (0x10010 bytes)");
}

}  // namespace
}  // namespace vhdx::format
