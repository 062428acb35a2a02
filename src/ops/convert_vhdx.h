// Conversions into new files: an open image or a raw file to a new VHDX image, and raw to raw.
#pragma once

#include <memory>
#include <string>

#include "image/engine.h"
#include "ops/create.h"
#include "vhdx/error.h"
#include "vhdx/file.h"
#include "vhdx/types.h"

namespace vhdx::ops {

// Writes the virtual disk of `engine` into a new VHDX image at output_path laid out like
// create_image (params.virtual_size is ignored: the source's size is used). Payload goes out
// block by block in file order, all-zero pieces are skipped (a dynamic output leaves all-zero
// blocks NOT_PRESENT), then the BAT and metadata, then the headers. Memory: one 4 MiB buffer.
Result<void> convert_image_to_vhdx(image::Engine& engine, const std::string& output_path,
                                   const CreateParams& params, const ProgressCallback& progress);

// The same from a raw file: the virtual size is the file's size rounded up to the logical
// sector size (the rounded tail reads as zeros). Holes in the source are skipped without
// reading them (SEEK_DATA). The source is memory-mapped (data goes from the page cache to the
// output in one copy; the mapping's resident part stays one 4 MiB piece), so the raw file must
// not shrink during the conversion (that would raise SIGBUS); pread is the fallback when it
// cannot be mapped.
Result<void> convert_raw_to_vhdx(const std::string& raw_path, const std::string& output_path,
                                 const CreateParams& params, const ProgressCallback& progress);
// The same onto a caller-supplied writable File (see VhdxWriter::create(File)).
Result<void> convert_raw_to_vhdx(const std::string& raw_path, std::unique_ptr<File> output,
                                 const CreateParams& params, const ProgressCallback& progress);

// Copies a raw file to a new raw file (created or truncated) of the same size; with
// options.sparse, holes and all-zero pieces stay holes.
Result<void> convert_raw_to_raw(const std::string& raw_path, const std::string& output_path,
                                const RawConvertOptions& options);

}  // namespace vhdx::ops
