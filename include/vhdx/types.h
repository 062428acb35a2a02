// Value types of the libvhdx API: options, image facts and extents. Part of the base layer's
// public face (they include nothing above base), so every layer can fill them in.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "vhdx/guid.h"

namespace vhdx {

enum class ParentChain {
  kRequire,  // open the whole chain; the open fails when a parent is missing or does not match
  kTry,      // open the chain if it can be; otherwise open the image alone (Image::parent_error)
  kIgnore,   // open the image alone: reads that need a parent fail with kUnsupported
};

struct OpenOptions {
  // Read-only opens never write a byte of the file.
  bool read_only = true;
  // Open an image whose log needs replay anyway, for inspection only: info() works and shows
  // LogState::kNeedsReplay, while read() and block_status() fail with kNeedsLogReplay.
  // Without it such an open fails with kNeedsLogReplay.
  bool allow_dirty_log = false;
  // Read-only opens only: take no advisory lock on the file (qemu-img -U), so an image another
  // process has open for writing can still be read (possibly inconsistent). Without it, a
  // read-only open of an image locked for writing fails with kBusy.
  bool force_share = false;
  // Differencing images: how to treat the parent chain (found through the parent locator,
  // each parent opened read-only and checked against the child's parent_linkage).
  ParentChain parents = ParentChain::kRequire;
};

enum class DiskType { kFixed, kDynamic, kDifferencing };
const char* disk_type_name(DiskType type);  // "fixed", "dynamic", "differencing"

// One of the two headers at 64 KiB and 128 KiB, as found on disk.
struct HeaderInfo {
  bool valid = false;          // signature, checksum and version all good
  std::string invalid_reason;  // why not, when !valid
  std::uint64_t sequence_number = 0;
  Guid file_write_guid;
  Guid data_write_guid;
  Guid log_guid;
  std::uint16_t log_version = 0;
  std::uint16_t version = 0;
  std::uint32_t log_length = 0;
  std::uint64_t log_offset = 0;
};

struct RegionInfo {
  Guid guid;
  std::string name;  // "BAT", "metadata" or "unknown"
  std::uint64_t file_offset = 0;
  std::uint32_t length = 0;
  bool required = false;
};

struct MetadataItemInfo {
  Guid item_id;
  std::string name;  // "file-parameters", "virtual-disk-size", ..., or "unknown"
  std::uint32_t offset = 0;
  std::uint32_t length = 0;
  bool is_user = false;
  bool is_virtual_disk = false;
  bool is_required = false;
};

enum class LogState { kEmpty, kNeedsReplay };

// The log as the check found it (the current header's log fields and the active sequence).
struct CheckLog {
  // kNeedsReplay when the current header names a log GUID (the image was not closed cleanly).
  LogState state = LogState::kEmpty;
  Guid guid;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  // The active sequence under that GUID (0 entries: nothing to replay).
  std::uint64_t entries = 0;
  std::uint64_t first_sequence = 0;
  std::uint64_t last_sequence = 0;
  // The sequence was replayed in memory (the file is never changed) and the replayed image is
  // what was checked.
  bool replayed = false;
  // Why a dirty log could not be replayed (also one of the corruptions); empty otherwise.
  std::string replay_error;
};

// Counts of BAT payload entries by state.
struct BlockCounts {
  std::uint64_t not_present = 0;
  std::uint64_t undefined = 0;
  std::uint64_t zero = 0;
  std::uint64_t unmapped = 0;  // includes the v0.95 value 5
  std::uint64_t fully_present = 0;
  std::uint64_t partially_present = 0;
};

// Everything `vhdx info` shows, filled at open (cheaply: the BAT is not scanned; see
// Image::count_blocks).
struct ImageInfo {
  std::string creator;
  std::uint16_t format_version = 1;
  DiskType type = DiskType::kDynamic;
  std::uint64_t virtual_size = 0;
  std::uint32_t block_size = 0;
  std::uint32_t logical_sector_size = 0;
  std::uint32_t physical_sector_size = 0;
  bool leave_blocks_allocated = false;
  Guid virtual_disk_id;  // page 83 data
  HeaderInfo headers[2];
  int current_header = 0;  // 0 or 1: index into headers
  LogState log_state = LogState::kEmpty;
  // The active log sequence found by a read-only open that replayed it in memory (0 entries when
  // the log is empty, or holds nothing under the header's log GUID).
  std::uint64_t log_entries = 0;
  std::uint64_t log_first_sequence = 0;  // sequence numbers of the tail and head entries
  std::uint64_t log_last_sequence = 0;
  std::vector<RegionInfo> regions;  // from the region table in use
  int region_table_used = 0;        // 0 or 1
  std::vector<MetadataItemInfo> metadata_items;
  std::uint64_t chunk_ratio = 0;
  std::uint64_t payload_blocks = 0;
  std::uint64_t bat_entries = 0;
  std::uint64_t file_size = 0;    // logical size of the container file
  std::uint64_t actual_size = 0;  // bytes the container occupies on the host (st_blocks*512)
  std::optional<Guid> parent_locator_type;
  std::vector<std::pair<std::string, std::string>> parent_locator;  // key, value
};

// How a range of the virtual disk is backed.
enum class ExtentKind {
  kData,  // bytes stored in this file
  kZero,  // reads as zeros by definition (ZERO / UNMAPPED / UNDEFINED states)
  // NOT_PRESENT: reads as zeros in a fixed or dynamic image. In a differencing image whose
  // parent is open, the parent's extents replace these (with depth + 1).
  kUnallocated,
};

struct Extent {
  std::uint64_t offset = 0;  // virtual byte offset
  std::uint64_t length = 0;
  ExtentKind kind = ExtentKind::kUnallocated;
  // For kData: where the bytes start in the container file (of the image at `depth`).
  std::optional<std::uint64_t> file_offset;
  // Which file of a differencing chain says so: 0 this image, 1 its parent, 2 the parent's
  // parent... Unallocated extents at depth 0 are those of an image opened without its parent.
  std::uint32_t depth = 0;
};

// Called now and then with bytes done and bytes in all; for progress bars.
using ProgressCallback = std::function<void(std::uint64_t done, std::uint64_t total)>;

struct RawConvertOptions {
  ProgressCallback progress;
  // Leave unallocated and zero ranges (and all-zero data) as holes in the output.
  bool sparse = true;
};

}  // namespace vhdx
