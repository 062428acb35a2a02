#include "human.h"

#include <fmt/format.h>

#include <cctype>

namespace vhdx::cli {

std::string human_size(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  // Move up while the value would print as four digits or more.
  while (unit < 6 && value >= 1000.0) {
    value /= 1024.0;
    ++unit;
  }
  return fmt::format("{:.3g} {}", value, kUnits[unit]);
}

std::string io_size(double bytes) {
  static constexpr const char* kUnits[] = {" bytes", " KiB", " MiB", " GiB",
                                           " TiB",   " PiB", " EiB"};
  int unit = 0;
  while (unit < 6 && bytes >= 1024.0) {
    bytes /= 1024.0;
    ++unit;
  }
  std::string text = fmt::format("{:.3f}", bytes);
  // Whole numbers drop their ".000" (qemu-io cuts at the first ".000").
  if (auto dot = text.find(".000"); dot != std::string::npos) text.resize(dot);
  return text + kUnits[unit];
}

std::string io_time(double seconds) {
  if (seconds < 1.0) return fmt::format("{:05.2f} sec", seconds);
  auto whole = static_cast<std::uint64_t>(seconds);
  double secs = static_cast<double>(whole % 60) + (seconds - static_cast<double>(whole));
  return fmt::format("{}:{:02}:{:05.2f}", whole / 3600, (whole / 60) % 60, secs);
}

std::string hex_dump(std::uint64_t offset, std::span<const std::uint8_t> data) {
  std::string out;
  for (std::size_t line = 0; line < data.size(); line += 16) {
    std::size_t n = std::min<std::size_t>(16, data.size() - line);
    out += fmt::format("{:08x}:  ", offset + line);
    for (std::size_t i = 0; i < n; ++i) out += fmt::format("{:02x} ", data[line + i]);
    out += ' ';
    for (std::size_t i = 0; i < n; ++i) {
      unsigned char c = data[line + i];
      out += std::isalnum(c) ? static_cast<char>(c) : '.';
    }
    out += '\n';
  }
  return out;
}

}  // namespace vhdx::cli
