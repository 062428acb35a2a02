// End-to-end tests of `vhdx create`, `vhdx convert -O vhdx` and `vhdx check`: our images as
// qemu-img and vhdiinfo see them, byte-exact round trips, and check's exit statuses on clean,
// damaged and leaking images. Peer tools missing: the test skips, unless CI=true.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "format/bat.h"
#include "support/cli_run.h"
#include "support/corpus.h"
#include "support/image_builder.h"

namespace vhdx {
namespace {

using nlohmann::json;
using testing::CliRun;
using testing::have_program;
using testing::in_ci;
using testing::make_temp_dir;
using testing::run_command;
using testing::run_shell;
using testing::run_vhdx;
using testing::sha256_file;
using testing::shell_quote;

constexpr std::uint64_t kMiB = 1 << 20;

std::uint64_t allocated_bytes(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

class CreateCheckTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = make_temp_dir(); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  json info_json(const std::string& image) {
    CliRun r = run_vhdx("info --output=json " + shell_quote(image));
    EXPECT_EQ(r.status, 0) << r.err;
    return json::parse(r.out);
  }
  json check_json(const std::string& image, int want_status) {
    CliRun r = run_vhdx("check --output=json " + shell_quote(image));
    EXPECT_EQ(r.status, want_status) << r.out << r.err;
    return json::parse(r.out);
  }

  // A raw file of `blocks` MiB: random bytes in some MiBs, holes and written zeros in others,
  // and a few scattered bytes. Returns the MiB blocks that hold non-zero data.
  std::vector<std::uint64_t> make_raw(const std::string& file, std::uint64_t mib) {
    std::mt19937_64 rng(1234);
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    std::vector<char> buf(kMiB);
    std::vector<std::uint64_t> nonzero;
    for (std::uint64_t b = 0; b < mib; ++b) {
      const int kind = static_cast<int>(rng() % 4);
      if (kind == 0) {  // random data
        for (auto& c : buf) c = static_cast<char>(rng());
        out.seekp(static_cast<std::streamoff>(b * kMiB));
        out.write(buf.data(), kMiB);
        nonzero.push_back(b);
      } else if (kind == 1) {  // zeros written out
        std::fill(buf.begin(), buf.end(), 0);
        out.seekp(static_cast<std::streamoff>(b * kMiB));
        out.write(buf.data(), kMiB);
      } else if (kind == 2) {  // one byte somewhere
        out.seekp(static_cast<std::streamoff>(b * kMiB + rng() % kMiB));
        out.put(static_cast<char>(1 + rng() % 255));
        nonzero.push_back(b);
      }  // kind 3: a hole
    }
    out.seekp(static_cast<std::streamoff>(mib * kMiB - 1));
    out.put('\0');
    return nonzero;
  }

  std::string dir_;
};

TEST_F(CreateCheckTest, CreateMatrixAsOurInfoSeesIt) {
  struct Case {
    std::string options;
    std::string size;
    std::uint64_t bytes;
    std::string type;
    std::uint64_t block;
    std::uint32_t logical, physical;
  };
  const std::vector<Case> cases = {
      {"", "1G", 1ull << 30, "dynamic", 32 * kMiB, 512, 4096},
      {"subformat=fixed,block_size=1M", "10M", 10 * kMiB, "fixed", kMiB, 512, 4096},
      {"block_size=256M,logical_sector_size=4096,physical_sector_size=4096", "3T", 3ull << 40,
       "dynamic", 256 * kMiB, 4096, 4096},
      {"subformat=fixed,block_size=8M,logical_sector_size=512,physical_sector_size=512", "17409k",
       17409 * 1024, "fixed", 8 * kMiB, 512, 512},
      {"log_size=4M", "64T", 64ull << 40, "dynamic", 32 * kMiB, 512, 4096},
  };
  int n = 0;
  for (const Case& c : cases) {
    const std::string image = path("m" + std::to_string(n++) + ".vhdx");
    CliRun r = run_vhdx("create -q" + (c.options.empty() ? "" : " -o " + c.options) + " " +
                        shell_quote(image) + " " + c.size);
    ASSERT_EQ(r.status, 0) << c.options << ": " << r.err;
    EXPECT_EQ(r.out, "");
    json info = info_json(image);
    EXPECT_EQ(info["type"], c.type) << info.dump();
    EXPECT_EQ(info["virtual-size"], c.bytes);
    EXPECT_EQ(info["block-size"], c.block);
    EXPECT_EQ(info["logical-sector-size"], c.logical);
    EXPECT_EQ(info["physical-sector-size"], c.physical);
    EXPECT_EQ(info["creator"], "libvhdx 0.1.0");
    json check = check_json(image, 0);
    EXPECT_EQ(check["corruptions"], 0);
    EXPECT_EQ(check["leaks"], 0);
    EXPECT_EQ(check["check-errors"], 0);
    EXPECT_EQ(check["allocated-clusters"], c.type == "fixed" ? check["total-clusters"] : json(0));
  }
}

TEST_F(CreateCheckTest, CreateErrorsAndOverwrite) {
  const std::string image = path("e.vhdx");
  struct Bad {
    std::string args;
    std::string message;
  };
  const std::vector<Bad> bad = {
      {"-o block_size=3M", "vhdx: create: block_size: 3 MiB is not a power of two"},
      {"-o block_size=512M", "vhdx: create: block_size: 512 MiB is not a power of two"},
      {"-o log_size=1536k", "vhdx: create: log_size: 1572864 bytes is not a non-zero multiple"},
      {"-o logical_sector_size=1024", "vhdx: -o logical_sector_size: '1024' is not 512 or 4096"},
      {"-o subformat=diff", "vhdx: -o subformat: 'diff' is not dynamic or fixed"},
      {"-o colour=blue", "vhdx: -o colour: unknown option"},
      {"-o block_size", "vhdx: -o block_size: expected name=value"},
      {"-f qcow2", "vhdx: format 'qcow2' is not supported"},
  };
  for (const Bad& b : bad) {
    CliRun r = run_vhdx("create " + b.args + " " + shell_quote(image) + " 1G");
    EXPECT_EQ(r.status, 1) << b.args;
    EXPECT_EQ(r.err.rfind(b.message, 0), 0u) << b.args << ": " << r.err;
  }
  CliRun r = run_vhdx("create " + shell_quote(image) + " 1000");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("size: 1000 bytes is not a multiple of the logical sector size (512)"),
            std::string::npos)
      << r.err;
  r = run_vhdx("create " + shell_quote(image) + " 65T");
  EXPECT_NE(r.err.find("is more than 64 TiB"), std::string::npos) << r.err;

  ASSERT_EQ(run_vhdx("create " + shell_quote(image) + " 8M").status, 0);
  const std::string before = sha256_file(image);
  r = run_vhdx("create " + shell_quote(image) + " 16M");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  EXPECT_EQ(sha256_file(image), before);
  r = run_vhdx("create --overwrite " + shell_quote(image) + " 16M");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "Formatting '" + image + "', fmt=vhdx size=16777216 subformat=dynamic\n");
  EXPECT_EQ(info_json(image)["virtual-size"], 16 * kMiB);
}

TEST_F(CreateCheckTest, QemuImgAgreesWithCreate) {
  VHDX_REQUIRE_PROGRAM("qemu-img");
  // QEMU reads only 512-byte logical sectors.
  for (const std::string& options :
       {std::string("subformat=dynamic"), std::string("subformat=fixed,block_size=1M"),
        std::string("block_size=128M,log_size=8M"),
        std::string("subformat=fixed,block_size=4M,physical_sector_size=512")}) {
    const std::string image = path("q.vhdx");
    ASSERT_EQ(
        run_vhdx("create -q --overwrite -o " + options + " " + shell_quote(image) + " 102401k")
            .status,
        0);
    CliRun check = run_shell("qemu-img check -f vhdx " + shell_quote(image));
    EXPECT_EQ(check.status, 0) << options << ": " << check.out << check.err;
    EXPECT_NE(check.out.find("No errors were found on the image."), std::string::npos);
    CliRun info = run_shell("qemu-img info -f vhdx --output=json " + shell_quote(image));
    ASSERT_EQ(info.status, 0) << info.err;
    EXPECT_EQ(json::parse(info.out)["virtual-size"], 102401 * 1024) << options;
    // qemu-io reads the first MiB and the last 1025 KiB (a partial block) as zeros.
    CliRun read = run_shell("qemu-io -f vhdx -c 'read -P 0 0 1M' -c 'read -P 0 99M 1025k' " +
                            shell_quote(image));
    EXPECT_EQ(read.status, 0) << read.out << read.err;
    EXPECT_EQ(read.out.find("Pattern verification failed"), std::string::npos) << read.out;
  }
}

TEST_F(CreateCheckTest, VhdiinfoAgreesWithCreate) {
  VHDX_REQUIRE_PROGRAM("vhdiinfo");
  for (std::uint32_t sector : {512u, 4096u}) {
    const std::string image = path("v" + std::to_string(sector) + ".vhdx");
    ASSERT_EQ(run_vhdx("create -q -o logical_sector_size=" + std::to_string(sector) + " " +
                       shell_quote(image) + " 3G")
                  .status,
              0);
    CliRun r = run_shell("vhdiinfo " + shell_quote(image));
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("Disk type\t\t: Dynamic"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("(3221225472 bytes)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Bytes per sector\t: " + std::to_string(sector) + " bytes"),
              std::string::npos)
        << r.out;
    // vhdiinfo's "Identifier" is the data write GUID.
    const std::string id = info_json(image)["headers"][1]["data-write-guid"].get<std::string>();
    EXPECT_NE(r.out.find("Identifier\t\t: " + id), std::string::npos) << r.out << id;
  }
}

TEST_F(CreateCheckTest, RawToVhdxToRawRoundTripsAndIsSparse) {
  const std::string raw = path("in.raw");
  const auto nonzero = make_raw(raw, 40);
  for (const std::string& options :
       {std::string("block_size=1M"), std::string("subformat=fixed,block_size=1M"),
        std::string("block_size=4M,logical_sector_size=4096")}) {
    SCOPED_TRACE(options);
    const std::string image = path("out.vhdx");
    CliRun r = run_vhdx("convert -O vhdx -o " + options + " " + shell_quote(raw) + " " +
                        shell_quote(image));
    ASSERT_EQ(r.status, 0) << r.err;
    CliRun back = run_vhdx("convert " + shell_quote(image) + " " + shell_quote(path("back.raw")));
    ASSERT_EQ(back.status, 0) << back.err;
    EXPECT_EQ(sha256_file(path("back.raw")), sha256_file(raw));
    json info = info_json(image);
    EXPECT_EQ(check_json(image, 0)["corruptions"], 0);
    if (options == "block_size=1M") {
      // Exactly the 1 MiB blocks holding a non-zero byte are stored, back to back.
      EXPECT_EQ(info["blocks"]["allocated"], nonzero.size()) << info.dump();
      EXPECT_EQ(info["file-size"], (4 + nonzero.size()) * kMiB);
    }
    if (options.find("fixed") != std::string::npos) {
      EXPECT_EQ(info["blocks"]["allocated"], 40u);
    }
  }
  // raw -> raw, and a probed source format (no -f) either way.
  ASSERT_EQ(
      run_vhdx("convert -f raw -O raw " + shell_quote(raw) + " " + shell_quote(path("copy.raw")))
          .status,
      0);
  EXPECT_EQ(sha256_file(path("copy.raw")), sha256_file(raw));
  EXPECT_LT(allocated_bytes(path("copy.raw")), allocated_bytes(raw) + kMiB);
}

TEST_F(CreateCheckTest, QemuComparesOurConversionsEqual) {
  VHDX_REQUIRE_PROGRAM("qemu-img");
  const std::string raw = path("in.raw");
  make_raw(raw, 24);
  const std::string image = path("ours.vhdx");
  CliRun r = run_vhdx("convert -p -O vhdx " + shell_quote(raw) + " " + shell_quote(image));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("(100.00/100%)"), std::string::npos);
  CliRun cmp =
      run_shell("qemu-img compare -f raw -F vhdx " + shell_quote(raw) + " " + shell_quote(image));
  EXPECT_EQ(cmp.status, 0) << cmp.out << cmp.err;
  CliRun check = run_shell("qemu-img check -f vhdx " + shell_quote(image));
  EXPECT_EQ(check.status, 0) << check.out;

  // A qemu-made image converted to ours (VHDX to VHDX) compares equal, and checks clean.
  VHDX_REQUIRE_PROGRAM("qemu-io");
  const std::string qemu = path("qemu.vhdx");
  ASSERT_EQ(
      run_command("qemu-img create -q -f vhdx -o block_size=1M " + shell_quote(qemu) + " 48M"), 0);
  ASSERT_EQ(run_command("qemu-io -f vhdx -c 'write -P 0xab 1M 3M' -c 'write -P 0x11 20M 4k' "
                        "-c 'write -z 30M 2M' " +
                        shell_quote(qemu) + " >/dev/null"),
            0);
  EXPECT_EQ(check_json(qemu, 0)["corruptions"], 0);
  const std::string copy = path("copy.vhdx");
  r = run_vhdx("convert -O vhdx -o block_size=2M " + shell_quote(qemu) + " " + shell_quote(copy));
  ASSERT_EQ(r.status, 0) << r.err;
  cmp =
      run_shell("qemu-img compare -f vhdx -F vhdx " + shell_quote(qemu) + " " + shell_quote(copy));
  EXPECT_EQ(cmp.status, 0) << cmp.out << cmp.err;
  json info = info_json(copy);
  EXPECT_EQ(info["block-size"], 2 * kMiB);
  EXPECT_EQ(info["blocks"]["allocated"], 3u);  // 1-3 MiB in blocks 0-1, 20 MiB in block 10
}

TEST_F(CreateCheckTest, CheckIsCleanOnQemuAndCorpusImages) {
  for (const std::string& rel :
       {std::string("dissect-fixed/fixed.vhdx.gz"), std::string("dissect-dynamic/dynamic.vhdx.gz"),
        std::string("dissect-differencing/differencing.avhdx.gz"),
        std::string("coreos-config2-base/config2_base.vhdx.bz2")}) {
    const std::string image = testing::corpus_image(rel);
    CliRun r = run_vhdx("check " + shell_quote(image));
    EXPECT_EQ(r.status, 0) << rel << ": " << r.out << r.err;
    EXPECT_EQ(r.out.rfind("No errors were found on the image.\n", 0), 0u) << r.out;
  }
  VHDX_REQUIRE_PROGRAM("qemu-img");
  for (const std::string& options :
       {std::string("subformat=dynamic"), std::string("subformat=fixed"),
        std::string("block_size=1M,log_size=2M")}) {
    const std::string image = path("q.vhdx");
    ASSERT_EQ(
        run_command("qemu-img create -q -f vhdx -o " + options + " " + shell_quote(image) + " 50M"),
        0);
    json j = check_json(image, 0);
    EXPECT_EQ(j["corruptions"], 0) << options << j.dump();
    EXPECT_EQ(j["leaks"], 0) << options << j.dump();
  }
}

// The QEMU-made image whose log holds a pending BAT update: check replays it in memory and checks
// the image as replayed (1 block allocated, which only the log says), leaving the file as it was.
TEST_F(CreateCheckTest, CheckReplaysADirtyLogInMemory) {
  const std::string image =
      testing::corpus_image("local-qemu72-dirtylog/qemu72-pending-bat-log.vhdx.bz2");
  const std::string before = sha256_file(image);
  ASSERT_EQ(before, "02904eeaf155e02ffea9d6922ced9219876fe2c59a251f06b786b4c4a1bbbf58");
  json j = check_json(image, 0);
  EXPECT_EQ(j["corruptions"], 0) << j.dump();
  EXPECT_EQ(j["check-errors"], 0) << j.dump();
  EXPECT_EQ(j["leaks"], 0) << j.dump();
  EXPECT_EQ(j["total-clusters"], 16);
  EXPECT_EQ(j["allocated-clusters"], 1);
  const json& log = j["log"];
  EXPECT_EQ(log["state"], "needs-replay") << j.dump();
  EXPECT_EQ(log["guid"], "c3f5caec-4c1d-c54e-90d5-48e9bc17ac53");
  EXPECT_EQ(log["offset"], kMiB);
  EXPECT_EQ(log["length"], kMiB);
  EXPECT_EQ(log["entries"], 1);
  EXPECT_EQ(log["sequence-first"], 1);
  EXPECT_EQ(log["sequence-last"], 1);
  EXPECT_EQ(log["replayed"], true);
  EXPECT_FALSE(log.contains("replay-error")) << j.dump();
  CliRun human = run_vhdx("check " + shell_quote(image));
  EXPECT_EQ(human.status, 0) << human.out << human.err;
  EXPECT_EQ(human.out.rfind("No errors were found on the image.\n", 0), 0u) << human.out;
  EXPECT_NE(human.out.find("\nLog: needs replay: 1 entry, sequence 1..1, replayed in memory (the "
                           "file is unchanged); the replayed image was checked\n"),
            std::string::npos)
      << human.out;
  EXPECT_EQ(sha256_file(image), before) << "a read-only check must not change the file";

  // Cut at 8 MiB, the file is shorter than the entry says it was when the entry was written: the
  // log cannot be replayed, which is a corruption naming why (status 2).
  ASSERT_EQ(::truncate(image.c_str(), 8 * kMiB), 0);
  const std::string cut = sha256_file(image);
  j = check_json(image, 2);
  EXPECT_EQ(j["corruptions"], 1) << j.dump();
  EXPECT_EQ(j["corruption-list"][0],
            "log: the active sequence cannot be replayed: file is shorter (8388608) than the "
            "log's flushed file offset (9437184)")
      << j.dump();
  EXPECT_EQ(j["allocated-clusters"], 0) << j.dump();
  EXPECT_EQ(j["log"]["state"], "needs-replay");
  EXPECT_EQ(j["log"]["replayed"], false);
  EXPECT_NE(j["log"]["replay-error"].get<std::string>().find("flushed file offset (9437184)"),
            std::string::npos)
      << j.dump();
  human = run_vhdx("check " + shell_quote(image));
  EXPECT_EQ(human.status, 2);
  EXPECT_EQ(
      human.out.rfind("ERROR: log: the active sequence cannot be replayed: file is shorter", 0), 0u)
      << human.out;
  EXPECT_NE(human.out.find("\nLog: needs replay (log GUID c3f5caec-4c1d-c54e-90d5-48e9bc17ac53); "
                           "it cannot be replayed\n"),
            std::string::npos)
      << human.out;
  EXPECT_EQ(sha256_file(image), cut);
}

// A clean image: an empty log, whatever bytes its log region holds; a log out of place is a
// corruption.
TEST_F(CreateCheckTest, CheckReportsTheLogOfCleanImages) {
  const std::string image = path("clean.vhdx");
  ASSERT_EQ(run_vhdx("create -q " + shell_quote(image) + " 64M").status, 0);
  json j = check_json(image, 0);
  EXPECT_EQ(j["log"]["state"], "empty") << j.dump();
  EXPECT_EQ(j["log"]["guid"], "00000000-0000-0000-0000-000000000000");
  EXPECT_EQ(j["log"]["entries"], 0);
  EXPECT_EQ(j["log"]["replayed"], false);
  EXPECT_FALSE(j["log"].contains("sequence-first")) << j.dump();
  const std::uint64_t log_offset = j["log"]["offset"].get<std::uint64_t>();
  const std::uint64_t log_length = j["log"]["length"].get<std::uint64_t>();
  ASSERT_EQ(log_length, kMiB);
  CliRun human = run_vhdx("check " + shell_quote(image));
  EXPECT_NE(human.out.find("\nLog: empty, nothing to replay\n"), std::string::npos) << human.out;

  // Garbage in the log region of a clean image: nothing to replay, nothing wrong.
  {
    std::mt19937_64 rng(77);
    std::vector<char> garbage(log_length);
    for (auto& c : garbage) c = static_cast<char>(rng());
    std::fstream f(image, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(log_offset));
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
    ASSERT_TRUE(f.good());
  }
  j = check_json(image, 0);
  EXPECT_EQ(j["corruptions"], 0) << j.dump();
  EXPECT_EQ(j["log"]["state"], "empty") << j.dump();

  // A log that reaches past the end of the file, or onto the BAT: status 2, and no log facts.
  using testing::ImageBuilder;
  using testing::ImageSpec;
  ImageSpec spec;
  spec.virtual_size = 16 * kMiB;
  spec.log_offset = 32 * kMiB;
  auto far = ImageBuilder(spec).build();
  ASSERT_EQ(far.size(), 33 * kMiB);
  far.resize(32 * kMiB + kMiB / 2);
  ASSERT_TRUE(testing::write_bytes_file(path("far.vhdx"), far));
  j = check_json(path("far.vhdx"), 2);
  EXPECT_EQ(j["corruptions"], 1) << j.dump();
  EXPECT_EQ(j["corruption-list"][0],
            "log (offset 33554432, length 1048576): extends past the end of the file (34078720 "
            "bytes)")
      << j.dump();
  EXPECT_TRUE(j["log"].is_null()) << j.dump();
  spec.log_offset = spec.bat_offset;
  ASSERT_TRUE(testing::write_bytes_file(path("onbat.vhdx"), ImageBuilder(spec).build()));
  j = check_json(path("onbat.vhdx"), 2);
  EXPECT_EQ(j["corruptions"], 1) << j.dump();
  EXPECT_NE(j["corruption-list"][0].get<std::string>().find("overlaps the log"), std::string::npos)
      << j.dump();
}

TEST_F(CreateCheckTest, CheckReportsDamageAndLeaks) {
  using testing::BlockSpec;
  using testing::ImageBuilder;
  using testing::ImageSpec;
  ImageSpec spec;
  spec.virtual_size = 16 * kMiB;
  ImageBuilder builder(spec);
  for (std::uint64_t b : {0, 1, 2, 5}) builder.set_block(b, BlockSpec::present_fill(0x40 + b));
  const auto clean = builder.build();
  const auto& layout = builder.layout();
  ASSERT_TRUE(testing::write_bytes_file(path("clean.vhdx"), clean));
  json j = check_json(path("clean.vhdx"), 0);
  EXPECT_EQ(j["allocated-clusters"], 4);
  EXPECT_EQ(j["total-clusters"], 16);
  EXPECT_EQ(j["image-end-offset"], clean.size());

  // Two BAT entries sharing one block's space.
  auto shared = clean;
  testing::poke_le64(shared, layout.bat_entry(5),
                     format::encode_bat_entry(6, layout.block_offsets[1]));
  ASSERT_TRUE(testing::write_bytes_file(path("shared.vhdx"), shared));
  j = check_json(path("shared.vhdx"), 2);
  EXPECT_EQ(j["corruptions"], 1) << j.dump();
  EXPECT_NE(
      j["corruption-list"][0].get<std::string>().find("payload block 5 overlaps payload block 1"),
      std::string::npos)
      << j.dump();
  CliRun human = run_vhdx("check " + shell_quote(path("shared.vhdx")));
  EXPECT_EQ(human.status, 2);
  EXPECT_NE(human.out.find("\n1 errors were found on the image.\n"), std::string::npos)
      << human.out;

  // An entry past the end of the file.
  auto past = clean;
  testing::poke_le64(past, layout.bat_entry(9), format::encode_bat_entry(6, 1024 * kMiB));
  ASSERT_TRUE(testing::write_bytes_file(path("past.vhdx"), past));
  j = check_json(path("past.vhdx"), 2);
  EXPECT_EQ(j["corruptions"], 1);
  EXPECT_NE(j["corruption-list"][0].get<std::string>().find("past the end of the file"),
            std::string::npos)
      << j.dump();

  // A torn header 1 beside a valid header 2: what a crash during a header update leaves. The
  // image is sound (header 2 is current), so a warning with status 0.
  auto torn = clean;
  torn[layout.headers[0] + 200] ^= 0x55;
  ASSERT_TRUE(testing::write_bytes_file(path("torn.vhdx"), torn));
  j = check_json(path("torn.vhdx"), 0);
  EXPECT_EQ(j["corruptions"], 0) << j.dump();
  ASSERT_EQ(j["warning-list"].size(), 1u) << j.dump();
  const std::string warning = j["warning-list"][0];
  EXPECT_EQ(warning.rfind("header 1: checksum mismatch", 0), 0u) << warning;
  EXPECT_NE(warning.find("(torn or damaged; header 2 is current and the next update of the "
                         "image rewrites this one)"),
            std::string::npos)
      << warning;
  EXPECT_EQ(j["allocated-clusters"], 4);
  human = run_vhdx("check " + shell_quote(path("torn.vhdx")));
  EXPECT_EQ(human.status, 0);
  EXPECT_EQ(human.out.rfind("Warning: " + warning + "\nNo errors were found on the image.\n", 0),
            0u)
      << human.out;
  // Both headers torn: a corruption (status 2), each header named.
  torn[layout.headers[1] + 200] ^= 0x55;
  ASSERT_TRUE(testing::write_bytes_file(path("torn2.vhdx"), torn));
  j = check_json(path("torn2.vhdx"), 2);
  EXPECT_TRUE(j["warning-list"].empty()) << j.dump();
  ASSERT_GE(j["corruption-list"].size(), 2u) << j.dump();
  EXPECT_EQ(j["corruption-list"][0].get<std::string>().rfind("header 1: checksum", 0), 0u)
      << j.dump();
  EXPECT_EQ(j["corruption-list"][1].get<std::string>().rfind("header 2: checksum", 0), 0u)
      << j.dump();

  // 5 MiB of space past everything: leaked (counted from the end of the last block or 4 MiB
  // past the structures, where QEMU starts payload, whichever is later).
  auto leaky = clean;
  ASSERT_EQ(leaky.size(), 8 * kMiB);
  leaky.resize(13 * kMiB, 0);
  ASSERT_TRUE(testing::write_bytes_file(path("leaky.vhdx"), leaky));
  j = check_json(path("leaky.vhdx"), 3);
  EXPECT_EQ(j["corruptions"], 0);
  EXPECT_EQ(j["leaks"], 5);
  EXPECT_EQ(j["leaked-bytes"], 5 * kMiB);
  human = run_vhdx("check " + shell_quote(path("leaky.vhdx")));
  EXPECT_EQ(human.status, 3);
  EXPECT_NE(human.out.find("5 leaked clusters were found on the image"), std::string::npos)
      << human.out;

  // Not a VHDX file: status 1.
  CliRun r = run_vhdx("check " + shell_quote(path("clean.vhdx") + ".missing"));
  EXPECT_EQ(r.status, 1);
  r = run_vhdx("check --output=json /etc/hostname");
  EXPECT_EQ(r.status, 1);
}

}  // namespace
}  // namespace vhdx
