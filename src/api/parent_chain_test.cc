// Opening differencing chains from files: the parent is found through the locator, accepted
// only when its DataWriteGuid and sector size match, and every way the search can fail gives
// its own error, naming the paths tried. The images are built with the engine's test builder
// and written to a temporary folder.
#include "api/parent_chain.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "image/test_image.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

using image::testing::kMiB;
using image::testing::TestImage;

constexpr const char* kLinkage = "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}";

// A temporary folder, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "vhdx-chain-XXXXXX").string();
    EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator+(const std::string& tail) const { return path_ + tail; }

 private:
  std::string path_;
};

void save(const TestImage& t, const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(t.bytes_view().data()),
            static_cast<std::streamsize>(t.bytes_view().size()));
  ASSERT_TRUE(out.good()) << path;
}

// A base with blocks 0-3 holding patterns, whose DataWriteGuid is `data_write_guid`.
TestImage make_base(const char* data_write_guid, std::uint32_t sector_size = 512) {
  TestImage base(
      {.block_size = 1 * kMiB, .virtual_size = 4 * kMiB, .logical_sector_size = sector_size});
  for (std::uint64_t b = 0; b < 4; ++b) base.allocate(b, static_cast<std::uint8_t>(0x21 * (b + 1)));
  for (int i = 0; i < 2; ++i) base.header(i).data_write_guid = *Guid::parse(data_write_guid);
  base.write_headers();
  return base;
}

// A child whose block 1 is its own, pointing at `relative_path` under `linkage`.
TestImage make_child(const char* relative_path = ".\\parent.vhdx", const char* linkage = kLinkage,
                     const char* own_guid = "66666666-7777-8888-9999-aaaaaaaaaaaa") {
  TestImage child({.block_size = 1 * kMiB,
                   .virtual_size = 4 * kMiB,
                   .has_parent = true,
                   .parent_linkage = linkage,
                   .parent_relative_path = relative_path});
  child.allocate(1, 0x90);
  for (int i = 0; i < 2; ++i) child.header(i).data_write_guid = *Guid::parse(own_guid);
  child.write_headers();
  return child;
}

std::vector<std::uint8_t> read_all(Image& image) {
  std::vector<std::uint8_t> out(image.virtual_size());
  auto r = image.read(0, out);
  EXPECT_TRUE(r) << r.error().to_string();
  return out;
}

void expect_open_error(const std::string& path, ErrorCode code,
                       const std::vector<std::string>& phrases) {
  auto image = Image::open(path, {});
  ASSERT_FALSE(image) << path << " opened";
  EXPECT_EQ(image.error().code(), code) << image.error().to_string();
  for (const std::string& phrase : phrases)
    EXPECT_NE(image.error().message().find(phrase), std::string::npos)
        << "message lacks \"" << phrase << "\": " << image.error().message();
}

TEST(ParentChain, FindsTheParentThroughTheRelativePathAndReadsThroughIt) {
  const TempDir dir;
  const TestImage base = make_base(kLinkage);
  const TestImage child = make_child();
  save(base, dir + "/parent.vhdx");
  save(child, dir + "/child.vhdx");

  auto image = Image::open(dir + "/child.vhdx", {});
  ASSERT_TRUE(image) << image.error().to_string();
  EXPECT_EQ((*image)->parent_chain(), std::vector<std::string>{dir + "/parent.vhdx"});
  EXPECT_TRUE((*image)->parent_error().empty());
  std::vector<std::uint8_t> want = base.expected_disk();
  const auto own = child.expected_disk();
  std::copy_n(own.begin() + kMiB, kMiB, want.begin() + kMiB);
  EXPECT_EQ(read_all(**image), want);
}

TEST(ParentChain, AMissingParentFailsTheOpenUnlessAskedToOpenTheImageAlone) {
  const TempDir dir;
  save(make_child(), dir + "/child.vhdx");
  const std::string child = dir + "/child.vhdx";
  expect_open_error(child, ErrorCode::kIo,
                    {"the parent of '" + child + "' was not found",
                     "tried '" + (dir + "/parent.vhdx") + "' (relative_path): not found"});
  {
    auto image = Image::open(child, {});
    ASSERT_FALSE(image);
    EXPECT_EQ(image.error().sys_errno(), ENOENT);
  }

  auto tried = Image::open(child, OpenOptions{.parents = ParentChain::kTry});
  ASSERT_TRUE(tried) << tried.error().to_string();
  EXPECT_NE((*tried)->parent_error().find("was not found"), std::string::npos);
  EXPECT_TRUE((*tried)->parent_chain().empty());
  std::vector<std::uint8_t> buf(512);
  auto r = (*tried)->read(0, buf);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);

  auto alone = Image::open(child, OpenOptions{.parents = ParentChain::kIgnore});
  ASSERT_TRUE(alone) << alone.error().to_string();
  EXPECT_TRUE((*alone)->parent_error().empty());
  EXPECT_TRUE((*alone)->read(kMiB, buf));  // the child's own block
}

TEST(ParentChain, AParentWithAnotherDataWriteGuidBreaksTheChain) {
  const TempDir dir;
  save(make_base("0badc0de-0000-4000-8000-000000000001"), dir + "/parent.vhdx");
  save(make_child(), dir + "/child.vhdx");
  expect_open_error(dir + "/child.vhdx", ErrorCode::kCorrupt,
                    {"differencing chain broken",
                     "its DataWriteGuid {0badc0de-0000-4000-8000-000000000001} is not the "
                     "parent_linkage {83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}"});
}

TEST(ParentChain, AParentWithAnotherSectorSizeIsRefused) {
  const TempDir dir;
  save(make_base(kLinkage, 4096), dir + "/parent.vhdx");
  save(make_child(), dir + "/child.vhdx");
  expect_open_error(
      dir + "/child.vhdx", ErrorCode::kCorrupt,
      {"differencing chain broken", "its logical sector size is 4096, the child's 512"});
}

TEST(ParentChain, AChainThatLoopsBackIsRefused) {
  const TempDir dir;
  // An image naming itself as its parent, with its own DataWriteGuid as the linkage.
  save(make_child(".\\self.vhdx", "{66666666-7777-8888-9999-aaaaaaaaaaaa}"), dir + "/self.vhdx");
  expect_open_error(dir + "/self.vhdx", ErrorCode::kCorrupt,
                    {"already in this chain (the chain would loop)"});
  // Two images naming each other.
  save(make_child(".\\b.vhdx", "{bbbbbbbb-0000-4000-8000-000000000000}",
                  "aaaaaaaa-0000-4000-8000-000000000000"),
       dir + "/a.vhdx");
  save(make_child(".\\a.vhdx", "{aaaaaaaa-0000-4000-8000-000000000000}",
                  "bbbbbbbb-0000-4000-8000-000000000000"),
       dir + "/b.vhdx");
  expect_open_error(dir + "/a.vhdx", ErrorCode::kCorrupt,
                    {"the parent of '" + (dir + "/b.vhdx") + "'", "already in this chain"});
}

TEST(ParentChain, AParentHeldByAWriterIsBusyUnlessSharingIsForced) {
  const TempDir dir;
  save(make_base(kLinkage), dir + "/parent.vhdx");
  save(make_child(), dir + "/child.vhdx");
  auto writer = Image::open(dir + "/parent.vhdx", OpenOptions{.read_only = false});
  ASSERT_TRUE(writer) << writer.error().to_string();
  expect_open_error(dir + "/child.vhdx", ErrorCode::kBusy, {"the parent of"});
  auto shared = Image::open(dir + "/child.vhdx", OpenOptions{.force_share = true});
  ASSERT_TRUE(shared) << shared.error().to_string();
  EXPECT_EQ((*shared)->parent_chain().size(), 1u);
}

TEST(ParentChain, OpeningTheChainNeverChangesAFile) {
  const TempDir dir;
  save(make_base(kLinkage), dir + "/parent.vhdx");
  save(make_child(), dir + "/child.vhdx");
  auto bytes_of = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(in), {});
  };
  const auto parent_before = bytes_of(dir + "/parent.vhdx");
  const auto child_before = bytes_of(dir + "/child.vhdx");
  {
    auto image = Image::open(dir + "/child.vhdx", {});
    ASSERT_TRUE(image) << image.error().to_string();
    read_all(**image);
    ASSERT_TRUE((*image)->block_status(0, (*image)->virtual_size()));
  }
  EXPECT_EQ(bytes_of(dir + "/parent.vhdx"), parent_before);
  EXPECT_EQ(bytes_of(dir + "/child.vhdx"), child_before);
}

}  // namespace
}  // namespace vhdx
