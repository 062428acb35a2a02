#include "vhdx/create.h"

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

}  // namespace

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
