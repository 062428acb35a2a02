#include "log/replay.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "log/sequence.h"
#include "log/test_util.h"

namespace vhdx::log {
namespace {

using namespace testing;  // NOLINT: test helpers

// The bytes of `file` after applying `entries` by the simplest possible model of §9's replay.
std::vector<std::uint8_t> model_replay(std::vector<std::uint8_t> bytes,
                                       const std::vector<EntrySpec>& entries) {
  for (const EntrySpec& e : entries) {
    for (const format::LogUpdate& u : e.updates) {
      const std::uint64_t length = u.kind == format::LogUpdate::Kind::kData ? 4096 : u.zero_length;
      if (bytes.size() < u.file_offset + length) bytes.resize(u.file_offset + length, 0);
      if (u.kind == format::LogUpdate::Kind::kData)
        std::copy(u.data.begin(), u.data.end(), bytes.begin() + u.file_offset);
      else
        std::fill_n(bytes.begin() + u.file_offset, length, 0);
    }
  }
  if (bytes.size() < entries.back().last) bytes.resize(entries.back().last, 0);
  return bytes;
}

void put_entries(MemFile& file, const std::vector<EntrySpec>& entries) {
  std::uint64_t at = 0;
  for (const EntrySpec& e : entries) {
    auto bytes = make_entry(e);
    put_ring(file, at, bytes);
    at += bytes.size();
  }
}

LogSequence find(MemFile& file) {
  auto r = find_active_sequence(file, kLogOffset, kLogLength, kGuid);
  EXPECT_TRUE(r) << describe(r);
  EXPECT_TRUE(r && r->has_value());
  return r && r->has_value() ? std::move(**r) : LogSequence{};
}

// A sequence exercising every ordering rule: a zero range over an earlier sector, a sector over
// an earlier zero range, updates past the end of the file, zero ranges past it, a LastFileOffset
// past them all.
std::vector<EntrySpec> mixed_entries() {
  const std::uint64_t b = 2 * kMiB;
  return {
      {.sequence = 60,
       .tail = 0,
       .updates = {data_update(b, 1), data_update(b + 4096, 2), data_update(b + 8192, 3),
                   zero_update(b + 4096, 4096)},  // zeroes the sector just written
       .flushed = 4 * kMiB,
       .last = 4 * kMiB},
      {.sequence = 61,
       .tail = 0,
       .updates = {zero_update(b + 64 * 1024, 64 * 1024),
                   data_update(b + 68 * 1024, 4),     // inside the zero range: wins
                   data_update(5 * kMiB + 8192, 5),   // past the end of the 4 MiB file
                   zero_update(5 * kMiB, 64 * 1024),  // past the end, over the sector above
                   data_update(5 * kMiB + 16384, 6),  // after that zero range
                   zero_update(6 * kMiB, 4096)},      // past the end, nothing written there
       .flushed = 4 * kMiB,
       .last = 7 * kMiB},
      {.sequence = 62,
       .tail = 0,
       .updates = {data_update(b + 8192, 7)},
       .flushed = 4 * kMiB,
       .last = 7 * kMiB},
  };
}

TEST(PlanReplay, TargetSizeIsTheLargestOfFileLastAndUpdateEnds) {
  MemFile file = make_image();
  put_entries(file, {{.sequence = 1,
                      .tail = 0,
                      .updates = {data_update(9 * kMiB, 1), zero_update(10 * kMiB, 8192)},
                      .flushed = 4 * kMiB,
                      .last = 8 * kMiB}});
  LogSequence seq = find(file);
  auto plan = plan_replay(seq, 4 * kMiB);
  ASSERT_TRUE(plan) << describe(plan);
  EXPECT_EQ(plan->file_size, 4 * kMiB);
  EXPECT_EQ(plan->target_size, 10 * kMiB + 8192);
  // A larger file stays as large.
  plan = plan_replay(seq, 20 * kMiB);
  ASSERT_TRUE(plan) << describe(plan);
  EXPECT_EQ(plan->target_size, 20 * kMiB);
}

TEST(PlanReplay, TruncatedFileIsCorrupt) {
  MemFile file = make_image();
  put_entries(file, {{.sequence = 1, .tail = 0, .flushed = 6 * kMiB, .last = 6 * kMiB}});
  LogSequence seq = find(file);
  EXPECT_LOG_FAILS(plan_replay(seq, 4 * kMiB), kCorrupt,
                   "log: file is shorter (4194304) than the log's flushed file offset (6291456)");
  EXPECT_LOG_FAILS(replay_in_place(file, seq), kCorrupt, "file is shorter (4194304)");
  EXPECT_LOG_FAILS(OverlayFile::create(std::make_unique<MemFile>(file.bytes()), seq), kCorrupt,
                   "file is shorter (4194304)");
}

TEST(PlanReplay, RefusesTargetsInTheHeadersOrTheLog) {
  struct Case {
    format::LogUpdate update;
    std::string phrase;
  };
  const std::vector<Case> cases = {
      {data_update(0, 1),
       "log: entry seq 7: data sector at file offset 0x0 overlaps the file "
       "identifier and headers (first 192 KiB)"},
      {data_update(128 * 1024, 1),
       "data sector at file offset 0x20000 overlaps the file identifier"},
      {zero_update(188 * 1024, 8192),
       "zero range at file offset 0x2f000 length 0x2000 overlaps the file identifier"},
      {data_update(kLogOffset + 8192, 1),
       "entry seq 7: data sector at file offset 0x102000 overlaps the log (file offset 0x100000 "
       "length 0x100000)"},
      {zero_update(kLogOffset - 4096, 8192),
       "zero range at file offset 0xff000 length 0x2000 overlaps the log"},
      {zero_update(3 * kMiB, std::uint64_t{1} << 50), "ends past 128 TiB, beyond any VHDX file"},
      {data_update(std::uint64_t{1} << 47, 1),
       "data sector at file offset 0x800000000000 ends past 128 TiB"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.phrase);
    MemFile file = make_image();
    put_entries(file, {{.sequence = 7, .tail = 0, .updates = {c.update}}});
    LogSequence seq = find(file);
    EXPECT_LOG_FAILS(plan_replay(seq, 4 * kMiB), kCorrupt, c.phrase);
    // Nothing is written when the plan fails.
    const auto before = file.bytes();
    EXPECT_LOG_FAILS(replay_in_place(file, seq), kCorrupt, c.phrase);
    EXPECT_TRUE(file.bytes() == before);
  }
  // Region tables (192 KiB on) are legitimate targets; so are bytes just past the log.
  MemFile file = make_image();
  put_entries(file, {{.sequence = 7,
                      .tail = 0,
                      .updates = {data_update(192 * 1024, 1), data_update(256 * 1024, 2),
                                  zero_update(kLogOffset + kLogLength, 4096)}}});
  auto plan = plan_replay(find(file), 4 * kMiB);
  EXPECT_TRUE(plan) << describe(plan);
}

TEST(PlanReplay, LastFileOffsetPastTheLimitIsCorrupt) {
  MemFile file = make_image();
  put_entries(file, {{.sequence = 8, .tail = 0, .last = std::uint64_t{1} << 50}});
  EXPECT_LOG_FAILS(plan_replay(find(file), 4 * kMiB), kCorrupt,
                   "log: entry seq 8: last file offset 0x4000000000000 is past 128 TiB");
}

TEST(Replay, InPlaceAndOverlayMatchTheModel) {
  const auto entries = mixed_entries();
  MemFile file = make_image();
  put_entries(file, entries);
  const std::vector<std::uint8_t> original = file.bytes();
  const std::vector<std::uint8_t> expected = model_replay(original, entries);
  ASSERT_EQ(expected.size(), 7 * kMiB);
  // Spot checks of the model itself, so the comparison below means something.
  EXPECT_EQ(expected[2 * kMiB + 4096 + 5], 0);                      // zeroed after writing
  EXPECT_EQ(expected[2 * kMiB + 8192], data_update(0, 7).data[0]);  // later sector wins
  EXPECT_EQ(expected[2 * kMiB + 68 * 1024 + 9], data_update(0, 4).data[9]);
  EXPECT_EQ(expected[2 * kMiB + 64 * 1024 + 9], 0);
  EXPECT_EQ(expected[5 * kMiB + 8192 + 3], 0);  // zero over sector
  EXPECT_EQ(expected[5 * kMiB + 16384 + 3], data_update(0, 6).data[3]);
  EXPECT_EQ(expected[2 * kMiB - 1], original[2 * kMiB - 1]);  // untouched

  LogSequence seq = find(file);
  ASSERT_EQ(seq.entries.size(), 3u);
  ASSERT_EQ(seq.updates.size(), 11u);

  // Overlay over a read-only copy of the original.
  auto base = std::make_unique<MemFile>(original, /*writable=*/false);
  MemFile* base_ptr = base.get();
  auto overlay = OverlayFile::create(std::move(base), seq);
  ASSERT_TRUE(overlay) << describe(overlay);
  OverlayFile& view = **overlay;
  auto size = view.size();
  ASSERT_TRUE(size);
  EXPECT_EQ(*size, expected.size());
  EXPECT_FALSE(view.writable());
  EXPECT_EQ(view.name(), "<memory>");
  std::vector<std::uint8_t> whole(expected.size());
  ASSERT_TRUE(view.read_at(0, whole));
  EXPECT_TRUE(whole == expected);
  // Unaligned reads of every size straddling sectors, zero ranges, the base's end and beyond.
  std::uint32_t x = 99;
  for (int i = 0; i < 2000; ++i) {
    x = x * 1103515245u + 12345u;
    const std::uint64_t at = (x >> 3) % expected.size();
    x = x * 1103515245u + 12345u;
    const std::uint64_t len = std::min<std::uint64_t>((x >> 5) % 300000, expected.size() - at);
    std::vector<std::uint8_t> part(len);
    ASSERT_TRUE(view.read_at(at, part)) << at << "+" << len;
    ASSERT_TRUE(std::equal(part.begin(), part.end(), expected.begin() + at)) << at << "+" << len;
  }
  EXPECT_TRUE(base_ptr->bytes() == original);  // the base was never touched

  // In place on a writable copy.
  MemFile target(original);
  auto replayed = replay_in_place(target, seq);
  ASSERT_TRUE(replayed) << describe(replayed);
  EXPECT_TRUE(target.bytes() == expected);
}

TEST(Replay, IsIdempotent) {
  const auto entries = mixed_entries();
  MemFile file = make_image();
  put_entries(file, entries);
  LogSequence seq = find(file);
  ASSERT_TRUE(replay_in_place(file, seq));
  const std::vector<std::uint8_t> once = file.bytes();
  // The log is still there (clearing LogGuid is the header protocol's job): scan it again and
  // replay again.
  LogSequence again = find(file);
  ASSERT_EQ(again.updates.size(), seq.updates.size());
  ASSERT_TRUE(replay_in_place(file, again));
  EXPECT_TRUE(file.bytes() == once);
  // An overlay over the replayed file reads the same bytes too.
  auto overlay = OverlayFile::create(std::make_unique<MemFile>(once, false), again);
  ASSERT_TRUE(overlay) << describe(overlay);
  std::vector<std::uint8_t> whole(once.size());
  ASSERT_TRUE((*overlay)->read_at(0, whole));
  EXPECT_TRUE(whole == once);
}

TEST(Replay, NeverShrinksAndExtendsToLastFileOffset) {
  MemFile file = make_image(12 * kMiB);
  put_entries(file, {{.sequence = 1,
                      .tail = 0,
                      .updates = {data_update(2 * kMiB, 1)},
                      .flushed = 4 * kMiB,
                      .last = 4 * kMiB}});
  LogSequence seq = find(file);
  ASSERT_TRUE(replay_in_place(file, seq));
  EXPECT_EQ(file.bytes().size(), 12 * kMiB);

  MemFile small = make_image(4 * kMiB);
  put_entries(small, {{.sequence = 1, .tail = 0, .flushed = 4 * kMiB, .last = 9 * kMiB}});
  ASSERT_TRUE(replay_in_place(small, find(small)));
  ASSERT_EQ(small.bytes().size(), 9 * kMiB);
  EXPECT_TRUE(std::all_of(small.bytes().begin() + 4 * kMiB, small.bytes().end(),
                          [](std::uint8_t b) { return b == 0; }));
}

TEST(Replay, ReadOnlyFilesAreRefused) {
  MemFile file = make_image();
  put_entries(file, {{.sequence = 1, .tail = 0, .updates = {data_update(2 * kMiB, 1)}}});
  LogSequence seq = find(file);
  MemFile read_only(file.bytes(), /*writable=*/false);
  EXPECT_LOG_FAILS(replay_in_place(read_only, seq), kReadOnly,
                   "log: cannot replay in place: <memory> is open read-only");

  auto overlay = OverlayFile::create(std::make_unique<MemFile>(file.bytes()), seq);
  ASSERT_TRUE(overlay) << describe(overlay);
  OverlayFile& view = **overlay;
  const std::uint8_t byte = 1;
  EXPECT_LOG_FAILS(view.write_at(0, std::span(&byte, 1)), kReadOnly,
                   "<memory> is read-only (its log is replayed in memory only)");
  EXPECT_LOG_FAILS(view.truncate(0), kReadOnly, "read-only");
  EXPECT_LOG_FAILS(view.punch_hole(0, 4096), kReadOnly, "read-only");
  EXPECT_TRUE(view.flush());
  // Past the end: the File contract's error.
  std::vector<std::uint8_t> buf(8);
  EXPECT_LOG_FAILS(view.read_at(4 * kMiB - 4, buf), kIo,
                   "unexpected end of file at offset 4194300");
  EXPECT_LOG_FAILS(view.read_at(UINT64_MAX - 2, buf), kIo, "unexpected end of file");
  EXPECT_TRUE(view.read_at(4 * kMiB - 8, buf));
  std::vector<std::uint8_t> none;
  EXPECT_TRUE(view.read_at(4 * kMiB, none));
}

TEST(ReplayOverlay, MergesZeroRangesAndKeepsSectorsBounded) {
  MemFile file = make_image(8 * kMiB);
  const std::uint64_t b = 4 * kMiB;
  put_entries(file, {{.sequence = 1,
                      .tail = 0,
                      .updates = {zero_update(b, 8192), zero_update(b + 8192, 4096),
                                  zero_update(b + 32768, 4096), data_update(b + 40960, 1),
                                  data_update(b + 40960, 2), zero_update(b + 4096, 32768),
                                  data_update(b + 4096, 3)},
                      .flushed = 8 * kMiB,
                      .last = 8 * kMiB}});
  LogSequence seq = find(file);
  auto overlay = ReplayOverlay::build(seq, file.bytes().size());
  ASSERT_TRUE(overlay) << describe(overlay);
  // [b, b+36K) is one merged range; the sector at b+40K was written twice and is held once.
  EXPECT_EQ(overlay->zero_range_count(), 1u);
  EXPECT_EQ(overlay->sector_count(), 2u);
  EXPECT_EQ(overlay->size(), 8 * kMiB);
  EXPECT_EQ(overlay->base_size(), 8 * kMiB);
  std::vector<std::uint8_t> got(48 * 1024);
  ASSERT_TRUE(overlay->read_at(file, b, got));
  auto s3 = data_update(0, 3).data;
  auto s2 = data_update(0, 2).data;
  for (std::size_t i = 0; i < got.size(); ++i) {
    std::uint8_t want = 0;
    if (i >= 4096 && i < 8192)
      want = s3[i - 4096];
    else if (i >= 36864 && i < 40960)
      want = file.bytes()[b + i];
    else if (i >= 40960 && i < 45056)
      want = s2[i - 40960];
    else if (i >= 45056)
      want = file.bytes()[b + i];
    ASSERT_EQ(got[i], want) << "byte " << i;
  }
}

}  // namespace
}  // namespace vhdx::log
