// A File over a POSIX file descriptor.
#pragma once

#include <memory>
#include <string>

#include "vhdx/file.h"

namespace vhdx {

struct PosixOpenOptions {
  bool writable = false;
  bool create = false;     // create the file (fails if it exists unless truncate_existing)
  bool truncate_existing = false;
};

Result<std::unique_ptr<File>> open_posix_file(const std::string& path,
                                              const PosixOpenOptions& options);

// Bytes the file occupies on its file system (st_blocks * 512): the "actual size".
Result<std::uint64_t> allocated_bytes(const std::string& path);

}  // namespace vhdx
