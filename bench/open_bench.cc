// Open time and peak memory of vhdx::Image::open on one image (bench/run.sh uses a 64 TiB
// dynamic image, whose BAT alone is 512 MiB: open must not load it whole).
//
//   vhdx_open_bench IMAGE [RUNS]
//
// Each run opens the image in a fresh child process, so that ru_maxrss is that open's peak.
// Prints the runs and then machine-readable lines:
//   RESULT open_ms <best open time>            RESULT open_rss_kib <largest peak RSS>
//   RESULT base_rss_kib <peak RSS of a child that does not open>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "vhdx/image.h"

namespace {

struct Sample {
  double open_ms = 0;
  long rss_kib = 0;
  int ok = 0;
};

// Runs one measurement in a child; `do_open` false measures the baseline.
bool measure(const std::string& path, bool do_open, Sample* out) {
  int fds[2];
  if (::pipe(fds) != 0) return false;
  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    ::close(fds[0]);
    Sample s;
    if (do_open) {
      const auto t0 = std::chrono::steady_clock::now();
      auto image = vhdx::Image::open(path, vhdx::OpenOptions{});
      const auto t1 = std::chrono::steady_clock::now();
      s.open_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
      s.ok = image ? 1 : 0;
      if (!image)
        std::fprintf(stderr, "open %s: %s\n", path.c_str(), image.error().to_string().c_str());
    } else {
      s.ok = 1;
    }
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    s.rss_kib = ru.ru_maxrss;
    const bool written = ::write(fds[1], &s, sizeof s) == static_cast<ssize_t>(sizeof s);
    ::_exit(written ? 0 : 1);
  }
  ::close(fds[1]);
  const bool got = ::read(fds[0], out, sizeof *out) == static_cast<ssize_t>(sizeof *out);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return got && WIFEXITED(status) && WEXITSTATUS(status) == 0 && out->ok == 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s IMAGE [RUNS]\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1];
  const int runs = argc == 3 ? std::atoi(argv[2]) : 10;
  if (runs <= 0) return 2;

  Sample base;
  if (!measure(path, false, &base)) return 1;
  double best_ms = 1e300;
  long peak_kib = 0;
  for (int i = 0; i < runs; ++i) {
    Sample s;
    if (!measure(path, true, &s)) {
      std::fprintf(stderr, "run %d failed\n", i);
      return 1;
    }
    std::printf("run %d: open %.3f ms, peak RSS %ld KiB\n", i, s.open_ms, s.rss_kib);
    best_ms = s.open_ms < best_ms ? s.open_ms : best_ms;
    peak_kib = s.rss_kib > peak_kib ? s.rss_kib : peak_kib;
  }
  std::printf("RESULT open_ms %.3f\nRESULT open_rss_kib %ld\nRESULT base_rss_kib %ld\n", best_ms,
              peak_kib, base.rss_kib);
  return 0;
}
