// Crash consistency of create and convert (raw -> VHDX): after a crash at any write, the file
// either is refused with a clear kNotVhdx / kCorrupt error or opens as the complete image (an
// empty disk for create, the raw file's contents for convert), clean by check_image.
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

struct Tally {
  std::uint64_t positions = 0;
  std::uint64_t images = 0;
  std::uint64_t refused = 0;
  std::uint64_t complete = 0;
  std::uint64_t one_header = 0;  // complete, one header slot never written
  std::uint64_t failures = 0;
  std::uint64_t qemu_checked = 0;
};

// Crashes every mutating operation of `trace` (recorded from an empty file) and checks each
// image against `expected` (the whole virtual disk of the finished image).
void crash_trace(const std::string& name, const std::vector<FaultOp>& trace,
                 const ops::CreateParams& p, const std::vector<std::uint8_t>& expected,
                 std::uint64_t images_per_position, QemuChecker& qemu, Tally& tally) {
  static constexpr CrashPolicy kPolicies[] = {CrashPolicy::kRandom, CrashPolicy::kTorn,
                                              CrashPolicy::kApplyAll, CrashPolicy::kDropAll};
  CrashImageBuilder builder({}, trace);
  std::mt19937_64 rng(trace.size());
  for (std::size_t j = 0; j < trace.size(); ++j) {
    if (trace[j].kind == FaultOp::Kind::kFlush) continue;
    builder.advance(j + 1);
    ++tally.positions;
    for (std::uint64_t k = 0; k < images_per_position; ++k) {
      const auto image = builder.build_overlay(kPolicies[k % 4], rng());
      ++tally.images;
      const bool with_qemu = tally.images % 2 == 0;
      const std::uint64_t qemu_before = qemu.checked();
      const auto verdict = verify_new_image(*image, p, expected, with_qemu ? &qemu : nullptr);
      tally.qemu_checked += qemu.checked() - qemu_before;
      if (verdict.outcome == NewImageVerdict::kRefused) {
        ++tally.refused;
        continue;
      }
      if (verdict.outcome == NewImageVerdict::kComplete) {
        ++tally.complete;
        if (verdict.one_header) ++tally.one_header;
        continue;
      }
      ++tally.failures;
      ADD_FAILURE() << name << ": crash after trace op " << j + 1 << ", image " << k << ": "
                    << verdict.detail;
    }
  }
}

void print(const std::string& test, const Tally& t, double seconds) {
  std::printf(
      "[crash] %s: crash points: %llu (positions %llu; refused %llu, complete %llu of which %llu "
      "with one header slot unwritten; qemu-img checks %llu), failures: %llu, %.1f s\n",
      test.c_str(), static_cast<unsigned long long>(t.images),
      static_cast<unsigned long long>(t.positions), static_cast<unsigned long long>(t.refused),
      static_cast<unsigned long long>(t.complete), static_cast<unsigned long long>(t.one_header),
      static_cast<unsigned long long>(t.qemu_checked), static_cast<unsigned long long>(t.failures),
      seconds);
}

double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(CreateCrash, EveryWriteOfCreate) {
  const auto start = std::chrono::steady_clock::now();
  QemuChecker qemu;
  if (qemu.missing_is_failure()) ADD_FAILURE() << "qemu-img is missing and CI=true";
  Tally tally;
  const std::vector<std::pair<std::string, ops::CreateParams>> configs = {
      {"dynamic-1M-512", params(DiskType::kDynamic, 5 * kMiB + 512, 1 * kMiB, 512)},
      {"dynamic-32M-4K", params(DiskType::kDynamic, 40 * kMiB, 32 * kMiB, 4096)},
      {"fixed-1M-512", params(DiskType::kFixed, 3 * kMiB, 1 * kMiB, 512)},
      {"fixed-2M-4K", params(DiskType::kFixed, 5 * kMiB, 2 * kMiB, 4096)},
  };
  for (const auto& [name, p] : configs) {
    FaultFile file;
    file.record_trace();
    auto writer = ops::VhdxWriter::create(std::make_unique<BorrowedFile>(file), p);
    ASSERT_TRUE(writer) << writer.error().to_string();
    ASSERT_TRUE((*writer)->finish());
    const std::vector<std::uint8_t> zeros(p.virtual_size, 0);
    crash_trace(name, file.trace(), p, zeros, 40 * scale(), qemu, tally);
  }
  print("CreateCrash", tally, since(start));
  EXPECT_EQ(tally.failures, 0u);
  // Both outcomes occur: early crashes leave no valid header, late ones a complete image.
  EXPECT_GT(tally.refused, 0u);
  EXPECT_GT(tally.complete, 0u);
  EXPECT_GE(tally.images, 1400u);
}

TEST(CreateCrash, EveryWriteOfConvertFromRaw) {
  const auto start = std::chrono::steady_clock::now();
  QemuChecker qemu;
  if (qemu.missing_is_failure()) ADD_FAILURE() << "qemu-img is missing and CI=true";
  Tally tally;
  // A raw disk of 6 MiB + 1000 bytes: data, an all-zero block and a hole, a partial tail.
  const std::string dir = testing::make_temp_dir();
  const std::string raw_path = dir + "/disk.raw";
  const std::uint64_t raw_size = 6 * kMiB + 1000;
  std::vector<std::uint8_t> raw = pattern(77, 0, raw_size);
  std::fill_n(raw.begin() + 2 * kMiB, 1 * kMiB, 0);
  std::fill_n(raw.begin() + 4 * kMiB + 4096, 300 * 1024, 0);
  {
    std::ofstream out(raw_path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(raw.data()), static_cast<std::streamsize>(raw.size()));
    ASSERT_TRUE(out.good());
  }
  const std::vector<std::pair<std::string, ops::CreateParams>> configs = {
      {"convert-dynamic-1M-512", params(DiskType::kDynamic, 0, 1 * kMiB, 512)},
      {"convert-dynamic-2M-4K", params(DiskType::kDynamic, 0, 2 * kMiB, 4096)},
      {"convert-fixed-1M-512", params(DiskType::kFixed, 0, 1 * kMiB, 512)},
  };
  for (const auto& [name, p] : configs) {
    FaultFile file;
    file.record_trace();
    auto r = ops::convert_raw_to_vhdx(raw_path, std::make_unique<BorrowedFile>(file), p, {});
    ASSERT_TRUE(r) << r.error().to_string();
    ops::CreateParams done = p;
    const std::uint64_t sector = p.logical_sector_size;
    done.virtual_size = (raw_size + sector - 1) / sector * sector;
    std::vector<std::uint8_t> expected = raw;
    expected.resize(done.virtual_size, 0);
    crash_trace(name, file.trace(), done, expected, 12 * scale(), qemu, tally);
  }
  print("ConvertCrash", tally, since(start));
  EXPECT_EQ(tally.failures, 0u);
  EXPECT_GT(tally.refused, 0u);
  EXPECT_GT(tally.complete, 0u);
  EXPECT_GE(tally.images, 500u);
}

}  // namespace
}  // namespace vhdx::crash
