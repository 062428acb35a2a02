// Checking a VHDX image for consistency, read-only (like qemu-img check without -r).
//
//   auto result = vhdx::check("disk.vhdx");
//   if (!result) { /* could not check at all */ }
//   else if (result->corruption_count) { /* damaged */ }
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vhdx/error.h"
#include "vhdx/file.h"
#include "vhdx/guid.h"
#include "vhdx/types.h"

namespace vhdx {

struct CheckResult {
  // Format violations: a damaged or torn header, a bad or differing region table copy, invalid
  // metadata, a BAT entry with an invalid state, space outside the file or overlapping the
  // header section, log, a region or another block. Messages name the structure; at most 1000
  // are kept, corruption_count is exact.
  std::vector<std::string> corruptions;
  std::uint64_t corruption_count = 0;
  // What could not be checked and why (a log that needs replay, an unsupported feature).
  std::vector<std::string> check_errors;
  // Findings that leave the image correct and do not change the exit status: one header torn
  // or damaged while the other is valid, the state a crash during a header update leaves (the
  // valid one is current; the next update of the image rewrites the other).
  std::vector<std::string> warnings;
  // The log's facts; empty when the image could not be opened far enough to know them.
  std::optional<CheckLog> log;
  // File space past everything the image references.
  std::uint64_t leaked_bytes = 0;
  std::uint64_t leaked_clusters = 0;  // in 1 MiB units, rounded up
  std::uint64_t total_blocks = 0;     // payload blocks of the virtual disk
  std::uint64_t allocated_blocks = 0;
  std::uint64_t image_end_offset = 0;  // end of the last referenced object in the file
  std::uint64_t file_size = 0;

  // The exit status `vhdx check` uses: 0 clean, 1 not (fully) checked, 2 corruptions,
  // 3 only leaks.
  int exit_status() const {
    if (corruption_count != 0) return 2;
    if (!check_errors.empty()) return 1;
    if (leaked_bytes != 0) return 3;
    return 0;
  }
};

// Checks the image at path (opened read-only, with a shared lock). An Error only when the
// file cannot be read or is not a VHDX file (kNotVhdx).
Result<CheckResult> check(const std::string& path);
Result<CheckResult> check_file(std::unique_ptr<File> file);

}  // namespace vhdx
