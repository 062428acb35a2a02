#include "log/log_writer.h"

#include <algorithm>
#include <string>

#include "base/checked_math.h"

namespace vhdx::log {
namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;

std::string num(std::uint64_t v) { return std::to_string(v); }

}  // namespace

Result<std::unique_ptr<LogWriter>> LogWriter::create(File& file, std::uint64_t log_offset,
                                                     std::uint32_t log_length, const Guid& log_guid,
                                                     std::uint64_t first_sequence,
                                                     std::uint32_t start_offset,
                                                     std::uint64_t flushed_file_size) {
  const std::string what =
      "log writer (log offset " + num(log_offset) + ", length " + num(log_length) + ")";
  if (log_offset < kMiB || !is_aligned(log_offset, kMiB) || log_length == 0 ||
      !is_aligned(log_length, kMiB) || !checked_add(log_offset, log_length))
    return Error(ErrorCode::kInvalidArgument,
                 what + ": the log must be a non-empty 1 MiB-aligned region past 1 MiB");
  if (log_guid.is_zero())
    return Error(ErrorCode::kInvalidArgument, what + ": the log GUID must not be zero");
  if (first_sequence == 0)
    return Error(ErrorCode::kInvalidArgument, what + ": sequence numbers start above 0");
  if (start_offset >= log_length || !is_aligned(start_offset, kSectorSize))
    return Error(ErrorCode::kInvalidArgument,
                 what + ": start offset " + num(start_offset) + " is not a sector of the ring");
  return std::unique_ptr<LogWriter>(new LogWriter(file, log_offset, log_length, log_guid,
                                                  first_sequence, start_offset, flushed_file_size));
}

std::uint64_t LogWriter::entry_bytes(std::span<const format::LogUpdate> updates) {
  std::uint64_t data = 0;
  for (const auto& u : updates)
    if (u.kind == format::LogUpdate::Kind::kData) ++data;
  return (format::log_descriptor_sectors(updates.size()) + data) * kSectorSize;
}

Error LogWriter::fail(Error error) {
  failed_ = true;
  return std::move(error).with_context("log writer");
}

Result<std::uint64_t> LogWriter::append(std::span<const format::LogUpdate> updates) {
  if (failed_) return Error(ErrorCode::kFailed, "log writer: an earlier log write failed");
  const std::uint64_t bytes = entry_bytes(updates);
  if (bytes > max_entry_bytes())
    return Error(ErrorCode::kInvalidArgument,
                 "log writer: an entry of " + num(bytes) + " bytes does not fit a log of " +
                     num(log_length_) + " bytes (at most " + num(max_entry_bytes()) + ")");
  // One sector always stays free, so reclaim() can write its empty entry.
  if (bytes + kSectorSize > log_length_ - used_) VHDX_TRY(reclaim());
  if (bytes + kSectorSize > log_length_ - used_)
    return fail(Error(ErrorCode::kInternal, "log writer: no room after reclaiming the log"));
  return write_entry(updates);
}

Result<void> LogWriter::reclaim() {
  // Retire everything applied; the durable head still names the old tail, so its space is not
  // free until an entry with a later Tail is durable: write an empty one and flush it.
  VHDX_TRY(flush());
  if (!entries_.empty())
    return fail(Error(ErrorCode::kInternal,
                      "log writer: the log is full of entries not yet written in place (oldest "
                      "sequence " +
                          num(entries_.front().sequence) + ")"));
  VHDX_TRY(write_entry({}));
  return flush();
}

Result<std::uint64_t> LogWriter::write_entry(std::span<const format::LogUpdate> updates) {
  auto size = file_.size();
  if (!size) return fail(std::move(size).error());
  format::LogEntryHeader header;
  header.sequence_number = next_sequence_;
  header.tail = entries_.empty() ? write_pos_ : entries_.front().offset;
  header.log_guid = log_guid_;
  header.flushed_file_offset = flushed_file_size_ / kMiB * kMiB;
  auto last = align_up(std::max(*size, flushed_file_size_), kMiB);
  if (!last) return fail(Error(ErrorCode::kInternal, "file size overflows"));
  header.last_file_offset = *last;
  const std::vector<std::uint8_t> entry = format::encode_log_entry(header, updates);
  if (entry.size() != entry_bytes(updates))
    return fail(Error(ErrorCode::kInternal, "log writer: encoded entry has an unexpected size"));
  VHDX_TRY(write_ring(write_pos_, entry));

  const bool empty = updates.empty();
  entries_.push_back({write_pos_, static_cast<std::uint32_t>(entry.size()), next_sequence_, empty});
  last_tail_ = header.tail;
  appended_since_flush_ = true;
  used_ += entry.size();
  write_pos_ = static_cast<std::uint32_t>((write_pos_ + entry.size()) % log_length_);
  if (next_sequence_ == UINT64_MAX)
    return fail(Error(ErrorCode::kUnsupported, "log writer: sequence numbers exhausted"));
  return next_sequence_++;
}

Result<void> LogWriter::write_ring(std::uint32_t at, std::span<const std::uint8_t> bytes) {
  // An entry may wrap past the end of the ring (§9); readers unroll it in ring order.
  const std::uint64_t first = std::min<std::uint64_t>(bytes.size(), log_length_ - at);
  if (auto r = file_.write_at(log_offset_ + at, bytes.first(first)); !r)
    return fail(std::move(r).error());
  if (first < bytes.size()) {
    if (auto r = file_.write_at(log_offset_, bytes.subspan(first)); !r)
      return fail(std::move(r).error());
  }
  return ok();
}

Result<void> LogWriter::flush() {
  if (failed_) return Error(ErrorCode::kFailed, "log writer: an earlier log write failed");
  auto size = file_.size();
  if (!size) return fail(std::move(size).error());
  if (auto r = file_.flush(); !r) return fail(std::move(r).error());
  flushed_file_size_ = *size;
  if (appended_since_flush_) {
    // The newest entry is now the durable head: its sequence starts at its Tail.
    used_start_ = last_tail_;
    used_ = (write_pos_ + std::uint64_t{log_length_} - used_start_) % log_length_;
    appended_since_flush_ = false;
  }
  while (!entries_.empty() && entries_.front().applied) entries_.pop_front();
  return ok();
}

void LogWriter::mark_applied(std::uint64_t sequence) {
  for (auto& e : entries_)
    if (e.sequence <= sequence) e.applied = true;
}

}  // namespace vhdx::log
