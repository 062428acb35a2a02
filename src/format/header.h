// §4 Headers (64 KiB and 128 KiB; 4 KiB used, checksummed).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>

#include "vhdx/error.h"
#include "vhdx/guid.h"

namespace vhdx::format {

struct Header {
  std::uint32_t checksum = 0;  // as stored; encode_header recomputes it
  std::uint64_t sequence_number = 0;
  Guid file_write_guid;
  Guid data_write_guid;
  Guid log_guid;
  std::uint16_t log_version = 0;
  std::uint16_t version = 1;
  std::uint32_t log_length = 0;
  std::uint64_t log_offset = 0;
};

// Decodes and validates one header from its kHeaderSize (4096) bytes: signature, checksum,
// version (kUnsupported if not 1), log version (kUnsupported if not 0 while log_guid is set),
// log offset and length alignment (1 MiB), log offset >= 1 MiB, log length > 0 when the
// log GUID is set. Errors are kCorrupt and name the failing field.
Result<Header> decode_header(std::span<const std::uint8_t> bytes);
// Writes the header into 4096 bytes, computing the checksum; reserved bytes become zero.
void encode_header(const Header& header, std::span<std::uint8_t> out);

// The result of choosing the current header from the two slots (§4).
struct HeaderChoice {
  int current = 0;  // 0 or 1
};
// Given the decode results of slot 1 and slot 2: the only valid one, or the valid one with the
// larger sequence number. Two valid headers with equal sequence numbers are accepted only when
// they are identical (the Disk2vhd quirk); otherwise kCorrupt. Neither valid: kCorrupt, with
// both reasons in the message.
Result<HeaderChoice> choose_current_header(const Result<Header>& first,
                                           const Result<Header>& second,
                                           std::span<const std::uint8_t> first_bytes,
                                           std::span<const std::uint8_t> second_bytes);

}  // namespace vhdx::format
