#include "format/metadata.h"

#include <algorithm>
#include <cassert>
#include <string>

#include "base/checked_math.h"
#include "base/endian.h"
#include "format/codec_util.h"
#include "format/constants.h"

namespace vhdx::format {

using detail::corrupt;
using detail::hex;

namespace {

constexpr std::string_view kWhat = "metadata table";
constexpr std::string_view kItems = "metadata";
constexpr std::size_t kEntryCountAt = 10;

constexpr std::uint32_t kFlagIsUser = 1u << 0;
constexpr std::uint32_t kFlagIsVirtualDisk = 1u << 1;
constexpr std::uint32_t kFlagIsRequired = 1u << 2;

constexpr std::uint32_t kParamLeaveBlockAllocated = 1u << 0;
constexpr std::uint32_t kParamHasParent = 1u << 1;

// The system items in the order decode_disk_metadata handles them.
const Guid* const kSystemIds[6] = {&kFileParametersGuid,    &kVirtualDiskSizeGuid,
                                   &kLogicalSectorSizeGuid, &kPhysicalSectorSizeGuid,
                                   &kVirtualDiskIdGuid,     &kParentLocatorGuid};

std::string item_label(std::size_t index, const MetadataEntry& e) {
  std::string name = metadata_item_name(e.item_id);
  if (name == "unknown" || e.is_user)
    name = (e.is_user ? "user item " : "item ") + e.item_id.to_string();
  return "entry " + std::to_string(index) + " (" + name + ")";
}

}  // namespace

const char* metadata_item_name(const Guid& item_id) {
  if (item_id == kFileParametersGuid) return "file-parameters";
  if (item_id == kVirtualDiskSizeGuid) return "virtual-disk-size";
  if (item_id == kVirtualDiskIdGuid) return "virtual-disk-id";
  if (item_id == kLogicalSectorSizeGuid) return "logical-sector-size";
  if (item_id == kPhysicalSectorSizeGuid) return "physical-sector-size";
  if (item_id == kParentLocatorGuid) return "parent-locator";
  return "unknown";
}

Result<MetadataEntry> decode_metadata_entry(std::span<const std::uint8_t> bytes) {
  VHDX_TRY(detail::require_size("metadata table entry", bytes, kMetadataEntrySize));
  MetadataEntry e;
  e.item_id = detail::load_guid(bytes, 0);
  e.offset = load_le32(bytes, 16);
  e.length = load_le32(bytes, 20);
  std::uint32_t flags = load_le32(bytes, 24);
  e.is_user = (flags & kFlagIsUser) != 0;
  e.is_virtual_disk = (flags & kFlagIsVirtualDisk) != 0;
  e.is_required = (flags & kFlagIsRequired) != 0;
  return e;
}

Result<MetadataTable> decode_metadata_table(std::span<const std::uint8_t> bytes) {
  VHDX_TRY(detail::require_size(kWhat, bytes, kMetadataTableSize));
  if (!detail::has_signature(bytes, kMetadataSignature))
    return corrupt(kWhat, "signature is " + detail::quoted(bytes.first(8)) + ", not 'metadata'");
  std::uint16_t count = load_le16(bytes, kEntryCountAt);
  if (count > kMaxMetadataEntries)
    return corrupt(kWhat, "entry count " + std::to_string(count) + " exceeds the maximum of " +
                              std::to_string(kMaxMetadataEntries));
  MetadataTable table;
  table.entries.reserve(count);
  std::uint32_t user_entries = 0;
  for (std::size_t i = 0; i < count; ++i) {
    VHDX_ASSIGN_OR_RETURN(MetadataEntry e, decode_metadata_entry(bytes.subspan(
                                               kMetadataTableHeaderSize + i * kMetadataEntrySize,
                                               kMetadataEntrySize)));
    // Built only for an error message: every open decodes this table.
    const auto label = [&] { return item_label(i, e); };
    if (e.is_user && ++user_entries > kMaxUserMetadataEntries)
      return corrupt(kWhat, label() + ": more than " + std::to_string(kMaxUserMetadataEntries) +
                                " user entries");
    if (e.length > kMaxMetadataItemLength)
      return corrupt(kWhat, label() + ": length " + hex(e.length) + " exceeds 1 MiB");
    if (e.length == 0 && e.offset != 0)
      return corrupt(kWhat,
                     label() + ": length is 0 but offset is " + hex(e.offset) + " (must be 0)");
    if (e.length != 0 && e.offset < kMetadataTableSize)
      return corrupt(kWhat,
                     label() + ": offset " + hex(e.offset) + " lies inside the 64 KiB table");
    for (std::size_t j = 0; j < table.entries.size(); ++j) {
      const MetadataEntry& other = table.entries[j];
      if (other.item_id == e.item_id && other.is_user == e.is_user)
        return corrupt(kWhat, label() + ": repeats entry " + std::to_string(j));
    }
    table.entries.push_back(e);
  }
  return table;
}

void encode_metadata_table(const MetadataTable& table, std::span<std::uint8_t> out) {
  assert(out.size() >= kMetadataTableSize);
  assert(table.entries.size() <= kMaxMetadataEntries);
  out = out.first(kMetadataTableSize);
  std::fill(out.begin(), out.end(), 0);
  detail::put_signature(out, kMetadataSignature);
  store_le16(out, kEntryCountAt, static_cast<std::uint16_t>(table.entries.size()));
  for (std::size_t i = 0; i < table.entries.size(); ++i) {
    const MetadataEntry& e = table.entries[i];
    std::size_t at = kMetadataTableHeaderSize + i * kMetadataEntrySize;
    detail::store_guid(out, at, e.item_id);
    store_le32(out, at + 16, e.offset);
    store_le32(out, at + 20, e.length);
    store_le32(out, at + 24,
               (e.is_user ? kFlagIsUser : 0) | (e.is_virtual_disk ? kFlagIsVirtualDisk : 0) |
                   (e.is_required ? kFlagIsRequired : 0));
  }
}

Result<void> validate_metadata_layout(const MetadataTable& table, std::uint64_t region_length) {
  struct Span {
    std::uint64_t offset, length;
    std::size_t index;
  };
  std::vector<Span> spans;
  spans.reserve(table.entries.size());
  for (std::size_t i = 0; i < table.entries.size(); ++i) {
    const MetadataEntry& e = table.entries[i];
    if (e.length == 0) continue;                             // present but empty: occupies nothing
    std::uint64_t end = std::uint64_t{e.offset} + e.length;  // u32 + u32 cannot overflow
    if (end > region_length)
      return corrupt(kWhat, item_label(i, e) + ": [" + hex(e.offset) + ", +" + hex(e.length) +
                                ") ends past the region (" + hex(region_length) + " bytes)");
    spans.push_back({e.offset, e.length, i});
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.offset < b.offset; });
  for (std::size_t k = 1; k < spans.size(); ++k) {
    const Span& a = spans[k - 1];
    const Span& b = spans[k];
    if (ranges_overlap(a.offset, a.length, b.offset, b.length)) {
      std::size_t lo = std::min(a.index, b.index), hi = std::max(a.index, b.index);
      return corrupt(kWhat, item_label(hi, table.entries[hi]) + " overlaps " +
                                item_label(lo, table.entries[lo]));
    }
  }
  return ok();
}

Result<FileParameters> decode_file_parameters(std::span<const std::uint8_t> bytes) {
  constexpr std::string_view kName = "file-parameters item";
  VHDX_TRY(detail::require_size(kName, bytes, 8));
  std::uint32_t block_size = load_le32(bytes, 0);
  std::uint32_t flags = load_le32(bytes, 4);
  if (!is_power_of_two(block_size) || block_size < kMinBlockSize || block_size > kMaxBlockSize)
    return corrupt(
        kName, "block size " + hex(block_size) + " is not a power of two from 1 MiB to 256 MiB");
  if ((flags & ~(kParamLeaveBlockAllocated | kParamHasParent)) != 0)
    return corrupt(kName, "reserved flag bits set (flags " + hex(flags) + ")");
  FileParameters p;
  p.block_size = block_size;
  p.leave_block_allocated = (flags & kParamLeaveBlockAllocated) != 0;
  p.has_parent = (flags & kParamHasParent) != 0;
  return p;
}

void encode_file_parameters(const FileParameters& params, std::span<std::uint8_t> out) {
  assert(out.size() >= 8);
  store_le32(out, 0, params.block_size);
  store_le32(out, 4,
             (params.leave_block_allocated ? kParamLeaveBlockAllocated : 0) |
                 (params.has_parent ? kParamHasParent : 0));
}

Result<std::uint64_t> decode_virtual_disk_size(std::span<const std::uint8_t> bytes) {
  VHDX_TRY(detail::require_size("virtual-disk-size item", bytes, 8));
  return load_le64(bytes, 0);
}

void encode_virtual_disk_size(std::uint64_t size, std::span<std::uint8_t> out) {
  assert(out.size() >= 8);
  store_le64(out, 0, size);
}

Result<std::uint32_t> decode_sector_size(std::span<const std::uint8_t> bytes) {
  VHDX_TRY(detail::require_size("sector-size item", bytes, 4));
  std::uint32_t size = load_le32(bytes, 0);
  if (size != 512 && size != 4096)
    return detail::unsupported("sector-size item",
                               std::to_string(size) + " is not supported (only 512 and 4096)");
  return size;
}

void encode_sector_size(std::uint32_t size, std::span<std::uint8_t> out) {
  assert(out.size() >= 4);
  store_le32(out, 0, size);
}

Result<Guid> decode_virtual_disk_id(std::span<const std::uint8_t> bytes) {
  VHDX_TRY(detail::require_size("virtual disk id", bytes, 16));
  return detail::load_guid(bytes, 0);
}

Result<DiskMetadata> decode_disk_metadata(const MetadataTable& table,
                                          std::span<const std::uint8_t> region) {
  VHDX_TRY(validate_metadata_layout(table, region.size()));

  // The system items are never user items; a user item with a system GUID is just user data.
  const MetadataEntry* found[6] = {};
  for (std::size_t i = 0; i < table.entries.size(); ++i) {
    const MetadataEntry& e = table.entries[i];
    bool known = false;
    if (!e.is_user) {
      for (int k = 0; k < 6; ++k) {
        if (e.item_id == *kSystemIds[k]) {
          found[k] = &e;  // the table decoder guarantees (id, is_user) is unique
          known = true;
        }
      }
    }
    if (!known && e.is_required)
      return detail::unsupported(kItems, item_label(i, e) + " is marked required but unknown");
  }
  // Exact payload sizes (§6); the virtual disk ID accepts more (old QEMU wrote 256 bytes).
  constexpr std::uint32_t kMinLength[5] = {8, 8, 4, 4, 16};
  constexpr bool kExact[5] = {true, true, true, true, false};
  std::span<const std::uint8_t> payload[5];
  for (int k = 0; k < 5; ++k) {
    const Guid& id = *kSystemIds[k];
    const auto name = [&] { return std::string(metadata_item_name(id)) + " item"; };
    if (found[k] == nullptr)
      return corrupt(kItems, "missing " + name() + " (" + id.to_string() + ")");
    const MetadataEntry& e = *found[k];
    if (kExact[k] ? e.length != kMinLength[k] : e.length < kMinLength[k])
      return corrupt(kItems, name() + ": length " + std::to_string(e.length) +
                                 (kExact[k] ? ", expected " : ", need at least ") +
                                 std::to_string(kMinLength[k]));
    payload[k] = region.subspan(e.offset, e.length);
  }
  DiskMetadata md;
  auto in_metadata = [](Error e, int k) {
    return std::move(e)
        .with_context(std::string(metadata_item_name(*kSystemIds[k])) + " item")
        .with_context(kItems);
  };
  auto params = decode_file_parameters(payload[0]);
  if (!params) return in_metadata(std::move(params).error(), 0);
  md.file_parameters = *params;
  auto size = decode_virtual_disk_size(payload[1]);
  if (!size) return in_metadata(std::move(size).error(), 1);
  md.virtual_size = *size;
  auto logical = decode_sector_size(payload[2]);
  if (!logical) return in_metadata(std::move(logical).error(), 2);
  md.logical_sector_size = *logical;
  auto physical = decode_sector_size(payload[3]);
  if (!physical) return in_metadata(std::move(physical).error(), 3);
  md.physical_sector_size = *physical;
  auto id = decode_virtual_disk_id(payload[4]);
  if (!id) return in_metadata(std::move(id).error(), 4);
  md.virtual_disk_id = *id;

  if (md.virtual_size == 0) return corrupt(kItems, "virtual disk size is 0");
  if (md.virtual_size % md.logical_sector_size != 0)
    return corrupt(kItems, "virtual disk size " + hex(md.virtual_size) +
                               " is not a multiple of the logical sector size " +
                               std::to_string(md.logical_sector_size));
  // Beyond the format's limit but not inconsistent: a file we decline rather than a broken one.
  if (md.virtual_size > kMaxVirtualSize)
    return detail::unsupported(kItems,
                               "virtual disk size " + hex(md.virtual_size) + " exceeds 64 TiB");

  if (md.file_parameters.has_parent) {
    const MetadataEntry* locator = found[5];
    if (locator == nullptr)
      return corrupt(kItems, "missing parent-locator item (" + kParentLocatorGuid.to_string() +
                                 ") in a differencing image");
    auto decoded = decode_parent_locator(region.subspan(locator->offset, locator->length));
    if (!decoded) return in_metadata(std::move(decoded).error(), 5);
    md.parent_locator = *std::move(decoded);
  }
  return md;
}

}  // namespace vhdx::format
