// Files for crash-consistency and error-path testing.
//
// FaultFile: an in-memory File that models a disk with a volatile write cache. Every mutating
// call (write_at, truncate, punch_hole) since the last flush() is pending: reads and size() see
// it, but a crash may lose it. The cache works in 512-byte pieces: a write is kept as the whole
// pieces it touches, as they read right after it, so a piece reaches the disk whole (a write
// of 6 bytes carries the other 506 bytes of its piece, earlier pending ones included).
// crash_image() builds what the disk could hold after a crash now: the durable bytes plus each
// pending operation independently applied, dropped or (writes and hole punches) torn into an
// arbitrary subset of its 512-byte pieces, pieces aligned to absolute file offsets. With
// record_trace() every call is kept, so crash images for every earlier point can be rebuilt offline
// by a CrashImageBuilder instead of re-running the workload. FaultFile also injects errors: the
// n-th call of a kind fails with EIO once (transient) or from then on (persistent), and a size
// limit makes growing writes fail with ENOSPC.
//
// CopyOnWriteFile: a copy-on-write File over borrowed bytes, so a crash image of a large file costs
// only the pages that change (the replay writes in place into the overlay).
//
// Thread safety: none.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "vhdx/file.h"

namespace vhdx {

// One call recorded by a FaultFile.
struct FaultOp {
  enum class Kind : std::uint8_t { kWrite, kTruncate, kPunchHole, kFlush };
  Kind kind = Kind::kWrite;
  std::uint64_t offset = 0;        // write and punch_hole: where; truncate: the new size
  std::uint64_t length = 0;        // write: data.size(); punch_hole: length
  std::vector<std::uint8_t> data;  // write only
};

// What a crash does to each pending operation.
enum class CrashPolicy {
  kApplyAll,  // everything reached the disk
  kDropAll,   // nothing since the last flush reached the disk
  kRandom,    // each op applied, dropped or torn, independently (seeded)
  kTorn,      // each write and hole punch torn into a random subset of its 512-byte pieces
};

// Granularity at which a crash may tear a write.
inline constexpr std::uint64_t kTearUnit = 512;

// Applies `op` (not a flush) to `bytes` entirely.
void apply_fault_op(const FaultOp& op, std::vector<std::uint8_t>& bytes);
// Applies `op` to `bytes` as a crash under `policy` may leave it, drawing from `rng`.
void apply_fault_op_crashed(const FaultOp& op, CrashPolicy policy, std::mt19937_64& rng,
                            std::vector<std::uint8_t>& bytes);
class CopyOnWriteFile;

class FaultFile final : public File {
 public:
  // Which calls an injected error matches. kAny counts write_at, truncate, punch_hole and flush.
  enum class Call { kWrite, kTruncate, kPunchHole, kFlush, kAny };
  enum class ErrorMode { kTransient, kPersistent, kNoSpace };

  explicit FaultFile(std::vector<std::uint8_t> bytes = {});

  Result<void> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override;
  Result<void> write_at(std::uint64_t offset, std::span<const std::uint8_t> data) override;
  Result<std::uint64_t> size() override { return static_cast<std::uint64_t>(volatile_.size()); }
  Result<void> truncate(std::uint64_t new_size) override;
  Result<void> flush() override;
  Result<void> punch_hole(std::uint64_t offset, std::uint64_t length) override;
  bool writable() const override { return true; }
  std::string name() const override { return "<fault>"; }

  // What reads see: everything applied.
  const std::vector<std::uint8_t>& bytes() const { return volatile_; }
  // What survives any crash: the state at the last successful flush.
  const std::vector<std::uint8_t>& durable_bytes() const { return durable_; }
  // Operations since the last successful flush, oldest first.
  const std::vector<FaultOp>& pending() const { return pending_; }
  // What the disk may hold after a crash now.
  std::vector<std::uint8_t> crash_image(CrashPolicy policy, std::uint64_t seed) const;

  // Recording: from now on every successful call (flushes included) is appended to trace().
  void record_trace() { recording_ = true; }
  const std::vector<FaultOp>& trace() const { return trace_; }
  // Successful mutating calls (write_at, truncate, punch_hole) so far.
  std::uint64_t mutations() const { return mutations_; }

  // Makes call number `nth` (1-based, counted over calls of kind `call` since the file was
  // made) fail: with EIO, only that call (kTransient) or it and every later matching call
  // (kPersistent); or with ENOSPC, only that call (kNoSpace: the disk was full at that moment).
  // One rule at a time; a new one replaces the old.
  void inject_error(Call call, std::uint64_t nth, ErrorMode mode);
  // Writes and truncates that would make the file larger than `bytes` fail with ENOSPC.
  void set_size_limit(std::uint64_t bytes) { size_limit_ = bytes; }
  void clear_faults();
  // Calls of a kind made so far (failed ones included).
  std::uint64_t calls(Call call) const { return calls_[static_cast<int>(call)]; }
  // Errors injected so far.
  std::uint64_t injected_errors() const { return injected_; }

  // Largest size the file may grow to (as MemFile).
  static constexpr std::uint64_t kMaxSize = std::uint64_t{1} << 32;

 private:
  Result<void> count_and_check(Call call, const std::string& what);
  Result<void> check_space(std::uint64_t new_end, const std::string& what);
  void record(FaultOp op);

  std::vector<std::uint8_t> volatile_;
  std::vector<std::uint8_t> durable_;
  std::vector<FaultOp> pending_;
  bool recording_ = false;
  std::vector<FaultOp> trace_;
  std::uint64_t mutations_ = 0;
  std::uint64_t calls_[5] = {};
  bool rule_armed_ = false;
  Call rule_call_ = Call::kAny;
  std::uint64_t rule_nth_ = 0;
  ErrorMode rule_mode_ = ErrorMode::kTransient;
  std::uint64_t size_limit_ = UINT64_MAX;
  std::uint64_t injected_ = 0;
};

// Rebuilds crash images from a recorded trace. Walk crash points in increasing order: advance
// to trace position p (the first p operations happened), then build() any number of images.
class CrashImageBuilder {
 public:
  CrashImageBuilder(std::vector<std::uint8_t> initial, const std::vector<FaultOp>& trace)
      : durable_(std::move(initial)), trace_(trace) {}

  // Moves to the point after the first `position` operations of the trace (never backwards).
  void advance(std::size_t position);
  std::size_t position() const { return position_; }
  // Durable bytes at the current point (the last flush at or before it).
  const std::vector<std::uint8_t>& durable() const { return durable_; }
  // Operations pending at the current point, as indices into the trace.
  const std::vector<std::size_t>& pending() const { return pending_; }
  // A crash image: the durable bytes with the pending operations applied under `policy`.
  std::vector<std::uint8_t> build(CrashPolicy policy, std::uint64_t seed) const;
  // The same image as a copy-on-write overlay of durable() (valid until the next advance()):
  // only the pages the pending operations touch are copied. Same seed, same image as build().
  std::unique_ptr<CopyOnWriteFile> build_overlay(CrashPolicy policy, std::uint64_t seed) const;

 private:
  std::vector<std::uint8_t> durable_;
  const std::vector<FaultOp>& trace_;
  std::size_t position_ = 0;
  std::vector<std::size_t> pending_;
};

// A copy-on-write File over bytes it does not own (they must outlive it and stay unchanged).
// Changes live in 4 KiB pages of its own; clone() copies only those. A page costs no allocation
// of its own: copies sit in 64 KiB chunks that reset() keeps for the next use, so an overlay
// reused many times (a fuzz target's image) allocates nothing once warm.
class CopyOnWriteFile final : public File {
 public:
  CopyOnWriteFile(const std::vector<std::uint8_t>& base, bool writable);

  Result<void> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override;
  Result<void> write_at(std::uint64_t offset, std::span<const std::uint8_t> data) override;
  Result<std::uint64_t> size() override { return size_; }
  Result<void> truncate(std::uint64_t new_size) override;
  Result<void> flush() override { return ok(); }
  Result<void> punch_hole(std::uint64_t offset, std::uint64_t length) override;
  bool writable() const override { return writable_; }
  std::string name() const override { return "<overlay>"; }

  std::unique_ptr<CopyOnWriteFile> clone(bool writable) const;
  // Becomes a copy of `other` (over the same base), as clone() would make, but in the page
  // memory this overlay already has.
  void assign(const CopyOnWriteFile& other, bool writable);
  // Drops every change and starts over on `base` (which must outlive it and stay unchanged),
  // keeping the memory of the page copies.
  void reset(const std::vector<std::uint8_t>& base, bool writable);
  // The whole file as bytes.
  std::vector<std::uint8_t> materialize() const;
  std::uint64_t changed_pages() const { return changed_.size(); }
  // Where the file may read differently from its base, as sorted, disjoint [begin, end) byte
  // ranges inside [0, size()): the changed pages (adjacent ones merged) and everything from where
  // the base stops being visible (its end, or a truncate below it) to the file's end. Every byte
  // outside them reads as the base's byte at the same offset.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> changed_ranges() const;

  static constexpr std::uint64_t kPage = 4096;

 private:
  // What a page reads as: the base (or zeros past it), zeros (a punched page), or a copy.
  static constexpr std::uint32_t kBase = 0;
  static constexpr std::uint32_t kPunched = UINT32_MAX;
  static constexpr std::uint32_t kPagesPerChunk = 16;

  std::uint32_t slot(std::uint64_t index) const {
    return index < slot_of_page_.size() ? slot_of_page_[index] : kBase;
  }
  static bool is_copy(std::uint32_t slot) { return slot != kBase && slot != kPunched; }
  std::uint8_t* copy_data(std::uint32_t slot) const;
  std::uint32_t new_copy();
  void drop_page(std::uint64_t index);
  // The page's own copy, made from what it reads as now (unless the caller will overwrite the
  // `whole` page).
  std::uint8_t* page(std::uint64_t index, bool whole);
  void read_into(std::uint64_t offset, std::span<std::uint8_t> out) const;
  void read_base(std::uint64_t offset, std::span<std::uint8_t> out) const;

  const std::vector<std::uint8_t>* base_;
  bool writable_;
  std::uint64_t size_;
  // Bytes of base_ still visible: a truncate below it hides the rest for good.
  std::uint64_t base_visible_;
  // By page index: kBase, kPunched, or 1 + the number of the page's copy. Pages past the end
  // of the vector are kBase.
  std::vector<std::uint32_t> slot_of_page_;
  // Indices of the pages that are not kBase, in no order.
  std::vector<std::uint64_t> changed_;
  // Page copies: copy n is page n % kPagesPerChunk of chunk n / kPagesPerChunk. Copies below
  // copies_used_ are in use unless listed in free_copies_.
  std::vector<std::unique_ptr<std::uint8_t[]>> chunks_;
  std::uint32_t copies_used_ = 0;
  std::vector<std::uint32_t> free_copies_;
};

// A File that forwards to one it does not own, so a test can hand an engine a file and keep
// inspecting it afterwards.
class BorrowedFile final : public File {
 public:
  explicit BorrowedFile(File& file) : file_(file) {}
  Result<void> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    return file_.read_at(offset, out);
  }
  Result<void> write_at(std::uint64_t offset, std::span<const std::uint8_t> data) override {
    return file_.write_at(offset, data);
  }
  Result<std::uint64_t> size() override { return file_.size(); }
  Result<void> truncate(std::uint64_t new_size) override { return file_.truncate(new_size); }
  Result<void> flush() override { return file_.flush(); }
  Result<void> punch_hole(std::uint64_t offset, std::uint64_t length) override {
    return file_.punch_hole(offset, length);
  }
  bool writable() const override { return file_.writable(); }
  std::string name() const override { return file_.name(); }

 private:
  File& file_;
};

}  // namespace vhdx
