#include "nbdkit/nbdkit_run.h"

namespace vhdx::testing {

std::string nbdkit_plugin_path() { return std::string(VHDX_NBDKIT_DIR) + "/nbdkit-vhdx-plugin.so"; }
std::string nbdkit_filter_path() { return std::string(VHDX_NBDKIT_DIR) + "/nbdkit-vhdx-filter.so"; }

std::string nbdkit_program() {
  const std::string preload = VHDX_NBDKIT_PRELOAD;
  if (preload.empty()) return "nbdkit";
  // nbdkit's own allocations are not ours to check for leaks.
  return "env LD_PRELOAD=" + shell_quote(preload) +
         " ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0 nbdkit";
}

CliRun run_nbdkit(const std::string& args, const std::string& command, bool read_only,
                  const std::string& prefix) {
  // The clients are not instrumented (qemu-io's coroutines even hang under ASan).
  const std::string client = "unset LD_PRELOAD ASAN_OPTIONS; " + command;
  return run_shell((prefix.empty() ? "" : prefix + "; ") + nbdkit_program() + " -U - " +
                   (read_only ? "-r " : "") + args + " --run " + shell_quote(client));
}

}  // namespace vhdx::testing
