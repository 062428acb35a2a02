// image::Engine: an open VHDX image. Open is a small state machine (file identifier, header
// pair, log state, log bounds, region tables, metadata, BAT geometry) that reads only the
// first megabyte and the metadata region; the BAT is loaded later in pages, on demand.
//
// Thread safety: none; one thread at a time (the public Image serialises its calls).
// Ownership: the engine owns its File.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "format/bat.h"
#include "format/header.h"
#include "image/bat_cache.h"
#include "log/log_writer.h"
#include "vhdx/error.h"
#include "vhdx/file.h"
#include "vhdx/types.h"

namespace vhdx::image {

// Where one payload block's bytes come from, after its BAT entry passed validation.
struct BlockMapping {
  std::uint8_t state = 0;         // a format::PayloadState value
  std::uint64_t file_offset = 0;  // FULLY_PRESENT only: where the block starts in the file
};

// Writing (OpenOptions::read_only = false; the File must be writable):
// - Session start: before the first change (a write, a discard that changes something, a
//   replay), one header update (§4, to the non-current slot, flushed, then repeated so both
//   slots agree) sets a new FileWriteGuid, a new DataWriteGuid (data changes only) and a fresh
//   LogGuid; an empty log entry under that GUID is written and flushed right after.
// - A new payload block takes the lowest free 1 MiB-aligned slot inside the file (space no BAT
//   entry, region, log or header references: found by one BAT scan at the first allocation,
//   plus blocks this engine released), punched so it reads as zeros; otherwise it is appended
//   at the first 1 MiB boundary at or past the end of the file, which is extended (not
//   zero-filled) so the block reads as zeros. Either way the data follows, and the block is
//   durable before its BAT entry is logged (invariant 6).
// - A discarded block's space becomes free only once the BAT change releasing it is durable in
//   the log (invariant 11); it is then punched (the host reclaims it) and reusable.
// - BAT changes are batched in memory (reads see them at once) and committed on flush(),
//   close(), or when kMaxPendingBatSectors sectors are pending: flush the file (new
//   data durable, invariant 6), then for each run of up to kMaxSectorsPerEntry changed 4 KiB
//   BAT sectors: log them, flush (invariant 7), write them in place. The in-place writes are
//   flushed by the next flush.
// - close() (also run by the destructor, best effort): commit, flush, then a header update that
//   clears LogGuid (invariant 9); then free slots at the end of the file are truncated away.
// - Any failed write, flush or log operation makes the engine fail every later call with kFailed
//   (invariant 10) until the image is reopened.
// - A writable open of an image whose log needs replay: header update (new FileWriteGuid, same
//   LogGuid), replay_in_place, header update clearing LogGuid, then the normal open. A log GUID
//   with no valid sequence is taken as an empty log (a crash between the header naming a new
//   GUID and its first entry leaves exactly that).
class Engine {
 public:
  // BAT bytes kept in memory at most; small BATs end up fully cached.
  static constexpr std::uint64_t kDefaultBatCacheBytes = 64 * 1024 * 1024;
  // Distinct 4 KiB BAT sectors changed in memory before they are committed through the log
  // (a commit costs one flush per kMaxSectorsPerEntry of them, plus one).
  static constexpr std::size_t kMaxPendingBatSectors = 256;
  // Data sectors per log entry at most (a 1 MiB log holds several such entries).
  static constexpr std::size_t kMaxSectorsPerEntry = 64;

  static Result<std::unique_ptr<Engine>> open(std::unique_ptr<File> file,
                                              const OpenOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Writes data at offset of the virtual disk (kOutOfRange outside it, kReadOnly on a read-only
  // open, kUnsupported on a differencing image). Any alignment: partial logical sectors are
  // read, patched and written whole.
  Result<void> write(std::uint64_t offset, std::span<const std::uint8_t> data);
  // Makes [offset, offset+length) read as zeros: whole blocks of a dynamic image become ZERO
  // (UNMAPPED when unmap) through the log; partial blocks and fixed images are zero-filled in
  // place. Blocks that already read as zeros are left alone.
  Result<void> discard(std::uint64_t offset, std::uint64_t length, bool unmap);
  // Commits pending BAT changes and flushes the file: everything written so far is durable.
  Result<void> flush();
  // Flushes and clears the LogGuid: the file is clean. Later writes start a new session.
  Result<void> close();
  bool writable() const { return writable_; }
  // Whether an earlier failure put the engine in the sticky failed state.
  bool failed() const { return failed_; }

  const ImageInfo& info() const { return info_; }
  // The api layer knows the host path and fills in what only the path can tell.
  void set_actual_size(std::uint64_t bytes) { info_.actual_size = bytes; }
  void set_source_path(std::string path) { source_path_ = std::move(path); }
  // The path the image was opened from, or empty for a caller-supplied File.
  const std::string& source_path() const { return source_path_; }
  // Whether a read-only open replayed a dirty log in memory: reads then come through an overlay
  // and the file itself still holds the pre-replay bytes (so never read it behind our back).
  bool log_replayed_in_memory() const { return replayed_in_memory_; }

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
  // Differencing images: the parent, opened read-only by the caller (the api layer finds the
  // file and checks its linkage). Reads of sectors this file does not hold go to it (past its
  // end they read as zeros); block_status reports its extents with depth + 1. Without a parent
  // such reads fail with kUnsupported.
  void set_parent(std::unique_ptr<Engine> parent) { parent_ = std::move(parent); }
  Engine* parent() { return parent_.get(); }
  const Engine* parent() const { return parent_.get(); }
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

  // Write path (engine_write.cc).
  Result<void> replay_log();
  // Read-only opens: serve reads through an in-memory replay of the log (never writes).
  Result<void> replay_log_in_memory();
  Result<void> write_header_update(format::Header next);
  Result<void> begin_session(bool data_change);
  Result<void> sync();
  Result<void> fail(Error error);
  Result<void> check_writable();
  Result<std::uint64_t> raw_entry(std::uint64_t index);
  Result<void> write_aligned(std::uint64_t offset, std::span<const std::uint8_t> data);
  Result<void> write_block(std::uint64_t block, std::uint64_t in_block,
                           std::span<const std::uint8_t> data);
  Result<std::uint64_t> allocate_block();
  // Streams the whole BAT from the file (not through the cache), entry by entry.
  using BatVisitor = std::function<Result<void>(std::uint64_t index, std::uint64_t raw)>;
  Result<void> for_each_bat_entry(const BatVisitor& visit);
  // Shortens the file by the free slots at its end (the log must be clear).
  Result<void> trim_free_tail();
  // Finds free block-sized slots inside the file (one streamed pass over the BAT).
  Result<void> scan_free_space();
  Result<void> write_zeros(std::uint64_t file_offset, std::uint64_t length);
  Result<void> set_pending(std::uint64_t index, std::uint64_t raw);
  Result<void> commit_bat();
  Result<void> discard_impl(std::uint64_t offset, std::uint64_t length, bool unmap);
  Result<void> write_impl(std::uint64_t offset, std::span<const std::uint8_t> data);
  Result<void> close_impl();

  Result<void> open_image(const OpenOptions& options);
  Result<void> read_headers();
  Result<void> check_log_bounds();
  Result<void> read_region_tables();
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
  // Differencing images: [pos, pos+out.size()) from the parent (zeros past its end).
  Result<void> read_parent(std::uint64_t pos, std::span<std::uint8_t> out);
  // Replaces the unallocated extents of a differencing image by its parent's, one level deeper.
  Result<std::vector<Extent>> resolve_through_parent(std::vector<Extent> extents);

  std::unique_ptr<File> file_;
  std::string source_path_;
  ImageInfo info_;
  format::BatGeometry geometry_;
  bool has_parent_ = false;
  std::unique_ptr<Engine> parent_;
  bool needs_replay_ = false;
  bool replayed_in_memory_ = false;
  std::string replay_failure_;  // why an inspection-only open could not replay its log
  unsigned block_shift_ = 0;
  unsigned chunk_shift_ = 0;
  Range log_;
  Range bat_region_;
  Range metadata_region_;
  BatCache bat_;

  // Write state.
  bool writable_ = false;
  bool failed_ = false;
  std::string failure_;         // the error that caused the failed state
  format::Header header_;       // the current header, decoded
  bool file_guid_set_ = false;  // FileWriteGuid renewed this session
  bool data_guid_set_ = false;  // DataWriteGuid renewed this session
  std::uint64_t next_log_sequence_ = 1;
  std::unique_ptr<log::LogWriter> log_writer_;
  std::map<std::uint64_t, std::uint64_t> pending_bat_;  // BAT index -> raw, not yet logged
  std::set<std::uint64_t> pending_sectors_;             // 4 KiB BAT sectors they fall in
  bool unflushed_allocation_ = false;  // new block data written since the last flush
  // Where the file ends, kept by the allocator once known (nothing else grows the file during a
  // session), so an allocation costs no size() call.
  std::uint64_t file_end_ = 0;
  bool file_end_known_ = false;
  // Free-space reuse: slots known free (file offsets of block-sized, 1 MiB-aligned spans that
  // nothing durable references), and blocks released by BAT changes not yet logged.
  bool free_space_scanned_ = false;
  std::set<std::uint64_t> free_slots_;
  std::vector<std::uint64_t> pending_release_;
};

}  // namespace vhdx::image
