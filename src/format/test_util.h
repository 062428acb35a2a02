// Helpers for the format layer's unit tests: corpus access, byte builders and error asserts.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "vhdx/error.h"
#include "vhdx/guid.h"

namespace vhdx::format::testing {

// The shared corpus: $VHDX_CORPUS_DIR, else <source>/../shared/corpus.
inline std::string corpus_dir() {
  if (const char* env = std::getenv("VHDX_CORPUS_DIR"); env != nullptr && *env != '\0') return env;
  return std::string(VHDX_SOURCE_DIR) + "/../shared/corpus";
}

inline std::vector<std::uint8_t> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

inline Guid guid(const char* text) { return *Guid::parse(text); }

inline void put_bytes(std::vector<std::uint8_t>& out, std::size_t at,
                      std::initializer_list<std::uint8_t> bytes) {
  std::copy(bytes.begin(), bytes.end(), out.begin() + static_cast<std::ptrdiff_t>(at));
}
inline void put_le(std::vector<std::uint8_t>& out, std::size_t at, std::uint64_t v, int size) {
  for (int i = 0; i < size; ++i) out[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}
inline void put_ascii(std::vector<std::uint8_t>& out, std::size_t at, const std::string& s) {
  std::copy(s.begin(), s.end(), out.begin() + static_cast<std::ptrdiff_t>(at));
}

// Asserts that `result` failed with `code` and a message containing `phrase`.
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

#define EXPECT_FAILS(expr, code, phrase) \
  EXPECT_TRUE(::vhdx::format::testing::fails_with((expr), ::vhdx::ErrorCode::code, (phrase)))

// Prints the message of a failed Result.
template <typename T>
std::string describe(const Result<T>& r) {
  return r.has_value() ? std::string("ok") : r.error().to_string();
}

}  // namespace vhdx::format::testing
