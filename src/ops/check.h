// Consistency check of a VHDX image (read-only): both headers, both region table copies, the
// log (inside the file, clear of the header section and every region; a dirty log's active
// sequence must replay), the metadata (through the engine's open), and every BAT entry (state
// valid for the disk type, space inside the file, no overlap with the header section, log,
// regions or any other block), then space at the end of the file that nothing references
// (leaks). A dirty log is replayed in memory only and the image as it reads after replay is what
// gets checked; the file is never written.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vhdx/error.h"
#include "vhdx/file.h"
#include "vhdx/guid.h"
#include "vhdx/types.h"

namespace vhdx::ops {

// The log as the check found it (see vhdx::CheckLog).
struct CheckLogReport : CheckLog {
  // Whether the facts are known: false when the image could not be opened at all.
  bool known = false;
};

struct CheckReport {
  // Format violations found; messages name the structure. At most kMaxMessages are kept, the
  // count is exact.
  std::vector<std::string> corruptions;
  std::uint64_t corruption_count = 0;
  // Why (part of) the image could not be checked, e.g. a log that needs replay.
  std::vector<std::string> check_errors;
  // Findings that leave the image correct (one header torn or damaged while the other is valid).
  std::vector<std::string> warnings;
  // File space past the end of everything the image references.
  std::uint64_t leaked_bytes = 0;
  std::uint64_t leaked_clusters = 0;  // leaked_bytes in 1 MiB units, rounded up
  std::uint64_t total_blocks = 0;
  std::uint64_t allocated_blocks = 0;  // FULLY_ or PARTIALLY_PRESENT payload blocks
  std::uint64_t image_end_offset = 0;  // end of the last referenced object
  // The file's size; after an in-memory replay, the size the replayed file has.
  std::uint64_t file_size = 0;
  CheckLogReport log;

  static constexpr std::size_t kMaxMessages = 1000;
  void add_corruption(std::string message);
};

// Checks the image in `file`. An Error only when the file cannot be read or is not VHDX
// at all (kNotVhdx, kIo); an image the engine refuses as kCorrupt is a report with that
// corruption, and kUnsupported findings become check_errors. A dirty log that cannot be
// replayed is a corruption naming the reason.
Result<CheckReport> check_image(std::unique_ptr<File> file);

}  // namespace vhdx::ops
