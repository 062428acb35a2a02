// §6 Metadata region: the 64 KiB table and the system items.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "format/parent_locator.h"
#include "vhdx/error.h"
#include "vhdx/guid.h"

namespace vhdx::format {

struct MetadataEntry {
  Guid item_id;
  std::uint32_t offset = 0;  // from the start of the metadata region
  std::uint32_t length = 0;
  bool is_user = false;
  bool is_virtual_disk = false;
  bool is_required = false;
};

struct MetadataTable {
  std::vector<MetadataEntry> entries;
};

// Decodes and validates the table from the first kMetadataTableSize (64 KiB) bytes of the
// region: signature, entry count <= 2047, user entries <= 1024, length <= 1 MiB, length 0 only
// with offset 0, offset >= 64 KiB otherwise, (item_id, is_user) unique. Does not check against
// the region length (validate_metadata_layout does).
Result<MetadataTable> decode_metadata_table(std::span<const std::uint8_t> bytes);
// One 32-byte table entry with no checks beyond its size (decode_metadata_table does them).
Result<MetadataEntry> decode_metadata_entry(std::span<const std::uint8_t> bytes);
void encode_metadata_table(const MetadataTable& table, std::span<std::uint8_t> out);

// Every item lies inside a region of region_length bytes and no two items overlap.
Result<void> validate_metadata_layout(const MetadataTable& table, std::uint64_t region_length);

struct FileParameters {
  std::uint32_t block_size = 0;
  bool leave_block_allocated = false;
  bool has_parent = false;
};
// 8 bytes. Block size must be a power of two in [1 MiB, 256 MiB]; reserved flag bits must be 0.
Result<FileParameters> decode_file_parameters(std::span<const std::uint8_t> bytes);
void encode_file_parameters(const FileParameters& params, std::span<std::uint8_t> out);

// 8 bytes; only the u64 is decoded here (range rules are in decode_disk_metadata).
Result<std::uint64_t> decode_virtual_disk_size(std::span<const std::uint8_t> bytes);
void encode_virtual_disk_size(std::uint64_t size, std::span<std::uint8_t> out);
// 4 bytes, 512 or 4096 (any other value is kUnsupported).
Result<std::uint32_t> decode_sector_size(std::span<const std::uint8_t> bytes);
void encode_sector_size(std::uint32_t size, std::span<std::uint8_t> out);
// At least 16 bytes (old QEMU wrote 256); the first 16 are the GUID.
Result<Guid> decode_virtual_disk_id(std::span<const std::uint8_t> bytes);

// The system items, decoded and cross-checked.
struct DiskMetadata {
  FileParameters file_parameters;
  std::uint64_t virtual_size = 0;
  std::uint32_t logical_sector_size = 0;
  std::uint32_t physical_sector_size = 0;
  Guid virtual_disk_id;
  std::optional<ParentLocator> parent_locator;  // present when has_parent
};
// `region` is the whole metadata region (its table first). Validates the table against the
// region (validate_metadata_layout), requires the five system items (and the parent locator
// when has_parent), rejects an unknown item marked required with kUnsupported, checks virtual
// size (non-zero, a multiple of the logical sector size, <= 64 TiB).
Result<DiskMetadata> decode_disk_metadata(const MetadataTable& table,
                                          std::span<const std::uint8_t> region);

// A name for a known item GUID ("file-parameters", "virtual-disk-size", "virtual-disk-id",
// "logical-sector-size", "physical-sector-size", "parent-locator"), or "unknown".
const char* metadata_item_name(const Guid& item_id);

}  // namespace vhdx::format
