// §9 The log's reading half, part 2: replaying the active sequence (sequence.h), either in place
// on a writable File or into an in-memory overlay for read-only opens.
//
// How the image engine uses this at open, once the current header's LogGuid is non-zero:
//   seq = find_active_sequence(file, h.log_offset, h.log_length, h.log_guid)
//   writable open:  replay_in_place(file, *seq), then clear LogGuid through the header protocol
//                   (a double header update; that is the engine's job, not this layer's)
//   read-only open: file = OverlayFile::create(std::move(file), *seq) and open on top of it;
//                   the file on disk is never touched.
//
// Thread safety: none; an OverlayFile is used like any File, by one thread at a time.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "log/sequence.h"
#include "vhdx/error.h"
#include "vhdx/file.h"

namespace vhdx::log {

// No update or LastFileOffset may reach past this: twice the largest VHDX file (64 TiB of payload
// plus its BAT and bitmaps), so a hostile log cannot ask for an exabyte-sized file.
inline constexpr std::uint64_t kMaxReplayFileSize = std::uint64_t{1} << 47;  // 128 TiB

// What replaying a sequence does to the file's size, after validation.
struct ReplayPlan {
  std::uint64_t file_size = 0;    // before replay
  std::uint64_t target_size = 0;  // after: max(file_size, head LastFileOffset, every update's end)
};

// Checks `sequence` against a file of `file_size` bytes before anything is applied:
// - the file is not shorter than the head's FlushedFileOffset (else it was truncated):
//   kCorrupt "log: file is shorter (N) than the log's flushed file offset (M)";
// - no update touches the file identifier and headers (the first 192 KiB; region tables at
//   192 KiB and later are legitimate targets) or the log region itself, and none ends past
//   kMaxReplayFileSize (nor does LastFileOffset): kCorrupt naming the entry's sequence number.
Result<ReplayPlan> plan_replay(const LogSequence& sequence, std::uint64_t file_size);

// Applies every update of `sequence` in order to `file` (data sectors written, zero ranges
// zeroed), extends the file to the plan's target size and flushes. Never shrinks the file.
// Replaying a sequence twice gives the same file. It does not clear the header's LogGuid: the
// caller does that through the header protocol once this returns.
// Errors: kReadOnly for a read-only file, plan_replay's errors (nothing written), kIo.
Result<void> replay_in_place(File& file, const LogSequence& sequence);

// The file as it would read after replay, held in memory: the replayed 4 KiB sectors and zero
// ranges, over an unmodified base file. Memory is bounded by the log: each sector came from a
// data sector of the log, and each zero range from a 32-byte descriptor.
class ReplayOverlay {
 public:
  // Validates with plan_replay(sequence, base_size) and applies the updates in order in memory.
  static Result<ReplayOverlay> build(const LogSequence& sequence, std::uint64_t base_size);

  // Reads out.size() bytes at offset as they would be after replay: replayed sectors first, then
  // zero ranges as zeros, then `base` (whose size must still be base_size); bytes past the base's
  // end but below size() read as zeros. Past size(): kIo "unexpected end of file".
  Result<void> read_at(File& base, std::uint64_t offset, std::span<std::uint8_t> out) const;
  // The file size after replay.
  std::uint64_t size() const { return size_; }
  std::uint64_t base_size() const { return base_size_; }
  std::size_t sector_count() const { return sectors_.size(); }
  std::size_t zero_range_count() const { return zeros_.size(); }

 private:
  void put_sector(std::uint64_t offset, std::span<const std::uint8_t, 4096> data);
  void put_zeros(std::uint64_t offset, std::uint64_t length);

  std::uint64_t base_size_ = 0;
  std::uint64_t size_ = 0;
  std::map<std::uint64_t, std::array<std::uint8_t, 4096>> sectors_;  // by file offset
  std::map<std::uint64_t, std::uint64_t> zeros_;  // start -> end; disjoint, never adjacent
};

// A read-only File presenting `base` as it would be after replaying a sequence, without writing
// to it: what a read-only open serves (§9: "a read-only opener must apply the replay in
// memory"). Writes, truncate and punch_hole fail with kReadOnly; flush does nothing.
// Owns its base File.
class OverlayFile final : public File {
 public:
  // Builds the overlay against base's current size; errors as ReplayOverlay::build.
  static Result<std::unique_ptr<OverlayFile>> create(std::unique_ptr<File> base,
                                                     const LogSequence& sequence);

  Result<void> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override;
  Result<void> write_at(std::uint64_t offset, std::span<const std::uint8_t> data) override;
  Result<std::uint64_t> size() override { return overlay_.size(); }
  Result<void> truncate(std::uint64_t new_size) override;
  Result<void> flush() override { return ok(); }
  Result<void> punch_hole(std::uint64_t offset, std::uint64_t length) override;
  bool writable() const override { return false; }
  std::string name() const override { return base_->name(); }

  File& base() { return *base_; }
  const ReplayOverlay& overlay() const { return overlay_; }

 private:
  OverlayFile(std::unique_ptr<File> base, ReplayOverlay overlay)
      : base_(std::move(base)), overlay_(std::move(overlay)) {}
  Error read_only() const;

  std::unique_ptr<File> base_;
  ReplayOverlay overlay_;
};

}  // namespace vhdx::log
