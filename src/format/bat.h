// §7 Block allocation table: entry encoding and the chunk / interleaving math.
#pragma once

#include <cstdint>

#include "vhdx/error.h"

namespace vhdx::format {

enum class PayloadState : std::uint8_t {
  kNotPresent = 0,
  kUndefined = 1,
  kZero = 2,
  kUnmapped = 3,
  kUnmappedV095 = 5,  // §14: read like kUnmapped, never written
  kFullyPresent = 6,
  kPartiallyPresent = 7,
};

enum class BitmapState : std::uint8_t {
  kNotPresent = 0,
  kPresent = 6,
};

struct BatEntry {
  std::uint8_t state = 0;          // bits 0-2, raw
  std::uint64_t file_offset = 0;   // bytes: FileOffsetMB << 20
  bool reserved_bits_set = false;  // bits 3-19 non-zero
};

BatEntry decode_bat_entry(std::uint64_t raw);
std::uint64_t encode_bat_entry(std::uint8_t state, std::uint64_t file_offset);

// Whether `state` is a defined payload state for an image with or without a parent.
bool is_valid_payload_state(std::uint8_t state, bool has_parent);
bool is_valid_bitmap_state(std::uint8_t state, bool has_parent);

struct BatGeometry {
  std::uint64_t block_size = 0;
  std::uint64_t virtual_size = 0;
  std::uint32_t logical_sector_size = 0;
  std::uint64_t chunk_ratio = 0;  // payload blocks per sector-bitmap block
  std::uint64_t payload_blocks = 0;
  std::uint64_t sector_bitmap_blocks = 0;
  std::uint64_t total_entries = 0;  // entries the BAT region must hold

  std::uint64_t payload_entry_index(std::uint64_t block) const {
    return block + block / chunk_ratio;
  }
  std::uint64_t bitmap_entry_index(std::uint64_t chunk) const {
    return chunk * (chunk_ratio + 1) + chunk_ratio;
  }
  // Minimum BAT region length in bytes (entries * 8 rounded up to 1 MiB).
  std::uint64_t min_region_length() const;
};

// Validates the inputs (block size power of two in range, sector size 512/4096, virtual size
// non-zero, multiple of the sector size, <= 64 TiB) and computes the geometry (§7 counts).
Result<BatGeometry> compute_bat_geometry(std::uint64_t block_size, std::uint64_t virtual_size,
                                         std::uint32_t logical_sector_size, bool has_parent);

}  // namespace vhdx::format
