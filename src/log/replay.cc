#include "log/replay.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/checked_math.h"
#include "base/text.h"
#include "format/constants.h"

namespace vhdx::log {

namespace {

// The file identifier and both headers: never a log target (headers are not logged, §4).
constexpr std::uint64_t kProtectedEnd = format::kRegionTableOffsets[0];
// Zeros are written in pieces of this size.
constexpr std::size_t kZeroPiece = 1024 * 1024;

Error corrupt(const std::string& reason) { return Error(ErrorCode::kCorrupt, "log: " + reason); }

std::string describe(const ReplayUpdate& u) {
  std::string text = "entry seq " + std::to_string(u.sequence_number) + ": ";
  if (u.is_zero())
    return text + "zero range at file offset " + hex(u.file_offset) + " length " +
           hex(u.zero_length);
  return text + "data sector at file offset " + hex(u.file_offset);
}

}  // namespace

Result<ReplayPlan> plan_replay(const LogSequence& sequence, std::uint64_t file_size) {
  if (sequence.entries.empty())
    return Error(ErrorCode::kInvalidArgument, "log: replay of an empty sequence");
  if (sequence.flushed_file_offset() > file_size)
    return corrupt("file is shorter (" + std::to_string(file_size) +
                   ") than the log's flushed file offset (" +
                   std::to_string(sequence.flushed_file_offset()) + ")");
  if (sequence.last_file_offset() > kMaxReplayFileSize)
    return corrupt("entry seq " + std::to_string(sequence.head_sequence()) + ": last file offset " +
                   hex(sequence.last_file_offset()) + " is past 128 TiB, beyond any VHDX file");
  ReplayPlan plan;
  plan.file_size = file_size;
  plan.target_size = std::max(file_size, sequence.last_file_offset());
  for (const ReplayUpdate& u : sequence.updates) {
    const std::uint64_t length = u.length();
    if (length == 0) continue;  // a zero range of no bytes changes nothing
    auto end = checked_add(u.file_offset, length);
    if (!end || *end > kMaxReplayFileSize)
      return corrupt(describe(u) + " ends past 128 TiB, beyond any VHDX file");
    if (u.file_offset < kProtectedEnd)
      return corrupt(describe(u) + " overlaps the file identifier and headers (first 192 KiB)");
    if (ranges_overlap(u.file_offset, length, sequence.log_offset, sequence.log_length))
      return corrupt(describe(u) + " overlaps the log (file offset " + hex(sequence.log_offset) +
                     " length " + hex(sequence.log_length) + ")");
    plan.target_size = std::max(plan.target_size, *end);
  }
  return plan;
}

Result<void> replay_in_place(File& file, const LogSequence& sequence) {
  if (!file.writable())
    return Error(ErrorCode::kReadOnly,
                 "log: cannot replay in place: " + file.name() + " is open read-only");
  VHDX_ASSIGN_OR_RETURN(std::uint64_t file_size, file.size());
  VHDX_ASSIGN_OR_RETURN(ReplayPlan plan, plan_replay(sequence, file_size));
  // Bytes at or past `written_end` were never written: they read as zeros once the file is
  // extended, so zero ranges there need no writes.
  std::uint64_t written_end = file_size;
  std::vector<std::uint8_t> zeros;
  for (const ReplayUpdate& u : sequence.updates) {
    if (!u.is_zero()) {
      if (auto r = file.write_at(u.file_offset, sequence.data(u)); !r)
        return std::move(r).error().with_context("log replay: " + describe(u));
      written_end = std::max(written_end, u.file_offset + 4096);
      continue;
    }
    const std::uint64_t end = std::min(u.file_offset + u.zero_length, written_end);
    for (std::uint64_t pos = u.file_offset; pos < end;) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(kZeroPiece, end - pos));
      if (zeros.size() < n) zeros.resize(n, 0);
      if (auto r = file.write_at(pos, std::span<const std::uint8_t>(zeros).first(n)); !r)
        return std::move(r).error().with_context("log replay: " + describe(u));
      pos += n;
    }
  }
  if (written_end < plan.target_size) {
    if (auto r = file.truncate(plan.target_size); !r)
      return std::move(r).error().with_context("log replay: extending the file to " +
                                               std::to_string(plan.target_size));
  }
  if (auto r = file.flush(); !r) return std::move(r).error().with_context("log replay");
  return ok();
}

Result<ReplayOverlay> ReplayOverlay::build(const LogSequence& sequence, std::uint64_t base_size) {
  VHDX_ASSIGN_OR_RETURN(ReplayPlan plan, plan_replay(sequence, base_size));
  ReplayOverlay overlay;
  overlay.base_size_ = base_size;
  overlay.size_ = plan.target_size;
  for (const ReplayUpdate& u : sequence.updates) {
    if (u.is_zero()) {
      if (u.zero_length != 0) overlay.put_zeros(u.file_offset, u.zero_length);
    } else {
      overlay.put_sector(u.file_offset, sequence.data(u));
    }
  }
  return overlay;
}

void ReplayOverlay::put_sector(std::uint64_t offset, std::span<const std::uint8_t, 4096> data) {
  auto& sector = sectors_[offset];
  // memcpy, not std::copy: under sanitizers memmove copies a byte at a time.
  std::memcpy(sector.data(), data.data(), data.size());
}

void ReplayOverlay::put_zeros(std::uint64_t offset, std::uint64_t length) {
  std::uint64_t start = offset;
  std::uint64_t end = offset + length;  // plan_replay checked it does not overflow
  // Later zeros win over earlier sectors.
  sectors_.erase(sectors_.lower_bound(start), sectors_.lower_bound(end));
  // Merge with every range that overlaps or touches [start, end).
  auto it = zeros_.upper_bound(start);
  if (it != zeros_.begin() && std::prev(it)->second >= start) --it;
  while (it != zeros_.end() && it->first <= end) {
    start = std::min(start, it->first);
    end = std::max(end, it->second);
    it = zeros_.erase(it);
  }
  zeros_.emplace(start, end);
}

Result<void> ReplayOverlay::read_at(File& base, std::uint64_t offset,
                                    std::span<std::uint8_t> out) const {
  auto end = checked_add(offset, out.size());
  if (!end || *end > size_)
    return Error(ErrorCode::kIo, "unexpected end of file at offset " + std::to_string(offset) +
                                     " of " + base.name() + " (log replayed in memory, " +
                                     std::to_string(size_) + " bytes)");
  std::uint64_t pos = offset;
  while (pos < *end) {
    auto dst = out.subspan(static_cast<std::size_t>(pos - offset));
    const std::uint64_t sector_start = pos & ~std::uint64_t{4095};
    auto sector = sectors_.upper_bound(sector_start);  // the first sector after pos's
    if (sector != sectors_.begin() && std::prev(sector)->first == sector_start) {
      const auto& bytes = std::prev(sector)->second;
      const std::uint64_t n = std::min(*end, sector_start + 4096) - pos;
      std::memcpy(dst.data(), bytes.data() + (pos - sector_start), n);
      pos += n;
      continue;
    }
    std::uint64_t limit = *end;
    if (sector != sectors_.end()) limit = std::min(limit, sector->first);
    auto zero = zeros_.upper_bound(pos);  // the first zero range starting after pos
    if (zero != zeros_.begin() && std::prev(zero)->second > pos) {
      const std::uint64_t n = std::min(limit, std::prev(zero)->second) - pos;
      std::fill_n(dst.begin(), n, 0);
      pos += n;
      continue;
    }
    if (zero != zeros_.end()) limit = std::min(limit, zero->first);
    if (pos < base_size_) {
      const std::uint64_t n = std::min(limit, base_size_) - pos;
      VHDX_TRY(base.read_at(pos, dst.first(static_cast<std::size_t>(n))));
      pos += n;
    } else {
      const std::uint64_t n = limit - pos;
      std::fill_n(dst.begin(), n, 0);
      pos += n;
    }
  }
  return ok();
}

Result<std::unique_ptr<OverlayFile>> OverlayFile::create(std::unique_ptr<File> base,
                                                         const LogSequence& sequence) {
  if (base == nullptr) return Error(ErrorCode::kInvalidArgument, "log: overlay without a file");
  VHDX_ASSIGN_OR_RETURN(std::uint64_t base_size, base->size());
  VHDX_ASSIGN_OR_RETURN(ReplayOverlay overlay, ReplayOverlay::build(sequence, base_size));
  return std::unique_ptr<OverlayFile>(new OverlayFile(std::move(base), std::move(overlay)));
}

Result<void> OverlayFile::read_at(std::uint64_t offset, std::span<std::uint8_t> out) {
  return overlay_.read_at(*base_, offset, out);
}

Error OverlayFile::read_only() const {
  return Error(ErrorCode::kReadOnly,
               base_->name() + " is read-only (its log is replayed in memory only)");
}

Result<void> OverlayFile::write_at(std::uint64_t, std::span<const std::uint8_t>) {
  return read_only();
}
Result<void> OverlayFile::truncate(std::uint64_t) { return read_only(); }
Result<void> OverlayFile::punch_hole(std::uint64_t, std::uint64_t) { return read_only(); }

}  // namespace vhdx::log
