// Helpers for the log layer's unit tests: in-memory images with a log region, entry builders and
// error asserts.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/crc32c.h"
#include "base/endian.h"
#include "format/log_entry.h"
#include "io/mem_file.h"
#include "vhdx/error.h"
#include "vhdx/guid.h"

namespace vhdx::log::testing {

inline constexpr std::uint64_t kMiB = 1024 * 1024;
inline constexpr std::uint64_t kLogOffset = 1 * kMiB;
inline constexpr std::uint32_t kLogLength = 1 * kMiB;

inline const Guid kGuid = *Guid::parse("c3f5caec-4c1d-c54e-90d5-48e9bc17ac53");
inline const Guid kOtherGuid = *Guid::parse("defe3a10-28ee-4ae1-8f0c-8b1a02cc8716");

// A data update whose target sector is filled with a pattern derived from `seed`.
inline format::LogUpdate data_update(std::uint64_t file_offset, std::uint8_t seed) {
  format::LogUpdate u;
  u.kind = format::LogUpdate::Kind::kData;
  u.file_offset = file_offset;
  for (std::size_t i = 0; i < u.data.size(); ++i)
    u.data[i] = static_cast<std::uint8_t>(seed + i * 7 + (i >> 8));
  return u;
}

inline format::LogUpdate zero_update(std::uint64_t file_offset, std::uint64_t length) {
  format::LogUpdate u;
  u.kind = format::LogUpdate::Kind::kZero;
  u.file_offset = file_offset;
  u.zero_length = length;
  return u;
}

struct EntrySpec {
  std::uint64_t sequence = 1;
  std::uint32_t tail = 0;
  Guid guid = kGuid;
  std::vector<format::LogUpdate> updates = {};
  std::uint64_t flushed = 4 * kMiB;
  std::uint64_t last = 4 * kMiB;
};

inline std::vector<std::uint8_t> make_entry(const EntrySpec& spec) {
  format::LogEntryHeader h;
  h.sequence_number = spec.sequence;
  h.tail = spec.tail;
  h.log_guid = spec.guid;
  h.flushed_file_offset = spec.flushed;
  h.last_file_offset = spec.last;
  return format::encode_log_entry(h, spec.updates);
}

// Stores a correct CRC-32C into an entry after a test edited it.
inline void fix_checksum(std::vector<std::uint8_t>& entry) {
  store_le32(entry, 4, crc32c_with_zeroed_field(entry, 4));
}

// A file of `size` bytes whose content is a position-dependent pattern (so replayed sectors and
// zero ranges are visible), with a zeroed log region at kLogOffset.
inline MemFile make_image(std::uint64_t size = 4 * kMiB, std::uint32_t log_length = kLogLength) {
  std::vector<std::uint8_t> bytes(size);
  for (std::size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<std::uint8_t>((i * 131) >> 9);
  std::fill_n(bytes.begin() + kLogOffset, log_length, 0);
  return MemFile(std::move(bytes));
}

// Writes `bytes` into the log ring at ring offset `at`, wrapping past the end of the ring.
inline void put_ring(MemFile& file, std::uint64_t at, std::span<const std::uint8_t> bytes,
                     std::uint32_t log_length = kLogLength) {
  for (std::size_t i = 0; i < bytes.size(); ++i)
    file.bytes()[kLogOffset + (at + i) % log_length] = bytes[i];
}

template <typename T>
::testing::AssertionResult fails_with(const Result<T>& result, ErrorCode code,
                                      const std::string& phrase) {
  if (result.has_value()) return ::testing::AssertionFailure() << "succeeded unexpectedly";
  const Error& e = result.error();
  if (e.code() != code)
    return ::testing::AssertionFailure()
           << "code " << error_code_name(e.code()) << ", expected " << error_code_name(code)
           << " (message: " << e.message() << ")";
  if (e.message().find(phrase) == std::string::npos)
    return ::testing::AssertionFailure()
           << "message '" << e.message() << "' lacks '" << phrase << "'";
  return ::testing::AssertionSuccess();
}

#define EXPECT_LOG_FAILS(expr, code, phrase) \
  EXPECT_TRUE(::vhdx::log::testing::fails_with((expr), ::vhdx::ErrorCode::code, (phrase)))

template <typename T>
std::string describe(const Result<T>& r) {
  return r ? std::string("ok") : r.error().to_string();
}

}  // namespace vhdx::log::testing
