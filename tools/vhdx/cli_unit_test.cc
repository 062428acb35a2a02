// Unit tests of the image-free pieces of the CLI: parsing, qemu-style formatting, info/map
// rendering and the `vhdx io` commands on a fake target.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "human.h"
#include "io_commands.h"
#include "parse.h"
#include "render.h"

namespace vhdx::cli {
namespace {

constexpr std::uint64_t kMiB = 1 << 20;

TEST(ParseSize, AcceptsPlainBytesAndBinarySuffixes) {
  struct Case {
    const char* text;
    std::uint64_t value;
  } cases[] = {
      {"0", 0},
      {"512", 512},
      {"4k", 4096},
      {"4K", 4096},
      {"1M", kMiB},
      {"3m", 3 * kMiB},
      {"2G", 2ULL << 30},
      {"1T", 1ULL << 40},
      {"1P", 1ULL << 50},
      {"15E", 15ULL << 60},
      {"100b", 100},
      {"0x1000", 4096},
      {"0x10k", 16 * 1024},
      {"0xE", 14},  // a hex digit, not the exabyte suffix
      {"18446744073709551615", UINT64_MAX},
  };
  for (const Case& c : cases) {
    auto r = parse_size(c.text);
    ASSERT_TRUE(r) << c.text << ": " << r.error().message();
    EXPECT_EQ(*r, c.value) << c.text;
  }
}

TEST(ParseSize, RejectsGarbageWithTheTextInTheMessage) {
  for (const char* text : {"", "k", "12q", "1.5M", "-1", " 1", "1 ", "1MB", "0x", "0xg", "M1"}) {
    auto r = parse_size(text);
    ASSERT_FALSE(r) << "'" << text << "' parsed as " << *r;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(r.error().message(),
              std::string("invalid size '") + text +
                  "': expected a byte count with an optional k, M, G, T, P or E suffix (powers "
                  "of 1024)");
  }
}

TEST(ParseSize, RejectsOverflow) {
  for (const char* text : {"18446744073709551616", "16E", "16777216T", "0x10000000000000000"}) {
    auto r = parse_size(text);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().message(), std::string("size '") + text + "' is too large");
  }
}

TEST(ParsePatternByte, TakesQemuIoForms) {
  EXPECT_EQ(*parse_pattern_byte("0xab"), 0xab);
  EXPECT_EQ(*parse_pattern_byte("0XFF"), 0xff);
  EXPECT_EQ(*parse_pattern_byte("171"), 171);
  EXPECT_EQ(*parse_pattern_byte("0"), 0);
  EXPECT_EQ(*parse_pattern_byte("010"), 8);  // octal, as strtol base 0 reads it
  for (const char* text : {"256", "0x100", "abc", "", "-1", "0x", "08", "1k"}) {
    auto r = parse_pattern_byte(text);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().message(),
              std::string("'") + text + "' is not a valid pattern byte (0..255, 0x00..0xff)");
  }
}

TEST(SplitCommandLine, SplitsAtBlanksAndHonoursQuotes) {
  using Words = std::vector<std::string>;
  EXPECT_EQ(*split_command_line("read -P 0xab 0 4k"), (Words{"read", "-P", "0xab", "0", "4k"}));
  EXPECT_EQ(*split_command_line("  map \t "), (Words{"map"}));
  EXPECT_EQ(*split_command_line(""), Words{});
  EXPECT_EQ(*split_command_line(R"(a 'b c' "d \"e\"" f\ g '')"),
            (Words{"a", "b c", "d \"e\"", "f g", ""}));
  auto bad = split_command_line("read 'oops");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "unterminated single quote in 'read 'oops'");
}

TEST(OptionParser, GroupsAttachedAndSeparateValues) {
  std::vector<std::string> words = {"read", "-qv", "-P0xab", "-s", "4k", "0", "1M"};
  OptionParser parser(words, "P:s:l:qv");
  std::string seen;
  while (char c = parser.next()) {
    ASSERT_NE(c, '?') << parser.error();
    seen += c;
    if (c == 'P') {
      EXPECT_EQ(parser.value(), "0xab");
    }
    if (c == 's') {
      EXPECT_EQ(parser.value(), "4k");
    }
  }
  EXPECT_EQ(seen, "qvPs");
  EXPECT_EQ(parser.operands(), (std::vector<std::string>{"0", "1M"}));
}

TEST(OptionParser, DoubleDashEndsOptions) {
  std::vector<std::string> words = {"read", "-q", "--", "-1", "2"};
  OptionParser parser(words, "q");
  EXPECT_EQ(parser.next(), 'q');
  EXPECT_EQ(parser.next(), 0);
  EXPECT_EQ(parser.operands(), (std::vector<std::string>{"-1", "2"}));
}

TEST(OptionParser, ReportsUnknownOptionAndMissingValue) {
  std::vector<std::string> unknown = {"read", "-x", "0"};
  OptionParser p1(unknown, "q");
  EXPECT_EQ(p1.next(), '?');
  EXPECT_EQ(p1.error(), "invalid option -- 'x'");
  std::vector<std::string> missing = {"read", "-P"};
  OptionParser p2(missing, "P:");
  EXPECT_EQ(p2.next(), '?');
  EXPECT_EQ(p2.error(), "option requires an argument -- 'P'");
}

TEST(Human, SizesLikeQemuImg) {
  EXPECT_EQ(human_size(0), "0 B");
  EXPECT_EQ(human_size(999), "999 B");
  EXPECT_EQ(human_size(1000), "0.977 KiB");
  EXPECT_EQ(human_size(1024), "1 KiB");
  EXPECT_EQ(human_size(3895296), "3.71 MiB");  // qemu-img info's "disk size: 3.71 MiB"
  EXPECT_EQ(human_size(64 * kMiB), "64 MiB");
  EXPECT_EQ(human_size(8ULL << 30), "8 GiB");
}

TEST(Human, SizesLikeQemuIo) {
  EXPECT_EQ(io_size(kMiB), "1 MiB");
  EXPECT_EQ(io_size(512 * 1024), "512 KiB");
  EXPECT_EQ(io_size(40), "40 bytes");
  EXPECT_EQ(io_size(0), "0 bytes");
  EXPECT_EQ(io_size(1.5 * kMiB), "1.500 MiB");  // the qemu-io lines for these read
  EXPECT_EQ(io_size(1025), "1.001 KiB");
  EXPECT_EQ(io_size(1000), "1000 bytes");
  EXPECT_EQ(io_size(1000000.0 * 1024), "976.562 MiB");
  EXPECT_EQ(io_size(47 * kMiB), "47 MiB");
  EXPECT_EQ(io_size(128.0 * (1ULL << 30)), "128 GiB");
}

TEST(Human, TimesLikeQemuIo) {
  EXPECT_EQ(io_time(0.004), "00.00 sec");
  EXPECT_EQ(io_time(0.5), "00.50 sec");
  EXPECT_EQ(io_time(62.5), "0:01:02.50");
  EXPECT_EQ(io_time(3725.25), "1:02:05.25");
}

TEST(Human, HexDumpMatchesQemuIoReadV) {
  std::vector<std::uint8_t> ones(40, 0x01);
  EXPECT_EQ(hex_dump(0, ones),
            "00000000:  01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01  ................\n"
            "00000010:  01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01  ................\n"
            "00000020:  01 01 01 01 01 01 01 01  ........\n");
  std::vector<std::uint8_t> mixed(20, 0);
  for (int i = 0; i < 6; ++i) mixed[i] = 1;
  EXPECT_EQ(hex_dump(1048570, mixed),
            "000ffffa:  01 01 01 01 01 01 00 00 00 00 00 00 00 00 00 00  ................\n"
            "0010000a:  00 00 00 00  ....\n");
  std::vector<std::uint8_t> text = {'A', 'b', '9', ' ', '.', 0xff};
  EXPECT_EQ(hex_dump(0x1234, text), "00001234:  41 62 39 20 2e ff  Ab9...\n");
}

// The qemu-img lines below were printed by qemu-img 7.2 for a qcow2 image.
TEST(MapRender, JsonEntryMatchesQemuImgText) {
  MapEntry data{0, kMiB, true, false, true, 5242880};
  EXPECT_EQ(
      map_entry_json(data),
      R"({ "start": 0, "length": 1048576, "depth": 0, "present": true, "zero": false, "data": true, "offset": 5242880})");
  MapEntry hole{1048576, 7340032, false, true, false, std::nullopt};
  EXPECT_EQ(
      map_entry_json(hole),
      R"({ "start": 1048576, "length": 7340032, "depth": 0, "present": false, "zero": true, "data": false})");
  MapEntry zero{16777216, kMiB, true, true, false, std::nullopt};
  EXPECT_EQ(
      map_entry_json(zero),
      R"({ "start": 16777216, "length": 1048576, "depth": 0, "present": true, "zero": true, "data": false})");
}

TEST(MapRender, HumanLinesMatchQemuImgText) {
  EXPECT_EQ(map_human_header(), "Offset          Length          Mapped to       File\n");
  EXPECT_EQ(map_human_line({0, kMiB, true, false, true, 0x500000}, "q.qcow2"),
            "0               0x100000        0x500000        q.qcow2\n");
  EXPECT_EQ(map_human_line({0x800000, kMiB, true, false, true, 0x600000}, "q.qcow2"),
            "0x800000        0x100000        0x600000        q.qcow2\n");
}

TEST(MapRender, ExtentKindsMapToQemuFlags) {
  Extent data{0, 4096, ExtentKind::kData, 0x300000};
  EXPECT_EQ(map_entry_from_extent(data, false), (MapEntry{0, 4096, true, false, true, 0x300000}));
  Extent zero{4096, 4096, ExtentKind::kZero, std::nullopt};
  EXPECT_EQ(map_entry_from_extent(zero, false),
            (MapEntry{4096, 4096, true, true, false, std::nullopt}));
  Extent hole{8192, 4096, ExtentKind::kUnallocated, std::nullopt};
  EXPECT_EQ(map_entry_from_extent(hole, false),
            (MapEntry{8192, 4096, false, true, false, std::nullopt}));
  // In a differencing image the parent supplies unallocated ranges: not known to be zero.
  EXPECT_EQ(map_entry_from_extent(hole, true),
            (MapEntry{8192, 4096, false, false, false, std::nullopt}));
}

TEST(MapRender, MergesOnlyMatchingContiguousEntries) {
  std::vector<MapEntry> entries;
  append_merged(entries, {0, kMiB, true, false, true, 0x100000});
  append_merged(entries, {kMiB, kMiB, true, false, true, 0x200000});      // file-contiguous
  append_merged(entries, {2 * kMiB, kMiB, true, false, true, 0x500000});  // jumps in the file
  append_merged(entries, {3 * kMiB, kMiB, false, true, false, std::nullopt});
  append_merged(entries, {4 * kMiB, kMiB, false, true, false, std::nullopt});
  append_merged(entries, {5 * kMiB, kMiB, true, true, false, std::nullopt});
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0], (MapEntry{0, 2 * kMiB, true, false, true, 0x100000}));
  EXPECT_EQ(entries[1], (MapEntry{2 * kMiB, kMiB, true, false, true, 0x500000}));
  EXPECT_EQ(entries[2], (MapEntry{3 * kMiB, 2 * kMiB, false, true, false, std::nullopt}));
  EXPECT_EQ(entries[3], (MapEntry{5 * kMiB, kMiB, true, true, false, std::nullopt}));
}

// An 8 MiB disk of 1 MiB blocks: data, data (file-contiguous), zero, hole x3, data, hole.
class FakeDisk {
 public:
  FakeDisk() : bytes_(8 * kMiB, 0) {
    kinds_ = {ExtentKind::kData,        ExtentKind::kData,        ExtentKind::kZero,
              ExtentKind::kUnallocated, ExtentKind::kUnallocated, ExtentKind::kUnallocated,
              ExtentKind::kData,        ExtentKind::kUnallocated};
    file_offsets_ = {0x300000, 0x400000, 0, 0, 0, 0, 0x900000, 0};
    std::fill(bytes_.begin(), bytes_.begin() + 2 * kMiB, 0xab);
    std::fill(bytes_.begin() + 6 * kMiB, bytes_.begin() + 7 * kMiB, 0x5c);
    bytes_[6 * kMiB + 4096 + 17] = 0x00;  // one stray byte inside the 0x5c block
  }

  Result<std::vector<Extent>> block_status(std::uint64_t offset, std::uint64_t length) {
    ++calls_;
    if (offset + length > bytes_.size()) return Error(ErrorCode::kOutOfRange, "fake: range");
    std::vector<Extent> out;
    for (std::uint64_t pos = offset; pos < offset + length;) {
      std::uint64_t block = pos / kMiB;
      std::uint64_t end = std::min(offset + length, (block + 1) * kMiB);
      Extent e{pos, end - pos, kinds_[block], std::nullopt};
      if (e.kind == ExtentKind::kData) e.file_offset = file_offsets_[block] + pos % kMiB;
      // Merge like the library does: same kind, and contiguous file offsets for data.
      if (!out.empty() && out.back().kind == e.kind &&
          (e.kind != ExtentKind::kData ||
           *out.back().file_offset + out.back().length == *e.file_offset)) {
        out.back().length += e.length;
      } else {
        out.push_back(e);
      }
      pos = end;
    }
    return out;
  }

  std::vector<std::uint8_t> bytes_;
  std::vector<ExtentKind> kinds_;
  std::vector<std::uint64_t> file_offsets_;
  int calls_ = 0;
};

std::vector<MapEntry> walk(FakeDisk& disk, std::uint64_t start, std::uint64_t length,
                           std::uint64_t window) {
  std::vector<MapEntry> entries;
  auto r = walk_map([&](std::uint64_t o, std::uint64_t l) { return disk.block_status(o, l); },
                    start, length, false, window, [&](const MapEntry& e) { entries.push_back(e); });
  EXPECT_TRUE(r) << r.error().to_string();
  return entries;
}

TEST(MapWalk, SmallWindowsGiveTheSameMapAsOneCall) {
  FakeDisk disk;
  std::vector<MapEntry> expected = {
      {0, 2 * kMiB, true, false, true, 0x300000},
      {2 * kMiB, kMiB, true, true, false, std::nullopt},
      {3 * kMiB, 3 * kMiB, false, true, false, std::nullopt},
      {6 * kMiB, kMiB, true, false, true, 0x900000},
      {7 * kMiB, kMiB, false, true, false, std::nullopt},
  };
  EXPECT_EQ(walk(disk, 0, 8 * kMiB, 1ULL << 32), expected);
  EXPECT_EQ(disk.calls_, 1);
  EXPECT_EQ(walk(disk, 0, 8 * kMiB, 300 * 1024), expected);  // windows cut blocks anywhere
  EXPECT_EQ(disk.calls_, 1 + 28);
}

TEST(MapWalk, PartialRange) {
  FakeDisk disk;
  std::vector<MapEntry> expected = {
      {kMiB + 4096, kMiB - 4096, true, false, true, 0x400000 + 4096},
      {2 * kMiB, kMiB, true, true, false, std::nullopt},
      {3 * kMiB, 512, false, true, false, std::nullopt},
  };
  EXPECT_EQ(walk(disk, kMiB + 4096, 2 * kMiB - 4096 + 512, 1ULL << 32), expected);
}

TEST(MapWalk, RejectsExtentsThatLeaveAGap) {
  auto r = walk_map(
      [](std::uint64_t o, std::uint64_t l) -> Result<std::vector<Extent>> {
        return std::vector<Extent>{{o, l / 2, ExtentKind::kZero, std::nullopt}};
      },
      0, kMiB, false, kMiB, [](const MapEntry&) {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kInternal);
  EXPECT_EQ(r.error().message(), "block status: extents end at 0x80000, short of 0x100000");
}

Guid guid_of(const char* text) { return *Guid::parse(text); }

ImageInfo sample_info() {
  ImageInfo info;
  info.creator = "QEMU v7.2.22";
  info.format_version = 1;
  info.type = DiskType::kDynamic;
  info.virtual_size = 64 * kMiB;
  info.block_size = 8 * kMiB;
  info.logical_sector_size = 512;
  info.physical_sector_size = 4096;
  info.virtual_disk_id = guid_of("4a49d245-0000-4000-8000-000000000001");
  info.headers[0].valid = true;
  info.headers[0].sequence_number = 7;
  info.headers[0].file_write_guid = guid_of("11111111-2222-3333-4444-555555555555");
  info.headers[0].version = 1;
  info.headers[0].log_length = kMiB;
  info.headers[0].log_offset = kMiB;
  info.headers[1].valid = false;
  info.headers[1].invalid_reason = "checksum mismatch (stored 0x1, computed 0x2)";
  info.current_header = 0;
  info.regions = {{guid_of("2dc27766-f623-4200-9d64-115e9bfd4a08"), "BAT", 3 * kMiB, kMiB, true}};
  info.metadata_items = {{guid_of("caa16737-fa36-4d43-b3b6-33f0aa44e76b"), "file-parameters",
                          0x10000, 8, false, false, true}};
  info.chunk_ratio = 2048;
  info.payload_blocks = 8;
  info.bat_entries = 8;
  info.file_size = 4 * kMiB;
  info.actual_size = 3895296;
  return info;
}

TEST(InfoRender, JsonHasQemuStyleKeysAndExactValues) {
  BlockCountsOrReason blocks;
  blocks.counts = BlockCounts{6, 0, 1, 0, 1, 0};
  auto j = info_to_json("x.vhdx", sample_info(), blocks);
  EXPECT_EQ(j["format"], "vhdx");
  EXPECT_EQ(j["filename"], "x.vhdx");
  EXPECT_EQ(j["type"], "dynamic");
  EXPECT_EQ(j["virtual-size"], 64 * kMiB);
  EXPECT_EQ(j["block-size"], 8 * kMiB);
  EXPECT_EQ(j["cluster-size"], 8 * kMiB);
  EXPECT_EQ(j["logical-sector-size"], 512);
  EXPECT_EQ(j["physical-sector-size"], 4096);
  EXPECT_EQ(j["actual-size"], 3895296);
  EXPECT_EQ(j["file-size"], 4 * kMiB);
  EXPECT_EQ(j["creator"], "QEMU v7.2.22");
  EXPECT_EQ(j["page83-id"], "4a49d245-0000-4000-8000-000000000001");
  EXPECT_EQ(j["dirty-flag"], false);
  EXPECT_EQ(j["log"]["state"], "empty");
  EXPECT_EQ(j["log"]["offset"], kMiB);
  ASSERT_EQ(j["headers"].size(), 2u);
  EXPECT_EQ(j["headers"][0]["current"], true);
  EXPECT_EQ(j["headers"][0]["sequence-number"], 7);
  EXPECT_EQ(j["headers"][0]["file-write-guid"], "11111111-2222-3333-4444-555555555555");
  EXPECT_EQ(j["headers"][0]["file-offset"], 65536);
  EXPECT_EQ(j["headers"][1]["valid"], false);
  EXPECT_EQ(j["headers"][1]["invalid-reason"], "checksum mismatch (stored 0x1, computed 0x2)");
  EXPECT_FALSE(j["headers"][1].contains("sequence-number"));
  EXPECT_EQ(j["regions"][0]["name"], "BAT");
  EXPECT_EQ(j["regions"][0]["guid"], "2dc27766-f623-4200-9d64-115e9bfd4a08");
  EXPECT_EQ(j["regions"][0]["file-offset"], 3 * kMiB);
  EXPECT_EQ(j["regions"][0]["required"], true);
  EXPECT_EQ(j["metadata"][0]["name"], "file-parameters");
  EXPECT_EQ(j["metadata"][0]["is-required"], true);
  EXPECT_EQ(j["blocks"]["allocated"], 1);
  EXPECT_EQ(j["blocks"]["zero"], 1);
  EXPECT_EQ(j["blocks"]["not-present"], 6);
  EXPECT_EQ(j["blocks"]["total"], 8);
  EXPECT_FALSE(j.contains("parent-locator"));
}

TEST(InfoRender, DirtyLogAndParentLocator) {
  ImageInfo info = sample_info();
  info.log_state = LogState::kNeedsReplay;
  info.type = DiskType::kDifferencing;
  info.parent_locator_type = guid_of("b04aefb7-d19e-4a81-b789-25b8e9445913");
  info.parent_locator = {{"relative_path", ".\\parent.vhdx"}, {"parent_linkage", "{ff34}"}};
  BlockCountsOrReason blocks;
  blocks.unavailable_reason = "the log needs replay";
  auto j = info_to_json("d.avhdx", info, blocks);
  EXPECT_EQ(j["log"]["state"], "needs-replay");
  EXPECT_EQ(j["dirty-flag"], true);
  EXPECT_TRUE(j["blocks"].is_null());
  EXPECT_EQ(j["blocks-unavailable"], "the log needs replay");
  EXPECT_EQ(j["parent-locator"]["type"], "b04aefb7-d19e-4a81-b789-25b8e9445913");
  EXPECT_EQ(j["parent-locator"]["entries"]["relative_path"], ".\\parent.vhdx");

  std::string human = info_to_human("d.avhdx", info, blocks);
  EXPECT_NE(human.find("\nblocks:                 unavailable: the log needs replay\n"),
            std::string::npos)
      << human;
  EXPECT_NE(human.find("\nparent locator:\n    type:           b04aefb7-"), std::string::npos)
      << human;
  EXPECT_NE(human.find("\n    relative_path:  .\\parent.vhdx\n"), std::string::npos) << human;
}

TEST(InfoRender, HumanLinesAreAligned) {
  BlockCountsOrReason blocks;
  blocks.counts = BlockCounts{6, 0, 1, 0, 1, 0};
  std::string human = info_to_human("x.vhdx", sample_info(), blocks);
  EXPECT_EQ(human.rfind("image:                  x.vhdx\n"
                        "file format:            vhdx\n"
                        "format version:         1\n"
                        "creator:                QEMU v7.2.22\n"
                        "type:                   dynamic\n"
                        "virtual size:           64 MiB (67108864 bytes)\n"
                        "disk size:              3.71 MiB\n",
                        0),
            0u)
      << human;
  EXPECT_NE(human.find("\nallocated blocks:       1 (1 fully present, 0 partially present)\n"),
            std::string::npos)
      << human;
  EXPECT_NE(human.find("\n    header 1 at 0x10000: current, sequence number 7\n"),
            std::string::npos)
      << human;
  EXPECT_NE(human.find("\n    header 2 at 0x20000: invalid: checksum mismatch (stored 0x1, "
                       "computed 0x2)\n"),
            std::string::npos)
      << human;
}

class FakeTarget : public IoTarget {
 public:
  FakeTarget() {
    info_.virtual_size = 8 * kMiB;
    info_.block_size = kMiB;
    info_.logical_sector_size = 512;
    info_.physical_sector_size = 4096;
    info_.creator = "test";
  }
  const ImageInfo& info() const override { return info_; }
  Result<void> read(std::uint64_t offset, std::span<std::uint8_t> out) override {
    if (offset + out.size() > disk_.bytes_.size()) return Error(ErrorCode::kOutOfRange, "range");
    std::copy_n(disk_.bytes_.begin() + static_cast<std::ptrdiff_t>(offset), out.size(),
                out.begin());
    return ok();
  }
  Result<std::vector<Extent>> block_status(std::uint64_t offset, std::uint64_t length) override {
    return disk_.block_status(offset, length);
  }
  bool writable() const override { return false; }

  ImageInfo info_;
  FakeDisk disk_;
};

struct IoRun {
  bool ok;
  std::string out;
  std::string err;
};

IoRun run(const std::string& line) {
  FakeTarget target;
  std::ostringstream out, err;
  IoSession session{target, out, err};
  bool ok = run_io_command(session, line);
  return {ok, out.str(), err.str()};
}

// The statistics line varies with time; check its shape only.
void expect_read_report(const std::string& text, const std::string& first_line) {
  EXPECT_EQ(text.substr(0, first_line.size()), first_line) << text;
  std::string rest = text.substr(first_line.size());
  EXPECT_TRUE(::testing::internal::RE::PartialMatch(
      rest, ::testing::internal::RE("^[0-9.]+ [A-Za-z]+, 1 ops; [0-9:.]+( sec)? \\([0-9.]+ "
                                    "[A-Za-z]+/sec and [0-9.]+ ops/sec\\)\n$")))
      << rest;
}

TEST(IoRead, PatternMatchesPrintsQemuReport) {
  IoRun r = run("read -P 0xab 0 2M");
  EXPECT_TRUE(r.ok) << r.err;
  EXPECT_EQ(r.err, "");
  expect_read_report(r.out, "read 2097152/2097152 bytes at offset 0\n");
  EXPECT_NE(r.out.find("\n2 MiB, 1 ops; "), std::string::npos) << r.out;
}

TEST(IoRead, PatternMismatchNamesTheFirstBadOffset) {
  IoRun r = run("read -P 0x5c 6M 1M");
  EXPECT_FALSE(r.ok);
  std::string expected_first = "Pattern verification failed at offset " +
                               std::to_string(6 * kMiB + 4096 + 17) + ", " +
                               std::to_string(kMiB - 4096 - 17) + " bytes\n";
  EXPECT_EQ(r.out.substr(0, expected_first.size()), expected_first) << r.out;
  expect_read_report(r.out.substr(expected_first.size()),
                     "read 1048576/1048576 bytes at offset 6291456\n");
  // Reading across the end of the data block hits the zeros after it.
  IoRun across = run("read -q -P 0xab 1M 2M");
  EXPECT_FALSE(across.ok);
  EXPECT_EQ(across.out, "Pattern verification failed at offset 2097152, 1048576 bytes\n");
}

TEST(IoRead, VerifySubrangeWithSAndL) {
  // Only [6M, 6M+4096+17) is checked: the stray byte lies just after it.
  IoRun r = run("read -q -P 0x5c -s 0 -l 4113 6M 1M");
  EXPECT_TRUE(r.ok) << r.out << r.err;
  EXPECT_EQ(r.out, "");
  IoRun bad = run("read -q -P 0x5c -s 4k -l 18 6M 1M");
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.out, "Pattern verification failed at offset 6295569, 1 bytes\n");
  IoRun beyond = run("read -P 0x5c -s 1M -l 1 6M 1M");
  EXPECT_FALSE(beyond.ok);
  EXPECT_EQ(beyond.err, "read: pattern verification range exceeds end of read data\n");
  IoRun without_p = run("read -s 1 0 1k");
  EXPECT_FALSE(without_p.ok);
  EXPECT_EQ(without_p.err.substr(0, 23), "read: -s and -l need -P");
}

TEST(IoRead, VerboseDumpsHex) {
  IoRun r = run("read -v 2097140 20");
  EXPECT_TRUE(r.ok);
  std::string dump =
      "001ffff4:  ab ab ab ab ab ab ab ab ab ab ab ab 00 00 00 00  ................\n"
      "00200004:  00 00 00 00  ....\n";
  EXPECT_EQ(r.out.substr(0, dump.size()), dump);
  expect_read_report(r.out.substr(dump.size()), "read 20/20 bytes at offset 2097140\n");
  EXPECT_NE(r.out.find("\n20 bytes, 1 ops; "), std::string::npos);
}

TEST(IoRead, ErrorsAreReported) {
  IoRun out_of_range = run("read 8M 1");
  EXPECT_FALSE(out_of_range.ok);
  EXPECT_EQ(out_of_range.err,
            "read failed: offset 8388608 + length 1 is beyond the end of the disk (8388608 "
            "bytes) (out-of-range)\n");
  IoRun bad_size = run("read 0 4x");
  EXPECT_FALSE(bad_size.ok);
  EXPECT_EQ(bad_size.err.substr(0, 25), "read: invalid size '4x': ");
  IoRun bad_pattern = run("read -P 300 0 1");
  EXPECT_FALSE(bad_pattern.ok);
  EXPECT_EQ(bad_pattern.err, "read: '300' is not a valid pattern byte (0..255, 0x00..0xff)\n");
  IoRun arity = run("read 0");
  EXPECT_FALSE(arity.ok);
  EXPECT_EQ(arity.err.substr(0, 33), "read: expected 2 arguments, got 1");
  IoRun option = run("read -z 0 1");
  EXPECT_FALSE(option.ok);
  EXPECT_EQ(option.err.substr(0, 27), "read: invalid option -- 'z'");
}

TEST(IoCommands, MapLengthInfoHelpAndUnknown) {
  IoRun map = run("map");
  EXPECT_TRUE(map.ok);
  EXPECT_EQ(map.out,
            "3 MiB (0x300000) bytes     allocated at offset 0 bytes (0x0)\n"
            "3 MiB (0x300000) bytes not allocated at offset 3 MiB (0x300000)\n"
            "1 MiB (0x100000) bytes     allocated at offset 6 MiB (0x600000)\n"
            "1 MiB (0x100000) bytes not allocated at offset 7 MiB (0x700000)\n");
  IoRun length = run("length");
  EXPECT_TRUE(length.ok);
  EXPECT_EQ(length.out, "8 MiB\n");
  IoRun info = run("info");
  EXPECT_TRUE(info.ok);
  EXPECT_EQ(info.out.substr(0, 44), "format name: vhdx\ncluster size: 1 MiB\nFormat");
  IoRun help = run("help");
  EXPECT_TRUE(help.ok);
  EXPECT_NE(help.out.find("\nread [-Cqv] [-P pattern [-s off] [-l len]] off len -- reads a "
                          "number of bytes at a specified offset\n"),
            std::string::npos)
      << help.out;
  EXPECT_NE(help.out.find("\nlength -- gets the length of the current file\n"), std::string::npos);
  IoRun help_read = run("help r");
  EXPECT_TRUE(help_read.ok);
  EXPECT_EQ(help_read.out.substr(0, 5), "read ");
  IoRun unknown = run("bogus 1 2");
  EXPECT_FALSE(unknown.ok);
  EXPECT_EQ(unknown.err, "command \"bogus\" not found\n");
  IoRun quote = run("read 'x");
  EXPECT_FALSE(quote.ok);
  EXPECT_EQ(quote.err, "unterminated single quote in 'read 'x'\n");
  IoRun blank = run("   ");
  EXPECT_TRUE(blank.ok);
}

// A FakeTarget that writes into its bytes and records how it was asked to zero and flush.
class WritableTarget : public FakeTarget {
 public:
  bool writable() const override { return true; }
  Result<void> write(std::uint64_t offset, std::span<const std::uint8_t> data) override {
    if (offset + data.size() > disk_.bytes_.size()) return Error(ErrorCode::kOutOfRange, "range");
    std::copy(data.begin(), data.end(), disk_.bytes_.begin() + static_cast<std::ptrdiff_t>(offset));
    return ok();
  }
  Result<void> discard(std::uint64_t offset, std::uint64_t length, bool unmap) override {
    std::fill_n(disk_.bytes_.begin() + static_cast<std::ptrdiff_t>(offset), length, 0);
    unmaps_.push_back(unmap);
    return ok();
  }
  Result<void> flush() override {
    ++flushes_;
    return ok();
  }
  std::vector<bool> unmaps_;
  int flushes_ = 0;
};

bool run_on(IoTarget& target, const std::string& line, std::string* out, std::string* err) {
  std::ostringstream o, e;
  IoSession session{target, o, e};
  bool result = run_io_command(session, line);
  *out = o.str();
  *err = e.str();
  return result;
}

TEST(IoWrite, WritesZeroesDiscardsAndFlushes) {
  WritableTarget t;
  std::string out, err;
  ASSERT_TRUE(run_on(t, "write -P 0x5a 100 1000", &out, &err)) << err;
  expect_read_report(out, "wrote 1000/1000 bytes at offset 100\n");
  EXPECT_EQ(t.disk_.bytes_[99], 0xab);
  EXPECT_EQ(t.disk_.bytes_[100], 0x5a);
  EXPECT_EQ(t.disk_.bytes_[1099], 0x5a);
  EXPECT_EQ(t.disk_.bytes_[1100], 0xab);
  ASSERT_TRUE(run_on(t, "w -q 2M 3", &out, &err)) << err;  // the default fill is 0xcd
  EXPECT_EQ(out, "");
  EXPECT_EQ(t.disk_.bytes_[2 * kMiB + 2], 0xcd);
  EXPECT_EQ(t.disk_.bytes_[2 * kMiB + 3], 0x00);
  ASSERT_TRUE(run_on(t, "write -q -z 0 16", &out, &err)) << err;
  ASSERT_TRUE(run_on(t, "write -q -z -u 16 16", &out, &err)) << err;
  ASSERT_TRUE(run_on(t, "discard 32 32", &out, &err)) << err;
  expect_read_report(out, "discard 32/32 bytes at offset 32\n");
  EXPECT_EQ(t.unmaps_, (std::vector<bool>{false, true, true}));
  EXPECT_EQ(t.disk_.bytes_[63], 0x00);
  EXPECT_EQ(t.disk_.bytes_[64], 0xab);
  ASSERT_TRUE(run_on(t, "flush", &out, &err)) << err;
  ASSERT_TRUE(run_on(t, "write -q -f 0 1", &out, &err)) << err;
  EXPECT_EQ(t.flushes_, 2);
  EXPECT_FALSE(run_on(t, "write -P 1 -z 0 1", &out, &err));
  EXPECT_NE(err.find("-z supports neither -P nor -s"), std::string::npos) << err;
  EXPECT_FALSE(run_on(t, "discard 8M 1", &out, &err));
  EXPECT_NE(err.find("beyond the end of the disk"), std::string::npos) << err;
}

TEST(IoWrite, ReadOnlyTargetRefusesWriteCommands) {
  FakeTarget t;
  std::string out, err;
  for (const char* line : {"write 0 1", "discard 0 1", "flush"}) {
    EXPECT_FALSE(run_on(t, line, &out, &err)) << line;
    EXPECT_EQ(out, "");
    EXPECT_NE(err.find("Block node is read-only"), std::string::npos) << err;
  }
  EXPECT_EQ(t.disk_.bytes_[0], 0xab);
}

TEST(IoCommands, EveryCommandHasHelpText) {
  for (const IoCommand& command : io_commands()) {
    EXPECT_NE(std::string(command.summary), "") << command.name;
    EXPECT_NE(command.run, nullptr) << command.name;
  }
}

}  // namespace
}  // namespace vhdx::cli
