// Replays every input the fuzzers found (tests/guarantees/fuzz_regressions/{decoders,open_read})
// through the fuzz targets' own code, compiled into this test with the entry points renamed.
// An input that crashes again crashes this test; one that traps (a decoder accepted what its
// encoder cannot round-trip) aborts it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int vhdx_decoders_fuzz_one_input(const std::uint8_t* data, std::size_t size);
extern "C" int vhdx_open_read_fuzz_one_input(const std::uint8_t* data, std::size_t size);

namespace vhdx {
namespace {

namespace fs = std::filesystem;

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

TEST(FuzzRegressions, Decoders) {
  for (const auto& path : inputs("decoders")) {
    SCOPED_TRACE(path.filename().string());
    auto bytes = load(path);
    EXPECT_EQ(vhdx_decoders_fuzz_one_input(bytes.data(), bytes.size()), 0);
  }
}

TEST(FuzzRegressions, OpenRead) {
  for (const auto& path : inputs("open_read")) {
    SCOPED_TRACE(path.filename().string());
    auto bytes = load(path);
    EXPECT_EQ(vhdx_open_read_fuzz_one_input(bytes.data(), bytes.size()), 0);
  }
}

// The replay itself works: empty and one-byte inputs go through both entry points.
TEST(FuzzRegressions, TrivialInputs) {
  const std::uint8_t one[1] = {3};
  EXPECT_EQ(vhdx_decoders_fuzz_one_input(one, 0), 0);
  EXPECT_EQ(vhdx_decoders_fuzz_one_input(one, 1), 0);
  EXPECT_EQ(vhdx_open_read_fuzz_one_input(one, 0), 0);
  EXPECT_EQ(vhdx_open_read_fuzz_one_input(one, 1), 0);
}

}  // namespace
}  // namespace vhdx
