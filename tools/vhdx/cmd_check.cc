// vhdx check [-f vhdx] [--output=human|json] IMAGE
//
// Exit status (qemu-img check's): 0 no problems, 1 the check could not be done (or not
// completely), 2 corruptions found, 3 only leaked space found. A dirty log is replayed in memory
// and the replayed image checked; the output ends with the log's state (and as "log" in JSON).
// Warnings (one torn header beside a valid one) are shown but do not change the status.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "vhdx/check.h"

namespace vhdx::cli {
namespace {

struct CheckOptions {
  std::string image;
  std::string output = "human";
  std::string format;
};

std::string log_to_human(const CheckLog& log) {
  if (log.state == LogState::kEmpty) return "Log: empty, nothing to replay\n";
  if (!log.replayed)
    return fmt::format("Log: needs replay (log GUID {}); it cannot be replayed\n",
                       log.guid.to_string());
  std::string sequence = log.entries == 0 ? "no entries under log GUID " + log.guid.to_string()
                                          : fmt::format("{} {}, sequence {}..{}", log.entries,
                                                        log.entries == 1 ? "entry" : "entries",
                                                        log.first_sequence, log.last_sequence);
  if (log.entries == 0) return fmt::format("Log: needs replay: {}, nothing to replay\n", sequence);
  return fmt::format(
      "Log: needs replay: {}, replayed in memory (the file is unchanged); the replayed image was "
      "checked\n",
      sequence);
}

std::string check_to_human(const CheckResult& r) {
  std::string out;
  for (const std::string& m : r.corruptions) out += fmt::format("ERROR: {}\n", m);
  for (const std::string& m : r.warnings) out += fmt::format("Warning: {}\n", m);
  if (r.corruption_count > r.corruptions.size())
    out += fmt::format("... and {} more\n", r.corruption_count - r.corruptions.size());
  for (const std::string& m : r.check_errors) out += fmt::format("ERROR: could not check: {}\n", m);
  if (r.corruption_count == 0 && r.check_errors.empty() && r.leaked_bytes == 0)
    out += "No errors were found on the image.\n";
  if (r.corruption_count != 0)
    out += fmt::format(
        "\n{} errors were found on the image.\n"
        "Data may be corrupted, or further writes to the image may corrupt it.\n",
        r.corruption_count);
  if (r.leaked_bytes != 0)
    out += fmt::format(
        "\n{} leaked clusters were found on the image ({} bytes past the end of the image).\n"
        "This means waste of disk space, but no harm to data.\n",
        r.leaked_clusters, r.leaked_bytes);
  if (!r.check_errors.empty())
    out += fmt::format("\n{} internal errors have occurred during the check.\n",
                       r.check_errors.size());
  if (r.total_blocks != 0) {
    out += fmt::format(
        "{}/{} = {:.2f}% allocated, 0.00% fragmented, 0.00% compressed clusters\n",
        r.allocated_blocks, r.total_blocks,
        100.0 * static_cast<double>(r.allocated_blocks) / static_cast<double>(r.total_blocks));
  }
  if (r.image_end_offset != 0) out += fmt::format("Image end offset: {}\n", r.image_end_offset);
  if (r.log) out += log_to_human(*r.log);
  return out;
}

nlohmann::ordered_json log_to_json(const CheckLog& log) {
  nlohmann::ordered_json j;
  j["state"] = log.state == LogState::kNeedsReplay ? "needs-replay" : "empty";
  j["guid"] = log.guid.to_string();
  j["offset"] = log.offset;
  j["length"] = log.length;
  j["entries"] = log.entries;
  if (log.entries != 0) {
    j["sequence-first"] = log.first_sequence;
    j["sequence-last"] = log.last_sequence;
  }
  j["replayed"] = log.replayed;
  if (!log.replay_error.empty()) j["replay-error"] = log.replay_error;
  return j;
}

nlohmann::ordered_json check_to_json(const std::string& path, const CheckResult& r) {
  nlohmann::ordered_json j;
  j["image-end-offset"] = r.image_end_offset;
  j["total-clusters"] = r.total_blocks;
  j["check-errors"] = r.check_errors.size();
  j["allocated-clusters"] = r.allocated_blocks;
  j["filename"] = path;
  j["format"] = "vhdx";
  j["fragmented-clusters"] = 0;
  j["compressed-clusters"] = 0;
  j["corruptions"] = r.corruption_count;
  j["leaks"] = r.leaked_clusters;
  j["leaked-bytes"] = r.leaked_bytes;
  j["file-size"] = r.file_size;
  j["corruption-list"] = r.corruptions;
  j["check-error-list"] = r.check_errors;
  j["warning-list"] = r.warnings;
  j["log"] = r.log ? log_to_json(*r.log) : nlohmann::ordered_json(nullptr);
  return j;
}

int run_check(const CheckOptions& options) {
  if (auto r = check_source_format(options.format); !r) return report_error(r.error());
  auto result = vhdx::check(options.image);
  if (!result) return report_error(result.error());
  if (options.output == "json") {
    std::cout << check_to_json(options.image, *result)
                     .dump(4, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
              << std::endl;
  } else {
    std::cout << check_to_human(*result) << std::flush;
  }
  return result->exit_status();
}

}  // namespace

void add_check_command(CLI::App& app, int& status) {
  auto options = std::make_shared<CheckOptions>();
  CLI::App* sub = app.add_subcommand(
      "check", "Check the image's structures for corruption and leaked space (read-only).");
  sub->add_option("IMAGE", options->image, "VHDX image file")->required();
  sub->add_option("--output", options->output, "output format: human (default) or json")
      ->check(output_format_validator());
  sub->add_option("-f", options->format, "source format (only vhdx)");
  sub->footer(
      "Exit status: 0 no problems, 1 the image could not be (fully) checked, 2 corruptions\n"
      "found, 3 only leaked space found (file space past everything the image uses).\n"
      "A log that needs replay is replayed in memory (the file is not changed) and the replayed\n"
      "image is checked; a log that cannot be replayed is a corruption.");
  sub->callback([options, &status] { status = run_check(*options); });
}

}  // namespace vhdx::cli
