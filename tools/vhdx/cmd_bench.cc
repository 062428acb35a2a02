// vhdx bench [-w] [-c COUNT] [-s BUFFER_SIZE] [-S STEP] [-o OFFSET] [-f vhdx|raw]
//            [-t none|writeback] [--flush-interval N] [--pattern P] [--random SEED] [-q] FILE
//
// qemu-img bench's request pattern, run one request at a time: COUNT reads (or writes with -w)
// of BUFFER_SIZE bytes from OFFSET on, advancing by STEP and wrapping before the end of the
// disk. --random draws buffer-aligned offsets instead. Writes end with a flush, so the time
// covers making them durable. -f raw runs the same pattern on a plain file with
// pread/pwrite/fdatasync: the baseline a VHDX image is measured against.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>

#include "commands.h"
#include "parse.h"
#include "vhdx/image.h"

namespace vhdx::cli {
namespace {

// qemu-img bench's defaults and bounds.
constexpr std::uint64_t kDefaultCount = 75000;
constexpr std::uint64_t kMaxBufferSize = 0x7FFFFFFF;  // qemu-img's INT_MAX
// O_DIRECT wants buffers and transfers aligned to the device's block; 4 KiB covers all.
constexpr std::size_t kDirectAlignment = 4096;

struct BenchOptions {
  std::string file;
  std::string format = "vhdx";
  std::string count;
  std::string buffer_size = "4096";
  std::string step;
  std::string offset = "0";
  std::string cache = "writeback";
  std::string flush_interval;
  std::string pattern;
  std::string random_seed;
  std::string output = "human";
  bool write = false;
  bool quiet = false;
  bool force_share = false;
};

// The checked values of the options.
struct BenchPlan {
  bool write = false;
  bool raw = false;
  bool direct = false;  // -t none on a raw file: O_DIRECT
  std::uint64_t count = kDefaultCount;
  std::uint64_t buffer_size = 4096;
  std::uint64_t step = 4096;
  std::uint64_t offset = 0;
  std::uint64_t flush_interval = 0;  // 0: only the final flush
  std::uint8_t pattern = 0;
  std::optional<std::uint64_t> random_seed;
};

Error usage_error(const std::string& message) {
  return Error(ErrorCode::kInvalidArgument, message);
}

Result<std::uint64_t> option_size(const char* name, const std::string& text) {
  auto value = parse_size(text);
  if (!value) return usage_error(fmt::format("{}: {}", name, value.error().message()));
  return *value;
}

Result<BenchPlan> make_plan(const BenchOptions& options) {
  BenchPlan plan;
  plan.write = options.write;
  if (options.format == "raw") {
    plan.raw = true;
  } else if (options.format != "vhdx") {
    return Error(ErrorCode::kUnsupported,
                 fmt::format("-f: format '{}' is not supported: use vhdx or raw", options.format));
  }
  if (options.cache == "none") {
    plan.direct = plan.raw;
  } else if (options.cache != "writeback") {
    return usage_error(
        fmt::format("-t: cache mode '{}' is not supported: use none or writeback", options.cache));
  }
  if (!options.count.empty()) {
    VHDX_ASSIGN_OR_RETURN(plan.count, option_size("-c", options.count));
    if (plan.count == 0) return usage_error("-c: the request count must be at least 1");
  }
  VHDX_ASSIGN_OR_RETURN(plan.buffer_size, option_size("-s", options.buffer_size));
  if (plan.buffer_size == 0 || plan.buffer_size > kMaxBufferSize)
    return usage_error(fmt::format("-s: buffer size '{}' must be between 1 and {}",
                                   options.buffer_size, kMaxBufferSize));
  plan.step = plan.buffer_size;
  if (!options.step.empty()) {
    VHDX_ASSIGN_OR_RETURN(std::uint64_t step, option_size("-S", options.step));
    if (step > kMaxBufferSize)
      return usage_error(
          fmt::format("-S: step size '{}' must be at most {}", options.step, kMaxBufferSize));
    // As in qemu-img, a step of 0 means the buffer size.
    if (step != 0) plan.step = step;
  }
  VHDX_ASSIGN_OR_RETURN(plan.offset, option_size("-o", options.offset));
  if (!options.flush_interval.empty()) {
    if (!plan.write) return usage_error("--flush-interval is only available with -w");
    VHDX_ASSIGN_OR_RETURN(plan.flush_interval,
                          option_size("--flush-interval", options.flush_interval));
  }
  if (!options.pattern.empty()) {
    if (!plan.write) return usage_error("--pattern is only available with -w");
    auto byte = parse_pattern_byte(options.pattern);
    if (!byte) return usage_error("--pattern: " + byte.error().message());
    plan.pattern = *byte;
  }
  if (!options.random_seed.empty()) {
    if (!options.step.empty()) return usage_error("--random and -S cannot be used together");
    std::uint64_t seed = 0;
    const char* begin = options.random_seed.data();
    const char* end = begin + options.random_seed.size();
    auto [ptr, ec] = std::from_chars(begin, end, seed);
    if (ec != std::errc() || ptr != end)
      return usage_error(fmt::format("--random: seed '{}' is not a decimal number in 0..2^64-1",
                                     options.random_seed));
    plan.random_seed = seed;
  }
  return plan;
}

// splitmix64: a tiny generator whose sequence is the same on every platform and library.
class OffsetGenerator {
 public:
  explicit OffsetGenerator(std::uint64_t seed) : state_(seed) {}
  // Uniform in [0, bound), bound > 0: draws above the largest multiple of bound are redrawn.
  std::uint64_t below(std::uint64_t bound) {
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    std::uint64_t value;
    do {
      value = next();
    } while (value >= limit);
    return value % bound;
  }

 private:
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::uint64_t state_;
};

// What the benchmark runs on: a VHDX image through the library, or a plain file.
class BenchTarget {
 public:
  virtual ~BenchTarget() = default;
  virtual std::uint64_t size() const = 0;
  virtual Result<void> read(std::uint64_t offset, std::span<std::uint8_t> out) = 0;
  virtual Result<void> write(std::uint64_t offset, std::span<const std::uint8_t> data) = 0;
  virtual Result<void> flush() = 0;
  // Ends the run; errors a destructor could not report surface here.
  virtual Result<void> close() = 0;
};

class ImageBenchTarget final : public BenchTarget {
 public:
  explicit ImageBenchTarget(std::unique_ptr<Image> image) : image_(std::move(image)) {}
  std::uint64_t size() const override { return image_->virtual_size(); }
  Result<void> read(std::uint64_t offset, std::span<std::uint8_t> out) override {
    return image_->read(offset, out);
  }
  Result<void> write(std::uint64_t offset, std::span<const std::uint8_t> data) override {
    return image_->write(offset, data);
  }
  Result<void> flush() override { return image_->flush(); }
  Result<void> close() override { return image_->close(); }

 private:
  std::unique_ptr<Image> image_;
};

class RawBenchTarget final : public BenchTarget {
 public:
  static Result<std::unique_ptr<RawBenchTarget>> open(const std::string& path, bool write,
                                                      bool direct) {
    int flags = (write ? O_RDWR : O_RDONLY) | O_CLOEXEC | (direct ? O_DIRECT : 0);
    int fd = ::open(path.c_str(), flags);
    if (fd < 0) {
      int error = errno;
      if (direct && error == EINVAL)
        return Error(ErrorCode::kUnsupported,
                     fmt::format("{}: the file system does not support O_DIRECT (-t none); use "
                                 "-t writeback",
                                 path));
      return Error(ErrorCode::kIo, fmt::format("{}: cannot open", path), error);
    }
    auto target = std::unique_ptr<RawBenchTarget>(new RawBenchTarget(path, fd));
    off_t end = ::lseek(fd, 0, SEEK_END);
    if (end < 0) return Error(ErrorCode::kIo, fmt::format("{}: cannot find its size", path), errno);
    target->size_ = static_cast<std::uint64_t>(end);
    return target;
  }
  ~RawBenchTarget() override {
    if (fd_ >= 0) ::close(fd_);
  }
  std::uint64_t size() const override { return size_; }
  Result<void> read(std::uint64_t offset, std::span<std::uint8_t> out) override {
    for (std::size_t done = 0; done < out.size();) {
      ssize_t n =
          ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return io_error("pread", offset, errno);
      if (n == 0) return Error(ErrorCode::kIo, fmt::format("{}: unexpected end of file", path_));
      done += static_cast<std::size_t>(n);
    }
    return ok();
  }
  Result<void> write(std::uint64_t offset, std::span<const std::uint8_t> data) override {
    for (std::size_t done = 0; done < data.size();) {
      ssize_t n =
          ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return io_error("pwrite", offset, errno);
      done += static_cast<std::size_t>(n);
    }
    return ok();
  }
  Result<void> flush() override {
    if (::fdatasync(fd_) != 0) return io_error("fdatasync", 0, errno);
    return ok();
  }
  Result<void> close() override {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return Error(ErrorCode::kIo, fmt::format("{}: close", path_), errno);
    return ok();
  }

 private:
  RawBenchTarget(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  Error io_error(const char* call, std::uint64_t offset, int error) const {
    ErrorCode code = error == ENOSPC ? ErrorCode::kNoSpace : ErrorCode::kIo;
    if (error == EINVAL)
      return Error(code,
                   fmt::format("{}: {} at offset {} refused (with -t none, offsets and the "
                               "buffer size must be multiples of the device's block size)",
                               path_, call, offset),
                   error);
    return Error(code, fmt::format("{}: {} at offset {}", path_, call, offset), error);
  }
  std::string path_;
  int fd_;
  std::uint64_t size_ = 0;
};

Result<std::unique_ptr<BenchTarget>> open_target(const BenchOptions& options,
                                                 const BenchPlan& plan) {
  if (plan.raw) {
    VHDX_ASSIGN_OR_RETURN(auto raw, RawBenchTarget::open(options.file, plan.write, plan.direct));
    return std::unique_ptr<BenchTarget>(std::move(raw));
  }
  OpenOptions open_options;
  open_options.read_only = !plan.write;
  open_options.force_share = options.force_share && !plan.write;
  VHDX_ASSIGN_OR_RETURN(auto image, Image::open(options.file, open_options));
  return std::unique_ptr<BenchTarget>(std::make_unique<ImageBenchTarget>(std::move(image)));
}

struct BenchResult {
  std::uint64_t requests = 0;
  std::uint64_t bytes = 0;
  std::uint64_t flushes = 0;
  double seconds = 0;
};

// A heap buffer aligned for O_DIRECT (harmless otherwise).
struct AlignedBuffer {
  explicit AlignedBuffer(std::size_t size)
      : data(static_cast<std::uint8_t*>(std::aligned_alloc(
            kDirectAlignment,
            (size + kDirectAlignment - 1) / kDirectAlignment * kDirectAlignment))),
        size(size) {}
  ~AlignedBuffer() { std::free(data); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  std::uint8_t* data;
  std::size_t size;
};

// The requests must fit the disk; checked before anything is printed or written.
Result<void> check_fits(const BenchPlan& plan, std::uint64_t disk_size) {
  if (plan.buffer_size > disk_size)
    return usage_error(fmt::format("-s: buffer size {} is larger than the disk ({} bytes)",
                                   plan.buffer_size, disk_size));
  if (plan.offset > disk_size - plan.buffer_size)
    return usage_error(
        fmt::format("-o: offset {} leaves no room for a {}-byte request before the end of the disk "
                    "({} bytes)",
                    plan.offset, plan.buffer_size, disk_size));
  return ok();
}

Result<BenchResult> run_requests(BenchTarget& target, const BenchPlan& plan) {
  const std::uint64_t disk_size = target.size();
  AlignedBuffer buffer(plan.buffer_size);
  if (buffer.data == nullptr)
    return Error(ErrorCode::kNoSpace,
                 fmt::format("cannot allocate a {}-byte buffer", plan.buffer_size));
  std::fill_n(buffer.data, buffer.size, plan.pattern);
  std::span<std::uint8_t> data(buffer.data, buffer.size);

  std::optional<OffsetGenerator> generator;
  std::uint64_t slots = 0;  // buffer-aligned request positions from plan.offset on
  if (plan.random_seed) {
    generator.emplace(*plan.random_seed);
    slots = (disk_size - plan.offset) / plan.buffer_size;
  }
  BenchResult result;
  std::uint64_t offset = plan.offset;
  auto begin = std::chrono::steady_clock::now();
  for (std::uint64_t i = 1; i <= plan.count; ++i) {
    const std::uint64_t at =
        generator ? plan.offset + generator->below(slots) * plan.buffer_size : offset;
    if (plan.write) {
      VHDX_TRY(target.write(at, data));
    } else {
      VHDX_TRY(target.read(at, data));
    }
    ++result.requests;
    result.bytes += plan.buffer_size;
    // qemu-img's wrap: the next request must fit, and the first one is not wrapped.
    offset += plan.step;
    offset = disk_size <= plan.buffer_size ? 0 : offset % (disk_size - plan.buffer_size);
    if (plan.write && plan.flush_interval != 0 && i % plan.flush_interval == 0 && i != plan.count) {
      VHDX_TRY(target.flush());
      ++result.flushes;
    }
  }
  if (plan.write) {
    VHDX_TRY(target.flush());
    ++result.flushes;
  }
  VHDX_TRY(target.close());
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  return result;
}

std::string describe_pattern(const BenchPlan& plan) {
  if (plan.random_seed)
    return fmt::format("random buffer-aligned offsets from {}, seed {}", plan.offset,
                       *plan.random_seed);
  return fmt::format("starting at offset {}, step size {}", plan.offset, plan.step);
}

int run_bench(const BenchOptions& options) {
  auto plan = make_plan(options);
  if (!plan) return report_error(plan.error());
  auto target = open_target(options, *plan);
  if (!target) return report_error(target.error());
  if (auto r = check_fits(*plan, (*target)->size()); !r) return report_error(r.error());
  const bool json = options.output == "json";
  const char* kind = plan->write ? "write" : "read";
  if (!options.quiet && !json) {
    std::cout << fmt::format("Sending {} {} requests, {} bytes each, 1 in parallel ({})\n",
                             plan->count, kind, plan->buffer_size, describe_pattern(*plan));
    if (plan->flush_interval != 0)
      std::cout << fmt::format("Sending flush every {} requests\n", plan->flush_interval);
    std::cout << std::flush;
  }
  auto result = run_requests(**target, *plan);
  if (!result) return report_error(result.error());
  const double seconds = result->seconds;
  const double mib_per_second =
      seconds > 0 ? static_cast<double>(result->bytes) / (1024.0 * 1024.0) / seconds : 0.0;
  const double iops = seconds > 0 ? static_cast<double>(result->requests) / seconds : 0.0;
  if (json) {
    nlohmann::ordered_json out;
    out["file"] = options.file;
    out["format"] = plan->raw ? "raw" : "vhdx";
    out["mode"] = kind;
    out["cache"] = options.cache;
    out["requests"] = result->requests;
    out["buffer-size"] = plan->buffer_size;
    if (plan->random_seed) {
      out["random-seed"] = *plan->random_seed;
    } else {
      out["step"] = plan->step;
    }
    out["offset"] = plan->offset;
    out["bytes"] = result->bytes;
    out["flushes"] = result->flushes;
    out["seconds"] = seconds;
    out["mib-per-second"] = mib_per_second;
    out["iops"] = iops;
    std::cout << out.dump(4) << std::endl;
    return 0;
  }
  std::cout << fmt::format("Run completed in {:.3f} seconds.\n", seconds);
  std::cout << fmt::format("{} requests, {} bytes, {:.3f} seconds, {:.2f} MiB/s, {:.0f} IOPS",
                           result->requests, result->bytes, seconds, mib_per_second, iops);
  if (plan->write) std::cout << fmt::format(", {} flushes", result->flushes);
  std::cout << std::endl;
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, int& status) {
  auto options = std::make_shared<BenchOptions>();
  CLI::App* sub = app.add_subcommand(
      "bench", "Time a run of reads or writes on an image or a raw file (like qemu-img bench).");
  sub->add_option("FILE", options->file, "VHDX image (or raw file with -f raw); must exist")
      ->required();
  sub->add_flag("-w,--write", options->write, "write requests (default: read)");
  sub->add_option("-c", options->count, "number of requests (default 75000)")->type_name("COUNT");
  sub->add_option("-s", options->buffer_size, "bytes per request (default 4k)")
      ->type_name("BUFFER_SIZE");
  sub->add_option("-S", options->step,
                  "offset step between requests (default, or 0: the buffer size)")
      ->type_name("STEP");
  sub->add_option("-o", options->offset, "offset of the first request (default 0)")
      ->type_name("OFFSET");
  sub->add_option("-f", options->format, "format of FILE: vhdx (default) or raw")
      ->type_name("FORMAT");
  sub->add_option("-t", options->cache,
                  "cache mode: writeback (default) or none; see below for what none means")
      ->type_name("CACHE");
  sub->add_option("--flush-interval", options->flush_interval,
                  "with -w: also flush after every N requests")
      ->type_name("N");
  sub->add_option("--pattern", options->pattern,
                  "with -w: the byte written (decimal, 0x-hex or 0-octal; default 0)")
      ->type_name("P");
  sub->add_option("--random", options->random_seed,
                  "draw each offset uniformly among the buffer-aligned positions from -o to the "
                  "end of the disk, with this seed (not with -S)")
      ->type_name("SEED");
  sub->add_flag("-q", options->quiet, "quiet: print only the results");
  sub->add_flag("-U,--force-share", options->force_share,
                "reads only: open without taking the shared lock");
  sub->add_option("--output", options->output, "output format: human (default) or json")
      ->check(output_format_validator());
  sub->footer(
      "Requests run one at a time. As in qemu-img bench, the offset advances by STEP modulo\n"
      "(disk size - BUFFER_SIZE), so every request ends inside the disk. Writes end with a\n"
      "flush (the image's flush, or fdatasync for -f raw), and the time includes it and the\n"
      "close, so it measures durable writes. Sizes take k, M, G, T suffixes.\n"
      "-t none: a raw file (-f raw) is opened with O_DIRECT (offsets and sizes must then suit\n"
      "the device); the VHDX library has no O_DIRECT mode, so on an image -t none runs like\n"
      "writeback, and the flush at the end gives the same durability.");
  sub->callback([options, &status] { status = run_bench(*options); });
}

}  // namespace vhdx::cli
