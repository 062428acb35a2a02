// Helpers shared by the guarantee tests: a file's bytes-and-times state. They run the CLI with
// support/cli_run.h.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "support/corpus.h"

namespace vhdx::guarantees {

// What a read-only command must leave alone.
struct FileState {
  std::string sha256;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  std::uint64_t blocks = 0;
  bool operator==(const FileState&) const = default;
};

inline FileState file_state(const std::string& path) {
  struct stat st {};
  FileState s;
  if (::stat(path.c_str(), &st) != 0) return s;
  s.sha256 = testing::sha256_file(path);
  s.size = static_cast<std::uint64_t>(st.st_size);
  s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  s.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  s.blocks = static_cast<std::uint64_t>(st.st_blocks);
  return s;
}

}  // namespace vhdx::guarantees
