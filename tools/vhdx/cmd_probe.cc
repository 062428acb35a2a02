// vhdx probe IMAGE: "vhdx" and status 0, "not vhdx" and status 1, status 2 when unreadable.
#include <iostream>
#include <memory>

#include "commands.h"
#include "vhdx/image.h"

namespace vhdx::cli {
namespace {

int run_probe(const std::string& path) {
  auto is_vhdx = probe(path);
  if (!is_vhdx) {
    report_error(is_vhdx.error());
    return 2;
  }
  std::cout << (*is_vhdx ? "vhdx" : "not vhdx") << std::endl;
  return *is_vhdx ? 0 : 1;
}

}  // namespace

void add_probe_command(CLI::App& app, int& status) {
  auto path = std::make_shared<std::string>();
  CLI::App* sub =
      app.add_subcommand("probe", "Tell whether a file is a VHDX image (prints vhdx or not vhdx).");
  sub->add_option("IMAGE", *path, "file to test")->required();
  sub->footer("Exit status: 0 VHDX, 1 not VHDX, 2 the file cannot be read.");
  sub->callback([path, &status] { status = run_probe(*path); });
}

}  // namespace vhdx::cli
