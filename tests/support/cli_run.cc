#include "support/cli_run.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "support/corpus.h"

namespace vhdx::testing {
namespace {

// One stderr file per process: tests run their commands one at a time, and each run truncates it.
const std::string& stderr_path() {
  static const std::string path = make_temp_dir() + "/stderr";
  return path;
}

// Runs `line`, which must send its stderr to stderr_path().
CliRun run_capturing(const std::string& line) {
  CliRun r;
  r.status = run_command(line, &r.out);
  r.err = read_file_text(stderr_path());
  return r;
}

}  // namespace

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string read_file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

CliRun run_shell(const std::string& command) {
  return run_capturing(command + " 2>" + shell_quote(stderr_path()));
}

CliRun run_vhdx(const std::string& args, const std::string& prefix) {
  std::string line = shell_quote(vhdx_cli()) + " " + args + " 2>" + shell_quote(stderr_path());
  // The redirection stays inside `sh -c`, so only the CLI's own stderr is captured.
  if (!prefix.empty()) line = "sh -c " + shell_quote(prefix + "; exec " + line);
  return run_capturing(line);
}

FuseMountGuard::~FuseMountGuard() {
  if (mounted_) run_shell("fusermount -u " + shell_quote(dir_));
}

}  // namespace vhdx::testing
