// The log layer on real images from the shared corpus: QEMU's dirty log, and the stale entries
// Windows leaves in its logs.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "base/endian.h"
#include "format/constants.h"
#include "format/header.h"
#include "io/mem_file.h"
#include "io/posix_file.h"
#include "log/replay.h"
#include "log/sequence.h"
#include "log/test_util.h"

namespace vhdx::log {
namespace {

using testing::describe;
using testing::kMiB;

std::string corpus_dir() {
  if (const char* env = std::getenv("VHDX_CORPUS_DIR"); env != nullptr && *env != '\0') return env;
  return std::string(VHDX_SOURCE_DIR) + "/../shared/corpus";
}

// A scratch folder removed when the fixture ends.
class CorpusLog : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/vhdx-log-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Decompresses corpus file `relative` with `tool` into the scratch folder.
  std::string decompress(const std::string& tool, const std::string& relative) {
    const std::string out = dir_ + "/" + std::filesystem::path(relative).stem().string();
    const std::string cmd = tool + " '" + corpus_dir() + "/" + relative + "' > '" + out + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return out;
  }

  std::string dir_;
};

std::unique_ptr<File> open_file(const std::string& path, bool writable) {
  auto f = open_posix_file(path, {.writable = writable});
  EXPECT_TRUE(f) << describe(f);
  return f ? std::move(*f) : nullptr;
}

format::Header current_header(File& file) {
  std::vector<std::uint8_t> slots[2];
  Result<format::Header> decoded[2] = {Error(ErrorCode::kInternal, "unset"),
                                       Error(ErrorCode::kInternal, "unset")};
  for (int i = 0; i < 2; ++i) {
    slots[i].resize(format::kHeaderSize);
    EXPECT_TRUE(file.read_at(format::kHeaderOffsets[i], slots[i]));
    decoded[i] = format::decode_header(slots[i]);
  }
  auto choice = format::choose_current_header(decoded[0], decoded[1], slots[0], slots[1]);
  EXPECT_TRUE(choice) << describe(choice);
  return choice && decoded[choice->current] ? *decoded[choice->current] : format::Header{};
}

std::string sha256_of(File& file) {
  auto size = file.size();
  EXPECT_TRUE(size);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<std::uint8_t> buf(kMiB);
  for (std::uint64_t pos = 0; size && pos < *size;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), *size - pos));
    EXPECT_TRUE(file.read_at(pos, std::span(buf).first(n)));
    EVP_DigestUpdate(ctx, buf.data(), n);
    pos += n;
  }
  unsigned char digest[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  char two[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(two, sizeof two, "%02x", digest[i]);
    hex += two;
  }
  return hex;
}

// From local-qemu72-dirtylog/info.txt and inspect.json.
constexpr const char* kDirtySha256 =
    "02904eeaf155e02ffea9d6922ced9219876fe2c59a251f06b786b4c4a1bbbf58";
constexpr std::uint64_t kDirtyBatOffset = 2097152;
constexpr std::uint64_t kDirtyFileSize = 9437184;

TEST_F(CorpusLog, QemuDirtyLogFindsOneEntryTargetingTheBat) {
  const std::string path =
      decompress("bzcat", "local-qemu72-dirtylog/qemu72-pending-bat-log.vhdx.bz2");
  auto file = open_file(path, /*writable=*/false);
  ASSERT_NE(file, nullptr);
  const format::Header h = current_header(*file);
  EXPECT_EQ(h.sequence_number, 547144594u);
  ASSERT_EQ(h.log_guid, *Guid::parse("c3f5caec-4c1d-c54e-90d5-48e9bc17ac53"));
  ScanStats stats;
  auto found = find_active_sequence(*file, h.log_offset, h.log_length, h.log_guid, &stats);
  ASSERT_TRUE(found) << describe(found);
  ASSERT_TRUE(found->has_value());
  const LogSequence& seq = **found;
  ASSERT_EQ(seq.entries.size(), 1u);
  EXPECT_EQ(seq.head_sequence(), 1u);
  EXPECT_EQ(seq.tail_offset(), 0u);
  EXPECT_EQ(seq.head_offset(), 0u);
  EXPECT_EQ(seq.head().header.entry_length, 8192u);
  EXPECT_EQ(seq.flushed_file_offset(), kDirtyFileSize);
  EXPECT_EQ(seq.last_file_offset(), kDirtyFileSize);
  ASSERT_EQ(seq.updates.size(), 1u);
  EXPECT_FALSE(seq.updates[0].is_zero());
  EXPECT_EQ(seq.updates[0].file_offset, kDirtyBatOffset);
  EXPECT_EQ(stats.valid_entries, 1u);
  EXPECT_EQ(stats.bytes_checksummed, 8192u);
  // The logged BAT sector: entry 0 FULLY_PRESENT (6), pointing at a 1 MiB-aligned block.
  const std::uint64_t logged_entry0 = load_le64(seq.data(seq.updates[0]), 0);
  EXPECT_EQ(logged_entry0 & 7, 6u);

  // Before replay the BAT on disk says PAYLOAD_BLOCK_ZERO (2) for block 0.
  std::vector<std::uint8_t> entry(8);
  ASSERT_TRUE(file->read_at(kDirtyBatOffset, entry));
  EXPECT_EQ(load_le64(entry, 0), 2u);

  // Read-only: the overlay serves the replayed BAT; the file is unchanged.
  auto overlay = OverlayFile::create(std::move(file), seq);
  ASSERT_TRUE(overlay) << describe(overlay);
  OverlayFile& view = **overlay;
  ASSERT_TRUE(view.read_at(kDirtyBatOffset, entry));
  const std::uint64_t raw = load_le64(entry, 0);
  EXPECT_EQ(raw, logged_entry0);
  EXPECT_EQ(raw & 7, 6u);
  const std::uint64_t block_offset = raw & 0xFFFFFFFFFFF00000ull;
  EXPECT_GE(block_offset, 4 * kMiB);
  std::vector<std::uint8_t> block(kMiB);
  ASSERT_TRUE(view.read_at(block_offset, block));
  EXPECT_TRUE(std::all_of(block.begin(), block.end(), [](std::uint8_t b) { return b == 0xA5; }));
  // Every other BAT entry stays PAYLOAD_BLOCK_ZERO.
  std::vector<std::uint8_t> bat(16 * 8);
  ASSERT_TRUE(view.read_at(kDirtyBatOffset, bat));
  for (std::size_t i = 1; i < 16; ++i) EXPECT_EQ(load_le64(bat, i * 8), 2u) << "entry " << i;
  EXPECT_EQ(*view.size(), kDirtyFileSize);
  EXPECT_EQ(sha256_of(view.base()), kDirtySha256);

  // In place on a writable copy: the same bytes as the overlay, byte for byte.
  std::vector<std::uint8_t> through_overlay(kDirtyFileSize);
  ASSERT_TRUE(view.read_at(0, through_overlay));
  // A copy, so the read-only open above (which holds a shared lock) does not block this one.
  const std::string copy = path + ".copy";
  ASSERT_TRUE(std::filesystem::copy_file(path, copy));
  auto writable = open_file(copy, /*writable=*/true);
  ASSERT_NE(writable, nullptr);
  auto replayed = replay_in_place(*writable, seq);
  ASSERT_TRUE(replayed) << describe(replayed);
  EXPECT_EQ(*writable->size(), kDirtyFileSize);
  std::vector<std::uint8_t> after(kDirtyFileSize);
  ASSERT_TRUE(writable->read_at(0, after));
  EXPECT_TRUE(after == through_overlay);
  EXPECT_NE(sha256_of(*writable), kDirtySha256);
  EXPECT_EQ(sha256_of(view.base()), kDirtySha256);  // the original is still untouched
  // Replaying again changes nothing.
  auto again = find_active_sequence(*writable, h.log_offset, h.log_length, h.log_guid);
  ASSERT_TRUE(again && again->has_value());
  ASSERT_TRUE(replay_in_place(*writable, **again));
  std::vector<std::uint8_t> twice(kDirtyFileSize);
  ASSERT_TRUE(writable->read_at(0, twice));
  EXPECT_TRUE(twice == after);
}

struct WindowsImage {
  const char* tool;
  const char* relative;
  const char* stale_guid;               // the log GUID of the old entries (inspect.json)
  std::vector<std::uint64_t> sequence;  // expected sequence numbers, tail to head
  std::uint32_t tail_offset;
  std::uint32_t head_offset;
  std::size_t updates;
  // The 1 MiB objects the updates fall in: the BAT (3 MiB) always, the metadata region (2 MiB)
  // in the fixed file, and in the differencing file its two sector bitmap blocks (BAT entries
  // 4097 and 2048: Windows logs bitmap updates).
  std::vector<std::uint64_t> target_objects;
};

// The Windows-made images keep valid old entries under a stale GUID while the header's LogGuid
// is zero. Scanning under that stale GUID proves Windows entries parse; under the zero GUID or
// any other GUID nothing is found.
TEST_F(CorpusLog, WindowsStaleEntriesParseOnlyUnderTheirOwnGuid) {
  const std::vector<WindowsImage> images = {
      {"zcat",
       "dissect-fixed/fixed.vhdx.gz",
       "defe3a10-28ee-4ae1-8f0c-8b1a02cc8716",
       {3284978671542059724ull},
       4096,
       4096,
       17,
       {2 * kMiB, 3 * kMiB}},
      {"zcat",
       "dissect-dynamic/dynamic.vhdx.gz",
       "d8f57516-064a-443d-a3f1-1baaa49589b6",
       {2766278055522667020ull},
       4096,
       4096,
       1,
       {3 * kMiB}},
      {"bzcat",
       "coreos-config2-base/config2_base.vhdx.bz2",
       "9d7d148b-93b0-40d1-ad8f-bb82255541d8",
       {6982236705696636917ull, 6982236705696636918ull},
       4096,
       12288,
       2,
       {3 * kMiB}},
      {"zcat",
       "dissect-differencing/differencing.avhdx.gz",
       "9399793e-2a9a-4261-8e75-bf8afde203dc",
       {2218537444203312182ull, 2218537444203312183ull, 2218537444203312184ull,
        2218537444203312185ull, 2218537444203312186ull, 2218537444203312187ull,
        2218537444203312188ull, 2218537444203312189ull},
       331776,
       536576,
       1 + 1 + 1 + 9 + 1 + 16 + 14 + 1,
       {3 * kMiB, 4 * kMiB, 7 * kMiB}},
  };
  for (const WindowsImage& image : images) {
    SCOPED_TRACE(image.relative);
    auto file = open_file(decompress(image.tool, image.relative), /*writable=*/false);
    ASSERT_NE(file, nullptr);
    const format::Header h = current_header(*file);
    EXPECT_TRUE(h.log_guid.is_zero());
    ASSERT_EQ(h.log_offset, 1 * kMiB);
    ASSERT_EQ(h.log_length, 1 * kMiB);
    auto size = file->size();
    ASSERT_TRUE(size);

    auto found =
        find_active_sequence(*file, h.log_offset, h.log_length, *Guid::parse(image.stale_guid));
    ASSERT_TRUE(found) << describe(found);
    ASSERT_TRUE(found->has_value());
    const LogSequence& seq = **found;
    std::vector<std::uint64_t> numbers;
    for (const auto& e : seq.entries) numbers.push_back(e.header.sequence_number);
    EXPECT_EQ(numbers, image.sequence);
    EXPECT_EQ(seq.tail_offset(), image.tail_offset);
    EXPECT_EQ(seq.head_offset(), image.head_offset);
    EXPECT_EQ(seq.updates.size(), image.updates);
    // Windows logs metadata, BAT and (differencing) sector bitmap sectors.
    std::set<std::uint64_t> touched;
    for (const ReplayUpdate& u : seq.updates) {
      const std::uint64_t object = u.file_offset / kMiB * kMiB;
      EXPECT_LE(u.file_offset + u.length(), object + kMiB) << u.file_offset;
      touched.insert(object);
    }
    EXPECT_EQ(touched,
              std::set<std::uint64_t>(image.target_objects.begin(), image.target_objects.end()));
    auto plan = plan_replay(seq, *size);
    EXPECT_TRUE(plan) << describe(plan);

    // Nothing under the header's zero GUID, nor under an unrelated one.
    auto none = find_active_sequence(*file, h.log_offset, h.log_length, h.log_guid);
    ASSERT_TRUE(none) << describe(none);
    EXPECT_FALSE(none->has_value());
    ScanStats stats;
    none = find_active_sequence(*file, h.log_offset, h.log_length,
                                *Guid::parse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"), &stats);
    ASSERT_TRUE(none) << describe(none);
    EXPECT_FALSE(none->has_value());
    EXPECT_EQ(stats.valid_entries, 0u);
    EXPECT_EQ(stats.bytes_checksummed, 0u);
    EXPECT_EQ(stats.headers_checked, h.log_length / 4096);
  }
}

}  // namespace
}  // namespace vhdx::log
