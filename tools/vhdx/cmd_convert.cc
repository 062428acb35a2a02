// vhdx convert [-p] [-q] [-f vhdx] [-O raw] IMAGE OUTPUT
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "commands.h"
#include "vhdx/convert.h"
#include "vhdx/image.h"

namespace vhdx::cli {
namespace {

struct ConvertOptions {
  std::string image;
  std::string output;
  std::string source_format;
  std::string output_format = "raw";
  bool progress = false;
  bool quiet = false;
};

// qemu-img's progress line, "    (42.00/100%)", rewritten in place on stderr.
class ProgressBar {
 public:
  void update(std::uint64_t done, std::uint64_t total) {
    double percent =
        total == 0 ? 100.0 : 100.0 * static_cast<double>(done) / static_cast<double>(total);
    // Redraw once per whole percent: enough to look alive, cheap on a slow terminal.
    double step = std::floor(percent);
    if (step <= last_step_) return;
    last_step_ = step;
    std::fprintf(stderr, "    (%3.2f/100%%)\r", percent);
    std::fflush(stderr);
  }
  // The last state stays on screen, followed by a newline.
  void finish() {
    update(1, 1);
    std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  double last_step_ = -1.0;
};

int run_convert(const ConvertOptions& options) {
  if (auto r = check_source_format(options.source_format); !r) return report_error(r.error());
  if (options.output_format == "vhdx") {
    return report_error(Error(ErrorCode::kUnsupported,
                              "output format 'vhdx' is not supported yet: convert writes raw "
                              "images only (-O raw)"));
  }
  if (options.output_format != "raw") {
    return report_error(Error(
        ErrorCode::kUnsupported,
        fmt::format("output format '{}' is not supported: convert writes raw images only (-O raw)",
                    options.output_format)));
  }
  // The output is truncated first: converting an image onto itself would destroy it.
  std::error_code ec;
  if (std::filesystem::equivalent(options.image, options.output, ec)) {
    return report_error(
        Error(ErrorCode::kInvalidArgument,
              fmt::format("output '{}' is the source image itself", options.output)));
  }
  auto image = Image::open(options.image, OpenOptions{});
  if (!image) return report_error(image.error());

  ProgressBar bar;
  RawConvertOptions convert_options;
  bool show_progress = options.progress && !options.quiet;
  if (show_progress) {
    bar.update(0, 1);
    convert_options.progress = [&bar](std::uint64_t done, std::uint64_t total) {
      bar.update(done, total);
    };
  }
  auto result = convert_to_raw(**image, options.output, convert_options);
  if (!result) {
    if (show_progress) std::fputc('\n', stderr);
    return report_error(result.error());
  }
  if (show_progress) bar.finish();
  return 0;
}

}  // namespace

void add_convert_command(CLI::App& app, int& status) {
  auto options = std::make_shared<ConvertOptions>();
  CLI::App* sub = app.add_subcommand(
      "convert",
      "Write the whole virtual disk to a sparse raw file (like qemu-img convert -O raw).");
  sub->add_option("IMAGE", options->image, "VHDX image to read")->required();
  sub->add_option("OUTPUT", options->output, "raw file to create or overwrite")->required();
  sub->add_option("-O", options->output_format, "output format (only raw for now)");
  sub->add_option("-f", options->source_format, "source format (only vhdx)");
  sub->add_flag("-p", options->progress, "show progress on stderr");
  sub->add_flag("-q", options->quiet, "quiet: no progress");
  sub->footer("Unallocated and zero ranges (and all-zero data) become holes in the output file.");
  sub->callback([options, &status] { status = run_convert(*options); });
}

}  // namespace vhdx::cli
