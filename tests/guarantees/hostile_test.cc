// Hostile images keep memory bounded: `vhdx info`, `map` and `io read` on crafted images (huge
// entry counts, a huge log, a 64 TiB disk with 1 MiB blocks and a 512 MiB BAT) run under a
// 512 MiB address-space limit and end in a clean error (exit 1, "vhdx: ... (code)") or a
// correct result, never a crash. Sanitizer builds reserve terabytes of address space, so there
// the commands run without the limit (they still must not crash).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "format/constants.h"
#include "guarantees/guarantee_util.h"
#include "support/cli_run.h"
#include "support/corpus.h"
#include "support/image_builder.h"

namespace vhdx {
namespace {

using format::kGiB;
using format::kKiB;
using format::kMiB;
using format::kTiB;
using testing::BlockSpec;
using testing::CliRun;
using testing::ImageBuilder;
using testing::ImageSpec;
using testing::make_temp_dir;
using testing::Piece;
using testing::run_vhdx;
using testing::shell_quote;

using guarantees::kAddressSpaceLimitKiB;

CliRun bounded(const std::string& args) { return guarantees::run_vhdx_bounded(args); }

std::string write_image(std::vector<std::uint8_t>& bytes, const std::string& name) {
  const std::string path = make_temp_dir() + "/" + name;
  EXPECT_TRUE(testing::write_bytes_file(path, bytes));
  return path;
}

// The three commands on one image; each must give exit 1 naming the code `code`.
void expect_clean_errors(const std::string& image, const std::string& code,
                         const std::string& word) {
  for (const std::string& cmd :
       {std::string("info "), std::string("map "), std::string("io -r -c 'read 0 64k' ")}) {
    SCOPED_TRACE(cmd);
    auto r = bounded(cmd + shell_quote(image));
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("(" + code), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(word), std::string::npos) << r.err;
  }
}

TEST(Hostile, AddressSpaceLimitItselfWorks) {
  // The limit must leave room for a normal run, or every other result here means nothing.
  ImageSpec spec;
  ImageBuilder b(spec);
  b.set_block(0, BlockSpec::present_fill(0x5c));
  auto bytes = b.build();
  const std::string image = write_image(bytes, "plain.vhdx");
  auto r = bounded("io -r -c 'read -P 0x5c 0 1M' " + shell_quote(image));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("read 1048576/1048576 bytes at offset 0"), std::string::npos) << r.out;
}

TEST(Hostile, RegionTableEntryCountHuge) {
  ImageBuilder b(ImageSpec{});
  auto bytes = b.build();
  for (int copy = 0; copy < 2; ++copy) {
    testing::poke_le32(bytes, b.layout().region_tables[copy] + 8, 0xFFFFFFFFu);
    testing::fix_region_table_checksum(bytes, copy);
  }
  expect_clean_errors(write_image(bytes, "regions.vhdx"), "corrupt", "region");
}

TEST(Hostile, MetadataEntryCountHuge) {
  ImageBuilder b(ImageSpec{});
  auto bytes = b.build();
  testing::poke_le16(bytes, b.layout().metadata_offset + 10, 0xFFFF);
  expect_clean_errors(write_image(bytes, "metadata.vhdx"), "corrupt", "metadata");
}

TEST(Hostile, MetadataItemLengthHuge) {
  ImageBuilder b(ImageSpec{});
  auto bytes = b.build();
  // Entry 0 (file parameters): offset at +16, length at +20.
  testing::poke_le32(bytes, b.layout().metadata_entry(0) + 20, 0xFFFFFFF0u);
  expect_clean_errors(write_image(bytes, "item.vhdx"), "corrupt", "metadata");
}

TEST(Hostile, BatRegionLengthHugePastEndOfFile) {
  ImageBuilder b(ImageSpec{});
  auto bytes = b.build();
  for (int copy = 0; copy < 2; ++copy) {
    // Entry 0 is the BAT: length at +24 of the entry; 4095 MiB, far past the 8 MiB file.
    testing::poke_le32(bytes, b.layout().region_entry(copy, 0) + 24, 0xFFF00000u);
    testing::fix_region_table_checksum(bytes, copy);
  }
  expect_clean_errors(write_image(bytes, "bat.vhdx"), "corrupt", "BAT");
}

// Header log fields: log GUID at +48, log length at +68, log offset at +72.
void set_log(std::vector<std::uint8_t>& head, std::uint64_t offset, std::uint32_t length,
             bool dirty) {
  for (int slot = 0; slot < 2; ++slot) {
    const std::uint64_t h = format::kHeaderOffsets[slot];
    testing::poke_le32(head, h + 68, length);
    testing::poke_le64(head, h + 72, offset);
    if (dirty)
      testing::poke_guid(head, h + 48, *Guid::parse("0badc0de-1111-4222-8333-444455556666"));
    testing::fix_header_checksum(head, slot);
  }
}

TEST(Hostile, LogLengthHugePastEndOfFile) {
  ImageBuilder b(ImageSpec{});
  auto bytes = b.build();
  set_log(bytes, kMiB, 0xFFF00000u, true);
  const std::string image = write_image(bytes, "log.vhdx");
  for (const std::string& cmd :
       {std::string("info "), std::string("map "), std::string("io -r -c 'read 0 64k' ")}) {
    auto r = bounded(cmd + shell_quote(image));
    EXPECT_EQ(r.status, 1) << cmd << r.out;
  }
}

// A valid layout with a 4095 MiB log placed after everything else (a sparse file of ~4 GiB),
// with the log GUID set: whatever looks at the log must not read it all into memory.
TEST(Hostile, LogLengthHugeInsideFile) {
  ImageSpec spec;
  spec.log_offset = 16 * kMiB;
  spec.log_length = 0xFFF00000u;
  spec.payload_offset = 16 * kMiB + 0xFFF00000ull;
  ImageBuilder b(spec);
  b.set_block(0, BlockSpec::present_fill(0x42));
  auto sparse = b.build_sparse();
  // Poke the headers in a copy of the first MiB, then put it back.
  std::vector<std::uint8_t> head(format::kHeaderSectionSize);
  for (const auto& [offset, run] : sparse.runs) {
    for (std::size_t i = 0; i < run.size() && offset + i < head.size(); ++i)
      head[offset + i] = run[i];
  }
  set_log(head, spec.log_offset, spec.log_length, true);
  sparse.write(0, head);
  const std::string image = make_temp_dir() + "/biglog.vhdx";
  ASSERT_TRUE(sparse.write_file(image));
  // The log holds no valid entry: either the image opens as if clean (then block 0 reads
  // right) or it is refused; both are fine, a crash or an exhausted address space is not.
  (void)bounded("info " + shell_quote(image));
  auto io = bounded("io -r -c 'read -P 0x42 0 64k' " + shell_quote(image));
  if (io.status == 0) {
    EXPECT_EQ(io.out.find("Pattern verification failed"), std::string::npos) << io.out;
  } else {
    EXPECT_NE(io.err.find("log"), std::string::npos) << io.err;
  }
  (void)bounded("map " + shell_quote(image));
}

// 64 TiB with 1 MiB blocks: 64 Mi payload entries plus 2 Mi bitmap entries, a 528 MiB BAT,
// bigger than the address-space limit, so the BAT must be paged, never loaded whole.
TEST(Hostile, SixtyFourTiBWithOneMiBBlocks) {
  ImageSpec spec;
  spec.virtual_size = 64 * kTiB;
  spec.block_size = 1 * kMiB;
  ImageBuilder b(spec);
  const std::uint64_t last = spec.virtual_size / spec.block_size - 1;
  b.set_block(0, BlockSpec::present_pieces({Piece{0, std::vector<std::uint8_t>(64 * kKiB, 0x11)}}));
  b.set_block(last, BlockSpec::present_pieces(
                        {Piece{kMiB - 64 * kKiB, std::vector<std::uint8_t>(64 * kKiB, 0x22)}}));
  auto sparse = b.build_sparse();
  ASSERT_GT(b.layout().bat_length, kAddressSpaceLimitKiB * kKiB);
  const std::string image = make_temp_dir() + "/64t.vhdx";
  ASSERT_TRUE(sparse.write_file(image));

  auto info = bounded("info --output json " + shell_quote(image));
  EXPECT_EQ(info.status, 0) << info.err;
  EXPECT_NE(info.out.find("70368744177664"), std::string::npos);  // 64 TiB in bytes

  auto map = bounded("map " + shell_quote(image));
  EXPECT_EQ(map.status, 0) << map.err;

  auto io = bounded("io -r -c 'read -P 0x11 0 64k' -c 'read -P 0 64k 64k' -c 'read -P 0x22 " +
                    std::to_string(64 * kTiB - 64 * kKiB) + " 64k' -c 'read -P 0 32T 1M' " +
                    shell_quote(image));
  EXPECT_EQ(io.status, 0) << io.err << io.out;
  EXPECT_EQ(io.out.find("Pattern verification failed"), std::string::npos) << io.out;
}

}  // namespace
}  // namespace vhdx
