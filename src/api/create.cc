#include "vhdx/create.h"

#include <filesystem>
#include <system_error>

#include "api/image_access.h"
#include "ops/convert_vhdx.h"
#include "ops/create.h"

namespace vhdx {
namespace {

// Options to parameters: zero fields take the defaults (or, when converting an image, the
// source's block and sector sizes).
ops::CreateParams to_params(const CreateOptions& options, const ImageInfo* source) {
  ops::CreateParams p;
  p.type = options.type;
  p.overwrite = options.overwrite;
  if (source != nullptr) {
    p.block_size = source->block_size;
    p.logical_sector_size = source->logical_sector_size;
    p.physical_sector_size = source->physical_sector_size;
  }
  if (options.block_size != 0) p.block_size = options.block_size;
  if (options.log_size != 0) p.log_size = options.log_size;
  if (options.logical_sector_size != 0) p.logical_sector_size = options.logical_sector_size;
  if (options.physical_sector_size != 0) p.physical_sector_size = options.physical_sector_size;
  return p;
}

namespace fs = std::filesystem;

Error invalid(const std::string& what) {
  return Error(ErrorCode::kInvalidArgument, "create: " + what);
}

// `path` made absolute against the working directory and normalised lexically (`.` and `..`
// resolved by name, symlinks left alone), as the reader resolves locator paths.
Result<fs::path> absolute_lexical(const std::string& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(fs::path(path), ec);
  if (ec)
    return Error(ErrorCode::kIo, "cannot make '" + path + "' absolute: " + ec.message(),
                 ec.value());
  return absolute.lexically_normal();
}

// The parent's path from the child's folder in the form Windows writes relative_path:
// `\` separators, and `.\` in front unless the path climbs out with `..`.
std::string windows_relative_path(const fs::path& parent, const fs::path& child_folder) {
  const fs::path relative = parent.lexically_relative(child_folder);
  std::string text;
  for (const fs::path& part : relative) {
    if (!text.empty()) text += '\\';
    text += part.string();
  }
  if (relative.empty() || *relative.begin() != "..") text = ".\\" + text;
  return text;
}

}  // namespace

Result<void> create_differencing(const std::string& path, const std::string& parent_path,
                                 const CreateOptions& options) {
  if (path.empty()) return invalid("the image path is empty");
  if (parent_path.empty()) return invalid("the backing file path is empty");
  if (options.type == DiskType::kFixed)
    return invalid("subformat: a differencing image cannot be fixed");
  VHDX_ASSIGN_OR_RETURN(const fs::path child_absolute, absolute_lexical(path));
  VHDX_ASSIGN_OR_RETURN(const fs::path parent_absolute, absolute_lexical(parent_path));
  if (!child_absolute.has_filename()) return invalid("'" + path + "' names no file");
  std::error_code ec;
  if (child_absolute == parent_absolute || fs::equivalent(path, parent_path, ec))
    return invalid("'" + path + "' is its own backing file '" + parent_path + "'");
  // The reader splits locator paths at `\` (Windows' separator); a Linux name holding one
  // cannot be written so that it reads back.
  if (parent_absolute.string().find('\\') != std::string::npos)
    return invalid("backing file '" + parent_path +
                   "': a path holding '\\' cannot be stored in a parent locator");

  // The parent stays open (read-only, so locked against writers) until the child exists: its
  // DataWriteGuid cannot change in between.
  auto parent = Image::open(parent_path, {});
  if (!parent) return std::move(parent).error().with_context("backing file '" + parent_path + "'");
  const ImageInfo& info = (*parent)->info();

  ops::CreateParams p = to_params(options, &info);
  p.type = DiskType::kDifferencing;
  p.virtual_size = info.virtual_size;
  auto same_as_parent = [&](const char* option, std::uint32_t value,
                            std::uint32_t parent_value) -> Result<void> {
    if (value == 0 || value == parent_value) return ok();
    return invalid(std::string(option) + ": " + std::to_string(value) +
                   " differs from the backing file's " + std::to_string(parent_value) +
                   " (a differencing image takes its parent's sector sizes)");
  };
  VHDX_TRY(
      same_as_parent("logical_sector_size", options.logical_sector_size, info.logical_sector_size));
  VHDX_TRY(same_as_parent("physical_sector_size", options.physical_sector_size,
                          info.physical_sector_size));

  ops::ParentLink link;
  link.data_write_guid = info.headers[info.current_header].data_write_guid;
  link.virtual_disk_id = info.virtual_disk_id;
  // Windows' key order: the absolute path before the relative one.
  link.paths = {
      {"absolute_win32_path", parent_absolute.string()},
      {"relative_path", windows_relative_path(parent_absolute, child_absolute.parent_path())},
  };
  p.parent = std::move(link);
  return ops::create_image(path, p);
}

Result<void> create(const std::string& path, std::uint64_t virtual_size,
                    const CreateOptions& options) {
  ops::CreateParams p = to_params(options, nullptr);
  p.virtual_size = virtual_size;
  return ops::create_image(path, p);
}

Result<void> convert_to_vhdx(Image& source, const std::string& output_path,
                             const VhdxConvertOptions& options) {
  return ops::convert_image_to_vhdx(ImageAccess::engine(source), output_path,
                                    to_params(options.create, &source.info()), options.progress);
}

Result<void> convert_raw_to_vhdx(const std::string& raw_path, const std::string& output_path,
                                 const VhdxConvertOptions& options) {
  return ops::convert_raw_to_vhdx(raw_path, output_path, to_params(options.create, nullptr),
                                  options.progress);
}

Result<void> convert_raw_to_raw(const std::string& raw_path, const std::string& output_path,
                                const RawConvertOptions& options) {
  return ops::convert_raw_to_raw(raw_path, output_path, options);
}

std::string creator_string() { return ops::creator_string(); }

}  // namespace vhdx
