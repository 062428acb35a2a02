#include "vhdx/convert.h"

#include "api/image_access.h"
#include "ops/convert.h"

namespace vhdx {

Result<void> convert_to_raw(Image& source, const std::string& output_path,
                            const RawConvertOptions& options) {
  return ops::convert_to_raw(ImageAccess::engine(source), output_path, options);
}

}  // namespace vhdx
