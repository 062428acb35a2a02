// A File held in memory: for component tests, fuzzers and in-memory work.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "vhdx/file.h"

namespace vhdx {

class MemFile final : public File {
 public:
  explicit MemFile(std::vector<std::uint8_t> bytes = {}, bool writable = true)
      : bytes_(std::move(bytes)), writable_(writable) {}

  Result<void> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override;
  Result<void> write_at(std::uint64_t offset, std::span<const std::uint8_t> data) override;
  Result<std::uint64_t> size() override { return static_cast<std::uint64_t>(bytes_.size()); }
  Result<void> truncate(std::uint64_t new_size) override;
  Result<void> flush() override { return ok(); }
  Result<void> punch_hole(std::uint64_t offset, std::uint64_t length) override;
  bool writable() const override { return writable_; }
  std::string name() const override { return "<memory>"; }

  const std::vector<std::uint8_t>& bytes() const { return bytes_; }
  std::vector<std::uint8_t>& bytes() { return bytes_; }

  // Largest size a MemFile may grow to, so hostile inputs cannot exhaust memory.
  static constexpr std::uint64_t kMaxSize = std::uint64_t{1} << 32;

 private:
  std::vector<std::uint8_t> bytes_;
  bool writable_;
};

}  // namespace vhdx
