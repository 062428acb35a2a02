// libvhdi reads chains this library makes: a dynamic base created and written by `vhdx`, an
// empty child made by `vhdx create -b`. vhdimount (FUSE) finds the parent itself through the
// child's locator and serves the base with the same bytes as `vhdx convert -O raw child`; the
// child's own disk either matches too or differs exactly by libvhdi 20210425's misreading of
// NOT_PRESENT sector bitmaps (see the test). vhdiinfo reports the base's DataWriteGuid as the
// child's parent identifier. Skips when a peer is missing, except under CI=true, where that is
// a failure.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "support/cli_run.h"
#include "support/corpus.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;
using testing::FuseMountGuard;
using testing::have_program;
using testing::in_ci;
using testing::make_temp_dir;
using testing::run_command;
using testing::run_shell;
using testing::run_vhdx;
using testing::sha256_file;
using testing::shell_quote;

constexpr std::uint64_t kDiskSize = 48ull << 20;

// The first `length` bytes of the file at `path` (fewer when it is shorter).
std::string read_prefix(const std::string& path, std::uint64_t length) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes(length, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(length));
  bytes.resize(static_cast<std::size_t>(in.gcount()));
  return bytes;
}

class ChainInteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* peer : {"vhdiinfo", "vhdimount", "fusermount"}) {
      if (have_program(peer)) continue;
      if (in_ci()) FAIL() << peer << " not found on PATH (required when CI=true)";
      GTEST_SKIP() << peer << " not found on PATH: chain interop not tested";
    }
    if (::access("/dev/fuse", R_OK | W_OK) != 0) {
      if (in_ci()) FAIL() << "/dev/fuse is not usable (required when CI=true)";
      GTEST_SKIP() << "/dev/fuse is not usable: vhdimount cannot run";
    }
    dir_ = fs::absolute(make_temp_dir()).lexically_normal().string();
    base_ = dir_ + "/base.vhdx";
    child_ = dir_ + "/child.vhdx";
    CliRun r = run_vhdx("create -q -o block_size=2M " + shell_quote(base_) + " 48M");
    ASSERT_EQ(r.status, 0) << r.err;
    // Whole blocks, a partial block, and a tail, each with its own byte.
    r = run_vhdx(
        "io -c 'write -P 0x5a 0 2M' -c 'write -P 0xa5 6M 4M' -c 'write -P 0x3c 21000k 333k' "
        "-c 'write -P 0x77 47M 1M' " +
        shell_quote(base_));
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    r = run_vhdx("create -q -b " + shell_quote(base_) + " " + shell_quote(child_));
    ASSERT_EQ(r.status, 0) << r.err;
  }

  std::string dir_, base_, child_;
};

TEST_F(ChainInteropTest, VhdimountServesTheSameDisk) {
  const std::string raw = dir_ + "/child.raw";
  CliRun r = run_vhdx("convert -q -O raw " + shell_quote(child_) + " " + shell_quote(raw));
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string ours = sha256_file(raw);
  // The chain's bytes are the base's, not zeros.
  r = run_vhdx("io -r -c 'read -P 0xa5 6M 4M' -c 'read -P 0x3c 21000k 333k' " +
               shell_quote(child_));
  ASSERT_EQ(r.status, 0) << r.out << r.err;

  const std::string mount_dir = dir_ + "/mnt";
  ASSERT_EQ(::mkdir(mount_dir.c_str(), 0755), 0) << mount_dir;
  FuseMountGuard mount(mount_dir);
  // vhdimount looks for the parent at the child's folder joined with the locator's
  // absolute_win32_path, even when that path is already absolute: given the child by a relative
  // name from its own folder, that join is the absolute path itself.
  CliRun mounted =
      run_shell("cd " + shell_quote(dir_) + " && vhdimount child.vhdx " + shell_quote(mount_dir));
  ASSERT_EQ(mounted.status, 0) << mounted.out << mounted.err;
  mount.set_mounted();

  // vhdimount exposes each disk of the chain: vhdi1 the base, vhdi2 the child.
  std::vector<std::string> disks;
  for (const auto& entry : fs::directory_iterator(mount_dir)) {
    disks.push_back(entry.path().filename().string());
  }
  std::sort(disks.begin(), disks.end());
  ASSERT_EQ(disks, (std::vector<std::string>{"vhdi1", "vhdi2"}));
  EXPECT_EQ(fs::file_size(mount_dir + "/vhdi1"), kDiskSize);
  EXPECT_EQ(sha256_file(mount_dir + "/vhdi1"), ours) << "vhdimount's view of the base differs";

  const std::string child_disk = mount_dir + "/vhdi2";
  ASSERT_EQ(fs::file_size(child_disk), kDiskSize);
  const std::string theirs = sha256_file(child_disk);
  if (theirs == ours) return;
  // libvhdi 20210425 reads the sector bitmap of a block whose bitmap entry is NOT_PRESENT from
  // file offset 0 (the file type identifier) and so serves some sectors of the empty child as
  // zeros. The format says a NOT_PRESENT payload block reads wholly from the parent, whatever
  // its bitmap: accept that one known misreading, bit for bit, and nothing else.
  const std::string file_start = read_prefix(child_, kDiskSize / 512 / 8);
  std::string expected = read_prefix(raw, kDiskSize);
  ASSERT_EQ(expected.size(), kDiskSize);
  for (std::uint64_t sector = 0; sector < kDiskSize / 512; ++sector) {
    const auto bits = static_cast<unsigned char>(file_start[sector / 8]);
    if ((bits >> (sector % 8)) & 1) expected.replace(sector * 512, 512, 512, '\0');
  }
  EXPECT_EQ(read_prefix(child_disk, kDiskSize), expected)
      << "vhdimount's view of the child is neither the chain's disk nor libvhdi's known "
         "misreading of NOT_PRESENT sector bitmaps";
  std::cout << "note: vhdimount misreads the NOT_PRESENT sector bitmap of the child (known "
               "libvhdi behaviour); the base disk matched\n";
}

TEST_F(ChainInteropTest, VhdiinfoNamesTheBaseAsParent) {
  auto base = Image::open(base_, {});
  ASSERT_TRUE(base) << base.error().to_string();
  const ImageInfo& info = (*base)->info();
  const std::string guid = info.headers[info.current_header].data_write_guid.to_string();

  CliRun r = run_shell("vhdiinfo " + shell_quote(child_));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Disk type\t\t: Differential"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Parent identifier\t: " + guid), std::string::npos) << r.out;
}

}  // namespace
}  // namespace vhdx
