// Crash-consistency harness: seeded random workloads against image::Engine, run once on a
// recording FaultFile; crash images rebuilt offline from the trace at every (or a sampled)
// write boundary, then replayed and checked. See docs/crash-testing.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "image/engine.h"
#include "io/fault_file.h"
#include "ops/create.h"

namespace vhdx::crash {

// Piece size of the shadow model: every 512-byte piece of the virtual disk must hold its value
// as of the last flush or one of the values written to it since.
inline constexpr std::uint64_t kPiece = 512;

// VHDX_CRASH_SCALE (default 1): multiplies script lengths and sampling density for long runs.
std::uint64_t scale();

// A new empty image made by ops::VhdxWriter in memory.
std::vector<std::uint8_t> make_image(const ops::CreateParams& params);

// The whole virtual disk, or an error.
Result<std::vector<std::uint8_t>> read_disk(image::Engine& engine);

// Deterministic content for a write: depends on the write's seed and the absolute virtual
// offset of each byte, so every write (and every piece of it) is distinguishable.
std::vector<std::uint8_t> pattern(std::uint64_t seed, std::uint64_t offset, std::uint64_t length);

// `qemu-img check` on a sample of images. Without qemu-img the check is skipped, unless
// CI=true, where that is a failure (reported by missing_is_failure()).
class QemuChecker {
 public:
  QemuChecker();
  bool available() const { return available_; }
  bool missing_is_failure() const { return !available_ && ci_; }
  // Empty when qemu-img accepts the image (exit 0, or 3 = leaks only, and no "ERROR" in its
  // output); otherwise what went wrong. QEMU opens only 512-byte logical sector VHDX images,
  // so images with 4096-byte sectors are not sent (and not counted).
  std::optional<std::string> check(const std::vector<std::uint8_t>& bytes,
                                   std::uint32_t logical_sector_size);
  std::uint64_t checked() const { return checked_; }

 private:
  bool available_ = false;
  bool ci_ = false;
  std::string dir_;
  std::uint64_t checked_ = 0;
};

// One engine call of a workload.
struct Step {
  enum class Kind { kWrite, kDiscard, kFlush, kReopen };
  Kind kind = Kind::kWrite;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  bool unmap = false;
  std::uint64_t seed = 0;  // content of a write
  std::string describe() const;
};

enum class Mix {
  kGeneral,  // writes of many sizes and alignments, overwrites, discards, flushes, reopens
  kLogWrap,  // one BAT change per flush, so the 1 MiB log wraps many times
};

struct WorkloadSpec {
  std::string name;
  ops::CreateParams params;
  Mix mix = Mix::kGeneral;
  std::uint64_t seed = 1;
  std::size_t steps = 40;
  // Longest write (long scripts use less: the trace keeps every write's bytes).
  std::uint64_t max_write = 3u << 20;
};

std::vector<Step> make_script(const WorkloadSpec& spec);

// A workload run once on a recording FaultFile: the trace and, per step, where it ended in the
// trace and which 512-byte pieces it changed to what.
struct Recording {
  std::vector<std::uint8_t> initial;  // the image before the first step
  std::unique_ptr<FaultFile> file;    // holds the trace
  std::vector<Step> steps;
  std::vector<std::size_t> step_end;  // trace length when step i returned
  struct Change {
    std::uint64_t piece = 0;
    // kPiece bytes (less at the end of the disk); empty for an all-zero piece (discards make
    // many, and long scripts would keep megabytes of zeros).
    std::vector<std::uint8_t> bytes;
    const std::vector<std::uint8_t>& value() const;
  };
  std::vector<std::vector<Change>> changes;  // per step
  std::vector<std::uint8_t> final_disk;      // the model after the last step
  std::uint64_t virtual_size = 0;
  std::uint32_t logical_sector_size = 0;
  std::uint64_t log_offset = 0;
  std::uint64_t log_length = 0;
};

// Runs `spec` on a fresh image; any engine error is a test failure (returned as a message).
Result<Recording> record_workload(const WorkloadSpec& spec);

// Times the log ring was wrapped (a log write starting at the ring's start right after one
// that ended at the ring's end), from the trace.
std::uint64_t count_log_wraps(const Recording& recording);

// Checks one crash image of a recorded workload: both replays agree, check_image is clean, the
// disk matches the shadow model, a second writable open finds an empty log; optionally
// qemu-img check on the replayed image. Returns the failure, if any.
struct Recording;
struct ShadowView {
  const Recording* recording = nullptr;  // for diagnostics: which step wrote a wrong value
  const std::vector<std::uint8_t>* durable = nullptr;  // disk as of the last completed flush
  // Values written since, per piece (steps after that flush, the interrupted one included).
  const std::vector<std::vector<const std::vector<std::uint8_t>*>>* candidates = nullptr;
};
// needed_replay (optional) tells whether the crash image's log needed replay.
std::optional<std::string> verify_crash_image(const CopyOnWriteFile& image,
                                              const ShadowView& shadow, QemuChecker* qemu,
                                              std::uint32_t logical_sector_size,
                                              bool* needed_replay = nullptr);

// Walks the crash positions of a recording in order, keeping the shadow model in step.
class CrashWalker {
 public:
  explicit CrashWalker(const Recording& recording);
  // Moves to trace position p (the first p operations happened, p never decreasing).
  void advance(std::size_t position);
  const CrashImageBuilder& builder() const { return builder_; }
  ShadowView shadow() const { return {&rec_, &durable_, &candidates_}; }
  // The step in progress at the current position.
  std::size_t current_step() const { return current_; }

 private:
  const Recording& rec_;
  CrashImageBuilder builder_;
  std::vector<std::uint8_t> durable_;
  std::size_t durable_steps_ = 0;  // steps applied to durable_
  std::size_t current_ = 0;
  std::vector<std::vector<const std::vector<std::uint8_t>*>> candidates_;
  std::vector<std::uint64_t> touched_;  // pieces with candidates
};

// A new image (create or convert) after a crash: refused with kNotVhdx or kCorrupt, or
// complete (opens with the right geometry, the disk reads as `expected`, check_image finds
// nothing but possibly one never-written header slot, and after writing its first and last
// sector the image reads them back and check_image and qemu-img check (when given) are clean);
// anything else is a failure.
struct NewImageVerdict {
  enum Outcome { kRefused, kComplete, kFailed } outcome = kFailed;
  std::string detail;
  bool one_header = false;  // complete, but one header slot was never written (crash between)
};
NewImageVerdict verify_new_image(const CopyOnWriteFile& image, const ops::CreateParams& params,
                                 const std::vector<std::uint8_t>& expected, QemuChecker* qemu);

// Result of crashing one workload.
struct CrashRun {
  std::uint64_t positions = 0;  // trace positions crashed at
  std::uint64_t images = 0;     // crash images checked (crash points)
  std::uint64_t replayed = 0;   // of which the log needed replay
  std::uint64_t failures = 0;
  std::uint64_t qemu_checked = 0;
  std::uint64_t log_wraps = 0;
  std::uint64_t mutations = 0;        // mutating file operations of the workload
  std::vector<std::string> messages;  // the first failures
};

struct CrashPlan {
  // Crash after every mutating operation (1) or about one in `stride`.
  std::uint64_t stride = 1;
  // Crash images per chosen position (policies rotate: random, torn, all, none).
  std::uint64_t images_per_position = 1;
  // Every n-th crash image also goes through qemu-img check (0: none).
  std::uint64_t qemu_every = 0;
};

CrashRun crash_workload(const Recording& recording, const CrashPlan& plan, QemuChecker* qemu,
                        std::uint64_t seed);

// Creation parameters for the crash and error workloads (the rest stay at their defaults).
ops::CreateParams params(DiskType type, std::uint64_t virtual_size, std::uint32_t block_size,
                         std::uint32_t sector);

}  // namespace vhdx::crash
