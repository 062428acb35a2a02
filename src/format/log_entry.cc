#include "format/log_entry.h"

#include <algorithm>
#include <cassert>
#include <cstring>
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

constexpr std::string_view kWhat = "log entry";

// Entry header fields (§9).
constexpr std::size_t kChecksumAt = 4;
constexpr std::size_t kEntryLengthAt = 8;
constexpr std::size_t kTailAt = 12;
constexpr std::size_t kSequenceAt = 16;
constexpr std::size_t kDescriptorCountAt = 24;
constexpr std::size_t kLogGuidAt = 32;
constexpr std::size_t kFlushedFileOffsetAt = 48;
constexpr std::size_t kLastFileOffsetAt = 56;

// Descriptor fields; both kinds share the file offset and sequence number positions.
constexpr std::size_t kDescTrailingBytesAt = 4;
constexpr std::size_t kDescLeadingBytesAt = 8;
constexpr std::size_t kDescZeroLengthAt = 8;
constexpr std::size_t kDescFileOffsetAt = 16;
constexpr std::size_t kDescSequenceAt = 24;

// Data sector fields.
constexpr std::size_t kSectorSequenceHighAt = 4;
constexpr std::size_t kSectorDataAt = 8;
constexpr std::size_t kSectorDataSize = 4084;
constexpr std::size_t kSectorSequenceLowAt = 4092;

// Descriptor i sits right after the 64-byte header, counting on across descriptor sectors
// (the header takes the first two 32-byte slots of sector 0).
constexpr std::size_t descriptor_at(std::size_t i) {
  return kLogEntryHeaderSize + i * kLogDescriptorSize;
}

}  // namespace

std::uint64_t log_descriptor_sectors(std::uint64_t descriptor_count) {
  return ceil_div(descriptor_count + 2, kLogSectorSize / kLogDescriptorSize);
}

Result<LogEntryHeader> decode_log_entry_header(std::span<const std::uint8_t> bytes) {
  VHDX_TRY(detail::require_size(kWhat, bytes, kLogEntryHeaderSize));
  if (!detail::has_signature(bytes, kLogEntrySignature))
    return corrupt(kWhat, "signature is " + detail::quoted(bytes.first(4)) + ", not 'loge'");
  LogEntryHeader h;
  h.checksum = load_le32(bytes, kChecksumAt);
  h.entry_length = load_le32(bytes, kEntryLengthAt);
  h.tail = load_le32(bytes, kTailAt);
  h.sequence_number = load_le64(bytes, kSequenceAt);
  h.descriptor_count = load_le32(bytes, kDescriptorCountAt);
  h.log_guid = detail::load_guid(bytes, kLogGuidAt);
  h.flushed_file_offset = load_le64(bytes, kFlushedFileOffsetAt);
  h.last_file_offset = load_le64(bytes, kLastFileOffsetAt);
  return h;
}

Result<LogEntry> decode_log_entry(std::span<const std::uint8_t> bytes,
                                  const Guid& expected_log_guid, std::uint64_t log_length) {
  VHDX_ASSIGN_OR_RETURN(LogEntryHeader h, decode_log_entry_header(bytes));
  if (h.entry_length == 0 || !is_aligned(h.entry_length, kLogSectorSize))
    return corrupt(kWhat,
                   "entry length " + hex(h.entry_length) + " is not a non-zero multiple of 4 KiB");
  if (h.entry_length != bytes.size())
    return corrupt(kWhat, "entry length " + hex(h.entry_length) + " does not match the " +
                              hex(bytes.size()) + " bytes given");
  if (h.entry_length > log_length)
    return corrupt(kWhat, "entry length " + hex(h.entry_length) + " exceeds the log length " +
                              hex(log_length));
  std::uint32_t computed = crc32c_with_zeroed_field(bytes, kChecksumAt);
  if (h.checksum != computed)
    return corrupt(kWhat, "checksum mismatch (stored " + hex(h.checksum) + ", computed " +
                              hex(computed) + ")");
  if (h.sequence_number == 0) return corrupt(kWhat, "sequence number is 0");
  if (h.log_guid != expected_log_guid)
    return corrupt(kWhat, "log GUID " + h.log_guid.to_string() + " does not match the header's " +
                              expected_log_guid.to_string());
  if (!is_aligned(h.tail, kLogSectorSize) || h.tail >= log_length)
    return corrupt(kWhat, "tail " + hex(h.tail) +
                              " is not a 4 KiB multiple inside the log (length " + hex(log_length) +
                              ")");
  if (!is_aligned(h.flushed_file_offset, kObjectAlignment))
    return corrupt(
        kWhat, "flushed file offset " + hex(h.flushed_file_offset) + " is not a multiple of 1 MiB");
  if (!is_aligned(h.last_file_offset, kObjectAlignment))
    return corrupt(kWhat,
                   "last file offset " + hex(h.last_file_offset) + " is not a multiple of 1 MiB");
  const std::uint64_t total_sectors = h.entry_length / kLogSectorSize;
  const std::uint64_t descriptor_sectors = log_descriptor_sectors(h.descriptor_count);
  if (descriptor_sectors > total_sectors)
    return corrupt(kWhat, "descriptor count " + std::to_string(h.descriptor_count) + " needs " +
                              std::to_string(descriptor_sectors) +
                              " descriptor sectors but the entry has " +
                              std::to_string(total_sectors) + " sectors");

  LogEntry entry;
  entry.header = h;
  // Bounded by the entry's size, checked just above.
  entry.updates.reserve(h.descriptor_count);
  std::uint64_t next_data_sector = descriptor_sectors;
  for (std::size_t i = 0; i < h.descriptor_count; ++i) {
    auto desc = bytes.subspan(descriptor_at(i), kLogDescriptorSize);
    const std::string label = "descriptor " + std::to_string(i);
    const bool is_data = detail::has_signature(desc, kDataDescriptorSignature);
    if (!is_data && !detail::has_signature(desc, kZeroDescriptorSignature))
      return corrupt(kWhat, label + ": signature is " + detail::quoted(desc.first(4)) +
                                ", not 'desc' or 'zero'");
    LogUpdate update;
    update.file_offset = load_le64(desc, kDescFileOffsetAt);
    if (!is_aligned(update.file_offset, kLogSectorSize))
      return corrupt(kWhat, label + ": file offset " + hex(update.file_offset) +
                                " is not a multiple of 4 KiB");
    std::uint64_t seq = load_le64(desc, kDescSequenceAt);
    if (seq != h.sequence_number)
      return corrupt(kWhat, label + ": sequence number " + hex(seq) +
                                " does not match the entry's " + hex(h.sequence_number));
    if (!is_data) {
      update.kind = LogUpdate::Kind::kZero;
      update.zero_length = load_le64(desc, kDescZeroLengthAt);
      if (!is_aligned(update.zero_length, kLogSectorSize))
        return corrupt(kWhat, label + ": zero length " + hex(update.zero_length) +
                                  " is not a multiple of 4 KiB");
      if (!checked_add(update.file_offset, update.zero_length))
        return corrupt(kWhat, label + ": file offset " + hex(update.file_offset) +
                                  " + zero length " + hex(update.zero_length) + " overflows");
      entry.updates.push_back(update);
      continue;
    }
    update.kind = LogUpdate::Kind::kData;
    if (next_data_sector >= total_sectors)
      return corrupt(kWhat, label + ": no data sector left (entry has " +
                                std::to_string(total_sectors) + " sectors)");
    auto sector = bytes.subspan(next_data_sector * kLogSectorSize, kLogSectorSize);
    const std::string sector_label = label + ": data sector " + std::to_string(next_data_sector);
    ++next_data_sector;
    if (!detail::has_signature(sector, kDataSectorSignature))
      return corrupt(kWhat, sector_label + ": signature is " + detail::quoted(sector.first(4)) +
                                ", not 'data'");
    std::uint32_t high = load_le32(sector, kSectorSequenceHighAt);
    std::uint32_t low = load_le32(sector, kSectorSequenceLowAt);
    if (high != static_cast<std::uint32_t>(h.sequence_number >> 32) ||
        low != static_cast<std::uint32_t>(h.sequence_number))
      return corrupt(kWhat, sector_label + ": sequence halves " + hex(high) + "/" + hex(low) +
                                " do not match the entry's " + hex(h.sequence_number));
    // Target sector = leading 8 bytes (descriptor) + 4084 data bytes + trailing 4 (descriptor).
    std::copy_n(desc.begin() + kDescLeadingBytesAt, 8, update.data.begin());
    // memcpy, not std::copy: under sanitizers memmove copies a byte at a time.
    std::memcpy(update.data.data() + 8, sector.data() + kSectorDataAt, kSectorDataSize);
    std::copy_n(desc.begin() + kDescTrailingBytesAt, 4, update.data.begin() + 4092);
    entry.updates.push_back(update);
  }
  if (next_data_sector != total_sectors)
    return corrupt(kWhat, "entry length " + hex(h.entry_length) + " does not match " +
                              std::to_string(descriptor_sectors) + " descriptor sectors + " +
                              std::to_string(next_data_sector - descriptor_sectors) +
                              " data sectors");
  return entry;
}

std::vector<std::uint8_t> encode_log_entry(const LogEntryHeader& header,
                                           std::span<const LogUpdate> updates) {
  const std::uint64_t data_sectors =
      std::count_if(updates.begin(), updates.end(),
                    [](const LogUpdate& u) { return u.kind == LogUpdate::Kind::kData; });
  const std::uint64_t descriptor_sectors = log_descriptor_sectors(updates.size());
  const std::uint64_t length = (descriptor_sectors + data_sectors) * kLogSectorSize;
  assert(length <= 0xFFFFFFFFu);
  std::vector<std::uint8_t> out(length, 0);
  std::span<std::uint8_t> bytes(out);
  detail::put_signature(bytes, kLogEntrySignature);
  store_le32(bytes, kEntryLengthAt, static_cast<std::uint32_t>(length));
  store_le32(bytes, kTailAt, header.tail);
  store_le64(bytes, kSequenceAt, header.sequence_number);
  store_le32(bytes, kDescriptorCountAt, static_cast<std::uint32_t>(updates.size()));
  detail::store_guid(bytes, kLogGuidAt, header.log_guid);
  store_le64(bytes, kFlushedFileOffsetAt, header.flushed_file_offset);
  store_le64(bytes, kLastFileOffsetAt, header.last_file_offset);
  std::uint64_t next_data_sector = descriptor_sectors;
  for (std::size_t i = 0; i < updates.size(); ++i) {
    const LogUpdate& u = updates[i];
    auto desc = bytes.subspan(descriptor_at(i), kLogDescriptorSize);
    store_le64(desc, kDescFileOffsetAt, u.file_offset);
    store_le64(desc, kDescSequenceAt, header.sequence_number);
    if (u.kind == LogUpdate::Kind::kZero) {
      detail::put_signature(desc, kZeroDescriptorSignature);
      store_le64(desc, kDescZeroLengthAt, u.zero_length);
      continue;
    }
    detail::put_signature(desc, kDataDescriptorSignature);
    std::copy_n(u.data.begin() + 4092, 4, desc.begin() + kDescTrailingBytesAt);
    std::copy_n(u.data.begin(), 8, desc.begin() + kDescLeadingBytesAt);
    auto sector = bytes.subspan(next_data_sector * kLogSectorSize, kLogSectorSize);
    ++next_data_sector;
    detail::put_signature(sector, kDataSectorSignature);
    store_le32(sector, kSectorSequenceHighAt,
               static_cast<std::uint32_t>(header.sequence_number >> 32));
    std::memcpy(sector.data() + kSectorDataAt, u.data.data() + 8, kSectorDataSize);
    store_le32(sector, kSectorSequenceLowAt, static_cast<std::uint32_t>(header.sequence_number));
  }
  store_le32(bytes, kChecksumAt, crc32c_with_zeroed_field(bytes, kChecksumAt));
  return out;
}

}  // namespace vhdx::format
