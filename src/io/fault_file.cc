#include "io/fault_file.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/checked_math.h"

namespace vhdx {
namespace {

const char* call_name(FaultFile::Call call) {
  switch (call) {
    case FaultFile::Call::kWrite:
      return "write_at";
    case FaultFile::Call::kTruncate:
      return "truncate";
    case FaultFile::Call::kPunchHole:
      return "punch_hole";
    case FaultFile::Call::kFlush:
      return "flush";
    case FaultFile::Call::kAny:
      break;
  }
  return "call";
}

void write_bytes(std::vector<std::uint8_t>& bytes, std::uint64_t offset,
                 std::span<const std::uint8_t> data) {
  if (offset + data.size() > bytes.size()) bytes.resize(offset + data.size());
  // memcpy, not std::copy: see MemFile::read_at.
  if (!data.empty()) std::memcpy(bytes.data() + offset, data.data(), data.size());
}

void zero_bytes(std::vector<std::uint8_t>& bytes, std::uint64_t offset, std::uint64_t length) {
  if (offset >= bytes.size()) return;
  const std::uint64_t end = std::min<std::uint64_t>(bytes.size(), offset + length);
  std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(offset),
            bytes.begin() + static_cast<std::ptrdiff_t>(end), 0);
}

// Calls fn(piece_offset, piece_length) for the kTearUnit-aligned pieces of [offset, end).
template <typename Fn>
void for_each_piece(std::uint64_t offset, std::uint64_t end, Fn fn) {
  for (std::uint64_t at = offset; at < end;) {
    const std::uint64_t next = std::min(end, (at / kTearUnit + 1) * kTearUnit);
    fn(at, next - at);
    at = next;
  }
}

}  // namespace

void apply_fault_op(const FaultOp& op, std::vector<std::uint8_t>& bytes) {
  switch (op.kind) {
    case FaultOp::Kind::kWrite:
      write_bytes(bytes, op.offset, op.data);
      break;
    case FaultOp::Kind::kTruncate:
      bytes.resize(op.offset);
      break;
    case FaultOp::Kind::kPunchHole:
      zero_bytes(bytes, op.offset, op.length);
      break;
    case FaultOp::Kind::kFlush:
      break;
  }
}

namespace {

// Applies `op` as a crash may leave it through `sink`, which has apply(op), write(at, bytes)
// and zero(at, n).
template <typename Sink>
void crash_op(const FaultOp& op, CrashPolicy policy, std::mt19937_64& rng, Sink& sink) {
  if (op.kind == FaultOp::Kind::kFlush) return;
  enum { kApply, kDrop, kTear } fate = kApply;
  switch (policy) {
    case CrashPolicy::kApplyAll:
      fate = kApply;
      break;
    case CrashPolicy::kDropAll:
      fate = kDrop;
      break;
    case CrashPolicy::kRandom:
      fate = static_cast<decltype(fate)>(rng() % 3);
      break;
    case CrashPolicy::kTorn:
      fate = kTear;
      break;
  }
  // A size change is atomic: it happens or not.
  if (fate == kTear && op.kind == FaultOp::Kind::kTruncate) fate = rng() % 2 ? kApply : kDrop;
  if (fate == kDrop) return;
  if (fate == kApply) {
    sink.apply(op);
    return;
  }
  for_each_piece(op.offset, op.offset + op.length, [&](std::uint64_t at, std::uint64_t n) {
    if (rng() % 2 == 0) return;
    if (op.kind == FaultOp::Kind::kWrite)
      sink.write(at, std::span(op.data).subspan(at - op.offset, n));
    else
      sink.zero(at, n);
  });
}

struct BytesSink {
  std::vector<std::uint8_t>& bytes;
  void apply(const FaultOp& op) { apply_fault_op(op, bytes); }
  void write(std::uint64_t at, std::span<const std::uint8_t> data) { write_bytes(bytes, at, data); }
  void zero(std::uint64_t at, std::uint64_t n) { zero_bytes(bytes, at, n); }
};

// Overlay operations cannot fail short of the 4 GiB limit the trace never passes.
struct OverlaySink {
  CopyOnWriteFile& file;
  void apply(const FaultOp& op) {
    switch (op.kind) {
      case FaultOp::Kind::kWrite:
        (void)file.write_at(op.offset, op.data);
        break;
      case FaultOp::Kind::kTruncate:
        (void)file.truncate(op.offset);
        break;
      case FaultOp::Kind::kPunchHole:
        (void)file.punch_hole(op.offset, op.length);
        break;
      case FaultOp::Kind::kFlush:
        break;
    }
  }
  void write(std::uint64_t at, std::span<const std::uint8_t> data) {
    (void)file.write_at(at, data);
  }
  void zero(std::uint64_t at, std::uint64_t n) { (void)file.punch_hole(at, n); }
};

}  // namespace

void apply_fault_op_crashed(const FaultOp& op, CrashPolicy policy, std::mt19937_64& rng,
                            std::vector<std::uint8_t>& bytes) {
  BytesSink sink{bytes};
  crash_op(op, policy, rng, sink);
}

FaultFile::FaultFile(std::vector<std::uint8_t> bytes) : volatile_(std::move(bytes)) {
  durable_ = volatile_;
}

void FaultFile::inject_error(Call call, std::uint64_t nth, ErrorMode mode) {
  rule_armed_ = true;
  rule_call_ = call;
  rule_nth_ = nth;
  rule_mode_ = mode;
}

void FaultFile::clear_faults() {
  rule_armed_ = false;
  size_limit_ = UINT64_MAX;
}

Result<void> FaultFile::count_and_check(Call call, const std::string& what) {
  const std::uint64_t own = ++calls_[static_cast<int>(call)];
  const std::uint64_t any = ++calls_[static_cast<int>(Call::kAny)];
  if (!rule_armed_ || (rule_call_ != call && rule_call_ != Call::kAny)) return ok();
  const std::uint64_t n = rule_call_ == Call::kAny ? any : own;
  const bool hit = rule_mode_ == ErrorMode::kPersistent ? n >= rule_nth_ : n == rule_nth_;
  if (!hit) return ok();
  ++injected_;
  if (rule_mode_ == ErrorMode::kNoSpace)
    return Error(ErrorCode::kNoSpace,
                 std::string("injected ENOSPC on ") + call_name(call) + " #" + std::to_string(own) +
                     " (" + what + ") of <fault>",
                 ENOSPC);
  return Error(ErrorCode::kIo,
               std::string("injected ") +
                   (rule_mode_ == ErrorMode::kTransient ? "transient" : "persistent") + " EIO on " +
                   call_name(call) + " #" + std::to_string(own) + " (" + what + ") of <fault>",
               EIO);
}

Result<void> FaultFile::check_space(std::uint64_t new_end, const std::string& what) {
  if (new_end <= size_limit_ || new_end <= volatile_.size()) return ok();
  ++injected_;
  return Error(ErrorCode::kNoSpace,
               "injected ENOSPC: " + what + " would grow <fault> to " + std::to_string(new_end) +
                   " bytes, past its limit of " + std::to_string(size_limit_),
               ENOSPC);
}

void FaultFile::record(FaultOp op) {
  if (op.kind != FaultOp::Kind::kFlush) ++mutations_;
  if (recording_) trace_.push_back(op);
  if (op.kind != FaultOp::Kind::kFlush) pending_.push_back(std::move(op));
}

Result<void> FaultFile::read_at(std::uint64_t offset, std::span<std::uint8_t> out) {
  auto end = checked_add(offset, out.size());
  if (!end || *end > volatile_.size())
    return Error(ErrorCode::kIo,
                 "unexpected end of file at offset " + std::to_string(offset) + " of <fault>");
  if (!out.empty()) std::memcpy(out.data(), volatile_.data() + offset, out.size());
  return ok();
}

Result<void> FaultFile::write_at(std::uint64_t offset, std::span<const std::uint8_t> data) {
  const std::string what =
      std::to_string(data.size()) + " bytes at offset " + std::to_string(offset);
  VHDX_TRY(count_and_check(Call::kWrite, what));
  auto end = checked_add(offset, data.size());
  if (!end) return Error(ErrorCode::kInvalidArgument, "write past 2^64 on <fault>");
  VHDX_TRY(check_space(*end, "write_at of " + what));
  if (*end > kMaxSize) return Error(ErrorCode::kNoSpace, "<fault> file limit reached", ENOSPC);
  write_bytes(volatile_, offset, data);
  // The cache writes back whole pieces: a write is recorded as the pieces it touches, as they
  // read after it (earlier pending bytes of those pieces included).
  const std::uint64_t first = offset / kTearUnit * kTearUnit;
  const std::uint64_t last =
      std::min<std::uint64_t>(volatile_.size(), (*end + kTearUnit - 1) / kTearUnit * kTearUnit);
  record({FaultOp::Kind::kWrite,
          first,
          last - first,
          {volatile_.begin() + static_cast<std::ptrdiff_t>(first),
           volatile_.begin() + static_cast<std::ptrdiff_t>(last)}});
  return ok();
}

Result<void> FaultFile::truncate(std::uint64_t new_size) {
  const std::string what = "to " + std::to_string(new_size) + " bytes";
  VHDX_TRY(count_and_check(Call::kTruncate, what));
  VHDX_TRY(check_space(new_size, "truncate " + what));
  if (new_size > kMaxSize) return Error(ErrorCode::kNoSpace, "<fault> file limit reached", ENOSPC);
  volatile_.resize(new_size);
  record({FaultOp::Kind::kTruncate, new_size, 0, {}});
  return ok();
}

Result<void> FaultFile::punch_hole(std::uint64_t offset, std::uint64_t length) {
  VHDX_TRY(count_and_check(Call::kPunchHole,
                           std::to_string(length) + " bytes at offset " + std::to_string(offset)));
  zero_bytes(volatile_, offset, length);
  record({FaultOp::Kind::kPunchHole, offset, length, {}});
  return ok();
}

Result<void> FaultFile::flush() {
  VHDX_TRY(count_and_check(Call::kFlush, "pending operations: " + std::to_string(pending_.size())));
  for (const FaultOp& op : pending_) apply_fault_op(op, durable_);
  pending_.clear();
  record({FaultOp::Kind::kFlush, 0, 0, {}});
  return ok();
}

std::vector<std::uint8_t> FaultFile::crash_image(CrashPolicy policy, std::uint64_t seed) const {
  std::vector<std::uint8_t> image = durable_;
  std::mt19937_64 rng(seed);
  for (const FaultOp& op : pending_) apply_fault_op_crashed(op, policy, rng, image);
  return image;
}

void CrashImageBuilder::advance(std::size_t position) {
  position = std::min(position, trace_.size());
  for (; position_ < position; ++position_) {
    const FaultOp& op = trace_[position_];
    if (op.kind != FaultOp::Kind::kFlush) {
      pending_.push_back(position_);
      continue;
    }
    for (std::size_t i : pending_) apply_fault_op(trace_[i], durable_);
    pending_.clear();
  }
}

std::vector<std::uint8_t> CrashImageBuilder::build(CrashPolicy policy, std::uint64_t seed) const {
  std::vector<std::uint8_t> image = durable_;
  std::mt19937_64 rng(seed);
  for (std::size_t i : pending_) apply_fault_op_crashed(trace_[i], policy, rng, image);
  return image;
}

std::unique_ptr<CopyOnWriteFile> CrashImageBuilder::build_overlay(CrashPolicy policy,
                                                                  std::uint64_t seed) const {
  auto image = std::make_unique<CopyOnWriteFile>(durable_, true);
  std::mt19937_64 rng(seed);
  OverlaySink sink{*image};
  for (std::size_t i : pending_) crash_op(trace_[i], policy, rng, sink);
  return image;
}

CopyOnWriteFile::CopyOnWriteFile(const std::vector<std::uint8_t>& base, bool writable)
    : base_(&base), writable_(writable), size_(base.size()), base_visible_(base.size()) {}

void CopyOnWriteFile::reset(const std::vector<std::uint8_t>& base, bool writable) {
  for (std::uint64_t index : changed_) slot_of_page_[index] = kBase;
  changed_.clear();
  free_copies_.clear();
  copies_used_ = 0;
  base_ = &base;
  writable_ = writable;
  size_ = base.size();
  base_visible_ = base.size();
}

void CopyOnWriteFile::read_base(std::uint64_t offset, std::span<std::uint8_t> out) const {
  const std::uint64_t from_base =
      offset >= base_visible_ ? 0 : std::min<std::uint64_t>(out.size(), base_visible_ - offset);
  if (from_base > 0)
    std::memcpy(out.data(), base_->data() + offset, static_cast<std::size_t>(from_base));
  if (from_base < out.size())
    std::memset(out.data() + from_base, 0, out.size() - static_cast<std::size_t>(from_base));
}

std::uint8_t* CopyOnWriteFile::copy_data(std::uint32_t slot) const {
  const std::uint32_t n = slot - 1;
  return chunks_[n / kPagesPerChunk].get() + std::size_t{n % kPagesPerChunk} * kPage;
}

std::uint32_t CopyOnWriteFile::new_copy() {
  if (!free_copies_.empty()) {
    const std::uint32_t n = free_copies_.back();
    free_copies_.pop_back();
    return n + 1;
  }
  const std::uint32_t n = copies_used_++;
  if (n / kPagesPerChunk == chunks_.size())
    chunks_.push_back(std::make_unique_for_overwrite<std::uint8_t[]>(kPagesPerChunk * kPage));
  return n + 1;
}

void CopyOnWriteFile::drop_page(std::uint64_t index) {
  const std::uint32_t s = slot_of_page_[index];
  if (is_copy(s)) free_copies_.push_back(s - 1);
  slot_of_page_[index] = kBase;
}

std::uint8_t* CopyOnWriteFile::page(std::uint64_t index, bool whole) {
  if (index >= slot_of_page_.size()) slot_of_page_.resize(index + 1, kBase);
  const std::uint32_t s = slot_of_page_[index];
  if (is_copy(s)) return copy_data(s);
  const std::uint32_t fresh = new_copy();
  std::uint8_t* data = copy_data(fresh);
  if (s == kBase) changed_.push_back(index);
  if (!whole && s == kPunched)
    std::memset(data, 0, kPage);
  else if (!whole)
    read_base(index * kPage, std::span(data, kPage));
  slot_of_page_[index] = fresh;
  return data;
}

void CopyOnWriteFile::read_into(std::uint64_t offset, std::span<std::uint8_t> out) const {
  if (out.empty()) return;
  const std::uint64_t last_index = (offset + out.size() - 1) / kPage;
  std::uint64_t at = offset;
  std::size_t done = 0;
  while (done < out.size()) {
    const std::uint64_t index = at / kPage;
    const std::uint32_t s = slot(index);
    std::size_t n;
    if (s == kBase) {
      // Runs of unchanged pages come from the base in one piece.
      std::uint64_t end_index = index + 1;
      while (end_index <= last_index && end_index < slot_of_page_.size() &&
             slot_of_page_[end_index] == kBase)
        ++end_index;
      if (end_index >= slot_of_page_.size()) end_index = last_index + 1;
      n = static_cast<std::size_t>(
          std::min<std::uint64_t>(end_index * kPage - at, out.size() - done));
      read_base(at, out.subspan(done, n));
    } else {
      const std::uint64_t in_page = at % kPage;
      n = static_cast<std::size_t>(std::min<std::uint64_t>(kPage - in_page, out.size() - done));
      if (s == kPunched)
        std::memset(out.data() + done, 0, n);
      else
        std::memcpy(out.data() + done, copy_data(s) + in_page, n);
    }
    at += n;
    done += n;
  }
}

Result<void> CopyOnWriteFile::read_at(std::uint64_t offset, std::span<std::uint8_t> out) {
  auto end = checked_add(offset, out.size());
  if (!end || *end > size_)
    return Error(ErrorCode::kIo,
                 "unexpected end of file at offset " + std::to_string(offset) + " of <overlay>");
  read_into(offset, out);
  return ok();
}

Result<void> CopyOnWriteFile::write_at(std::uint64_t offset, std::span<const std::uint8_t> data) {
  if (!writable_) return Error(ErrorCode::kReadOnly, "<overlay> is read-only");
  auto end = checked_add(offset, data.size());
  if (!end || *end > FaultFile::kMaxSize)
    return Error(ErrorCode::kNoSpace, "<overlay> file limit reached");
  std::uint64_t at = offset;
  std::size_t done = 0;
  while (done < data.size()) {
    const std::uint64_t in_page = at % kPage;
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(kPage - in_page, data.size() - done));
    std::memcpy(page(at / kPage, n == kPage) + in_page, data.data() + done, n);
    at += n;
    done += n;
  }
  size_ = std::max(size_, *end);
  return ok();
}

Result<void> CopyOnWriteFile::truncate(std::uint64_t new_size) {
  if (!writable_) return Error(ErrorCode::kReadOnly, "<overlay> is read-only");
  if (new_size > FaultFile::kMaxSize)
    return Error(ErrorCode::kNoSpace, "<overlay> file limit reached");
  if (new_size < size_) {
    // Bytes past the new end must read as zeros if the file grows again.
    const std::uint64_t first_gone = (new_size + kPage - 1) / kPage;
    std::erase_if(changed_, [&](std::uint64_t index) {
      if (index < first_gone) return false;
      drop_page(index);
      return true;
    });
    if (new_size % kPage != 0) {
      const std::uint32_t s = slot(new_size / kPage);
      if (is_copy(s)) std::memset(copy_data(s) + new_size % kPage, 0, kPage - new_size % kPage);
    }
    base_visible_ = std::min(base_visible_, new_size);
  }
  size_ = new_size;
  return ok();
}

Result<void> CopyOnWriteFile::punch_hole(std::uint64_t offset, std::uint64_t length) {
  if (!writable_) return Error(ErrorCode::kReadOnly, "<overlay> is read-only");
  if (offset >= size_) return ok();
  const std::uint64_t end = offset + std::min(length, size_ - offset);
  static const std::vector<std::uint8_t> zeros(kPage, 0);
  for (std::uint64_t at = offset; at < end;) {
    const std::uint64_t index = at / kPage;
    const std::uint64_t in_page = at % kPage;
    const std::uint64_t n = std::min(kPage - in_page, end - at);
    if (n == kPage) {  // a whole punched page costs no memory
      if (index >= slot_of_page_.size()) slot_of_page_.resize(index + 1, kBase);
      const std::uint32_t s = slot_of_page_[index];
      if (s == kBase) changed_.push_back(index);
      if (is_copy(s)) free_copies_.push_back(s - 1);
      slot_of_page_[index] = kPunched;
    } else {
      VHDX_TRY(write_at(at, std::span(zeros).first(static_cast<std::size_t>(n))));
    }
    at += n;
  }
  return ok();
}

std::unique_ptr<CopyOnWriteFile> CopyOnWriteFile::clone(bool writable) const {
  auto copy = std::make_unique<CopyOnWriteFile>(*base_, writable);
  copy->assign(*this, writable);
  return copy;
}

void CopyOnWriteFile::assign(const CopyOnWriteFile& other, bool writable) {
  if (&other == this) {
    writable_ = writable;
    return;
  }
  reset(*other.base_, writable);
  size_ = other.size_;
  base_visible_ = other.base_visible_;
  if (slot_of_page_.size() < other.slot_of_page_.size())
    slot_of_page_.resize(other.slot_of_page_.size(), kBase);
  for (std::uint64_t index : other.changed_) {
    const std::uint32_t s = other.slot_of_page_[index];
    if (is_copy(s)) {
      const std::uint32_t fresh = new_copy();
      std::memcpy(copy_data(fresh), other.copy_data(s), kPage);
      slot_of_page_[index] = fresh;
    } else {
      slot_of_page_[index] = s;
    }
    changed_.push_back(index);
  }
}

std::vector<std::uint8_t> CopyOnWriteFile::materialize() const {
  std::vector<std::uint8_t> out(static_cast<std::size_t>(size_));
  read_into(0, out);
  return out;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> CopyOnWriteFile::changed_ranges() const {
  std::vector<std::uint64_t> pages = changed_;
  std::sort(pages.begin(), pages.end());
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  auto add = [&](std::uint64_t begin, std::uint64_t end) {
    end = std::min(end, size_);
    if (begin >= end) return;
    if (!out.empty() && out.back().second >= begin)
      out.back().second = std::max(out.back().second, end);
    else
      out.emplace_back(begin, end);
  };
  const std::uint64_t hidden_from = std::min<std::uint64_t>(base_visible_, size_);
  for (std::uint64_t index : pages) {
    if (index * kPage >= hidden_from) break;  // the tail below covers the rest
    add(index * kPage, index * kPage + kPage);
  }
  add(hidden_from, size_);
  return out;
}

}  // namespace vhdx
