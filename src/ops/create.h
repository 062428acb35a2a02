// Writing new VHDX images: parameter validation, the layout (shared/VHDX-FORMAT.md §15a: log at
// 1 MiB, metadata 1 MiB after it, the BAT after that, payload blocks after the BAT) and a
// sequential writer that `create` and `convert -O vhdx` share.
//
// Crash safety: everything except the two headers is written first and flushed, then header 1
// and header 2 are written and flushed. Until the headers land the file has no valid header,
// so an interrupted create or convert never looks like a valid image.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "vhdx/error.h"
#include "vhdx/file.h"
#include "vhdx/guid.h"
#include "vhdx/types.h"

namespace vhdx::ops {

// Defaults: Windows' own choices (32 MiB blocks for dynamic disks, a 1 MiB log, 512-byte logical
// and 4096-byte physical sectors).
inline constexpr std::uint32_t kDefaultBlockSize = 32u << 20;
inline constexpr std::uint32_t kDefaultLogSize = 1u << 20;
inline constexpr std::uint32_t kDefaultLogicalSectorSize = 512;
inline constexpr std::uint32_t kDefaultPhysicalSectorSize = 4096;

// What a differencing child records about its parent (§12 "Creating a child").
struct ParentLink {
  // The parent's current DataWriteGuid: written as `parent_linkage` ("{guid}", lowercase),
  // the locator's first entry.
  Guid data_write_guid;
  // The parent's Virtual Disk ID, which the child keeps.
  Guid virtual_disk_id;
  // The locator's path entries (relative_path, absolute_win32_path, ...) after parent_linkage,
  // in this order. Keys and values are non-empty UTF-8 without NUL, keys unique and not
  // parent_linkage itself.
  std::vector<std::pair<std::string, std::string>> paths;
};

struct CreateParams {
  // kFixed or kDynamic; kDifferencing exactly when `parent` is set.
  DiskType type = DiskType::kDynamic;
  std::uint64_t virtual_size = 0;
  std::uint32_t block_size = kDefaultBlockSize;
  std::uint32_t log_size = kDefaultLogSize;
  std::uint32_t logical_sector_size = kDefaultLogicalSectorSize;
  std::uint32_t physical_sector_size = kDefaultPhysicalSectorSize;
  bool overwrite = false;  // replace an existing file instead of failing with kInvalidArgument
  // Differencing images only: the parent this child links to. Its virtual size and sector
  // sizes are the caller's to copy into the fields above.
  std::optional<ParentLink> parent;
};

// Where everything goes in a new image (absolute file offsets).
struct NewImageLayout {
  std::uint64_t log_offset = 0;
  std::uint64_t log_length = 0;
  std::uint64_t metadata_offset = 0;
  std::uint64_t metadata_length = 0;
  std::uint64_t bat_offset = 0;
  std::uint64_t bat_length = 0;
  std::uint64_t payload_offset = 0;
  std::uint64_t payload_blocks = 0;
  std::uint64_t chunk_ratio = 0;
  std::uint64_t bat_entries = 0;
};

// Checks every parameter (kInvalidArgument naming the option and the rule) and lays the image
// out. A differencing image's BAT interleaves a sector-bitmap entry after every chunk,
// including a last, partial one.
Result<NewImageLayout> plan_image(const CreateParams& params);

// "libvhdx <version>": the creator string written into new images.
std::string creator_string();

// Writes a new image front to back. Payload is given block by block in increasing block order
// (pieces of one block in any order); a dynamic image allocates a block's space when its first
// piece arrives, so blocks never written stay NOT_PRESENT and take no space. A fixed image gets
// all its space (every block FULLY_PRESENT) when the writer is created. finish() writes the
// BAT, metadata, region tables and, last, the headers. A writer destroyed before finish()
// succeeded removes the file.
class VhdxWriter {
 public:
  static Result<std::unique_ptr<VhdxWriter>> create(const std::string& path,
                                                    const CreateParams& params);
  // The same onto a caller-supplied writable File (its old contents are replaced: it is
  // truncated to zero first). Fixed images get their space by extending the file (it reads as
  // zeros). A writer destroyed before finish() leaves the File as it stands.
  static Result<std::unique_ptr<VhdxWriter>> create(std::unique_ptr<File> file,
                                                    const CreateParams& params);
  ~VhdxWriter();
  VhdxWriter(const VhdxWriter&) = delete;
  VhdxWriter& operator=(const VhdxWriter&) = delete;

  const NewImageLayout& layout() const { return layout_; }
  const CreateParams& params() const { return params_; }

  // Stores data at byte in_block of payload block `block`. kInvalidArgument when the block is
  // below one already allocated (dynamic images) or the piece leaves the block.
  Result<void> write(std::uint64_t block, std::uint64_t in_block,
                     std::span<const std::uint8_t> data);
  Result<void> finish();
  std::uint64_t allocated_blocks() const { return allocated_blocks_; }

 private:
  VhdxWriter(int fd, std::string path, CreateParams params, NewImageLayout layout);
  Result<void> set_entry(std::uint64_t block, std::uint64_t raw);
  Result<void> flush_bat_page();
  Result<void> pwrite_all(std::uint64_t offset, std::span<const std::uint8_t> data);
  Result<void> sync();
  Error os_error(const std::string& what, int err) const;

  int fd_;
  std::unique_ptr<File> file_;  // instead of fd_ when the caller supplied the File
  std::string path_;
  CreateParams params_;
  NewImageLayout layout_;
  bool finished_ = false;
  // Dynamic images: the block owning the most recent allocation, and where the next one goes.
  std::uint64_t last_block_ = ~std::uint64_t{0};
  std::uint64_t last_block_offset_ = 0;
  std::uint64_t next_free_ = 0;
  std::uint64_t allocated_blocks_ = 0;
  // One page of BAT entries, written when the writer moves past it (all-zero pages stay holes).
  std::vector<std::uint64_t> bat_page_;
  std::uint64_t bat_page_first_ = 0;  // entry index of bat_page_[0]
  bool bat_page_dirty_ = false;
};

// The Parent Locator item a differencing image with this link gets (§6: VHDX locator type,
// parent_linkage then the path entries), checked: kInvalidArgument naming the entry when a key
// or value is empty, not valid UTF-8, holds a NUL, is too long for the item's 16-bit lengths, a
// key repeats, or the item does not fit in the metadata region.
Result<std::vector<std::uint8_t>> encode_parent_link(const ParentLink& link);

// Creates an empty image at path (every block NOT_PRESENT for dynamic and differencing,
// FULLY_PRESENT with zeroed space for fixed).
Result<void> create_image(const std::string& path, const CreateParams& params);

}  // namespace vhdx::ops
