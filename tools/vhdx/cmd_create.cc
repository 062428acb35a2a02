// vhdx create [-f vhdx] [-b PARENT [-F vhdx]] [-o OPTIONS] [--overwrite] [-q] IMAGE [SIZE]
//
// qemu-img create's syntax: -o takes comma-separated name=value pairs (subformat, block_size,
// log_size, logical_sector_size, physical_sector_size); sizes take k/M/G/T suffixes. With -b
// the new image is an empty differencing child of PARENT: it takes PARENT's size (SIZE, when
// given, must equal it), sector sizes and, unless block_size says otherwise, block size.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <string_view>

#include "commands.h"
#include "parse.h"
#include "vhdx/create.h"
#include "vhdx/image.h"

namespace vhdx::cli {
namespace {

Error bad_option(std::string_view name, const std::string& reason) {
  return Error(ErrorCode::kInvalidArgument, fmt::format("-o {}: {}", name, reason));
}

Result<std::uint32_t> parse_u32_size(std::string_view name, std::string_view value) {
  auto size = parse_size(value);
  if (!size) return bad_option(name, size.error().message());
  if (*size > 0xFFFFFFFFull)
    return bad_option(name, fmt::format("'{}' is too large (at most 4G - 1)", value));
  return static_cast<std::uint32_t>(*size);
}

struct CreateCommandOptions {
  std::string image;
  std::string size;
  std::string format;
  std::string backing_file;    // -b
  std::string backing_format;  // -F
  std::vector<std::string> o;
  bool overwrite = false;
  bool quiet = false;
};

Error unsupported_format(const std::string& format) {
  return Error(ErrorCode::kUnsupported,
               fmt::format("format '{}' is not supported: vhdx creates only vhdx images", format));
}

int run_create_differencing(const CreateCommandOptions& options, const CreateOptions& create) {
  if (!options.backing_format.empty() && options.backing_format != "vhdx")
    return report_error(Error(ErrorCode::kUnsupported,
                              fmt::format("backing format '{}' is not supported: the backing file "
                                          "of a vhdx image is a vhdx image",
                                          options.backing_format)));
  // The parent's size, to check SIZE before anything is created and to report it.
  std::uint64_t parent_size = 0;
  {
    auto parent = Image::open(options.backing_file, {});
    if (!parent)
      return report_error(std::move(parent).error().with_context(
          fmt::format("backing file '{}'", options.backing_file)));
    parent_size = (*parent)->virtual_size();
  }
  if (!options.size.empty()) {
    auto size = parse_size(options.size);
    if (!size) return report_error(std::move(size).error().with_context("SIZE"));
    if (*size != parent_size)
      return report_error(
          Error(ErrorCode::kInvalidArgument,
                fmt::format("SIZE: {} bytes differs from the {} bytes of backing file '{}' "
                            "(a differencing image takes its parent's size; leave SIZE out)",
                            *size, parent_size, options.backing_file)));
  }
  if (auto r = create_differencing(options.image, options.backing_file, create); !r)
    return report_error(r.error());
  if (!options.quiet) {
    std::cout << fmt::format("Formatting '{}', fmt=vhdx size={} backing_file={} backing_fmt=vhdx",
                             options.image, parent_size, options.backing_file)
              << std::endl;
  }
  return 0;
}

int run_create(const CreateCommandOptions& options) {
  if (!options.format.empty() && options.format != "vhdx")
    return report_error(unsupported_format(options.format));
  CreateOptions create;
  for (const std::string& text : options.o)
    if (auto r = parse_create_options(text, create); !r) return report_error(r.error());
  create.overwrite = options.overwrite;
  if (!options.backing_file.empty()) return run_create_differencing(options, create);
  if (!options.backing_format.empty())
    return report_error(Error(ErrorCode::kInvalidArgument, "-F needs a backing file (-b)"));
  if (options.size.empty())
    return report_error(
        Error(ErrorCode::kInvalidArgument, "SIZE is required unless a backing file (-b) is given"));
  auto size = parse_size(options.size);
  if (!size) return report_error(std::move(size).error().with_context("SIZE"));
  if (auto r = vhdx::create(options.image, *size, create); !r) return report_error(r.error());
  if (!options.quiet) {
    std::cout << fmt::format("Formatting '{}', fmt=vhdx size={} subformat={}", options.image, *size,
                             create.type == DiskType::kFixed ? "fixed" : "dynamic")
              << std::endl;
  }
  return 0;
}

}  // namespace

Result<void> parse_create_options(const std::string& text, CreateOptions& out) {
  std::string_view rest = text;
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) return bad_option(item, "expected name=value");
    const std::string_view name = item.substr(0, eq);
    const std::string_view value = item.substr(eq + 1);
    if (name == "subformat") {
      if (value == "dynamic") {
        out.type = DiskType::kDynamic;
      } else if (value == "fixed") {
        out.type = DiskType::kFixed;
      } else {
        return bad_option(name, fmt::format("'{}' is not dynamic or fixed", value));
      }
    } else if (name == "block_size") {
      VHDX_ASSIGN_OR_RETURN(out.block_size, parse_u32_size(name, value));
      if (out.block_size == 0) return bad_option(name, "must not be 0");
    } else if (name == "log_size") {
      VHDX_ASSIGN_OR_RETURN(out.log_size, parse_u32_size(name, value));
      if (out.log_size == 0) return bad_option(name, "must not be 0");
    } else if (name == "logical_sector_size" || name == "physical_sector_size") {
      VHDX_ASSIGN_OR_RETURN(std::uint32_t v, parse_u32_size(name, value));
      if (v != 512 && v != 4096)
        return bad_option(name, fmt::format("'{}' is not 512 or 4096", value));
      (name == "logical_sector_size" ? out.logical_sector_size : out.physical_sector_size) = v;
    } else {
      return bad_option(name,
                        "unknown option (known: subformat, block_size, log_size, "
                        "logical_sector_size, physical_sector_size)");
    }
  }
  return ok();
}

void add_create_command(CLI::App& app, int& status) {
  auto options = std::make_shared<CreateCommandOptions>();
  CLI::App* sub = app.add_subcommand(
      "create",
      "Create a new empty VHDX image, or with -b an empty differencing image on top of an "
      "existing one (like qemu-img create).");
  sub->add_option("IMAGE", options->image, "image file to create")->required();
  sub->add_option("SIZE", options->size,
                  "virtual disk size, with k/M/G/T suffixes (with -b: optional, and must equal "
                  "the backing file's)");
  sub->add_option("-f", options->format, "image format (only vhdx)");
  sub->add_option("-b", options->backing_file,
                  "backing file: make IMAGE a differencing image whose parent is this vhdx image");
  sub->add_option("-F", options->backing_format, "backing file format (only vhdx)");
  sub->add_option("-o", options->o,
                  "comma-separated options: subformat=dynamic|fixed, block_size=N, "
                  "log_size=N, logical_sector_size=512|4096, physical_sector_size=512|4096")
      ->allow_extra_args(false);
  sub->add_flag("--overwrite", options->overwrite, "replace IMAGE if it exists");
  sub->add_flag("-q", options->quiet, "quiet: print nothing on success");
  sub->footer(
      "Defaults: subformat=dynamic, block_size=32M, log_size=1M, logical_sector_size=512,\n"
      "physical_sector_size=4096 (what Windows writes). An existing IMAGE is refused unless\n"
      "--overwrite is given.\n"
      "With -b PARENT, IMAGE takes PARENT's size, sector sizes and block size (block_size may\n"
      "differ) and links to PARENT's current DataWriteGuid: writing to PARENT afterwards breaks\n"
      "the link.");
  sub->callback([options, &status] { status = run_create(*options); });
}

}  // namespace vhdx::cli
