// Differencing chains through the `vhdx` CLI: a dynamic base written with known patterns, an
// empty child on it (`vhdx create -b`) and a grandchild on the child. Every command reads the
// base's bytes through the chain (convert to raw and to a flat VHDX, map with depths and the
// base's file offsets, io read), names the chain's files exactly (info), and says why when the
// chain cannot be opened: a missing parent, a parent written after its child was made (broken
// linkage), a child moved with or without its parent.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/cli_run.h"
#include "support/corpus.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::CliRun;
using testing::make_temp_dir;
using testing::run_vhdx;
using testing::sha256_file;
using testing::sha256_hex;
using testing::shell_quote;

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * kKiB;
constexpr std::uint64_t kDiskSize = 32 * kMiB;

// One pattern the base holds: `io write -P byte` over [offset, offset + length).
struct Pattern {
  std::uint8_t byte;
  std::uint64_t offset;
  std::uint64_t length;
};

// 1 MiB blocks: a whole block, two whole blocks, part of one block, and the disk's tail.
const Pattern kPatterns[] = {
    {0x5a, 0, 1 * kMiB},
    {0xa5, 3 * kMiB, 2 * kMiB},
    {0x3c, 8 * kMiB + 192 * kKiB, 300 * kKiB},
    {0x77, 31 * kMiB + 512 * kKiB, 512 * kKiB},
};

std::string io_write_args() {
  std::string args;
  for (const Pattern& p : kPatterns) {
    args += " -c " + shell_quote("write -P " + std::to_string(p.byte) + " " +
                                 std::to_string(p.offset) + " " + std::to_string(p.length));
  }
  return args;
}

std::string io_read_args(const std::vector<Pattern>& patterns) {
  std::string args;
  for (const Pattern& p : patterns) {
    args += " -c " + shell_quote("read -P " + std::to_string(p.byte) + " " +
                                 std::to_string(p.offset) + " " + std::to_string(p.length));
  }
  return args;
}

// The whole virtual disk the patterns make.
std::string expected_sha256() {
  std::vector<std::uint8_t> disk(kDiskSize, 0);
  for (const Pattern& p : kPatterns) {
    std::fill_n(disk.begin() + static_cast<std::ptrdiff_t>(p.offset), p.length, p.byte);
  }
  return sha256_hex(disk);
}

json parse_json(const std::string& text) {
  auto j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << text;
  return j;
}

// A data extent as `map --output=json` prints it.
struct DataRange {
  std::uint64_t start = 0;
  std::uint64_t length = 0;
  std::uint64_t offset = 0;
  bool operator==(const DataRange&) const = default;
};

std::ostream& operator<<(std::ostream& os, const DataRange& r) {
  return os << "{start " << r.start << ", length " << r.length << ", offset " << r.offset << "}";
}

class ChainCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::absolute(make_temp_dir()).lexically_normal().string();
    base_ = path("base.vhdx");
    child_ = path("child.vhdx");
    grandchild_ = path("grandchild.vhdx");
    CliRun r = run_vhdx("create -q -o block_size=1M " + shell_quote(base_) + " 32M");
    ASSERT_EQ(r.status, 0) << r.err;
    r = run_vhdx("io" + io_write_args() + " " + shell_quote(base_));
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    r = run_vhdx("create -q -b " + shell_quote(base_) + " " + shell_quote(child_));
    ASSERT_EQ(r.status, 0) << r.err;
    r = run_vhdx("create -q -b " + shell_quote(child_) + " " + shell_quote(grandchild_));
    ASSERT_EQ(r.status, 0) << r.err;
  }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // `vhdx convert -O raw image` and the SHA-256 of the result ("" when convert failed).
  std::string raw_sha256(const std::string& image) {
    const std::string out = path(fs::path(image).filename().string() + ".raw");
    CliRun r = run_vhdx("convert -q -O raw " + shell_quote(image) + " " + shell_quote(out));
    EXPECT_EQ(r.status, 0) << image << ": " << r.err;
    if (r.status != 0) return "";
    std::string sha = sha256_file(out);
    fs::remove(out);
    return sha;
  }

  // The data extents of `vhdx map --output=json image`, each checked to come from `depth`.
  std::vector<DataRange> data_ranges(const std::string& image, std::uint32_t depth) {
    CliRun r = run_vhdx("map --output=json " + shell_quote(image));
    EXPECT_EQ(r.status, 0) << r.err;
    std::vector<DataRange> ranges;
    json entries = parse_json(r.out);
    if (!entries.is_array()) return ranges;
    for (const json& e : entries) {
      if (!e.value("data", false)) continue;
      EXPECT_EQ(e.value("depth", 999u), depth) << e.dump();
      EXPECT_TRUE(e.contains("offset")) << e.dump();
      ranges.push_back({e.value("start", std::uint64_t{0}), e.value("length", std::uint64_t{0}),
                        e.value("offset", std::uint64_t{0})});
    }
    return ranges;
  }

  // Every reading command on `image` fails with exit 1 and an error naming `what`.
  void expect_commands_fail(const std::string& image, const std::string& what) {
    const std::string q = shell_quote(image);
    const std::string raw = shell_quote(path("out.raw"));
    for (const std::string& args : {"convert -q -O raw " + q + " " + raw, "map " + q,
                                    "map --output=json " + q, "io -r -c 'read 0 64k' " + q}) {
      SCOPED_TRACE(args);
      CliRun r = run_vhdx(args);
      EXPECT_EQ(r.status, 1) << r.out << r.err;
      EXPECT_EQ(r.err.rfind("vhdx: ", 0), 0u) << r.err;
      EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
    }
  }

  std::string dir_, base_, child_, grandchild_;
};

TEST_F(ChainCliTest, RawConvertOfEveryLevelIsTheBase) {
  const std::string expected = expected_sha256();
  EXPECT_EQ(raw_sha256(base_), expected);
  EXPECT_EQ(raw_sha256(child_), expected);
  EXPECT_EQ(raw_sha256(grandchild_), expected);
}

TEST_F(ChainCliTest, VhdxConvertFlattensTheChain) {
  const std::string flat = path("flat.vhdx");
  CliRun r = run_vhdx("convert -q -O vhdx " + shell_quote(grandchild_) + " " + shell_quote(flat));
  ASSERT_EQ(r.status, 0) << r.err;

  auto image = Image::open(flat, {});
  ASSERT_TRUE(image) << image.error().to_string();
  EXPECT_EQ((*image)->info().type, DiskType::kDynamic);
  EXPECT_EQ((*image)->info().virtual_size, kDiskSize);
  EXPECT_FALSE((*image)->info().parent_locator_type.has_value());
  EXPECT_TRUE((*image)->parent_chain().empty());
  image->reset();

  r = run_vhdx("info " + shell_quote(flat));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.find("parent chain"), std::string::npos) << r.out;
  EXPECT_EQ(raw_sha256(flat), expected_sha256());
  // The flat image holds the data itself: every data extent is at depth 0.
  EXPECT_FALSE(data_ranges(flat, 0).empty());
}

TEST_F(ChainCliTest, InfoNamesEveryParent) {
  CliRun r = run_vhdx("info " + shell_quote(grandchild_));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("parent chain:\n    1: " + child_ + "\n    2: " + base_ + "\n"),
            std::string::npos)
      << r.out;

  r = run_vhdx("info --output=json " + shell_quote(grandchild_));
  ASSERT_EQ(r.status, 0) << r.err;
  json j = parse_json(r.out);
  EXPECT_EQ(j["parent-chain"], json::array({child_, base_})) << r.out;
  EXPECT_FALSE(j.contains("parent-chain-error")) << r.out;

  r = run_vhdx("info --output=json " + shell_quote(child_));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(parse_json(r.out)["parent-chain"], json::array({base_})) << r.out;

  // The base is no differencing image: no chain at all.
  r = run_vhdx("info " + shell_quote(base_));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.find("parent chain"), std::string::npos) << r.out;
}

TEST_F(ChainCliTest, MapShowsTheBaseDataAtItsDepth) {
  const std::vector<DataRange> base_ranges = data_ranges(base_, 0);
  ASSERT_FALSE(base_ranges.empty());
  // The base's data covers exactly the patterns' 1 MiB blocks: 0, 3-4, 8 and 31.
  std::uint64_t mapped = 0;
  for (const DataRange& r : base_ranges) mapped += r.length;
  EXPECT_EQ(mapped, 5 * kMiB);

  // The children hold no data: their data extents are the base's, at the base's file offsets.
  EXPECT_EQ(data_ranges(child_, 1), base_ranges);
  EXPECT_EQ(data_ranges(grandchild_, 2), base_ranges);

  // The human map names the base file on each data line.
  CliRun r = run_vhdx("map " + shell_quote(child_));
  ASSERT_EQ(r.status, 0) << r.err;
  std::size_t lines_naming_base = 0;
  for (std::size_t pos = 0; (pos = r.out.find(base_ + "\n", pos)) != std::string::npos; ++pos) {
    ++lines_naming_base;
  }
  EXPECT_EQ(lines_naming_base, base_ranges.size()) << r.out;
  EXPECT_EQ(r.out.find(child_), std::string::npos) << r.out;
}

TEST_F(ChainCliTest, IoReadsThroughTheChain) {
  std::vector<Pattern> reads(std::begin(kPatterns), std::end(kPatterns));
  reads.push_back({0, 1 * kMiB, 2 * kMiB});                 // never written
  reads.push_back({0, 8 * kMiB, 192 * kKiB});               // the partial block's head
  reads.push_back({0, 8 * kMiB + 492 * kKiB, 532 * kKiB});  // and its tail
  for (const std::string& image : {child_, grandchild_}) {
    SCOPED_TRACE(image);
    CliRun r = run_vhdx("io -r" + io_read_args(reads) + " " + shell_quote(image));
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_EQ(r.out.find("Pattern verification failed"), std::string::npos) << r.out;
    // A pattern the disk does not hold fails the read.
    r = run_vhdx("io -r -c 'read -P 0x11 0 1M' " + shell_quote(image));
    EXPECT_EQ(r.status, 1) << r.out << r.err;
  }
}

TEST_F(ChainCliTest, IoMapCountsOnlyTheChildsOwnData) {
  CliRun r = run_vhdx("io -r -c map " + shell_quote(child_));
  ASSERT_EQ(r.status, 0) << r.err;
  // The empty child owns nothing, though every read of it finds the base's data.
  EXPECT_EQ(r.out, "32 MiB (0x2000000) bytes not allocated at offset 0 bytes (0x0)\n");
  CliRun base = run_vhdx("io -r -c map " + shell_quote(base_));
  ASSERT_EQ(base.status, 0) << base.err;
  EXPECT_EQ(base.out.rfind("1 MiB (0x100000) bytes     allocated at offset 0 bytes (0x0)\n", 0), 0u)
      << base.out;
}

TEST_F(ChainCliTest, MissingParent) {
  fs::rename(base_, path("elsewhere.vhdx"));
  const std::string not_found = "the parent of '" + child_ + "' was not found: tried '" + base_ +
                                "' (relative_path): not found";

  CliRun r = run_vhdx("info " + shell_quote(child_));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("parent chain: not opened: " + not_found), std::string::npos) << r.out;
  r = run_vhdx("info --output=json " + shell_quote(child_));
  EXPECT_EQ(r.status, 0) << r.err;
  json j = parse_json(r.out);
  EXPECT_NE(j.value("parent-chain-error", std::string()).find(not_found), std::string::npos)
      << r.out;
  EXPECT_FALSE(j.contains("parent-chain")) << r.out;

  expect_commands_fail(child_, not_found);
  // The grandchild's chain breaks one level further down.
  expect_commands_fail(grandchild_, not_found);
}

TEST_F(ChainCliTest, WritingTheBaseBreaksTheLinkage) {
  CliRun r = run_vhdx("io -c 'write -P 0x11 0 4k' " + shell_quote(base_));
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string broken = "differencing chain broken: no file matches the parent of '" + child_ +
                             "': tried '" + base_ + "' (relative_path): its DataWriteGuid";

  r = run_vhdx("info " + shell_quote(child_));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("parent chain: not opened: " + broken), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("is not the parent_linkage"), std::string::npos) << r.out;

  expect_commands_fail(child_, broken);
  expect_commands_fail(grandchild_, broken);
  // The base itself reads its new bytes.
  r = run_vhdx("io -r -c 'read -P 0x11 0 4k' -c 'read -P 0x5a 4k 1020k' " + shell_quote(base_));
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

TEST_F(ChainCliTest, ChildMovedWithItsBaseFindsItByRelativePath) {
  const std::string moved = dir_ + "/moved";
  fs::create_directory(moved);
  fs::rename(base_, moved + "/base.vhdx");
  fs::rename(child_, moved + "/child.vhdx");

  CliRun r = run_vhdx("info --output=json " + shell_quote(moved + "/child.vhdx"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(parse_json(r.out)["parent-chain"], json::array({moved + "/base.vhdx"})) << r.out;
  EXPECT_EQ(raw_sha256(moved + "/child.vhdx"), expected_sha256());
}

TEST_F(ChainCliTest, ChildMovedAloneFindsTheBaseByAbsolutePath) {
  const std::string moved = dir_ + "/moved";
  fs::create_directory(moved);
  const std::string moved_child = moved + "/child.vhdx";
  fs::rename(child_, moved_child);

  // relative_path (.\base.vhdx) now points into moved/, where there is no base; the absolute
  // path the locator also holds still finds it.
  CliRun r = run_vhdx("info --output=json " + shell_quote(moved_child));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(parse_json(r.out)["parent-chain"], json::array({base_})) << r.out;
  EXPECT_EQ(raw_sha256(moved_child), expected_sha256());

  // With the base gone from there too, each candidate is named as tried.
  fs::rename(base_, path("elsewhere.vhdx"));
  expect_commands_fail(moved_child, "the parent of '" + moved_child + "' was not found: tried '" +
                                        moved + "/base.vhdx' (relative_path): not found");
  r = run_vhdx("map " + shell_quote(moved_child));
  EXPECT_NE(r.err.find("'" + base_ + "' (absolute_win32_path): not found"), std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace vhdx
