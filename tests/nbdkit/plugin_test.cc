// The nbdkit plugin, served by nbdkit and used by libnbd's and QEMU's NBD clients: what they
// read is what `vhdx convert` reads; what they write, zero and trim lands in a clean image that
// `vhdx check` and `qemu-img check` accept and that holds the same bytes as a raw twin given the
// same commands; block status agrees with `vhdx map`; under -r nothing of the file changes (not
// one byte, not its mtime), dirty log included; bad images and busy images stop nbdkit with the
// library's message.
#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "guarantees/guarantee_util.h"
#include "nbdkit/nbdkit_run.h"
#include "support/cli_run.h"
#include "support/corpus.h"

namespace vhdx {
namespace {

using guarantees::file_state;
using guarantees::FileState;
using nlohmann::json;
using testing::CliRun;
using testing::corpus_image;
using testing::make_temp_dir;
using testing::nbdkit_plugin_path;
using testing::run_nbdkit;
using testing::run_shell;
using testing::run_vhdx;
using testing::sha256_file;
using testing::shell_quote;

// The plugin and its image as nbdkit arguments.
std::string served(const std::string& image, const std::string& extra = "") {
  return shell_quote(nbdkit_plugin_path()) + " " + shell_quote(image) +
         (extra.empty() ? "" : " " + extra);
}

// The raw disk of `image` as `vhdx convert` reads it.
std::string converted_sha(const std::string& image) {
  const std::string raw = make_temp_dir() + "/converted.raw";
  CliRun r = run_vhdx("convert -q -O raw " + shell_quote(image) + " " + shell_quote(raw));
  EXPECT_EQ(r.status, 0) << r.err;
  return sha256_file(raw);
}

// The raw disk of `image` as an NBD client copies it off the plugin.
std::string served_sha(const std::string& image, bool read_only, const std::string& extra = "") {
  const std::string raw = make_temp_dir() + "/served.raw";
  CliRun r = run_nbdkit(served(image, extra), "nbdcopy \"$uri\" " + shell_quote(raw), read_only);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  return sha256_file(raw);
}

// The data ranges (start, length) of a JSON map: `vhdx map`'s or `nbdinfo --map --json`'s.
using Ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;
void add_range(Ranges& ranges, std::uint64_t start, std::uint64_t length) {
  if (!ranges.empty() && ranges.back().first + ranges.back().second == start) {
    ranges.back().second += length;
  } else {
    ranges.emplace_back(start, length);
  }
}
Ranges vhdx_data_ranges(const std::string& image) {
  CliRun r = run_vhdx("map --output=json " + shell_quote(image));
  EXPECT_EQ(r.status, 0) << r.err;
  Ranges ranges;
  for (const auto& e : json::parse(r.out, nullptr, false)) {
    if (e.value("data", false)) add_range(ranges, e["start"], e["length"]);
  }
  return ranges;
}
Ranges nbd_data_ranges(const std::string& image) {
  CliRun r = run_nbdkit(served(image), "nbdinfo --map --json \"$uri\"", /*read_only=*/true);
  EXPECT_EQ(r.status, 0) << r.err;
  Ranges ranges;
  for (const auto& e : json::parse(r.out, nullptr, false)) {
    if ((e.value("type", 0) & 1) == 0) add_range(ranges, e["offset"], e["length"]);
  }
  return ranges;
}

class NbdkitPlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    VHDX_REQUIRE_PROGRAM("nbdkit");
    VHDX_REQUIRE_PROGRAM("nbdcopy");
    VHDX_REQUIRE_PROGRAM("nbdinfo");
    VHDX_REQUIRE_PROGRAM("qemu-io");
    dir_ = make_temp_dir();
  }

  // A 24 MiB dynamic image (1 MiB blocks) with patterns in whole, partial and scattered blocks.
  std::string written_image(const std::string& name, const std::string& create_options) {
    const std::string image = dir_ + "/" + name;
    CliRun r =
        run_vhdx("create -q -o block_size=1M" + create_options + " " + shell_quote(image) + " 24M");
    EXPECT_EQ(r.status, 0) << r.err;
    r = run_vhdx("io -c 'write -P 0x5a 0 1M' -c 'write -P 0xa5 3M 12k' -c 'write -P 0x3c 9M 5M' " +
                 shell_quote(image));
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    return image;
  }

  std::string dir_;
};

TEST_F(NbdkitPlugin, ClientsReadWhatConvertReads) {
  for (const char* options : {"", ",logical_sector_size=4096"}) {
    const std::string image = written_image("read.vhdx", options);
    const FileState before = file_state(image);
    EXPECT_EQ(served_sha(image, /*read_only=*/true), converted_sha(image)) << options;
    // QEMU's client checks the patterns over NBD.
    CliRun r = run_nbdkit(served(image),
                          "qemu-io -r -f raw \"$nbd\" -c 'read -P 0x5a 0 1M' -c 'read -P 0 1M 2M' "
                          "-c 'read -P 0xa5 3M 12k' -c 'read -P 0x3c 9M 5M' -c 'read -P 0 14M 10M'",
                          /*read_only=*/true);
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_EQ(r.out.find("Pattern verification failed"), std::string::npos) << r.out;
    EXPECT_EQ(file_state(image), before) << "serving read-only changed the file";
    ASSERT_EQ(run_shell("rm " + shell_quote(image)).status, 0);
  }
}

TEST_F(NbdkitPlugin, BlockStatusMatchesMap) {
  const std::string image = written_image("map.vhdx", "");
  const Ranges expected{{0, 1 << 20}, {3 << 20, 1 << 20}, {9 << 20, 5 << 20}};
  EXPECT_EQ(vhdx_data_ranges(image), expected);
  EXPECT_EQ(nbd_data_ranges(image), expected);
}

// The export describes the image: its size, read-only under -r, writable otherwise.
TEST_F(NbdkitPlugin, ExportDescribesTheImage) {
  const std::string image = written_image("info.vhdx", ",logical_sector_size=4096");
  CliRun r = run_nbdkit(served(image), "nbdinfo --json \"$uri\"", /*read_only=*/true);
  ASSERT_EQ(r.status, 0) << r.err;
  json info = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(info.contains("exports")) << r.out;
  const json& e = info["exports"][0];
  EXPECT_EQ(e["export-size"], 24u << 20);
  EXPECT_EQ(e["is_read_only"], true);
  EXPECT_EQ(e["block_size_preferred"], 4096);
  r = run_nbdkit(served(image), "nbdinfo --json \"$uri\"", /*read_only=*/false);
  ASSERT_EQ(r.status, 0) << r.err;
  info = json::parse(r.out, nullptr, false);
  EXPECT_EQ(info["exports"][0]["is_read_only"], false) << r.out;
  EXPECT_EQ(info["exports"][0]["can_trim"], true) << r.out;
}

// Writes, zeroes and trims through QEMU's client land in the image exactly as in a raw twin
// given the same commands, and leave an image both checkers accept, cleanly closed.
TEST_F(NbdkitPlugin, WritesLandAsInARawTwin) {
  VHDX_REQUIRE_PROGRAM("qemu-img");
  const std::string commands =
      "-c 'write -P 0x11 0 64k' -c 'write -P 0x22 3M 2M' -c 'write -z 3M 1M' "
      "-c 'discard 4M 1M' -c 'write -P 0x33 15M 1M' -c 'write -P 0x44 1000000 70000' "
      "-c 'write -z 15M 4096' -c flush -c 'write -P 0x55 23M 1M'";
  for (const char* options : {"", ",logical_sector_size=4096"}) {
    const std::string image = dir_ + "/write.vhdx";
    const std::string twin = dir_ + "/twin.raw";
    ASSERT_EQ(run_vhdx("create -q --overwrite -o block_size=1M" + std::string(options) + " " +
                       shell_quote(image) + " 24M")
                  .status,
              0);
    ASSERT_EQ(
        run_shell("rm -f " + shell_quote(twin) + " && truncate -s 24M " + shell_quote(twin)).status,
        0);
    CliRun r = run_nbdkit(served(image), "qemu-io -f raw \"$nbd\" " + commands, false);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    r = run_shell("qemu-io -f raw " + shell_quote(twin) + " " + commands);
    ASSERT_EQ(r.status, 0) << r.out << r.err;

    EXPECT_EQ(converted_sha(image), sha256_file(twin)) << options;
    r = run_vhdx("check --output=json " + shell_quote(image));
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    json check = json::parse(r.out, nullptr, false);
    EXPECT_EQ(check["corruptions"], 0) << r.out;
    EXPECT_EQ(check["leaks"], 0) << r.out;
    // Closed cleanly when the client left: nothing in the log.
    r = run_vhdx("info --output=json " + shell_quote(image));
    EXPECT_EQ(json::parse(r.out, nullptr, false)["log"]["state"], "empty") << r.out;
    if (options[0] == '\0') {  // QEMU 7.2 reads only 512-byte-sector VHDX
      r = run_shell("qemu-img check -f vhdx " + shell_quote(image));
      EXPECT_EQ(r.status, 0) << r.out << r.err;
      r = run_shell("qemu-img compare -f vhdx -F raw " + shell_quote(image) + " " +
                    shell_quote(twin));
      EXPECT_EQ(r.status, 0) << r.out << r.err;
    }
  }
}

// Serving under -r never changes a byte or the mtime of the file: the corpus images, the one
// whose log needs replay (replayed in memory) included, each read whole with the README's hash.
TEST_F(NbdkitPlugin, ReadOnlyServingChangesNothing) {
  for (const auto& [file, sha] : testing::corpus_contents()) {
    const std::string image = corpus_image(file);
    const FileState before = file_state(image);
    EXPECT_EQ(served_sha(image, /*read_only=*/true), sha) << file;
    CliRun r = run_nbdkit(served(image), "nbdinfo --map \"$uri\" >/dev/null", true);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(file_state(image), before) << file << " changed";
  }
}

// A differencing image reads through its parent chain and is exported read-only.
TEST_F(NbdkitPlugin, DifferencingReadsThroughTheParent) {
  const std::string base = written_image("base.vhdx", "");
  const std::string child = dir_ + "/child.vhdx";
  ASSERT_EQ(run_vhdx("create -q -b " + shell_quote(base) + " " + shell_quote(child)).status, 0);
  EXPECT_EQ(served_sha(child, /*read_only=*/false), converted_sha(base));
  CliRun r = run_nbdkit(served(child), "nbdinfo --json \"$uri\"", /*read_only=*/false);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json::parse(r.out, nullptr, false)["exports"][0]["is_read_only"], true) << r.out;
}

// Two clients one after the other, and two at once, see the same disk.
TEST_F(NbdkitPlugin, SeveralClientsShareTheImage) {
  const std::string image = written_image("clients.vhdx", "");
  const std::string a = dir_ + "/a.raw";
  const std::string b = dir_ + "/b.raw";
  CliRun r = run_nbdkit(served(image),
                        "nbdcopy \"$uri\" " + shell_quote(a) + " & nbdcopy \"$uri\" " +
                            shell_quote(b) + " & wait %1 && wait %2 && qemu-io -f raw \"$nbd\" " +
                            "-c 'write -P 0x77 20M 4k' && qemu-io -r -f raw \"$nbd\" -c " +
                            "'read -P 0x77 20M 4k'",
                        /*read_only=*/false);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("Pattern verification failed"), std::string::npos) << r.out;
  EXPECT_EQ(sha256_file(a), sha256_file(b));
  r = run_vhdx("io -r -c 'read -P 0x77 20M 4k' -c 'read -P 0x5a 0 1M' " + shell_quote(image));
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// nbdkit refuses to start on a bad image, with the library's message; a missing file= too.
TEST_F(NbdkitPlugin, BadImagesStopNbdkitWithTheReason) {
  const std::string image = written_image("bad.vhdx", "");
  // Both headers' checksums broken.
  ASSERT_EQ(run_shell("printf 'XXXX' | dd of=" + shell_quote(image) +
                      " bs=1 seek=65540 conv=notrunc 2>/dev/null && printf 'XXXX' | dd of=" +
                      shell_quote(image) + " bs=1 seek=131076 conv=notrunc 2>/dev/null")
                .status,
            0);
  CliRun r = run_nbdkit(served(image), "nbdinfo \"$uri\"", /*read_only=*/true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("vhdx: " + image), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("header"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("(corrupt)"), std::string::npos) << r.err;

  const std::string text = dir_ + "/text.vhdx";
  ASSERT_EQ(run_shell("head -c 1048576 /dev/zero > " + shell_quote(text)).status, 0);
  r = run_nbdkit(served(text), "true", /*read_only=*/true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("not-vhdx"), std::string::npos) << r.err;

  r = run_nbdkit(shell_quote(nbdkit_plugin_path()), "true", /*read_only=*/true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("file=PATH is required"), std::string::npos) << r.err;
}

// An image another process holds for writing is refused as busy; with -r and force-share=true
// it is served anyway (for inspection).
TEST_F(NbdkitPlugin, BusyImageNeedsForceShare) {
  const std::string image = written_image("busy.vhdx", "");
  const std::string holder = "(" + testing::vhdx_cli() + " io -c 'sleep 4000' " +
                             shell_quote(image) + " >/dev/null 2>&1 &) ; sleep 1";
  CliRun r = run_nbdkit(served(image), "nbdinfo \"$uri\"", /*read_only=*/true, holder);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("(busy)"), std::string::npos) << r.err;
  r = run_nbdkit(served(image, "force-share=true"),
                 "qemu-io -r -f raw \"$nbd\" -c 'read -P 0x5a 0 1M'", /*read_only=*/true);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("Pattern verification failed"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace vhdx
