// Differencing chains in the engine: reads and block status of a child go to its parent for
// NOT_PRESENT blocks and for the sectors a PARTIALLY_PRESENT block's bitmap leaves clear, never
// for ZERO blocks; the parent's own parent is followed the same way. The images are built in
// memory (test_image.h) and compared with a sector-by-sector model of the chain.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "image/test_image.h"

namespace vhdx::image::testing {
namespace {

constexpr std::uint64_t kSector = 512;

std::vector<std::uint8_t> read_range(Engine& engine, std::uint64_t offset, std::size_t length) {
  std::vector<std::uint8_t> out(length);
  auto r = engine.read(offset, out);
  EXPECT_TRUE(r) << r.error().to_string();
  return out;
}

// A base image: blocks 0-3 of 1 MiB each hold their own pattern.
TestImage make_base(std::uint64_t virtual_size = 4 * kMiB) {
  TestImage base({.block_size = 1 * kMiB, .virtual_size = virtual_size});
  for (std::uint64_t b = 0; b * kMiB < virtual_size; ++b)
    base.allocate(b, static_cast<std::uint8_t>(0x11 * (b + 1)));
  return base;
}

// Makes `block` of the differencing image `t` PARTIALLY_PRESENT with its own pattern and a
// sector bitmap in which sector s of the block is present when present(s). Returns the
// payload's file offset.
template <typename Present>
std::uint64_t add_partial_block(TestImage& t, std::uint64_t block, Present present) {
  const std::uint64_t payload = t.allocate(block, 0x50);
  t.set_payload(block, format::PayloadState::kPartiallyPresent, payload);
  const std::uint64_t bitmap = *align_up(t.bytes().size(), kMiB);
  t.bytes().resize(bitmap + kMiB, 0);
  t.set_entry(t.geometry().bitmap_entry_index(0), format::encode_bat_entry(6, bitmap));
  const std::uint64_t first = block * kMiB / kSector;
  for (std::uint64_t s = 0; s < kMiB / kSector; ++s)
    if (present(s))
      t.bytes()[bitmap + (first + s) / 8] |= static_cast<std::uint8_t>(1u << ((first + s) % 8));
  return payload;
}

// The chain of the tests: a base and a child of 4 MiB each.
//   block 0: child NOT_PRESENT          -> the base's block 0
//   block 1: child FULLY_PRESENT        -> the child's own data
//   block 2: child ZERO                 -> zeros (ZERO never goes to the parent)
//   block 3: child PARTIALLY_PRESENT    -> per sector: the child's data, or the base's
struct Chain {
  TestImage base = make_base();
  TestImage child{{.block_size = 1 * kMiB, .virtual_size = 4 * kMiB, .has_parent = true}};
  std::vector<bool> present_in_block3;
  std::uint64_t child_block1 = 0;
  std::uint64_t child_block3 = 0;

  Chain() {
    std::mt19937_64 rng(5);
    present_in_block3.resize(kMiB / kSector);
    for (std::size_t s = 0; s < present_in_block3.size();) {
      // Runs of 1 to 40 sectors, so whole bitmap bytes and single bits both occur.
      const bool value = rng() % 2;
      const std::size_t run = 1 + rng() % 40;
      for (std::size_t i = 0; i < run && s < present_in_block3.size(); ++i)
        present_in_block3[s++] = value;
    }
    child_block1 = child.allocate(1, 0x90);
    child.set_payload(2, format::PayloadState::kZero);
    child_block3 =
        add_partial_block(child, 3, [&](std::uint64_t s) { return present_in_block3[s]; });
  }

  std::vector<std::uint8_t> expected() const {
    std::vector<std::uint8_t> disk = base.expected_disk();
    const auto& bytes = child.bytes_view();
    std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(child_block1), kMiB,
                disk.begin() + static_cast<std::ptrdiff_t>(kMiB));
    std::fill_n(disk.begin() + static_cast<std::ptrdiff_t>(2 * kMiB), kMiB, 0);
    for (std::uint64_t s = 0; s < kMiB / kSector; ++s)
      if (present_in_block3[s])
        std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(child_block3 + s * kSector),
                    kSector, disk.begin() + static_cast<std::ptrdiff_t>(3 * kMiB + s * kSector));
    return disk;
  }

  std::unique_ptr<Engine> open() const {
    auto engine = child.open_ok();
    auto parent = base.open_ok();
    if (!engine || !parent) return nullptr;
    parent->set_source_path("base.vhdx");
    engine->set_parent(std::move(parent));
    return engine;
  }
};

TEST(EngineChain, ReadsFollowBlockStatesAndTheSectorBitmap) {
  Chain chain;
  const auto want = chain.expected();
  auto engine = chain.open();
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(read_range(*engine, 0, want.size()), want);
  std::mt19937_64 rng(17);
  for (int round = 0; round < 300; ++round) {
    const std::uint64_t offset = rng() % want.size();
    const std::size_t length = 1 + rng() % std::min<std::uint64_t>(want.size() - offset, 3 * kMiB);
    const auto got = read_range(*engine, offset, length);
    ASSERT_TRUE(
        std::equal(got.begin(), got.end(), want.begin() + static_cast<std::ptrdiff_t>(offset)))
        << "round " << round << " offset " << offset << " length " << length;
  }
}

TEST(EngineChain, BlockStatusNamesTheLayerOfEverySector) {
  Chain chain;
  auto engine = chain.open();
  ASSERT_NE(engine, nullptr);
  // Block b of the base is stored at base_offset[b].
  std::uint64_t base_offset[4];
  for (std::uint64_t b = 0; b < 4; ++b) {
    auto mapping = engine->parent()->lookup_block(b);
    ASSERT_TRUE(mapping);
    base_offset[b] = mapping->file_offset;
  }
  // What sector s of the disk should report: depth, kind and file offset.
  auto expect_sector = [&](std::uint64_t s, const Extent& e, std::uint64_t at) {
    const std::uint64_t block = at / kMiB, in_block = at % kMiB;
    std::uint32_t depth = 0;
    ExtentKind kind = ExtentKind::kData;
    std::optional<std::uint64_t> file_offset;
    if (block == 0 || (block == 3 && !chain.present_in_block3[in_block / kSector])) {
      depth = 1;
      file_offset = base_offset[block] + in_block;
    } else if (block == 1) {
      file_offset = chain.child_block1 + in_block;
    } else if (block == 2) {
      kind = ExtentKind::kZero;
    } else {
      file_offset = chain.child_block3 + in_block;
    }
    ASSERT_EQ(e.depth, depth) << "sector " << s;
    ASSERT_EQ(e.kind, kind) << "sector " << s;
    if (file_offset) {
      ASSERT_EQ(*e.file_offset + (at - e.offset), *file_offset) << "sector " << s;
    }
  };
  std::mt19937_64 rng(23);
  for (int round = 0; round < 100; ++round) {
    const std::uint64_t offset = rng() % (4 * kMiB);
    const std::uint64_t length = 1 + rng() % (4 * kMiB - offset);
    auto extents = engine->block_status(offset, length);
    ASSERT_TRUE(extents) << extents.error().to_string();
    std::uint64_t at = offset;
    for (const Extent& e : *extents) {
      ASSERT_EQ(e.offset, at) << "round " << round;
      for (std::uint64_t b = at; b < at + e.length; b += kSector - b % kSector)
        expect_sector(b / kSector, e, b);
      at += e.length;
    }
    ASSERT_EQ(at, offset + length) << "round " << round;
  }
}

TEST(EngineChain, AParentSmallerThanTheChildReadsAsZerosPastItsEnd) {
  TestImage base = make_base(2 * kMiB);
  TestImage child({.block_size = 1 * kMiB, .virtual_size = 4 * kMiB, .has_parent = true});
  auto engine = child.open_ok();
  ASSERT_NE(engine, nullptr);
  engine->set_parent(base.open_ok());
  std::vector<std::uint8_t> want = base.expected_disk();
  want.resize(4 * kMiB, 0);
  EXPECT_EQ(read_range(*engine, 0, want.size()), want);
  // A read straddling the parent's end.
  const auto got = read_range(*engine, 2 * kMiB - 100, 200);
  EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin() + 2 * kMiB - 100));
  auto extents = engine->block_status(0, 4 * kMiB);
  ASSERT_TRUE(extents) << extents.error().to_string();
  ASSERT_EQ(extents->size(), 2u);
  EXPECT_EQ((*extents)[0].kind, ExtentKind::kData);
  EXPECT_EQ((*extents)[0].depth, 1u);
  EXPECT_EQ((*extents)[0].length, 2 * kMiB);
  EXPECT_EQ((*extents)[1].kind, ExtentKind::kZero);
  EXPECT_EQ((*extents)[1].depth, 0u);
  EXPECT_EQ((*extents)[1].offset, 2 * kMiB);
}

TEST(EngineChain, ThreeLevelsResolveToTheNearestLayerHoldingTheData) {
  TestImage base = make_base();
  TestImage middle({.block_size = 1 * kMiB, .virtual_size = 4 * kMiB, .has_parent = true});
  const std::uint64_t middle_block2 = middle.allocate(2, 0x77);
  TestImage top({.block_size = 1 * kMiB, .virtual_size = 4 * kMiB, .has_parent = true});
  top.allocate(0, 0xA0);

  auto engine = top.open_ok();
  auto parent = middle.open_ok();
  ASSERT_NE(engine, nullptr);
  ASSERT_NE(parent, nullptr);
  parent->set_parent(base.open_ok());
  engine->set_parent(std::move(parent));

  std::vector<std::uint8_t> want = base.expected_disk();
  const auto top_disk = top.expected_disk();
  std::copy_n(top_disk.begin(), kMiB, want.begin());
  std::copy_n(middle.bytes_view().begin() + static_cast<std::ptrdiff_t>(middle_block2), kMiB,
              want.begin() + 2 * kMiB);
  EXPECT_EQ(read_range(*engine, 0, want.size()), want);

  auto extents = engine->block_status(0, 4 * kMiB);
  ASSERT_TRUE(extents) << extents.error().to_string();
  std::vector<std::pair<std::uint64_t, std::uint32_t>> layers;  // offset, depth
  for (const Extent& e : *extents) {
    EXPECT_EQ(e.kind, ExtentKind::kData);
    layers.emplace_back(e.offset, e.depth);
  }
  // Block 0: top; block 1: base; block 2: middle (at its own file offset); block 3: base.
  const std::vector<std::pair<std::uint64_t, std::uint32_t>> want_layers = {
      {0, 0}, {kMiB, 2}, {2 * kMiB, 1}, {3 * kMiB, 2}};
  EXPECT_EQ(layers, want_layers);
  EXPECT_EQ((*extents)[2].file_offset, middle_block2);
}

TEST(EngineChain, AParentsErrorNamesTheParent) {
  const auto intact = make_base().expected_disk();
  TestImage base = make_base();
  base.set_payload(0, format::PayloadState::kFullyPresent, 1024 * kMiB);  // past its end
  TestImage child({.block_size = 1 * kMiB, .virtual_size = 4 * kMiB, .has_parent = true});
  auto engine = child.open_ok();
  ASSERT_NE(engine, nullptr);
  auto parent = base.open_ok();
  ASSERT_NE(parent, nullptr);
  parent->set_source_path("/images/base.vhdx");
  engine->set_parent(std::move(parent));
  std::vector<std::uint8_t> buf(4096);
  auto r = engine->read(0, buf);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(r.error().message().rfind("parent image '/images/base.vhdx': ", 0), 0u)
      << r.error().message();
  // Block 1 of the base is fine and still reads.
  EXPECT_EQ(read_range(*engine, kMiB, 4096),
            std::vector<std::uint8_t>(intact.begin() + kMiB, intact.begin() + kMiB + 4096));
}

TEST(EngineChain, WithoutItsParentAChildRefusesReadsThatNeedIt) {
  Chain chain;
  const auto want = chain.expected();
  auto engine = chain.child.open_ok();
  ASSERT_NE(engine, nullptr);
  std::vector<std::uint8_t> buf(4096);
  auto r = engine->read(0, buf);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(r.error().message().find("in the parent image, which is not open"), std::string::npos);
  // Its own block reads; block status reports the parent's ranges as unallocated, depth 0.
  EXPECT_EQ(read_range(*engine, kMiB, 16),
            std::vector<std::uint8_t>(want.begin() + kMiB, want.begin() + kMiB + 16));
  auto extents = engine->block_status(0, kMiB);
  ASSERT_TRUE(extents);
  ASSERT_EQ(extents->size(), 1u);
  EXPECT_EQ((*extents)[0].kind, ExtentKind::kUnallocated);
  EXPECT_EQ((*extents)[0].depth, 0u);
}

}  // namespace
}  // namespace vhdx::image::testing
