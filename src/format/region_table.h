// §5 Region table (192 KiB and 256 KiB; 64 KiB, checksummed).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vhdx/error.h"
#include "vhdx/guid.h"

namespace vhdx::format {

struct RegionEntry {
  Guid guid;
  std::uint64_t file_offset = 0;
  std::uint32_t length = 0;
  bool required = false;
};

struct RegionTable {
  std::vector<RegionEntry> entries;
};

// Decodes and validates one table from its kRegionTableSize (64 KiB) bytes: signature,
// checksum, entry count <= 2047, each entry's offset (1 MiB multiple, >= 1 MiB) and length
// (1 MiB multiple, non-zero), no end past 2^64, unique GUIDs, no two regions overlapping.
Result<RegionTable> decode_region_table(std::span<const std::uint8_t> bytes);
// Writes the table into 64 KiB, computing the checksum.
void encode_region_table(const RegionTable& table, std::span<std::uint8_t> out);

// The two regions every image needs, pulled out of a validated table.
struct KnownRegions {
  RegionEntry bat;
  RegionEntry metadata;
};
// Requires exactly one BAT and one metadata region; an unknown region with the required bit
// set is kUnsupported (naming its GUID); unknown optional regions are ignored.
Result<KnownRegions> find_known_regions(const RegionTable& table);

}  // namespace vhdx::format
