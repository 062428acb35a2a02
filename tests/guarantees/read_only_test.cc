// Read-only commands never change the image: `vhdx info`, `map`, `convert -O raw` (the source)
// and `io -r` leave every byte, the size, the allocation, the mtime and the ctime of the image
// as they were, on qemu-made images and on the corpus, the dirty-log image included.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "guarantees/guarantee_util.h"
#include "support/cli_run.h"
#include "support/corpus.h"

namespace vhdx {
namespace {

using guarantees::file_state;
using guarantees::FileState;
using testing::corpus_image;
using testing::have_program;
using testing::make_temp_dir;
using testing::run_command;
using testing::run_vhdx;
using testing::sha256_file;
using testing::shell_quote;

// Runs every read-only command on `image`; returns the exit statuses in order. Each command
// must end with 0 or 1 (never a signal), and the file must be unchanged after each one.
std::vector<int> run_read_only_commands(const std::string& image) {
  const FileState before = file_state(image);
  EXPECT_FALSE(before.sha256.empty()) << image;
  const std::string out = make_temp_dir() + "/out.raw";
  const std::vector<std::string> commands = {
      "info " + shell_quote(image),
      "info --output json " + shell_quote(image),
      "map " + shell_quote(image),
      "map --output json " + shell_quote(image),
      "convert -O raw " + shell_quote(image) + " " + shell_quote(out),
      "io -r -c 'read -v 0 4k' -c 'read 1M 64k' -c map -c info " + shell_quote(image),
  };
  std::vector<int> statuses;
  for (const auto& args : commands) {
    auto r = run_vhdx(args);
    EXPECT_TRUE(r.status == 0 || r.status == 1) << args << " -> " << r.status << "\n" << r.err;
    statuses.push_back(r.status);
    EXPECT_EQ(file_state(image), before) << "`vhdx " << args << "` changed " << image;
  }
  return statuses;
}

using CorpusCase = testing::CorpusContent;

class ReadOnlyCorpus : public ::testing::TestWithParam<CorpusCase> {};

TEST_P(ReadOnlyCorpus, CommandsLeaveImageUnchanged) {
  const auto& c = GetParam();
  const std::string image = corpus_image(c.file);
  const FileState before = file_state(image);
  auto statuses = run_read_only_commands(image);
  ASSERT_EQ(statuses.size(), 6u);
  const std::string raw = make_temp_dir() + "/content.raw";
  auto convert = run_vhdx("convert -O raw " + shell_quote(image) + " " + shell_quote(raw));
  // Every command succeeds; the dirty-log image is served through an in-memory replay of its
  // log (the file keeps its pre-replay bytes, checked above after every command).
  EXPECT_EQ(statuses, (std::vector<int>{0, 0, 0, 0, 0, 0}));
  ASSERT_EQ(convert.status, 0) << convert.err;
  EXPECT_EQ(sha256_file(raw), c.content_sha256);
  EXPECT_EQ(file_state(image).sha256, before.sha256);
}

INSTANTIATE_TEST_SUITE_P(Corpus, ReadOnlyCorpus,
                         ::testing::ValuesIn(testing::corpus_contents().begin(),
                                             testing::corpus_contents().end()),
                         [](const auto& info) {
                           std::string name = info.param.file;
                           name = name.substr(0, name.find('/'));
                           for (char& ch : name)
                             if (ch == '-') ch = '_';
                           return name;
                         });

// The differencing image has no parent here; whatever the commands say, they change nothing.
TEST(ReadOnly, DifferencingWithoutParentUnchanged) {
  const std::string image = corpus_image("dissect-differencing/differencing.avhdx.gz");
  auto statuses = run_read_only_commands(image);
  EXPECT_EQ(statuses[0], 0);  // info needs no parent
}

TEST(ReadOnly, QemuMadeImagesUnchanged) {
  if (!have_program("qemu-img") || !have_program("qemu-io")) {
    if (testing::in_ci()) FAIL() << "qemu-img/qemu-io missing under CI";
    GTEST_SKIP() << "qemu-img/qemu-io not installed";
  }
  const std::string dir = make_temp_dir();
  const std::string dynamic = dir + "/dynamic.vhdx";
  const std::string fixed = dir + "/fixed.vhdx";
  ASSERT_EQ(run_command("qemu-img create -q -f vhdx -o subformat=dynamic,block_size=1M " +
                        shell_quote(dynamic) + " 8M"),
            0);
  ASSERT_EQ(run_command("qemu-io -f vhdx -c 'write -P 0xa5 0 64k' -c 'write -P 0x5a 3M 4k' " +
                        shell_quote(dynamic) + " >/dev/null"),
            0);
  ASSERT_EQ(run_command("qemu-img create -q -f vhdx -o subformat=fixed,block_size=1M " +
                        shell_quote(fixed) + " 4M"),
            0);
  for (const auto& image : {dynamic, fixed}) {
    auto statuses = run_read_only_commands(image);
    EXPECT_EQ(statuses, (std::vector<int>{0, 0, 0, 0, 0, 0})) << image;
  }
  // The converted content matches qemu's own.
  const std::string ours = dir + "/ours.raw";
  const std::string theirs = dir + "/theirs.raw";
  ASSERT_EQ(run_vhdx("convert -O raw " + shell_quote(dynamic) + " " + shell_quote(ours)).status, 0);
  ASSERT_EQ(run_command("qemu-img convert -f vhdx -O raw " + shell_quote(dynamic) + " " +
                        shell_quote(theirs)),
            0);
  EXPECT_EQ(sha256_file(ours), sha256_file(theirs));
}

}  // namespace
}  // namespace vhdx
