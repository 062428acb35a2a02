// What `vhdx info` and `vhdx map` print, computed from the public value types alone so that the
// output can be tested without an image.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "vhdx/error.h"
#include "vhdx/types.h"

namespace vhdx::cli {

// The block counts for `info`, or why they are missing (a dirty log, a damaged BAT...).
struct BlockCountsOrReason {
  std::optional<BlockCounts> counts;
  std::string unavailable_reason;
};

// A differencing image's parents as the open found them: the files, nearest first, or why
// they could not be opened.
struct ParentChainView {
  std::vector<std::string> files;
  std::string error;
};

// `vhdx info --output=json`: kebab-case keys in qemu-img's manner (see the README for the list).
nlohmann::ordered_json info_to_json(const std::string& filename, const ImageInfo& info,
                                    const BlockCountsOrReason& blocks,
                                    const ParentChainView& chain = {});
// `vhdx info`: aligned "key: value" lines, then indented sections.
std::string info_to_human(const std::string& filename, const ImageInfo& info,
                          const BlockCountsOrReason& blocks, const ParentChainView& chain = {});

// One line of `qemu-img map`: the meaning qemu-img gives its fields.
struct MapEntry {
  std::uint64_t start = 0;
  std::uint64_t length = 0;
  bool present = false;                 // the range is described by this image
  bool zero = false;                    // reads as zeros
  bool data = false;                    // bytes stored in the file
  std::optional<std::uint64_t> offset;  // where, for data (in the file at `depth`)
  std::uint32_t depth = 0;              // 0: this image; n: its n-th parent

  friend bool operator==(const MapEntry&, const MapEntry&) = default;
};

// Data: present, data, offset. Zero/unmapped/undefined blocks: present and zero. Not-present
// blocks: not present, and zero unless the image is differencing (the parent decides).
MapEntry map_entry_from_extent(const Extent& extent, bool differencing);

// Appends `entry` to `entries`, merging it into the last one when all flags agree and, for data,
// the file offsets continue.
void append_merged(std::vector<MapEntry>& entries, const MapEntry& entry);

// Walks [start, start+length) through `block_status` in windows of `window` bytes (memory stays
// bounded on huge disks), merges, and hands each finished entry to `emit` in order.
using BlockStatusFn =
    std::function<Result<std::vector<Extent>>(std::uint64_t offset, std::uint64_t length)>;
Result<void> walk_map(const BlockStatusFn& block_status, std::uint64_t start, std::uint64_t length,
                      bool differencing, std::uint64_t window,
                      const std::function<void(const MapEntry&)>& emit);

// qemu-img map's JSON line for one entry, without the separator:
// { "start": 0, "length": 1048576, "depth": 0, "present": true, "zero": false, "data": true,
// "offset": 5242880}
std::string map_entry_json(const MapEntry& entry);
// qemu-img map's human table: the header line, and the line for a data entry.
std::string map_human_header();
std::string map_human_line(const MapEntry& entry, const std::string& filename);

}  // namespace vhdx::cli
