#include "format/log_entry.h"

#include <gtest/gtest.h>

#include <vector>

#include "base/crc32c.h"
#include "base/endian.h"
#include "format/constants.h"
#include "format/test_util.h"

namespace vhdx::format {
namespace {

using testing::describe;
using testing::guid;

const Guid kLogGuid = guid("c3f5caec-4c1d-c54e-90d5-48e9bc17ac53");
constexpr std::uint64_t kLogLength = kMiB;
constexpr std::uint64_t kSeq = 0x1122334455667788ull;

LogEntryHeader sample_header() {
  LogEntryHeader h;
  h.tail = 0x3000;
  h.sequence_number = kSeq;
  h.log_guid = kLogGuid;
  h.flushed_file_offset = 9 * kMiB;
  h.last_file_offset = 10 * kMiB;
  return h;
}

LogUpdate zero_update(std::uint64_t offset, std::uint64_t length) {
  LogUpdate u;
  u.kind = LogUpdate::Kind::kZero;
  u.file_offset = offset;
  u.zero_length = length;
  return u;
}

LogUpdate data_update(std::uint64_t offset, std::uint8_t seed) {
  LogUpdate u;
  u.kind = LogUpdate::Kind::kData;
  u.file_offset = offset;
  for (std::size_t i = 0; i < u.data.size(); ++i)
    u.data[i] = static_cast<std::uint8_t>(seed + i * 7 + (i >> 8));
  return u;
}

void reseal(std::vector<std::uint8_t>& bytes) {
  store_le32(bytes, 4, crc32c_with_zeroed_field(bytes, 4));
}

// A valid entry: zero update, then data update (one data sector).
std::vector<std::uint8_t> sample_entry() {
  std::vector<LogUpdate> updates = {zero_update(4 * kMiB, 2 * kMiB), data_update(3 * kMiB, 1)};
  return encode_log_entry(sample_header(), updates);
}

TEST(LogEntry, DescriptorSectorCount) {
  EXPECT_EQ(log_descriptor_sectors(0), 1u);
  EXPECT_EQ(log_descriptor_sectors(1), 1u);
  EXPECT_EQ(log_descriptor_sectors(126), 1u);
  EXPECT_EQ(log_descriptor_sectors(127), 2u);
  EXPECT_EQ(log_descriptor_sectors(254), 2u);
  EXPECT_EQ(log_descriptor_sectors(255), 3u);
  EXPECT_EQ(log_descriptor_sectors(0xFFFFFFFFull), 33554433u);  // (2^32 + 1) / 128, rounded up
}

TEST(LogEntry, GoldenBytes) {
  auto bytes = sample_entry();
  ASSERT_EQ(bytes.size(), 8192u);
  std::vector<std::uint8_t> expected(8192, 0);
  testing::put_ascii(expected, 0, "loge");
  testing::put_bytes(expected, 8, {0x00, 0x20, 0, 0});   // entry length 8 KiB
  testing::put_bytes(expected, 12, {0x00, 0x30, 0, 0});  // tail
  testing::put_bytes(expected, 16, {0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11});
  testing::put_bytes(expected, 24, {2, 0, 0, 0});  // descriptor count; 28..31 reserved
  testing::put_bytes(expected, 32,
                     {0xec, 0xca, 0xf5, 0xc3, 0x1d, 0x4c, 0x4e, 0xc5, 0x90, 0xd5, 0x48, 0xe9, 0xbc,
                      0x17, 0xac, 0x53});
  testing::put_bytes(expected, 48, {0, 0, 0x90, 0, 0, 0, 0, 0});  // flushed 9 MiB
  testing::put_bytes(expected, 56, {0, 0, 0xa0, 0, 0, 0, 0, 0});  // last 10 MiB
  // Zero descriptor at 64: 'zero', reserved, length 2 MiB, offset 4 MiB, sequence.
  testing::put_ascii(expected, 64, "zero");
  testing::put_bytes(expected, 72, {0, 0, 0x20, 0, 0, 0, 0, 0});
  testing::put_bytes(expected, 80, {0, 0, 0x40, 0, 0, 0, 0, 0});
  testing::put_bytes(expected, 88, {0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11});
  // Data descriptor at 96: 'desc', trailing bytes 4092..4095, leading bytes 0..7, offset, seq.
  const LogUpdate d = data_update(3 * kMiB, 1);
  testing::put_ascii(expected, 96, "desc");
  std::copy_n(d.data.begin() + 4092, 4, expected.begin() + 100);
  std::copy_n(d.data.begin(), 8, expected.begin() + 104);
  testing::put_bytes(expected, 112, {0, 0, 0x30, 0, 0, 0, 0, 0});
  testing::put_bytes(expected, 120, {0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11});
  // Data sector at 4096: 'data', sequence high, bytes 8..4091, sequence low.
  testing::put_ascii(expected, 4096, "data");
  testing::put_bytes(expected, 4100, {0x44, 0x33, 0x22, 0x11});
  std::copy_n(d.data.begin() + 8, 4084, expected.begin() + 4104);
  testing::put_bytes(expected, 8188, {0x88, 0x77, 0x66, 0x55});
  testing::put_le(expected, 4, crc32c(expected), 4);
  EXPECT_EQ(bytes, expected);
}

TEST(LogEntry, RoundTripMixedUpdates) {
  std::vector<LogUpdate> updates = {data_update(0x100000, 3), zero_update(0x200000, 0x1000),
                                    data_update(0x7000, 9), zero_update(0, 0)};
  auto bytes = encode_log_entry(sample_header(), updates);
  EXPECT_EQ(bytes.size(), 3u * 4096);
  auto entry = decode_log_entry(bytes, kLogGuid, kLogLength);
  ASSERT_TRUE(entry) << describe(entry);
  EXPECT_EQ(entry->header.checksum, load_le32(bytes, 4));
  EXPECT_EQ(entry->header.entry_length, 3u * 4096);
  EXPECT_EQ(entry->header.tail, 0x3000u);
  EXPECT_EQ(entry->header.sequence_number, kSeq);
  EXPECT_EQ(entry->header.descriptor_count, 4u);
  EXPECT_EQ(entry->header.log_guid, kLogGuid);
  EXPECT_EQ(entry->header.flushed_file_offset, 9 * kMiB);
  EXPECT_EQ(entry->header.last_file_offset, 10 * kMiB);
  ASSERT_EQ(entry->updates.size(), updates.size());
  for (std::size_t i = 0; i < updates.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(entry->updates[i].kind, updates[i].kind);
    EXPECT_EQ(entry->updates[i].file_offset, updates[i].file_offset);
    if (updates[i].kind == LogUpdate::Kind::kZero)
      EXPECT_EQ(entry->updates[i].zero_length, updates[i].zero_length);
    else
      EXPECT_EQ(entry->updates[i].data, updates[i].data);
  }
}

TEST(LogEntry, RoundTripEmptyEntry) {
  auto bytes = encode_log_entry(sample_header(), {});
  ASSERT_EQ(bytes.size(), 4096u);
  auto entry = decode_log_entry(bytes, kLogGuid, kLogLength);
  ASSERT_TRUE(entry) << describe(entry);
  EXPECT_EQ(entry->header.descriptor_count, 0u);
  EXPECT_TRUE(entry->updates.empty());
}

TEST(LogEntry, RoundTripDescriptorsSpanningSectors) {
  // 127 descriptors need a second descriptor sector; descriptor 126 is the first slot of it.
  std::vector<LogUpdate> updates;
  for (std::size_t i = 0; i < 127; ++i)
    updates.push_back(i % 2 == 0 ? data_update(i * 4096, static_cast<std::uint8_t>(i))
                                 : zero_update(i * kMiB, 4096));
  auto bytes = encode_log_entry(sample_header(), updates);
  EXPECT_EQ(bytes.size(), (2u + 64u) * 4096);
  EXPECT_EQ(std::string(bytes.begin() + 4096, bytes.begin() + 4100), "desc");  // descriptor 126
  auto entry = decode_log_entry(bytes, kLogGuid, kLogLength);
  ASSERT_TRUE(entry) << describe(entry);
  ASSERT_EQ(entry->updates.size(), 127u);
  EXPECT_EQ(entry->updates[126].file_offset, 126u * 4096);
  EXPECT_EQ(entry->updates[126].data, updates[126].data);
  EXPECT_EQ(entry->updates[125].zero_length, 4096u);
}

TEST(LogEntry, HeaderDecoderReadsOnlyTheHeader) {
  auto bytes = sample_entry();
  bytes[5000] ^= 1;  // checksum now wrong: the header decoder does not look
  auto h = decode_log_entry_header(std::span(bytes).first(64));
  ASSERT_TRUE(h) << describe(h);
  EXPECT_EQ(h->entry_length, 8192u);
  EXPECT_EQ(h->tail, 0x3000u);
  EXPECT_EQ(h->sequence_number, kSeq);
  EXPECT_EQ(h->descriptor_count, 2u);
  EXPECT_EQ(h->log_guid, kLogGuid);
  EXPECT_EQ(h->flushed_file_offset, 9 * kMiB);
  EXPECT_EQ(h->last_file_offset, 10 * kMiB);
  EXPECT_FAILS(decode_log_entry_header(std::span(bytes).first(63)), kCorrupt,
               "log entry: truncated (63 bytes, need 64)");
  bytes[0] = 'L';
  EXPECT_FAILS(decode_log_entry_header(bytes), kCorrupt,
               "log entry: signature is 'Loge', not 'loge'");
}

TEST(LogEntry, RejectsTruncated) {
  auto bytes = sample_entry();
  EXPECT_FAILS(decode_log_entry(std::span(bytes).first(10), kLogGuid, kLogLength), kCorrupt,
               "log entry: truncated (10 bytes, need 64)");
}

TEST(LogEntry, RejectsBadSignature) {
  auto bytes = sample_entry();
  bytes[3] = 'E';
  reseal(bytes);
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, kLogLength), kCorrupt,
               "log entry: signature is 'logE', not 'loge'");
}

TEST(LogEntry, RejectsLengthNotMultipleOf4KiB) {
  auto bytes = sample_entry();
  store_le32(bytes, 8, 8192 + 512);
  reseal(bytes);
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, kLogLength), kCorrupt,
               "log entry: entry length 0x2200 is not a non-zero multiple of 4 KiB");
  store_le32(bytes, 8, 0);
  reseal(bytes);
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, kLogLength), kCorrupt, "entry length 0x0 is");
}

TEST(LogEntry, RejectsLengthOtherThanBytesGiven) {
  auto bytes = sample_entry();
  EXPECT_FAILS(decode_log_entry(std::span(bytes).first(4096), kLogGuid, kLogLength), kCorrupt,
               "log entry: entry length 0x2000 does not match the 0x1000 bytes given");
}

TEST(LogEntry, RejectsLengthBeyondLog) {
  auto bytes = sample_entry();
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, 4096), kCorrupt,
               "log entry: entry length 0x2000 exceeds the log length 0x1000");
}

TEST(LogEntry, RejectsChecksumMismatch) {
  auto bytes = sample_entry();
  bytes[8191] ^= 0x40;  // last byte of the data sector: the CRC covers the whole entry
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, kLogLength), kCorrupt,
               "log entry: checksum mismatch (stored 0x");
}

TEST(LogEntry, RejectsZeroSequenceNumber) {
  LogEntryHeader h = sample_header();
  h.sequence_number = 0;
  auto bytes = encode_log_entry(h, {});
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, kLogLength), kCorrupt,
               "log entry: sequence number is 0");
}

TEST(LogEntry, RejectsForeignLogGuid) {
  auto bytes = sample_entry();
  EXPECT_FAILS(decode_log_entry(bytes, guid("d8f57516-064a-443d-a3f1-1baaa49589b6"), kLogLength),
               kCorrupt,
               "log entry: log GUID c3f5caec-4c1d-c54e-90d5-48e9bc17ac53 does not match the "
               "header's d8f57516-064a-443d-a3f1-1baaa49589b6");
}

TEST(LogEntry, RejectsMisalignedTail) {
  LogEntryHeader h = sample_header();
  h.tail = 0x3200;
  EXPECT_FAILS(decode_log_entry(encode_log_entry(h, {}), kLogGuid, kLogLength), kCorrupt,
               "log entry: tail 0x3200 is not a 4 KiB multiple inside the log (length 0x100000)");
}

TEST(LogEntry, RejectsTailOutsideLog) {
  LogEntryHeader h = sample_header();
  h.tail = static_cast<std::uint32_t>(kLogLength);
  EXPECT_FAILS(decode_log_entry(encode_log_entry(h, {}), kLogGuid, kLogLength), kCorrupt,
               "log entry: tail 0x100000 is not a 4 KiB multiple inside the log");
}

TEST(LogEntry, RejectsMisalignedFlushedFileOffset) {
  LogEntryHeader h = sample_header();
  h.flushed_file_offset = 9 * kMiB + 4096;
  EXPECT_FAILS(decode_log_entry(encode_log_entry(h, {}), kLogGuid, kLogLength), kCorrupt,
               "log entry: flushed file offset 0x901000 is not a multiple of 1 MiB");
}

TEST(LogEntry, RejectsMisalignedLastFileOffset) {
  LogEntryHeader h = sample_header();
  h.last_file_offset = 1;
  EXPECT_FAILS(decode_log_entry(encode_log_entry(h, {}), kLogGuid, kLogLength), kCorrupt,
               "log entry: last file offset 0x1 is not a multiple of 1 MiB");
}

TEST(LogEntry, RejectsDescriptorCountBeyondEntry) {
  auto bytes = encode_log_entry(sample_header(), {});
  store_le32(bytes, 24, 127);  // needs two descriptor sectors; the entry has one
  reseal(bytes);
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, kLogLength), kCorrupt,
               "log entry: descriptor count 127 needs 2 descriptor sectors but the entry has 1 "
               "sectors");
  store_le32(bytes, 24, 0xFFFFFFFFu);
  reseal(bytes);
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, kLogLength), kCorrupt,
               "descriptor count 4294967295 needs 33554433 descriptor sectors");
}

TEST(LogEntry, RejectsUnknownDescriptorSignature) {
  auto bytes = sample_entry();
  testing::put_ascii(bytes, 96, "dat?");
  reseal(bytes);
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, kLogLength), kCorrupt,
               "log entry: descriptor 1: signature is 'dat?', not 'desc' or 'zero'");
}

TEST(LogEntry, RejectsMisalignedDescriptorFileOffset) {
  auto bytes = sample_entry();
  store_le64(bytes, 96 + 16, 3 * kMiB + 8);
  reseal(bytes);
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, kLogLength), kCorrupt,
               "log entry: descriptor 1: file offset 0x300008 is not a multiple of 4 KiB");
  bytes = sample_entry();
  store_le64(bytes, 64 + 16, 0x800);  // the zero descriptor too
  reseal(bytes);
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, kLogLength), kCorrupt,
               "descriptor 0: file offset 0x800 is not a multiple of 4 KiB");
}

TEST(LogEntry, RejectsDescriptorSequenceMismatch) {
  auto bytes = sample_entry();
  store_le64(bytes, 64 + 24, kSeq - 1);
  reseal(bytes);
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, kLogLength), kCorrupt,
               "log entry: descriptor 0: sequence number 0x1122334455667787 does not match the "
               "entry's 0x1122334455667788");
}

TEST(LogEntry, RejectsMisalignedZeroLength) {
  std::vector<LogUpdate> updates = {zero_update(4 * kMiB, 4096 + 512)};
  EXPECT_FAILS(decode_log_entry(encode_log_entry(sample_header(), updates), kLogGuid, kLogLength),
               kCorrupt, "log entry: descriptor 0: zero length 0x1200 is not a multiple of 4 KiB");
}

TEST(LogEntry, RejectsZeroRangeOverflow) {
  std::vector<LogUpdate> updates = {zero_update(0xFFFFFFFFFFFFF000ull, 0x2000)};
  EXPECT_FAILS(decode_log_entry(encode_log_entry(sample_header(), updates), kLogGuid, kLogLength),
               kCorrupt,
               "descriptor 0: file offset 0xfffffffffffff000 + zero length 0x2000 overflows");
}

TEST(LogEntry, RejectsMissingDataSector) {
  auto bytes = sample_entry();
  bytes.resize(4096);
  store_le32(bytes, 8, 4096);
  reseal(bytes);
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, kLogLength), kCorrupt,
               "log entry: descriptor 1: no data sector left (entry has 1 sectors)");
}

TEST(LogEntry, RejectsExtraSectors) {
  auto bytes = sample_entry();
  bytes.resize(3 * 4096, 0);
  store_le32(bytes, 8, 3 * 4096);
  reseal(bytes);
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, kLogLength), kCorrupt,
               "log entry: entry length 0x3000 does not match 1 descriptor sectors + 1 data "
               "sectors");
}

TEST(LogEntry, RejectsBadDataSectorSignature) {
  auto bytes = sample_entry();
  testing::put_ascii(bytes, 4096, "date");
  reseal(bytes);
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, kLogLength), kCorrupt,
               "log entry: descriptor 1: data sector 1: signature is 'date', not 'data'");
}

TEST(LogEntry, RejectsDataSectorSequenceHigh) {
  auto bytes = sample_entry();
  store_le32(bytes, 4096 + 4, 0x11223345);
  reseal(bytes);
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, kLogLength), kCorrupt,
               "log entry: descriptor 1: data sector 1: sequence halves 0x11223345/0x55667788 do "
               "not match the entry's 0x1122334455667788");
}

TEST(LogEntry, RejectsDataSectorSequenceLow) {
  auto bytes = sample_entry();
  store_le32(bytes, 8188, 0x55667789);
  reseal(bytes);
  EXPECT_FAILS(decode_log_entry(bytes, kLogGuid, kLogLength), kCorrupt,
               "data sector 1: sequence halves 0x11223344/0x55667789 do not match");
}

}  // namespace
}  // namespace vhdx::format
