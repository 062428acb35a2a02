// image::Engine: an open VHDX image. Open is a small state machine (file identifier, header
// pair, log state, log bounds, region tables, metadata, BAT geometry) that reads only the
// first megabyte and the metadata region; the BAT is loaded later in pages, on demand.
//
// Thread safety: none; one thread at a time (the public Image serialises its calls).
// Ownership: the engine owns its File.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "format/bat.h"
#include "image/bat_cache.h"
#include "vhdx/error.h"
#include "vhdx/file.h"
#include "vhdx/types.h"

namespace vhdx::image {

// Where one payload block's bytes come from, after its BAT entry passed validation.
struct BlockMapping {
  std::uint8_t state = 0;         // a format::PayloadState value
  std::uint64_t file_offset = 0;  // FULLY_PRESENT only: where the block starts in the file
};

class Engine {
 public:
  // BAT bytes kept in memory at most; small BATs end up fully cached.
  static constexpr std::uint64_t kDefaultBatCacheBytes = 64 * 1024 * 1024;

  static Result<std::unique_ptr<Engine>> open(std::unique_ptr<File> file,
                                              const OpenOptions& options);

  const ImageInfo& info() const { return info_; }
  // The api layer knows the host path and fills in what only the path can tell.
  void set_actual_size(std::uint64_t bytes) { info_.actual_size = bytes; }
  void set_source_path(std::string path) { source_path_ = std::move(path); }
  // The path the image was opened from, or empty for a caller-supplied File.
  const std::string& source_path() const { return source_path_; }

  // Whether reads are possible: kNeedsLogReplay for a dirty image opened for inspection.
  Result<void> check_readable() const;
  // Reads out.size() bytes of the virtual disk at offset (kOutOfRange outside it).
  Result<void> read(std::uint64_t offset, std::span<std::uint8_t> out);
  // Extents covering [offset, offset+length), merged (see vhdx::Image::block_status).
  Result<std::vector<Extent>> block_status(std::uint64_t offset, std::uint64_t length);
  // Scans the whole BAT (streamed, not through the cache), validating every entry.
  Result<BlockCounts> count_blocks();

  // The validated mapping of payload block `block` (< payload_blocks). kCorrupt names the entry
  // when it is invalid; kNeedsLogReplay for a dirty image opened for inspection.
  Result<BlockMapping> lookup_block(std::uint64_t block);

  File& file() { return *file_; }
  std::uint64_t virtual_size() const { return info_.virtual_size; }
  std::uint64_t block_size() const { return info_.block_size; }
  std::uint64_t payload_blocks() const { return geometry_.payload_blocks; }
  bool has_parent() const { return has_parent_; }
  // Limits the BAT cache (tests use a tiny one to exercise eviction). At least one page.
  void set_bat_cache_limit(std::uint64_t bytes) { bat_.set_limit(bytes); }
  const BatCache& bat_cache() const { return bat_; }

 private:
  struct Range {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
  };

  // A run of sectors of a PARTIALLY_PRESENT block that are all present or all absent.
  struct SectorRun {
    std::uint64_t offset = 0;  // virtual
    std::uint64_t length = 0;
    bool present = false;
    std::uint64_t file_offset = 0;  // where present sectors are stored
  };

  explicit Engine(std::unique_ptr<File> file) : file_(std::move(file)) {}

  Result<void> open_image(const OpenOptions& options);
  Result<void> read_headers(std::span<const std::uint8_t> section);
  Result<void> check_log_bounds();
  Result<void> read_region_tables(std::span<const std::uint8_t> section);
  Result<void> read_metadata();
  Result<void> setup_bat();

  // Validates a raw BAT entry; `block` is the payload block or, for bitmap entries, the chunk.
  Result<BlockMapping> validate_entry(std::uint64_t index, std::uint64_t raw, bool bitmap,
                                      std::uint64_t block) const;
  Error entry_error(std::uint64_t index, bool bitmap, std::uint64_t block,
                    const std::string& reason) const;
  std::uint64_t block_bytes(std::uint64_t block) const;
  // The present/absent runs over [pos, pos+length), a range inside `block` (state 7), from its
  // chunk's sector bitmap (which must be PRESENT).
  Result<std::vector<SectorRun>> sector_runs(std::uint64_t block, const BlockMapping& mapping,
                                             std::uint64_t pos, std::uint64_t length);
  static void append_extent(std::vector<Extent>& extents, const Extent& extent);

  std::unique_ptr<File> file_;
  std::string source_path_;
  ImageInfo info_;
  format::BatGeometry geometry_;
  bool has_parent_ = false;
  bool needs_replay_ = false;
  unsigned block_shift_ = 0;
  unsigned chunk_shift_ = 0;
  Range log_;
  Range bat_region_;
  Range metadata_region_;
  BatCache bat_;
};

}  // namespace vhdx::image
