// Test-only: builds small VHDX images in memory with the format encoders, for the component
// tests of the image and ops layers. Not part of any library.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "base/checked_math.h"
#include "base/endian.h"
#include "format/bat.h"
#include "format/constants.h"
#include "format/file_identifier.h"
#include "format/header.h"
#include "format/metadata.h"
#include "format/parent_locator.h"
#include "format/region_table.h"
#include "image/engine.h"
#include "io/mem_file.h"

namespace vhdx::image::testing {

using format::kMiB;

constexpr std::uint64_t kLogOffset = 1 * kMiB;
constexpr std::uint64_t kMetadataOffset = 2 * kMiB;
constexpr std::uint64_t kBatOffset = 3 * kMiB;

// Builds a VHDX image in memory: header section, a 1 MiB log at 1 MiB, metadata at 2 MiB,
// the BAT at 3 MiB, then blocks appended on demand.
class TestImage {
 public:
  struct Spec {
    std::uint32_t block_size = 1 * kMiB;
    std::uint64_t virtual_size = 4 * kMiB;
    std::uint32_t logical_sector_size = 512;
    bool fixed = false;
    bool has_parent = false;
    // The parent locator of a differencing image.
    const char* parent_linkage = "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}";
    const char* parent_relative_path = ".\\parent.vhdx";
  };

  explicit TestImage(Spec spec) : spec_(spec) {
    auto geometry = format::compute_bat_geometry(spec.block_size, spec.virtual_size,
                                                 spec.logical_sector_size, spec.has_parent);
    EXPECT_TRUE(geometry) << geometry.error().to_string();
    geometry_ = *geometry;
    bat_length_ = *align_up(geometry_.total_entries * 8, kMiB);
    bytes_.assign(kBatOffset + bat_length_, 0);

    format::encode_file_identifier({"libvhdx engine test"},
                                   std::span(bytes_).subspan(0, format::kFileIdentifierSize));
    for (int i = 0; i < 2; ++i) {
      format::Header h;
      h.sequence_number = 10 + i;
      h.file_write_guid = *Guid::parse("11111111-2222-3333-4444-555555555555");
      h.data_write_guid = *Guid::parse("66666666-7777-8888-9999-aaaaaaaaaaaa");
      h.log_offset = kLogOffset;
      h.log_length = 1 * kMiB;
      headers_[i] = h;
    }
    write_headers();

    format::RegionTable table;
    table.entries.push_back(
        {format::kBatRegionGuid, kBatOffset, static_cast<std::uint32_t>(bat_length_), true});
    table.entries.push_back(
        {format::kMetadataRegionGuid, kMetadataOffset, static_cast<std::uint32_t>(kMiB), true});
    for (std::uint64_t off : format::kRegionTableOffsets)
      format::encode_region_table(table, std::span(bytes_).subspan(off, format::kRegionTableSize));

    write_metadata();
  }

  void write_headers() {
    for (int i = 0; i < 2; ++i)
      format::encode_header(
          headers_[i], std::span(bytes_).subspan(format::kHeaderOffsets[i], format::kHeaderSize));
  }
  format::Header& header(int i) { return headers_[i]; }

  void write_metadata() {
    auto region = std::span(bytes_).subspan(kMetadataOffset, kMiB);
    format::MetadataTable table;
    std::uint32_t at = 64 * 1024;
    auto add = [&](const Guid& id, std::uint32_t length, bool virtual_disk) {
      table.entries.push_back({id, at, length, false, virtual_disk, true});
      const std::uint32_t start = at;
      at += length;
      return region.subspan(start, length);
    };
    format::FileParameters params;
    params.block_size = spec_.block_size;
    params.leave_block_allocated = spec_.fixed;
    params.has_parent = spec_.has_parent;
    format::encode_file_parameters(params, add(format::kFileParametersGuid, 8, false));
    format::encode_virtual_disk_size(spec_.virtual_size,
                                     add(format::kVirtualDiskSizeGuid, 8, true));
    format::encode_sector_size(spec_.logical_sector_size,
                               add(format::kLogicalSectorSizeGuid, 4, true));
    format::encode_sector_size(4096, add(format::kPhysicalSectorSizeGuid, 4, true));
    Guid::parse("01234567-89ab-cdef-0123-456789abcdef")
        ->store(add(format::kVirtualDiskIdGuid, 16, true).first<16>());
    if (spec_.has_parent) {
      format::ParentLocator locator;
      locator.locator_type = format::kVhdxParentLocatorType;
      locator.entries = {{"parent_linkage", spec_.parent_linkage},
                         {"relative_path", spec_.parent_relative_path}};
      auto item = format::encode_parent_locator(locator);
      auto out = add(format::kParentLocatorGuid, static_cast<std::uint32_t>(item.size()), false);
      std::copy(item.begin(), item.end(), out.begin());
    }
    format::encode_metadata_table(table, region.first(format::kMetadataTableSize));
  }

  const format::BatGeometry& geometry() const { return geometry_; }

  void set_entry(std::uint64_t index, std::uint64_t raw) {
    store_le64(bytes_, kBatOffset + index * 8, raw);
  }
  void set_payload(std::uint64_t block, format::PayloadState state, std::uint64_t offset = 0) {
    set_entry(geometry_.payload_entry_index(block),
              format::encode_bat_entry(static_cast<std::uint8_t>(state), offset));
  }
  // Appends a block filled with a pattern derived from `seed` and maps `block` to it.
  std::uint64_t allocate(std::uint64_t block, std::uint8_t seed) {
    const std::uint64_t offset = *align_up(bytes_.size(), kMiB);
    bytes_.resize(offset + spec_.block_size);
    for (std::uint64_t i = 0; i < spec_.block_size; ++i)
      bytes_[offset + i] = static_cast<std::uint8_t>(seed + i * 7 + (i >> 9));
    set_payload(block, format::PayloadState::kFullyPresent, offset);
    return offset;
  }

  // What the virtual disk should read as, given the BAT as built (no parent involved).
  std::vector<std::uint8_t> expected_disk() const {
    std::vector<std::uint8_t> disk(spec_.virtual_size, 0);
    for (std::uint64_t b = 0; b < geometry_.payload_blocks; ++b) {
      auto e = format::decode_bat_entry(
          load_le64(bytes_, kBatOffset + geometry_.payload_entry_index(b) * 8));
      if (e.state != 6) continue;
      const std::uint64_t start = b * spec_.block_size;
      const std::uint64_t n = std::min<std::uint64_t>(spec_.block_size, spec_.virtual_size - start);
      std::copy_n(bytes_.begin() + static_cast<std::ptrdiff_t>(e.file_offset), n,
                  disk.begin() + static_cast<std::ptrdiff_t>(start));
    }
    return disk;
  }

  std::vector<std::uint8_t>& bytes() { return bytes_; }
  const std::vector<std::uint8_t>& bytes_view() const { return bytes_; }

  Result<std::unique_ptr<Engine>> open(OpenOptions options = {}) const {
    return Engine::open(std::make_unique<MemFile>(bytes_, false), options);
  }
  std::unique_ptr<Engine> open_ok(OpenOptions options = {}) const {
    auto engine = open(options);
    EXPECT_TRUE(engine) << engine.error().to_string();
    return engine ? std::move(*engine) : nullptr;
  }

 private:
  Spec spec_;
  format::BatGeometry geometry_;
  std::uint64_t bat_length_ = 0;
  format::Header headers_[2];
  std::vector<std::uint8_t> bytes_;
};

}  // namespace vhdx::image::testing
