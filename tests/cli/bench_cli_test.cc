// End-to-end tests of `vhdx bench`: the bytes its write runs leave (on a VHDX image and on a raw
// file, checked byte for byte against a model of qemu-img bench's offset sequence), read runs
// that leave the file untouched, and option errors. No timing is asserted.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/cli_run.h"
#include "support/corpus.h"

namespace vhdx {
namespace {

using testing::CliRun;
using testing::have_program;
using testing::make_temp_dir;
using testing::run_shell;
using testing::run_vhdx;
using testing::shell_quote;

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * kKiB;
constexpr std::uint8_t kPattern = 0xab;

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

CliRun bench(const std::string& arguments, const std::string& file) {
  return run_vhdx("bench " + arguments + " " + shell_quote(file));
}

std::string make_image(const std::string& dir, const std::string& size) {
  std::string image = dir + "/disk.vhdx";
  CliRun r = run_vhdx("create -q -o block_size=1M " + shell_quote(image) + " " + size);
  EXPECT_EQ(r.status, 0) << r.err;
  return image;
}

std::string make_raw(const std::string& dir, std::uint64_t size) {
  std::string raw = dir + "/disk.raw";
  EXPECT_EQ(run_shell("truncate -s " + std::to_string(size) + " " + shell_quote(raw)).status, 0);
  return raw;
}

// The virtual disk's bytes, through `vhdx convert -O raw`.
std::vector<std::uint8_t> image_bytes(const std::string& image) {
  std::string raw = make_temp_dir() + "/contents.raw";
  CliRun r = run_vhdx("convert -O raw " + shell_quote(image) + " " + shell_quote(raw));
  EXPECT_EQ(r.status, 0) << r.err;
  return read_bytes(raw);
}

// qemu-img bench's offsets: the first at `offset`, then each STEP further, modulo
// (disk size - buffer size).
std::vector<std::uint8_t> expected_disk(std::uint64_t disk_size, std::uint64_t offset,
                                        std::uint64_t step, std::uint64_t buffer_size,
                                        std::uint64_t count) {
  std::vector<std::uint8_t> disk(disk_size, 0);
  for (std::uint64_t i = 0; i < count; ++i) {
    std::fill_n(disk.begin() + static_cast<std::ptrdiff_t>(offset), buffer_size, kPattern);
    offset = (offset + step) % (disk_size - buffer_size);
  }
  return disk;
}

// Where two disks first differ, for a readable failure message.
std::string first_difference(const std::vector<std::uint8_t>& actual,
                             const std::vector<std::uint8_t>& expected) {
  if (actual.size() != expected.size())
    return "size " + std::to_string(actual.size()) + " != " + std::to_string(expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    if (actual[i] != expected[i])
      return "byte " + std::to_string(i) + " is " + std::to_string(actual[i]) + ", expected " +
             std::to_string(expected[i]);
  }
  return "equal";
}

TEST(BenchCli, StrideWritesOnAnImageLandExactlyAndWrap) {
  const std::string dir = make_temp_dir();
  const std::string image = make_image(dir, "4M");
  // 40 requests of 4 KiB every 300 KiB from 12 KiB: past the end of the 4 MiB disk the
  // offsets wrap, as qemu-img bench's do.
  CliRun r = bench("-w --pattern 0xab -c 40 -s 4096 -S 300k -o 12k", image);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("Sending 40 write requests, 4096 bytes each, 1 in parallel (starting at "
                       "offset 12288, step size 307200)\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("Run completed in "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("40 requests, 163840 bytes, "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" MiB/s, "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" IOPS, 1 flushes\n"), std::string::npos) << r.out;

  const auto expected = expected_disk(4 * kMiB, 12 * kKiB, 300 * kKiB, 4096, 40);
  const auto actual = image_bytes(image);
  EXPECT_TRUE(actual == expected) << first_difference(actual, expected);
  // The first and a wrapped request, read back by `vhdx io` as well.
  CliRun check =
      run_vhdx("io -r -c 'read -q -P 0xab 12k 4k' -c 'read -q -P 0 0 12k' " + shell_quote(image));
  EXPECT_EQ(check.status, 0) << check.out << check.err;
  EXPECT_EQ(check.out, "");

  if (!have_program("qemu-img")) return;
  CliRun peer = run_shell("qemu-img check -f vhdx " + shell_quote(image));
  EXPECT_EQ(peer.status, 0) << peer.out << peer.err;
  std::string raw = dir + "/qemu.raw";
  ASSERT_EQ(
      run_shell("qemu-img convert -f vhdx -O raw " + shell_quote(image) + " " + shell_quote(raw))
          .status,
      0);
  EXPECT_TRUE(read_bytes(raw) == expected) << "qemu-img reads other bytes";
}

TEST(BenchCli, StrideWritesOnARawFileLandExactly) {
  const std::string dir = make_temp_dir();
  const std::string raw = make_raw(dir, 4 * kMiB);
  CliRun r = bench("-f raw -w --pattern 0xab -c 40 -s 4096 -S 300k -o 12k", raw);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("40 requests, 163840 bytes, "), std::string::npos) << r.out;
  const auto expected = expected_disk(4 * kMiB, 12 * kKiB, 300 * kKiB, 4096, 40);
  const auto actual = read_bytes(raw);
  EXPECT_TRUE(actual == expected) << first_difference(actual, expected);
}

TEST(BenchCli, DefaultStepIsTheBufferSize) {
  const std::string dir = make_temp_dir();
  const std::string image = make_image(dir, "4M");
  // -S 0 means the buffer size too, as in qemu-img.
  ASSERT_EQ(bench("-w --pattern 0xab -c 5 -s 8k", image).status, 0);
  ASSERT_EQ(bench("-w --pattern 0xab -c 3 -s 8k -S 0 -o 1M", image).status, 0);
  auto expected = expected_disk(4 * kMiB, 0, 8 * kKiB, 8 * kKiB, 5);
  const auto second = expected_disk(4 * kMiB, kMiB, 8 * kKiB, 8 * kKiB, 3);
  for (std::size_t i = 0; i < expected.size(); ++i) expected[i] |= second[i];
  const auto actual = image_bytes(image);
  EXPECT_TRUE(actual == expected) << first_difference(actual, expected);
}

TEST(BenchCli, RandomWritesAreBufferAlignedAndTheSameOnImageAndRaw) {
  const std::string dir = make_temp_dir();
  const std::string image = make_image(dir, "8M");
  const std::string raw = make_raw(dir, 8 * kMiB);
  CliRun r = bench("-w --pattern 0xab -c 64 -s 4k --random 1234", image);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("(random buffer-aligned offsets from 0, seed 1234)"), std::string::npos)
      << r.out;
  ASSERT_EQ(bench("-f raw -w --pattern 0xab -c 64 -s 4k --random 1234", raw).status, 0);

  const auto actual = image_bytes(image);
  ASSERT_EQ(actual.size(), 8 * kMiB);
  // Every 4 KiB block is all pattern or all zero; at most one block per request is written.
  std::size_t written = 0;
  for (std::size_t block = 0; block < actual.size(); block += 4096) {
    const std::uint8_t first = actual[block];
    ASSERT_TRUE(first == 0 || first == kPattern) << "block at " << block;
    for (std::size_t i = block; i < block + 4096; ++i)
      ASSERT_EQ(actual[i], first) << "byte " << i << " differs inside its block";
    written += first == kPattern ? 1 : 0;
  }
  EXPECT_GE(written, 32u) << "64 draws among 2048 blocks repeat rarely";
  EXPECT_LE(written, 64u);
  // The offsets come from a fixed generator: the same seed gives the same bytes on both.
  EXPECT_TRUE(read_bytes(raw) == actual) << first_difference(read_bytes(raw), actual);

  // Another seed, with -o: the writes stay inside [OFFSET, end).
  const std::string other = make_raw(make_temp_dir(), 8 * kMiB);
  ASSERT_EQ(bench("-f raw -w --pattern 0xab -c 64 -s 4k -o 6M --random 99", other).status, 0);
  const auto upper = read_bytes(other);
  for (std::size_t i = 0; i < 6 * kMiB; ++i) ASSERT_EQ(upper[i], 0) << "byte " << i;
  EXPECT_NE(std::count(upper.begin(), upper.end(), kPattern), 0);
  EXPECT_TRUE(upper != read_bytes(raw));
}

TEST(BenchCli, FlushIntervalAndJsonOutput) {
  const std::string dir = make_temp_dir();
  const std::string image = make_image(dir, "4M");
  CliRun r = bench("-w --pattern 0xab -c 10 -s 4k -S 64k --flush-interval 3", image);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("Sending flush every 3 requests\n"), std::string::npos) << r.out;
  // After requests 3, 6 and 9, and the final one.
  EXPECT_NE(r.out.find(" IOPS, 4 flushes\n"), std::string::npos) << r.out;
  const auto expected = expected_disk(4 * kMiB, 0, 64 * kKiB, 4 * kKiB, 10);
  auto actual = image_bytes(image);
  EXPECT_TRUE(actual == expected) << first_difference(actual, expected);

  CliRun json = bench("--output=json -c 7 -s 16k -S 1M", image);
  ASSERT_EQ(json.status, 0) << json.err;
  auto doc = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << json.out;
  EXPECT_EQ(doc["format"], "vhdx");
  EXPECT_EQ(doc["mode"], "read");
  EXPECT_EQ(doc["requests"], 7);
  EXPECT_EQ(doc["buffer-size"], 16384);
  EXPECT_EQ(doc["step"], 1048576);
  EXPECT_EQ(doc["bytes"], 7 * 16384);
  EXPECT_EQ(doc["flushes"], 0);
  EXPECT_TRUE(doc["seconds"].is_number());
  EXPECT_TRUE(doc["iops"].is_number());
  EXPECT_TRUE(doc["mib-per-second"].is_number());

  // -q drops the "Sending" line only, as qemu-img's does.
  CliRun quiet = bench("-q -c 2", image);
  ASSERT_EQ(quiet.status, 0) << quiet.err;
  EXPECT_EQ(quiet.out.find("Sending"), std::string::npos) << quiet.out;
  EXPECT_EQ(quiet.out.rfind("Run completed in ", 0), 0u) << quiet.out;
}

TEST(BenchCli, ReadRunsLeaveTheFileUnchanged) {
  const std::string dir = make_temp_dir();
  const std::string image = make_image(dir, "4M");
  const std::string raw = make_raw(dir, 4 * kMiB);
  ASSERT_EQ(bench("-w --pattern 0x5c -c 8 -S 200k", image).status, 0);
  ASSERT_EQ(bench("-f raw -w --pattern 0x5c -c 8 -S 200k", raw).status, 0);
  const std::string image_hash = testing::sha256_file(image);
  const std::string raw_hash = testing::sha256_file(raw);
  for (const char* arguments : {"-c 500", "-c 300 -s 64k -S 100k -o 5k", "-c 200 --random 3",
                                "-c 50 -U", "-c 20 -t none -s 64k"}) {
    CliRun r = bench(arguments, image);
    EXPECT_EQ(r.status, 0) << arguments << ": " << r.err;
    EXPECT_NE(r.out.find(" read requests, "), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("flushes"), std::string::npos) << r.out;
    CliRun q = bench(std::string("-f raw ") + arguments, raw);
    // O_DIRECT may be refused by the file system holding the scratch folder (tmpfs).
    if (std::string(arguments).find("-t none") != std::string::npos && q.status != 0) {
      EXPECT_NE(q.err.find("does not support O_DIRECT"), std::string::npos) << q.err;
      continue;
    }
    EXPECT_EQ(q.status, 0) << arguments << ": " << q.err;
  }
  EXPECT_EQ(testing::sha256_file(image), image_hash);
  EXPECT_EQ(testing::sha256_file(raw), raw_hash);
}

TEST(BenchCli, CacheNoneWritesTheSameBytes) {
  const std::string dir = make_temp_dir();
  const std::string image = make_image(dir, "4M");
  const std::string raw = make_raw(dir, 4 * kMiB);
  ASSERT_EQ(bench("-t none -w --pattern 0xab -c 9 -s 8k -S 96k", image).status, 0);
  const auto expected = expected_disk(4 * kMiB, 0, 96 * kKiB, 8 * kKiB, 9);
  auto actual = image_bytes(image);
  EXPECT_TRUE(actual == expected) << first_difference(actual, expected);
  CliRun r = bench("-f raw -t none -w --pattern 0xab -c 9 -s 8k -S 96k", raw);
  if (r.status != 0) {
    EXPECT_NE(r.err.find("does not support O_DIRECT"), std::string::npos) << r.err;
    GTEST_SKIP() << "the scratch file system refuses O_DIRECT";
  }
  actual = read_bytes(raw);
  EXPECT_TRUE(actual == expected) << first_difference(actual, expected);
}

TEST(BenchCli, BadOptionsFailWithAMessageAndChangeNothing) {
  const std::string dir = make_temp_dir();
  const std::string image = make_image(dir, "4M");
  const std::string hash = testing::sha256_file(image);
  struct Case {
    const char* arguments;
    const char* message;
  };
  const Case cases[] = {
      {"-w -s 0", "-s: buffer size '0' must be between 1 and 2147483647"},
      {"-w -s 4q", "-s: invalid size '4q'"},
      {"-w -s 4G", "-s: buffer size '4G' must be between 1"},
      {"-w -s 8M", "-s: buffer size 8388608 is larger than the disk (4194304 bytes)"},
      {"-w -S 1x", "-S: invalid size '1x'"},
      {"-w -S 3G", "-S: step size '3G' must be at most 2147483647"},
      {"-w -c 0", "-c: the request count must be at least 1"},
      {"-w -c many", "-c: invalid size 'many'"},
      {"-w -o 4M", "-o: offset 4194304 leaves no room for a 4096-byte request"},
      {"-w -f qcow2", "-f: format 'qcow2' is not supported: use vhdx or raw"},
      {"-w -t directsync", "-t: cache mode 'directsync' is not supported: use none or writeback"},
      {"--pattern 0xab", "--pattern is only available with -w"},
      {"-w --pattern 300", "--pattern: "},
      {"--flush-interval 2", "--flush-interval is only available with -w"},
      {"-w --random 5 -S 8k", "--random and -S cannot be used together"},
      {"-w --random seed", "--random: seed 'seed' is not a decimal number"},
      {"-w --output=yaml", "invalid output format 'yaml'"},
      {"-w --no-such-option", "--no-such-option"},
  };
  for (const Case& c : cases) {
    CliRun r = bench(c.arguments, image);
    EXPECT_EQ(r.status, 1) << c.arguments;
    EXPECT_EQ(r.out, "") << c.arguments;
    EXPECT_EQ(r.err.rfind("vhdx: ", 0), 0u) << c.arguments << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.arguments << ": " << r.err;
  }
  EXPECT_EQ(testing::sha256_file(image), hash);

  CliRun missing = bench("-w", dir + "/none.vhdx");
  EXPECT_EQ(missing.status, 1);
  EXPECT_EQ(missing.err.rfind("vhdx: ", 0), 0u) << missing.err;
  CliRun raw_missing = bench("-f raw", dir + "/none.raw");
  EXPECT_EQ(raw_missing.status, 1);
  EXPECT_NE(raw_missing.err.find("none.raw: cannot open"), std::string::npos) << raw_missing.err;
  // A raw file is not an image: -f vhdx (the default) refuses it.
  CliRun not_vhdx = bench("-c 1", make_raw(dir, kMiB));
  EXPECT_EQ(not_vhdx.status, 1);
  EXPECT_NE(not_vhdx.err.find("not-vhdx"), std::string::npos) << not_vhdx.err;
}

}  // namespace
}  // namespace vhdx
