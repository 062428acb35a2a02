// Tests of LogWriter: what it writes is scanned back with find_active_sequence (the reader) and
// decode_log_entry, including wrapped entries, tail movement and ring reclamation.
#include "log/log_writer.h"

#include <gtest/gtest.h>

#include <set>

#include "log/replay.h"
#include "log/sequence.h"
#include "log/test_util.h"

namespace vhdx::log {
namespace {

using testing::data_update;
using testing::describe;
using testing::kGuid;
using testing::kLogLength;
using testing::kLogOffset;
using testing::kMiB;
using testing::make_image;
using testing::zero_update;

// A File that counts flushes, over a MemFile.
class CountingFile final : public File {
 public:
  explicit CountingFile(MemFile& base) : base_(base) {}
  Result<void> read_at(std::uint64_t o, std::span<std::uint8_t> out) override {
    return base_.read_at(o, out);
  }
  Result<void> write_at(std::uint64_t o, std::span<const std::uint8_t> d) override {
    ++writes;
    return base_.write_at(o, d);
  }
  Result<std::uint64_t> size() override { return base_.size(); }
  Result<void> truncate(std::uint64_t n) override { return base_.truncate(n); }
  Result<void> flush() override {
    ++flushes;
    return base_.flush();
  }
  Result<void> punch_hole(std::uint64_t o, std::uint64_t l) override {
    return base_.punch_hole(o, l);
  }
  bool writable() const override { return true; }
  std::string name() const override { return "<counting>"; }
  int flushes = 0;
  int writes = 0;

 private:
  MemFile& base_;
};

std::unique_ptr<LogWriter> make_writer(File& file, std::uint64_t first_sequence = 1,
                                       std::uint32_t start = 0) {
  auto w =
      LogWriter::create(file, kLogOffset, kLogLength, kGuid, first_sequence, start, *file.size());
  EXPECT_TRUE(w) << describe(w);
  return w ? std::move(*w) : nullptr;
}

LogSequence scan(File& file) {
  auto seq = find_active_sequence(file, kLogOffset, kLogLength, kGuid);
  EXPECT_TRUE(seq) << describe(seq);
  EXPECT_TRUE(seq && seq->has_value());
  return seq && *seq ? **seq : LogSequence{};
}

TEST(LogWriter, CreateRejectsBadArguments) {
  MemFile file = make_image();
  EXPECT_LOG_FAILS(LogWriter::create(file, kLogOffset + 4096, kLogLength, kGuid, 1, 0, 0),
                   kInvalidArgument, "1 MiB-aligned");
  EXPECT_LOG_FAILS(LogWriter::create(file, kLogOffset, kLogLength, Guid{}, 1, 0, 0),
                   kInvalidArgument, "must not be zero");
  EXPECT_LOG_FAILS(LogWriter::create(file, kLogOffset, kLogLength, kGuid, 0, 0, 0),
                   kInvalidArgument, "start above 0");
  EXPECT_LOG_FAILS(LogWriter::create(file, kLogOffset, kLogLength, kGuid, 1, 100, 0),
                   kInvalidArgument, "not a sector");
}

TEST(LogWriter, OneEntryDecodesWithItsFields) {
  MemFile file = make_image(4 * kMiB + 4096);  // not a 1 MiB multiple on purpose
  auto w = make_writer(file, 77, 8192);
  std::vector<format::LogUpdate> updates = {data_update(3 * kMiB, 5),
                                            zero_update(3 * kMiB + 8192, 16384)};
  auto seq = w->append(updates);
  ASSERT_TRUE(seq) << describe(seq);
  EXPECT_EQ(*seq, 77u);
  EXPECT_EQ(w->next_sequence(), 78u);
  EXPECT_EQ(w->write_offset(), 8192u + 2 * 4096);  // one descriptor sector, one data sector
  ASSERT_TRUE(w->flush());

  std::span<const std::uint8_t> ring(file.bytes().data() + kLogOffset + 8192, 2 * 4096);
  auto entry = format::decode_log_entry(ring, kGuid, kLogLength);
  ASSERT_TRUE(entry) << describe(entry);
  EXPECT_EQ(entry->header.sequence_number, 77u);
  EXPECT_EQ(entry->header.tail, 8192u);
  EXPECT_EQ(entry->header.flushed_file_offset, 4 * kMiB);  // rounded down: known durable
  EXPECT_EQ(entry->header.last_file_offset, 5 * kMiB);     // rounded up: covers the file
  ASSERT_EQ(entry->updates.size(), 2u);
  EXPECT_EQ(entry->updates[0].data, updates[0].data);
  EXPECT_EQ(entry->updates[1].zero_length, 16384u);

  LogSequence s = scan(file);
  ASSERT_EQ(s.entries.size(), 1u);
  EXPECT_EQ(s.head_sequence(), 77u);
  EXPECT_EQ(s.tail_offset(), 8192u);
}

TEST(LogWriter, TailStaysOnOldestUnretiredEntry) {
  MemFile file = make_image();
  auto w = make_writer(file);
  ASSERT_TRUE(w->append(std::vector{data_update(2 * kMiB, 1)}));  // seq 1 at 0
  ASSERT_TRUE(w->flush());
  ASSERT_TRUE(w->append(std::vector{data_update(2 * kMiB + 4096, 2)}));  // seq 2 at 8192
  ASSERT_TRUE(w->flush());
  // Neither applied: the sequence holds both.
  LogSequence s = scan(file);
  ASSERT_EQ(s.entries.size(), 2u);
  EXPECT_EQ(s.tail_offset(), 0u);
  EXPECT_EQ(s.updates.size(), 2u);

  // Entry 1 applied and flushed: the next entry's tail is entry 2.
  w->mark_applied(1);
  ASSERT_TRUE(w->flush());
  EXPECT_EQ(w->pending_entries(), 1u);
  ASSERT_TRUE(w->append(std::vector{data_update(2 * kMiB + 8192, 3)}));  // seq 3 at 16384
  ASSERT_TRUE(w->flush());
  s = scan(file);
  ASSERT_EQ(s.entries.size(), 2u);
  EXPECT_EQ(s.entries[0].header.sequence_number, 2u);
  EXPECT_EQ(s.tail_offset(), 8192u);

  // Everything applied and flushed: the next entry is its own tail.
  w->mark_applied(3);
  ASSERT_TRUE(w->flush());
  EXPECT_TRUE(w->idle());
  ASSERT_TRUE(w->append(std::vector<format::LogUpdate>{}));  // seq 4 at 24576
  ASSERT_TRUE(w->flush());
  s = scan(file);
  ASSERT_EQ(s.entries.size(), 1u);
  EXPECT_EQ(s.head_sequence(), 4u);
  EXPECT_EQ(s.tail_offset(), 24576u);
  EXPECT_TRUE(s.updates.empty());
}

TEST(LogWriter, EntryWrapsAroundTheRingEnd) {
  MemFile file = make_image();
  // Start two sectors before the end: a 3-sector entry wraps one sector to the ring start.
  auto w = make_writer(file, 10, kLogLength - 8192);
  std::vector updates = {data_update(2 * kMiB, 9), data_update(2 * kMiB + 4096, 10)};
  ASSERT_TRUE(w->append(updates));
  ASSERT_TRUE(w->flush());
  EXPECT_EQ(w->write_offset(), 4096u);
  LogSequence s = scan(file);
  ASSERT_EQ(s.entries.size(), 1u);
  EXPECT_EQ(s.head_offset(), kLogLength - 8192);
  ASSERT_EQ(s.updates.size(), 2u);
  EXPECT_TRUE(std::equal(s.data(s.updates[1]).begin(), s.data(s.updates[1]).end(),
                         updates[1].data.begin()));

  // Replay puts the bytes in place.
  ASSERT_TRUE(replay_in_place(file, s));
  EXPECT_TRUE(
      std::equal(updates[0].data.begin(), updates[0].data.end(), file.bytes().begin() + 2 * kMiB));
}

TEST(LogWriter, FullLogIsReclaimedWithoutLosingTheActiveSequence) {
  MemFile base = make_image();
  CountingFile file(base);
  auto w = make_writer(file);
  // 40 entries of 16 data sectors (17 sectors each) = 2.7 MiB through a 1 MiB ring. Each is
  // applied right after its flush, as the engine does.
  std::set<std::uint32_t> offsets;
  for (std::uint64_t i = 0; i < 40; ++i) {
    std::vector<format::LogUpdate> updates;
    for (std::uint64_t k = 0; k < 16; ++k)
      updates.push_back(data_update(2 * kMiB + k * 4096, static_cast<std::uint8_t>(i + k)));
    const std::uint32_t at = w->write_offset();
    auto seq = w->append(updates);
    ASSERT_TRUE(seq) << describe(seq);
    ASSERT_TRUE(w->flush());
    ASSERT_LE(w->used_bytes() + 4096, kLogLength);
    offsets.insert(at);

    // After every flush the active sequence is intact and ends with the entry just written.
    LogSequence s = scan(file);
    EXPECT_EQ(s.head_sequence(), *seq);
    EXPECT_EQ(s.head().header.descriptor_count, 16u);
    // Apply in place.
    for (const auto& u : updates) ASSERT_TRUE(file.write_at(u.file_offset, u.data));
    w->mark_applied(*seq);
  }
  // Applied promptly, entries retire on the next flush: the ring never filled up, so no empty
  // reclaim entry was needed.
  EXPECT_EQ(w->next_sequence(), 41u);
  // The ring wrapped (an entry starting near the end).
  EXPECT_TRUE(std::any_of(offsets.begin(), offsets.end(),
                          [](std::uint32_t o) { return o + 17 * 4096 > kLogLength; }));
}

std::vector<format::LogUpdate> sectors(std::uint64_t count, std::uint8_t seed) {
  std::vector<format::LogUpdate> updates;
  for (std::uint64_t k = 0; k < count; ++k)
    updates.push_back(data_update(2 * kMiB + k * 4096, static_cast<std::uint8_t>(seed + k)));
  return updates;
}

TEST(LogWriter, ReclaimWritesAnEmptyEntryThenWraps) {
  MemFile base = make_image();
  CountingFile file(base);
  auto w = make_writer(file);
  // Four 200 KiB entries (49 data sectors each), flushed but not applied: 800 KiB in use.
  for (std::uint8_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(w->append(sectors(49, i)));
    ASSERT_TRUE(w->flush());
  }
  w->mark_applied(4);
  ASSERT_TRUE(w->append(sectors(49, 4)));  // seq 5 at 800 KiB; its tail is still entry 1
  ASSERT_TRUE(w->flush());
  LogSequence s = scan(file);
  // Entry 5 was written before the flush retired entries 1-4, so it names entry 1 as its tail.
  EXPECT_EQ(s.entries.size(), 5u);
  EXPECT_EQ(w->used_bytes(), 1000 * 1024u);
  EXPECT_EQ(s.tail_offset(), 0u);
  w->mark_applied(5);

  // Entry 6 does not fit in the 24 KiB left: flush, empty entry 6 at 1000 KiB (its own tail),
  // flush (retiring it), then entry 7 right after it, its own tail, wrapping past the ring end.
  const int flushes = file.flushes;
  auto seq = w->append(sectors(49, 6));
  ASSERT_TRUE(seq) << describe(seq);
  EXPECT_EQ(*seq, 7u);
  EXPECT_EQ(file.flushes, flushes + 2);
  EXPECT_EQ(w->write_offset(), (1004 + 200) * 1024u - kLogLength);
  ASSERT_TRUE(w->flush());
  s = scan(file);
  ASSERT_EQ(s.entries.size(), 1u);
  EXPECT_EQ(s.head_sequence(), 7u);
  EXPECT_EQ(s.head_offset(), 1004 * 1024u);
  // The empty entry 6 is still in the ring just before it.
  std::span<const std::uint8_t> empty(base.bytes().data() + kLogOffset + 1000 * 1024, 4096);
  auto six = format::decode_log_entry(empty, kGuid, kLogLength);
  ASSERT_TRUE(six) << describe(six);
  EXPECT_EQ(six->header.sequence_number, 6u);
  EXPECT_EQ(six->header.tail, 1000 * 1024u);
  EXPECT_TRUE(six->updates.empty());
  EXPECT_EQ(s.updates.size(), 49u);
}

TEST(LogWriter, FullLogOfUnappliedEntriesIsAnError) {
  MemFile file = make_image();
  auto w = make_writer(file);
  std::vector<format::LogUpdate> updates;
  for (std::uint64_t k = 0; k < 100; ++k) updates.push_back(data_update(2 * kMiB + k * 4096, 1));
  ASSERT_TRUE(w->append(updates));  // 101 sectors
  ASSERT_TRUE(w->append(updates));
  EXPECT_LOG_FAILS(w->append(updates), kInternal, "not yet written in place");
  EXPECT_LOG_FAILS(w->append(updates), kFailed, "earlier log write failed");
}

TEST(LogWriter, OversizedEntryIsRefused) {
  MemFile file = make_image();
  auto w = make_writer(file);
  std::vector<format::LogUpdate> updates(255, data_update(2 * kMiB, 1));
  EXPECT_LOG_FAILS(w->append(updates), kInvalidArgument, "does not fit");
  EXPECT_FALSE(w->failed());
}

TEST(LogWriter, FlushedFileOffsetFollowsFlushes) {
  MemFile file = make_image(4 * kMiB);
  auto w = make_writer(file);
  ASSERT_TRUE(file.write_at(6 * kMiB - 1, std::vector<std::uint8_t>{1}));  // grows to 6 MiB
  ASSERT_TRUE(w->append(std::vector<format::LogUpdate>{}));
  ASSERT_TRUE(w->flush());
  LogSequence s = scan(file);
  EXPECT_EQ(s.flushed_file_offset(), 4 * kMiB);  // the growth was not flushed yet
  EXPECT_EQ(s.last_file_offset(), 6 * kMiB);
  w->mark_applied(1);
  ASSERT_TRUE(w->append(std::vector<format::LogUpdate>{}));
  ASSERT_TRUE(w->flush());
  s = scan(file);
  EXPECT_EQ(s.flushed_file_offset(), 6 * kMiB);
}

}  // namespace
}  // namespace vhdx::log
