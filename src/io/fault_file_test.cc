#include "io/fault_file.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <set>

namespace vhdx {
namespace {

std::vector<std::uint8_t> filled(std::size_t n, std::uint8_t value) {
  return std::vector<std::uint8_t>(n, value);
}

TEST(FaultFile, ReadsSeeEverythingAndFlushMakesItDurable) {
  FaultFile f(filled(2048, 0x11));
  ASSERT_TRUE(f.write_at(100, filled(50, 0x22)));
  ASSERT_TRUE(f.write_at(3000, filled(10, 0x33)));  // extends the file
  EXPECT_EQ(*f.size(), 3010u);
  std::vector<std::uint8_t> got(3010);
  ASSERT_TRUE(f.read_at(0, got));
  EXPECT_EQ(got[99], 0x11);
  EXPECT_EQ(got[100], 0x22);
  EXPECT_EQ(got[2500], 0x00);
  EXPECT_EQ(got[3009], 0x33);
  EXPECT_EQ(f.durable_bytes(), filled(2048, 0x11));
  EXPECT_EQ(f.pending().size(), 2u);
  EXPECT_EQ(f.crash_image(CrashPolicy::kDropAll, 1), filled(2048, 0x11));
  EXPECT_EQ(f.crash_image(CrashPolicy::kApplyAll, 1), f.bytes());
  ASSERT_TRUE(f.flush());
  EXPECT_TRUE(f.pending().empty());
  EXPECT_EQ(f.durable_bytes(), f.bytes());
  EXPECT_EQ(f.crash_image(CrashPolicy::kRandom, 7), f.bytes());
  EXPECT_EQ(f.mutations(), 2u);
  EXPECT_FALSE(f.read_at(3000, got));  // past the end: an error, not a short read
}

TEST(FaultFile, TornWritesKeepWhole512BytePiecesAlignedToTheFile) {
  // A write from 300 to 300 + 2000 has pieces [300,512) [512,1024) [1024,1536) [1536,2048)
  // [2048,2300). Every piece of every torn image is either all old or all new.
  FaultFile f(filled(4096, 0xAA));
  ASSERT_TRUE(f.write_at(300, filled(2000, 0xBB)));
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> pieces = {
      {300, 512}, {512, 1024}, {1024, 1536}, {1536, 2048}, {2048, 2300}};
  std::set<unsigned> seen_masks;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    const auto image = f.crash_image(CrashPolicy::kTorn, seed);
    ASSERT_EQ(image.size(), 4096u);
    unsigned mask = 0;
    for (std::size_t p = 0; p < pieces.size(); ++p) {
      const std::uint8_t first = image[pieces[p].first];
      ASSERT_TRUE(first == 0xAA || first == 0xBB);
      for (std::uint64_t i = pieces[p].first; i < pieces[p].second; ++i)
        ASSERT_EQ(image[i], first) << "piece " << p << " torn inside, seed " << seed;
      if (first == 0xBB) mask |= 1u << p;
    }
    for (std::uint64_t i = 0; i < 300; ++i) ASSERT_EQ(image[i], 0xAA);
    for (std::uint64_t i = 2300; i < 4096; ++i) ASSERT_EQ(image[i], 0xAA);
    seen_masks.insert(mask);
  }
  // 32 subsets exist; 200 seeds reach most, including partial ones.
  EXPECT_GT(seen_masks.size(), 20u);
}

TEST(FaultFile, PartialPieceWritesCarryTheWholePieceAsCached) {
  FaultFile f(filled(1024, 0x10));
  ASSERT_TRUE(f.write_at(0, filled(100, 0x20)));  // pending
  ASSERT_TRUE(f.write_at(500, filled(6, 0x30)));  // same piece: carries the 0x20 bytes too
  ASSERT_EQ(f.pending().size(), 2u);
  EXPECT_EQ(f.pending()[1].offset, 0u);
  EXPECT_EQ(f.pending()[1].length, 512u);
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    const auto image = f.crash_image(CrashPolicy::kRandom, seed);
    // Piece 0 is the durable one, the one after the first write, or the one after both.
    std::vector<std::uint8_t> after_first = filled(1024, 0x10);
    std::fill_n(after_first.begin(), 100, 0x20);
    std::vector<std::uint8_t> after_both = after_first;
    std::fill_n(after_both.begin() + 500, 6, 0x30);
    const std::vector<std::uint8_t> piece(image.begin(), image.begin() + 512);
    EXPECT_TRUE(piece == filled(512, 0x10) ||
                piece ==
                    std::vector<std::uint8_t>(after_first.begin(), after_first.begin() + 512) ||
                piece == std::vector<std::uint8_t>(after_both.begin(), after_both.begin() + 512))
        << "seed " << seed;
  }
}

TEST(FaultFile, RandomPolicyAppliesDropsOrTearsEachOpIndependently) {
  FaultFile f(filled(8192, 0));
  ASSERT_TRUE(f.write_at(0, filled(1024, 1)));
  ASSERT_TRUE(f.write_at(4096, filled(1024, 2)));
  bool first_only = false, second_only = false, both = false, neither = false;
  for (std::uint64_t seed = 0; seed < 300; ++seed) {
    const auto image = f.crash_image(CrashPolicy::kRandom, seed);
    const bool a = image[0] == 1 && image[1023] == 1;
    const bool b = image[4096] == 2 && image[5119] == 2;
    first_only |= a && !b && image[4096] == 0 && image[5119] == 0;
    second_only |= b && !a && image[0] == 0 && image[1023] == 0;
    both |= a && b;
    neither |= image == filled(8192, 0);
  }
  EXPECT_TRUE(first_only && second_only && both && neither);
  // The same seed gives the same image.
  EXPECT_EQ(f.crash_image(CrashPolicy::kRandom, 42), f.crash_image(CrashPolicy::kRandom, 42));
}

TEST(FaultFile, TruncateAndPunchHoleArePendingToo) {
  FaultFile f(filled(4096, 0x55));
  ASSERT_TRUE(f.flush());
  ASSERT_TRUE(f.truncate(1024));
  ASSERT_TRUE(f.truncate(3072));  // regrown: the tail reads as zeros
  ASSERT_TRUE(f.punch_hole(0, 512));
  EXPECT_EQ(*f.size(), 3072u);
  EXPECT_EQ(f.bytes()[0], 0);
  EXPECT_EQ(f.bytes()[600], 0x55);
  EXPECT_EQ(f.bytes()[2000], 0);
  EXPECT_EQ(f.crash_image(CrashPolicy::kDropAll, 0), filled(4096, 0x55));
  EXPECT_EQ(f.crash_image(CrashPolicy::kApplyAll, 0), f.bytes());
  std::set<std::size_t> sizes;
  for (std::uint64_t seed = 0; seed < 100; ++seed)
    sizes.insert(f.crash_image(CrashPolicy::kRandom, seed).size());
  EXPECT_EQ(sizes, (std::set<std::size_t>{1024, 3072, 4096}));
}

TEST(FaultFile, TransientErrorFailsOnlyTheNthCall) {
  FaultFile f;
  f.inject_error(FaultFile::Call::kWrite, 2, FaultFile::ErrorMode::kTransient);
  ASSERT_TRUE(f.write_at(0, filled(10, 1)));
  auto r = f.write_at(10, filled(10, 2));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kIo);
  EXPECT_EQ(r.error().sys_errno(), EIO);
  EXPECT_NE(r.error().message().find("injected transient EIO on write_at #2"), std::string::npos)
      << r.error().message();
  EXPECT_EQ(*f.size(), 10u);  // the failed write changed nothing
  ASSERT_TRUE(f.write_at(10, filled(10, 3)));
  ASSERT_TRUE(f.flush());
  EXPECT_EQ(f.injected_errors(), 1u);
  EXPECT_EQ(f.calls(FaultFile::Call::kWrite), 3u);
  EXPECT_EQ(f.calls(FaultFile::Call::kAny), 4u);
}

TEST(FaultFile, PersistentErrorFailsEveryLaterCall) {
  FaultFile f(filled(512, 0));
  f.inject_error(FaultFile::Call::kFlush, 2, FaultFile::ErrorMode::kPersistent);
  ASSERT_TRUE(f.write_at(0, filled(10, 1)));
  ASSERT_TRUE(f.flush());
  ASSERT_TRUE(f.write_at(0, filled(10, 2)));
  for (int i = 0; i < 3; ++i) {
    auto r = f.flush();
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("persistent EIO on flush"), std::string::npos);
  }
  // The unflushed write stays pending: a crash may lose it.
  EXPECT_EQ(f.durable_bytes()[0], 1);
  EXPECT_EQ(f.bytes()[0], 2);
  ASSERT_TRUE(f.write_at(0, filled(10, 3)));  // other kinds still work
}

TEST(FaultFile, AnyCallCountsAcrossKinds) {
  FaultFile f(filled(4096, 0));
  f.inject_error(FaultFile::Call::kAny, 3, FaultFile::ErrorMode::kTransient);
  ASSERT_TRUE(f.write_at(0, filled(1, 1)));
  ASSERT_TRUE(f.flush());
  auto r = f.punch_hole(0, 512);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("punch_hole #1"), std::string::npos);
  ASSERT_TRUE(f.truncate(100));
}

TEST(FaultFile, NoSpaceModeFailsTheNthCallWithEnospc) {
  FaultFile f;
  f.inject_error(FaultFile::Call::kTruncate, 1, FaultFile::ErrorMode::kNoSpace);
  auto r = f.truncate(8192);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kNoSpace);
  EXPECT_EQ(r.error().sys_errno(), ENOSPC);
  EXPECT_NE(r.error().message().find("injected ENOSPC on truncate #1"), std::string::npos);
  ASSERT_TRUE(f.truncate(8192));
}

TEST(FaultFile, SizeLimitGivesEnospcOnlyWhenGrowing) {
  FaultFile f(filled(1000, 0));
  f.set_size_limit(2000);
  ASSERT_TRUE(f.write_at(0, filled(1000, 1)));    // inside the file
  ASSERT_TRUE(f.write_at(1500, filled(500, 2)));  // grows to the limit exactly
  auto w = f.write_at(1999, filled(2, 3));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code(), ErrorCode::kNoSpace);
  EXPECT_EQ(w.error().sys_errno(), ENOSPC);
  EXPECT_NE(w.error().message().find("injected ENOSPC"), std::string::npos);
  auto t = f.truncate(4096);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code(), ErrorCode::kNoSpace);
  ASSERT_TRUE(f.truncate(100));  // shrinking is always possible
  f.clear_faults();
  ASSERT_TRUE(f.truncate(4096));
}

TEST(FaultFile, BuilderRebuildsEveryEarlierCrashPointFromTheTrace) {
  const auto initial = filled(2048, 9);
  FaultFile f(initial);
  f.record_trace();
  std::vector<std::vector<std::uint8_t>> durable_at;  // durable bytes after each trace op
  std::vector<std::vector<std::uint8_t>> volatile_at;
  auto note = [&] {
    durable_at.push_back(f.durable_bytes());
    volatile_at.push_back(f.bytes());
  };
  ASSERT_TRUE(f.write_at(0, filled(700, 1)));
  note();
  ASSERT_TRUE(f.flush());
  note();
  ASSERT_TRUE(f.write_at(512, filled(1024, 2)));
  note();
  ASSERT_TRUE(f.truncate(4096));
  note();
  ASSERT_TRUE(f.punch_hole(0, 512));
  note();
  ASSERT_TRUE(f.flush());
  note();
  ASSERT_EQ(f.trace().size(), 6u);

  CrashImageBuilder builder(initial, f.trace());
  EXPECT_EQ(builder.build(CrashPolicy::kApplyAll, 0), initial);
  for (std::size_t p = 1; p <= f.trace().size(); ++p) {
    builder.advance(p);
    EXPECT_EQ(builder.durable(), durable_at[p - 1]) << "position " << p;
    EXPECT_EQ(builder.build(CrashPolicy::kApplyAll, 0), volatile_at[p - 1]) << "position " << p;
    EXPECT_EQ(builder.build(CrashPolicy::kDropAll, 0), durable_at[p - 1]) << "position " << p;
    for (std::uint64_t seed = 0; seed < 20; ++seed)
      EXPECT_EQ(builder.build_overlay(CrashPolicy::kRandom, seed)->materialize(),
                builder.build(CrashPolicy::kRandom, seed))
          << "position " << p << " seed " << seed;
  }
}

TEST(CopyOnWriteFile, CopiesOnWriteAndLeavesTheBaseAlone) {
  const auto base = filled(10000, 7);
  CopyOnWriteFile o(base, true);
  ASSERT_TRUE(o.write_at(4000, filled(200, 8)));  // spans two pages
  ASSERT_TRUE(o.punch_hole(9000, 5000));          // clipped at the end
  EXPECT_EQ(o.changed_pages(), 3u);
  auto clone = o.clone(false);
  ASSERT_TRUE(o.truncate(5000));
  ASSERT_TRUE(o.truncate(12000));  // regrown past the base: zeros
  ASSERT_TRUE(o.write_at(13000, filled(10, 4)));

  std::vector<std::uint8_t> expected = base;
  std::fill(expected.begin() + 4000, expected.begin() + 4200, 8);
  std::fill(expected.begin() + 9000, expected.end(), 0);
  EXPECT_EQ(clone->materialize(), expected);
  EXPECT_FALSE(clone->write_at(0, filled(1, 1)));  // read-only clone

  expected.resize(5000);
  expected.resize(13010, 0);
  std::fill(expected.begin() + 13000, expected.end(), 4);
  EXPECT_EQ(o.materialize(), expected);
  std::vector<std::uint8_t> got(13010);
  ASSERT_TRUE(o.read_at(0, got));
  EXPECT_EQ(got, expected);
  EXPECT_EQ(base, filled(10000, 7));
}

TEST(CopyOnWriteFile, PunchedPagesReadAsZerosAndTakeWritesAgain) {
  const auto base = filled(5 * 4096, 3);
  CopyOnWriteFile o(base, true);
  ASSERT_TRUE(o.punch_hole(100, 4 * 4096));  // pages 1-3 whole, 0 and 4 partly
  ASSERT_TRUE(o.write_at(2 * 4096 + 10, filled(5, 9)));
  auto clone = o.clone(true);
  ASSERT_TRUE(clone->truncate(3 * 4096 + 1));
  std::vector<std::uint8_t> expected = base;
  std::fill(expected.begin() + 100, expected.begin() + 100 + 4 * 4096, 0);
  std::fill_n(expected.begin() + 2 * 4096 + 10, 5, 9);
  EXPECT_EQ(o.materialize(), expected);
  std::vector<std::uint8_t> got(expected.size());
  ASSERT_TRUE(o.read_at(0, got));
  EXPECT_EQ(got, expected);
  expected.resize(3 * 4096 + 1);
  EXPECT_EQ(clone->materialize(), expected);
}

TEST(CopyOnWriteFile, ChangedRangesCoverEveryByteThatDiffersFromTheBase) {
  using Ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;
  const auto base = filled(10 * 4096, 5);
  CopyOnWriteFile o(base, true);
  EXPECT_EQ(o.changed_ranges(), Ranges{});
  ASSERT_TRUE(o.write_at(4096 + 10, filled(4096, 6)));  // pages 1 and 2, merged
  ASSERT_TRUE(o.punch_hole(5 * 4096, 4096));            // page 5, punched whole
  ASSERT_TRUE(o.write_at(7 * 4096, filled(1, 5)));      // page 7, same byte as the base
  EXPECT_EQ(o.changed_ranges(),
            (Ranges{{4096, 3 * 4096}, {5 * 4096, 6 * 4096}, {7 * 4096, 8 * 4096}}));

  // Grown past the base: the new bytes count as changed.
  ASSERT_TRUE(o.truncate(10 * 4096 + 100));
  EXPECT_EQ(o.changed_ranges().back(),
            (std::pair<std::uint64_t, std::uint64_t>{10 * 4096, 10 * 4096 + 100}));
  // Cut inside page 7 and regrown: everything from the cut on differs from the base.
  ASSERT_TRUE(o.truncate(7 * 4096 + 50));
  ASSERT_TRUE(o.truncate(9 * 4096));
  EXPECT_EQ(o.changed_ranges(),
            (Ranges{{4096, 3 * 4096}, {5 * 4096, 6 * 4096}, {7 * 4096, 9 * 4096}}));

  // Outside the ranges, every byte reads as the base's.
  const std::vector<std::uint8_t> now = o.materialize();
  const Ranges ranges = o.changed_ranges();
  for (std::uint64_t at = 0; at < now.size(); ++at) {
    const bool inside = std::any_of(ranges.begin(), ranges.end(),
                                    [&](const auto& r) { return r.first <= at && at < r.second; });
    if (!inside) {
      ASSERT_EQ(now[at], base[at]) << "offset " << at;
    }
  }
  EXPECT_EQ(o.clone(false)->changed_ranges(), ranges);
}

TEST(CopyOnWriteFile, ResetDropsEveryChangeAndReusesTheCopies) {
  const auto base = filled(20 * 4096, 1);
  const auto other = filled(3 * 4096 + 7, 2);
  CopyOnWriteFile o(base, true);
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(o.write_at(100, filled(40 * 1024, 9)));  // pages 0-10, in 64 KiB chunks
    ASSERT_TRUE(o.punch_hole(12 * 4096, 2 * 4096));
    ASSERT_TRUE(o.truncate(5 * 4096 + 1));  // frees pages 6-13; page 5 keeps one byte
    ASSERT_TRUE(o.write_at(30 * 4096, filled(3, 8)));
    std::vector<std::uint8_t> expected(30 * 4096 + 3, 0);
    std::copy_n(base.begin(), 100, expected.begin());
    std::fill_n(expected.begin() + 100, 5 * 4096 + 1 - 100, 9);
    std::fill_n(expected.begin() + 30 * 4096, 3, 8);
    EXPECT_EQ(o.materialize(), expected) << "round " << round;
    EXPECT_EQ(o.changed_pages(), 7u);  // pages 0-5 and 30

    o.reset(base, true);
    EXPECT_EQ(o.changed_pages(), 0u);
    EXPECT_EQ(o.materialize(), base);
  }
  ASSERT_TRUE(o.write_at(5, filled(4096, 3)));
  ASSERT_TRUE(o.punch_hole(2 * 4096, 4096));
  CopyOnWriteFile copy(other, true);
  ASSERT_TRUE(copy.write_at(0, filled(9000, 4)));  // replaced by the assign
  copy.assign(o, true);
  EXPECT_EQ(copy.materialize(), o.materialize());
  EXPECT_EQ(copy.changed_ranges(), o.changed_ranges());
  ASSERT_TRUE(copy.write_at(7, filled(1, 6)));  // the copy's pages are its own
  EXPECT_EQ(o.materialize()[7], 3);

  o.reset(other, false);
  EXPECT_EQ(o.materialize(), other);
  EXPECT_EQ(*o.size(), other.size());
  EXPECT_FALSE(o.write_at(0, filled(1, 1)));
}

TEST(BorrowedFile, ForwardsToTheFileItBorrows) {
  FaultFile f;
  {
    BorrowedFile b(f);
    ASSERT_TRUE(b.write_at(0, filled(3, 1)));
    ASSERT_TRUE(b.flush());
    EXPECT_EQ(b.name(), "<fault>");
  }
  EXPECT_EQ(f.durable_bytes(), filled(3, 1));
}

}  // namespace
}  // namespace vhdx
