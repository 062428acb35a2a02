// §9 The log's reading half, part 1: finding the active sequence in the circular log.
//
// The log is a ring of 4 KiB sectors at LogOffset, LogLength bytes long. Every 4 KiB offset may
// start an entry; an entry may wrap past the end of the ring. A sequence is a run of valid
// entries with consecutive sequence numbers whose last entry (the head) names in its Tail field
// the first entry (the tail) of the updates that may not be in place yet. The active sequence is
// the valid, complete one whose head has the highest sequence number; replay.h applies it.
//
// Thread safety: none needed; these are free functions over a caller's File.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "format/log_entry.h"
#include "vhdx/error.h"
#include "vhdx/file.h"
#include "vhdx/guid.h"

namespace vhdx::log {

// One entry of a sequence: its header and where it starts in the ring.
struct SequenceEntry {
  format::LogEntryHeader header;
  std::uint32_t log_offset = 0;  // relative to LogOffset
};

// One update a sequence carries, in replay order. Kept compact (a zero descriptor is 32 bytes on
// disk and stays small here); the 4 KiB of a data update live in LogSequence::sectors.
struct ReplayUpdate {
  static constexpr std::uint32_t kNoData = 0xFFFFFFFFu;

  std::uint64_t sequence_number = 0;   // of the entry that carries it, for messages
  std::uint64_t file_offset = 0;       // 4 KiB multiple
  std::uint64_t zero_length = 0;       // zero updates: bytes to zero (4 KiB multiple, may be 0)
  std::uint32_t data_index = kNoData;  // data updates: index into LogSequence::sectors

  bool is_zero() const { return data_index == kNoData; }
  // Bytes the update covers in the file.
  std::uint64_t length() const { return is_zero() ? zero_length : 4096; }
};

// The active sequence: its entries from tail to head and every update they carry.
// Memory is proportional to the log: one 4 KiB sector per data descriptor (each came from a
// 4 KiB data sector of the log) and 40 bytes per descriptor.
struct LogSequence {
  Guid log_guid;
  std::uint64_t log_offset = 0;  // the log region the sequence was read from
  std::uint32_t log_length = 0;
  std::vector<SequenceEntry> entries;  // tail..head, never empty
  std::vector<ReplayUpdate> updates;   // every descriptor of every entry, tail..head
  std::vector<std::array<std::uint8_t, 4096>> sectors;  // rebuilt target sectors of data updates

  const SequenceEntry& head() const { return entries.back(); }
  std::uint64_t head_sequence() const { return head().header.sequence_number; }
  std::uint32_t tail_offset() const { return entries.front().log_offset; }
  std::uint32_t head_offset() const { return head().log_offset; }
  // The file is at least this large (the head's FlushedFileOffset).
  std::uint64_t flushed_file_offset() const { return head().header.flushed_file_offset; }
  // Replay extends the file to at least this (the head's LastFileOffset).
  std::uint64_t last_file_offset() const { return head().header.last_file_offset; }
  std::span<const std::uint8_t, 4096> data(const ReplayUpdate& update) const {
    return sectors[update.data_index];
  }
};

// Work done by a scan, for tests that check it stays linear in the log size.
struct ScanStats {
  std::uint64_t headers_checked = 0;    // offsets whose 64-byte header was examined
  std::uint64_t sectors_examined = 0;   // descriptor and data sectors whose layout was checked
  std::uint64_t bytes_checksummed = 0;  // bytes run through CRC-32C
  std::uint64_t valid_entries = 0;      // entries that passed every check
};

// Caps on what one active sequence may hold, so a hostile log cannot make decoding allocate far
// more than the log's own size (format::LogUpdate holds 4 KiB per descriptor, zero ones too).
// 32766 descriptors fill a 1 MiB entry; legitimate entries carry a few dozen. Exceeding either
// cap is kUnsupported.
inline constexpr std::uint32_t kMaxEntryDescriptors = 32766;
inline constexpr std::uint64_t kMaxSequenceDescriptors = 262144;

// Finds the active sequence of the log at [log_offset, log_offset + log_length) of `file`,
// following §9's scan: from ring offset 0, read the chain of valid entries with consecutive
// sequence numbers; keep it when its head's Tail is the start of one of its entries and its head
// has the highest sequence number so far; continue after the chain's head (or 4 KiB further when
// no entry starts here) until the scan passes the end of the ring.
//
// An entry is valid when §9's checks pass: signature, length (4 KiB multiple, <= log_length),
// non-zero sequence number, log GUID equal to `log_guid` (entries under another GUID, such as the
// stale ones Windows leaves behind, are never part of a sequence), Tail inside the log,
// descriptors and data sectors consistent with the entry's sequence number, and the CRC-32C.
// The sequence returned runs from the head's tail to the head; entries of the chain before the
// tail are already in place and are dropped.
//
// Returns nullopt when no valid sequence exists (the caller decides whether that is corruption)
// and, without reading the log, when log_guid is zero (a zero GUID means the log is empty; a
// caller replays only when the header's LogGuid is set).
// Errors: kCorrupt naming LogOffset/LogLength when log_length is 0 or not a 1 MiB multiple,
// log_offset is below 1 MiB or not a 1 MiB multiple, or the region ends past the end of the file;
// kUnsupported past the caps above; kIo from the file.
//
// Cost: linear in log_length. Each offset is evaluated once; the layout of an entry is checked
// (each of its sectors must carry the signature its role demands, so no entry start hides inside
// it) before its CRC, which makes the checksummed entries disjoint: at most log_length bytes go
// through the CRC, whatever the log holds. Memory: the log is read in 1 MiB pieces (a few held
// at a time) plus one entry's bytes; the result is proportional to the sequence.
Result<std::optional<LogSequence>> find_active_sequence(File& file, std::uint64_t log_offset,
                                                        std::uint32_t log_length,
                                                        const Guid& log_guid,
                                                        ScanStats* stats = nullptr);

}  // namespace vhdx::log
