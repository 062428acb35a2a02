// Every real image in shared/corpus opens, reports exactly what its inspect.json (a dump made
// by an independent tool) says, and reads back the content hash the README lists.
#include "support/corpus.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "vhdx/convert.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

using testing::corpus_dir;
using testing::corpus_image;
using testing::sha256_file;
using testing::sha256_hex;

struct CorpusCase {
  const char* folder;
  const char* file;
  DiskType type;
  const char* content_sha256;  // empty when no content hash can be checked here
};

const CorpusCase kFixed{"dissect-fixed", "fixed.vhdx.gz", DiskType::kFixed,
                        "bc0be4623b15aa84216fb31ba24e3b621ec7f1c72d198c990ac0eced222d9f62"};
const CorpusCase kDynamic{"dissect-dynamic", "dynamic.vhdx.gz", DiskType::kDynamic,
                          "8e2b5e9265d694b42b81819e3bff29770eff4ed0f4f9f311693ff3dbdc93efac"};
const CorpusCase kConfig2{"coreos-config2-base", "config2_base.vhdx.bz2", DiskType::kDynamic,
                          "afce9cca367ebfa91a673d612bcb6fc32b12a80211207f7a7b1cd3aed3cac19d"};
const CorpusCase kDifferencing{"dissect-differencing", "differencing.avhdx.gz",
                               DiskType::kDifferencing, ""};
const CorpusCase kDirtyLog{"local-qemu72-dirtylog", "qemu72-pending-bat-log.vhdx.bz2",
                           DiskType::kDynamic, ""};

const CorpusCase kReadable[] = {kFixed, kDynamic, kConfig2};
const CorpusCase kAll[] = {kFixed, kDynamic, kConfig2, kDifferencing, kDirtyLog};

std::string image_path(const CorpusCase& c) {
  return corpus_image(std::string(c.folder) + "/" + c.file);
}

nlohmann::json inspect_json(const CorpusCase& c) {
  std::ifstream in(corpus_dir() + "/" + c.folder + "/inspect.json");
  EXPECT_TRUE(in) << c.folder;
  return nlohmann::json::parse(in);
}

// The decompressed container size, from the folder's info.txt.
std::uint64_t container_size(const CorpusCase& c) {
  std::ifstream in(corpus_dir() + "/" + c.folder + "/info.txt");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::smatch m;
  EXPECT_TRUE(
      std::regex_search(text, m, std::regex(R"(decompressed container [^,]+, (\d+) bytes)")))
      << c.folder;
  return std::stoull(m[1]);
}

// The corpus holds no parent for its differencing image: these tests open each file alone
// (corpus_chain_test.cc gives it one).
std::unique_ptr<Image> open_image(const std::string& path, bool allow_dirty_log = false) {
  OpenOptions options;
  options.allow_dirty_log = allow_dirty_log;
  options.parents = ParentChain::kIgnore;
  auto image = Image::open(path, options);
  EXPECT_TRUE(image) << path << ": " << image.error().to_string();
  return image ? std::move(*image) : nullptr;
}

std::vector<std::uint8_t> read_all(Image& image) {
  std::vector<std::uint8_t> data(image.virtual_size());
  auto r = image.read(0, data);
  EXPECT_TRUE(r) << r.error().to_string();
  return data;
}

std::string item_name(std::string inspect_name) {
  std::replace(inspect_name.begin(), inspect_name.end(), '_', '-');
  return inspect_name;
}

void expect_info_matches(const CorpusCase& c, const ImageInfo& info) {
  SCOPED_TRACE(c.folder);
  const nlohmann::json j = inspect_json(c);
  EXPECT_EQ(info.creator, j["creator"].get<std::string>());
  EXPECT_EQ(info.type, c.type);
  EXPECT_EQ(info.format_version, 1);
  EXPECT_EQ(info.file_size, container_size(c));

  for (int i = 0; i < 2; ++i) {
    const auto& h = j["headers"][i];
    const HeaderInfo& got = info.headers[i];
    EXPECT_EQ(got.valid, h["signature_ok"].get<bool>() && h["checksum_ok"].get<bool>());
    EXPECT_EQ(got.sequence_number, h["sequence_number"].get<std::uint64_t>());
    EXPECT_EQ(got.file_write_guid.to_string(), h["file_write_guid"].get<std::string>());
    EXPECT_EQ(got.data_write_guid.to_string(), h["data_write_guid"].get<std::string>());
    EXPECT_EQ(got.log_guid.to_string(), h["log_guid"].get<std::string>());
    EXPECT_EQ(got.log_version, h["log_version"].get<int>());
    EXPECT_EQ(got.version, h["version"].get<int>());
    EXPECT_EQ(got.log_length, h["log_length"].get<std::uint32_t>());
    EXPECT_EQ(got.log_offset, h["log_offset"].get<std::uint64_t>());
  }
  EXPECT_EQ(info.current_header, j["current_header"].get<int>() - 1);
  EXPECT_EQ(info.log_state,
            j["log_guid_zero"].get<bool>() ? LogState::kEmpty : LogState::kNeedsReplay);

  EXPECT_EQ(info.region_table_used, 0);  // every corpus image has a valid first table
  const auto& regions = j["region_tables"][0]["entries"];
  ASSERT_EQ(info.regions.size(), regions.size());
  for (std::size_t i = 0; i < regions.size(); ++i) {
    const std::string name = regions[i]["region"].get<std::string>() == "BAT" ? "BAT" : "metadata";
    EXPECT_EQ(info.regions[i].name, name);
    EXPECT_EQ(info.regions[i].file_offset, regions[i]["file_offset"].get<std::uint64_t>());
    EXPECT_EQ(info.regions[i].length, regions[i]["length"].get<std::uint32_t>());
    EXPECT_EQ(info.regions[i].required, regions[i]["required"].get<int>() != 0);
  }

  const auto& m = j["metadata"];
  EXPECT_EQ(info.block_size, m["block_size"].get<std::uint32_t>());
  EXPECT_EQ(info.leave_blocks_allocated, m["leave_blocks_allocated"].get<int>() != 0);
  EXPECT_EQ(info.virtual_size, m["virtual_disk_size"].get<std::uint64_t>());
  EXPECT_EQ(info.logical_sector_size, m["logical_sector_size"].get<std::uint32_t>());
  EXPECT_EQ(info.physical_sector_size, m["physical_sector_size"].get<std::uint32_t>());
  EXPECT_EQ(info.virtual_disk_id.to_string(), m["virtual_disk_id"].get<std::string>());
  const auto& items = m["items"];
  ASSERT_EQ(info.metadata_items.size(), items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const MetadataItemInfo& got = info.metadata_items[i];
    EXPECT_EQ(got.name, item_name(items[i]["item"].get<std::string>()));
    EXPECT_EQ(got.offset, items[i]["offset"].get<std::uint32_t>());
    EXPECT_EQ(got.length, items[i]["length"].get<std::uint32_t>());
    EXPECT_EQ(got.is_user, items[i]["is_user"].get<int>() != 0);
    EXPECT_EQ(got.is_virtual_disk, items[i]["is_virtual_disk"].get<int>() != 0);
    EXPECT_EQ(got.is_required, items[i]["is_required"].get<int>() != 0);
  }

  if (m.contains("parent_locator")) {
    ASSERT_TRUE(info.parent_locator_type.has_value());
    EXPECT_EQ(info.parent_locator_type->to_string(),
              m["parent_locator"]["locator_type"].get<std::string>());
    const auto& entries = m["parent_locator"]["entries"];
    EXPECT_EQ(info.parent_locator.size(), entries.size());
    for (const auto& [key, value] : info.parent_locator) {
      ASSERT_TRUE(entries.contains(key)) << key;
      EXPECT_EQ(value, entries[key].get<std::string>()) << key;
    }
  } else {
    EXPECT_FALSE(info.parent_locator_type.has_value());
    EXPECT_TRUE(info.parent_locator.empty());
  }

  EXPECT_EQ(info.chunk_ratio, j["bat"]["chunk_ratio"].get<std::uint64_t>());
  EXPECT_EQ(info.payload_blocks, j["bat"]["payload_blocks"].get<std::uint64_t>());
  EXPECT_EQ(info.bat_entries, j["bat"]["entries"].get<std::uint64_t>());
}

void expect_counts_match(const CorpusCase& c, const BlockCounts& counts) {
  SCOPED_TRACE(c.folder);
  const auto states = inspect_json(c)["bat"]["payload_states"];
  auto count = [&](const char* name) {
    return states.contains(name) ? states[name].get<std::uint64_t>() : 0;
  };
  EXPECT_EQ(counts.not_present, count("NOT_PRESENT"));
  EXPECT_EQ(counts.undefined, count("UNDEFINED"));
  EXPECT_EQ(counts.zero, count("ZERO"));
  EXPECT_EQ(counts.unmapped, count("UNMAPPED"));
  EXPECT_EQ(counts.fully_present, count("FULLY_PRESENT"));
  EXPECT_EQ(counts.partially_present, count("PARTIALLY_PRESENT"));
}

TEST(Corpus, InfoMatchesInspectJson) {
  for (const CorpusCase& c : kAll) {
    auto image = open_image(image_path(c), /*allow_dirty_log=*/true);
    ASSERT_NE(image, nullptr);
    expect_info_matches(c, image->info());
  }
}

TEST(Corpus, ActualSizeIsTheHostAllocation) {
  const std::string path = image_path(kConfig2);
  auto image = open_image(path);
  ASSERT_NE(image, nullptr);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(image->info().actual_size, static_cast<std::uint64_t>(st.st_blocks) * 512);
  EXPECT_GT(image->info().actual_size, 0u);
}

TEST(Corpus, BlockCountsMatchInspectJson) {
  for (const CorpusCase& c : {kFixed, kDynamic, kConfig2, kDifferencing}) {
    auto image = open_image(image_path(c));
    ASSERT_NE(image, nullptr);
    auto counts = image->count_blocks();
    ASSERT_TRUE(counts) << c.folder << ": " << counts.error().to_string();
    expect_counts_match(c, *counts);
  }
}

TEST(Corpus, WholeDiskHashMatchesReadme) {
  for (const CorpusCase& c : kReadable) {
    auto image = open_image(image_path(c));
    ASSERT_NE(image, nullptr);
    EXPECT_EQ(sha256_hex(read_all(*image)), c.content_sha256) << c.folder;
  }
}

// Reads in odd-sized pieces that straddle block boundaries agree with one big read.
TEST(Corpus, UnalignedPieceReadsMatchOneBigRead) {
  for (const CorpusCase& c : kReadable) {
    auto image = open_image(image_path(c));
    ASSERT_NE(image, nullptr);
    const auto whole = read_all(*image);
    std::vector<std::uint8_t> pieces(whole.size());
    const std::size_t step = 1'000'003;  // prime: every piece starts at a different alignment
    for (std::size_t off = 0; off < pieces.size(); off += step) {
      const std::size_t n = std::min(step, pieces.size() - off);
      auto r = image->read(off, std::span(pieces).subspan(off, n));
      ASSERT_TRUE(r) << r.error().to_string();
    }
    EXPECT_TRUE(pieces == whole) << c.folder;
  }
}

TEST(Corpus, ReadsOutsideTheDiskAreOutOfRange) {
  auto image = open_image(image_path(kDynamic));
  ASSERT_NE(image, nullptr);
  std::vector<std::uint8_t> buf(4096);
  const std::uint64_t size = image->virtual_size();
  auto past = image->read(size - 4095, buf);
  ASSERT_FALSE(past);
  EXPECT_EQ(past.error().code(), ErrorCode::kOutOfRange);
  auto far = image->read(~std::uint64_t{0} - 100, buf);
  ASSERT_FALSE(far);
  EXPECT_EQ(far.error().code(), ErrorCode::kOutOfRange);
  EXPECT_TRUE(image->read(size - 4096, buf));
  EXPECT_TRUE(image->read(size, std::span<std::uint8_t>()));
  auto status = image->block_status(size, 1);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code(), ErrorCode::kOutOfRange);
}

// Every extent reads as block_status says: data extents equal the container bytes at their
// file offset, zero and unallocated extents read as zeros.
void expect_extents_consistent(const std::string& path, Image& image,
                               const std::vector<Extent>& extents) {
  const auto whole = read_all(image);
  std::ifstream container(path, std::ios::binary);
  std::uint64_t expect_offset = 0;
  for (const Extent& e : extents) {
    EXPECT_EQ(e.offset, expect_offset);
    expect_offset += e.length;
    auto first = whole.begin() + static_cast<std::ptrdiff_t>(e.offset);
    auto last = first + static_cast<std::ptrdiff_t>(e.length);
    if (e.kind == ExtentKind::kData) {
      ASSERT_TRUE(e.file_offset.has_value());
      std::vector<std::uint8_t> stored(e.length);
      container.seekg(static_cast<std::streamoff>(*e.file_offset));
      container.read(reinterpret_cast<char*>(stored.data()),
                     static_cast<std::streamsize>(stored.size()));
      EXPECT_TRUE(std::equal(first, last, stored.begin())) << "extent at " << e.offset;
    } else {
      EXPECT_FALSE(e.file_offset.has_value());
      EXPECT_TRUE(std::all_of(first, last, [](std::uint8_t b) { return b == 0; }))
          << "extent at " << e.offset;
    }
  }
  EXPECT_EQ(expect_offset, image.virtual_size());
}

TEST(Corpus, BlockStatusFixedIsOneDataExtent) {
  const std::string path = image_path(kFixed);
  auto image = open_image(path);
  ASSERT_NE(image, nullptr);
  auto extents = image->block_status(0, image->virtual_size());
  ASSERT_TRUE(extents) << extents.error().to_string();
  ASSERT_EQ(extents->size(), 1u);
  EXPECT_EQ((*extents)[0].kind, ExtentKind::kData);
  EXPECT_EQ((*extents)[0].length, 10u << 20);
  EXPECT_EQ((*extents)[0].file_offset, std::uint64_t{4} << 20);
  expect_extents_consistent(path, *image, *extents);
}

TEST(Corpus, BlockStatusDynamicPartialLastBlock) {
  const std::string path = image_path(kDynamic);
  auto image = open_image(path);
  ASSERT_NE(image, nullptr);
  // One 32 MiB block holds the whole 10 MiB disk.
  auto extents = image->block_status(0, image->virtual_size());
  ASSERT_TRUE(extents) << extents.error().to_string();
  ASSERT_EQ(extents->size(), 1u);
  EXPECT_EQ((*extents)[0].kind, ExtentKind::kData);
  EXPECT_EQ((*extents)[0].length, 10u << 20);
  expect_extents_consistent(path, *image, *extents);
  // A sub-range starts at the right place in the file.
  auto inner = image->block_status(12345, 1000);
  ASSERT_TRUE(inner);
  ASSERT_EQ(inner->size(), 1u);
  EXPECT_EQ((*inner)[0].offset, 12345u);
  EXPECT_EQ((*inner)[0].length, 1000u);
  EXPECT_EQ(*(*inner)[0].file_offset, *(*extents)[0].file_offset + 12345);
}

TEST(Corpus, BlockStatusConfig2HasZeroBlocks) {
  const std::string path = image_path(kConfig2);
  auto image = open_image(path);
  ASSERT_NE(image, nullptr);
  auto extents = image->block_status(0, image->virtual_size());
  ASSERT_TRUE(extents) << extents.error().to_string();
  // 4 blocks of 32 MiB over 100 MiB: block 0 FULLY_PRESENT at 4 MiB in the file, block 1
  // NOT_PRESENT, blocks 2 and 3 ZERO (merged; block 3 holds only 4 MiB of the disk).
  ASSERT_EQ(extents->size(), 3u);
  const Extent& data = (*extents)[0];
  EXPECT_EQ(data.kind, ExtentKind::kData);
  EXPECT_EQ(data.offset, 0u);
  EXPECT_EQ(data.length, 32u << 20);
  EXPECT_EQ(data.file_offset, std::uint64_t{4} << 20);
  const Extent& unallocated = (*extents)[1];
  EXPECT_EQ(unallocated.kind, ExtentKind::kUnallocated);
  EXPECT_EQ(unallocated.offset, 32u << 20);
  EXPECT_EQ(unallocated.length, 32u << 20);
  const Extent& zero = (*extents)[2];
  EXPECT_EQ(zero.kind, ExtentKind::kZero);
  EXPECT_EQ(zero.offset, 64u << 20);
  EXPECT_EQ(zero.length, 36u << 20);
  expect_extents_consistent(path, *image, *extents);
}

TEST(Corpus, ConvertToRawMatchesReadmeHash) {
  for (const CorpusCase& c : kReadable) {
    for (bool sparse : {true, false}) {
      auto image = open_image(image_path(c));
      ASSERT_NE(image, nullptr);
      const std::string out = testing::make_temp_dir() + "/out.raw";
      RawConvertOptions options;
      options.sparse = sparse;
      std::uint64_t last_done = 0, calls = 0;
      options.progress = [&](std::uint64_t done, std::uint64_t total) {
        EXPECT_EQ(total, image->virtual_size());
        EXPECT_GE(done, last_done);
        last_done = done;
        ++calls;
      };
      auto r = convert_to_raw(*image, out, options);
      ASSERT_TRUE(r) << c.folder << ": " << r.error().to_string();
      EXPECT_EQ(sha256_file(out), c.content_sha256) << c.folder << " sparse=" << sparse;
      EXPECT_EQ(last_done, image->virtual_size());
      EXPECT_GE(calls, 2u);
      struct stat st;
      ASSERT_EQ(::stat(out.c_str(), &st), 0);
      EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), image->virtual_size());
    }
  }
}

TEST(Corpus, DifferencingOpensForInfoButNeedsItsParent) {
  const std::string path = image_path(kDifferencing);
  auto image = open_image(path);
  ASSERT_NE(image, nullptr);
  const ImageInfo& info = image->info();
  EXPECT_EQ(info.type, DiskType::kDifferencing);
  EXPECT_EQ(info.virtual_size, std::uint64_t{8} << 30);
  ASSERT_TRUE(info.parent_locator_type.has_value());
  EXPECT_EQ(info.parent_locator_type->to_string(), "b04aefb7-d19e-4a81-b789-25b8e9445913");
  std::vector<std::string> keys;
  for (const auto& [key, value] : info.parent_locator) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"absolute_win32_path", "parent_linkage",
                                            "parent_linkage2", "relative_path", "volume_path"}));
  for (const auto& [key, value] : info.parent_locator) {
    if (key == "parent_linkage") {
      EXPECT_EQ(value, "{ff34003b-11ed-4cf8-a166-b2be05e20b80}");
    }
    if (key == "relative_path") {
      EXPECT_EQ(value, ".\\Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx");
    }
  }

  auto counts = image->count_blocks();
  ASSERT_TRUE(counts) << counts.error().to_string();
  EXPECT_EQ(counts->partially_present, 32u);
  EXPECT_EQ(counts->not_present, 4064u);
  EXPECT_EQ(counts->fully_present, 0u);

  // Every block is NOT_PRESENT or PARTIALLY_PRESENT: reads of sectors not in this file need
  // the parent.
  std::vector<std::uint8_t> buf(4096);
  for (std::uint64_t offset : {std::uint64_t{0}, info.virtual_size - 4096}) {
    auto r = image->read(offset, buf);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
    EXPECT_NE(r.error().message().find("in the parent image, which is not open"), std::string::npos)
        << r.error().message();
  }

  // The sectors present in this file, from the sector bitmaps. The expected numbers come from
  // the bitmap walk of tools/read_diff_zero_parent.py (179 runs, 3174400 bytes).
  auto extents = image->block_status(0, info.virtual_size);
  ASSERT_TRUE(extents) << extents.error().to_string();
  std::vector<Extent> data;
  std::uint64_t covered = 0;
  for (const Extent& e : *extents) {
    EXPECT_EQ(e.offset, covered);
    covered += e.length;
    EXPECT_NE(e.kind, ExtentKind::kZero);
    if (e.kind == ExtentKind::kData) data.push_back(e);
  }
  EXPECT_EQ(covered, info.virtual_size);
  ASSERT_EQ(data.size(), 179u);
  std::uint64_t present = 0;
  for (const Extent& e : data) present += e.length;
  EXPECT_EQ(present, 3174400u);
  EXPECT_EQ(data.front().offset, 1048576u);
  EXPECT_EQ(data.front().length, 4096u);
  EXPECT_EQ(data.front().file_offset, 28311552u);
  EXPECT_EQ(data.back().offset, 7370686464u);
  EXPECT_EQ(data.back().length, 16384u);
  EXPECT_EQ(data.back().file_offset, 45334528u);
  // A present run reads from the file; one sector more reaches into the parent.
  std::vector<std::uint8_t> run(data.back().length);
  ASSERT_TRUE(image->read(data.back().offset, run));
  std::ifstream container(path, std::ios::binary);
  container.seekg(static_cast<std::streamoff>(*data.back().file_offset));
  std::vector<std::uint8_t> stored(run.size());
  container.read(reinterpret_cast<char*>(stored.data()),
                 static_cast<std::streamsize>(stored.size()));
  EXPECT_EQ(run, stored);
  std::vector<std::uint8_t> longer(run.size() + 512);
  auto past = image->read(data.back().offset, longer);
  ASSERT_FALSE(past);
  EXPECT_EQ(past.error().code(), ErrorCode::kUnsupported);
}

// The QEMU-made image with a pending BAT update in its log: a read-only open replays the log in
// memory, reads the contents the corpus README records after replay, and leaves the file as it
// was (hash and mtime).
constexpr const char* kDirtyLogReplayedSha256 =
    "db96ec75f924125171513a349d157d70691a484532596aee03f09daf5062d385";

TEST(Corpus, DirtyLogReplaysInMemoryOnReadOnlyOpen) {
  const std::string path = image_path(kDirtyLog);
  const std::string file_hash = sha256_file(path);
  struct stat before, after;
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  {
    auto image = open_image(path, /*allow_dirty_log=*/false);
    ASSERT_NE(image, nullptr);
    EXPECT_EQ(image->info().log_state, LogState::kNeedsReplay);
    EXPECT_EQ(image->info().virtual_size, 16u << 20);
    EXPECT_EQ(sha256_hex(read_all(*image)), kDirtyLogReplayedSha256);
    auto counts = image->count_blocks();
    ASSERT_TRUE(counts) << counts.error().to_string();
    EXPECT_EQ(counts->fully_present, 1u);  // block 0, published by the replayed BAT sector
    auto status = image->block_status(0, 2 << 20);
    ASSERT_TRUE(status) << status.error().to_string();
    ASSERT_FALSE(status->empty());
    EXPECT_EQ((*status)[0].kind, ExtentKind::kData);
    EXPECT_EQ((*status)[0].length, 1u << 20);
    const std::string out = testing::make_temp_dir() + "/out.raw";
    auto converted = convert_to_raw(*image, out, {});
    ASSERT_TRUE(converted) << converted.error().to_string();
    EXPECT_EQ(sha256_file(out), kDirtyLogReplayedSha256);
  }
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  EXPECT_EQ(sha256_file(path), file_hash);
  EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
}

// A writable open replays the same log in place: the contents are the ones the read-only open
// shows, and a second open finds an empty log (both headers' LogGuid zero) and the same bytes.
TEST(Corpus, DirtyLogReplaysInPlaceOnWritableOpen) {
  const std::string path = image_path(kDirtyLog);
  const std::string file_hash = sha256_file(path);
  {
    auto image = Image::open(path, OpenOptions{.read_only = false});
    ASSERT_TRUE(image) << image.error().to_string();
    EXPECT_EQ((*image)->info().log_state, LogState::kEmpty);
    EXPECT_EQ(sha256_hex(read_all(**image)), kDirtyLogReplayedSha256);
    ASSERT_TRUE((*image)->close());
  }
  EXPECT_NE(sha256_file(path), file_hash) << "the replay did not change the file";
  auto image = open_image(path, /*allow_dirty_log=*/false);
  ASSERT_NE(image, nullptr);
  EXPECT_EQ(image->info().log_state, LogState::kEmpty);
  EXPECT_EQ(image->info().log_entries, 0u);
  for (const auto& header : image->info().headers) {
    EXPECT_TRUE(header.valid) << header.invalid_reason;
    EXPECT_TRUE(header.log_guid.is_zero());
  }
  EXPECT_EQ(sha256_hex(read_all(*image)), kDirtyLogReplayedSha256);
  image.reset();
  // QEMU, which refuses the dirty original read-only, reads the replayed file the same way.
  if (testing::have_program("qemu-img")) {
    const std::string out = testing::make_temp_dir() + "/qemu.raw";
    ASSERT_EQ(testing::run_command("qemu-img convert -O raw '" + path + "' '" + out + "'"), 0);
    EXPECT_EQ(sha256_file(out), kDirtyLogReplayedSha256);
  }
}

// A dirty log that cannot be replayed (the file lost its tail, so it is shorter than the log's
// flushed file offset) fails a plain open, and an inspection open refuses reads with the reason.
TEST(Corpus, UnreplayableLogFailsUnlessInspecting) {
  const std::string path = image_path(kDirtyLog);
  ASSERT_EQ(::truncate(path.c_str(), 8 << 20), 0);
  auto plain = Image::open(path, OpenOptions{});
  ASSERT_FALSE(plain);
  EXPECT_EQ(plain.error().code(), ErrorCode::kCorrupt) << plain.error().to_string();
  EXPECT_NE(plain.error().message().find("log replay (in memory)"), std::string::npos)
      << plain.error().message();
  EXPECT_NE(plain.error().message().find("flushed file offset"), std::string::npos)
      << plain.error().message();

  auto image = open_image(path, /*allow_dirty_log=*/true);
  ASSERT_NE(image, nullptr);
  EXPECT_EQ(image->info().log_state, LogState::kNeedsReplay);
  std::vector<std::uint8_t> buf(512);
  auto read = image->read(0, buf);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code(), ErrorCode::kNeedsLogReplay);
  EXPECT_NE(read.error().message().find("flushed file offset"), std::string::npos)
      << read.error().message();
}

TEST(Corpus, ReadOnlyOpenNeverChangesTheFile) {
  for (const CorpusCase& c : kAll) {
    const std::string path = image_path(c);
    struct stat before, after;
    ASSERT_EQ(::stat(path.c_str(), &before), 0);
    const std::string hash = sha256_file(path);
    {
      auto image = open_image(path, /*allow_dirty_log=*/true);
      ASSERT_NE(image, nullptr);
      std::vector<std::uint8_t> buf(1 << 20);
      (void)image->read(0, buf);
      (void)image->block_status(0, image->virtual_size());
      (void)image->count_blocks();
    }
    (void)Image::open(path, OpenOptions{});
    ASSERT_EQ(::stat(path.c_str(), &after), 0);
    EXPECT_EQ(sha256_file(path), hash) << c.folder;
    EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec) << c.folder;
    EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec) << c.folder;
    EXPECT_EQ(after.st_size, before.st_size) << c.folder;
  }
}

TEST(Corpus, ProbeTellsVhdxFromOtherFiles) {
  auto yes = probe(image_path(kFixed));
  ASSERT_TRUE(yes);
  EXPECT_TRUE(*yes);
  const std::string other = testing::make_temp_dir() + "/plain.bin";
  std::ofstream(other) << "not a disk image at all";
  auto no = probe(other);
  ASSERT_TRUE(no);
  EXPECT_FALSE(*no);
  auto opened = Image::open(other, OpenOptions{});
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code(), ErrorCode::kNotVhdx);
  EXPECT_NE(opened.error().message().find("not a VHDX file: no 'vhdxfile' signature"),
            std::string::npos);
  auto missing = probe(other + ".missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kIo);
}

}  // namespace
}  // namespace vhdx
