#include "vhdx/guid.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <random>

namespace vhdx {
namespace {

// Text position of each on-disk byte: Data1..Data3 are little-endian, so their bytes print
// in reverse order.
constexpr int kTextOrder[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Guid Guid::from_bytes(std::span<const std::uint8_t, 16> disk_bytes) {
  Guid g;
  std::copy(disk_bytes.begin(), disk_bytes.end(), g.bytes_.begin());
  return g;
}

std::optional<Guid> Guid::parse(std::string_view text) {
  if (text.size() == 38 && text.front() == '{' && text.back() == '}') text = text.substr(1, 36);
  if (text.size() != 36) return std::nullopt;
  std::uint8_t in_text_order[16];
  std::size_t pos = 0;
  for (int i = 0; i < 16; ++i) {
    if (pos == 8 || pos == 13 || pos == 18 || pos == 23) {
      if (text[pos] != '-') return std::nullopt;
      ++pos;
    }
    int hi = hex_value(text[pos]), lo = hex_value(text[pos + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    in_text_order[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    pos += 2;
  }
  Guid g;
  for (int i = 0; i < 16; ++i) g.bytes_[kTextOrder[i]] = in_text_order[i];
  return g;
}

Guid Guid::random() {
  Guid g;
  // getrandom(2) draws from the kernel's pool in one system call; std::random_device opens
  // and closes /dev/urandom on every construction (a GUID is made on every open for writing).
  std::size_t filled = 0;
  while (filled < g.bytes_.size()) {
    const ssize_t n = getrandom(g.bytes_.data() + filled, g.bytes_.size() - filled, 0);
    if (n > 0) {
      filled += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      break;  // no getrandom (a very old kernel or a sandbox): fall back below
    }
  }
  if (filled < g.bytes_.size()) {
    std::random_device entropy;
    for (std::size_t i = 0; i < g.bytes_.size(); ++i)
      g.bytes_[i] = static_cast<std::uint8_t>(entropy());
  }
  g.bytes_[7] = static_cast<std::uint8_t>((g.bytes_[7] & 0x0F) | 0x40);  // version 4
  g.bytes_[8] = static_cast<std::uint8_t>((g.bytes_[8] & 0x3F) | 0x80);  // RFC 4122 variant
  return g;
}

std::string Guid::to_string() const {
  char text[37];
  char* out = text;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *out++ = '-';
    std::snprintf(out, 3, "%02x", bytes_[kTextOrder[i]]);
    out += 2;
  }
  return std::string(text, 36);
}

void Guid::store(std::span<std::uint8_t, 16> disk_bytes) const {
  std::copy(bytes_.begin(), bytes_.end(), disk_bytes.begin());
}

bool Guid::is_zero() const {
  return std::all_of(bytes_.begin(), bytes_.end(), [](std::uint8_t b) { return b == 0; });
}

}  // namespace vhdx
