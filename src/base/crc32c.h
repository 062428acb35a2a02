// CRC-32C (Castagnoli), as VHDX uses it for headers, region tables and log entries.
// Backed by ISA-L's crc32_iscsi, which picks the SSE4.2/PCLMUL code path at run time.
#pragma once

#include <cstdint>
#include <span>

namespace vhdx {

// Incremental form, for data that arrives in pieces (a log entry that wraps the ring).
class Crc32c {
 public:
  void update(std::span<const std::uint8_t> data);
  std::uint32_t value() const { return ~state_; }

 private:
  std::uint32_t state_ = 0xFFFFFFFFu;
};

std::uint32_t crc32c(std::span<const std::uint8_t> data);

// CRC-32C of `data` computed as if the 4 bytes at checksum_offset were zero: how VHDX
// checksums a structure that stores its own checksum.
std::uint32_t crc32c_with_zeroed_field(std::span<const std::uint8_t> data,
                                       std::size_t checksum_offset);

}  // namespace vhdx
