// Creating VHDX images: new empty images, empty differencing children of an existing image,
// and conversions that write a new image (or a raw file)
// from an open image or a raw file.
//
//   vhdx::CreateOptions options;            // dynamic, 32 MiB blocks, 1 MiB log, 512/4096
//   options.type = vhdx::DiskType::kFixed;
//   if (auto r = vhdx::create("disk.vhdx", 10ull << 30, options); !r) { ... }
//   if (auto r = vhdx::create_differencing("child.vhdx", "disk.vhdx", {}); !r) { ... }
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

// Creates an empty differencing image at path whose parent is the VHDX image at parent_path
// (qemu-img create -b). The parent is opened read-only (its own chain must open) and the child
// takes its virtual size, logical and physical sector sizes and Virtual Disk ID; every block of
// the child is NOT_PRESENT, so it reads as its parent. The child's parent locator holds, in
// this order:
//   parent_linkage       the parent's current DataWriteGuid, "{xxxxxxxx-...}" in lowercase;
//   absolute_win32_path  the parent's absolute path as Linux spells it (e.g. /vm/base.vhdx);
//   relative_path        the parent's path from the child's folder, Windows style: `\`
//                        separators and a leading `.\` in the same folder (`.\base.vhdx`,
//                        `..\img\base.vhdx`).
// Both paths are worked out lexically from the absolute forms (symlinks are not resolved).
// Any write to the parent afterwards changes its DataWriteGuid and breaks the link.
//
// Options: block_size 0 takes the parent's; logical_sector_size and physical_sector_size must
// be 0 or the parent's; log_size and overwrite as for create(); type must not be kFixed.
// Errors: kInvalidArgument naming the option for a mismatch, for path naming the parent
// itself, or for a path the locator cannot hold (one holding `\`); errors opening the parent
// carry the context "backing file '<parent_path>'" (e.g. kIo with errno ENOENT).
Result<void> create_differencing(const std::string& path, const std::string& parent_path,
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
