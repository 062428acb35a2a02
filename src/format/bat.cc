#include "format/bat.h"

#include <string>

#include "base/checked_math.h"
#include "format/codec_util.h"
#include "format/constants.h"

namespace vhdx::format {

using detail::corrupt;
using detail::hex;

namespace {
constexpr std::string_view kWhat = "BAT geometry";
constexpr std::uint64_t kStateMask = 0x7;
constexpr std::uint64_t kReservedMask = 0xFFFF8;  // bits 3-19
}  // namespace

BatEntry decode_bat_entry(std::uint64_t raw) {
  BatEntry e;
  e.state = static_cast<std::uint8_t>(raw & kStateMask);
  e.file_offset = raw & kBatOffsetMask;
  e.reserved_bits_set = (raw & kReservedMask) != 0;
  return e;
}

std::uint64_t encode_bat_entry(std::uint8_t state, std::uint64_t file_offset) {
  return (file_offset & kBatOffsetMask) | (state & kStateMask);
}

bool is_valid_payload_state(std::uint8_t state, bool has_parent) {
  switch (static_cast<PayloadState>(state)) {
    case PayloadState::kNotPresent:
    case PayloadState::kUndefined:
    case PayloadState::kZero:
    case PayloadState::kUnmapped:
    case PayloadState::kUnmappedV095:
    case PayloadState::kFullyPresent:
      return true;
    case PayloadState::kPartiallyPresent:
      return has_parent;  // §7: invalid in fixed and dynamic files
  }
  return false;  // 4 and anything above 7
}

bool is_valid_bitmap_state(std::uint8_t state, bool has_parent) {
  if (state == static_cast<std::uint8_t>(BitmapState::kNotPresent)) return true;
  return state == static_cast<std::uint8_t>(BitmapState::kPresent) && has_parent;
}

std::uint64_t BatGeometry::min_region_length() const {
  // total_entries is bounded by compute_bat_geometry (< 2^30), so nothing here overflows.
  return ceil_div(total_entries * kBatEntrySize, kObjectAlignment) * kObjectAlignment;
}

Result<BatGeometry> compute_bat_geometry(std::uint64_t block_size, std::uint64_t virtual_size,
                                         std::uint32_t logical_sector_size, bool has_parent) {
  if (!is_power_of_two(block_size) || block_size < kMinBlockSize || block_size > kMaxBlockSize)
    return corrupt(
        kWhat, "block size " + hex(block_size) + " is not a power of two from 1 MiB to 256 MiB");
  if (logical_sector_size != 512 && logical_sector_size != 4096)
    return detail::unsupported(kWhat, "logical sector size " + std::to_string(logical_sector_size) +
                                          " is not supported (only 512 and 4096)");
  if (virtual_size == 0) return corrupt(kWhat, "virtual size is 0");
  if (virtual_size % logical_sector_size != 0)
    return corrupt(kWhat, "virtual size " + hex(virtual_size) +
                              " is not a multiple of the logical sector size " +
                              std::to_string(logical_sector_size));
  if (virtual_size > kMaxVirtualSize)
    return detail::unsupported(kWhat, "virtual size " + hex(virtual_size) + " exceeds 64 TiB");

  BatGeometry g;
  g.block_size = block_size;
  g.virtual_size = virtual_size;
  g.logical_sector_size = logical_sector_size;
  // 2^23 * sector size / block size: between 16 and 32768 for the ranges checked above.
  g.chunk_ratio = kSectorsPerChunk * logical_sector_size / block_size;
  g.payload_blocks = ceil_div(virtual_size, block_size);
  g.sector_bitmap_blocks = ceil_div(g.payload_blocks, g.chunk_ratio);
  if (has_parent)
    g.total_entries = g.sector_bitmap_blocks * (g.chunk_ratio + 1);
  else
    g.total_entries = g.payload_blocks + (g.payload_blocks - 1) / g.chunk_ratio;
  return g;
}

}  // namespace vhdx::format
