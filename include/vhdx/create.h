// Creating VHDX images: new empty images, and conversions that write a new image (or a raw file)
// from an open image or a raw file.
//
//   vhdx::CreateOptions options;            // dynamic, 32 MiB blocks, 1 MiB log, 512/4096
//   options.type = vhdx::DiskType::kFixed;
//   if (auto r = vhdx::create("disk.vhdx", 10ull << 30, options); !r) { ... }
//
// New images are laid out as Windows lays them out (log at 1 MiB, metadata at 1 MiB past the
// log, the BAT after it, payload after the BAT) and written so that an interrupted create or
// convert never leaves a file that opens as a valid image: the headers are written last,
// after everything else has been flushed.
#pragma once

#include <cstdint>
#include <string>

#include "vhdx/error.h"
#include "vhdx/image.h"
#include "vhdx/types.h"

namespace vhdx {

struct CreateOptions {
  // kFixed (every block allocated, zeroed) or kDynamic (blocks allocated on first write).
  DiskType type = DiskType::kDynamic;
  // Power of two from 1 MiB to 256 MiB. 0: 32 MiB, or the source image's when converting.
  std::uint32_t block_size = 0;
  // A non-zero multiple of 1 MiB. 0: 1 MiB.
  std::uint32_t log_size = 0;
  // 512 or 4096. 0: 512 logical / 4096 physical, or the source image's when converting.
  std::uint32_t logical_sector_size = 0;
  std::uint32_t physical_sector_size = 0;
  // Replace an existing file. Without it, an existing path is kInvalidArgument.
  bool overwrite = false;
};

// Creates an image of virtual_size bytes (at most 64 TiB, a multiple of the logical sector
// size). Invalid options are kInvalidArgument naming the option and the rule, e.g.
// "create: block_size: 3 MiB is not a power of two from 1 MiB to 256 MiB".
Result<void> create(const std::string& path, std::uint64_t virtual_size,
                    const CreateOptions& options);

struct VhdxConvertOptions {
  CreateOptions create;  // layout of the new image; overwrite applies to the output
  ProgressCallback progress;
};

// Writes the virtual disk of `source` into a new VHDX image at output_path. All-zero blocks
// are not stored (they stay NOT_PRESENT in a dynamic image). Memory: one 4 MiB buffer.
Result<void> convert_to_vhdx(Image& source, const std::string& output_path,
                             const VhdxConvertOptions& options);

// The same from a raw file. The virtual size is the file's size rounded up to the logical
// sector size. Holes in the raw file are skipped without being read.
Result<void> convert_raw_to_vhdx(const std::string& raw_path, const std::string& output_path,
                                 const VhdxConvertOptions& options);

// Copies a raw file to a raw file (created or truncated); with options.sparse, holes and
// all-zero data stay holes.
Result<void> convert_raw_to_raw(const std::string& raw_path, const std::string& output_path,
                                const RawConvertOptions& options);

// The creator string written into new images: "libvhdx <version>".
std::string creator_string();

}  // namespace vhdx
