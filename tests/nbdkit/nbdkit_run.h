// Running nbdkit with the built plugin or filter in the tests: the command line that starts it
// (with the ASan runtime preloaded in sanitizer builds), the modules' paths, and a captive
// run (`nbdkit -U - ... --run CMD`: nbdkit serves on a private Unix socket while CMD runs,
// with $uri set for libnbd's tools and $nbd for QEMU's, and exits with CMD's status).
#pragma once

#include <string>

#include "support/cli_run.h"

namespace vhdx::testing {

// The built modules.
std::string nbdkit_plugin_path();
std::string nbdkit_filter_path();

// `nbdkit` with what this build needs in front of it (LD_PRELOAD and ASAN_OPTIONS under ASan).
std::string nbdkit_program();

// Runs `nbdkit -U - [-r] ARGS --run CMD` (ARGS and CMD already quoted as needed) and captures
// its exit status, stdout (CMD's) and stderr (nbdkit's log and CMD's errors). A non-empty
// `prefix` runs first in the same shell. CMD never inherits the ASan preload.
CliRun run_nbdkit(const std::string& args, const std::string& command, bool read_only,
                  const std::string& prefix = "");

}  // namespace vhdx::testing
