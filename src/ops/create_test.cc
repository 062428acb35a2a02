// Component tests of ops::create_image / VhdxWriter: every field of a new image as our engine
// reads it back, the option rules, the refusal to overwrite, the write order, and empty
// differencing children (metadata, locator bytes, BAT geometry, a clean check).
#include "ops/create.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "format/bat.h"
#include "format/constants.h"
#include "format/parent_locator.h"
#include "image/engine.h"
#include "io/posix_file.h"
#include "ops/check.h"

namespace vhdx::ops {
namespace {

using format::kMiB;

class CreateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "vhdx-create-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  static std::unique_ptr<image::Engine> open(const std::string& p) {
    auto file = open_posix_file(p, {});
    EXPECT_TRUE(file) << file.error().to_string();
    if (!file) return nullptr;
    auto engine = image::Engine::open(std::move(*file), {});
    EXPECT_TRUE(engine) << engine.error().to_string();
    if (!engine) return nullptr;
    return std::move(*engine);
  }

  std::string dir_;
};

struct MatrixCase {
  DiskType type;
  std::uint32_t block_size;
  std::uint32_t logical;
  std::uint32_t physical;
  std::uint64_t virtual_size;
  std::uint32_t log_size;
};

TEST_F(CreateTest, MatrixReadsBackEveryField) {
  const std::vector<MatrixCase> cases = {
      {DiskType::kDynamic, 32 * kMiB, 512, 4096, 1ull << 30, kMiB},
      {DiskType::kDynamic, 1 * kMiB, 512, 512, 3 * kMiB + 512, kMiB},
      {DiskType::kDynamic, 256 * kMiB, 4096, 4096, (5ull << 30) + 4096, 4 * kMiB},
      {DiskType::kDynamic, 2 * kMiB, 4096, 512, 64ull << 40, kMiB},  // the 64 TiB limit
      {DiskType::kFixed, 1 * kMiB, 512, 4096, 5 * kMiB + 1536, kMiB},
      {DiskType::kFixed, 8 * kMiB, 4096, 4096, 20 * kMiB + 4096, 2 * kMiB},
      {DiskType::kFixed, 32 * kMiB, 512, 512, 33 * kMiB, kMiB},
  };
  int n = 0;
  for (const MatrixCase& c : cases) {
    SCOPED_TRACE(::testing::Message() << "case " << n);
    const std::string p = path("m" + std::to_string(n++) + ".vhdx");
    CreateParams params;
    params.type = c.type;
    params.block_size = c.block_size;
    params.logical_sector_size = c.logical;
    params.physical_sector_size = c.physical;
    params.virtual_size = c.virtual_size;
    params.log_size = c.log_size;
    auto r = create_image(p, params);
    ASSERT_TRUE(r) << r.error().to_string();
    auto engine = open(p);
    ASSERT_NE(engine, nullptr);
    const ImageInfo& info = engine->info();
    const std::uint64_t blocks = (c.virtual_size + c.block_size - 1) / c.block_size;
    const std::uint64_t ratio = (std::uint64_t{1} << 23) * c.logical / c.block_size;
    const std::uint64_t entries = blocks + (blocks - 1) / ratio;
    const std::uint64_t bat_length = (entries * 8 + kMiB - 1) / kMiB * kMiB;
    const std::uint64_t payload = kMiB + c.log_size + kMiB + bat_length;

    EXPECT_EQ(info.creator, "libvhdx " + std::string(VHDX_VERSION_FOR_TEST));
    EXPECT_EQ(info.format_version, 1);
    EXPECT_EQ(info.type, c.type);
    EXPECT_EQ(info.virtual_size, c.virtual_size);
    EXPECT_EQ(info.block_size, c.block_size);
    EXPECT_EQ(info.logical_sector_size, c.logical);
    EXPECT_EQ(info.physical_sector_size, c.physical);
    EXPECT_EQ(info.leave_blocks_allocated, c.type == DiskType::kFixed);
    EXPECT_FALSE(info.virtual_disk_id.is_zero());
    for (int i = 0; i < 2; ++i) {
      EXPECT_TRUE(info.headers[i].valid) << info.headers[i].invalid_reason;
      EXPECT_EQ(info.headers[i].sequence_number, static_cast<std::uint64_t>(i + 1));
      EXPECT_EQ(info.headers[i].log_offset, kMiB);
      EXPECT_EQ(info.headers[i].log_length, c.log_size);
      EXPECT_TRUE(info.headers[i].log_guid.is_zero());
      EXPECT_FALSE(info.headers[i].file_write_guid.is_zero());
      EXPECT_FALSE(info.headers[i].data_write_guid.is_zero());
      EXPECT_EQ(info.headers[i].version, 1);
      EXPECT_EQ(info.headers[i].log_version, 0);
    }
    EXPECT_EQ(info.headers[0].file_write_guid, info.headers[1].file_write_guid);
    EXPECT_EQ(info.current_header, 1);
    EXPECT_EQ(info.log_state, LogState::kEmpty);
    ASSERT_EQ(info.regions.size(), 2u);
    EXPECT_EQ(info.regions[0].name, "BAT");
    EXPECT_EQ(info.regions[0].file_offset, kMiB + c.log_size + kMiB);
    EXPECT_EQ(info.regions[0].length, bat_length);
    EXPECT_TRUE(info.regions[0].required);
    EXPECT_EQ(info.regions[1].name, "metadata");
    EXPECT_EQ(info.regions[1].file_offset, kMiB + c.log_size);
    EXPECT_EQ(info.regions[1].length, kMiB);
    ASSERT_EQ(info.metadata_items.size(), 5u);
    const char* names[] = {"file-parameters", "virtual-disk-size", "logical-sector-size",
                           "physical-sector-size", "virtual-disk-id"};
    const std::uint32_t offsets[] = {0, 8, 16, 20, 24};
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(info.metadata_items[i].name, names[i]);
      EXPECT_TRUE(info.metadata_items[i].is_required);
      EXPECT_EQ(info.metadata_items[i].is_virtual_disk, i != 0);
      EXPECT_EQ(info.metadata_items[i].offset, 65536u + offsets[i]);
    }
    EXPECT_EQ(info.chunk_ratio, ratio);
    EXPECT_EQ(info.payload_blocks, blocks);
    EXPECT_EQ(info.bat_entries, entries);
    EXPECT_EQ(info.file_size,
              c.type == DiskType::kFixed ? payload + blocks * c.block_size : payload);

    auto counts = engine->count_blocks();
    ASSERT_TRUE(counts) << counts.error().to_string();
    EXPECT_EQ(counts->fully_present, c.type == DiskType::kFixed ? blocks : 0);
    EXPECT_EQ(counts->not_present, c.type == DiskType::kFixed ? 0 : blocks);
    if (c.type == DiskType::kFixed) {
      // Blocks laid out back to back from the payload offset, and the space really allocated.
      for (std::uint64_t b = 0; b < blocks; ++b) {
        auto m = engine->lookup_block(b);
        ASSERT_TRUE(m);
        EXPECT_EQ(m->file_offset, payload + b * c.block_size);
      }
      struct stat st {};
      ASSERT_EQ(::stat(p.c_str(), &st), 0);
      EXPECT_GE(static_cast<std::uint64_t>(st.st_blocks) * 512, blocks * c.block_size);
    }
    // Zeros at the start, across the first block boundary and at the very end.
    std::vector<std::uint8_t> buf(std::min<std::uint64_t>(c.virtual_size, 2 * kMiB), 0xEE);
    for (std::uint64_t at : {std::uint64_t{0}, c.virtual_size - buf.size()}) {
      std::fill(buf.begin(), buf.end(), 0xEE);
      ASSERT_TRUE(engine->read(at, buf));
      EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](std::uint8_t v) { return v == 0; }));
    }
  }
}

TEST_F(CreateTest, EveryImageGetsFreshIds) {
  CreateParams params;
  params.virtual_size = 64 * kMiB;
  ASSERT_TRUE(create_image(path("a.vhdx"), params));
  ASSERT_TRUE(create_image(path("b.vhdx"), params));
  auto a = open(path("a.vhdx"));
  auto b = open(path("b.vhdx"));
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->info().virtual_disk_id, b->info().virtual_disk_id);
  EXPECT_NE(a->info().headers[0].file_write_guid, b->info().headers[0].file_write_guid);
  EXPECT_NE(a->info().headers[0].data_write_guid, b->info().headers[0].data_write_guid);
  EXPECT_EQ(a->info().block_size, kDefaultBlockSize);
  EXPECT_EQ(a->info().logical_sector_size, 512u);
  EXPECT_EQ(a->info().physical_sector_size, 4096u);
}

TEST_F(CreateTest, InvalidOptionsNameTheOptionAndRule) {
  struct Bad {
    void (*change)(CreateParams&);
    const char* text;
  };
  const std::vector<Bad> bad = {
      {[](CreateParams& p) { p.block_size = 3 * kMiB; }, "block_size: 3 MiB is not a power of two"},
      {[](CreateParams& p) { p.block_size = 512 * 1024; }, "block_size: 524288 bytes"},
      {[](CreateParams& p) { p.block_size = 512 * kMiB; }, "block_size: 512 MiB"},
      {[](CreateParams& p) { p.log_size = 1536 * 1024; }, "log_size: 1572864 bytes is not"},
      {[](CreateParams& p) { p.log_size = 0; }, "log_size"},
      {[](CreateParams& p) { p.logical_sector_size = 1024; }, "logical_sector_size: 1024"},
      {[](CreateParams& p) { p.physical_sector_size = 2048; }, "physical_sector_size: 2048"},
      {[](CreateParams& p) { p.virtual_size = 0; }, "size: the virtual size must not be zero"},
      {[](CreateParams& p) { p.virtual_size = (64ull << 40) + 512; }, "more than 64 TiB"},
      {[](CreateParams& p) { p.virtual_size = kMiB + 100; }, "not a multiple of the logical"},
      {[](CreateParams& p) {
         p.logical_sector_size = 4096;
         p.virtual_size = kMiB + 512;
       },
       "(4096)"},
      {[](CreateParams& p) { p.type = DiskType::kDifferencing; }, "subformat"},
  };
  for (const Bad& b : bad) {
    CreateParams params;
    params.virtual_size = 16 * kMiB;
    b.change(params);
    auto r = create_image(path("bad.vhdx"), params);
    ASSERT_FALSE(r) << b.text;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(b.text), std::string::npos) << r.error().message();
    EXPECT_FALSE(std::filesystem::exists(path("bad.vhdx")));
  }
}

TEST_F(CreateTest, RefusesToOverwriteUnlessAsked) {
  const std::string p = path("exists.vhdx");
  { std::ofstream(p) << "precious"; }
  CreateParams params;
  params.virtual_size = 8 * kMiB;
  auto r = create_image(p, params);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("already exists"), std::string::npos);
  EXPECT_EQ(std::filesystem::file_size(p), 8u);  // untouched
  params.overwrite = true;
  ASSERT_TRUE(create_image(p, params));
  auto engine = open(p);
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->info().virtual_size, 8 * kMiB);
}

TEST_F(CreateTest, UnfinishedWriterLeavesNoImage) {
  const std::string p = path("partial.vhdx");
  CreateParams params;
  params.virtual_size = 8 * kMiB;
  params.block_size = kMiB;
  auto writer = VhdxWriter::create(p, params);
  ASSERT_TRUE(writer);
  std::vector<std::uint8_t> data(4096, 0x5A);
  ASSERT_TRUE((*writer)->write(2, 0, data));
  // Before finish nothing identifies the file as VHDX: no signature, no header.
  {
    auto file = open_posix_file(p, {});
    ASSERT_TRUE(file);
    auto engine = image::Engine::open(std::move(*file), {});
    ASSERT_FALSE(engine);
    EXPECT_EQ(engine.error().code(), ErrorCode::kNotVhdx);
  }
  // Blocks must come in order in a dynamic image.
  auto back = (*writer)->write(1, 0, data);
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error().code(), ErrorCode::kInvalidArgument);
  writer->reset();
  EXPECT_FALSE(std::filesystem::exists(p));
}

TEST_F(CreateTest, WriterStoresBlocksInOrderOfArrival) {
  const std::string p = path("w.vhdx");
  CreateParams params;
  params.virtual_size = 8 * kMiB;
  params.block_size = kMiB;
  auto writer = VhdxWriter::create(p, params);
  ASSERT_TRUE(writer);
  std::vector<std::uint8_t> a(1000, 0xA1), b(512, 0xB2);
  ASSERT_TRUE((*writer)->write(5, 4096, a));
  ASSERT_TRUE((*writer)->write(5, 0, b));
  ASSERT_TRUE((*writer)->write(7, kMiB - 512, b));
  ASSERT_TRUE((*writer)->finish());
  EXPECT_EQ((*writer)->allocated_blocks(), 2u);
  auto engine = open(p);
  ASSERT_NE(engine, nullptr);
  const std::uint64_t payload = 4 * kMiB;
  EXPECT_EQ(engine->info().file_size, payload + 2 * kMiB);
  auto m5 = engine->lookup_block(5);
  auto m7 = engine->lookup_block(7);
  ASSERT_TRUE(m5 && m7);
  EXPECT_EQ(m5->file_offset, payload);
  EXPECT_EQ(m7->file_offset, payload + kMiB);
  std::vector<std::uint8_t> got(kMiB);
  ASSERT_TRUE(engine->read(5 * kMiB, got));
  std::vector<std::uint8_t> want(kMiB, 0);
  std::fill_n(want.begin(), 512, 0xB2);
  std::fill_n(want.begin() + 4096, 1000, 0xA1);
  EXPECT_EQ(got, want);
  ASSERT_TRUE(engine->read(7 * kMiB, got));
  std::fill(want.begin(), want.end(), 0);
  std::fill(want.end() - 512, want.end(), 0xB2);
  EXPECT_EQ(got, want);
}

// A link as create_differencing would make it, with fixed GUIDs to compare against.
ParentLink sample_link() {
  ParentLink link;
  link.data_write_guid = *Guid::parse("83ed0ec3-24c8-49a6-a959-5e4bf1288bfb");
  link.virtual_disk_id = *Guid::parse("89ca62b5-b00d-4b8e-b79a-87e20cad5a40");
  link.paths = {{"absolute_win32_path", "/vm/images/base.vhdx"},
                {"relative_path", "..\\images\\base.vhdx"}};
  return link;
}

std::vector<std::uint8_t> read_bytes(const std::string& p, std::uint64_t offset,
                                     std::uint64_t length) {
  std::vector<std::uint8_t> bytes(length);
  std::ifstream in(p, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(length));
  EXPECT_EQ(in.gcount(), static_cast<std::streamsize>(length)) << p;
  return bytes;
}

struct DifferencingCase {
  std::uint32_t block_size;
  std::uint32_t logical;
  std::uint32_t physical;
  std::uint64_t virtual_size;
};

TEST_F(CreateTest, DifferencingChildHasParentLinkAndEmptyBat) {
  const std::vector<DifferencingCase> cases = {
      {32 * kMiB, 512, 4096, 1ull << 30},        // Windows' defaults
      {2 * kMiB, 512, 4096, 8ull << 30},         // the corpus checkpoint's geometry
      {1 * kMiB, 4096, 4096, 3 * kMiB + 4096},   // partial last block, 4 KiB sectors
      {1 * kMiB, 512, 512, (1ull << 40) + 512},  // many chunks: 8 MiB of BAT
      {256 * kMiB, 4096, 512, (64ull << 40)},    // the 64 TiB limit
  };
  int n = 0;
  for (const DifferencingCase& c : cases) {
    SCOPED_TRACE(::testing::Message() << "case " << n);
    const std::string p = path("d" + std::to_string(n++) + ".vhdx");
    CreateParams params;
    params.type = DiskType::kDifferencing;
    params.block_size = c.block_size;
    params.logical_sector_size = c.logical;
    params.physical_sector_size = c.physical;
    params.virtual_size = c.virtual_size;
    params.parent = sample_link();
    auto r = create_image(p, params);
    ASSERT_TRUE(r) << r.error().to_string();

    auto geometry = format::compute_bat_geometry(c.block_size, c.virtual_size, c.logical, true);
    ASSERT_TRUE(geometry);
    const std::uint64_t ratio = (std::uint64_t{1} << 23) * c.logical / c.block_size;
    const std::uint64_t blocks = (c.virtual_size + c.block_size - 1) / c.block_size;
    const std::uint64_t chunks = (blocks + ratio - 1) / ratio;
    // Every chunk, the last one too, ends with its sector-bitmap entry.
    EXPECT_EQ(geometry->total_entries, chunks * (ratio + 1));
    const std::uint64_t bat_length = (chunks * (ratio + 1) * 8 + kMiB - 1) / kMiB * kMiB;
    const std::uint64_t payload = 3 * kMiB + bat_length;  // header section, log, metadata

    auto engine = open(p);
    ASSERT_NE(engine, nullptr);
    const ImageInfo& info = engine->info();
    EXPECT_EQ(info.type, DiskType::kDifferencing);
    EXPECT_EQ(info.virtual_size, c.virtual_size);
    EXPECT_EQ(info.block_size, c.block_size);
    EXPECT_EQ(info.logical_sector_size, c.logical);
    EXPECT_EQ(info.physical_sector_size, c.physical);
    EXPECT_FALSE(info.leave_blocks_allocated);
    EXPECT_EQ(info.virtual_disk_id, sample_link().virtual_disk_id);
    EXPECT_EQ(info.chunk_ratio, ratio);
    EXPECT_EQ(info.payload_blocks, blocks);
    EXPECT_EQ(info.bat_entries, chunks * (ratio + 1));
    EXPECT_EQ(info.file_size, payload);  // no payload, no bitmaps
    // The parent's DataWriteGuid is not this file's own.
    EXPECT_NE(info.headers[0].data_write_guid, sample_link().data_write_guid);
    ASSERT_TRUE(info.parent_locator_type);
    EXPECT_EQ(*info.parent_locator_type, format::kVhdxParentLocatorType);
    const std::vector<std::pair<std::string, std::string>> want_entries = {
        {"parent_linkage", "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}"},
        {"absolute_win32_path", "/vm/images/base.vhdx"},
        {"relative_path", "..\\images\\base.vhdx"}};
    EXPECT_EQ(info.parent_locator, want_entries);
    // Flags as Windows writes them: File Parameters and Parent Locator describe the file
    // (required only), the other items the virtual disk.
    ASSERT_EQ(info.metadata_items.size(), 6u);
    EXPECT_EQ(info.metadata_items[5].name, "parent-locator");
    EXPECT_EQ(info.metadata_items[5].offset, 65536u + 40);
    EXPECT_TRUE(info.metadata_items[5].is_required);
    EXPECT_FALSE(info.metadata_items[5].is_virtual_disk);
    EXPECT_FALSE(info.metadata_items[5].is_user);

    auto counts = engine->count_blocks();
    ASSERT_TRUE(counts) << counts.error().to_string();
    EXPECT_EQ(counts->not_present, blocks);
    EXPECT_EQ(counts->fully_present + counts->partially_present + counts->zero, 0u);

    // On disk: File Parameters flags exactly HasParent (bit 1), every BAT entry zero.
    const auto fp = read_bytes(p, 2 * kMiB + 65536, 8);
    EXPECT_EQ(fp[4], 0x02);
    EXPECT_EQ(fp[5] | fp[6] | fp[7], 0);
    const auto bat = read_bytes(p, 3 * kMiB, chunks * (ratio + 1) * 8);
    EXPECT_TRUE(std::all_of(bat.begin(), bat.end(), [](std::uint8_t v) { return v == 0; }));
    // The locator decodes on its own to the same entries.
    const auto item = read_bytes(p, 2 * kMiB + 65536 + 40, info.metadata_items[5].length);
    auto locator = format::decode_parent_locator(item);
    ASSERT_TRUE(locator) << locator.error().to_string();
    EXPECT_EQ(locator->entries, want_entries);

    auto file = open_posix_file(p, {});
    ASSERT_TRUE(file);
    auto report = check_image(std::move(*file));
    ASSERT_TRUE(report) << report.error().to_string();
    EXPECT_EQ(report->corruption_count, 0u)
        << (report->corruptions.empty() ? "" : report->corruptions[0]);
    EXPECT_TRUE(report->check_errors.empty())
        << (report->check_errors.empty() ? "" : report->check_errors[0]);
    EXPECT_EQ(report->leaked_bytes, 0u);
    EXPECT_EQ(report->allocated_blocks, 0u);
  }
}

TEST_F(CreateTest, ParentLinkGoesWithDifferencingOnly) {
  CreateParams params;
  params.virtual_size = 16 * kMiB;
  params.type = DiskType::kDifferencing;
  auto no_parent = plan_image(params);
  ASSERT_FALSE(no_parent);
  EXPECT_EQ(no_parent.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(no_parent.error().message().find("subformat: a differencing image needs a parent"),
            std::string::npos)
      << no_parent.error().message();
  for (DiskType type : {DiskType::kFixed, DiskType::kDynamic}) {
    params.type = type;
    params.parent = sample_link();
    auto r = plan_image(params);
    ASSERT_FALSE(r) << static_cast<int>(type);
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find("images have no parent"), std::string::npos)
        << r.error().message();
    EXPECT_FALSE(create_image(path("x.vhdx"), params));
    EXPECT_FALSE(std::filesystem::exists(path("x.vhdx")));
  }
  params.type = DiskType::kDifferencing;
  auto good = plan_image(params);
  ASSERT_TRUE(good) << good.error().to_string();
  EXPECT_EQ(good->bat_entries, 129u);  // one block, padded to a chunk of 128, then its bitmap
}

TEST_F(CreateTest, BadLocatorEntriesAreRefused) {
  struct Bad {
    std::vector<std::pair<std::string, std::string>> paths;
    const char* text;
  };
  const std::vector<Bad> bad = {
      {{{"relative_path", ""}}, "value of 'relative_path': is empty"},
      {{{"", "x"}}, "is empty"},
      {{{"parent_linkage", "{00000000-0000-0000-0000-000000000000}"}}, "'parent_linkage': repeats"},
      {{{"relative_path", ".\\a"}, {"relative_path", ".\\b"}}, "'relative_path': repeats"},
      {{{"relative_path", std::string("a\0b", 3)}}, "NUL"},
      {{{"relative_path", "\xff\xfe"}}, "not valid UTF-8"},
      {{{"relative_path", std::string(40000, 'a')}}, "longer than 65534 bytes"},
      {{{"a", std::string(30000, 'a')},
        {"b", std::string(30000, 'a')},
        {"c", std::string(30000, 'a')},
        {"d", std::string(30000, 'a')},
        {"e", std::string(30000, 'a')},
        {"f", std::string(30000, 'a')},
        {"g", std::string(30000, 'a')},
        {"h", std::string(30000, 'a')},
        {"i", std::string(30000, 'a')},
        {"j", std::string(30000, 'a')},
        {"k", std::string(30000, 'a')},
        {"l", std::string(30000, 'a')},
        {"m", std::string(30000, 'a')},
        {"n", std::string(30000, 'a')},
        {"o", std::string(30000, 'a')},
        {"p", std::string(30000, 'a')},
        {"q", std::string(30000, 'a')}},
       "than the 983000 the metadata region has left"},
  };
  for (const Bad& b : bad) {
    CreateParams params;
    params.type = DiskType::kDifferencing;
    params.virtual_size = 16 * kMiB;
    params.parent = sample_link();
    params.parent->paths = b.paths;
    auto r = create_image(path("bad.vhdx"), params);
    ASSERT_FALSE(r) << b.text;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(b.text), std::string::npos) << r.error().message();
    EXPECT_FALSE(std::filesystem::exists(path("bad.vhdx")));
  }
}

}  // namespace
}  // namespace vhdx::ops
