// §9 Log entries: header, zero and data descriptors, data sectors.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "vhdx/error.h"
#include "vhdx/guid.h"

namespace vhdx::format {

struct LogEntryHeader {
  std::uint32_t checksum = 0;
  std::uint32_t entry_length = 0;
  std::uint32_t tail = 0;
  std::uint64_t sequence_number = 0;
  std::uint32_t descriptor_count = 0;
  Guid log_guid;
  std::uint64_t flushed_file_offset = 0;
  std::uint64_t last_file_offset = 0;
};

// One update an entry carries: either `zero_length` zero bytes at file_offset, or one rebuilt
// 4 KiB sector (data) at file_offset.
struct LogUpdate {
  enum class Kind { kZero, kData } kind = Kind::kData;
  std::uint64_t file_offset = 0;
  std::uint64_t zero_length = 0;          // kZero only
  std::array<std::uint8_t, 4096> data{};  // kData only: the full target sector
};

struct LogEntry {
  LogEntryHeader header;
  std::vector<LogUpdate> updates;  // descriptor order
};

// Decodes the 64-byte header at the start of an entry without validating it further than the
// signature (the scanner reads headers before it knows the entry's length).
Result<LogEntryHeader> decode_log_entry_header(std::span<const std::uint8_t> bytes);

// Number of descriptor sectors for `descriptor_count` descriptors: ceil((count + 2) / 128).
std::uint64_t log_descriptor_sectors(std::uint64_t descriptor_count);

// Decodes and fully validates one entry from its entry_length bytes (the caller unrolls a
// wrapped entry into one buffer): signature, entry length (4 KiB multiple, == bytes.size(),
// <= log_length), sequence number non-zero, GUID equal to expected_log_guid, tail a 4 KiB
// multiple below log_length, descriptor count fitting in the entry, every descriptor's
// signature, alignment and sequence number, every data sector's signature and sequence
// halves, flushed/last file offsets 1 MiB multiples, and the CRC-32C over the whole entry.
Result<LogEntry> decode_log_entry(std::span<const std::uint8_t> bytes,
                                  const Guid& expected_log_guid, std::uint64_t log_length);

// Builds an entry: header fields from `header` (checksum, entry_length and descriptor_count
// are computed), descriptors and data sectors from `updates`. Data updates must be 4 KiB
// aligned; zero updates 4 KiB multiples.
std::vector<std::uint8_t> encode_log_entry(const LogEntryHeader& header,
                                           std::span<const LogUpdate> updates);

}  // namespace vhdx::format
