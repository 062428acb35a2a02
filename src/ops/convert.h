// Whole-image conversion of an open engine to a raw file.
#pragma once

#include <string>

#include "image/engine.h"
#include "vhdx/error.h"
#include "vhdx/types.h"

namespace vhdx::ops {

// Writes the virtual disk of `engine` to output_path (created or truncated) as a raw file of
// virtual_size bytes. Only data extents are copied, in steps of a few MiB: in the kernel with
// copy_file_range when the engine was opened from a path, otherwise through a 1 MiB buffer.
// With options.sparse, zero and unallocated ranges and all-zero data stay holes (a data step
// is read in full only when its first 4 KiB are zero). Without it, those ranges are allocated.
// The output is written with POSIX calls on its own descriptor (copy_file_range needs one).
// On failure the partial output is removed.
Result<void> convert_to_raw(image::Engine& engine, const std::string& output_path,
                            const RawConvertOptions& options);

}  // namespace vhdx::ops
