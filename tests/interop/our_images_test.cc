// Images this library creates and writes, as the peers see them: over a matrix of options
// (dynamic/fixed, block sizes 1, 32 and 256 MiB, logs of 1 and 4 MiB, logical sectors of 512 and
// 4096 bytes, virtual sizes a whole number of blocks or not), each image is made by
// `vhdx create`, then written by a seeded random `vhdx io` script (writes of every size and
// alignment, zero writes, discards, flushes) whose effect is applied to a raw twin file too.
// Then, and again for `vhdx convert -O vhdx` of the raw twin:
// - `vhdx check` finds nothing (exit 0, no leaks, a clean log);
// - 512-byte sectors: `qemu-img check` exits 0 without leaks and `qemu-img compare` finds the
//   raw twin identical; 4096-byte sectors: QEMU 7.2 refuses to open the image (asserted, so a
//   QEMU that learns them shows up here);
// - vhdiinfo reads the image and reports its size and sector size;
// - vhdimount (FUSE) serves the same bytes as the raw twin (SHA-256).
//
// One TEST_P per cell; a failure names the cell and the script's seed (the seed alone rebuilds
// the script: see script_for). Peers missing: skipped, unless CI=true.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "support/cli_run.h"
#include "support/corpus.h"

namespace vhdx {
namespace {

using nlohmann::json;
using testing::CliRun;
using testing::FuseMountGuard;
using testing::have_program;
using testing::in_ci;
using testing::make_temp_dir;
using testing::run_command;
using testing::run_shell;
using testing::run_vhdx;
using testing::sha256_file;
using testing::shell_quote;

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * kKiB;

enum class SizeVariant {
  kWholeBlocks,  // a whole number of blocks
  kOdd,          // a partial last block by an odd amount (a lone 512-byte sector if allowed)
};

struct Cell {
  bool fixed;
  std::uint64_t block_mib;
  std::uint64_t log_mib;
  std::uint32_t sector;
  SizeVariant size;

  std::uint64_t block_size() const { return block_mib * kMiB; }
  // Block counts keep the largest (fixed, 256 MiB blocks) images near 260 MiB.
  std::uint64_t virtual_size() const {
    const std::uint64_t blocks = block_mib == 1 ? 21 : block_mib == 32 ? 3 : 1;
    const std::uint64_t whole = blocks * block_size();
    if (size == SizeVariant::kWholeBlocks) return whole;
    return whole + 3 * kMiB + 12 * kKiB + (sector == 512 ? 512 : 0);
  }
  // The create/convert options that make this cell's image.
  std::string options() const {
    return std::string("subformat=") + (fixed ? "fixed" : "dynamic") +
           ",block_size=" + std::to_string(block_mib) + "M,log_size=" + std::to_string(log_mib) +
           "M,logical_sector_size=" + std::to_string(sector);
  }
  // A seed per cell, stable across runs and platforms.
  std::uint64_t seed() const {
    return 0x5eed0000ull + (fixed ? 1000 : 0) + block_mib * 10 + log_mib * 3 + sector / 512 +
           (size == SizeVariant::kOdd ? 500000 : 0);
  }
};

std::string cell_label(const Cell& c) {
  return std::string(c.fixed ? "fixed" : "dynamic") + "_b" + std::to_string(c.block_mib) + "m_log" +
         std::to_string(c.log_mib) + "m_s" + std::to_string(c.sector) +
         (c.size == SizeVariant::kOdd ? "_odd" : "_whole");
}

std::string cell_name(const ::testing::TestParamInfo<Cell>& info) { return cell_label(info.param); }

void PrintTo(const Cell& cell, std::ostream* os) {
  *os << cell_label(cell) << " (seed " << cell.seed() << ")";
}

std::vector<Cell> all_cells() {
  std::vector<Cell> cells;
  for (bool fixed : {false, true})
    for (std::uint64_t block : {1, 32, 256})
      for (std::uint64_t log : {1, 4})
        for (std::uint32_t sector : {512u, 4096u})
          for (SizeVariant size : {SizeVariant::kWholeBlocks, SizeVariant::kOdd})
            cells.push_back({fixed, block, log, sector, size});
  return cells;
}

// One `vhdx io` command of a script.
struct Op {
  enum Kind { kWritePattern, kWriteSource, kWriteZero, kDiscard, kFlush } kind;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  std::uint8_t pattern = 0;
  bool unmap = false;  // write -z -u
};

// The source file `write -s` reads: random bytes, an odd number of them, under the 1 MiB that
// `vhdx io` takes from a source at most. A write of n bytes stores them repeated from its start.
constexpr std::uint64_t kSourceBytes = kMiB - 3;

// xorshift64*: the same sequence everywhere for a seed (unlike the std distributions).
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed * 0x9e3779b97f4a7c15ull | 1) {}
  std::uint64_t next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545f4914f6cdd1dull;
  }
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }

 private:
  std::uint64_t state_;
};

// A length from one of several classes: a few bytes, sub-sector, sector multiples, up to a few
// MiB, or a whole block (capped: 256 MiB blocks are written in part).
std::uint64_t pick_length(Random& rng, const Cell& cell) {
  switch (rng.below(6)) {
    case 0:
      return 1 + rng.below(31);
    case 1:
      return 1 + rng.below(4095);
    case 2:
      return cell.sector * (1 + rng.below(64));
    case 3:
      return 1 + rng.below(256 * kKiB);
    case 4:
      return 1 + rng.below(3 * kMiB);
    default:
      return std::min<std::uint64_t>(cell.block_size(), 2 * kMiB);
  }
}

// An offset: anywhere, sector-aligned, or on a block boundary.
std::uint64_t pick_offset(Random& rng, const Cell& cell, std::uint64_t v) {
  const std::uint64_t any = rng.below(v);
  switch (rng.below(3)) {
    case 0:
      return any;
    case 1:
      return any / cell.sector * cell.sector;
    default:
      return any / cell.block_size() * cell.block_size();
  }
}

// The script for a cell: 48 commands. Whole-block discards (dynamic images release the block)
// are followed by writes into the same range, so released space is reused.
std::vector<Op> script_for(const Cell& cell, std::uint64_t seed) {
  Random rng(seed);
  const std::uint64_t v = cell.virtual_size();
  const std::uint64_t b = cell.block_size();
  std::vector<Op> ops;
  for (int i = 0; i < 48; ++i) {
    Op op{Op::kFlush};
    const std::uint64_t roll = rng.below(100);
    op.offset = pick_offset(rng, cell, v);
    op.length = std::min(pick_length(rng, cell), v - op.offset);
    if (roll < 40) {
      op.kind = Op::kWritePattern;
      op.pattern = static_cast<std::uint8_t>(1 + rng.below(255));
    } else if (roll < 55) {
      op.kind = Op::kWriteSource;
    } else if (roll < 67) {
      op.kind = Op::kWriteZero;
      op.unmap = rng.below(2) == 1;
    } else if (roll < 85) {
      op.kind = Op::kDiscard;
      // Often exactly whole blocks, which a dynamic image releases.
      if (rng.below(2) == 0) {
        op.offset = op.offset / b * b;
        op.length = std::min(b * (1 + rng.below(2)), v - op.offset);
      }
    } else {
      op.kind = Op::kFlush;
    }
    ops.push_back(op);
  }
  return ops;
}

std::string script_text(const std::vector<Op>& ops, const std::string& source) {
  std::string text;
  for (const Op& op : ops) {
    const std::string range = std::to_string(op.offset) + " " + std::to_string(op.length);
    switch (op.kind) {
      case Op::kWritePattern:
        text += "write -q -P " + std::to_string(op.pattern) + " " + range + "\n";
        break;
      case Op::kWriteSource:
        text += "write -q -s " + source + " " + range + "\n";
        break;
      case Op::kWriteZero:
        text += std::string("write -q -z") + (op.unmap ? " -u " : " ") + range + "\n";
        break;
      case Op::kDiscard:
        text += "discard -q " + range + "\n";
        break;
      case Op::kFlush:
        text += "flush\n";
        break;
    }
  }
  return text;
}

bool write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

// What the script does to a raw file of the disk's size: patterns and source bytes land as
// written, zero writes and discards leave zeros (both promise that on a VHDX image).
::testing::AssertionResult apply_to_raw(const std::vector<Op>& ops, const std::string& source,
                                        const std::string& raw, std::uint64_t v) {
  const int fd = ::open(raw.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return ::testing::AssertionFailure() << "cannot create " << raw;
  bool ok = ::ftruncate(fd, static_cast<off_t>(v)) == 0;
  std::vector<std::uint8_t> buffer;
  for (const Op& op : ops) {
    if (op.kind == Op::kFlush || op.length == 0) continue;
    buffer.assign(op.length, 0);
    if (op.kind == Op::kWritePattern) std::fill(buffer.begin(), buffer.end(), op.pattern);
    if (op.kind == Op::kWriteSource) {
      const std::uint64_t period = std::min<std::uint64_t>(op.length, source.size());
      for (std::uint64_t i = 0; i < op.length; ++i)
        buffer[i] = static_cast<std::uint8_t>(source[i % period]);
    }
    ok = ok && ::pwrite(fd, buffer.data(), buffer.size(), static_cast<off_t>(op.offset)) ==
                   static_cast<ssize_t>(buffer.size());
  }
  ok = ::close(fd) == 0 && ok;
  if (!ok) return ::testing::AssertionFailure() << "writing the raw twin " << raw << " failed";
  return ::testing::AssertionSuccess();
}

std::uint64_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return UINT64_MAX;
  return static_cast<std::uint64_t>(st.st_size);
}

// Every peer's verdict on `image`, which must hold the bytes of `raw`.
void check_image_against_raw(const Cell& cell, const std::string& image, const std::string& raw,
                             const std::string& raw_sha, const std::string& mount_dir) {
  const std::uint64_t v = cell.virtual_size();
  // Our own check: nothing wrong, nothing leaked, nothing left in the log.
  CliRun ours = run_vhdx("check --output=json " + shell_quote(image));
  const json j = json::parse(ours.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << ours.out << ours.err;
  EXPECT_EQ(j["corruptions"], 0) << ours.out;
  EXPECT_EQ(j["check-errors"], 0) << ours.out;
  // Blocks freed at the end of the file are truncated away on close, so nothing leaks.
  EXPECT_EQ(j["leaked-bytes"], 0) << ours.out;
  EXPECT_EQ(ours.status, 0) << ours.out << ours.err;
  if (j.contains("log") && j["log"].is_object()) {
    EXPECT_EQ(j["log"]["state"], "empty") << ours.out;
  }

  if (cell.sector == 512) {
    CliRun check = run_shell("qemu-img check -f vhdx " + shell_quote(image));
    EXPECT_EQ(check.status, 0) << check.out << check.err;
    EXPECT_NE(check.out.find("No errors were found on the image."), std::string::npos)
        << check.out << check.err;
    EXPECT_EQ(check.out.find("leaked"), std::string::npos) << check.out;
    CliRun compare =
        run_shell("qemu-img compare -f raw -F vhdx " + shell_quote(raw) + " " + shell_quote(image));
    EXPECT_EQ(compare.status, 0) << compare.out << compare.err;
    EXPECT_EQ(compare.out, "Images are identical.\n") << compare.err;
  } else {
    // QEMU 7.2's vhdx driver handles only 512-byte logical sectors and refuses the rest at open.
    CliRun check = run_shell("qemu-img check -f vhdx " + shell_quote(image));
    EXPECT_NE(check.status, 0) << check.out;
    EXPECT_NE(check.err.find("Could not open"), std::string::npos) << check.err;
    EXPECT_NE(check.err.find("Operation not supported"), std::string::npos) << check.err;
  }

  CliRun info = run_shell("vhdiinfo " + shell_quote(image));
  EXPECT_EQ(info.status, 0) << info.out << info.err;
  EXPECT_NE(info.out.find("(" + std::to_string(v) + " bytes)"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("Bytes per sector\t: " + std::to_string(cell.sector) + " bytes"),
            std::string::npos)
      << info.out;
  EXPECT_NE(info.out.find(std::string("Disk type\t\t: ") + (cell.fixed ? "Fixed" : "Dynamic")),
            std::string::npos)
      << info.out;

  ASSERT_EQ(::mkdir(mount_dir.c_str(), 0755), 0) << mount_dir;
  FuseMountGuard mount(mount_dir);
  CliRun mounted = run_shell("vhdimount " + shell_quote(image) + " " + shell_quote(mount_dir));
  ASSERT_EQ(mounted.status, 0) << mounted.out << mounted.err;
  mount.set_mounted();
  const std::string disk = mount_dir + "/vhdi1";
  EXPECT_EQ(file_size(disk), v);
  EXPECT_EQ(sha256_file(disk), raw_sha)
      << "vhdimount's view of " << image << " differs from the raw twin";
}

class OurImagesTest : public ::testing::TestWithParam<Cell> {};

TEST_P(OurImagesTest, PeersAgreeWithTheRawTwin) {
  for (const char* peer : {"qemu-img", "vhdiinfo", "vhdimount", "fusermount"}) {
    if (have_program(peer)) continue;
    if (in_ci()) FAIL() << peer << " not found on PATH (required when CI=true)";
    GTEST_SKIP() << peer << " not found on PATH: interop of our images not tested";
  }
  if (::access("/dev/fuse", R_OK | W_OK) != 0) {
    if (in_ci()) FAIL() << "/dev/fuse is not usable (required when CI=true)";
    GTEST_SKIP() << "/dev/fuse is not usable: vhdimount cannot run";
  }
  const Cell& cell = GetParam();
  const std::uint64_t seed = cell.seed();
  SCOPED_TRACE("cell " + cell.options() + ", virtual size " + std::to_string(cell.virtual_size()) +
               ", script seed " + std::to_string(seed));
  const std::string dir = make_temp_dir();
  const std::string image = dir + "/image.vhdx";
  const std::string raw = dir + "/twin.raw";
  const std::string source_path = dir + "/source.bin";

  Random source_rng(seed ^ 0xabcdefull);
  std::string source(kSourceBytes, '\0');
  for (char& c : source) c = static_cast<char>(source_rng.next() >> 56);
  ASSERT_TRUE(write_file(source_path, source));

  CliRun create = run_vhdx("create -q -o " + cell.options() + " " + shell_quote(image) + " " +
                           std::to_string(cell.virtual_size()));
  ASSERT_EQ(create.status, 0) << create.out << create.err;

  const std::vector<Op> ops = script_for(cell, seed);
  ASSERT_TRUE(write_file(dir + "/script", script_text(ops, shell_quote(source_path))));
  CliRun io = run_vhdx("io " + shell_quote(image) + " < " + shell_quote(dir + "/script"));
  ASSERT_EQ(io.status, 0) << io.out << io.err;
  EXPECT_EQ(io.err, "");
  ASSERT_TRUE(apply_to_raw(ops, source, raw, cell.virtual_size()));
  const std::string raw_sha = sha256_file(raw);

  {
    SCOPED_TRACE("written by vhdx io");
    check_image_against_raw(cell, image, raw, raw_sha, dir + "/mnt-written");
  }
  const std::string converted = dir + "/converted.vhdx";
  CliRun convert = run_vhdx("convert -q -f raw -O vhdx -o " + cell.options() + " " +
                            shell_quote(raw) + " " + shell_quote(converted));
  ASSERT_EQ(convert.status, 0) << convert.out << convert.err;
  {
    SCOPED_TRACE("converted from the raw twin by vhdx convert -O vhdx");
    check_image_against_raw(cell, converted, raw, raw_sha, dir + "/mnt-converted");
  }
}

INSTANTIATE_TEST_SUITE_P(Matrix, OurImagesTest, ::testing::ValuesIn(all_cells()), cell_name);

}  // namespace
}  // namespace vhdx
