// vhdx convert [-p] [-q] [-f raw|vhdx] [-O raw|vhdx] [-o OPTIONS] IMAGE OUTPUT
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "commands.h"
#include "vhdx/convert.h"
#include "vhdx/create.h"
#include "vhdx/image.h"

namespace vhdx::cli {
namespace {

struct ConvertOptions {
  std::string image;
  std::string output;
  std::string source_format;
  std::string output_format = "raw";
  std::vector<std::string> create_options;  // -o, for -O vhdx
  bool progress = false;
  bool quiet = false;
  bool force_share = false;
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

// The source's format: -f when given, otherwise vhdx when the file starts with the VHDX
// signature and raw when it does not.
Result<std::string> source_format(const ConvertOptions& options) {
  if (options.source_format == "raw" || options.source_format == "vhdx")
    return options.source_format;
  if (!options.source_format.empty())
    return Error(
        ErrorCode::kUnsupported,
        fmt::format("source format '{}' is not supported: use raw or vhdx", options.source_format));
  VHDX_ASSIGN_OR_RETURN(bool is_vhdx, probe(options.image));
  return std::string(is_vhdx ? "vhdx" : "raw");
}

int run_convert(const ConvertOptions& options) {
  auto format = source_format(options);
  if (!format) return report_error(format.error());
  if (options.output_format != "raw" && options.output_format != "vhdx") {
    return report_error(
        Error(ErrorCode::kUnsupported,
              fmt::format("output format '{}' is not supported: use -O raw or -O vhdx",
                          options.output_format)));
  }
  const bool to_vhdx = options.output_format == "vhdx";
  VhdxConvertOptions vhdx_options;
  for (const std::string& text : options.create_options) {
    if (!to_vhdx)
      return report_error(
          Error(ErrorCode::kInvalidArgument, "-o: creation options apply only with -O vhdx"));
    if (auto r = parse_create_options(text, vhdx_options.create); !r)
      return report_error(r.error());
  }
  // Like qemu-img convert, the output is replaced when it exists.
  vhdx_options.create.overwrite = true;
  // The output is truncated first: converting an image onto itself would destroy it.
  std::error_code ec;
  if (std::filesystem::equivalent(options.image, options.output, ec)) {
    return report_error(
        Error(ErrorCode::kInvalidArgument,
              fmt::format("output '{}' is the source image itself", options.output)));
  }

  ProgressBar bar;
  ProgressCallback progress;
  bool show_progress = options.progress && !options.quiet;
  if (show_progress) {
    bar.update(0, 1);
    progress = [&bar](std::uint64_t done, std::uint64_t total) { bar.update(done, total); };
  }
  vhdx_options.progress = progress;
  RawConvertOptions raw_options;
  raw_options.progress = progress;

  Result<void> result = ok();
  if (*format == "raw") {
    result = to_vhdx ? convert_raw_to_vhdx(options.image, options.output, vhdx_options)
                     : convert_raw_to_raw(options.image, options.output, raw_options);
  } else {
    auto image = Image::open(options.image, OpenOptions{.force_share = options.force_share});
    if (!image) {
      if (show_progress) std::fputc('\n', stderr);
      return report_error(image.error());
    }
    result = to_vhdx ? convert_to_vhdx(**image, options.output, vhdx_options)
                     : convert_to_raw(**image, options.output, raw_options);
  }
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
      "Convert a VHDX or raw image to a sparse raw file or a new VHDX image (like qemu-img "
      "convert).");
  sub->add_option("IMAGE", options->image, "VHDX or raw image to read")->required();
  sub->add_flag(
      "-U,--force-share", options->force_share,
      "open without taking the shared lock (inspect an image another process is writing)");
  sub->add_option("OUTPUT", options->output, "raw file to create or overwrite")->required();
  sub->add_option("-O", options->output_format, "output format: raw (default) or vhdx");
  sub->add_option("-f", options->source_format, "source format: raw or vhdx (default: probed)");
  sub->add_option("-o", options->create_options,
                  "with -O vhdx: subformat=dynamic|fixed, block_size=N, log_size=N, "
                  "logical_sector_size=512|4096, physical_sector_size=512|4096")
      ->allow_extra_args(false);
  sub->add_flag("-p", options->progress, "show progress on stderr");
  sub->add_flag("-q", options->quiet, "quiet: no progress");
  sub->footer(
      "Unallocated and zero ranges (and all-zero data) become holes in a raw output and\n"
      "unallocated blocks in a dynamic VHDX output. OUTPUT is replaced if it exists.");
  sub->callback([options, &status] { status = run_convert(*options); });
}

}  // namespace vhdx::cli
