// Replays every input the fuzzers found (tests/guarantees/fuzz_regressions/<target>/) through
// the fuzz targets' own code, compiled into this test with the entry points renamed. An input
// that crashes again crashes this test; one that breaks a target's property (a decoder accepted
// what its encoder cannot round-trip, replays disagree, a write does not read back) aborts it.
//
// decoders_fuzz.cc and open_read_fuzz.cc are compiled by CMake with their entry points renamed;
// the other targets are included here, each under its own name (their internal names differ).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#define LLVMFuzzerTestOneInput vhdx_log_replay_fuzz_one_input
#include "../../fuzz/log_replay_fuzz.cc"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput vhdx_check_fuzz_one_input
#include "../../fuzz/check_fuzz.cc"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput vhdx_write_fuzz_one_input
#include "../../fuzz/write_fuzz.cc"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput vhdx_parent_locator_fuzz_one_input
#include "../../fuzz/parent_locator_fuzz.cc"
#undef LLVMFuzzerTestOneInput

extern "C" int vhdx_decoders_fuzz_one_input(const std::uint8_t* data, std::size_t size);
extern "C" int vhdx_open_read_fuzz_one_input(const std::uint8_t* data, std::size_t size);

#include "support/corpus.h"
#include "vhdx/create.h"

namespace vhdx {
namespace {

namespace fs = std::filesystem;
using EntryPoint = int (*)(const std::uint8_t*, std::size_t);

std::vector<fs::path> inputs(const std::string& folder) {
  std::vector<fs::path> out;
  const fs::path dir = fs::path(VHDX_SOURCE_DIR) / "tests/guarantees/fuzz_regressions" / folder;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() != ".md" &&
        e.path().filename().string()[0] != '.')
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::uint8_t> load(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void replay_folder(const std::string& folder, EntryPoint entry) {
  for (const auto& path : inputs(folder)) {
    SCOPED_TRACE(path.filename().string());
    auto bytes = load(path);
    EXPECT_EQ(entry(bytes.data(), bytes.size()), 0);
  }
}

TEST(FuzzRegressions, Decoders) { replay_folder("decoders", vhdx_decoders_fuzz_one_input); }
TEST(FuzzRegressions, OpenRead) { replay_folder("open_read", vhdx_open_read_fuzz_one_input); }
TEST(FuzzRegressions, LogReplay) { replay_folder("log_replay", vhdx_log_replay_fuzz_one_input); }
TEST(FuzzRegressions, Check) { replay_folder("check", vhdx_check_fuzz_one_input); }
TEST(FuzzRegressions, Write) { replay_folder("write", vhdx_write_fuzz_one_input); }
TEST(FuzzRegressions, ParentLocator) {
  replay_folder("parent_locator", vhdx_parent_locator_fuzz_one_input);
}

// The replay itself works: empty and one-byte inputs go through every entry point.
TEST(FuzzRegressions, TrivialInputs) {
  const std::uint8_t one[1] = {3};
  for (EntryPoint entry :
       {vhdx_decoders_fuzz_one_input, vhdx_open_read_fuzz_one_input, vhdx_log_replay_fuzz_one_input,
        vhdx_check_fuzz_one_input, vhdx_write_fuzz_one_input, vhdx_parent_locator_fuzz_one_input}) {
    EXPECT_EQ(entry(one, 0), 0);
    EXPECT_EQ(entry(one, 1), 0);
  }
}

// A file (its size a multiple of 512, at most 256 MiB) in the slot form of fuzz/fuzz_util.h,
// every byte stored.
std::vector<std::uint8_t> slot_form(const std::vector<std::uint8_t>& file) {
  constexpr std::size_t kSlot = 64 * 1024;
  const std::size_t slots = (file.size() + kSlot - 1) / kSlot;
  std::vector<std::uint8_t> out{static_cast<std::uint8_t>(slots),
                                static_cast<std::uint8_t>(slots >> 8)};
  for (std::size_t i = 0; i < slots; ++i) {
    out.push_back(static_cast<std::uint8_t>(std::min(kSlot, file.size() - i * kSlot) / 512));
  }
  const std::size_t cut = (slots * kSlot - file.size()) / 512;
  out.push_back(static_cast<std::uint8_t>(cut));
  out.push_back(0);
  out.insert(out.end(), file.begin(), file.end());
  return out;
}

std::vector<std::uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// open_read_fuzz gives differencing images a parent and compares what the child reads where
// block status names the parent: an empty child (every sector from the parent) of either sector
// size and the corpus's Hyper-V checkpoint (partially present blocks with sector bitmaps).
TEST(FuzzRegressions, OpenReadThroughAParent) {
  const std::string dir = testing::make_temp_dir();
  std::vector<std::string> children;
  for (std::uint32_t sector : {512u, 4096u}) {
    const std::string base = dir + "/base" + std::to_string(sector) + ".vhdx";
    const std::string child = dir + "/child" + std::to_string(sector) + ".vhdx";
    CreateOptions options;
    options.block_size = 1 << 20;
    options.logical_sector_size = sector;
    ASSERT_TRUE(create(base, 16 << 20, options));
    ASSERT_TRUE(create_differencing(child, base, {}));
    children.push_back(child);
  }
  children.push_back(testing::corpus_image("dissect-differencing/differencing.avhdx.gz"));
  for (const std::string& child : children) {
    const std::vector<std::uint8_t> file = file_bytes(child);
    ASSERT_EQ(file.size() % 512, 0u) << child;
    ASSERT_LE(file.size(), std::size_t{256} << 20) << child;
    const std::vector<std::uint8_t> input = slot_form(file);
    EXPECT_EQ(vhdx_open_read_fuzz_one_input(input.data(), input.size()), 0) << child;
  }
}

// The targets' properties hold on inputs that exercise them: the dirty image's own log replays
// the same in memory and in place (flags 0 and 1), a write session with flushes, a discard and
// reopens reads back its shadow and checks clean, and a parent locator resolves.
TEST(FuzzRegressions, TargetsRunTheirChecks) {
  for (std::uint8_t flags : {0, 1, 3}) EXPECT_EQ(vhdx_log_replay_fuzz_one_input(&flags, 1), 0);
  auto u32 = [](std::vector<std::uint8_t>& v, std::uint32_t x) {
    for (int i = 0; i < 4; ++i) v.push_back(static_cast<std::uint8_t>(x >> (8 * i)));
  };
  for (std::uint8_t image : {0, 1}) {
    std::vector<std::uint8_t> ops{image};
    ops.push_back(2);  // large write: 16 x 64 KiB at 512 KiB
    u32(ops, 512 << 10);
    ops.insert(ops.end(), {15, 0x42});
    ops.push_back(4);  // flush
    ops.push_back(0);  // small unaligned write
    u32(ops, 1000001);
    ops.insert(ops.end(), {0x34, 0x12, 0x99});
    ops.push_back(5);  // close and reopen
    ops.push_back(3);  // discard 1.5 MiB at 256 KiB, unmap
    u32(ops, 256 << 10);
    u32(ops, 3 << 19);
    ops.push_back(1);
    ops.push_back(6);  // read back 2 MiB
    u32(ops, 0);
    u32(ops, 2 << 20);
    ops.push_back(7);  // write past the end
    ops.push_back(9);
    EXPECT_EQ(vhdx_write_fuzz_one_input(ops.data(), ops.size()), 0);
  }
  const std::string raw = std::string("\x01/img/child.avhdx\xff..\\p.vhdx", 27);
  EXPECT_EQ(vhdx_parent_locator_fuzz_one_input(reinterpret_cast<const std::uint8_t*>(raw.data()),
                                               raw.size()),
            0);
}

}  // namespace
}  // namespace vhdx
