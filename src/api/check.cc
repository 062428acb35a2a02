#include "vhdx/check.h"

#include "io/posix_file.h"
#include "ops/check.h"

namespace vhdx {

Result<CheckResult> check_file(std::unique_ptr<File> file) {
  VHDX_ASSIGN_OR_RETURN(ops::CheckReport report, ops::check_image(std::move(file)));
  CheckResult r;
  r.corruptions = std::move(report.corruptions);
  r.corruption_count = report.corruption_count;
  r.check_errors = std::move(report.check_errors);
  r.warnings = std::move(report.warnings);
  if (report.log.known) r.log.emplace(std::move(static_cast<CheckLog&>(report.log)));
  r.leaked_bytes = report.leaked_bytes;
  r.leaked_clusters = report.leaked_clusters;
  r.total_blocks = report.total_blocks;
  r.allocated_blocks = report.allocated_blocks;
  r.image_end_offset = report.image_end_offset;
  r.file_size = report.file_size;
  return r;
}

Result<CheckResult> check(const std::string& path) {
  VHDX_ASSIGN_OR_RETURN(std::unique_ptr<File> file, open_posix_file(path, PosixOpenOptions{}));
  auto result = check_file(std::move(file));
  if (!result) return std::move(result).error().with_context("'" + path + "'");
  return result;
}

}  // namespace vhdx
