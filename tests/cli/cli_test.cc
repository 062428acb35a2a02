// End-to-end tests of the `vhdx` command line: exact JSON values, qemu-io style output, exit
// statuses, and agreement with qemu-img / qemu-io on the same images.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/cli_run.h"
#include "support/corpus.h"

namespace vhdx {
namespace {

using nlohmann::json;
using testing::CliRun;
using testing::corpus_image;
using testing::have_program;
using testing::in_ci;
using testing::make_temp_dir;
using testing::read_file_text;
using testing::run_command;
using testing::run_shell;
using testing::run_vhdx;
using testing::sha256_file;
using testing::shell_quote;

constexpr std::uint64_t kMiB = 1 << 20;

std::uint64_t allocated_bytes(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

std::uint64_t file_size(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<std::uint64_t>(st.st_size);
}

// qemu-io prints a timing line after each transfer; drop it to compare the rest.
std::string without_timing(const std::string& text) {
  static const std::regex kTiming(R"([^\n]*, 1 ops; [^\n]*\n)");
  return std::regex_replace(text, kTiming, "");
}

// One map entry reduced to the fields compared.
struct Range {
  std::uint64_t start, length;
  bool present, zero, data;
  friend bool operator==(const Range&, const Range&) = default;
};
std::ostream& operator<<(std::ostream& os, const Range& r) {
  return os << "{" << r.start << "+" << r.length << " present=" << r.present << " zero=" << r.zero
            << " data=" << r.data << "}";
}

// Merges adjacent entries whose chosen flags agree (file offsets ignored).
std::vector<Range> ranges_of(const json& map, bool keep_zero_data = true) {
  std::vector<Range> out;
  for (const json& e : map) {
    Range r{e.at("start").get<std::uint64_t>(), e.at("length").get<std::uint64_t>(),
            e.at("present").get<bool>(), keep_zero_data && e.at("zero").get<bool>(),
            keep_zero_data && e.at("data").get<bool>()};
    if (!out.empty() && out.back().start + out.back().length == r.start &&
        out.back().present == r.present && out.back().zero == r.zero && out.back().data == r.data) {
      out.back().length += r.length;
    } else {
      out.push_back(r);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Images made by qemu-img and filled by qemu-io.

class QemuImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_program("qemu-img") || !have_program("qemu-io")) {
      if (in_ci()) FAIL() << "qemu-img/qemu-io not found, and CI=true requires them";
      GTEST_SKIP() << "qemu-img/qemu-io not found: install qemu-utils to run this test";
    }
    dir_ = make_temp_dir();
    image_ = dir_ + "/t.vhdx";
    // 64 MiB of 1 MiB blocks: 3 MiB of 0xab, 512 KiB of 0x5c in block 10, 2 MiB written as
    // zeros at 20 MiB; qemu-img marks the untouched blocks ZERO (block_state_zero=on).
    make_image(image_, "block_size=1M", "64M",
               {"write -P 0xab 0 3M", "write -P 0x5c 10M 512k", "write -z 20M 2M"});
  }

  void make_image(const std::string& path, const std::string& options, const std::string& size,
                  const std::vector<std::string>& writes) {
    ASSERT_EQ(run_command("qemu-img create -q -f vhdx -o " + options + " " + shell_quote(path) +
                          " " + size),
              0);
    std::string cmds;
    for (const std::string& w : writes) cmds += " -c " + shell_quote(w);
    ASSERT_EQ(run_command("qemu-io -f vhdx" + cmds + " " + shell_quote(path) + " >/dev/null"), 0);
  }

  std::string dir_;
  std::string image_;
};

TEST_F(QemuImageTest, InfoJsonHasExactValues) {
  CliRun r = run_vhdx("info --output=json " + shell_quote(image_));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  json j = json::parse(r.out);
  EXPECT_EQ(j["format"], "vhdx");
  EXPECT_EQ(j["filename"], image_);
  EXPECT_EQ(j["type"], "dynamic");
  EXPECT_EQ(j["virtual-size"], 64 * kMiB);
  EXPECT_EQ(j["block-size"], kMiB);
  EXPECT_EQ(j["cluster-size"], kMiB);
  EXPECT_EQ(j["logical-sector-size"], 512);
  EXPECT_EQ(j["physical-sector-size"], 512);
  EXPECT_EQ(j["format-version"], 1);
  EXPECT_EQ(j["file-size"], file_size(image_));
  EXPECT_EQ(j["actual-size"], allocated_bytes(image_));
  EXPECT_EQ(j["creator"].get<std::string>().rfind("QEMU v", 0), 0u) << j["creator"];
  EXPECT_EQ(j["dirty-flag"], false);
  EXPECT_EQ(j["log"]["state"], "empty");
  EXPECT_EQ(j["log"]["guid"], "00000000-0000-0000-0000-000000000000");
  EXPECT_EQ(j["log"]["offset"], kMiB);
  EXPECT_EQ(j["log"]["length"], kMiB);
  EXPECT_TRUE(std::regex_match(j["page83-id"].get<std::string>(),
                               std::regex("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                                          "[0-9a-f]{12}")))
      << j["page83-id"];
  ASSERT_EQ(j["headers"].size(), 2u);
  int current = 0;
  for (int i = 0; i < 2; ++i) {
    const json& h = j["headers"][i];
    EXPECT_EQ(h["file-offset"], (i + 1) * 65536);
    EXPECT_EQ(h["valid"], true);
    EXPECT_EQ(h["version"], 1);
    current += h["current"].get<bool>() ? 1 : 0;
  }
  EXPECT_EQ(current, 1);
  // The current header is the one with the larger sequence number.
  int cur = j["headers"][0]["current"].get<bool>() ? 0 : 1;
  EXPECT_GT(j["headers"][cur]["sequence-number"].get<std::uint64_t>(),
            j["headers"][1 - cur]["sequence-number"].get<std::uint64_t>());
  ASSERT_EQ(j["regions"].size(), 2u);
  EXPECT_EQ(j["regions"][0]["name"], "BAT");
  EXPECT_EQ(j["regions"][0]["guid"], "2dc27766-f623-4200-9d64-115e9bfd4a08");
  EXPECT_EQ(j["regions"][1]["name"], "metadata");
  EXPECT_EQ(j["regions"][1]["guid"], "8b7ca206-4790-4b9a-b8fe-575f050f886e");
  std::vector<std::string> items;
  for (const json& m : j["metadata"]) items.push_back(m["name"]);
  EXPECT_EQ(items,
            (std::vector<std::string>{"file-parameters", "virtual-disk-size", "virtual-disk-id",
                                      "logical-sector-size", "physical-sector-size"}));
  // Blocks 0-2, 10 and 20-21 hold data; the other 58 are ZERO.
  EXPECT_EQ(j["blocks"]["total"], 64);
  EXPECT_EQ(j["blocks"]["allocated"], 6);
  EXPECT_EQ(j["blocks"]["fully-present"], 6);
  EXPECT_EQ(j["blocks"]["zero"], 58);
  EXPECT_EQ(j["blocks"]["not-present"], 0);
  EXPECT_EQ(j["blocks"]["unmapped"], 0);
  EXPECT_FALSE(j.contains("parent-locator"));
}

TEST_F(QemuImageTest, InfoHumanHasAlignedLines) {
  CliRun r = run_vhdx("info " + shell_quote(image_));
  ASSERT_EQ(r.status, 0) << r.err;
  for (std::string line :
       {"file format:            vhdx\n", "type:                   dynamic\n",
        "virtual size:           64 MiB (67108864 bytes)\n",
        "block size:             1 MiB (1048576 bytes)\n", "logical sector size:    512\n",
        "allocated blocks:       6 (6 fully present, 0 partially present)\n",
        "zero blocks:            58\n"}) {
    EXPECT_NE(r.out.find("\n" + line), std::string::npos) << line << "\nin:\n" << r.out;
  }
  EXPECT_EQ(r.out.rfind("image:                  " + image_ + "\n", 0), 0u) << r.out;
}

TEST_F(QemuImageTest, MapJsonDescribesTheWritesAndItsOffsetsHoldTheData) {
  CliRun r = run_vhdx("map --output=json " + shell_quote(image_));
  ASSERT_EQ(r.status, 0) << r.err;
  json map = json::parse(r.out);
  std::vector<Range> expected = {
      {0, 3 * kMiB, true, false, true},         {3 * kMiB, 7 * kMiB, true, true, false},
      {10 * kMiB, kMiB, true, false, true},     {11 * kMiB, 9 * kMiB, true, true, false},
      {20 * kMiB, 2 * kMiB, true, false, true}, {22 * kMiB, 42 * kMiB, true, true, false},
  };
  EXPECT_EQ(ranges_of(map), expected) << r.out;
  // Every entry has depth 0; data entries carry the file offset, the others none; and the file
  // holds at that offset what qemu wrote.
  std::string container = read_file_text(image_);
  for (const json& e : map) {
    EXPECT_EQ(e["depth"], 0);
    ASSERT_EQ(e.contains("offset"), e["data"].get<bool>()) << e.dump();
    if (!e["data"].get<bool>()) continue;
    std::uint64_t start = e["start"], length = e["length"], offset = e["offset"];
    ASSERT_LE(offset + length, container.size());
    for (std::uint64_t i = 0; i < length; i += 4096) {
      std::uint64_t v = start + i;
      char want = v < 3 * kMiB                                   ? '\xab'
                  : (v >= 10 * kMiB && v < 10 * kMiB + kMiB / 2) ? '\x5c'
                                                                 : '\0';
      ASSERT_EQ(container[offset + i], want) << "virtual offset " << v;
    }
  }
}

TEST_F(QemuImageTest, MapAgreesWithQemuImgOnTheFieldsBothKnow) {
  CliRun ours = run_vhdx("map --output=json " + shell_quote(image_));
  ASSERT_EQ(ours.status, 0) << ours.err;
  std::string theirs_text;
  ASSERT_EQ(run_command("qemu-img map -f vhdx --output=json " + shell_quote(image_), &theirs_text),
            0);
  // QEMU 7.2's vhdx driver has no block-status hook, so qemu-img calls the whole disk one data
  // extent with no offset. What both can say is start, length, depth and present.
  EXPECT_EQ(ranges_of(json::parse(ours.out), false), ranges_of(json::parse(theirs_text), false))
      << "ours:\n"
      << ours.out << "qemu-img:\n"
      << theirs_text;
  for (const json& e : json::parse(theirs_text)) EXPECT_EQ(e["depth"], 0);
  // Every range we call zero reads as zeros through QEMU, and qemu-io agrees on the data.
  std::string reads;
  for (const json& e : json::parse(ours.out)) {
    std::uint64_t start = e["start"], length = e["length"];
    if (e["zero"].get<bool>()) {
      reads += " -c " +
               shell_quote("read -q -P 0 " + std::to_string(start) + " " + std::to_string(length));
    }
  }
  EXPECT_EQ(run_command("qemu-io -r -f vhdx" + reads + " " + shell_quote(image_)), 0);
}

TEST_F(QemuImageTest, MapHumanListsDataExtentsLikeQemuImg) {
  CliRun json_run = run_vhdx("map --output=json " + shell_quote(image_));
  ASSERT_EQ(json_run.status, 0);
  std::string expected = "Offset          Length          Mapped to       File\n";
  for (const json& e : json::parse(json_run.out)) {
    if (!e["data"].get<bool>()) continue;
    auto hex = [](std::uint64_t v) {
      std::ostringstream os;
      if (v != 0)
        os << "0x" << std::hex << v;
      else
        os << "0";
      std::string s = os.str();
      return s + std::string(16 - s.size(), ' ');
    };
    expected += hex(e["start"]) + hex(e["length"]) + hex(e["offset"]) + image_ + "\n";
  }
  CliRun r = run_vhdx("map " + shell_quote(image_));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, expected);
  EXPECT_EQ(r.out.substr(0, 67), expected.substr(0, 67));
  EXPECT_NE(r.out.find("\n0               0x300000        0x"), std::string::npos) << r.out;
}

TEST_F(QemuImageTest, MapWithBlocksNotPresent) {
  std::string sparse = dir_ + "/s.vhdx";
  make_image(sparse, "block_size=1M,block_state_zero=off", "16M", {"write -P 0x11 2M 1M"});
  CliRun r = run_vhdx("map --output=json " + shell_quote(sparse));
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<Range> expected = {{0, 2 * kMiB, false, true, false},
                                 {2 * kMiB, kMiB, true, false, true},
                                 {3 * kMiB, 13 * kMiB, false, true, false}};
  EXPECT_EQ(ranges_of(json::parse(r.out)), expected) << r.out;
  CliRun window =
      run_vhdx("map --output=json --start-offset=1M --max-length=1536k " + shell_quote(sparse));
  ASSERT_EQ(window.status, 0) << window.err;
  expected = {{kMiB, kMiB, false, true, false}, {2 * kMiB, kMiB / 2, true, false, true}};
  EXPECT_EQ(ranges_of(json::parse(window.out)), expected) << window.out;
  CliRun io_map = run_vhdx("io " + shell_quote(sparse) + " -c map");
  ASSERT_EQ(io_map.status, 0) << io_map.err;
  EXPECT_EQ(io_map.out,
            "2 MiB (0x200000) bytes not allocated at offset 0 bytes (0x0)\n"
            "1 MiB (0x100000) bytes     allocated at offset 2 MiB (0x200000)\n"
            "13 MiB (0xd00000) bytes not allocated at offset 3 MiB (0x300000)\n");
}

TEST_F(QemuImageTest, IoReadPatternPassesOnTheRightRange) {
  CliRun r =
      run_vhdx("io -r " + shell_quote(image_) +
               " -c 'read -P 0xab 0 3M' -c 'read -P 0x5c 10M 512k'" + " -c 'read -P 0 3M 7M'");
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(without_timing(r.out),
            "read 3145728/3145728 bytes at offset 0\n"
            "read 524288/524288 bytes at offset 10485760\n"
            "read 7340032/7340032 bytes at offset 3145728\n");
  EXPECT_TRUE(std::regex_search(
      r.out, std::regex(R"(\n3 MiB, 1 ops; [0-9:.]+( sec)? \([0-9.]+ [KMGT]?i?B(ytes)?/sec and )"
                        R"([0-9.]+ ops/sec\)\n)")))
      << r.out;
}

TEST_F(QemuImageTest, IoReadPatternFailsWithTheOffsetOfTheFirstWrongByte) {
  CliRun r =
      run_vhdx("io " + shell_quote(image_) + " -c 'read -P 0xab 2M 2M' -c 'read -P 0xab 0 1M'");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(without_timing(r.out),
            "Pattern verification failed at offset 3145728, 1048576 bytes\n"
            "read 2097152/2097152 bytes at offset 2097152\n"
            "read 1048576/1048576 bytes at offset 0\n");
  // Later commands still run after a failure; the status says one failed.
  CliRun tail = run_vhdx("io " + shell_quote(image_) + " -c 'read -q -P 0x5c 10M 1M'");
  EXPECT_EQ(tail.status, 1);
  EXPECT_EQ(tail.out, "Pattern verification failed at offset 11010048, 524288 bytes\n");
}

TEST_F(QemuImageTest, IoOutputMatchesQemuIo) {
  const std::string cmds =
      " -c 'read -v 3145720 24' -c 'read -v 10M 40' -c length -c map -c 'read -q 0 1'";
  CliRun ours = run_vhdx("io " + shell_quote(image_) + cmds);
  ASSERT_EQ(ours.status, 0) << ours.err;
  std::string theirs;
  ASSERT_EQ(run_command("qemu-io -r -f vhdx" + cmds + " " + shell_quote(image_), &theirs), 0);
  EXPECT_EQ(without_timing(ours.out), without_timing(theirs));
  EXPECT_EQ(without_timing(ours.out),
            "002ffff8:  ab ab ab ab ab ab ab ab 00 00 00 00 00 00 00 00  ................\n"
            "00300008:  00 00 00 00 00 00 00 00  ........\n"
            "read 24/24 bytes at offset 3145720\n"
            "00a00000:  5c 5c 5c 5c 5c 5c 5c 5c 5c 5c 5c 5c 5c 5c 5c 5c  ................\n"
            "00a00010:  5c 5c 5c 5c 5c 5c 5c 5c 5c 5c 5c 5c 5c 5c 5c 5c  ................\n"
            "00a00020:  5c 5c 5c 5c 5c 5c 5c 5c  ........\n"
            "read 40/40 bytes at offset 10485760\n"
            "64 MiB\n"
            "64 MiB (0x4000000) bytes     allocated at offset 0 bytes (0x0)\n");
}

TEST_F(QemuImageTest, IoErrorsSetTheExitStatus) {
  CliRun unknown = run_vhdx("io " + shell_quote(image_) + " -c bogus -c length");
  EXPECT_EQ(unknown.status, 1);
  EXPECT_EQ(unknown.err, "command \"bogus\" not found\n");
  EXPECT_EQ(unknown.out, "64 MiB\n");  // the next command still ran
  CliRun bad_size = run_vhdx("io " + shell_quote(image_) + " -c 'read 0 4Q'");
  EXPECT_EQ(bad_size.status, 1);
  EXPECT_EQ(bad_size.err.rfind("read: invalid size '4Q': expected a byte count", 0), 0u)
      << bad_size.err;
  CliRun beyond = run_vhdx("io " + shell_quote(image_) + " -c 'read 64M 512'");
  EXPECT_EQ(beyond.status, 1);
  EXPECT_EQ(beyond.err,
            "read failed: offset 67108864 + length 512 is beyond the end of the disk "
            "(67108864 bytes) (out-of-range)\n");
  CliRun from_stdin = run_shell("printf 'length\\nread -q -P 0xab 0 4k\\nquit\\nlength\\n' | " +
                                shell_quote(testing::vhdx_cli()) + " io " + shell_quote(image_));
  EXPECT_EQ(from_stdin.status, 0) << from_stdin.err;
  EXPECT_EQ(from_stdin.out, "64 MiB\n");
}

TEST_F(QemuImageTest, ConvertMatchesQemuImgAndIsSparse) {
  std::string ours = dir_ + "/ours.raw", theirs = dir_ + "/theirs.raw";
  CliRun r = run_vhdx("convert -p -f vhdx -O raw " + shell_quote(image_) + " " + shell_quote(ours));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "");
  // The progress line is redrawn in place and ends at 100% with a newline.
  EXPECT_EQ(r.err.rfind("    (0.00/100%)\r", 0), 0u) << r.err;
  EXPECT_TRUE(r.err.ends_with("    (100.00/100%)\r\n")) << r.err;
  ASSERT_EQ(run_command("qemu-img convert -f vhdx -O raw " + shell_quote(image_) + " " +
                        shell_quote(theirs)),
            0);
  EXPECT_EQ(run_command("cmp " + shell_quote(ours) + " " + shell_quote(theirs)), 0);
  EXPECT_EQ(file_size(ours), 64 * kMiB);
  // 5.5 MiB of non-zero data in 64 MiB: the zero blocks must be holes.
  EXPECT_LT(allocated_bytes(ours), 16 * kMiB) << "convert output is not sparse";
  // Without -p: silent.
  CliRun quiet = run_vhdx("convert " + shell_quote(image_) + " " + shell_quote(ours));
  EXPECT_EQ(quiet.status, 0);
  EXPECT_EQ(quiet.out + quiet.err, "");
}

TEST_F(QemuImageTest, InfoShowsWhatItCanOfADamagedBat) {
  CliRun good = run_vhdx("info --output=json " + shell_quote(image_));
  ASSERT_EQ(good.status, 0) << good.err;
  std::uint64_t bat = json::parse(good.out)["regions"][0]["file-offset"];
  // State 4 is reserved: entry 5 becomes invalid.
  ASSERT_EQ(run_command("printf '\\004' | dd of=" + shell_quote(image_) +
                        " bs=1 seek=" + std::to_string(bat + 5 * 8) + " conv=notrunc 2>/dev/null"),
            0);
  CliRun r = run_vhdx("info --output=json " + shell_quote(image_));
  EXPECT_EQ(r.status, 1);
  json j = json::parse(r.out);
  EXPECT_EQ(j["virtual-size"], 64 * kMiB);
  EXPECT_TRUE(j["blocks"].is_null());
  // Under this image's own name the reason does not repeat it; the error on stderr does.
  EXPECT_EQ(j["blocks-unavailable"].get<std::string>().rfind("BAT entry 5", 0), 0u) << r.out;
  // The message names the file, as open errors do.
  EXPECT_EQ(r.err.rfind("vhdx: '" + image_ + "': BAT entry 5", 0), 0u) << r.err;
  EXPECT_TRUE(r.err.ends_with("(corrupt)\n")) << r.err;
  CliRun map = run_vhdx("map --output=json " + shell_quote(image_));
  EXPECT_EQ(map.status, 1);
  EXPECT_FALSE(json::accept(map.out)) << "a failed map must not look like a whole one";
}

// ---------------------------------------------------------------------------------------------
// Corpus images (no QEMU needed).

TEST(CliCorpus, FixedWindowsImageInfo) {
  std::string image = corpus_image("dissect-fixed/fixed.vhdx.gz");
  CliRun r = run_vhdx("info --output=json " + shell_quote(image));
  ASSERT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["type"], "fixed");
  EXPECT_EQ(j["creator"], "Microsoft Windows 10.0.18363.0");
  EXPECT_EQ(j["virtual-size"], 10 * kMiB);
  EXPECT_EQ(j["block-size"], 2 * kMiB);
  EXPECT_EQ(j["logical-sector-size"], 512);
  EXPECT_EQ(j["physical-sector-size"], 4096);
  EXPECT_EQ(j["leave-blocks-allocated"], true);
  EXPECT_EQ(j["page83-id"].get<std::string>().substr(0, 9), "4a49d245-");
  EXPECT_EQ(j["log"]["state"], "empty");
  EXPECT_EQ(j["blocks"]["total"], 5);
  EXPECT_EQ(j["blocks"]["allocated"], 5);
  EXPECT_EQ(j["blocks"]["fully-present"], 5);
}

TEST(CliCorpus, ZeroBlocksImageMapAndConvert) {
  std::string image = corpus_image("coreos-config2-base/config2_base.vhdx.bz2");
  CliRun info = run_vhdx("info --output=json " + shell_quote(image));
  ASSERT_EQ(info.status, 0) << info.err;
  json j = json::parse(info.out);
  EXPECT_EQ(j["creator"], "Microsoft Windows 6.3.9600.16521");
  EXPECT_EQ(j["blocks"]["fully-present"], 1);
  EXPECT_EQ(j["blocks"]["zero"], 2);
  EXPECT_EQ(j["blocks"]["not-present"], 1);
  CliRun map = run_vhdx("map --output=json " + shell_quote(image));
  ASSERT_EQ(map.status, 0) << map.err;
  std::vector<Range> expected = {{0, 32 * kMiB, true, false, true},
                                 {32 * kMiB, 32 * kMiB, false, true, false},
                                 {64 * kMiB, 36 * kMiB, true, true, false}};
  EXPECT_EQ(ranges_of(json::parse(map.out)), expected) << map.out;
  std::string raw = make_temp_dir() + "/config2.raw";
  CliRun convert = run_vhdx("convert -O raw " + shell_quote(image) + " " + shell_quote(raw));
  ASSERT_EQ(convert.status, 0) << convert.err;
  EXPECT_EQ(sha256_file(raw), "afce9cca367ebfa91a673d612bcb6fc32b12a80211207f7a7b1cd3aed3cac19d");
  EXPECT_LT(allocated_bytes(raw), 40 * kMiB) << "68 MiB of zeros should be holes";
}

TEST(CliCorpus, DynamicImageConvertHash) {
  std::string image = corpus_image("dissect-dynamic/dynamic.vhdx.gz");
  std::string raw = make_temp_dir() + "/dynamic.raw";
  CliRun convert = run_vhdx("convert " + shell_quote(image) + " " + shell_quote(raw));
  ASSERT_EQ(convert.status, 0) << convert.err;
  EXPECT_EQ(sha256_file(raw), "8e2b5e9265d694b42b81819e3bff29770eff4ed0f4f9f311693ff3dbdc93efac");
  // From 2 MiB the disk reads 0xff up to a few bytes at 0x263006 (qemu-io sees the same).
  CliRun read = run_vhdx("io " + shell_quote(image) + " -c 'read -q -P 0xff 2M 300k'");
  EXPECT_EQ(read.status, 0) << read.out << read.err;
  EXPECT_EQ(read.out, "");
  CliRun wrong = run_vhdx("io " + shell_quote(image) + " -c 'read -q -P 0xff 2M 1M'");
  EXPECT_EQ(wrong.status, 1);
  EXPECT_EQ(wrong.out, "Pattern verification failed at offset 2502662, 643066 bytes\n");
}

// The QEMU-made image with a pending BAT update: info reports the dirty log, and reads and
// convert see the contents after an in-memory replay, without changing the file.
TEST(CliCorpus, DirtyLogImageReplaysInMemory) {
  std::string image = corpus_image("local-qemu72-dirtylog/qemu72-pending-bat-log.vhdx.bz2");
  const std::string before = sha256_file(image);
  CliRun r = run_vhdx("info --output=json " + shell_quote(image));
  ASSERT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["log"]["state"], "needs-replay");
  EXPECT_EQ(j["dirty-flag"], true);
  EXPECT_NE(j["log"]["guid"], "00000000-0000-0000-0000-000000000000");
  // The corpus README: one entry, sequence 1, carrying the BAT update.
  EXPECT_EQ(j["log"]["entries"], 1);
  EXPECT_EQ(j["log"]["sequence-first"], 1);
  EXPECT_EQ(j["log"]["sequence-last"], 1);
  CliRun human = run_vhdx("info " + shell_quote(image));
  EXPECT_NE(human.out.find(", 1 entry, sequence 1..1, replayed in memory"), std::string::npos)
      << human.out;
  EXPECT_EQ(j["blocks"]["fully-present"], 1);
  EXPECT_EQ(j["virtual-size"], 16 * kMiB);
  CliRun read =
      run_vhdx("io -r " + shell_quote(image) + " -c 'read -P 0xa5 0 1M' -c 'read -P 0 1M 15M'");
  EXPECT_EQ(read.status, 0) << read.out << read.err;
  const std::string out = make_temp_dir() + "/out.raw";
  CliRun convert = run_vhdx("convert -O raw " + shell_quote(image) + " " + shell_quote(out));
  ASSERT_EQ(convert.status, 0) << convert.err;
  EXPECT_EQ(sha256_file(out), "db96ec75f924125171513a349d157d70691a484532596aee03f09daf5062d385");
  EXPECT_EQ(sha256_file(image), before) << "a read-only replay must not touch the file";
}

TEST(CliCorpus, DifferencingImageParentLocator) {
  std::string image = corpus_image("dissect-differencing/differencing.avhdx.gz");
  CliRun r = run_vhdx("info --output=json " + shell_quote(image));
  ASSERT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["type"], "differencing");
  EXPECT_EQ(j["virtual-size"], 8192 * kMiB);
  EXPECT_EQ(j["parent-locator"]["type"], "b04aefb7-d19e-4a81-b789-25b8e9445913");
  const json& entries = j["parent-locator"]["entries"];
  EXPECT_EQ(entries["parent_linkage"], "{ff34003b-11ed-4cf8-a166-b2be05e20b80}");
  EXPECT_EQ(entries["parent_linkage2"], "{00000000-0000-0000-0000-000000000000}");
  EXPECT_EQ(entries["relative_path"].get<std::string>().substr(0, 17), ".\\Generation 1_49");
  EXPECT_TRUE(entries.contains("absolute_win32_path"));
  EXPECT_TRUE(entries.contains("volume_path"));
  EXPECT_EQ(j["blocks"]["partially-present"], 32);
  EXPECT_EQ(j["blocks"]["not-present"], 4064);
  EXPECT_EQ(j["blocks"]["total"], 4096);
}

// ---------------------------------------------------------------------------------------------
// Exit statuses and messages on bad input.

TEST(CliErrors, NonexistentFile) {
  std::string missing = make_temp_dir() + "/missing.vhdx";
  for (std::string cmd : {"info ", "map ", "io -c length ", "convert "}) {
    std::string args = cmd + shell_quote(missing);
    if (cmd == "convert ") args += " " + shell_quote(missing + ".raw");
    CliRun r = run_vhdx(args);
    EXPECT_EQ(r.status, 1) << args;
    EXPECT_EQ(r.out, "") << args;
    EXPECT_EQ(r.err.rfind("vhdx: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find("(io-error, No such file or directory)\n"), std::string::npos) << r.err;
  }
  CliRun probe = run_vhdx("probe " + shell_quote(missing));
  EXPECT_EQ(probe.status, 2);
  EXPECT_EQ(probe.out, "");
  EXPECT_EQ(probe.err.rfind("vhdx: ", 0), 0u) << probe.err;
}

TEST(CliErrors, NotAVhdxFile) {
  std::string dir = make_temp_dir();
  std::string raw = dir + "/plain.raw";
  ASSERT_EQ(run_command("head -c 1048576 /dev/zero > " + shell_quote(raw)), 0);
  CliRun info = run_vhdx("info " + shell_quote(raw));
  EXPECT_EQ(info.status, 1);
  EXPECT_EQ(info.out, "");
  EXPECT_EQ(info.err.rfind("vhdx: ", 0), 0u);
  EXPECT_NE(info.err.find("(not-vhdx)\n"), std::string::npos) << info.err;
  CliRun probe = run_vhdx("probe " + shell_quote(raw));
  EXPECT_EQ(probe.status, 1);
  EXPECT_EQ(probe.out, "not vhdx\n");
  CliRun probe_dir = run_vhdx("probe " + shell_quote(dir));
  EXPECT_EQ(probe_dir.status, 2);
  std::string image = corpus_image("dissect-fixed/fixed.vhdx.gz");
  CliRun probe_ok = run_vhdx("probe " + shell_quote(image));
  EXPECT_EQ(probe_ok.status, 0);
  EXPECT_EQ(probe_ok.out, "vhdx\n");
}

TEST(CliErrors, BadArgumentsAndUnsupportedFormats) {
  std::string image = corpus_image("dissect-fixed/fixed.vhdx.gz");
  struct Case {
    std::string args;
    std::string err_start;
  } cases[] = {
      {"", "vhdx: missing command (one of info, map, convert, io, probe, create, check, bench)\n"},
      {"frobnicate x", "vhdx: unknown command 'frobnicate'"},
      {"info", "vhdx: IMAGE is required\n"},
      {"info --output=xml " + shell_quote(image), "vhdx: --output: invalid output format 'xml'"},
      {"map --start-offset=12Z " + shell_quote(image),
       "vhdx: --start-offset: invalid size '12Z': expected a byte count with an optional k, M, "
       "G, T, P or E suffix (powers of 1024) (invalid-argument)\n"},
      {"map --max-length=1.5M " + shell_quote(image), "vhdx: --max-length: invalid size '1.5M'"},
      {"map --start-offset=11M " + shell_quote(image), "vhdx: --start-offset 11534336 is beyond"},
      {"convert -O vhdx " + shell_quote(image) + " /dev/null", "vhdx: "},
      {"convert -O raw " + shell_quote(image) + " /dev/null", "vhdx: "},
      {"convert -O qcow2 " + shell_quote(image) + " /dev/null",
       "vhdx: output format 'qcow2' is not supported"},
      {"convert -f qcow2 " + shell_quote(image) + " /dev/null",
       "vhdx: source format 'qcow2' is not supported"},
      {"convert " + shell_quote(image) + " " + shell_quote(image), "vhdx: output '"},
      {"info --bogus " + shell_quote(image),
       "vhdx: The following argument was not expected: --bogus"},
  };
  for (const Case& c : cases) {
    CliRun r = run_vhdx(c.args);
    EXPECT_EQ(r.status, 1) << c.args;
    EXPECT_EQ(r.err.substr(0, c.err_start.size()), c.err_start) << c.args << "\n" << r.err;
  }
  // Refusing non-regular outputs never removes them.
  struct stat null_stat;
  ASSERT_EQ(::stat("/dev/null", &null_stat), 0);
  EXPECT_TRUE(S_ISCHR(null_stat.st_mode)) << "/dev/null is no longer a device";
  // Refusing to convert onto the source left it intact.
  CliRun probe = run_vhdx("probe " + shell_quote(image));
  EXPECT_EQ(probe.status, 0);
}

TEST(CliErrors, HelpAndVersionExitZero) {
  CliRun top = run_vhdx("--help");
  EXPECT_EQ(top.status, 0);
  for (const char* name : {"info", "map", "convert", "io", "probe"}) {
    EXPECT_NE(top.out.find(std::string("\n  ") + name + " "), std::string::npos) << top.out;
    CliRun sub = run_vhdx(std::string(name) + " --help");
    EXPECT_EQ(sub.status, 0) << name;
    EXPECT_NE(sub.out.find(std::string("Usage: vhdx ") + name), std::string::npos) << sub.out;
    EXPECT_EQ(sub.err, "");
  }
  CliRun io_help = run_vhdx("io --help");
  EXPECT_NE(io_help.out.find("\nread [-Cqv] [-P pattern [-s off] [-l len]] off len -- "),
            std::string::npos)
      << io_help.out;
  CliRun version = run_vhdx("--version");
  EXPECT_EQ(version.status, 0);
  EXPECT_TRUE(std::regex_match(version.out, std::regex("vhdx version [0-9]+\\.[0-9]+\\.[0-9]+\n")))
      << version.out;
  std::string image = corpus_image("dissect-fixed/fixed.vhdx.gz");
  CliRun io_cmd_help = run_vhdx("io " + shell_quote(image) + " -c 'help read'");
  EXPECT_EQ(io_cmd_help.status, 0);
  EXPECT_EQ(io_cmd_help.out.rfind("read [-Cqv] [-P pattern [-s off] [-l len]] off len -- reads", 0),
            0u);
}

}  // namespace
}  // namespace vhdx
