// Empty differencing images (vhdx::create_differencing and `vhdx create -b`): what the child
// takes from its parent (size, sector sizes, Virtual Disk ID, the current DataWriteGuid as
// parent_linkage), the locator paths, an empty BAT, a clean check, vhdiinfo's verdict, and the
// refusals. Nothing here reads data through a child.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "io/posix_file.h"
#include "ops/check.h"
#include "support/cli_run.h"
#include "support/corpus.h"
#include "vhdx/create.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::CliRun;
using testing::have_program;
using testing::in_ci;
using testing::make_temp_dir;
using testing::run_shell;
using testing::run_vhdx;
using testing::sha256_file;
using testing::shell_quote;

constexpr std::uint64_t kMiB = 1 << 20;
using Entries = std::vector<std::pair<std::string, std::string>>;

std::unique_ptr<Image> open_alone(const std::string& path) {
  OpenOptions options;
  options.parents = ParentChain::kIgnore;  // the child itself, not its chain
  auto image = Image::open(path, options);
  EXPECT_TRUE(image) << path << ": " << image.error().to_string();
  return image ? std::move(*image) : nullptr;
}

// Each test's images live in a fresh folder.
class CreateDifferencingTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fs::absolute(make_temp_dir()).lexically_normal().string(); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // A dynamic parent with data written through a read-write open, so its DataWriteGuid is no
  // longer the one create gave it. Returns the parent's info after that write.
  ImageInfo make_written_parent(const std::string& p, std::uint64_t size, std::uint32_t logical = 0,
                                std::uint32_t physical = 0) {
    CreateOptions options;
    options.block_size = 2 * kMiB;
    options.logical_sector_size = logical;
    options.physical_sector_size = physical;
    auto created = create(p, size, options);
    EXPECT_TRUE(created) << created.error().to_string();
    Guid created_guid = info_of(p).headers[info_of(p).current_header].data_write_guid;
    {
      OpenOptions rw;
      rw.read_only = false;
      auto image = Image::open(p, rw);
      EXPECT_TRUE(image) << image.error().to_string();
      if (!image) return {};
      std::vector<std::uint8_t> data(64 * 1024);
      for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 7);
      EXPECT_TRUE((*image)->write(3 * kMiB + 4096, data));
      EXPECT_TRUE((*image)->close());
    }
    ImageInfo after = info_of(p);
    EXPECT_NE(after.headers[after.current_header].data_write_guid, created_guid);
    return after;
  }

  static ImageInfo info_of(const std::string& p) {
    auto image = open_alone(p);
    return image ? image->info() : ImageInfo{};
  }

  static Guid current_data_write_guid(const ImageInfo& info) {
    return info.headers[info.current_header].data_write_guid;
  }

  // The child as its parent's descendant: every field it takes, an empty BAT, a clean check.
  static void expect_empty_child(const std::string& child, const ImageInfo& parent,
                                 const Entries& locator) {
    auto image = open_alone(child);
    ASSERT_NE(image, nullptr);
    const ImageInfo& info = image->info();
    EXPECT_EQ(info.type, DiskType::kDifferencing);
    EXPECT_EQ(info.virtual_size, parent.virtual_size);
    EXPECT_EQ(info.logical_sector_size, parent.logical_sector_size);
    EXPECT_EQ(info.physical_sector_size, parent.physical_sector_size);
    EXPECT_EQ(info.virtual_disk_id, parent.virtual_disk_id);
    EXPECT_NE(current_data_write_guid(info), current_data_write_guid(parent));
    ASSERT_TRUE(info.parent_locator_type);
    EXPECT_EQ(info.parent_locator_type->to_string(), "b04aefb7-d19e-4a81-b789-25b8e9445913");
    EXPECT_EQ(info.parent_locator, locator);
    auto counts = image->count_blocks();
    ASSERT_TRUE(counts) << counts.error().to_string();
    EXPECT_EQ(counts->not_present, info.payload_blocks);
    EXPECT_EQ(counts->fully_present + counts->partially_present + counts->zero + counts->unmapped +
                  counts->undefined,
              0u);
    // Headers, log, metadata and a 1 MiB BAT: no payload, no sector bitmaps.
    EXPECT_EQ(fs::file_size(child), 4 * kMiB);

    auto file = open_posix_file(child, {});
    ASSERT_TRUE(file) << file.error().to_string();
    auto report = ops::check_image(std::move(*file));
    ASSERT_TRUE(report) << report.error().to_string();
    EXPECT_EQ(report->corruption_count, 0u)
        << (report->corruptions.empty() ? "" : report->corruptions[0]);
    EXPECT_TRUE(report->check_errors.empty())
        << (report->check_errors.empty() ? "" : report->check_errors[0]);
    EXPECT_EQ(report->leaked_bytes, 0u);
    EXPECT_EQ(report->allocated_blocks, 0u);
  }

  static std::string linkage(const ImageInfo& parent) {
    return "{" + current_data_write_guid(parent).to_string() + "}";
  }

  std::string dir_;
};

TEST_F(CreateDifferencingTest, ChildOfWrittenDynamicParentTakesItsIdentity) {
  const std::string base = path("base.vhdx");
  const ImageInfo parent = make_written_parent(base, 64 * kMiB);
  const std::string parent_hash = sha256_file(base);
  auto r = create_differencing(path("child.vhdx"), base, {});
  ASSERT_TRUE(r) << r.error().to_string();
  expect_empty_child(path("child.vhdx"), parent,
                     {{"parent_linkage", linkage(parent)},
                      {"absolute_win32_path", base},
                      {"relative_path", ".\\base.vhdx"}});
  // Block size: the parent's unless asked otherwise.
  EXPECT_EQ(info_of(path("child.vhdx")).block_size, 2 * kMiB);
  // The parent is opened read-only: not a byte changes, so the link stays valid.
  EXPECT_EQ(sha256_file(base), parent_hash);

  CreateOptions options;
  options.block_size = 8 * kMiB;
  options.log_size = 2 * kMiB;
  ASSERT_TRUE(create_differencing(path("child8.vhdx"), base, options));
  const ImageInfo child8 = info_of(path("child8.vhdx"));
  EXPECT_EQ(child8.block_size, 8 * kMiB);
  EXPECT_EQ(child8.headers[0].log_length, 2 * kMiB);
  EXPECT_EQ(child8.parent_locator.at(0).second, linkage(parent));
}

TEST_F(CreateDifferencingTest, RelativePathIsWrittenWindowsStyleFromTheChildsFolder) {
  fs::create_directories(path("img/deep"));
  fs::create_directories(path("vm"));
  const std::string base = path("img/base.vhdx");
  const ImageInfo parent = make_written_parent(base, 16 * kMiB);
  struct Case {
    std::string child;
    std::string parent_arg;  // as the caller spells it
    std::string relative;
  };
  const std::vector<Case> cases = {
      {path("vm/child.vhdx"), base, "..\\img\\base.vhdx"},
      {path("img/deep/child.vhdx"), base, "..\\base.vhdx"},
      {path("child.vhdx"), base, ".\\img\\base.vhdx"},
      {path("img/child2.vhdx"), path("vm/../img/./base.vhdx"), ".\\base.vhdx"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.child);
    auto r = create_differencing(c.child, c.parent_arg, {});
    ASSERT_TRUE(r) << r.error().to_string();
    expect_empty_child(c.child, parent,
                       {{"parent_linkage", linkage(parent)},
                        {"absolute_win32_path", base},
                        {"relative_path", c.relative}});
  }
  // Paths relative to the working directory are made absolute first.
  const fs::path saved = fs::current_path();
  fs::current_path(path("vm"));
  auto r = create_differencing("rel-child.vhdx", "../img/base.vhdx", {});
  fs::current_path(saved);
  ASSERT_TRUE(r) << r.error().to_string();
  expect_empty_child(path("vm/rel-child.vhdx"), parent,
                     {{"parent_linkage", linkage(parent)},
                      {"absolute_win32_path", base},
                      {"relative_path", "..\\img\\base.vhdx"}});
}

TEST_F(CreateDifferencingTest, FourKibSectorParent) {
  const std::string base = path("base4k.vhdx");
  const ImageInfo parent = make_written_parent(base, 32 * kMiB + 4096, 4096, 4096);
  ASSERT_EQ(parent.logical_sector_size, 4096u);
  CreateOptions options;
  options.logical_sector_size = 4096;  // equal to the parent's: allowed
  auto r = create_differencing(path("child4k.vhdx"), base, options);
  ASSERT_TRUE(r) << r.error().to_string();
  expect_empty_child(path("child4k.vhdx"), parent,
                     {{"parent_linkage", linkage(parent)},
                      {"absolute_win32_path", base},
                      {"relative_path", ".\\base4k.vhdx"}});
  EXPECT_EQ(info_of(path("child4k.vhdx")).chunk_ratio, 16384u);  // 2^23 * 4096 / 2 MiB
}

TEST_F(CreateDifferencingTest, SectorSizesMustMatchTheParent) {
  const std::string base = path("base.vhdx");
  make_written_parent(base, 16 * kMiB);  // 512 logical, 4096 physical
  struct Bad {
    std::uint32_t logical;
    std::uint32_t physical;
    const char* text;
  };
  for (const Bad& b :
       {Bad{4096, 0, "logical_sector_size: 4096 differs from the backing file's 512"},
        Bad{0, 512, "physical_sector_size: 512 differs from the backing file's 4096"}}) {
    CreateOptions options;
    options.logical_sector_size = b.logical;
    options.physical_sector_size = b.physical;
    auto r = create_differencing(path("child.vhdx"), base, options);
    ASSERT_FALSE(r) << b.text;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(b.text), std::string::npos) << r.error().message();
    EXPECT_FALSE(fs::exists(path("child.vhdx")));
  }
  CreateOptions fixed;
  fixed.type = DiskType::kFixed;
  auto r = create_differencing(path("child.vhdx"), base, fixed);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("subformat"), std::string::npos) << r.error().message();
  EXPECT_FALSE(fs::exists(path("child.vhdx")));
}

TEST_F(CreateDifferencingTest, MissingParentNamesTheBackingFile) {
  const std::string missing = path("no-such-base.vhdx");
  auto r = create_differencing(path("child.vhdx"), missing, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kIo);
  EXPECT_EQ(r.error().sys_errno(), ENOENT);
  EXPECT_EQ(r.error().message().rfind("backing file '" + missing + "': ", 0), 0u)
      << r.error().message();
  EXPECT_FALSE(fs::exists(path("child.vhdx")));
}

TEST_F(CreateDifferencingTest, RefusesToBeItsOwnParentOrToOverwrite) {
  const std::string base = path("base.vhdx");
  make_written_parent(base, 16 * kMiB);
  const std::string hash = sha256_file(base);
  ASSERT_EQ(::symlink(base.c_str(), path("link.vhdx").c_str()), 0);
  CreateOptions overwrite;
  overwrite.overwrite = true;
  // The same file however it is spelt, even with overwrite on.
  for (const std::string& child : {base, path("./img/../base.vhdx"), path("link.vhdx")}) {
    SCOPED_TRACE(child);
    fs::create_directories(path("img"));
    auto r = create_differencing(child, base, overwrite);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find("is its own backing file"), std::string::npos)
        << r.error().message();
    EXPECT_EQ(sha256_file(base), hash);
  }

  const std::string child = path("child.vhdx");
  ASSERT_TRUE(run_shell("printf precious > " + shell_quote(child)).status == 0);
  auto r = create_differencing(child, base, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("already exists"), std::string::npos) << r.error().message();
  EXPECT_EQ(fs::file_size(child), 8u);
  ASSERT_TRUE(create_differencing(child, base, overwrite));
  EXPECT_EQ(info_of(child).type, DiskType::kDifferencing);
}

// vhdiinfo (libvhdi) reads our child as a differencing image linked to our parent.
TEST_F(CreateDifferencingTest, VhdiinfoSeesTheParentIdentifier) {
  VHDX_REQUIRE_PROGRAM("vhdiinfo");
  const std::string base = path("base.vhdx");
  const ImageInfo parent = make_written_parent(base, 64 * kMiB);
  ASSERT_TRUE(create_differencing(path("child.vhdx"), base, {}));
  const ImageInfo child = info_of(path("child.vhdx"));
  CliRun r = run_shell("vhdiinfo " + shell_quote(path("child.vhdx")));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Disk type\t\t: Differential"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(67108864 bytes)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Bytes per sector\t: 512 bytes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Identifier\t\t: " + current_data_write_guid(child).to_string()),
            std::string::npos)
      << r.out;
  EXPECT_NE(
      r.out.find("Parent identifier\t: " + current_data_write_guid(parent).to_string() + "\n"),
      std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("Parent filename\t\t: " + base + "\n"), std::string::npos) << r.out;
}

TEST_F(CreateDifferencingTest, CliCreatesChildAndReportsIt) {
  const std::string base = path("base.vhdx");
  const ImageInfo parent = make_written_parent(base, 64 * kMiB);
  fs::create_directories(path("vm"));
  const std::string child = path("vm/child.vhdx");
  CliRun r = run_vhdx("create -f vhdx -b " + shell_quote(base) + " -F vhdx " + shell_quote(child));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "Formatting '" + child + "', fmt=vhdx size=67108864 backing_file=" + base +
                       " backing_fmt=vhdx\n");
  EXPECT_EQ(r.err, "");

  CliRun info = run_vhdx("info --output=json " + shell_quote(child));
  ASSERT_EQ(info.status, 0) << info.err;
  const json j = json::parse(info.out);
  EXPECT_EQ(j["type"], "differencing");
  EXPECT_EQ(j["virtual-size"], 64 * kMiB);
  EXPECT_EQ(j["page83-id"], parent.virtual_disk_id.to_string());
  EXPECT_EQ(j["parent-locator"]["type"], "b04aefb7-d19e-4a81-b789-25b8e9445913");
  EXPECT_EQ(j["parent-locator"]["entries"], json({{"parent_linkage", linkage(parent)},
                                                  {"absolute_win32_path", base},
                                                  {"relative_path", "..\\base.vhdx"}}));
  EXPECT_EQ(j["blocks"]["not-present"], 32);
  EXPECT_EQ(j["blocks"]["allocated"], 0);

  // SIZE equal to the parent's is accepted; -q prints nothing.
  r = run_vhdx("create -q -b " + shell_quote(base) + " " + shell_quote(path("c2.vhdx")) + " 64M");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(info_of(path("c2.vhdx")).type, DiskType::kDifferencing);
}

TEST_F(CreateDifferencingTest, CliRefusesWhatCannotBeAChild) {
  const std::string base = path("base.vhdx");
  make_written_parent(base, 64 * kMiB);
  const std::string child = path("child.vhdx");
  struct Bad {
    std::string args;
    std::string message;
  };
  const std::vector<Bad> bad = {
      {"-b " + shell_quote(base) + " " + shell_quote(child) + " 1G",
       "vhdx: SIZE: 1073741824 bytes differs from the 67108864 bytes of backing file '" + base +
           "' (a differencing image takes its parent's size; leave SIZE out) (invalid-argument)\n"},
      {"-b " + shell_quote(base) + " -F qcow2 " + shell_quote(child),
       "vhdx: backing format 'qcow2' is not supported: the backing file of a vhdx image is a "
       "vhdx image (unsupported)\n"},
      {"-b " + shell_quote(path("missing.vhdx")) + " " + shell_quote(child),
       "vhdx: backing file '" + path("missing.vhdx") + "': "},
      {"-b " + shell_quote(base) + " -o logical_sector_size=4096 " + shell_quote(child),
       "logical_sector_size: 4096 differs from the backing file's 512"},
      {"-b " + shell_quote(base) + " " + shell_quote(base) + " --overwrite",
       "is its own backing file"},
      {"-F vhdx " + shell_quote(child) + " 64M", "-F needs a backing file (-b)"},
      {shell_quote(child), "SIZE is required unless a backing file (-b) is given"},
  };
  const std::string hash = sha256_file(base);
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.args);
    CliRun r = run_vhdx("create " + b.args);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find(b.message), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(child));
    EXPECT_EQ(sha256_file(base), hash);
  }
}

}  // namespace
}  // namespace vhdx
