// vhdx info IMAGE [--output=human|json]
#include <iostream>
#include <memory>

#include "commands.h"
#include "render.h"
#include "vhdx/image.h"

namespace vhdx::cli {
namespace {

struct InfoOptions {
  std::string image;
  std::string output = "human";
  std::string format;
  bool force_share = false;
};

int run_info(const InfoOptions& options) {
  if (auto r = check_source_format(options.format); !r) return report_error(r.error());
  // A dirty log must not stop inspection: info shows the log state instead.
  OpenOptions open_options;
  open_options.read_only = true;
  open_options.allow_dirty_log = true;
  open_options.force_share = options.force_share;
  // A missing or mismatched parent must not stop inspection either: info says why.
  open_options.parents = ParentChain::kTry;
  auto image = Image::open(options.image, open_options);
  if (!image) return report_error(image.error());
  const ImageInfo& info = (*image)->info();

  // The reason is shown under this image's own name, so it need not name the image again.
  auto about_this_image = [&](std::string message) {
    const std::string prefix = "'" + options.image + "': ";
    if (message.starts_with(prefix)) message.erase(0, prefix.size());
    return message;
  };
  BlockCountsOrReason blocks;
  std::optional<Error> count_error;
  // A dirty log is replayed in memory by the read-only open, so the counts are those after
  // replay; only a log that could not be replayed leaves them unavailable.
  if (auto counts = (*image)->count_blocks(); counts) {
    blocks.counts = *counts;
  } else if (counts.error().code() == ErrorCode::kNeedsLogReplay) {
    blocks.unavailable_reason = about_this_image(counts.error().message());
  } else {
    blocks.unavailable_reason = about_this_image(counts.error().to_string());
    count_error = std::move(counts).error();
  }

  const ParentChainView chain{(*image)->parent_chain(), (*image)->parent_error()};
  if (options.output == "json") {
    std::cout << info_to_json(options.image, info, blocks, chain)
                     .dump(4, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
              << std::endl;
  } else {
    std::cout << info_to_human(options.image, info, blocks, chain) << std::flush;
  }
  // A BAT that cannot be scanned is damage worth an error status, after showing what we can.
  if (count_error) return report_error(*count_error);
  return 0;
}

}  // namespace

void add_info_command(CLI::App& app, int& status) {
  auto options = std::make_shared<InfoOptions>();
  CLI::App* sub = app.add_subcommand(
      "info",
      "Show the image's format facts: type, sizes, headers, log, regions, metadata, "
      "block counts.");
  sub->add_option("IMAGE", options->image, "VHDX image file")->required();
  sub->add_flag(
      "-U,--force-share", options->force_share,
      "open without taking the shared lock (inspect an image another process is writing)");
  sub->add_option("--output", options->output, "output format: human (default) or json")
      ->check(output_format_validator());
  sub->add_option("-f", options->format, "source format (only vhdx)");
  sub->footer(
      "Opens read-only. An image whose log needs replay is replayed in memory (the file is not "
      "changed); if its log cannot be replayed, info still shows what it can.");
  sub->callback([options, &status] { status = run_info(*options); });
}

}  // namespace vhdx::cli
