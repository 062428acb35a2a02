// Guid: a 16-byte identifier kept in the Microsoft on-disk byte order (Data1, Data2 and Data3
// little-endian, the last 8 bytes as written). Comparisons are on the raw bytes. Part of the base
// layer; includes nothing from the project.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace vhdx {

class Guid {
 public:
  constexpr Guid() = default;
  // From the 16 bytes as stored on disk.
  static Guid from_bytes(std::span<const std::uint8_t, 16> disk_bytes);
  // From the canonical text form, "2dc27766-f623-4200-9d64-115e9bfd4a08", with or without braces,
  // any letter case. Returns nothing for any other input.
  static std::optional<Guid> parse(std::string_view text);
  // Version-4 random GUID from the operating system's entropy source.
  static Guid random();

  // Lowercase canonical text without braces.
  std::string to_string() const;
  const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }
  void store(std::span<std::uint8_t, 16> disk_bytes) const;
  bool is_zero() const;

  friend bool operator==(const Guid&, const Guid&) = default;
  friend auto operator<=>(const Guid&, const Guid&) = default;

 private:
  std::array<std::uint8_t, 16> bytes_{};
};

}  // namespace vhdx
