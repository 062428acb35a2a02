// Helpers shared by the guarantee tests: a file's bytes-and-times state, and the CLI run under an
// address-space limit. They run the CLI with support/cli_run.h.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "gtest/gtest.h"
#include "support/cli_run.h"
#include "support/corpus.h"

#if defined(__SANITIZE_ADDRESS__)
#define VHDX_GUARANTEES_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define VHDX_GUARANTEES_ASAN 1
#endif
#endif

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

// The address-space limit hostile inputs must stay under: 512 MiB.
inline constexpr std::uint64_t kAddressSpaceLimitKiB = 512 * 1024;

// Whether this is a sanitizer build: sanitizers reserve terabytes of address space, so `ulimit
// -v` cannot apply there.
inline bool sanitized() {
#if defined(VHDX_GUARANTEES_SANITIZED) || defined(VHDX_GUARANTEES_ASAN)
  return true;
#else
  return false;
#endif
}

// Runs the CLI under `ulimit -v` (unless sanitized) and checks it ended cleanly: exit 0, or exit
// 1 (with a "vhdx: " error line when `error_line` is set; `io` reports a failed pattern check
// its own way), never a signal or an abort.
inline testing::CliRun run_vhdx_bounded(const std::string& args, bool error_line = true) {
  const std::string prefix =
      sanitized() ? "" : "ulimit -v " + std::to_string(kAddressSpaceLimitKiB);
  testing::CliRun r = testing::run_vhdx(args, prefix);
  EXPECT_TRUE(r.status == 0 || r.status == 1) << "vhdx " << args << " exited " << r.status << "\n"
                                              << r.err;
  if (r.status == 1 && error_line) {
    EXPECT_EQ(r.err.rfind("vhdx: ", 0), 0u) << r.err;
  }
  EXPECT_EQ(r.err.find("AddressSanitizer"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("std::bad_alloc"), std::string::npos) << r.err;
  return r;
}

}  // namespace vhdx::guarantees
