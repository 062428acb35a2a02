// Little-endian loads and stores on byte spans. Every on-disk integer goes through these; no
// struct is ever cast from raw bytes. Callers guarantee the span is long enough (the codecs work
// on fixed-size spans checked once at their entry).
#pragma once

#include <cstdint>
#include <span>

namespace vhdx {

inline std::uint16_t load_le16(std::span<const std::uint8_t> b, std::size_t at) {
  return static_cast<std::uint16_t>(b[at] | (b[at + 1] << 8));
}
inline std::uint32_t load_le32(std::span<const std::uint8_t> b, std::size_t at) {
  return static_cast<std::uint32_t>(b[at]) | (static_cast<std::uint32_t>(b[at + 1]) << 8) |
         (static_cast<std::uint32_t>(b[at + 2]) << 16) |
         (static_cast<std::uint32_t>(b[at + 3]) << 24);
}
inline std::uint64_t load_le64(std::span<const std::uint8_t> b, std::size_t at) {
  return static_cast<std::uint64_t>(load_le32(b, at)) |
         (static_cast<std::uint64_t>(load_le32(b, at + 4)) << 32);
}
inline void store_le16(std::span<std::uint8_t> b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v);
  b[at + 1] = static_cast<std::uint8_t>(v >> 8);
}
inline void store_le32(std::span<std::uint8_t> b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}
inline void store_le64(std::span<std::uint8_t> b, std::size_t at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}

}  // namespace vhdx
