// Pieces the fuzz targets share: Files over memory and small valid images built once per
// process. Header-only so that the regression test can compile the targets unchanged.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/mem_file.h"
#include "ops/create.h"
#include "vhdx/file.h"

namespace vhdx::fuzz {

// Stops the fuzzer with a message: the property the target checks does not hold.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz property violated: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// A read-only File over the fuzzer's own buffer (no copy of the input).
class InputFile final : public File {
 public:
  InputFile(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  Result<void> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    if (offset > size_ || out.size() > size_ - offset)
      return Error(ErrorCode::kIo, "unexpected end of file at offset " + std::to_string(offset));
    // memcpy, not std::copy: under ASan memmove copies a byte at a time.
    if (!out.empty()) std::memcpy(out.data(), data_ + offset, out.size());
    return ok();
  }
  Result<void> write_at(std::uint64_t, std::span<const std::uint8_t>) override { return denied(); }
  Result<std::uint64_t> size() override { return std::uint64_t{size_}; }
  Result<void> truncate(std::uint64_t) override { return denied(); }
  Result<void> flush() override { return ok(); }
  Result<void> punch_hole(std::uint64_t, std::uint64_t) override { return denied(); }
  bool writable() const override { return false; }
  std::string name() const override { return "<fuzz input>"; }

 private:
  static Error denied() { return Error(ErrorCode::kReadOnly, "<fuzz input> is read-only"); }
  const std::uint8_t* data_;
  std::size_t size_;
};

// A read-only image file described compactly, so that inputs stay small: VHDX puts every
// structure at a 64 KiB (mostly 1 MiB) boundary and leaves the rest mostly zero, while
// libFuzzer's per-input costs (copying, hashing) grow with the input's size.
//   u16 LE          n, the number of 64 KiB slots (at most 4096: the file is n x 64 KiB long
//                   before the cut, at most 256 MiB)
//   n x u8          bytes stored for each slot, in 512-byte units (at most 128 = 64 KiB)
//   u16 LE          cut: 512-byte units removed from the end of the file (at most 128)
//   the rest        the stored bytes of each slot in turn, from the slot's start; bytes of a
//                   slot past what is stored (or past the input's end) read as zeros
// Every file up to 256 MiB whose size is a multiple of 512 has such a form; fuzz/make_seeds.sh
// converts images into it.
class SlotImageFile final : public File {
 public:
  static constexpr std::uint64_t kSlot = 64 * 1024;
  static constexpr std::size_t kMaxSlots = 4096;

  SlotImageFile(const std::uint8_t* data, std::size_t size) {
    ByteReaderLite in{data, size};
    const std::size_t n = std::min<std::size_t>(in.u16(), kMaxSlots);
    slots_.resize(n);
    for (auto& slot : slots_) slot.length = std::min<std::uint64_t>(in.u8(), 128) * 512;
    const std::uint64_t cut = std::min<std::uint64_t>(in.u16(), 128) * 512;
    std::size_t pos = in.pos;
    for (auto& slot : slots_) {
      slot.data = data + std::min(pos, size);
      slot.length = std::min<std::uint64_t>(slot.length, size - std::min(pos, size));
      pos += slot.length;
    }
    size_ = n * kSlot - std::min<std::uint64_t>(cut, n * kSlot);
  }
  Result<void> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    if (offset > size_ || out.size() > size_ - offset)
      return Error(ErrorCode::kIo, "unexpected end of file at offset " + std::to_string(offset));
    std::size_t done = 0;
    while (done < out.size()) {
      const std::uint64_t at = offset + done;
      const Slot& slot = slots_[at / kSlot];
      const std::uint64_t in_slot = at % kSlot;
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(out.size() - done, kSlot - in_slot));
      const std::size_t stored = static_cast<std::size_t>(
          in_slot < slot.length ? std::min<std::uint64_t>(n, slot.length - in_slot) : 0);
      if (stored > 0) std::memcpy(out.data() + done, slot.data + in_slot, stored);
      std::fill_n(out.begin() + done + stored, n - stored, 0);
      done += n;
    }
    return ok();
  }
  Result<void> write_at(std::uint64_t, std::span<const std::uint8_t>) override { return denied(); }
  Result<std::uint64_t> size() override { return size_; }
  Result<void> truncate(std::uint64_t) override { return denied(); }
  Result<void> flush() override { return ok(); }
  Result<void> punch_hole(std::uint64_t, std::uint64_t) override { return denied(); }
  bool writable() const override { return false; }
  std::string name() const override { return "<fuzz image>"; }

 private:
  struct Slot {
    const std::uint8_t* data = nullptr;
    std::uint64_t length = 0;
  };
  struct ByteReaderLite {
    const std::uint8_t* data;
    std::size_t size;
    std::size_t pos = 0;
    std::uint8_t u8() { return pos < size ? data[pos++] : 0; }
    std::uint16_t u16() {
      const std::uint16_t low = u8();
      return static_cast<std::uint16_t>(low | (u8() << 8));
    }
  };
  static Error denied() { return Error(ErrorCode::kReadOnly, "<fuzz image> is read-only"); }
  std::vector<Slot> slots_;
  std::uint64_t size_ = 0;
};

// A File forwarding to a MemFile the caller keeps too, so that the bytes outlive (and can be
// inspected across) the engine that owns this File.
class SharedMemFile final : public File {
 public:
  explicit SharedMemFile(std::shared_ptr<MemFile> mem) : mem_(std::move(mem)) {}
  Result<void> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    return mem_->read_at(offset, out);
  }
  Result<void> write_at(std::uint64_t offset, std::span<const std::uint8_t> data) override {
    return mem_->write_at(offset, data);
  }
  Result<std::uint64_t> size() override { return mem_->size(); }
  Result<void> truncate(std::uint64_t new_size) override { return mem_->truncate(new_size); }
  Result<void> flush() override { return mem_->flush(); }
  Result<void> punch_hole(std::uint64_t offset, std::uint64_t length) override {
    return mem_->punch_hole(offset, length);
  }
  bool writable() const override { return mem_->writable(); }
  std::string name() const override { return mem_->name(); }

 private:
  std::shared_ptr<MemFile> mem_;
};

// The bytes of a new empty image made by ops::create_image (through a temporary file, once per
// process: the targets keep the result in a static).
inline std::vector<std::uint8_t> created_image(const ops::CreateParams& params) {
  char path[] = "/tmp/vhdx-fuzz-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) fail("mkstemp");
  close(fd);
  ops::CreateParams p = params;
  p.overwrite = true;
  if (auto r = ops::create_image(path, p); !r) fail("create_image: " + r.error().to_string());
  std::ifstream in(path, std::ios::binary);
  std::vector<std::uint8_t> bytes{std::istreambuf_iterator<char>(in),
                                  std::istreambuf_iterator<char>()};
  std::remove(path);
  return bytes;
}

// Little-endian integers from the front of the fuzzer's bytes; zeros once they run out.
class ByteReader {
 public:
  ByteReader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  std::uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::uint16_t u16() {
    const std::uint16_t low = u8();
    return static_cast<std::uint16_t>(low | (u8() << 8));
  }
  std::uint32_t u32() {
    const std::uint32_t low = u16();
    return low | (std::uint32_t{u16()} << 16);
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

}  // namespace vhdx::fuzz
