// vhdx: the command line of libvhdx, with qemu-img's conventions: exit status 0 on success,
// 1 on error with "vhdx: <message>" on stderr.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "commands.h"

namespace vhdx::cli {

int report_error(const Error& error) {
  std::fflush(stdout);
  std::cerr << "vhdx: " << error.to_string() << std::endl;
  return 1;
}

CLI::Validator output_format_validator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (value == "human" || value == "json") return {};
        return fmt::format("invalid output format '{}': expected human or json", value);
      },
      "human|json");
}

Result<void> check_source_format(const std::string& format) {
  if (format.empty() || format == "vhdx") return ok();
  return Error(
      ErrorCode::kUnsupported,
      fmt::format("source format '{}' is not supported: vhdx reads only vhdx images", format));
}

}  // namespace vhdx::cli

int main(int argc, char** argv) {
  using namespace vhdx::cli;
  CLI::App app("vhdx: inspect, read and convert VHDX virtual disk images.", "vhdx");
  app.set_version_flag("-V,--version", "vhdx version " VHDX_VERSION);
  app.require_subcommand(1);
  app.footer(
      "Run 'vhdx COMMAND --help' for a command's options. Sizes and offsets take k, M, G, T\n"
      "suffixes (powers of 1024). Exit status: 0 on success, 1 on error.");
  int status = 0;
  add_info_command(app, status);
  add_map_command(app, status);
  add_convert_command(app, status);
  add_io_command(app, status);
  add_probe_command(app, status);
  add_create_command(app, status);
  add_check_command(app, status);
  add_bench_command(app, status);
  // Name the problem when the command itself is missing or misspelt (CLI11 would only say
  // that a subcommand is required).
  std::string names;
  bool known = false;
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    names += (names.empty() ? "" : ", ") + sub->get_name();
    known = known || (argc >= 2 && sub->get_name() == argv[1]);
  }
  if (argc < 2) {
    std::cerr << "vhdx: missing command (one of " << names << ")\n"
              << "Try 'vhdx --help' for usage." << std::endl;
    return 1;
  }
  if (argv[1][0] != '-' && !known) {
    std::cerr << "vhdx: unknown command '" << argv[1] << "' (one of " << names << ")\n"
              << "Try 'vhdx --help' for usage." << std::endl;
    return 1;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "vhdx: " << e.what() << "\n"
              << "Try 'vhdx --help' or 'vhdx COMMAND --help' for usage." << std::endl;
    return 1;
  }
  return status;
}
