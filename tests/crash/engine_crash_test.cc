// Crash consistency of image::Engine: seeded random workloads crashed at every write boundary
// (short scripts) or at sampled ones (long scripts). Each test asserts its own share of crash
// points; the shares add up to the suite's total in docs/crash-testing.md.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "crash/crash_harness.h"

namespace vhdx::crash {
namespace {

constexpr std::uint64_t kMiB = 1 << 20;

struct Config {
  WorkloadSpec spec;
  CrashPlan plan;
};

// A 1 MiB log, so that the workloads wrap it.
ops::CreateParams small_log_params(DiskType type, std::uint64_t virtual_size,
                                   std::uint32_t block_size, std::uint32_t sector) {
  ops::CreateParams p = params(type, virtual_size, block_size, sector);
  p.log_size = 1 * kMiB;
  return p;
}

// Records and crashes every config; returns the crash points checked.
std::uint64_t run_configs(const std::string& test, const std::vector<Config>& configs,
                          std::uint64_t* log_wraps = nullptr) {
  const auto start = std::chrono::steady_clock::now();
  QemuChecker qemu;
  if (qemu.missing_is_failure()) ADD_FAILURE() << "qemu-img is missing and CI=true";
  std::uint64_t images = 0, positions = 0, failures = 0, qemu_checked = 0, wraps = 0, replayed = 0;
  for (const Config& c : configs) {
    WorkloadSpec spec = c.spec;
    spec.steps *= scale();
    auto rec = record_workload(spec);
    if (!rec) {
      ADD_FAILURE() << spec.name << " seed " << spec.seed
                    << ": the workload itself failed: " << rec.error().to_string();
      continue;
    }
    CrashPlan plan = c.plan;
    plan.stride = std::max<std::uint64_t>(1, plan.stride / scale());
    const CrashRun run = crash_workload(*rec, plan, &qemu, spec.seed * 7919 + 1);
    std::printf(
        "[crash] %s/%s seed %llu: %zu steps, %llu file ops, crash positions %llu, "
        "crash points %llu (log replayed %llu), log wraps %llu, qemu-img checks %llu, file %llu "
        "MiB, "
        "failures %llu\n",
        test.c_str(), spec.name.c_str(), static_cast<unsigned long long>(spec.seed),
        rec->steps.size(), static_cast<unsigned long long>(run.mutations),
        static_cast<unsigned long long>(run.positions), static_cast<unsigned long long>(run.images),
        static_cast<unsigned long long>(run.replayed),
        static_cast<unsigned long long>(run.log_wraps),
        static_cast<unsigned long long>(run.qemu_checked),
        static_cast<unsigned long long>(rec->file->bytes().size() >> 20),
        static_cast<unsigned long long>(run.failures));
    for (const auto& m : run.messages)
      ADD_FAILURE() << spec.name << " seed " << spec.seed << ": " << m;
    images += run.images;
    replayed += run.replayed;
    positions += run.positions;
    failures += run.failures;
    qemu_checked += run.qemu_checked;
    wraps += run.log_wraps;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "[crash] %s: crash points: %llu (positions %llu, log replayed %llu, qemu-img checks %llu), "
      "failures: %llu, %.1f s\n",
      test.c_str(), static_cast<unsigned long long>(images),
      static_cast<unsigned long long>(positions), static_cast<unsigned long long>(replayed),
      static_cast<unsigned long long>(qemu_checked), static_cast<unsigned long long>(failures),
      seconds);
  EXPECT_EQ(failures, 0u);
  if (log_wraps) *log_wraps = wraps;
  return images;
}

std::vector<Config> general(const std::string& name, const ops::CreateParams& p,
                            std::vector<std::uint64_t> seeds, std::size_t steps,
                            std::uint64_t stride, std::uint64_t qemu_every) {
  std::vector<Config> out;
  for (std::uint64_t seed : seeds)
    out.push_back({{name, p, Mix::kGeneral, seed, steps}, {stride, 1, qemu_every}});
  return out;
}

std::vector<std::uint64_t> seeds(std::uint64_t first, std::uint64_t count) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t i = 0; i < count; ++i) out.push_back(first + i);
  return out;
}

std::vector<Config> join(std::vector<Config> a, const std::vector<Config>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Short scripts crash at every write boundary, two crash images (different fates of the
// pending writes) per boundary.

// 512-byte sectors, 1 MiB blocks, a partial last block.
TEST(EngineCrash, DynamicSmallBlocksEveryWriteBoundary) {
  const auto p = small_log_params(DiskType::kDynamic, 5 * kMiB + 3 * 512, 1 * kMiB, 512);
  auto configs = general("dyn-1M-512", p, seeds(1, 10), 60, 1, 20);
  for (auto& c : configs) c.plan.images_per_position = 2;
  EXPECT_GE(run_configs("DynamicSmallBlocks", configs), 2400u);
}

// 4096-byte logical sectors, 2 MiB blocks.
TEST(EngineCrash, Dynamic4KSectorsEveryWriteBoundary) {
  const auto p = small_log_params(DiskType::kDynamic, 6 * kMiB + 8192, 2 * kMiB, 4096);
  auto configs = general("dyn-2M-4K", p, seeds(101, 8), 60, 1, 20);
  for (auto& c : configs) c.plan.images_per_position = 2;
  EXPECT_GE(run_configs("Dynamic4KSectors", configs), 1800u);
}

// Fixed images (data in place, discards zero-fill) with both sector sizes.
TEST(EngineCrash, FixedImagesEveryWriteBoundary) {
  auto configs = join(
      general("fixed-1M-512", small_log_params(DiskType::kFixed, 4 * kMiB + 512, 1 * kMiB, 512),
              seeds(201, 5), 60, 1, 15),
      general("fixed-4M-4K", small_log_params(DiskType::kFixed, 6 * kMiB, 4 * kMiB, 4096),
              seeds(211, 5), 60, 1, 15));
  for (auto& c : configs) c.plan.images_per_position = 2;
  EXPECT_GE(run_configs("FixedImages", configs), 2200u);
}

// Large blocks (8 and 32 MiB) over small disks: partial blocks, sparse growth by truncate.
TEST(EngineCrash, LargeBlocksEveryWriteBoundary) {
  auto configs =
      join(general("dyn-32M-512", small_log_params(DiskType::kDynamic, 6 * kMiB, 32 * kMiB, 512),
                   {301, 302}, 50, 1, 20),
           general("dyn-8M-4K", small_log_params(DiskType::kDynamic, 10 * kMiB, 8 * kMiB, 4096),
                   seeds(311, 4), 50, 1, 20));
  for (auto& c : configs) c.plan.images_per_position = 2;
  EXPECT_GE(run_configs("LargeBlocks", configs), 1000u);
}

// Long scripts: about one write boundary in three.
TEST(EngineCrash, LongScriptsSampled) {
  auto configs = join(
      general("dyn-1M-512-long", small_log_params(DiskType::kDynamic, 8 * kMiB, 1 * kMiB, 512),
              {401, 402}, 400, 3, 8),
      general("dyn-4M-4K-long", small_log_params(DiskType::kDynamic, 12 * kMiB, 4 * kMiB, 4096),
              {411}, 400, 3, 8));
  for (auto& c : configs) c.spec.max_write = 1 << 20;
  EXPECT_GE(run_configs("LongScripts", configs), 700u);
}

// One BAT change per flush: the 1 MiB log wraps around several times; about one write
// boundary in three, so crashes land on entries written across the ring's end and on the
// empty entries that reclaim ring space.
TEST(EngineCrash, LogWrapsAroundSampled) {
  std::vector<Config> configs;
  for (std::uint64_t seed : {501, 502})
    configs.push_back(
        {{"dyn-1M-512-logwrap", small_log_params(DiskType::kDynamic, 8 * kMiB, 1 * kMiB, 512),
          Mix::kLogWrap, seed, 1000},
         {3, 1, 10}});
  configs.push_back(
      {{"dyn-1M-4K-logwrap", small_log_params(DiskType::kDynamic, 8 * kMiB, 1 * kMiB, 4096),
        Mix::kLogWrap, 511, 1000},
       {3, 1, 10}});
  std::uint64_t wraps = 0;
  const auto n = run_configs("LogWrap", configs, &wraps);
  EXPECT_GE(wraps, 3u * configs.size()) << "the log did not wrap around often enough";
  EXPECT_GE(n, 1600u);
}

}  // namespace
}  // namespace vhdx::crash
