#include "log/sequence.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "log/test_util.h"

namespace vhdx::log {
namespace {

using namespace testing;  // NOLINT: test helpers

Result<std::optional<LogSequence>> scan(MemFile& file, const Guid& guid = kGuid,
                                        ScanStats* stats = nullptr,
                                        std::uint32_t log_length = kLogLength) {
  return find_active_sequence(file, kLogOffset, log_length, guid, stats);
}

// The sequence numbers of the entries, tail to head.
std::vector<std::uint64_t> sequence_numbers(const LogSequence& seq) {
  std::vector<std::uint64_t> out;
  for (const auto& e : seq.entries) out.push_back(e.header.sequence_number);
  return out;
}

std::vector<std::uint64_t> entry_offsets(const LogSequence& seq) {
  std::vector<std::uint64_t> out;
  for (const auto& e : seq.entries) out.push_back(e.log_offset);
  return out;
}

void expect_data(const LogSequence& seq, std::size_t index, std::uint64_t file_offset,
                 std::uint8_t seed) {
  ASSERT_LT(index, seq.updates.size());
  const ReplayUpdate& u = seq.updates[index];
  ASSERT_FALSE(u.is_zero());
  EXPECT_EQ(u.file_offset, file_offset);
  auto expected = data_update(file_offset, seed).data;
  auto got = seq.data(u);
  EXPECT_TRUE(std::equal(got.begin(), got.end(), expected.begin())) << "update " << index;
}

TEST(FindActiveSequence, SingleEntry) {
  MemFile file = make_image();
  auto entry = make_entry({.sequence = 5,
                           .tail = 0,
                           .updates = {data_update(2 * kMiB, 0x11)},
                           .flushed = 3 * kMiB,
                           .last = 5 * kMiB});
  ASSERT_EQ(entry.size(), 8192u);
  put_ring(file, 0, entry);
  ScanStats stats;
  auto r = scan(file, kGuid, &stats);
  ASSERT_TRUE(r) << describe(r);
  ASSERT_TRUE(r->has_value());
  const LogSequence& seq = **r;
  EXPECT_EQ(seq.log_guid, kGuid);
  EXPECT_EQ(seq.log_offset, kLogOffset);
  EXPECT_EQ(seq.log_length, kLogLength);
  EXPECT_EQ(sequence_numbers(seq), std::vector<std::uint64_t>{5});
  EXPECT_EQ(seq.head_sequence(), 5u);
  EXPECT_EQ(seq.tail_offset(), 0u);
  EXPECT_EQ(seq.head_offset(), 0u);
  EXPECT_EQ(seq.flushed_file_offset(), 3 * kMiB);
  EXPECT_EQ(seq.last_file_offset(), 5 * kMiB);
  EXPECT_EQ(seq.head().header.entry_length, 8192u);
  ASSERT_EQ(seq.updates.size(), 1u);
  EXPECT_EQ(seq.updates[0].sequence_number, 5u);
  EXPECT_EQ(seq.updates[0].length(), 4096u);
  expect_data(seq, 0, 2 * kMiB, 0x11);
  EXPECT_EQ(stats.valid_entries, 1u);
  EXPECT_EQ(stats.bytes_checksummed, 8192u);
  EXPECT_EQ(stats.headers_checked, kLogLength / 4096 - 1);  // the data sector is skipped over
}

TEST(FindActiveSequence, ThreeEntriesInOrder) {
  MemFile file = make_image();
  std::uint64_t at = 0;
  for (std::uint64_t i = 0; i < 3; ++i) {
    std::vector<format::LogUpdate> updates;
    for (std::uint64_t k = 0; k <= i; ++k)
      updates.push_back(
          data_update(2 * kMiB + (i * 4 + k) * 4096, static_cast<std::uint8_t>(i * 16 + k)));
    auto entry = make_entry({.sequence = 10 + i, .tail = 0, .updates = updates});
    put_ring(file, at, entry);
    at += entry.size();
  }
  auto r = scan(file);
  ASSERT_TRUE(r) << describe(r);
  ASSERT_TRUE(r->has_value());
  const LogSequence& seq = **r;
  EXPECT_EQ(sequence_numbers(seq), (std::vector<std::uint64_t>{10, 11, 12}));
  EXPECT_EQ(entry_offsets(seq), (std::vector<std::uint64_t>{0, 8192, 8192 + 12288}));
  EXPECT_EQ(seq.head_offset(), 8192u + 12288u);
  ASSERT_EQ(seq.updates.size(), 6u);
  std::size_t n = 0;
  for (std::uint64_t i = 0; i < 3; ++i)
    for (std::uint64_t k = 0; k <= i; ++k) {
      EXPECT_EQ(seq.updates[n].sequence_number, 10 + i);
      expect_data(seq, n++, 2 * kMiB + (i * 4 + k) * 4096, static_cast<std::uint8_t>(i * 16 + k));
    }
}

TEST(FindActiveSequence, TailDropsOlderEntriesOfTheChain) {
  // As Windows leaves its log: the chain holds entries already in place before the head's tail.
  MemFile file = make_image();
  auto a = make_entry({.sequence = 40, .tail = 0});
  auto b = make_entry({.sequence = 41, .tail = 4096, .updates = {data_update(2 * kMiB, 1)}});
  auto c = make_entry({.sequence = 42, .tail = 4096, .updates = {data_update(3 * kMiB, 2)}});
  put_ring(file, 0, a);
  put_ring(file, 4096, b);
  put_ring(file, 4096 + 8192, c);
  auto r = scan(file);
  ASSERT_TRUE(r) << describe(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(sequence_numbers(**r), (std::vector<std::uint64_t>{41, 42}));
  EXPECT_EQ((*r)->tail_offset(), 4096u);
  EXPECT_EQ((*r)->head_offset(), 12288u);
  ASSERT_EQ((*r)->updates.size(), 2u);
  expect_data(**r, 0, 2 * kMiB, 1);
  expect_data(**r, 1, 3 * kMiB, 2);
}

TEST(FindActiveSequence, EntryWrapsTheRingEnd) {
  MemFile file = make_image();
  // Three sectors (descriptor + 2 data) starting one sector before the end: two land at 0, 4096.
  auto wrapped =
      make_entry({.sequence = 7,
                  .tail = kLogLength - 4096,
                  .updates = {data_update(2 * kMiB, 0x21), data_update(2 * kMiB + 4096, 0x22)}});
  ASSERT_EQ(wrapped.size(), 12288u);
  put_ring(file, kLogLength - 4096, wrapped);
  auto next = make_entry(
      {.sequence = 8, .tail = kLogLength - 4096, .updates = {data_update(2 * kMiB + 4096, 0x23)}});
  put_ring(file, 8192, next);
  auto r = scan(file);
  ASSERT_TRUE(r) << describe(r);
  ASSERT_TRUE(r->has_value());
  const LogSequence& seq = **r;
  EXPECT_EQ(sequence_numbers(seq), (std::vector<std::uint64_t>{7, 8}));
  EXPECT_EQ(seq.tail_offset(), kLogLength - 4096);
  EXPECT_EQ(seq.head_offset(), 8192u);
  ASSERT_EQ(seq.updates.size(), 3u);
  expect_data(seq, 0, 2 * kMiB, 0x21);
  expect_data(seq, 1, 2 * kMiB + 4096, 0x22);
  expect_data(seq, 2, 2 * kMiB + 4096, 0x23);
}

TEST(FindActiveSequence, WrappedEntryAloneIsFound) {
  MemFile file = make_image();
  auto wrapped = make_entry(
      {.sequence = 3,
       .tail = kLogLength - 8192,
       .updates = {data_update(2 * kMiB, 1), data_update(3 * kMiB, 2), data_update(4 * kMiB, 3)}});
  put_ring(file, kLogLength - 8192, wrapped);  // 4 sectors: 2 at the end, 2 at the start
  auto r = scan(file);
  ASSERT_TRUE(r) << describe(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->head_offset(), kLogLength - 8192);
  ASSERT_EQ((*r)->updates.size(), 3u);
  expect_data(**r, 2, 4 * kMiB, 3);
}

TEST(FindActiveSequence, HigherHeadSequenceWins) {
  for (bool newer_first : {false, true}) {
    SCOPED_TRACE(newer_first ? "newer at 0" : "older at 0");
    MemFile file = make_image();
    const std::uint32_t old_at = newer_first ? 512 * 1024 : 0;
    const std::uint32_t new_at = newer_first ? 0 : 512 * 1024;
    auto o1 = make_entry({.sequence = 100, .tail = old_at, .updates = {data_update(2 * kMiB, 1)}});
    auto o2 = make_entry({.sequence = 101, .tail = old_at, .updates = {data_update(2 * kMiB, 2)}});
    put_ring(file, old_at, o1);
    put_ring(file, old_at + o1.size(), o2);
    auto n1 = make_entry({.sequence = 200, .tail = new_at, .updates = {data_update(3 * kMiB, 3)}});
    put_ring(file, new_at, n1);
    auto r = scan(file);
    ASSERT_TRUE(r) << describe(r);
    ASSERT_TRUE(r->has_value());
    EXPECT_EQ(sequence_numbers(**r), std::vector<std::uint64_t>{200});
    EXPECT_EQ((*r)->head_offset(), new_at);
    expect_data(**r, 0, 3 * kMiB, 3);
  }
}

TEST(FindActiveSequence, TornHeadLeavesThePreviousSequence) {
  MemFile file = make_image();
  auto a = make_entry({.sequence = 1, .tail = 0, .updates = {data_update(2 * kMiB, 1)}});
  auto b = make_entry({.sequence = 2, .tail = 0, .updates = {data_update(2 * kMiB, 2)}});
  auto c = make_entry({.sequence = 3, .tail = 0, .updates = {data_update(2 * kMiB, 3)}});
  c[4096 + 100] ^= 0xFF;  // a data byte of the head: the CRC no longer matches
  put_ring(file, 0, a);
  put_ring(file, 8192, b);
  put_ring(file, 16384, c);
  auto r = scan(file);
  ASSERT_TRUE(r) << describe(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(sequence_numbers(**r), (std::vector<std::uint64_t>{1, 2}));
  expect_data(**r, 1, 2 * kMiB, 2);
}

TEST(FindActiveSequence, OtherGuidIsNeverPartOfASequence) {
  MemFile file = make_image();
  auto stale = make_entry(
      {.sequence = 50, .tail = 0, .guid = kOtherGuid, .updates = {data_update(2 * kMiB, 9)}});
  auto live = make_entry({.sequence = 51, .tail = 0, .updates = {data_update(3 * kMiB, 8)}});
  put_ring(file, 0, stale);
  put_ring(file, 8192, live);
  // Under the live GUID the stale entry breaks the chain and 51's tail (0) is not inside it.
  auto r = scan(file);
  ASSERT_TRUE(r) << describe(r);
  EXPECT_FALSE(r->has_value());
  // A live entry whose tail is itself is found, and the stale one is left out.
  auto live2 = make_entry({.sequence = 51, .tail = 8192, .updates = {data_update(3 * kMiB, 8)}});
  put_ring(file, 8192, live2);
  r = scan(file);
  ASSERT_TRUE(r) << describe(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(sequence_numbers(**r), std::vector<std::uint64_t>{51});
  // Under the stale GUID only the stale entry is seen.
  r = scan(file, kOtherGuid);
  ASSERT_TRUE(r) << describe(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(sequence_numbers(**r), std::vector<std::uint64_t>{50});
  expect_data(**r, 0, 2 * kMiB, 9);
}

TEST(FindActiveSequence, ZeroGuidFindsNothing) {
  MemFile file = make_image();
  // Even an entry carrying the zero GUID: a zero header LogGuid means the log is empty.
  put_ring(file, 0, make_entry({.sequence = 1, .tail = 0, .guid = Guid()}));
  auto r = scan(file, Guid());
  ASSERT_TRUE(r) << describe(r);
  EXPECT_FALSE(r->has_value());
}

TEST(FindActiveSequence, HeadTailOutsideTheSequenceIsInvalid) {
  MemFile file = make_image();
  // Tail names an offset where no entry of the chain starts.
  put_ring(file, 0,
           make_entry({.sequence = 9, .tail = 65536, .updates = {data_update(2 * kMiB, 1)}}));
  auto r = scan(file);
  ASSERT_TRUE(r) << describe(r);
  EXPECT_FALSE(r->has_value());
  // Tail inside the chain's bytes but not at an entry start (the entry's data sector).
  put_ring(file, 0,
           make_entry({.sequence = 9, .tail = 4096, .updates = {data_update(2 * kMiB, 1)}}));
  r = scan(file);
  ASSERT_TRUE(r) << describe(r);
  EXPECT_FALSE(r->has_value());
  // A higher head with a bad tail does not hide a lower valid sequence.
  put_ring(file, 0, make_entry({.sequence = 3, .tail = 0, .updates = {data_update(2 * kMiB, 4)}}));
  put_ring(file, 128 * 1024, make_entry({.sequence = 90, .tail = 0}));
  r = scan(file);
  ASSERT_TRUE(r) << describe(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(sequence_numbers(**r), std::vector<std::uint64_t>{3});
}

TEST(FindActiveSequence, NoValidSequenceIsNullopt) {
  MemFile empty = make_image();
  auto r = scan(empty);
  ASSERT_TRUE(r) << describe(r);
  EXPECT_FALSE(r->has_value());
  // Random bytes in the whole log.
  MemFile noise = make_image();
  std::uint32_t x = 12345;
  for (std::uint64_t i = 0; i < kLogLength; ++i) {
    x = x * 1103515245u + 12345u;
    noise.bytes()[kLogOffset + i] = static_cast<std::uint8_t>(x >> 16);
  }
  r = scan(noise);
  ASSERT_TRUE(r) << describe(r);
  EXPECT_FALSE(r->has_value());
}

TEST(FindActiveSequence, ZeroDescriptorsAndEmptyEntries) {
  MemFile file = make_image();
  auto a = make_entry({.sequence = 20, .tail = 0});  // no descriptors, as Windows writes
  auto b = make_entry({.sequence = 21,
                       .tail = 0,
                       .updates = {zero_update(2 * kMiB, 3 * 4096), data_update(2 * kMiB + 4096, 5),
                                   zero_update(3 * kMiB, 0)}});
  ASSERT_EQ(a.size(), 4096u);
  ASSERT_EQ(b.size(), 8192u);
  put_ring(file, 0, a);
  put_ring(file, 4096, b);
  auto r = scan(file);
  ASSERT_TRUE(r) << describe(r);
  ASSERT_TRUE(r->has_value());
  const LogSequence& seq = **r;
  EXPECT_EQ(sequence_numbers(seq), (std::vector<std::uint64_t>{20, 21}));
  ASSERT_EQ(seq.updates.size(), 3u);
  EXPECT_TRUE(seq.updates[0].is_zero());
  EXPECT_EQ(seq.updates[0].file_offset, 2 * kMiB);
  EXPECT_EQ(seq.updates[0].zero_length, 3 * 4096u);
  EXPECT_EQ(seq.updates[0].sequence_number, 21u);
  expect_data(seq, 1, 2 * kMiB + 4096, 5);
  EXPECT_TRUE(seq.updates[2].is_zero());
  EXPECT_EQ(seq.updates[2].length(), 0u);
  EXPECT_EQ(seq.sectors.size(), 1u);
}

TEST(FindActiveSequence, ManyDescriptorsSpanSeveralDescriptorSectors) {
  MemFile file = make_image(8 * kMiB);
  std::vector<format::LogUpdate> updates;
  for (std::uint64_t i = 0; i < 200; ++i) updates.push_back(zero_update(2 * kMiB + i * 8192, 4096));
  for (std::uint64_t i = 0; i < 60; ++i)
    updates.push_back(data_update(4 * kMiB + i * 4096, static_cast<std::uint8_t>(i)));
  auto entry = make_entry({.sequence = 77, .tail = kLogLength - 3 * 4096, .updates = updates});
  ASSERT_EQ(entry.size(), (3 + 60) * 4096u);     // ceil(262 / 128) = 3 descriptor sectors
  put_ring(file, kLogLength - 3 * 4096, entry);  // wraps after the descriptor sectors
  auto r = scan(file, kGuid, nullptr);
  ASSERT_TRUE(r) << describe(r);
  ASSERT_TRUE(r->has_value());
  ASSERT_EQ((*r)->updates.size(), 260u);
  EXPECT_EQ((*r)->updates[199].file_offset, 2 * kMiB + 199 * 8192);
  expect_data(**r, 259, 4 * kMiB + 59 * 4096, 59);
}

TEST(FindActiveSequence, DataSectorSequenceMismatchInvalidatesTheEntry) {
  for (std::size_t field : {std::size_t{4}, std::size_t{4092}}) {
    SCOPED_TRACE(field == 4 ? "SequenceHigh" : "SequenceLow");
    MemFile file = make_image();
    auto prev =
        make_entry({.sequence = 0x100000001ull, .tail = 0, .updates = {data_update(2 * kMiB, 1)}});
    auto bad =
        make_entry({.sequence = 0x100000002ull, .tail = 0, .updates = {data_update(2 * kMiB, 2)}});
    store_le32(bad, 4096 + field, load_le32(bad, 4096 + field) + 1);
    fix_checksum(bad);  // only the sequence half is wrong
    put_ring(file, 0, prev);
    put_ring(file, 8192, bad);
    auto r = scan(file);
    ASSERT_TRUE(r) << describe(r);
    ASSERT_TRUE(r->has_value());
    EXPECT_EQ(sequence_numbers(**r), std::vector<std::uint64_t>{0x100000001ull});
  }
}

TEST(FindActiveSequence, DescriptorSequenceMismatchInvalidatesTheEntry) {
  MemFile file = make_image();
  auto bad = make_entry({.sequence = 6, .tail = 0, .updates = {zero_update(2 * kMiB, 4096)}});
  store_le64(bad, 64 + 24, 7);
  fix_checksum(bad);
  put_ring(file, 0, bad);
  auto r = scan(file);
  ASSERT_TRUE(r) << describe(r);
  EXPECT_FALSE(r->has_value());
}

TEST(FindActiveSequence, NonConsecutiveSequenceNumbersSplitTheChain) {
  MemFile file = make_image();
  put_ring(file, 0, make_entry({.sequence = 30, .tail = 0}));
  put_ring(file, 4096, make_entry({.sequence = 32, .tail = 0}));  // 31 missing: 0 not in its chain
  auto r = scan(file);
  ASSERT_TRUE(r) << describe(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(sequence_numbers(**r), std::vector<std::uint64_t>{30});
}

TEST(FindActiveSequence, RejectsBadLogBounds) {
  MemFile file = make_image();
  EXPECT_LOG_FAILS(find_active_sequence(file, kLogOffset, 0, kGuid), kCorrupt,
                   "log: LogLength 0x0 is not a non-zero multiple of 1 MiB");
  EXPECT_LOG_FAILS(find_active_sequence(file, kLogOffset, kLogLength + 4096, kGuid), kCorrupt,
                   "LogLength 0x101000");
  EXPECT_LOG_FAILS(find_active_sequence(file, 0, kLogLength, kGuid), kCorrupt, "LogOffset 0x0");
  EXPECT_LOG_FAILS(find_active_sequence(file, kLogOffset + 4096, kLogLength, kGuid), kCorrupt,
                   "LogOffset 0x101000");
  EXPECT_LOG_FAILS(find_active_sequence(file, 0xFFFFFFFFFFF00000ull, kLogLength, kGuid), kCorrupt,
                   "overflows");
  EXPECT_LOG_FAILS(find_active_sequence(file, 3 * kMiB, 2 * kLogLength, kGuid), kCorrupt,
                   "ends past the end of the file (0x400000)");
  // Bounds are checked even for the zero GUID.
  EXPECT_LOG_FAILS(find_active_sequence(file, kLogOffset, 0, Guid()), kCorrupt, "LogLength");
}

TEST(FindActiveSequence, EntryLongerThanTheLogIsInvalid) {
  MemFile file = make_image();
  auto entry = make_entry({.sequence = 1, .tail = 0});
  store_le32(entry, 8, 2 * kLogLength);
  fix_checksum(entry);
  put_ring(file, 0, entry);
  auto r = scan(file);
  ASSERT_TRUE(r) << describe(r);
  EXPECT_FALSE(r->has_value());
}

TEST(FindActiveSequence, IoErrorsPropagate) {
  // A File whose reads always fail.
  class FailingFile final : public File {
   public:
    Result<void> read_at(std::uint64_t, std::span<std::uint8_t>) override {
      return Error(ErrorCode::kIo, "injected read failure", 5);
    }
    Result<void> write_at(std::uint64_t, std::span<const std::uint8_t>) override { return ok(); }
    Result<std::uint64_t> size() override { return 4 * kMiB; }
    Result<void> truncate(std::uint64_t) override { return ok(); }
    Result<void> flush() override { return ok(); }
    Result<void> punch_hole(std::uint64_t, std::uint64_t) override { return ok(); }
    bool writable() const override { return false; }
    std::string name() const override { return "<failing>"; }
  } file;
  EXPECT_LOG_FAILS(find_active_sequence(file, kLogOffset, kLogLength, kGuid), kIo,
                   "log: reading the log at file offset 0x100000: injected read failure");
}

// Hostile logs: the scan's work stays linear in the log size whatever the log holds.
TEST(FindActiveSequence, HostileHeadersEverywhereAreCheap) {
  const std::uint32_t log_length = 16 * kMiB;
  const std::uint64_t sectors = log_length / 4096;
  MemFile file = make_image(kLogOffset + log_length, log_length);
  // Every sector: a plausible header claiming the whole log, a huge descriptor count that fills
  // every sector with descriptors, and 126 valid zero descriptors after it.
  for (std::uint64_t s = 0; s < sectors; ++s) {
    std::vector<std::uint8_t> sector(4096, 0);
    const char sig[] = "loge";
    std::copy_n(sig, 4, sector.begin());
    store_le32(sector, 8, log_length);
    store_le32(sector, 12, 0);
    store_le64(sector, 16, s + 1);
    store_le32(sector, 24, static_cast<std::uint32_t>(sectors * 128 - 2));
    kGuid.store(std::span<std::uint8_t, 16>(sector.data() + 32, 16));
    for (std::size_t d = 0; d < 126; ++d) {
      const std::size_t at = 64 + d * 32;
      std::copy_n("zero", 4, sector.begin() + at);
      store_le64(sector, at + 16, 2 * kMiB);
      store_le64(sector, at + 24, s + 1);
    }
    put_ring(file, s * 4096, sector, log_length);
  }
  ScanStats stats;
  auto r = scan(file, kGuid, &stats, log_length);
  ASSERT_TRUE(r) << describe(r);
  EXPECT_FALSE(r->has_value());
  EXPECT_EQ(stats.headers_checked, sectors);
  EXPECT_EQ(stats.sectors_examined, sectors);  // each looks one sector ahead and stops
  EXPECT_EQ(stats.bytes_checksummed, 0u);
  EXPECT_EQ(stats.valid_entries, 0u);
}

TEST(FindActiveSequence, HostileChecksumWorkIsBoundedByTheLog) {
  MemFile file = make_image();
  // One entry covering the whole ring with a bad CRC (every sector laid out correctly), then
  // every other offset re-examined: none may start an entry inside it.
  std::vector<format::LogUpdate> updates;
  for (std::uint64_t i = 0; i < 254; ++i)
    updates.push_back(data_update(2 * kMiB + i * 4096, static_cast<std::uint8_t>(i)));
  auto whole = make_entry({.sequence = 1, .tail = 0, .updates = updates});
  ASSERT_EQ(whole.size(), kLogLength);
  whole[4096 * 9 + 17] ^= 1;
  put_ring(file, 0, whole);
  ScanStats stats;
  auto r = scan(file, kGuid, &stats);
  ASSERT_TRUE(r) << describe(r);
  EXPECT_FALSE(r->has_value());
  EXPECT_EQ(stats.bytes_checksummed, kLogLength);
  EXPECT_EQ(stats.headers_checked, kLogLength / 4096);

  // 256 one-sector entries forming one chain round the whole ring, the head's tail at the
  // second: each entry is checksummed once and the chain walked once.
  MemFile chain = make_image();
  for (std::uint64_t s = 0; s < kLogLength / 4096; ++s)
    put_ring(chain, s * 4096, make_entry({.sequence = 1000 + s, .tail = 4096}));
  r = scan(chain, kGuid, &stats);
  ASSERT_TRUE(r) << describe(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->entries.size(), kLogLength / 4096 - 1);
  EXPECT_EQ((*r)->head_sequence(), 1000 + kLogLength / 4096 - 1);
  EXPECT_EQ(stats.bytes_checksummed, kLogLength);
  EXPECT_EQ(stats.headers_checked, kLogLength / 4096);
}

// An entry of `count` zero descriptors, built by hand (encode_log_entry would need 4 KiB of
// memory per descriptor).
std::vector<std::uint8_t> zero_descriptor_entry(std::uint64_t sequence, std::uint32_t tail,
                                                std::uint32_t count) {
  const std::size_t length = format::log_descriptor_sectors(count) * 4096;
  std::vector<std::uint8_t> entry(length, 0);
  std::copy_n("loge", 4, entry.begin());
  store_le32(entry, 8, static_cast<std::uint32_t>(length));
  store_le32(entry, 12, tail);
  store_le64(entry, 16, sequence);
  store_le32(entry, 24, count);
  kGuid.store(std::span<std::uint8_t, 16>(entry.data() + 32, 16));
  for (std::size_t d = 0; d < count; ++d) {
    const std::size_t at = 64 + d * 32;
    std::copy_n("zero", 4, entry.begin() + at);
    store_le64(entry, at + 8, 4096);
    store_le64(entry, at + 16, 4 * kMiB);
    store_le64(entry, at + 24, sequence);
  }
  fix_checksum(entry);
  return entry;
}

TEST(FindActiveSequence, TooManyDescriptorsInAnEntryIsUnsupported) {
  // 32767 zero descriptors need 257 descriptor sectors: a 2 MiB log.
  const std::uint32_t log_length = 2 * kMiB;
  auto entry = zero_descriptor_entry(4, 0, kMaxEntryDescriptors + 1);
  ASSERT_EQ(entry.size(), 257u * 4096);
  MemFile file = make_image(kLogOffset + log_length, log_length);
  put_ring(file, 0, entry, log_length);
  EXPECT_LOG_FAILS(scan(file, kGuid, nullptr, log_length), kUnsupported,
                   "log: entry seq 4 has 32767 descriptors, more than the 32766 supported");
  // One fewer is decoded.
  put_ring(file, 0, zero_descriptor_entry(4, 0, kMaxEntryDescriptors), log_length);
  auto r = scan(file, kGuid, nullptr, log_length);
  ASSERT_TRUE(r) << describe(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->updates.size(), kMaxEntryDescriptors);
}

TEST(FindActiveSequence, TooManyDescriptorsInASequenceIsUnsupported) {
  // Nine full 1 MiB entries of zero descriptors: 294894 descriptors in all.
  const std::uint32_t log_length = 16 * kMiB;
  MemFile file = make_image(kLogOffset + log_length, log_length);
  for (std::uint64_t i = 0; i < 9; ++i) {
    auto entry = zero_descriptor_entry(100 + i, 0, kMaxEntryDescriptors);
    ASSERT_EQ(entry.size(), kMiB);
    put_ring(file, i * kMiB, entry, log_length);
  }
  EXPECT_LOG_FAILS(scan(file, kGuid, nullptr, log_length), kUnsupported,
                   "log: the active sequence has more than 262144 descriptors (at entry seq 108)");
}

}  // namespace
}  // namespace vhdx::log
