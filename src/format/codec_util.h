// Helpers shared by the format codecs (private to src/format): error construction, hex text and
// signature checks.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "base/text.h"
#include "vhdx/error.h"
#include "vhdx/guid.h"

namespace vhdx::format::detail {

using vhdx::hex;

inline std::string dec(std::uint64_t v) { return std::to_string(v); }

inline Error corrupt(std::string_view structure, const std::string& reason) {
  return Error(ErrorCode::kCorrupt, std::string(structure) + ": " + reason);
}
inline Error unsupported(std::string_view structure, const std::string& reason) {
  return Error(ErrorCode::kUnsupported, std::string(structure) + ": " + reason);
}

// kCorrupt "truncated" when `bytes` is shorter than `need`.
inline Result<void> require_size(std::string_view structure, std::span<const std::uint8_t> bytes,
                                 std::size_t need) {
  if (bytes.size() < need)
    return corrupt(structure,
                   "truncated (" + dec(bytes.size()) + " bytes, need " + dec(need) + ")");
  return ok();
}

template <std::size_t N>
bool has_signature(std::span<const std::uint8_t> bytes, const char (&sig)[N], std::size_t at = 0) {
  return std::memcmp(bytes.data() + at, sig, N) == 0;
}

template <std::size_t N>
void put_signature(std::span<std::uint8_t> out, const char (&sig)[N], std::size_t at = 0) {
  std::memcpy(out.data() + at, sig, N);
}

// The bytes as printable text for messages: "'abcd'", non-printables as '.'.
inline std::string quoted(std::span<const std::uint8_t> bytes) {
  std::string s = "'";
  for (std::uint8_t b : bytes) s.push_back(b >= 0x20 && b < 0x7F ? static_cast<char>(b) : '.');
  return s + "'";
}

inline Guid load_guid(std::span<const std::uint8_t> bytes, std::size_t at) {
  return Guid::from_bytes(std::span<const std::uint8_t, 16>(bytes.data() + at, 16));
}
inline void store_guid(std::span<std::uint8_t> out, std::size_t at, const Guid& guid) {
  guid.store(std::span<std::uint8_t, 16>(out.data() + at, 16));
}

}  // namespace vhdx::format::detail
