#include "format/header.h"

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
using testing::put_le;

Header sample_header() {
  Header h;
  h.sequence_number = 0x0102030405060708ull;
  h.file_write_guid = guid("00112233-4455-6677-8899-aabbccddeeff");
  h.data_write_guid = guid("10111213-1415-1617-1819-1a1b1c1d1e1f");
  h.log_guid = guid("20212223-2425-2627-2829-2a2b2c2d2e2f");
  h.log_version = 0;
  h.version = 1;
  h.log_length = 2 * kMiB;
  h.log_offset = 5 * kMiB;
  return h;
}

std::vector<std::uint8_t> encoded(const Header& h) {
  std::vector<std::uint8_t> bytes(kHeaderSize, 0xEE);  // encode must clear the reserved bytes
  encode_header(h, bytes);
  return bytes;
}

// Recomputes the checksum after a test edits a field.
void reseal(std::vector<std::uint8_t>& bytes) {
  store_le32(bytes, 4, crc32c_with_zeroed_field(bytes, 4));
}

TEST(Header, GoldenBytes) {
  std::vector<std::uint8_t> expected(kHeaderSize, 0);
  testing::put_bytes(expected, 0, {'h', 'e', 'a', 'd'});
  testing::put_bytes(expected, 8, {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01});
  // GUIDs in the mixed-endian disk order of §1.
  testing::put_bytes(expected, 16,
                     {0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc,
                      0xdd, 0xee, 0xff});
  testing::put_bytes(expected, 32,
                     {0x13, 0x12, 0x11, 0x10, 0x15, 0x14, 0x17, 0x16, 0x18, 0x19, 0x1a, 0x1b, 0x1c,
                      0x1d, 0x1e, 0x1f});
  testing::put_bytes(expected, 48,
                     {0x23, 0x22, 0x21, 0x20, 0x25, 0x24, 0x27, 0x26, 0x28, 0x29, 0x2a, 0x2b, 0x2c,
                      0x2d, 0x2e, 0x2f});
  testing::put_bytes(expected, 64, {0x00, 0x00});                       // log version
  testing::put_bytes(expected, 66, {0x01, 0x00});                       // version
  testing::put_bytes(expected, 68, {0x00, 0x00, 0x20, 0x00});           // log length 2 MiB
  testing::put_bytes(expected, 72, {0x00, 0x00, 0x50, 0, 0, 0, 0, 0});  // log offset 5 MiB
  // The CRC-32C of these bytes with the field zeroed, pinned.
  const std::uint32_t crc = crc32c(expected);
  testing::put_le(expected, 4, crc, 4);
  auto bytes = encoded(sample_header());
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(load_le32(bytes, 4), 0xdf0b9d79u);
}

TEST(Header, RoundTrip) {
  Header h = sample_header();
  auto bytes = encoded(h);
  auto decoded = decode_header(bytes);
  ASSERT_TRUE(decoded) << describe(decoded);
  EXPECT_EQ(decoded->checksum, load_le32(bytes, 4));
  EXPECT_EQ(decoded->sequence_number, h.sequence_number);
  EXPECT_EQ(decoded->file_write_guid, h.file_write_guid);
  EXPECT_EQ(decoded->data_write_guid, h.data_write_guid);
  EXPECT_EQ(decoded->log_guid, h.log_guid);
  EXPECT_EQ(decoded->log_version, h.log_version);
  EXPECT_EQ(decoded->version, h.version);
  EXPECT_EQ(decoded->log_length, h.log_length);
  EXPECT_EQ(decoded->log_offset, h.log_offset);
}

TEST(Header, ReservedBytesAreIgnoredButCovered) {
  auto bytes = encoded(sample_header());
  bytes[100] = 0x5A;
  bytes[4095] = 0xA5;
  reseal(bytes);
  auto decoded = decode_header(bytes);
  ASSERT_TRUE(decoded) << describe(decoded);
  EXPECT_EQ(decoded->log_offset, 5 * kMiB);
  bytes[200] = 1;  // not resealed: the CRC covers all 4096 bytes
  EXPECT_FAILS(decode_header(bytes), kCorrupt, "checksum mismatch");
}

TEST(Header, LongerSpanUsesFirst4KiB) {
  auto bytes = encoded(sample_header());
  bytes.resize(64 * kKiB, 0x77);
  EXPECT_TRUE(decode_header(bytes));
}

TEST(Header, RejectsTruncated) {
  auto bytes = encoded(sample_header());
  bytes.resize(4095);
  EXPECT_FAILS(decode_header(bytes), kCorrupt, "header: truncated (4095 bytes, need 4096)");
  EXPECT_FAILS(decode_header({}), kCorrupt, "truncated");
}

TEST(Header, RejectsBadSignature) {
  auto bytes = encoded(sample_header());
  bytes[0] = 'H';
  reseal(bytes);
  EXPECT_FAILS(decode_header(bytes), kCorrupt, "header: signature is 'Head', not 'head'");
}

TEST(Header, RejectsChecksumMismatch) {
  auto bytes = encoded(sample_header());
  const std::uint32_t good = load_le32(bytes, 4);
  store_le32(bytes, 4, good ^ 1);
  char want[96];
  std::snprintf(want, sizeof want, "header: checksum mismatch (stored 0x%x, computed 0x%x)",
                good ^ 1, good);
  EXPECT_FAILS(decode_header(bytes), kCorrupt, want);
}

TEST(Header, RejectsVersionOtherThan1AsUnsupported) {
  Header h = sample_header();
  h.version = 2;
  EXPECT_FAILS(decode_header(encoded(h)), kUnsupported, "header: version 2");
  h.version = 0;
  EXPECT_FAILS(decode_header(encoded(h)), kUnsupported, "version 0");
}

TEST(Header, RejectsLogVersionWithLogGuidAsUnsupported) {
  Header h = sample_header();
  h.log_version = 1;
  EXPECT_FAILS(decode_header(encoded(h)), kUnsupported, "header: log version 1");
  // Without a log to replay the log version does not matter (§4).
  h.log_guid = Guid();
  auto decoded = decode_header(encoded(h));
  ASSERT_TRUE(decoded) << describe(decoded);
  EXPECT_EQ(decoded->log_version, 1u);
}

TEST(Header, RejectsMisalignedLogOffset) {
  Header h = sample_header();
  h.log_offset = 5 * kMiB + 4096;
  EXPECT_FAILS(decode_header(encoded(h)), kCorrupt,
               "header: log offset 0x501000 is not a multiple of 1 MiB");
}

TEST(Header, RejectsLogOffsetInsideHeaderSection) {
  Header h = sample_header();
  h.log_offset = 0;
  EXPECT_FAILS(decode_header(encoded(h)), kCorrupt,
               "header: log offset 0x0 lies inside the header section");
}

TEST(Header, RejectsMisalignedLogLength) {
  Header h = sample_header();
  h.log_length = kMiB + 512;
  EXPECT_FAILS(decode_header(encoded(h)), kCorrupt,
               "header: log length 0x100200 is not a multiple of 1 MiB");
}

TEST(Header, RejectsLogEndOverflow) {
  Header h = sample_header();
  h.log_offset = 0xFFFFFFFFFFF00000ull;
  h.log_length = 2 * kMiB;
  EXPECT_FAILS(decode_header(encoded(h)), kCorrupt,
               "log offset 0xfffffffffff00000 + length 0x200000 overflows");
}

TEST(Header, RejectsEmptyLogWithLogGuid) {
  Header h = sample_header();
  h.log_length = 0;
  EXPECT_FAILS(decode_header(encoded(h)), kCorrupt,
               "header: log length is 0 but the log GUID 20212223-2425-2627-2829-2a2b2c2d2e2f");
  h.log_guid = Guid();
  EXPECT_TRUE(decode_header(encoded(h)));  // no log at all
}

// choose_current_header (§4).
struct Slots {
  std::vector<std::uint8_t> bytes[2];
  Result<Header> decoded[2] = {Error(ErrorCode::kInternal, "unset"),
                               Error(ErrorCode::kInternal, "unset")};
  void set(int i, std::vector<std::uint8_t> b) {
    bytes[i] = std::move(b);
    decoded[i] = decode_header(bytes[i]);
  }
  Result<HeaderChoice> choose() const {
    return choose_current_header(decoded[0], decoded[1], bytes[0], bytes[1]);
  }
};

Header with_sequence(std::uint64_t seq) {
  Header h = sample_header();
  h.sequence_number = seq;
  return h;
}

TEST(ChooseHeader, LargerSequenceWins) {
  Slots s;
  s.set(0, encoded(with_sequence(6)));
  s.set(1, encoded(with_sequence(7)));
  auto c = s.choose();
  ASSERT_TRUE(c) << describe(c);
  EXPECT_EQ(c->current, 1);
  s.set(0, encoded(with_sequence(9)));
  c = s.choose();
  ASSERT_TRUE(c) << describe(c);
  EXPECT_EQ(c->current, 0);
}

TEST(ChooseHeader, OnlyValidOneWinsEvenWithSmallerSequence) {
  Slots s;
  s.set(0, encoded(with_sequence(100)));
  s.set(1, encoded(with_sequence(7)));
  s.bytes[0][50] ^= 0xFF;  // torn write: checksum now wrong
  s.decoded[0] = decode_header(s.bytes[0]);
  auto c = s.choose();
  ASSERT_TRUE(c) << describe(c);
  EXPECT_EQ(c->current, 1);

  Slots t;
  t.set(0, encoded(with_sequence(3)));
  t.set(1, std::vector<std::uint8_t>(kHeaderSize, 0));  // never written
  c = t.choose();
  ASSERT_TRUE(c) << describe(c);
  EXPECT_EQ(c->current, 0);
}

TEST(ChooseHeader, RejectsNeitherValidWithBothReasons) {
  Slots s;
  s.set(0, std::vector<std::uint8_t>(kHeaderSize, 0));
  auto b = encoded(with_sequence(2));
  b[9] ^= 1;
  s.set(1, b);
  auto c = s.choose();
  EXPECT_FAILS(c, kCorrupt, "headers: neither header is valid");
  EXPECT_FAILS(c, kCorrupt, "header 1: signature is '....', not 'head'");
  EXPECT_FAILS(c, kCorrupt, "header 2: checksum mismatch");
}

TEST(ChooseHeader, AcceptsIdenticalHeadersWithEqualSequence) {
  // The Disk2vhd quirk: both slots hold the same header.
  Slots s;
  s.set(0, encoded(with_sequence(5)));
  s.set(1, encoded(with_sequence(5)));
  auto c = s.choose();
  ASSERT_TRUE(c) << describe(c);
  EXPECT_EQ(c->current, 0);
}

TEST(ChooseHeader, RejectsDifferentHeadersWithEqualSequence) {
  Slots s;
  s.set(0, encoded(with_sequence(5)));
  Header other = with_sequence(5);
  other.data_write_guid = guid("99999999-9999-9999-9999-999999999999");
  s.set(1, encoded(other));
  EXPECT_FAILS(s.choose(), kCorrupt, "headers: both headers have sequence number 5 but differ");
}

TEST(ChooseHeader, ComparesDecodedHeadersWhenBytesAreNotGiven) {
  auto a = decode_header(encoded(with_sequence(5)));
  auto b = decode_header(encoded(with_sequence(5)));
  auto c = choose_current_header(a, b, {}, {});
  ASSERT_TRUE(c) << describe(c);
  EXPECT_EQ(c->current, 0);
  Header other = with_sequence(5);
  other.log_offset = 9 * kMiB;
  auto d = decode_header(encoded(other));
  EXPECT_FAILS(choose_current_header(a, d, {}, {}), kCorrupt, "sequence number 5 but differ");
}

TEST(ChooseHeader, NewerHeaderWithUnsupportedVersionIsTheAnswer) {
  // A checksum-valid header with a newer sequence number is current; its version error must
  // not be hidden by falling back to the older slot.
  Slots s;
  s.set(0, encoded(with_sequence(4)));
  Header v2 = with_sequence(5);
  v2.version = 2;
  s.set(1, encoded(v2));
  EXPECT_FAILS(s.choose(), kUnsupported, "header 2: version 2");
  // When it is the older one, the valid newer header wins.
  s.set(0, encoded(with_sequence(6)));
  auto c = s.choose();
  ASSERT_TRUE(c) << describe(c);
  EXPECT_EQ(c->current, 0);
}

TEST(ChooseHeader, NewerHeaderWithCorruptFieldIsTheAnswer) {
  Slots s;
  Header bad = with_sequence(8);
  bad.log_offset = 12345 * kMiB + 1;
  s.set(0, encoded(bad));
  s.set(1, encoded(with_sequence(7)));
  EXPECT_FAILS(s.choose(), kCorrupt, "header 1: log offset");
}

}  // namespace
}  // namespace vhdx::format
