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
