// Fuzz target: ops::check_image on an image described by the fuzzer's bytes (in memory,
// read-only, in the compact slot form of fuzz_util.h, as open_read_fuzz).
// Any input must end in a report or a clean error, never a crash, a hang or an unbounded
// allocation; the report must be self-consistent.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "fuzz_util.h"
#include "ops/check.h"

using namespace vhdx;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto report = ops::check_image(std::make_unique<fuzz::SlotImageFile>(data, size));
  if (!report) return 0;
  if (report->corruptions.size() > ops::CheckReport::kMaxMessages ||
      report->corruption_count < report->corruptions.size())
    fuzz::fail("check report: " + std::to_string(report->corruptions.size()) +
               " messages for a count of " + std::to_string(report->corruption_count));
  if (report->allocated_blocks > report->total_blocks)
    fuzz::fail("check report: more allocated blocks than blocks");
  return 0;
}
