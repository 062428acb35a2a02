// vhdx map IMAGE [--output=human|json] [--start-offset=N] [--max-length=N]
#include <fmt/format.h>

#include <iostream>
#include <memory>

#include "commands.h"
#include "parse.h"
#include "render.h"
#include "vhdx/image.h"

namespace vhdx::cli {
namespace {

// Block status is asked for this much of the disk at a time.
constexpr std::uint64_t kMapWindow = std::uint64_t{1} << 32;

struct MapOptions {
  std::string image;
  std::string output = "human";
  std::string format;
  std::string start_offset;
  std::string max_length;
  bool force_share = false;
};

int run_map(const MapOptions& options) {
  if (auto r = check_source_format(options.format); !r) return report_error(r.error());
  std::uint64_t start = 0;
  std::optional<std::uint64_t> max_length;
  if (!options.start_offset.empty()) {
    auto n = parse_size(options.start_offset);
    if (!n) return report_error(std::move(n).error().with_context("--start-offset"));
    start = *n;
  }
  if (!options.max_length.empty()) {
    auto n = parse_size(options.max_length);
    if (!n) return report_error(std::move(n).error().with_context("--max-length"));
    max_length = *n;
  }
  auto image = Image::open(options.image, OpenOptions{.force_share = options.force_share});
  if (!image) return report_error(image.error());
  const ImageInfo& info = (*image)->info();
  if (start > info.virtual_size) {
    return report_error(
        Error(ErrorCode::kOutOfRange, fmt::format("--start-offset {} is beyond the end of the disk "
                                                  "({} bytes)",
                                                  start, info.virtual_size)));
  }
  std::uint64_t length = std::min(max_length.value_or(UINT64_MAX), info.virtual_size - start);

  // Data of a differencing chain lives in several files: depth n is the n-th parent.
  std::vector<std::string> files{options.image};
  for (std::string& parent : (*image)->parent_chain()) files.push_back(std::move(parent));
  // Unallocated ranges read from the parent; once the chain is open they come from its base.
  const bool parent_decides = info.type == DiskType::kDifferencing && files.size() == 1;
  bool json = options.output == "json";
  bool first = true;
  if (json) {
    std::cout << "[";
  } else {
    std::cout << map_human_header();
  }
  auto result = walk_map(
      [&](std::uint64_t off, std::uint64_t len) { return (*image)->block_status(off, len); }, start,
      length, parent_decides, kMapWindow,
      [&](const MapEntry& entry) {
        if (json) {
          std::cout << (first ? "" : ",\n") << map_entry_json(entry);
          first = false;
        } else if (entry.data) {
          std::cout << map_human_line(entry,
                                      files[std::min<std::size_t>(entry.depth, files.size() - 1)]);
        }
      });
  // On failure the JSON stays unterminated, so a consumer cannot take it for a whole map.
  if (json && result) std::cout << "]\n";
  std::cout << std::flush;
  if (!result) {
    if (json) std::cout << std::endl;
    return report_error(result.error());
  }
  return 0;
}

}  // namespace

void add_map_command(CLI::App& app, int& status) {
  auto options = std::make_shared<MapOptions>();
  CLI::App* sub = app.add_subcommand(
      "map",
      "Show how the virtual disk is backed: data extents with their file offsets, zero "
      "and unallocated ranges (like qemu-img map).");
  sub->add_option("IMAGE", options->image, "VHDX image file")->required();
  sub->add_flag(
      "-U,--force-share", options->force_share,
      "open without taking the shared lock (inspect an image another process is writing)");
  sub->add_option("--output", options->output, "output format: human (default) or json")
      ->check(output_format_validator());
  sub->add_option("--start-offset", options->start_offset, "first byte to map (default 0)");
  sub->add_option("--max-length", options->max_length, "bytes to map (default: to the end)");
  sub->add_option("-f", options->format, "source format (only vhdx)");
  sub->footer(
      "JSON: a list of {start, length, depth, present, zero, data, offset} as qemu-img prints it.\n"
      "Data: present, data, offset in the file. Zero/unmapped blocks: present, zero. Blocks not\n"
      "present: not present (zero unless the image is differencing). Human output lists data\n"
      "extents only.");
  sub->callback([options, &status] { status = run_map(*options); });
}

}  // namespace vhdx::cli
