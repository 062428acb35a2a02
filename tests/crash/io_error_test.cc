// I/O errors at every call site: for each file call a workload makes (write_at, truncate,
// punch_hole, flush, in order), a run where exactly that call fails with EIO (transient), fails
// from then on (persistent), or fails with ENOSPC. The failing engine call must return kIo or
// kNoSpace naming the injected fault, later calls kFailed (the sticky failed state); the file
// as it stands, and a crash image of it, must reopen consistent with every flushed write.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "crash/crash_harness.h"
#include "ops/convert_vhdx.h"
#include "support/corpus.h"

namespace vhdx::crash {
namespace {

constexpr std::uint64_t kMiB = 1 << 20;

using Mode = FaultFile::ErrorMode;
constexpr Mode kModes[] = {Mode::kTransient, Mode::kPersistent, Mode::kNoSpace};
const char* mode_name(Mode m) {
  return m == Mode::kTransient    ? "transient EIO"
         : m == Mode::kPersistent ? "persistent EIO"
                                  : "ENOSPC";
}

struct Stats {
  std::uint64_t error_points = 0;    // runs with one injected fault
  std::uint64_t engine_failed = 0;   // runs where an engine call reported the fault
  std::uint64_t swallowed = 0;       // runs where no call failed (a best-effort call)
  std::uint64_t images_checked = 0;  // files as they stand + crash images verified
  std::uint64_t failures = 0;
};

// The expected error of the call that met the injected fault.
std::optional<std::string> check_first_error(const Error& e, Mode mode) {
  const auto want = mode == Mode::kNoSpace ? ErrorCode::kNoSpace : ErrorCode::kIo;
  if (e.code() != want)
    return std::string("expected ") + error_code_name(want) + ", got " + e.to_string();
  if (e.message().find("injected") == std::string::npos)
    return "the message does not name the fault: " + e.to_string();
  return std::nullopt;
}

// Shadow model of a run: durable contents (as of the last successful flush or close) and,
// per 512-byte piece, the values written since (owned).
struct Shadow {
  std::vector<std::uint8_t> model;
  std::vector<std::uint8_t> durable;
  std::vector<std::vector<std::vector<std::uint8_t>>> since;

  explicit Shadow(std::uint64_t size)
      : model(size, 0), durable(size, 0), since((size + kPiece - 1) / kPiece) {}
  void note(std::uint64_t offset, std::uint64_t length) {
    if (length == 0) return;
    for (std::uint64_t p = offset / kPiece; p <= (offset + length - 1) / kPiece; ++p) {
      const std::uint64_t start = p * kPiece;
      const std::uint64_t n = std::min(kPiece, model.size() - start);
      since[p].emplace_back(model.begin() + start, model.begin() + start + n);
    }
  }
  void flushed() {
    durable = model;
    for (auto& s : since) s.clear();
  }
};

std::optional<std::string> verify_after_fault(FaultFile& file, const Shadow& shadow,
                                              std::uint64_t seed, std::uint32_t sector,
                                              QemuChecker* qemu, Stats& stats) {
  file.clear_faults();
  std::vector<std::vector<const std::vector<std::uint8_t>*>> candidates(shadow.since.size());
  for (std::size_t p = 0; p < shadow.since.size(); ++p)
    for (const auto& v : shadow.since[p]) candidates[p].push_back(&v);
  const ShadowView view{nullptr, &shadow.durable, &candidates};
  ++stats.images_checked;
  if (auto f = verify_crash_image(CopyOnWriteFile(file.bytes(), false), view, qemu, sector))
    return "the file as it stands: " + *f;
  const auto crashed = file.crash_image(CrashPolicy::kRandom, seed);
  ++stats.images_checked;
  if (auto f = verify_crash_image(CopyOnWriteFile(crashed, false), view, nullptr, sector))
    return "a crash image of it: " + *f;
  return std::nullopt;
}

// Runs `steps` with call `nth` faulted in `mode` (nth == 0: instead, the file may not grow
// past size_limit: ENOSPC from then on); returns the failure, if any.
std::optional<std::string> run_engine_with_fault(const std::vector<std::uint8_t>& initial,
                                                 const std::vector<Step>& steps,
                                                 const ops::CreateParams& p, std::uint64_t nth,
                                                 Mode mode, QemuChecker* qemu, Stats& stats,
                                                 std::uint64_t size_limit = 0) {
  FaultFile file(initial);
  if (nth != 0)
    file.inject_error(FaultFile::Call::kAny, nth, mode);
  else
    file.set_size_limit(size_limit);
  auto open = [&] {
    return image::Engine::open(std::make_unique<BorrowedFile>(file), {.read_only = false});
  };
  auto opened = open();
  if (!opened) return "open failed: " + opened.error().to_string();
  auto engine = std::move(*opened);
  Shadow shadow(p.virtual_size);
  std::optional<Error> first;
  for (std::size_t i = 0; i < steps.size() && !first; ++i) {
    const Step& s = steps[i];
    Result<void> r = ok();
    switch (s.kind) {
      case Step::Kind::kWrite: {
        const auto data = pattern(s.seed, s.offset, s.length);
        r = engine->write(s.offset, data);
        std::copy(data.begin(), data.end(), shadow.model.begin() + s.offset);
        shadow.note(s.offset, s.length);
        break;
      }
      case Step::Kind::kDiscard:
        r = engine->discard(s.offset, s.length, s.unmap);
        std::fill_n(shadow.model.begin() + s.offset, s.length, 0);
        shadow.note(s.offset, s.length);
        break;
      case Step::Kind::kFlush:
        r = engine->flush();
        if (r) shadow.flushed();
        break;
      case Step::Kind::kReopen:
        r = engine->close();
        if (r) {
          shadow.flushed();
          if (i + 1 < steps.size()) {
            auto again = open();
            if (!again) return "reopen failed: " + again.error().to_string();
            engine = std::move(*again);
          }
        }
        break;
    }
    if (!r) {
      if (auto bad = check_first_error(r.error(), mode))
        return "step " + std::to_string(i) + " (" + s.describe() + "): " + *bad;
      first = r.error();
    }
  }
  if (first) {
    ++stats.engine_failed;
    // The sticky failed state.
    const std::vector<std::uint8_t> sector_bytes(p.logical_sector_size, 0x5A);
    auto w = engine->write(0, sector_bytes);
    auto f = engine->flush();
    if (w || w.error().code() != ErrorCode::kFailed || f || f.error().code() != ErrorCode::kFailed)
      return "after the failure, later calls did not fail with kFailed";
    if (w.error().message().find("injected") == std::string::npos)
      return "the failed state does not name its cause: " + w.error().to_string();
  } else {
    ++stats.swallowed;
    if (file.injected_errors() == 0 && nth != 0) return "the fault was never reached";
    // Every call succeeded despite the fault: the result must be exactly the workload's.
    if (shadow.durable != shadow.model) return "no call failed, yet the data is not durable";
  }
  engine.reset();
  return verify_after_fault(file, shadow, nth * 31 + static_cast<int>(mode), p.logical_sector_size,
                            qemu, stats);
}

void run_engine_matrix(const std::string& name, const ops::CreateParams& p, std::uint64_t seed,
                       std::size_t steps_count, std::uint64_t min_points) {
  const auto start = std::chrono::steady_clock::now();
  QemuChecker qemu;
  if (qemu.missing_is_failure()) ADD_FAILURE() << "qemu-img is missing and CI=true";
  WorkloadSpec spec{name, p, Mix::kGeneral, seed, steps_count * scale()};
  auto steps = make_script(spec);
  steps.push_back(Step{Step::Kind::kReopen});  // the final close
  const auto initial = make_image(p);
  ASSERT_FALSE(initial.empty());
  // A clean run counts the calls.
  std::uint64_t calls = 0;
  {
    auto rec = record_workload(spec);
    ASSERT_TRUE(rec) << rec.error().to_string();
    calls = rec->file->calls(FaultFile::Call::kAny);
  }
  ASSERT_GT(calls, 20u);
  Stats stats;
  for (std::uint64_t nth = 1; nth <= calls; ++nth) {
    for (Mode mode : kModes) {
      ++stats.error_points;
      QemuChecker* q = nth % 10 == 0 && mode == Mode::kTransient ? &qemu : nullptr;
      auto failure = run_engine_with_fault(initial, steps, p, nth, mode, q, stats);
      if (failure) {
        ++stats.failures;
        if (stats.failures <= 5)
          ADD_FAILURE() << name << " seed " << seed << ": call " << nth << " of " << calls
                        << " fails with " << mode_name(mode) << ": " << *failure;
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "[crash] IoErrors/%s: error points: %llu (%llu file calls x 3 faults; engine "
      "reported %llu, swallowed %llu; images checked %llu; qemu-img checks %llu), "
      "failures: %llu, %.1f s\n",
      name.c_str(), static_cast<unsigned long long>(stats.error_points),
      static_cast<unsigned long long>(calls), static_cast<unsigned long long>(stats.engine_failed),
      static_cast<unsigned long long>(stats.swallowed),
      static_cast<unsigned long long>(stats.images_checked),
      static_cast<unsigned long long>(qemu.checked()),
      static_cast<unsigned long long>(stats.failures), seconds);
  EXPECT_EQ(stats.failures, 0u);
  EXPECT_GE(stats.error_points, min_points);
}

TEST(IoErrors, EngineDynamic512EveryCallSite) {
  run_engine_matrix("dyn-1M-512", params(DiskType::kDynamic, 4 * kMiB + 512, 1 * kMiB, 512), 7, 30,
                    150);
}

TEST(IoErrors, EngineDynamic4KEveryCallSite) {
  run_engine_matrix("dyn-2M-4K", params(DiskType::kDynamic, 6 * kMiB, 2 * kMiB, 4096), 8, 30, 150);
}

TEST(IoErrors, EngineFixedEveryCallSite) {
  run_engine_matrix("fixed-1M-512", params(DiskType::kFixed, 3 * kMiB, 1 * kMiB, 512), 9, 30, 100);
}

// A full disk: the file may not grow past a limit, from the image's initial size up to past
// its final size in 1 MiB steps; every growth after the limit fails with ENOSPC.
TEST(IoErrors, EngineFileSizeLimits) {
  const auto start = std::chrono::steady_clock::now();
  QemuChecker qemu;
  Stats stats;
  std::uint64_t reached = 0;
  for (const auto& p : {params(DiskType::kDynamic, 6 * kMiB, 1 * kMiB, 512),
                        params(DiskType::kDynamic, 8 * kMiB, 2 * kMiB, 4096)}) {
    WorkloadSpec spec{"limit", p, Mix::kGeneral, 17, 40 * scale()};
    auto steps = make_script(spec);
    steps.push_back(Step{Step::Kind::kReopen});
    const auto initial = make_image(p);
    ASSERT_FALSE(initial.empty());
    auto rec = record_workload(spec);
    ASSERT_TRUE(rec) << rec.error().to_string();
    const std::uint64_t final_size = rec->file->bytes().size();
    for (std::uint64_t limit = initial.size(); limit <= final_size + kMiB; limit += kMiB) {
      ++stats.error_points;
      const std::uint64_t failed_before = stats.engine_failed;
      auto failure =
          run_engine_with_fault(initial, steps, p, 0, Mode::kNoSpace, &qemu, stats, limit);
      if (stats.engine_failed > failed_before) ++reached;
      if (failure) {
        ++stats.failures;
        ADD_FAILURE() << "limit " << limit << " bytes (" << p.logical_sector_size
                      << "-byte sectors): " << *failure;
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "[crash] IoErrors/size-limits: error points: %llu (ENOSPC reached in %llu; images "
      "checked %llu), failures: %llu, %.1f s\n",
      static_cast<unsigned long long>(stats.error_points), static_cast<unsigned long long>(reached),
      static_cast<unsigned long long>(stats.images_checked),
      static_cast<unsigned long long>(stats.failures), seconds);
  EXPECT_EQ(stats.failures, 0u);
  EXPECT_GT(reached, 3u);
}

// Create and convert: the failing call returns kIo / kNoSpace naming the fault; the file is
// then refused (kNotVhdx / kCorrupt) or a complete image, as it stands and after a crash.
TEST(IoErrors, CreateAndConvertEveryCallSite) {
  const auto start = std::chrono::steady_clock::now();
  QemuChecker qemu;
  const std::string dir = testing::make_temp_dir();
  const std::string raw_path = dir + "/disk.raw";
  const std::uint64_t raw_size = 3 * kMiB + 512;
  const auto raw = pattern(5, 0, raw_size);
  {
    std::ofstream out(raw_path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(raw.data()), static_cast<std::streamsize>(raw.size()));
    ASSERT_TRUE(out.good());
  }
  struct Job {
    std::string name;
    ops::CreateParams params;
    bool convert;
  };
  const std::vector<Job> jobs = {
      {"create-dynamic", params(DiskType::kDynamic, 5 * kMiB, 1 * kMiB, 512), false},
      {"create-fixed", params(DiskType::kFixed, 3 * kMiB, 1 * kMiB, 4096), false},
      {"convert-dynamic", params(DiskType::kDynamic, raw_size, 1 * kMiB, 512), true},
  };
  std::uint64_t points = 0, failures = 0, refused = 0, complete = 0;
  for (const Job& job : jobs) {
    auto run = [&](FaultFile& file) -> Result<void> {
      if (job.convert)
        return ops::convert_raw_to_vhdx(raw_path, std::make_unique<BorrowedFile>(file), job.params,
                                        {});
      VHDX_ASSIGN_OR_RETURN(
          auto writer, ops::VhdxWriter::create(std::make_unique<BorrowedFile>(file), job.params));
      return writer->finish();
    };
    std::vector<std::uint8_t> expected(job.params.virtual_size, 0);
    if (job.convert) std::copy(raw.begin(), raw.end(), expected.begin());
    std::uint64_t calls = 0;
    {
      FaultFile clean;
      ASSERT_TRUE(run(clean));
      calls = clean.calls(FaultFile::Call::kAny);
    }
    for (std::uint64_t nth = 1; nth <= calls; ++nth) {
      for (Mode mode : kModes) {
        ++points;
        FaultFile file;
        file.inject_error(FaultFile::Call::kAny, nth, mode);
        auto r = run(file);
        std::string failure;
        if (r) {
          failure = "the injected fault was not reported";
        } else if (auto bad = check_first_error(r.error(), mode)) {
          failure = *bad;
        } else {
          file.clear_faults();
          const auto as_is = file.bytes();
          const auto crashed = file.crash_image(CrashPolicy::kRandom, nth);
          for (const auto* image : {&as_is, &crashed}) {
            const auto verdict =
                verify_new_image(CopyOnWriteFile(*image, false), job.params, expected, &qemu);
            if (verdict.outcome == NewImageVerdict::kFailed) failure = verdict.detail;
            if (verdict.outcome == NewImageVerdict::kRefused) ++refused;
            if (verdict.outcome == NewImageVerdict::kComplete) ++complete;
          }
        }
        if (!failure.empty()) {
          ++failures;
          ADD_FAILURE() << job.name << ": call " << nth << " of " << calls << " fails with "
                        << mode_name(mode) << ": " << failure;
        }
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "[crash] IoErrors/create+convert: error points: %llu (files refused %llu, "
      "complete %llu), failures: %llu, %.1f s\n",
      static_cast<unsigned long long>(points), static_cast<unsigned long long>(refused),
      static_cast<unsigned long long>(complete), static_cast<unsigned long long>(failures),
      seconds);
  EXPECT_EQ(failures, 0u);
  EXPECT_GE(points, 60u);
}

}  // namespace
}  // namespace vhdx::crash
