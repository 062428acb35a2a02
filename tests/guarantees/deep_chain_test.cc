// Deep differencing chains stay bounded: a chain of 128 children over a small base (the
// deepest the library opens: the top child has 128 parents) reads the base's bytes and lists
// every parent, and one child more is refused with a clean error, both under the same 512 MiB
// address-space limit as the hostile-image tests. Sanitizer builds reserve terabytes of
// address space, so there the commands run without the limit.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "guarantees/guarantee_util.h"
#include "support/cli_run.h"
#include "support/corpus.h"

namespace vhdx {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;
using testing::make_temp_dir;
using testing::run_shell;
using testing::run_vhdx;
using testing::shell_quote;
using testing::vhdx_cli;

constexpr int kDeepestChain = 128;  // parents the library opens

// The CLI under the address-space limit; `io` pattern failures print no "vhdx: " line.
CliRun bounded(const std::string& args) {
  return guarantees::run_vhdx_bounded(args, /*error_line=*/false);
}

// One chain shared by the tests: base.vhdx (64 MiB, 1 MiB blocks, three patterns), then
// c1.vhdx on it, c2.vhdx on c1... up to c129.vhdx, made in one shell loop.
class DeepChainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(fs::absolute(make_temp_dir()).lexically_normal().string());
    const std::string vhdx = shell_quote(vhdx_cli());
    const std::string script =
        "set -e; cd " + shell_quote(*dir_) + "; " + vhdx +
        " create -q -o block_size=1M base.vhdx 64M; " + vhdx +
        " io -c 'write -P 0x5a 0 1M' -c 'write -P 0xa5 10M 3M' -c 'write -P 0x3c 40000k 200k' "
        "base.vhdx >/dev/null; "
        "prev=base.vhdx; for i in $(seq 1 " +
        std::to_string(kDeepestChain + 1) + "); do " + vhdx +
        " create -q -b \"$prev\" c$i.vhdx; prev=c$i.vhdx; done";
    CliRun r = run_shell(script);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static std::string child(int n) { return *dir_ + "/c" + std::to_string(n) + ".vhdx"; }
  static std::string base() { return *dir_ + "/base.vhdx"; }

  static std::string* dir_;
};

std::string* DeepChainTest::dir_ = nullptr;

TEST_F(DeepChainTest, DeepestChainReadsTheBase) {
  const std::string top = shell_quote(child(kDeepestChain));
  CliRun r = bounded(
      "io -r -c 'read -P 0x5a 0 1M' -c 'read -P 0 1M 9M' -c 'read -P 0xa5 10M 3M' "
      "-c 'read -P 0 13M 26M' -c 'read -P 0x3c 40000k 200k' -c 'read -P 0 40200k 24336k' " +
      top);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  // The same command fails when a pattern is wrong: the reads above really compared.
  r = bounded("io -r -c 'read -P 0xa5 0 1M' " + top);
  EXPECT_EQ(r.status, 1) << r.out << r.err;

  r = bounded("map --output=json " + top);
  ASSERT_EQ(r.status, 0) << r.err;
  auto entries = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(entries.is_array()) << r.out;
  std::uint64_t data_bytes = 0;
  for (const auto& e : entries) {
    if (!e.value("data", false)) continue;
    EXPECT_EQ(e.value("depth", 0u), static_cast<unsigned>(kDeepestChain)) << e.dump();
    data_bytes += e.value("length", std::uint64_t{0});
  }
  EXPECT_EQ(data_bytes, 5u << 20);  // blocks 0, 10-12 and 39
}

TEST_F(DeepChainTest, InfoListsAllParents) {
  CliRun r = bounded("info --output=json " + shell_quote(child(kDeepestChain)));
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.contains("parent-chain")) << r.out;
  const auto& chain = j["parent-chain"];
  ASSERT_EQ(chain.size(), static_cast<std::size_t>(kDeepestChain));
  for (int i = 0; i + 1 < kDeepestChain; ++i) {
    EXPECT_EQ(chain[static_cast<std::size_t>(i)], child(kDeepestChain - 1 - i));
  }
  EXPECT_EQ(chain[kDeepestChain - 1], base());

  r = bounded("info " + shell_quote(child(kDeepestChain)));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("\n    1: " + child(kDeepestChain - 1) + "\n"), std::string::npos);
  EXPECT_NE(r.out.find("\n    128: " + base() + "\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\n    129: "), std::string::npos);
}

TEST_F(DeepChainTest, OneMoreIsRefused) {
  const std::string too_deep = child(kDeepestChain + 1);
  const std::string message = "differencing chain of '" + too_deep + "' is deeper than 128 parents";
  for (const std::string& cmd :
       {std::string("io -r -c 'read 0 64k' "), std::string("map "), std::string("convert -q ")}) {
    SCOPED_TRACE(cmd);
    std::string args = cmd + shell_quote(too_deep);
    if (cmd.rfind("convert", 0) == 0) args += " " + shell_quote(*dir_ + "/out.raw");
    CliRun r = bounded(args);
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_EQ(r.err.rfind("vhdx: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
  }
  // info still describes the file and says why the chain was not opened.
  CliRun r = bounded("info " + shell_quote(too_deep));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("parent chain: not opened: " + message), std::string::npos) << r.out;
}

}  // namespace
}  // namespace vhdx
