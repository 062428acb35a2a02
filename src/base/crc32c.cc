#include "base/crc32c.h"

#include <isa-l/crc.h>

#include <array>
#include <climits>

namespace vhdx {

void Crc32c::update(std::span<const std::uint8_t> data) {
  // crc32_iscsi takes an int length; feed large buffers in pieces.
  constexpr std::size_t kMaxPiece = 1u << 30;
  while (!data.empty()) {
    std::size_t piece = data.size() < kMaxPiece ? data.size() : kMaxPiece;
    // ISA-L's signature lacks const; it does not write the buffer.
    state_ = crc32_iscsi(const_cast<unsigned char*>(data.data()), static_cast<int>(piece), state_);
    data = data.subspan(piece);
  }
}

std::uint32_t crc32c(std::span<const std::uint8_t> data) {
  Crc32c crc;
  crc.update(data);
  return crc.value();
}

std::uint32_t crc32c_with_zeroed_field(std::span<const std::uint8_t> data,
                                       std::size_t checksum_offset) {
  static constexpr std::array<std::uint8_t, 4> kZeros{};
  Crc32c crc;
  crc.update(data.first(checksum_offset));
  crc.update(kZeros);
  crc.update(data.subspan(checksum_offset + 4));
  return crc.value();
}

}  // namespace vhdx
