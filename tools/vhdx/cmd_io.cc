// vhdx io [-r] [-f vhdx] IMAGE [-c CMD]...: a qemu-io style exerciser.
#include <unistd.h>

#include <iostream>
#include <memory>

#include "commands.h"
#include "image_target.h"
#include "io_commands.h"
#include "vhdx/image.h"

namespace vhdx::cli {
namespace {

struct IoOptions {
  std::string image;
  std::string format;
  std::vector<std::string> commands;
  bool read_only = false;
  bool force_share = false;
};

int run_io(const IoOptions& options) {
  if (auto r = check_source_format(options.format); !r) return report_error(r.error());
  // Read-write unless -r, as qemu-io opens.
  OpenOptions open_options;
  open_options.read_only = options.read_only;
  open_options.force_share = options.force_share;
  auto image = Image::open(options.image, open_options);
  if (!image) return report_error(image.error());
  ImageTarget target(**image, !options.read_only);
  IoSession session{target, std::cout, std::cerr};
  bool all_ok = true;
  auto run_line = [&](const std::string& line) {
    bool ok = run_io_command(session, line);
    // Keep stdout and stderr in command order when both go to one place.
    std::cout.flush();
    all_ok = all_ok && ok;
  };
  if (!options.commands.empty()) {
    for (const std::string& line : options.commands) {
      run_line(line);
      if (session.quit) break;
    }
  } else {
    // No -c: commands come from stdin, one a line, as at qemu-io's prompt.
    bool interactive = isatty(STDIN_FILENO) != 0;
    std::string line;
    while (true) {
      if (interactive) std::cout << "vhdx io> " << std::flush;
      if (!std::getline(std::cin, line)) break;
      run_line(line);
      if (session.quit) break;
    }
    if (interactive && !session.quit) std::cout << "\n";
  }
  // Close explicitly: the destructor cannot report a failed flush or header update.
  if (auto r = (*image)->close(); !r) {
    report_error(r.error());
    return 1;
  }
  return all_ok ? 0 : 1;
}

}  // namespace

void add_io_command(CLI::App& app, int& status) {
  auto options = std::make_shared<IoOptions>();
  CLI::App* sub = app.add_subcommand(
      "io", "Run qemu-io style commands (read, write, discard, map, ...) on an image.");
  sub->add_option("IMAGE", options->image, "VHDX image file")->required();
  sub->add_flag(
      "-U,--force-share", options->force_share,
      "open without taking the shared lock (inspect an image another process is writing)");
  sub->add_option("-c,--cmd", options->commands,
                  "command to run, e.g. 'read -P 0xab 0 64k' (repeatable; runs in order; "
                  "without -c, commands are read from stdin)")
      ->allow_extra_args(false);
  sub->add_flag("-r,--read-only", options->read_only, "open read-only (default: read-write)");
  sub->add_option("-f", options->format, "source format (only vhdx)");
  sub->footer("Commands:\n" + io_command_list() +
              "\nOffsets and lengths take k, M, G, T suffixes. The exit status is 1 if any "
              "command failed.");
  sub->callback([options, &status] { status = run_io(*options); });
}

}  // namespace vhdx::cli
