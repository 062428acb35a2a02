// The corpus's Hyper-V checkpoint (dissect-differencing/differencing.avhdx) read through a
// parent made here: its real parent is not public, so an empty 8 GiB dynamic image stands in,
// named as the child's relative_path says and given the DataWriteGuid its parent_linkage names.
// The chain opens, the child's own data reads as the child alone holds it, the rest reads as
// zeros, and the whole disk hashes to the value the corpus README gives for an all-zero parent.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "support/cli_run.h"
#include "support/corpus.h"
#include "support/header_patch.h"
#include "vhdx/create.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;
using testing::corpus_image;
using testing::have_program;
using testing::in_ci;
using testing::run_shell;
using testing::run_vhdx;
using testing::set_data_write_guid;
using testing::shell_quote;

constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
constexpr const char* kParentName = "Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx";
constexpr const char* kParentLinkage = "ff34003b-11ed-4cf8-a166-b2be05e20b80";
// corpus README: the whole disk read through an all-zero parent.
constexpr const char* kZeroParentSha256 =
    "fc5c91bfd8f7ee388cf482dc7eb6cef64b39a7e1bd043516ee95887b839f2b78";

class CorpusChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    child_ = fs::absolute(corpus_image("dissect-differencing/differencing.avhdx.gz"))
                 .lexically_normal()
                 .string();
    parent_ = fs::path(child_).parent_path().string() + "/" + kParentName;
    CreateOptions options;
    options.logical_sector_size = 512;
    options.physical_sector_size = 4096;
    auto created = create(parent_, 8 * kGiB, options);
    ASSERT_TRUE(created) << created.error().to_string();
    set_parent_guid(*Guid::parse(kParentLinkage));
  }

  void set_parent_guid(const Guid& guid) {
    auto patched = set_data_write_guid(parent_, guid);
    ASSERT_TRUE(patched) << patched.error().to_string();
  }

  std::unique_ptr<Image> open(ParentChain parents) {
    OpenOptions options;
    options.parents = parents;
    auto image = Image::open(child_, options);
    EXPECT_TRUE(image) << image.error().to_string();
    return image ? std::move(*image) : nullptr;
  }

  std::string child_, parent_;
};

TEST_F(CorpusChainTest, ParentStandInCarriesTheLinkage) {
  OpenOptions options;
  auto parent = Image::open(parent_, options);
  ASSERT_TRUE(parent) << parent.error().to_string();
  const ImageInfo& info = (*parent)->info();
  EXPECT_EQ(info.headers[0].data_write_guid.to_string(), kParentLinkage);
  EXPECT_EQ(info.headers[1].data_write_guid.to_string(), kParentLinkage);
  EXPECT_TRUE(info.headers[0].valid) << info.headers[0].invalid_reason;
  EXPECT_TRUE(info.headers[1].valid) << info.headers[1].invalid_reason;
  EXPECT_EQ(info.virtual_size, 8 * kGiB);
  EXPECT_EQ(info.logical_sector_size, 512u);
}

TEST_F(CorpusChainTest, ChainOpensAndReadsTheChildsData) {
  auto chain = open(ParentChain::kRequire);
  ASSERT_NE(chain, nullptr);
  EXPECT_EQ(chain->parent_chain(), std::vector<std::string>{parent_});
  EXPECT_TRUE(chain->parent_error().empty()) << chain->parent_error();
  auto alone = open(ParentChain::kIgnore);
  ASSERT_NE(alone, nullptr);
  EXPECT_TRUE(alone->parent_chain().empty());

  const std::uint64_t size = chain->virtual_size();
  ASSERT_EQ(size, 8 * kGiB);
  auto extents = chain->block_status(0, size);
  ASSERT_TRUE(extents) << extents.error().to_string();

  std::vector<Extent> data, other;
  std::uint64_t covered = 0;
  for (const Extent& e : *extents) {
    EXPECT_EQ(e.offset, covered);
    covered = e.offset + e.length;
    if (e.kind == ExtentKind::kData) {
      // The stand-in parent holds nothing: all data is the child's own.
      EXPECT_EQ(e.depth, 0u) << e.offset;
      data.push_back(e);
    } else {
      other.push_back(e);
    }
  }
  EXPECT_EQ(covered, size);
  ASSERT_FALSE(data.empty());
  ASSERT_GE(other.size(), 8u);

  std::uint64_t data_bytes = 0;
  std::uint64_t non_zero_bytes = 0;
  std::vector<std::uint8_t> through_chain, by_itself;
  for (const Extent& e : data) {
    SCOPED_TRACE("data extent at " + std::to_string(e.offset));
    through_chain.assign(e.length, 0xee);
    by_itself.assign(e.length, 0x11);
    ASSERT_TRUE(chain->read(e.offset, through_chain));
    ASSERT_TRUE(alone->read(e.offset, by_itself));
    EXPECT_TRUE(through_chain == by_itself);
    data_bytes += e.length;
    non_zero_bytes += static_cast<std::uint64_t>(
        std::count_if(through_chain.begin(), through_chain.end(), [](auto b) { return b != 0; }));
  }
  EXPECT_GT(non_zero_bytes, 0u) << "the child's data is not all zeros";
  // 32 partially present 2 MiB blocks: the data lies within them.
  EXPECT_LE(data_bytes, 32u * 2 * 1024 * 1024);

  // Eight ranges spread over the rest read as the (all-zero) parent.
  for (std::size_t i = 0; i < 8; ++i) {
    const Extent& e = other[i * (other.size() - 1) / 7];
    const std::uint64_t length = std::min<std::uint64_t>(e.length, 256 * 1024);
    SCOPED_TRACE("non-data extent at " + std::to_string(e.offset));
    std::vector<std::uint8_t> bytes(length, 0xee);
    ASSERT_TRUE(chain->read(e.offset + e.length - length, bytes));
    EXPECT_TRUE(std::all_of(bytes.begin(), bytes.end(), [](auto b) { return b == 0; }));
  }
}

TEST_F(CorpusChainTest, WholeDiskHashMatchesTheReadme) {
  if (!have_program("openssl")) {
    if (in_ci()) FAIL() << "openssl not found, and CI=true requires it";
    GTEST_SKIP() << "openssl not found: install it to hash the 8 GiB disk";
  }
  const std::string raw = fs::path(child_).parent_path().string() + "/disk.raw";
  CliRun r = run_vhdx("convert -q -O raw " + shell_quote(child_) + " " + shell_quote(raw));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(fs::file_size(raw), 8 * kGiB);
  r = run_shell("openssl dgst -sha256 -r " + shell_quote(raw));
  fs::remove(raw);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, 64), kZeroParentSha256) << r.out;
}

TEST_F(CorpusChainTest, WrongDataWriteGuidBreaksTheChain) {
  const Guid wrong = Guid::random();
  set_parent_guid(wrong);
  auto image = Image::open(child_, {});
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().code(), ErrorCode::kCorrupt) << image.error().to_string();
  const std::string& message = image.error().message();
  EXPECT_NE(message.find("differencing chain broken"), std::string::npos) << message;
  EXPECT_NE(message.find(wrong.to_string()), std::string::npos) << message;
  EXPECT_NE(message.find(kParentLinkage), std::string::npos) << message;

  // kTry opens the child alone and says why.
  OpenOptions options;
  options.parents = ParentChain::kTry;
  auto alone = Image::open(child_, options);
  ASSERT_TRUE(alone) << alone.error().to_string();
  EXPECT_TRUE((*alone)->parent_chain().empty());
  EXPECT_NE((*alone)->parent_error().find("differencing chain broken"), std::string::npos)
      << (*alone)->parent_error();
}

}  // namespace
}  // namespace vhdx
