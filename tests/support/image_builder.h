// Test-side VHDX image builder: lays out a valid image the way Windows does (shared/VHDX-FORMAT.md
// §15a: log 1 MiB at 1 MiB, metadata 1 MiB at 2 MiB, BAT at 3 MiB, payload from 4 MiB, header
// sequence numbers 1 and 2) with the format layer's encoders, and keeps the layout so tests can
// damage precise fields. It also knows the virtual disk's expected content and block status, so
// tests can compare a reader against it.
//
//   ImageSpec spec;
//   spec.virtual_size = 8 * kMiB;
//   ImageBuilder builder(spec);
//   builder.set_block(0, BlockSpec::present_fill(0xAB));
//   std::vector<std::uint8_t> bytes = builder.build();
//   bytes[builder.layout().headers[0] + 66] = 2;  // header 1 version 2
//   fix_header_checksum(bytes, 0);
//
// The image is kept sparse (zero runs are not stored), so large block sizes stay cheap as long
// as tests write only a few pieces of each block; write_file() leaves holes for the zero runs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "format/bat.h"
#include "format/parent_locator.h"
#include "format/region_table.h"
#include "vhdx/guid.h"
#include "vhdx/types.h"

namespace vhdx::testing {

enum class ImageType { kFixed, kDynamic };

// An extra (unknown) metadata item appended after the system items.
struct ExtraMetadataItem {
  Guid item_id;
  std::vector<std::uint8_t> bytes;
  bool is_user = false;
  bool is_virtual_disk = false;
  bool is_required = false;
};

struct ImageSpec {
  std::uint64_t virtual_size = 8 * 1024 * 1024;
  std::uint32_t block_size = 1024 * 1024;
  std::uint32_t logical_sector_size = 512;
  std::uint32_t physical_sector_size = 4096;
  // kFixed sets LeaveBlockAllocated and gives every block file space, FULLY_PRESENT by default.
  ImageType type = ImageType::kDynamic;
  // Differencing: HasParent set, a parent locator item, the BAT sized with bitmap entries.
  bool has_parent = false;
  format::ParentLocator parent_locator;  // when has_parent; a default VHDX locator if empty

  // Log placement; the log area is left zeroed (write_log_ring puts entries there).
  std::uint64_t log_offset = 1024 * 1024;
  std::uint32_t log_length = 1024 * 1024;
  // LogGuid of both headers; zero means a clean image.
  Guid log_guid;
  // Region placement. bat_length 0 means the minimum for the geometry, rounded up to 1 MiB.
  std::uint64_t metadata_offset = 2 * 1024 * 1024;
  std::uint32_t metadata_length = 1024 * 1024;
  std::uint64_t bat_offset = 3 * 1024 * 1024;
  std::uint32_t bat_length = 0;
  // Where payload blocks start; 0 means the first 1 MiB boundary after the log and regions.
  std::uint64_t payload_offset = 0;
  // Extra region table entries (unknown regions), listed after BAT and metadata.
  std::vector<format::RegionEntry> extra_regions;
  std::vector<ExtraMetadataItem> extra_metadata_items;

  std::string creator = "libvhdx test image builder";
  std::uint64_t sequence_numbers[2] = {1, 2};
  Guid file_write_guid = *Guid::parse("11111111-2222-4333-8444-555555555555");
  Guid data_write_guid = *Guid::parse("66666666-7777-4888-9999-aaaaaaaaaaaa");
  Guid virtual_disk_id = *Guid::parse("bbbbbbbb-cccc-4ddd-aeee-ffffffffffff");
};

// One run of explicit bytes inside a block.
struct Piece {
  std::uint64_t offset = 0;  // from the start of the block
  std::vector<std::uint8_t> bytes;
};

// What one payload block holds. The bytes (fill, then pieces over it) are stored in the file
// only when the block has file space; a FULLY_PRESENT block reads back as them, every other
// state reads as zeros (so bytes given to an UNMAPPED block are stale data a reader must hide).
struct BlockSpec {
  std::uint8_t state = static_cast<std::uint8_t>(format::PayloadState::kNotPresent);
  std::optional<std::uint8_t> fill;  // every byte of the block
  std::vector<Piece> pieces;
  // Whether the block gets file space; default: states 6 and 7, and every block of a fixed image.
  std::optional<bool> allocate;
  // Whether the BAT entry carries the file offset; default: allocated and state not 0 or 2
  // (QEMU writes 0 for NOT_PRESENT and ZERO).
  std::optional<bool> entry_has_offset;
  // Forces the offset written in the BAT entry (damage: past EOF, into the metadata region).
  std::optional<std::uint64_t> entry_offset;
  // Forces the whole raw BAT entry.
  std::optional<std::uint64_t> raw_entry;

  static BlockSpec with_state(format::PayloadState state);
  static BlockSpec present_fill(std::uint8_t fill);
  static BlockSpec present_pieces(std::vector<Piece> pieces);
};

// Where everything landed, as absolute file offsets.
struct Layout {
  std::uint64_t file_identifier = 0;
  std::uint64_t headers[2] = {};
  std::uint64_t region_tables[2] = {};
  std::uint64_t log_offset = 0;
  std::uint64_t log_length = 0;
  std::uint64_t metadata_offset = 0;
  std::uint64_t metadata_length = 0;
  std::uint64_t bat_offset = 0;
  std::uint64_t bat_length = 0;
  std::uint64_t payload_offset = 0;
  // Metadata items: absolute offset of each item's payload.
  std::uint64_t file_parameters = 0;
  std::uint64_t virtual_disk_size = 0;
  std::uint64_t logical_sector_size = 0;
  std::uint64_t physical_sector_size = 0;
  std::uint64_t virtual_disk_id = 0;
  std::uint64_t parent_locator = 0;  // 0 without a parent
  std::vector<std::uint64_t> extra_items;
  // Absolute offset of metadata table entry i (entry 0 is file parameters, then virtual disk
  // size, logical sector size, physical sector size, virtual disk id, parent locator, extras).
  std::uint64_t metadata_entry(std::size_t i) const { return metadata_offset + 32 + 32 * i; }
  // Absolute offset of region table entry i in table copy `copy`.
  std::uint64_t region_entry(int copy, std::size_t i) const {
    return region_tables[copy] + 16 + 32 * i;
  }

  std::uint64_t chunk_ratio = 0;
  std::uint64_t payload_blocks = 0;
  std::uint64_t bat_entries = 0;
  // File offset of each payload block's space, 0 when it has none.
  std::vector<std::uint64_t> block_offsets;
  // File offset of the sector bitmap block of each chunk given one by set_sector_bitmap. Bitmap
  // blocks follow the payload blocks.
  std::map<std::uint64_t, std::uint64_t> bitmap_offsets;
  std::uint64_t file_size = 0;

  std::uint64_t payload_entry_index(std::uint64_t block) const {
    return block + block / chunk_ratio;
  }
  std::uint64_t bitmap_entry_index(std::uint64_t chunk) const {
    return chunk * (chunk_ratio + 1) + chunk_ratio;
  }
  // Absolute offset of the BAT entry of payload block `block` / of chunk `chunk`'s bitmap.
  std::uint64_t bat_entry(std::uint64_t block) const {
    return bat_offset + 8 * payload_entry_index(block);
  }
  std::uint64_t bitmap_entry(std::uint64_t chunk) const {
    return bat_offset + 8 * bitmap_entry_index(chunk);
  }
};

// A built image: a file size plus the non-zero runs (everything else reads as zero).
struct SparseImage {
  std::uint64_t size = 0;
  std::map<std::uint64_t, std::vector<std::uint8_t>> runs;  // offset -> bytes, no overlaps

  // Copies bytes in; a run may span and overwrite earlier runs.
  void write(std::uint64_t offset, std::span<const std::uint8_t> bytes);
  // The whole file as one buffer (only for small images).
  std::vector<std::uint8_t> to_bytes() const;
  // Writes the file at path (created or truncated) leaving holes for the zero runs. Fails the
  // current test (gtest ADD_FAILURE) and returns false on an I/O error.
  bool write_file(const std::string& path) const;
};

class ImageBuilder {
 public:
  explicit ImageBuilder(ImageSpec spec);

  ImageBuilder& set_block(std::uint64_t block, BlockSpec spec);
  // Forces the raw BAT entry of chunk `chunk`'s sector-bitmap slot.
  ImageBuilder& set_bitmap_entry(std::uint64_t chunk, std::uint64_t raw_entry);
  // Gives chunk `chunk` a 1 MiB sector bitmap block holding `pieces` (zeros elsewhere) and a
  // PRESENT bitmap entry pointing at it, unless set_bitmap_entry forces the entry. Bit i of the
  // block (byte i / 8, bit i % 8) is sector i of the chunk. expected_read() does not consult
  // bitmaps: tests of PARTIALLY_PRESENT blocks compute what they expect themselves.
  ImageBuilder& set_sector_bitmap(std::uint64_t chunk, std::vector<Piece> pieces);

  // The image (computes the layout). build() is the whole file in memory; use build_sparse()
  // for images with big blocks.
  SparseImage build_sparse();
  std::vector<std::uint8_t> build() { return build_sparse().to_bytes(); }
  // Layout of the last build (also filled by the constructor, before any block is allocated).
  const Layout& layout() const { return layout_; }
  const ImageSpec& spec() const { return spec_; }

  // What a correct reader returns for the virtual disk (no parent: NOT_PRESENT reads as zeros).
  void expected_read(std::uint64_t offset, std::span<std::uint8_t> out) const;
  std::vector<std::uint8_t> expected_bytes(std::uint64_t offset, std::uint64_t length) const;
  // Lowercase hex SHA-256 of the whole virtual disk's expected content.
  std::string expected_sha256() const;
  // The extents Image::block_status should report for [offset, offset+length): per block
  // FULLY_PRESENT -> kData, ZERO / UNMAPPED / UNDEFINED / v0.95 UNMAPPED -> kZero,
  // NOT_PRESENT -> kUnallocated, merged like the API merges (data only when contiguous in the
  // file). Valid after build.
  std::vector<Extent> expected_extents(std::uint64_t offset, std::uint64_t length) const;
  // Expected Image::count_blocks result.
  BlockCounts expected_counts() const;

 private:
  BlockSpec effective_block(std::uint64_t block) const;
  bool block_allocated(const BlockSpec& b) const;
  void compute_layout();

  ImageSpec spec_;
  std::map<std::uint64_t, BlockSpec> blocks_;
  std::map<std::uint64_t, std::uint64_t> bitmap_entries_;
  std::map<std::uint64_t, std::vector<Piece>> sector_bitmaps_;
  Layout layout_;
};

// Recomputes the CRC-32C of header `slot` (0 or 1) / region table `copy` (0 or 1) in place,
// after a test changed its fields.
void fix_header_checksum(std::vector<std::uint8_t>& bytes, int slot);
void fix_region_table_checksum(std::vector<std::uint8_t>& bytes, int copy);

// Little-endian pokes into a built image, bounds-checked (fail the test when out of range).
void poke_le16(std::vector<std::uint8_t>& bytes, std::uint64_t offset, std::uint16_t value);
void poke_le32(std::vector<std::uint8_t>& bytes, std::uint64_t offset, std::uint32_t value);
void poke_le64(std::vector<std::uint8_t>& bytes, std::uint64_t offset, std::uint64_t value);
void poke_guid(std::vector<std::uint8_t>& bytes, std::uint64_t offset, const Guid& guid);

// Writes `bytes` into the log ring of a built image starting at ring offset `ring_offset`,
// wrapping past the end of the ring (layout.log_offset, layout.log_length) like a log writer.
void write_log_ring(std::vector<std::uint8_t>& image, const Layout& layout,
                    std::uint64_t ring_offset, std::span<const std::uint8_t> bytes);

// A deterministic byte pattern distinct per `seed`: byte i of a run is a function of the seed
// and the absolute position i + start, so shifted reads are caught.
std::vector<std::uint8_t> pattern_bytes(std::uint32_t seed, std::uint64_t start,
                                        std::uint64_t length);

// Writes bytes to a new file at path; fails the test and returns false on error.
bool write_bytes_file(const std::string& path, std::span<const std::uint8_t> bytes);

}  // namespace vhdx::testing
