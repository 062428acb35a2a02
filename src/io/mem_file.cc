#include "io/mem_file.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "base/checked_math.h"

namespace vhdx {

Result<void> MemFile::read_at(std::uint64_t offset, std::span<std::uint8_t> out) {
  auto end = checked_add(offset, out.size());
  if (!end || *end > bytes_.size())
    return Error(ErrorCode::kIo,
                 "unexpected end of file at offset " + std::to_string(offset) + " of <memory>");
  // memcpy rather than std::copy (memmove): sanitizer runtimes copy memmove's bytes one at a
  // time, and tests and fuzzers run this under ASan.
  if (!out.empty()) std::memcpy(out.data(), bytes_.data() + offset, out.size());
  return ok();
}

Result<void> MemFile::write_at(std::uint64_t offset, std::span<const std::uint8_t> data) {
  if (!writable_) return Error(ErrorCode::kReadOnly, "<memory> is read-only");
  auto end = checked_add(offset, data.size());
  if (!end || *end > kMaxSize) return Error(ErrorCode::kNoSpace, "<memory> file limit reached");
  if (*end > bytes_.size()) bytes_.resize(*end);
  if (!data.empty()) std::memcpy(bytes_.data() + offset, data.data(), data.size());
  return ok();
}

Result<void> MemFile::truncate(std::uint64_t new_size) {
  if (!writable_) return Error(ErrorCode::kReadOnly, "<memory> is read-only");
  if (new_size > kMaxSize) return Error(ErrorCode::kNoSpace, "<memory> file limit reached");
  bytes_.resize(new_size);
  return ok();
}

Result<void> MemFile::punch_hole(std::uint64_t offset, std::uint64_t length) {
  if (!writable_) return Error(ErrorCode::kReadOnly, "<memory> is read-only");
  if (offset >= bytes_.size()) return ok();
  std::uint64_t end = length > bytes_.size() - offset ? bytes_.size() : offset + length;
  std::fill(bytes_.begin() + static_cast<std::ptrdiff_t>(offset),
            bytes_.begin() + static_cast<std::ptrdiff_t>(end), 0);
  return ok();
}

}  // namespace vhdx
