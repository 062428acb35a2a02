// §9 The log's writing half: appends entries to the circular log of one session (one LogGuid).
//
// Protocol the caller (the image engine) follows for every metadata update:
//   seq = writer.append(updates)   // entry written, not flushed
//   writer.flush()                 // the entry is durable (invariant 7: only now write in place)
//   ...write the updates in place...
//   writer.mark_applied(seq)       // in place, not yet flushed
//   a later writer.flush() retires applied entries: the next entry's Tail moves past them.
// Every flush of the file while a writer exists should go through writer.flush(), so the writer
// knows what is durable (FlushedFileOffset and which entries are retired).
//
// Ring space rule: an append never overwrites the entries of the durable active sequence (from
// the last flushed head's Tail to it) nor entries appended since; one 4 KiB sector always stays
// free. When an entry does not fit, the writer flushes (retiring applied entries), writes an
// empty entry whose Tail is itself, flushes again (the active sequence is now that one sector)
// and then appends.
//
// Thread safety: none. The writer does not own the File.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>

#include "format/log_entry.h"
#include "vhdx/error.h"
#include "vhdx/file.h"
#include "vhdx/guid.h"

namespace vhdx::log {

class LogWriter {
 public:
  static constexpr std::uint32_t kSectorSize = 4096;

  // A writer for the log at [log_offset, log_offset + log_length) of `file` under `log_guid`
  // (non-zero), whose first entry gets `first_sequence` (> 0) and starts at ring offset
  // `start_offset` (4 KiB multiple below log_length). Nothing of the ring is treated as in use:
  // the caller has just installed a fresh LogGuid, so older entries are dead.
  // `flushed_file_size` is a file size known durable now.
  // Errors: kInvalidArgument for a misaligned or too small region, zero GUID or sequence.
  static Result<std::unique_ptr<LogWriter>> create(File& file, std::uint64_t log_offset,
                                                   std::uint32_t log_length, const Guid& log_guid,
                                                   std::uint64_t first_sequence,
                                                   std::uint32_t start_offset,
                                                   std::uint64_t flushed_file_size);

  // Bytes of the largest entry append accepts: the ring less two sectors (one for the empty
  // entry that reclaims space, one always free).
  std::uint64_t max_entry_bytes() const { return log_length_ - 2 * kSectorSize; }
  // Bytes an entry carrying `updates` takes in the ring.
  static std::uint64_t entry_bytes(std::span<const format::LogUpdate> updates);

  // Encodes an entry carrying `updates` (Tail = the oldest entry not yet retired, or itself;
  // FlushedFileOffset = the last flushed file size rounded down to 1 MiB; LastFileOffset = the
  // file's current size rounded up to 1 MiB) and writes it, wrapping at the ring end. Does not
  // flush it. Returns its sequence number. When the ring has no room it reclaims space as the
  // header comment says; kInternal if entries not yet applied block that, kInvalidArgument if
  // the entry is larger than max_entry_bytes(). Any I/O error makes the writer fail for good
  // (every later call returns kFailed).
  Result<std::uint64_t> append(std::span<const format::LogUpdate> updates);

  // Flushes the file. Afterwards every appended entry is durable and every entry marked applied
  // before the call is retired.
  Result<void> flush();

  // Declares that the updates of every entry up to `sequence` are written in place (unflushed).
  void mark_applied(std::uint64_t sequence);

  const Guid& log_guid() const { return log_guid_; }
  std::uint64_t next_sequence() const { return next_sequence_; }
  // Ring offset where the next entry starts.
  std::uint32_t write_offset() const { return write_pos_; }
  // Entries appended and not yet retired.
  std::size_t pending_entries() const { return entries_.size(); }
  // Whether every appended entry is applied, flushed and retired.
  bool idle() const { return entries_.empty(); }
  // Bytes of the ring in use: the durable active sequence plus entries appended since.
  std::uint64_t used_bytes() const { return used_; }
  std::uint64_t flushed_file_size() const { return flushed_file_size_; }
  bool failed() const { return failed_; }

 private:
  struct Pending {
    std::uint32_t offset = 0;
    std::uint32_t length = 0;
    std::uint64_t sequence = 0;
    bool applied = false;
  };

  LogWriter(File& file, std::uint64_t log_offset, std::uint32_t log_length, const Guid& log_guid,
            std::uint64_t first_sequence, std::uint32_t start_offset,
            std::uint64_t flushed_file_size)
      : file_(file),
        log_offset_(log_offset),
        log_length_(log_length),
        log_guid_(log_guid),
        next_sequence_(first_sequence),
        write_pos_(start_offset),
        used_start_(start_offset),
        flushed_file_size_(flushed_file_size) {}

  Result<std::uint64_t> write_entry(std::span<const format::LogUpdate> updates);
  Result<void> write_ring(std::uint32_t at, std::span<const std::uint8_t> bytes);
  Result<void> reclaim();
  Error fail(Error error);

  File& file_;
  std::uint64_t log_offset_;
  std::uint32_t log_length_;
  Guid log_guid_;
  std::uint64_t next_sequence_;
  std::uint32_t write_pos_;
  // In-use ring bytes: [used_start_, used_start_ + used_) modulo the ring.
  std::uint32_t used_start_;
  std::uint64_t used_ = 0;
  // The Tail of the newest appended entry; becomes used_start_ once that entry is durable.
  std::uint32_t last_tail_ = 0;
  bool appended_since_flush_ = false;
  std::uint64_t flushed_file_size_;
  bool failed_ = false;
  std::deque<Pending> entries_;  // not yet retired, oldest first
};

}  // namespace vhdx::log
