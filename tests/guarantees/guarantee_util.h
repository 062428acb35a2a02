// Helpers shared by the guarantee tests: running the CLI, and a file's bytes-and-times state.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "support/corpus.h"

namespace vhdx::guarantees {

inline std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct CliRun {
  int status = -1;  // exit status, or 128 + signal
  std::string out;
  std::string err;
};

// Runs `vhdx ARGS` through the shell; `prefix` runs first in the same shell (e.g. a ulimit).
inline CliRun run_cli(const std::string& args, const std::string& prefix = "") {
  static const std::string err_path = testing::make_temp_dir() + "/stderr";
  CliRun r;
  std::string line = quote(testing::vhdx_cli()) + " " + args + " 2>" + quote(err_path);
  if (!prefix.empty()) line = "sh -c " + quote(prefix + "; exec " + line);
  r.status = testing::run_command(line, &r.out);
  r.err = slurp(err_path);
  return r;
}

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
