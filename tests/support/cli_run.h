// Test helpers for driving programs through the shell: quoting, reading a file back as text, and
// running a command line (or the built `vhdx` CLI) with its exit status, stdout and stderr kept
// apart.
//
//   CliRun r = run_vhdx("info --output=json " + shell_quote(image));
//   EXPECT_EQ(r.status, 0) << r.err;
#pragma once

#include <string>

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

// Runs `command` through the shell, capturing its stdout and stderr apart.
CliRun run_shell(const std::string& command);

// Runs the built CLI as `vhdx ARGS` (ARGS already quoted as needed), capturing stdout and stderr.
// A non-empty `prefix` runs first in the same shell (e.g. a `ulimit -v`), then the shell execs
// the CLI.
CliRun run_vhdx(const std::string& args, const std::string& prefix = "");

}  // namespace vhdx::testing
