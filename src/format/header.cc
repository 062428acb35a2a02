#include "format/header.h"

#include <algorithm>
#include <cassert>
#include <string>

#include "base/checked_math.h"
#include "base/crc32c.h"
#include "base/endian.h"
#include "format/codec_util.h"
#include "format/constants.h"

namespace vhdx::format {

using detail::corrupt;
using detail::hex;

namespace {

constexpr std::string_view kWhat = "header";

// Field offsets (§4).
constexpr std::size_t kChecksumAt = 4;
constexpr std::size_t kSequenceAt = 8;
constexpr std::size_t kFileWriteGuidAt = 16;
constexpr std::size_t kDataWriteGuidAt = 32;
constexpr std::size_t kLogGuidAt = 48;
constexpr std::size_t kLogVersionAt = 64;
constexpr std::size_t kVersionAt = 66;
constexpr std::size_t kLogLengthAt = 68;
constexpr std::size_t kLogOffsetAt = 72;

// Signature and checksum good: the spec's definition of a valid header slot.
bool slot_checksum_valid(std::span<const std::uint8_t> bytes) {
  return bytes.size() >= kHeaderSize && detail::has_signature(bytes, kHeaderSignature) &&
         load_le32(bytes, kChecksumAt) ==
             crc32c_with_zeroed_field(bytes.first(kHeaderSize), kChecksumAt);
}

}  // namespace

Result<Header> decode_header(std::span<const std::uint8_t> bytes) {
  VHDX_TRY(detail::require_size(kWhat, bytes, kHeaderSize));
  bytes = bytes.first(kHeaderSize);
  if (!detail::has_signature(bytes, kHeaderSignature))
    return corrupt(kWhat, "signature is " + detail::quoted(bytes.first(4)) + ", not 'head'");
  Header h;
  h.checksum = load_le32(bytes, kChecksumAt);
  std::uint32_t computed = crc32c_with_zeroed_field(bytes, kChecksumAt);
  if (h.checksum != computed)
    return corrupt(kWhat, "checksum mismatch (stored " + hex(h.checksum) + ", computed " +
                              hex(computed) + ")");
  h.sequence_number = load_le64(bytes, kSequenceAt);
  h.file_write_guid = detail::load_guid(bytes, kFileWriteGuidAt);
  h.data_write_guid = detail::load_guid(bytes, kDataWriteGuidAt);
  h.log_guid = detail::load_guid(bytes, kLogGuidAt);
  h.log_version = load_le16(bytes, kLogVersionAt);
  h.version = load_le16(bytes, kVersionAt);
  h.log_length = load_le32(bytes, kLogLengthAt);
  h.log_offset = load_le64(bytes, kLogOffsetAt);

  if (h.version != kHeaderVersion)
    return detail::unsupported(kWhat,
                               "version " + std::to_string(h.version) + " (only 1 is supported)");
  if (h.log_version != kLogVersion && !h.log_guid.is_zero())
    return detail::unsupported(kWhat, "log version " + std::to_string(h.log_version) +
                                          " with a log to replay (only 0 is supported)");
  if (!is_aligned(h.log_offset, kObjectAlignment))
    return corrupt(kWhat, "log offset " + hex(h.log_offset) + " is not a multiple of 1 MiB");
  if (h.log_offset < kHeaderSectionSize)
    return corrupt(
        kWhat, "log offset " + hex(h.log_offset) + " lies inside the header section (below 1 MiB)");
  if (!is_aligned(h.log_length, kObjectAlignment))
    return corrupt(kWhat, "log length " + hex(h.log_length) + " is not a multiple of 1 MiB");
  if (!checked_add(h.log_offset, h.log_length))
    return corrupt(
        kWhat, "log offset " + hex(h.log_offset) + " + length " + hex(h.log_length) + " overflows");
  if (h.log_length == 0 && !h.log_guid.is_zero())
    return corrupt(kWhat, "log length is 0 but the log GUID " + h.log_guid.to_string() + " is set");
  return h;
}

void encode_header(const Header& header, std::span<std::uint8_t> out) {
  assert(out.size() >= kHeaderSize);
  out = out.first(kHeaderSize);
  std::fill(out.begin(), out.end(), 0);
  detail::put_signature(out, kHeaderSignature);
  store_le64(out, kSequenceAt, header.sequence_number);
  detail::store_guid(out, kFileWriteGuidAt, header.file_write_guid);
  detail::store_guid(out, kDataWriteGuidAt, header.data_write_guid);
  detail::store_guid(out, kLogGuidAt, header.log_guid);
  store_le16(out, kLogVersionAt, header.log_version);
  store_le16(out, kVersionAt, header.version);
  store_le32(out, kLogLengthAt, header.log_length);
  store_le64(out, kLogOffsetAt, header.log_offset);
  store_le32(out, kChecksumAt, crc32c_with_zeroed_field(out, kChecksumAt));
}

Result<HeaderChoice> choose_current_header(const Result<Header>& first,
                                           const Result<Header>& second,
                                           std::span<const std::uint8_t> first_bytes,
                                           std::span<const std::uint8_t> second_bytes) {
  const Result<Header>* results[2] = {&first, &second};
  std::span<const std::uint8_t> raw[2] = {first_bytes, second_bytes};
  // A slot whose signature and checksum are good takes part in the choice even when a later
  // field failed to decode: if it is the newer one, its error is the answer (falling back to
  // the older header would silently use stale state).
  bool valid[2];
  std::uint64_t seq[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    if (results[i]->has_value()) {
      valid[i] = true;
      seq[i] = (*results[i])->sequence_number;
    } else {
      valid[i] = slot_checksum_valid(raw[i]);
      if (valid[i]) seq[i] = load_le64(raw[i], kSequenceAt);
    }
  }
  auto pick = [&](int i) -> Result<HeaderChoice> {
    if (!results[i]->has_value()) {
      Error e = results[i]->error();
      return std::move(e).with_context("header " + std::to_string(i + 1));
    }
    return HeaderChoice{i};
  };
  if (!valid[0] && !valid[1]) {
    auto described = [](const Result<Header>& header, const char* name) {
      return header ? std::string(name) + ": valid" : header.error().message_with_context(name);
    };
    return Error(ErrorCode::kCorrupt, "headers: neither header is valid (" +
                                          described(first, "header 1") + "; " +
                                          described(second, "header 2") + ")");
  }
  if (valid[0] != valid[1]) return pick(valid[0] ? 0 : 1);
  if (seq[0] != seq[1]) return pick(seq[0] > seq[1] ? 0 : 1);
  // Equal sequence numbers: only acceptable when both slots hold the same header.
  bool identical;
  if (raw[0].size() >= kHeaderSize && raw[1].size() >= kHeaderSize) {
    identical = std::equal(raw[0].begin(), raw[0].begin() + kHeaderSize, raw[1].begin());
  } else if (first && second) {
    const Header& a = *first;
    const Header& b = *second;
    identical = a.checksum == b.checksum && a.file_write_guid == b.file_write_guid &&
                a.data_write_guid == b.data_write_guid && a.log_guid == b.log_guid &&
                a.log_version == b.log_version && a.version == b.version &&
                a.log_length == b.log_length && a.log_offset == b.log_offset;
  } else {
    identical = false;
  }
  if (!identical)
    return Error(ErrorCode::kCorrupt, "headers: both headers have sequence number " +
                                          std::to_string(seq[0]) + " but differ");
  return pick(0);
}

}  // namespace vhdx::format
