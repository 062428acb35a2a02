#include "log/sequence.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>

#include "base/checked_math.h"
#include "base/crc32c.h"
#include "base/endian.h"
#include "base/text.h"
#include "format/constants.h"

namespace vhdx::log {

namespace {

using format::kLogDescriptorSize;
using format::kLogEntryHeaderSize;
using format::kLogSectorSize;

// The ring is read in pieces of this size; LogLength is a multiple of it, so no piece straddles
// the end of the ring. Pieces stay small (a scan touches every 4 KiB of the log, so they are read
// whole anyway) and the cache holds 1 MiB, enough for the largest entry a 1 MiB log can hold.
constexpr std::uint64_t kChunkSize = 64 * 1024;
constexpr std::size_t kCachedChunks = 16;
// CRC input is copied out of the ring in pieces of this size.
constexpr std::size_t kCrcPiece = 64 * 1024;

// Field offsets the layout check needs (§9); format/log_entry.cc decodes the same fields.
constexpr std::size_t kDescFileOffsetAt = 16;
constexpr std::size_t kDescSequenceAt = 24;
constexpr std::size_t kDescZeroLengthAt = 8;
constexpr std::size_t kSectorSequenceHighAt = 4;
constexpr std::size_t kSectorSequenceLowAt = 4092;
constexpr std::size_t kChecksumAt = 4;

Error corrupt(const std::string& reason) { return Error(ErrorCode::kCorrupt, "log: " + reason); }

template <std::size_t N>
bool has_signature(std::span<const std::uint8_t> bytes, const char (&sig)[N]) {
  return std::memcmp(bytes.data(), sig, N) == 0;
}

// The log region read as a ring, a few chunks cached (the scan moves forward, so a small cache
// reads each chunk about once).
class Ring {
 public:
  Ring(File& file, std::uint64_t offset, std::uint64_t length)
      : file_(file), offset_(offset), length_(length) {}

  std::uint64_t length() const { return length_; }

  // Copies out.size() bytes (at most length()) starting at ring offset `at`, wrapping past the
  // end of the ring.
  Result<void> read(std::uint64_t at, std::span<std::uint8_t> out) {
    std::size_t done = 0;
    while (done < out.size()) {
      const std::uint64_t pos = (at + done) % length_;
      const std::uint64_t index = pos / kChunkSize;
      VHDX_ASSIGN_OR_RETURN(const std::uint8_t* chunk, load(index));
      const std::uint64_t in_chunk = pos - index * kChunkSize;
      const std::size_t n = static_cast<std::size_t>(
          std::min<std::uint64_t>(out.size() - done, kChunkSize - in_chunk));
      std::memcpy(out.data() + done, chunk + in_chunk, n);
      done += n;
    }
    return ok();
  }

 private:
  struct Slot {
    std::uint64_t index = UINT64_MAX;
    std::uint64_t last_used = 0;
    std::unique_ptr<std::uint8_t[]> bytes;
  };

  Result<const std::uint8_t*> load(std::uint64_t index) {
    ++clock_;
    Slot* victim = &slots_[0];
    for (Slot& slot : slots_) {
      if (slot.index == index) {
        slot.last_used = clock_;
        return static_cast<const std::uint8_t*>(slot.bytes.get());
      }
      if (slot.last_used < victim->last_used) victim = &slot;
    }
    victim->index = UINT64_MAX;
    // Not zero-filled: the read overwrites every byte.
    if (!victim->bytes) victim->bytes = std::make_unique_for_overwrite<std::uint8_t[]>(kChunkSize);
    const std::uint64_t at = offset_ + index * kChunkSize;
    if (auto r = file_.read_at(at, std::span(victim->bytes.get(), kChunkSize)); !r)
      return std::move(r).error().with_context("log: reading the log at file offset " + hex(at));
    victim->index = index;
    victim->last_used = clock_;
    return static_cast<const std::uint8_t*>(victim->bytes.get());
  }

  File& file_;
  std::uint64_t offset_;
  std::uint64_t length_;
  std::uint64_t clock_ = 0;
  std::array<Slot, kCachedChunks> slots_;
};

// Decides, once per 4 KiB offset, whether a valid entry starts there.
class Scanner {
 public:
  Scanner(Ring& ring, const Guid& log_guid, ScanStats& stats)
      : ring_(ring),
        log_guid_(log_guid),
        stats_(stats),
        state_(ring.length() / kLogSectorSize, kUnknown) {}

  // The header of the valid entry starting at ring offset `at`, or nullptr when none does.
  // The pointer stays valid for the scanner's life.
  Result<const format::LogEntryHeader*> entry_at(std::uint64_t at) {
    const std::size_t slot = static_cast<std::size_t>(at / kLogSectorSize);
    if (state_[slot] == kUnknown) {
      format::LogEntryHeader header;
      VHDX_ASSIGN_OR_RETURN(bool valid, check(at, header));
      state_[slot] = valid ? kValid : kInvalid;
      if (valid) valid_.emplace(at, header);
    }
    if (state_[slot] == kInvalid) return static_cast<const format::LogEntryHeader*>(nullptr);
    return &valid_.at(at);
  }

 private:
  enum : std::uint8_t { kUnknown, kInvalid, kValid };

  // §9 entry validity, in an order that keeps the scan linear: the header fields, then the
  // layout (every descriptor, every data sector's signature and sequence halves), and only then
  // the CRC. A sector that passes the layout check carries 'desc', 'zero' or 'data' at its start,
  // never 'loge', so entries that reach the CRC never overlap one another.
  Result<bool> check(std::uint64_t at, format::LogEntryHeader& h) {
    const std::uint64_t log_length = ring_.length();
    // Most offsets hold no entry: look at the 64-byte header alone, and at its signature before
    // decoding it (a failed decode builds an error message).
    std::array<std::uint8_t, kLogEntryHeaderSize> header_bytes;
    VHDX_TRY(ring_.read(at, header_bytes));
    ++stats_.headers_checked;
    if (!has_signature(header_bytes, format::kLogEntrySignature)) return false;
    auto decoded = format::decode_log_entry_header(header_bytes);
    if (!decoded) return false;
    h = *decoded;
    if (h.entry_length == 0 || !is_aligned(h.entry_length, kLogSectorSize) ||
        h.entry_length > log_length)
      return false;
    if (h.sequence_number == 0 || h.log_guid != log_guid_) return false;
    if (!is_aligned(h.tail, kLogSectorSize) || h.tail >= log_length) return false;
    if (!is_aligned(h.flushed_file_offset, format::kObjectAlignment) ||
        !is_aligned(h.last_file_offset, format::kObjectAlignment))
      return false;
    const std::uint64_t total_sectors = h.entry_length / kLogSectorSize;
    const std::uint64_t descriptor_sectors = format::log_descriptor_sectors(h.descriptor_count);
    if (descriptor_sectors > total_sectors) return false;
    const std::uint64_t data_sectors = total_sectors - descriptor_sectors;

    // Descriptors: the header takes the first two 32-byte slots of sector 0.
    std::array<std::uint8_t, kLogSectorSize> sector;
    VHDX_TRY(ring_.read(at, sector));
    std::uint64_t loaded = 0;  // which sector of the entry `sector` holds
    std::uint64_t data_seen = 0;
    for (std::uint64_t i = 0; i < h.descriptor_count; ++i) {
      const std::uint64_t pos = kLogEntryHeaderSize + i * kLogDescriptorSize;
      const std::uint64_t s = pos / kLogSectorSize;
      if (s != loaded) {
        VHDX_TRY(ring_.read(at + s * kLogSectorSize, sector));
        ++stats_.sectors_examined;
        loaded = s;
      }
      auto desc =
          std::span<const std::uint8_t>(sector).subspan(pos % kLogSectorSize, kLogDescriptorSize);
      const bool is_data = has_signature(desc, format::kDataDescriptorSignature);
      if (!is_data && !has_signature(desc, format::kZeroDescriptorSignature)) return false;
      const std::uint64_t file_offset = load_le64(desc, kDescFileOffsetAt);
      if (!is_aligned(file_offset, kLogSectorSize)) return false;
      if (load_le64(desc, kDescSequenceAt) != h.sequence_number) return false;
      if (is_data) {
        if (++data_seen > data_sectors) return false;
      } else {
        const std::uint64_t zero_length = load_le64(desc, kDescZeroLengthAt);
        if (!is_aligned(zero_length, kLogSectorSize) || !checked_add(file_offset, zero_length))
          return false;
      }
    }
    if (data_seen != data_sectors) return false;

    // Data sectors: signature and the two halves of the sequence number.
    const auto high = static_cast<std::uint32_t>(h.sequence_number >> 32);
    const auto low = static_cast<std::uint32_t>(h.sequence_number);
    for (std::uint64_t s = descriptor_sectors; s < total_sectors; ++s) {
      std::array<std::uint8_t, 8> lead;
      std::array<std::uint8_t, 4> trail;
      VHDX_TRY(ring_.read(at + s * kLogSectorSize, lead));
      VHDX_TRY(ring_.read(at + s * kLogSectorSize + kSectorSequenceLowAt, trail));
      ++stats_.sectors_examined;
      if (!has_signature(lead, format::kDataSectorSignature) ||
          load_le32(lead, kSectorSequenceHighAt) != high || load_le32(trail, 0) != low)
        return false;
    }

    // CRC-32C over the whole entry in ring order, the checksum field taken as zero.
    Crc32c crc;
    VHDX_TRY(ring_.read(at, sector));
    std::fill_n(sector.begin() + kChecksumAt, 4, 0);
    crc.update(sector);
    crc_buffer_.resize(kCrcPiece);
    for (std::uint64_t pos = kLogSectorSize; pos < h.entry_length;) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(kCrcPiece, h.entry_length - pos));
      auto piece = std::span<std::uint8_t>(crc_buffer_).first(n);
      VHDX_TRY(ring_.read(at + pos, piece));
      crc.update(piece);
      pos += n;
    }
    stats_.bytes_checksummed += h.entry_length;
    if (crc.value() != h.checksum) return false;
    ++stats_.valid_entries;
    return true;
  }

  Ring& ring_;
  Guid log_guid_;
  ScanStats& stats_;
  std::vector<std::uint8_t> state_;  // per 4 KiB offset of the ring
  std::unordered_map<std::uint64_t, format::LogEntryHeader> valid_;
  std::vector<std::uint8_t> crc_buffer_;
};

// Decodes the entries at `offsets` (tail..head) with the format codec and gathers their updates.
Result<LogSequence> decode_sequence(Ring& ring, const Guid& log_guid, std::uint64_t log_offset,
                                    std::uint32_t log_length,
                                    const std::vector<std::uint64_t>& offsets,
                                    const std::vector<const format::LogEntryHeader*>& headers) {
  LogSequence seq;
  seq.log_guid = log_guid;
  seq.log_offset = log_offset;
  seq.log_length = log_length;
  std::uint64_t descriptors = 0;
  for (const format::LogEntryHeader* h : headers) {
    const std::string what = "entry seq " + std::to_string(h->sequence_number);
    if (h->descriptor_count > kMaxEntryDescriptors)
      return Error(ErrorCode::kUnsupported,
                   "log: " + what + " has " + std::to_string(h->descriptor_count) +
                       " descriptors, more than the " + std::to_string(kMaxEntryDescriptors) +
                       " supported");
    descriptors += h->descriptor_count;
    if (descriptors > kMaxSequenceDescriptors)
      return Error(ErrorCode::kUnsupported, "log: the active sequence has more than " +
                                                std::to_string(kMaxSequenceDescriptors) +
                                                " descriptors (at " + what + ")");
  }
  std::vector<std::uint8_t> bytes;
  for (std::size_t i = 0; i < offsets.size(); ++i) {
    bytes.resize(headers[i]->entry_length);
    VHDX_TRY(ring.read(offsets[i], bytes));
    auto entry = format::decode_log_entry(bytes, log_guid, log_length);
    // The scan found this entry valid; failing now means the file changed under us.
    if (!entry)
      return std::move(entry).error().with_context("log: entry at log offset " + hex(offsets[i]));
    seq.entries.push_back({entry->header, static_cast<std::uint32_t>(offsets[i])});
    for (const format::LogUpdate& u : entry->updates) {
      ReplayUpdate update;
      update.sequence_number = entry->header.sequence_number;
      update.file_offset = u.file_offset;
      if (u.kind == format::LogUpdate::Kind::kZero) {
        update.zero_length = u.zero_length;
      } else {
        update.data_index = static_cast<std::uint32_t>(seq.sectors.size());
        seq.sectors.push_back(u.data);
      }
      seq.updates.push_back(update);
    }
  }
  return seq;
}

}  // namespace

Result<std::optional<LogSequence>> find_active_sequence(File& file, std::uint64_t log_offset,
                                                        std::uint32_t log_length,
                                                        const Guid& log_guid, ScanStats* stats) {
  if (log_length == 0 || !is_aligned(log_length, format::kObjectAlignment))
    return corrupt("LogLength " + hex(log_length) + " is not a non-zero multiple of 1 MiB");
  if (log_offset < format::kHeaderSectionSize || !is_aligned(log_offset, format::kObjectAlignment))
    return corrupt("LogOffset " + hex(log_offset) + " is not a multiple of 1 MiB at or past 1 MiB");
  auto end = checked_add(log_offset, log_length);
  if (!end) return corrupt("LogOffset " + hex(log_offset) + " + LogLength overflows");
  VHDX_ASSIGN_OR_RETURN(std::uint64_t file_size, file.size());
  if (*end > file_size)
    return corrupt("log region (LogOffset " + hex(log_offset) + ", LogLength " + hex(log_length) +
                   ") ends past the end of the file (" + hex(file_size) + ")");
  ScanStats local_stats;
  ScanStats& st = stats != nullptr ? *stats : local_stats;
  st = {};
  if (log_guid.is_zero()) return std::optional<LogSequence>();

  Ring ring(file, log_offset, log_length);
  Scanner scanner(ring, log_guid, st);
  const std::uint64_t length = log_length;

  // The best sequence so far: its entries from tail to head.
  std::vector<std::uint64_t> best_offsets;
  std::vector<const format::LogEntryHeader*> best_headers;
  std::vector<std::uint64_t> chain;
  std::vector<const format::LogEntryHeader*> chain_headers;
  // `pos` never wraps: the scan ends once it passes the end of the ring.
  for (std::uint64_t pos = 0; pos < length;) {
    chain.clear();
    chain_headers.clear();
    std::uint64_t chain_length = 0;
    std::uint64_t at = pos;
    for (;;) {
      VHDX_ASSIGN_OR_RETURN(const format::LogEntryHeader* h, scanner.entry_at(at));
      if (h == nullptr) break;
      if (!chain_headers.empty()) {
        const std::uint64_t prev = chain_headers.back()->sequence_number;
        if (prev == UINT64_MAX || h->sequence_number != prev + 1) break;
      }
      if (chain_length + h->entry_length > length) break;  // would come round onto itself
      chain.push_back(at);
      chain_headers.push_back(h);
      chain_length += h->entry_length;
      at = (at + h->entry_length) % length;
    }
    if (chain.empty()) {
      pos += kLogSectorSize;
      continue;
    }
    const format::LogEntryHeader* head = chain_headers.back();
    auto tail = std::find(chain.begin(), chain.end(), std::uint64_t{head->tail});
    if (tail != chain.end() &&
        (best_headers.empty() || head->sequence_number > best_headers.back()->sequence_number)) {
      const auto first = tail - chain.begin();
      best_offsets.assign(tail, chain.end());
      best_headers.assign(chain_headers.begin() + first, chain_headers.end());
    }
    pos += chain_length;
  }
  if (best_offsets.empty()) return std::optional<LogSequence>();
  VHDX_ASSIGN_OR_RETURN(LogSequence seq, decode_sequence(ring, log_guid, log_offset, log_length,
                                                         best_offsets, best_headers));
  return std::optional<LogSequence>(std::move(seq));
}

}  // namespace vhdx::log
