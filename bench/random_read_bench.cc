// Random 4 KiB reads: vhdx::Image::read on a VHDX image against pread(2) on the equivalent raw
// file, over the same offsets in the same order (fixed seed). bench/run.sh makes the files.
//
//   vhdx_random_read_bench IMAGE.vhdx IMAGE.raw [--reads=N] [benchmark flags]
//
// Each benchmark iteration is one pass over all N offsets; the pass is repeated and the best
// repetition kept. Besides Google Benchmark's table it prints machine-readable lines
//   RESULT <name> <ns per read>
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "vhdx/image.h"

namespace {

constexpr std::uint64_t kReadSize = 4096;
constexpr std::uint64_t kSeed = 0x5eed5eedULL;

struct Setup {
  std::string image_path;
  std::string raw_path;
  std::uint64_t reads = 200000;
  std::vector<std::uint64_t> offsets;
};

Setup& setup() {
  static Setup s;
  return s;
}

void fill_offsets(std::uint64_t virtual_size) {
  std::mt19937_64 rng(kSeed);
  const std::uint64_t slots = virtual_size / kReadSize;
  setup().offsets.resize(setup().reads);
  for (auto& off : setup().offsets) off = (rng() % slots) * kReadSize;
}

void bm_vhdx_image_read(benchmark::State& state) {
  auto image = vhdx::Image::open(setup().image_path, vhdx::OpenOptions{});
  if (!image) {
    state.SkipWithError(image.error().to_string().c_str());
    return;
  }
  std::vector<std::uint8_t> buf(kReadSize);
  for (auto _ : state) {
    for (std::uint64_t off : setup().offsets) {
      auto r = (*image)->read(off, buf);
      if (!r) {
        state.SkipWithError(r.error().to_string().c_str());
        return;
      }
      benchmark::DoNotOptimize(buf.data());
    }
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(setup().reads));
}

void bm_raw_pread(benchmark::State& state) {
  const int fd = ::open(setup().raw_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    state.SkipWithError(("open " + setup().raw_path + ": " + std::strerror(errno)).c_str());
    return;
  }
  std::vector<std::uint8_t> buf(kReadSize);
  for (auto _ : state) {
    for (std::uint64_t off : setup().offsets) {
      if (::pread(fd, buf.data(), kReadSize, static_cast<off_t>(off)) !=
          static_cast<ssize_t>(kReadSize)) {
        state.SkipWithError("short pread");
        break;
      }
      benchmark::DoNotOptimize(buf.data());
    }
    benchmark::ClobberMemory();
  }
  ::close(fd);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(setup().reads));
}

double min_of(const std::vector<double>& v) {
  double m = v.empty() ? 0 : v[0];
  for (double x : v) m = x < m ? x : m;
  return m;
}

// Prints the console table and, for each benchmark's "min" aggregate, a RESULT line.
class ResultReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    benchmark::ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.aggregate_name != "min" || run.error_occurred) continue;
      // Real time per iteration, in the benchmark's unit (ms), over one pass of N reads.
      const double ns_per_read =
          run.GetAdjustedRealTime() * 1e6 / static_cast<double>(setup().reads);
      results_.push_back("RESULT " + run.run_name.function_name + " " +
                         std::to_string(ns_per_read));
    }
  }
  void Finalize() override {
    for (const auto& line : results_) std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }

 private:
  std::vector<std::string> results_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--reads=", 0) == 0) {
      setup().reads = std::strtoull(arg.c_str() + 8, nullptr, 10);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2 || setup().reads == 0) {
    std::fprintf(stderr, "usage: %s IMAGE.vhdx IMAGE.raw [--reads=N] [benchmark flags]\n", argv[0]);
    return 2;
  }
  setup().image_path = positional[0];
  setup().raw_path = positional[1];
  auto image = vhdx::Image::open(setup().image_path, vhdx::OpenOptions{});
  if (!image) {
    std::fprintf(stderr, "%s: %s\n", setup().image_path.c_str(), image.error().to_string().c_str());
    return 1;
  }
  fill_offsets((*image)->virtual_size());

  for (auto* b : {benchmark::RegisterBenchmark("vhdx_image_read", bm_vhdx_image_read),
                  benchmark::RegisterBenchmark("raw_pread", bm_raw_pread)}) {
    b->Unit(benchmark::kMillisecond)
        ->Iterations(1)
        ->Repetitions(7)
        ->ReportAggregatesOnly(true)
        ->ComputeStatistics("min", min_of);
  }
  ResultReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
