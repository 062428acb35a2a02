// Overflow-checked arithmetic for values that come from disk. An empty optional means the
// result does not fit in 64 bits; callers turn that into a kCorrupt error naming the field.
#pragma once

#include <cstdint>
#include <optional>

namespace vhdx {

inline std::optional<std::uint64_t> checked_add(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}
inline std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}
// ceil(a / b) for b > 0, without the a + b - 1 overflow.
constexpr std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) {
  return a / b + (a % b != 0 ? 1 : 0);
}
constexpr bool is_power_of_two(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }
// `alignment` must be a power of two.
constexpr bool is_aligned(std::uint64_t v, std::uint64_t alignment) {
  return (v & (alignment - 1)) == 0;
}
// Rounds v up to a multiple of the power-of-two alignment; empty on overflow.
inline std::optional<std::uint64_t> align_up(std::uint64_t v, std::uint64_t alignment) {
  auto sum = checked_add(v, alignment - 1);
  if (!sum) return std::nullopt;
  return *sum & ~(alignment - 1);
}
// Whether [a, a+a_len) and [b, b+b_len) share a byte; empty ranges overlap nothing. The ends
// must not overflow (callers check them first).
constexpr bool ranges_overlap(std::uint64_t a, std::uint64_t a_len, std::uint64_t b,
                              std::uint64_t b_len) {
  return a_len != 0 && b_len != 0 && a < b + b_len && b < a + a_len;
}

}  // namespace vhdx
