// File: the byte-addressed storage an image lives in. The io layer provides a POSIX file, an
// in-memory file and fault-injecting wrappers; a caller may supply its own (an nbdkit filter
// passes the underlying plugin). Part of the io layer's public face; includes only base headers.
//
// Thread safety: implementations need not be thread-safe; an Image serialises its calls.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "vhdx/error.h"

namespace vhdx {

class File {
 public:
  virtual ~File() = default;

  // Reads exactly out.size() bytes at offset. Reading past the end of the file is an error
  // (kIo with "unexpected end of file"), never a short read.
  virtual Result<void> read_at(std::uint64_t offset, std::span<std::uint8_t> out) = 0;
  // Writes all of data at offset, extending the file if needed.
  virtual Result<void> write_at(std::uint64_t offset, std::span<const std::uint8_t> data) = 0;
  virtual Result<std::uint64_t> size() = 0;
  virtual Result<void> truncate(std::uint64_t new_size) = 0;
  // Makes every completed write durable (fdatasync for a POSIX file).
  virtual Result<void> flush() = 0;
  // Frees the storage of [offset, offset+length) so it reads as zeros; files that cannot
  // punch holes write zeros instead.
  virtual Result<void> punch_hole(std::uint64_t offset, std::uint64_t length) = 0;
  virtual bool writable() const = 0;
  // A name for messages: the path, or a description such as "<memory>".
  virtual std::string name() const = 0;
};

}  // namespace vhdx
