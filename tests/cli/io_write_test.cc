// End-to-end tests of `vhdx io`'s write commands (write, discard, flush, sleep): the bytes they
// leave, read back by `vhdx io -r` and by qemu, and agreement with qemu-io running the same
// random script on a twin image.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "support/cli_run.h"
#include "support/corpus.h"

namespace vhdx {
namespace {

using testing::CliRun;
using testing::have_program;
using testing::in_ci;
using testing::make_temp_dir;
using testing::run_shell;
using testing::run_vhdx;
using testing::shell_quote;

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * kKiB;
constexpr std::uint64_t kDiskSize = 64 * kMiB;

bool have_qemu() { return have_program("qemu-img") && have_program("qemu-io"); }

// Runs `program` (vhdx io or qemu-io -f vhdx) on image with one -c per command.
CliRun io(const std::string& program, const std::string& image,
          const std::vector<std::string>& commands) {
  std::string line = program;
  for (const std::string& c : commands) line += " -c " + shell_quote(c);
  return run_shell(line + " " + shell_quote(image));
}

std::string vhdx_io(bool read_only) {
  return shell_quote(testing::vhdx_cli()) + " io" + (read_only ? " -r" : "");
}

// What the disk should hold, byte for byte, mirroring each command as it is issued.
class Model {
 public:
  Model() : bytes_(kDiskSize, 0) {}
  void fill(std::uint64_t offset, std::uint64_t length, std::uint8_t value) {
    std::fill_n(bytes_.begin() + static_cast<std::ptrdiff_t>(offset), length, value);
  }
  // One `read -q -P` per run of equal bytes: together they check every byte of the disk.
  std::vector<std::string> read_commands() const {
    std::vector<std::string> commands;
    for (std::uint64_t start = 0; start < bytes_.size();) {
      std::uint64_t end = start;
      while (end < bytes_.size() && bytes_[end] == bytes_[start]) ++end;
      commands.push_back("read -q -P " + std::to_string(bytes_[start]) + " " +
                         std::to_string(start) + " " + std::to_string(end - start));
      start = end;
    }
    return commands;
  }
  std::string sha256() const { return testing::sha256_hex(bytes_); }

 private:
  std::vector<std::uint8_t> bytes_;
};

struct ImageKind {
  const char* name;
  bool by_qemu;         // made by qemu-img create, else by vhdx create
  const char* options;  // -o value
};

std::ostream& operator<<(std::ostream& os, const ImageKind& kind) { return os << kind.name; }

std::string make_image(const ImageKind& kind, const std::string& path) {
  std::string command = kind.by_qemu
                            ? "qemu-img create -q -f vhdx -o " + shell_quote(kind.options) + " " +
                                  shell_quote(path) + " 64M"
                            : shell_quote(testing::vhdx_cli()) + " create -q -o " +
                                  shell_quote(kind.options) + " " + shell_quote(path) + " 64M";
  CliRun r = run_shell(command);
  EXPECT_EQ(r.status, 0) << command << "\n" << r.err;
  return path;
}

class IoWriteScript : public ::testing::TestWithParam<ImageKind> {};

TEST_P(IoWriteScript, WritesDiscardsAndZeroesReadBackExactly) {
  const ImageKind& kind = GetParam();
  if (kind.by_qemu && !have_qemu()) {
    if (in_ci()) FAIL() << "qemu-img/qemu-io missing under CI=true";
    GTEST_SKIP() << "qemu-img/qemu-io not installed";
  }
  std::string image = make_image(kind, make_temp_dir() + "/disk.vhdx");
  Model model;
  // Fill the areas discard and write -z will clear, so their zeros mean something.
  CliRun prep = io(vhdx_io(false), image, {"write -q -P 0x77 7M 4M", "write -q -P 0x33 19M 3M"});
  ASSERT_EQ(prep.status, 0) << prep.err;
  EXPECT_EQ(prep.out, "");
  model.fill(7 * kMiB, 4 * kMiB, 0x77);
  model.fill(19 * kMiB, 3 * kMiB, 0x33);

  CliRun r = io(vhdx_io(false), image,
                {"write -P 0x5a 1M 3M", "write -P 0x11 100 1000", "discard 8M 2M",
                 "write -z 20M 64k", "flush"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  model.fill(1 * kMiB, 3 * kMiB, 0x5a);
  model.fill(100, 1000, 0x11);
  model.fill(8 * kMiB, 2 * kMiB, 0);
  model.fill(20 * kMiB, 64 * kKiB, 0);
  // Exact qemu-io lines, each followed by its timing line.
  const char* expected[] = {"wrote 3145728/3145728 bytes at offset 1048576\n",
                            "wrote 1000/1000 bytes at offset 100\n",
                            "discard 2097152/2097152 bytes at offset 8388608\n",
                            "wrote 65536/65536 bytes at offset 20971520\n"};
  std::size_t pos = 0;
  for (const char* line : expected) {
    std::size_t found = r.out.find(line, pos);
    ASSERT_NE(found, std::string::npos) << line << " in:\n" << r.out;
    std::size_t timing = r.out.find(", 1 ops; ", found);
    ASSERT_NE(timing, std::string::npos) << r.out;
    pos = timing;
  }

  // Every byte of the disk, checked by the read-only CLI.
  std::vector<std::string> reads = model.read_commands();
  CliRun check = io(vhdx_io(true), image, reads);
  EXPECT_EQ(check.status, 0) << check.out << check.err;
  EXPECT_EQ(check.out, "");

  if (std::string(kind.options).find("logical_sector_size=4096") != std::string::npos) return;
  if (!have_qemu()) {
    if (in_ci()) FAIL() << "qemu-img/qemu-io missing under CI=true";
    GTEST_SKIP() << "qemu-img/qemu-io not installed: peer checks skipped";
  }
  CliRun peer = io("qemu-io -f vhdx -r", image, reads);
  EXPECT_EQ(peer.status, 0) << peer.err;
  EXPECT_EQ(peer.out, "") << "qemu-io disagrees with the model";
  CliRun qcheck = run_shell("qemu-img check -f vhdx " + shell_quote(image));
  EXPECT_EQ(qcheck.status, 0) << qcheck.out << qcheck.err;
  EXPECT_NE(qcheck.out.find("No errors were found on the image."), std::string::npos) << qcheck.out;
  std::string raw = make_temp_dir() + "/disk.raw";
  ASSERT_EQ(
      run_shell("qemu-img convert -f vhdx -O raw " + shell_quote(image) + " " + shell_quote(raw))
          .status,
      0);
  EXPECT_EQ(testing::sha256_file(raw), model.sha256());
}

INSTANTIATE_TEST_SUITE_P(
    Images, IoWriteScript,
    ::testing::Values(ImageKind{"QemuDynamic1M", true, "subformat=dynamic,block_size=1M"},
                      ImageKind{"QemuDynamic32M", true, "subformat=dynamic,block_size=32M"},
                      ImageKind{"QemuFixed1M", true, "subformat=fixed,block_size=1M"},
                      ImageKind{"QemuFixed32M", true, "subformat=fixed,block_size=32M"},
                      ImageKind{"VhdxDynamic1M", false, "block_size=1M"},
                      ImageKind{"VhdxDynamic1MSector4k", false,
                                "block_size=1M,logical_sector_size=4096"}),
    [](const ::testing::TestParamInfo<ImageKind>& info) { return std::string(info.param.name); });

TEST(IoWrite, ReadOnlyOpenRefusesWritesAndLeavesTheFile) {
  std::string image = make_temp_dir() + "/disk.vhdx";
  ASSERT_EQ(run_vhdx("create -q -o block_size=1M " + shell_quote(image) + " 64M").status, 0);
  std::string before = testing::sha256_file(image);
  for (const char* command : {"write 0 1k", "write -z 0 1k", "discard 0 1k", "flush"}) {
    CliRun r = io(vhdx_io(true), image, {command});
    EXPECT_EQ(r.status, 1) << command;
    EXPECT_EQ(r.out, "") << command;
    EXPECT_NE(r.err.find("Block node is read-only"), std::string::npos) << command << r.err;
  }
  EXPECT_EQ(testing::sha256_file(image), before);
  // Without -r the default fill is 0xcd, as qemu-io's.
  CliRun w = io(vhdx_io(false), image, {"write -q 512 1k", "sleep 20"});
  EXPECT_EQ(w.status, 0) << w.err;
  CliRun r = io(vhdx_io(true), image, {"read -q -P 0xcd 512 1k", "read -q -P 0 0 512"});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(IoWrite, SourceFileRepeatsAndBadArgumentsFail) {
  std::string dir = make_temp_dir();
  std::string image = dir + "/disk.vhdx";
  ASSERT_EQ(run_vhdx("create -q -o block_size=1M " + shell_quote(image) + " 64M").status, 0);
  std::string source = dir + "/src.bin";
  std::ofstream(source, std::ios::binary) << "ABC";
  CliRun w = io(vhdx_io(false), image, {"write -q -s " + source + " 1000 7"});
  ASSERT_EQ(w.status, 0) << w.err;
  CliRun r = io(vhdx_io(true), image, {"read -v 992 16"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("41 42 43 41 42 43 41"), std::string::npos) << r.out;

  // A source larger than the write buffer (3 MiB + 5 bytes of a pattern that never repeats
  // within 1 MiB) over an 8 MiB write: the whole file repeats, as in qemu-io.
  std::vector<std::uint8_t> big((3 << 20) + 5);
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 13);
  const std::string big_source = dir + "/big.bin";
  std::ofstream(big_source, std::ios::binary)
      .write(reinterpret_cast<const char*>(big.data()), static_cast<std::streamsize>(big.size()));
  w = io(vhdx_io(false), image, {"write -q -s " + big_source + " 3000 8M"});
  ASSERT_EQ(w.status, 0) << w.err;
  const std::string raw = dir + "/disk.raw";
  ASSERT_EQ(run_vhdx("convert -O raw " + shell_quote(image) + " " + shell_quote(raw)).status, 0);
  const std::string disk = testing::read_file_text(raw);
  ASSERT_EQ(disk.size(), 64u << 20);
  for (std::size_t i = 0; i < (8u << 20); ++i) {
    ASSERT_EQ(static_cast<std::uint8_t>(disk[3000 + i]), big[i % big.size()]) << "byte " << i;
  }
  EXPECT_EQ(disk[3000 + (8 << 20)], 0);

  struct Bad {
    const char* command;
    const char* message;
  };
  for (const Bad& bad : {Bad{"write -z -P 1 0 1k", "-z supports neither"},
                         Bad{"write 64M 1", "beyond the end of the disk"},
                         Bad{"discard 63M 2M", "beyond the end of the disk"},
                         Bad{"write -u 0 1k", "-u requires -z"}, Bad{"write 0", "expected 2"},
                         Bad{"flush now", "expected 0"}, Bad{"sleep x", "invalid milliseconds"},
                         Bad{"write -s /nonexistent/file 0 1k", "cannot open source file"}}) {
    CliRun b = io(vhdx_io(false), image, {bad.command});
    EXPECT_EQ(b.status, 1) << bad.command;
    EXPECT_NE(b.err.find(bad.message), std::string::npos) << bad.command << ": " << b.err;
  }
}

// The same seeded script of pattern writes, zero writes and discards, run by qemu-io on one image
// and by `vhdx io` on its twin, must leave identical disks. qemu's VHDX driver does not zero on
// discard, so qemu-io gets `write -z` wherever `vhdx io` gets `discard`: both must read as zeros.
TEST(IoWrite, RandomScriptMatchesQemuIo) {
  if (!have_qemu()) {
    if (in_ci()) FAIL() << "qemu-img/qemu-io missing under CI=true";
    GTEST_SKIP() << "qemu-img/qemu-io not installed";
  }
  for (const char* options : {"subformat=dynamic,block_size=1M", "subformat=fixed,block_size=1M",
                              "subformat=dynamic,block_size=8M"}) {
    SCOPED_TRACE(options);
    std::string dir = make_temp_dir();
    ImageKind kind{"twin", true, options};
    std::string ours = make_image(kind, dir + "/ours.vhdx");
    std::string theirs = make_image(kind, dir + "/theirs.vhdx");
    std::mt19937_64 rng(20261126);
    Model model;
    std::vector<std::string> our_script;
    std::vector<std::string> their_script;
    for (int i = 0; i < 40; ++i) {
      // Lengths up to 3 MiB cross 1 MiB block edges; half the ranges are sector-aligned.
      bool aligned = rng() % 2 == 0;
      std::uint64_t length = 1 + rng() % (3 * kMiB);
      std::uint64_t offset = rng() % (kDiskSize - length);
      if (aligned) {
        length = std::max<std::uint64_t>(512, length & ~std::uint64_t{511});
        offset &= ~std::uint64_t{511};
      }
      std::string range = std::to_string(offset) + " " + std::to_string(length);
      switch (rng() % 4) {
        case 0:
        case 1: {
          auto value = static_cast<std::uint8_t>(1 + rng() % 255);
          std::string command = "write -q -P " + std::to_string(value) + " " + range;
          our_script.push_back(command);
          their_script.push_back(command);
          model.fill(offset, length, value);
          break;
        }
        case 2:
          our_script.push_back("write -q -z " + range);
          their_script.push_back("write -q -z " + range);
          model.fill(offset, length, 0);
          break;
        default:
          our_script.push_back("discard -q " + range);
          their_script.push_back("write -q -z " + range);
          model.fill(offset, length, 0);
          break;
      }
    }
    our_script.push_back("flush");
    their_script.push_back("flush");
    CliRun a = io(vhdx_io(false), ours, our_script);
    ASSERT_EQ(a.status, 0) << a.err;
    CliRun b = io("qemu-io -f vhdx", theirs, their_script);
    ASSERT_EQ(b.status, 0) << b.err;
    EXPECT_EQ(a.out, b.out);
    std::string our_raw = dir + "/ours.raw";
    std::string their_raw = dir + "/theirs.raw";
    ASSERT_EQ(run_shell("qemu-img convert -f vhdx -O raw " + shell_quote(ours) + " " +
                        shell_quote(our_raw))
                  .status,
              0);
    ASSERT_EQ(run_shell("qemu-img convert -f vhdx -O raw " + shell_quote(theirs) + " " +
                        shell_quote(their_raw))
                  .status,
              0);
    EXPECT_EQ(run_shell("cmp " + shell_quote(our_raw) + " " + shell_quote(their_raw)).status, 0);
    EXPECT_EQ(testing::sha256_file(our_raw), model.sha256());
    CliRun qcheck = run_shell("qemu-img check -f vhdx " + shell_quote(ours));
    EXPECT_EQ(qcheck.status, 0) << qcheck.out << qcheck.err;
  }
}

}  // namespace
}  // namespace vhdx
