// Whole-image operations of the public API that exist so far: converting to a raw file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "vhdx/error.h"
#include "vhdx/image.h"

namespace vhdx {

// Called now and then with bytes done and bytes in all; for progress bars.
using ProgressCallback = std::function<void(std::uint64_t done, std::uint64_t total)>;

struct RawConvertOptions {
  ProgressCallback progress;
  // Leave unallocated and zero ranges (and all-zero data) as holes in the output.
  bool sparse = true;
};

// Writes the whole virtual disk of `source` to a raw file at output_path (created or
// truncated), `virtual_size` bytes long. Memory use is bounded (a few MiB of buffers).
Result<void> convert_to_raw(Image& source, const std::string& output_path,
                            const RawConvertOptions& options);

}  // namespace vhdx
