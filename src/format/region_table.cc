#include "format/region_table.h"

#include <algorithm>
#include <cassert>
#include <string>

#include "base/checked_math.h"
#include "base/crc32c.h"
#include "base/endian.h"
#include "format/codec_util.h"
#include "format/constants.h"

namespace vhdx::format {

using detail::corrupt;
using detail::hex;

namespace {

constexpr std::string_view kWhat = "region table";
constexpr std::size_t kChecksumAt = 4;
constexpr std::size_t kEntryCountAt = 8;

std::string region_label(const Guid& guid) {
  if (guid == kBatRegionGuid) return "BAT";
  if (guid == kMetadataRegionGuid) return "metadata";
  return "region " + guid.to_string();
}

std::string entry_label(std::size_t index, const Guid& guid) {
  return "entry " + std::to_string(index) + " (" + region_label(guid) + ")";
}

}  // namespace

Result<RegionTable> decode_region_table(std::span<const std::uint8_t> bytes) {
  VHDX_TRY(detail::require_size(kWhat, bytes, kRegionTableSize));
  bytes = bytes.first(kRegionTableSize);
  if (!detail::has_signature(bytes, kRegionTableSignature))
    return corrupt(kWhat, "signature is " + detail::quoted(bytes.first(4)) + ", not 'regi'");
  std::uint32_t stored = load_le32(bytes, kChecksumAt);
  std::uint32_t computed = crc32c_with_zeroed_field(bytes, kChecksumAt);
  if (stored != computed)
    return corrupt(
        kWhat, "checksum mismatch (stored " + hex(stored) + ", computed " + hex(computed) + ")");
  std::uint32_t count = load_le32(bytes, kEntryCountAt);
  if (count > kMaxRegionEntries)
    return corrupt(kWhat, "entry count " + std::to_string(count) + " exceeds the maximum of " +
                              std::to_string(kMaxRegionEntries));
  RegionTable table;
  table.entries.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    std::size_t at = kRegionTableHeaderSize + std::size_t{i} * kRegionEntrySize;
    RegionEntry e;
    e.guid = detail::load_guid(bytes, at);
    e.file_offset = load_le64(bytes, at + 16);
    e.length = load_le32(bytes, at + 24);
    e.required = (load_le32(bytes, at + 28) & 1u) != 0;
    // Built only for an error message: every open decodes this table.
    const auto label = [&] { return entry_label(i, e.guid); };
    if (!is_aligned(e.file_offset, kObjectAlignment))
      return corrupt(
          kWhat, label() + ": file offset " + hex(e.file_offset) + " is not a multiple of 1 MiB");
    if (e.file_offset < kHeaderSectionSize)
      return corrupt(kWhat, label() + ": file offset " + hex(e.file_offset) +
                                " lies inside the header section (below 1 MiB)");
    if (e.length == 0) return corrupt(kWhat, label() + ": length is 0");
    if (!is_aligned(e.length, kObjectAlignment))
      return corrupt(kWhat, label() + ": length " + hex(e.length) + " is not a multiple of 1 MiB");
    if (!checked_add(e.file_offset, e.length))
      return corrupt(kWhat, label() + ": file offset " + hex(e.file_offset) + " + length " +
                                hex(e.length) + " overflows");
    for (std::size_t j = 0; j < table.entries.size(); ++j) {
      const RegionEntry& other = table.entries[j];
      if (other.guid == e.guid)
        return corrupt(kWhat, label() + ": GUID " + e.guid.to_string() + " repeats entry " +
                                  std::to_string(j));
      if (ranges_overlap(e.file_offset, e.length, other.file_offset, other.length))
        return corrupt(kWhat, label() + ": [" + hex(e.file_offset) + ", +" + hex(e.length) +
                                  ") overlaps " + entry_label(j, other.guid) + " [" +
                                  hex(other.file_offset) + ", +" + hex(other.length) + ")");
    }
    table.entries.push_back(e);
  }
  return table;
}

void encode_region_table(const RegionTable& table, std::span<std::uint8_t> out) {
  assert(out.size() >= kRegionTableSize);
  assert(table.entries.size() <= kMaxRegionEntries);
  out = out.first(kRegionTableSize);
  std::fill(out.begin(), out.end(), 0);
  detail::put_signature(out, kRegionTableSignature);
  store_le32(out, kEntryCountAt, static_cast<std::uint32_t>(table.entries.size()));
  for (std::size_t i = 0; i < table.entries.size(); ++i) {
    const RegionEntry& e = table.entries[i];
    std::size_t at = kRegionTableHeaderSize + i * kRegionEntrySize;
    detail::store_guid(out, at, e.guid);
    store_le64(out, at + 16, e.file_offset);
    store_le32(out, at + 24, e.length);
    store_le32(out, at + 28, e.required ? 1u : 0u);
  }
  store_le32(out, kChecksumAt, crc32c_with_zeroed_field(out, kChecksumAt));
}

Result<KnownRegions> find_known_regions(const RegionTable& table) {
  const RegionEntry* bat = nullptr;
  const RegionEntry* metadata = nullptr;
  for (std::size_t i = 0; i < table.entries.size(); ++i) {
    const RegionEntry& e = table.entries[i];
    const RegionEntry** slot = e.guid == kBatRegionGuid        ? &bat
                               : e.guid == kMetadataRegionGuid ? &metadata
                                                               : nullptr;
    if (slot == nullptr) {
      if (e.required)
        return detail::unsupported(kWhat,
                                   entry_label(i, e.guid) + ": unknown region marked required");
      continue;  // unknown optional regions are ignored (and preserved by writers)
    }
    if (*slot != nullptr)
      return corrupt(kWhat, entry_label(i, e.guid) + ": region appears more than once");
    *slot = &e;
  }
  if (bat == nullptr) return corrupt(kWhat, "no BAT region (" + kBatRegionGuid.to_string() + ")");
  if (metadata == nullptr)
    return corrupt(kWhat, "no metadata region (" + kMetadataRegionGuid.to_string() + ")");
  return KnownRegions{*bat, *metadata};
}

}  // namespace vhdx::format
