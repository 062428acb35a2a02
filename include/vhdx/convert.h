// Whole-image operations of the public API that exist so far: converting to a raw file.
#pragma once

#include <string>

#include "vhdx/error.h"
#include "vhdx/image.h"

namespace vhdx {

// Writes the whole virtual disk of `source` to a raw file at output_path (created or
// truncated), `virtual_size` bytes long. Memory use is bounded (a few MiB of buffers).
Result<void> convert_to_raw(Image& source, const std::string& output_path,
                            const RawConvertOptions& options);

}  // namespace vhdx
