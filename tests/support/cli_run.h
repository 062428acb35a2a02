// Test helpers for driving programs through the shell: quoting, reading a file back as text, and
// running a command line (or the built `vhdx` CLI) with its exit status, stdout and stderr kept
// apart.
//
//   CliRun r = run_vhdx("info --output=json " + shell_quote(image));
//   EXPECT_EQ(r.status, 0) << r.err;
#pragma once

#include <string>
#include <utility>

#include "support/corpus.h"

namespace vhdx::testing {

// `s` as one single-quoted shell word, whatever it holds.
std::string shell_quote(const std::string& s);

// The whole content of the file at `path`; empty when it cannot be read.
std::string read_file_text(const std::string& path);

// What one command line did.
struct CliRun {
  int status = -1;  // exit status, 128 + signal, or -1 when the shell could not run
  std::string out;
  std::string err;
};

// Whether the tests run under CI (CI=true), where every peer tool must be installed: a test
// that needs a missing one fails there instead of skipping.
bool in_ci();

// Skips the current test when `program` is not on PATH; fails it instead under CI=true.
#define VHDX_REQUIRE_PROGRAM(program)                                                           \
  do {                                                                                          \
    if (!::vhdx::testing::have_program(program)) {                                              \
      if (::vhdx::testing::in_ci()) FAIL() << program << " not found, and CI=true requires it"; \
      GTEST_SKIP() << program << " not found: install it to run this test";                     \
    }                                                                                           \
  } while (0)

// Runs `command` through the shell, capturing its stdout and stderr apart.
CliRun run_shell(const std::string& command);

// Runs the built CLI as `vhdx ARGS` (ARGS already quoted as needed), capturing stdout and stderr.
// A non-empty `prefix` runs first in the same shell (e.g. a `ulimit -v`), then the shell execs
// the CLI.
CliRun run_vhdx(const std::string& args, const std::string& prefix = "");

// Unmounts a FUSE mount (e.g. vhdimount's) when the test ends, passed or not, once
// set_mounted() says the mount succeeded.
class FuseMountGuard {
 public:
  explicit FuseMountGuard(std::string dir) : dir_(std::move(dir)) {}
  ~FuseMountGuard();
  FuseMountGuard(const FuseMountGuard&) = delete;
  FuseMountGuard& operator=(const FuseMountGuard&) = delete;
  void set_mounted() { mounted_ = true; }

 private:
  std::string dir_;
  bool mounted_ = false;
};

}  // namespace vhdx::testing
