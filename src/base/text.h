// Number formatting for messages: offsets and fields print in hex, as the format's own
// documents give them.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace vhdx {

// "0x1f400": lowercase, no padding.
inline std::string hex(std::uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace vhdx
