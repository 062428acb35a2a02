#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <string>
#include <vector>

#include "base/checked_math.h"
#include "base/crc32c.h"
#include "base/endian.h"
#include "base/text.h"
#include "base/utf16.h"
#include "vhdx/error.h"
#include "vhdx/guid.h"

namespace vhdx {
namespace {

std::span<const std::uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// CRC-32C (§10).

TEST(Crc32c, CheckValue) { EXPECT_EQ(crc32c(bytes_of("123456789")), 0xE3069283u); }

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(crc32c(std::vector<std::uint8_t>(32, 0x00)), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::vector<std::uint8_t>(32, 0xFF)), 0x62A8AB43u);
  std::vector<std::uint8_t> ascending(32);
  for (int i = 0; i < 32; ++i) ascending[i] = static_cast<std::uint8_t>(i);
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);  // RFC 3720 B.4
  EXPECT_EQ(crc32c({}), 0u);
}

TEST(Crc32c, IncrementalEqualsOneShot) {
  std::vector<std::uint8_t> data(10000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 31 + 7);
  const std::uint32_t whole = crc32c(data);
  for (std::size_t split : {0u, 1u, 3u, 4096u, 9999u, 10000u}) {
    Crc32c crc;
    crc.update(std::span(data).first(split));
    crc.update(std::span(data).subspan(split));
    EXPECT_EQ(crc.value(), whole) << split;
  }
  Crc32c bytewise;
  for (std::uint8_t b : data) bytewise.update(std::span(&b, 1));
  EXPECT_EQ(bytewise.value(), whole);
  EXPECT_EQ(Crc32c().value(), 0u);
}

TEST(Crc32c, WithZeroedField) {
  std::vector<std::uint8_t> data(4096, 0x5A);
  std::vector<std::uint8_t> zeroed = data;
  std::fill(zeroed.begin() + 4, zeroed.begin() + 8, 0);
  EXPECT_EQ(crc32c_with_zeroed_field(data, 4), crc32c(zeroed));
  std::vector<std::uint8_t> head = data;
  std::fill(head.begin(), head.begin() + 4, 0);
  EXPECT_EQ(crc32c_with_zeroed_field(data, 0), crc32c(head));
  // The field at the very end.
  std::vector<std::uint8_t> tail = data;
  std::fill(tail.end() - 4, tail.end(), 0);
  EXPECT_EQ(crc32c_with_zeroed_field(data, 4092), crc32c(tail));
}

// Guid (§1).

TEST(Guid, MixedEndianExampleFromTheFactSheet) {
  auto g = Guid::parse("2DC27766-F623-4200-9D64-115E9BFD4A08");
  ASSERT_TRUE(g);
  const std::array<std::uint8_t, 16> disk = {0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6, 0x00, 0x42,
                                             0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08};
  EXPECT_EQ(g->bytes(), disk);
  EXPECT_EQ(Guid::from_bytes(disk), *g);
  std::array<std::uint8_t, 16> stored{};
  g->store(stored);
  EXPECT_EQ(stored, disk);
  EXPECT_EQ(g->to_string(), "2dc27766-f623-4200-9d64-115e9bfd4a08");
}

TEST(Guid, ParseFormatRoundTrip) {
  for (const char* text :
       {"8b7ca206-4790-4b9a-b8fe-575f050f886e", "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff", "01234567-89ab-cdef-0123-456789abcdef"}) {
    auto g = Guid::parse(text);
    ASSERT_TRUE(g) << text;
    EXPECT_EQ(g->to_string(), text);
  }
}

TEST(Guid, ParseAcceptsBracesAndAnyCase) {
  auto plain = Guid::parse("83ed0ec3-24c8-49a6-a959-5e4bf1288bfb");
  ASSERT_TRUE(plain);
  EXPECT_EQ(Guid::parse("{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}"), plain);
  EXPECT_EQ(Guid::parse("83ED0EC3-24C8-49A6-A959-5E4BF1288BFB"), plain);
  EXPECT_EQ(Guid::parse("{83Ed0eC3-24c8-49a6-a959-5e4bf1288bfb}"), plain);
}

TEST(Guid, ParseRejectsMalformedText) {
  for (const char* text :
       {"", "83ed0ec3-24c8-49a6-a959-5e4bf1288bf", "83ed0ec3-24c8-49a6-a959-5e4bf1288bfbb",
        "83ed0ec3x24c8-49a6-a959-5e4bf1288bfb", "83ed0ec324c8-49a6-a959-5e4bf1288bfb0",
        "83ed0ec3-24c8-49a6-a959-5e4bf1288bfg", "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb",
        "83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}", "(83ed0ec3-24c8-49a6-a959-5e4bf1288bfb)",
        " 83ed0ec3-24c8-49a6-a959-5e4bf1288bf"}) {
    EXPECT_FALSE(Guid::parse(text)) << text;
  }
}

TEST(Guid, ZeroComparisonAndRandom) {
  Guid zero;
  EXPECT_TRUE(zero.is_zero());
  EXPECT_EQ(zero.to_string(), "00000000-0000-0000-0000-000000000000");
  auto a = *Guid::parse("00000000-0000-0000-0000-000000000001");
  auto b = *Guid::parse("01000000-0000-0000-0000-000000000000");
  EXPECT_FALSE(a.is_zero());
  EXPECT_NE(a, b);
  EXPECT_LT(a, b);  // raw bytes: b's disk bytes start 00 00 00 01, a's end in 01
  Guid r1 = Guid::random();
  Guid r2 = Guid::random();
  EXPECT_NE(r1, r2);
  EXPECT_FALSE(r1.is_zero());
  EXPECT_EQ(r1.to_string()[14], '4');  // version 4
  const char variant = r1.to_string()[19];
  EXPECT_TRUE(variant == '8' || variant == '9' || variant == 'a' || variant == 'b') << variant;
}

// Checked math.

TEST(CheckedMath, AddAndMul) {
  EXPECT_EQ(checked_add(1, 2), 3u);
  EXPECT_EQ(checked_add(~std::uint64_t{0}, 0), ~std::uint64_t{0});
  EXPECT_EQ(checked_add(~std::uint64_t{0}, 1), std::nullopt);
  EXPECT_EQ(checked_add(std::uint64_t{1} << 63, std::uint64_t{1} << 63), std::nullopt);
  EXPECT_EQ(checked_mul(1u << 20, 1u << 20), std::uint64_t{1} << 40);
  EXPECT_EQ(checked_mul(0, ~std::uint64_t{0}), 0u);
  EXPECT_EQ(checked_mul(std::uint64_t{1} << 32, std::uint64_t{1} << 32), std::nullopt);
  EXPECT_EQ(checked_mul(~std::uint64_t{0}, 2), std::nullopt);
}

TEST(CheckedMath, CeilDivAndAlignment) {
  EXPECT_EQ(ceil_div(0, 4), 0u);
  EXPECT_EQ(ceil_div(1, 4), 1u);
  EXPECT_EQ(ceil_div(4, 4), 1u);
  EXPECT_EQ(ceil_div(5, 4), 2u);
  EXPECT_EQ(ceil_div(~std::uint64_t{0}, 2), std::uint64_t{1} << 63);  // no a + b - 1 overflow
  EXPECT_TRUE(is_power_of_two(1));
  EXPECT_TRUE(is_power_of_two(std::uint64_t{1} << 63));
  EXPECT_FALSE(is_power_of_two(0));
  EXPECT_FALSE(is_power_of_two(3 << 20));
  EXPECT_TRUE(is_aligned(0, 4096));
  EXPECT_TRUE(is_aligned(3 << 20, 1 << 20));
  EXPECT_FALSE(is_aligned((3 << 20) + 512, 1 << 20));
  EXPECT_EQ(align_up(0, 1 << 20), 0u);
  EXPECT_EQ(align_up(1, 1 << 20), 1u << 20);
  EXPECT_EQ(align_up(1 << 20, 1 << 20), 1u << 20);
  EXPECT_EQ(align_up(~std::uint64_t{0} - 5, 4096), std::nullopt);
  EXPECT_EQ(align_up(0xFFFFFFFFFFFFF000ull, 4096), 0xFFFFFFFFFFFFF000ull);
}

TEST(CheckedMath, RangesOverlap) {
  EXPECT_TRUE(ranges_overlap(0, 10, 5, 10));
  EXPECT_TRUE(ranges_overlap(5, 10, 0, 10));
  EXPECT_TRUE(ranges_overlap(0, 10, 2, 3));     // containment
  EXPECT_FALSE(ranges_overlap(0, 10, 10, 10));  // adjacent
  EXPECT_FALSE(ranges_overlap(10, 10, 0, 10));
  EXPECT_FALSE(ranges_overlap(0, 0, 0, 10));  // empty ranges overlap nothing
  EXPECT_FALSE(ranges_overlap(5, 10, 7, 0));
}

// Little-endian loads and stores.

TEST(Endian, LoadsAndStores) {
  std::array<std::uint8_t, 10> b = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a};
  EXPECT_EQ(load_le16(b, 0), 0x0201u);
  EXPECT_EQ(load_le16(b, 9 - 1), 0x0a09u);
  EXPECT_EQ(load_le32(b, 1), 0x05040302u);
  EXPECT_EQ(load_le64(b, 2), 0x0a09080706050403ull);
  std::array<std::uint8_t, 10> out{};
  store_le16(out, 0, 0xBEEF);
  store_le32(out, 2, 0xDEADBEEF);
  EXPECT_EQ(out[0], 0xEF);
  EXPECT_EQ(out[1], 0xBE);
  EXPECT_EQ(out[2], 0xEF);
  EXPECT_EQ(out[5], 0xDE);
  store_le64(out, 2, 0x8877665544332211ull);
  EXPECT_EQ(load_le64(out, 2), 0x8877665544332211ull);
  EXPECT_EQ(out[2], 0x11);
  EXPECT_EQ(out[9], 0x88);
  EXPECT_EQ(out[1], 0xBE);  // untouched
}

// UTF-16LE <-> UTF-8.

std::vector<std::uint8_t> units(std::initializer_list<std::uint16_t> list) {
  std::vector<std::uint8_t> out;
  for (std::uint16_t u : list) {
    out.push_back(static_cast<std::uint8_t>(u));
    out.push_back(static_cast<std::uint8_t>(u >> 8));
  }
  return out;
}

TEST(Text, HexIsLowercaseUnpaddedWithPrefix) {
  EXPECT_EQ(hex(0), "0x0");
  EXPECT_EQ(hex(0x1F400), "0x1f400");
  EXPECT_EQ(hex(UINT64_MAX), "0xffffffffffffffff");
}

TEST(Utf16, EncodesAsciiTwoThreeAndFourByteCharacters) {
  EXPECT_EQ(utf8_to_utf16le("Ab"), units({0x41, 0x62}));
  EXPECT_EQ(utf8_to_utf16le("\xC3\xA9"), units({0x00E9}));                  // é
  EXPECT_EQ(utf8_to_utf16le("\xE2\x82\xAC"), units({0x20AC}));              // €
  EXPECT_EQ(utf8_to_utf16le("\xF0\x9F\x92\xBE"), units({0xD83D, 0xDCBE}));  // U+1F4BE
  EXPECT_EQ(utf8_to_utf16le("\xF4\x8F\xBF\xBF"), units({0xDBFF, 0xDFFF}));  // U+10FFFF
  EXPECT_EQ(utf8_to_utf16le(""), std::vector<std::uint8_t>{});
}

TEST(Utf16, DecodesToUtf8) {
  EXPECT_EQ(utf16le_to_utf8(units({0x41, 0x00E9, 0x20AC, 0xD83D, 0xDCBE})),
            "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x92\xBE");
  EXPECT_EQ(utf16le_to_utf8({}), "");
  EXPECT_EQ(utf16le_to_utf8(units({0x0000, 0x41})), std::string("\0A", 2));
}

TEST(Utf16, RoundTrip) {
  const std::string text = "\\\\?\\C:\\Users\\Public\\Hyper-V\\b\xC3\xA4se \xF0\x9F\x92\xBE.vhdx";
  auto encoded = utf8_to_utf16le(text);
  ASSERT_TRUE(encoded);
  EXPECT_EQ(utf16le_to_utf8(*encoded), text);
}

TEST(Utf16, UnpairedSurrogatesBecomeReplacementCharacters) {
  const std::string kFffd = "\xEF\xBF\xBD";
  EXPECT_EQ(utf16le_to_utf8(units({0xD800})), kFffd);              // high at the end
  EXPECT_EQ(utf16le_to_utf8(units({0xDC00, 0x41})), kFffd + "A");  // lone low
  EXPECT_EQ(utf16le_to_utf8(units({0xD800, 0x41})), kFffd + "A");  // high, then no low
  EXPECT_EQ(utf16le_to_utf8(units({0xD800, 0xD800, 0xDC00})), kFffd + "\xF0\x90\x80\x80");
}

TEST(Utf16, OddByteCountIsRejected) {
  std::vector<std::uint8_t> odd = {0x41, 0x00, 0x42};
  EXPECT_EQ(utf16le_to_utf8(odd), std::nullopt);
}

TEST(Utf16, InvalidUtf8IsRejected) {
  for (const char* bad : {"\xFF", "\x80", "\xC3", "\xC3\x28", "\xE2\x82", "\xF0\x9F\x92",
                          "\xC0\xAF",          // overlong '/'
                          "\xE0\x80\xAF",      // overlong
                          "\xED\xA0\x80",      // encoded surrogate U+D800
                          "\xF4\x90\x80\x80",  // U+110000
                          "\xF8\x88\x80\x80\x80", "ok\xFE"}) {
    EXPECT_EQ(utf8_to_utf16le(bad), std::nullopt) << ::testing::PrintToString(std::string(bad));
  }
}

// Error and Result.

TEST(Error, MessageContextAndToString) {
  Error e(ErrorCode::kCorrupt, "checksum mismatch");
  e.add_context("header 1");
  EXPECT_EQ(e.message(), "header 1: checksum mismatch");
  EXPECT_EQ(e.to_string(), "header 1: checksum mismatch (corrupt)");
  Error io = Error(ErrorCode::kIo, "cannot read", ENOENT).with_context("BAT");
  EXPECT_EQ(io.message(), "BAT: cannot read");
  EXPECT_EQ(io.sys_errno(), ENOENT);
  EXPECT_EQ(io.to_string(), "BAT: cannot read (io-error, No such file or directory)");
}

TEST(Error, ContextRefinesTheStructureNameItDoesNotRepeatIt) {
  Error header(ErrorCode::kCorrupt, "header: checksum mismatch");
  EXPECT_EQ(header.add_context("header 2").message(), "header 2: checksum mismatch");
  Error same(ErrorCode::kCorrupt, "BAT: entry 3 is bad");
  EXPECT_EQ(same.add_context("BAT").message(), "BAT: entry 3 is bad");
  Error precise(ErrorCode::kCorrupt, "BAT entry 5 (payload block 5): past the end");
  EXPECT_EQ(precise.add_context("BAT").message(), "BAT entry 5 (payload block 5): past the end");
  // A qualifier before the name refines it too.
  Error item(ErrorCode::kUnsupported, "sector-size item: 1024 is not supported");
  EXPECT_EQ(item.add_context("logical-sector-size item").message(),
            "logical-sector-size item: 1024 is not supported");
  Error table(ErrorCode::kCorrupt, "table: bad");
  EXPECT_EQ(table.add_context("region table").message(), "region table: bad");
  Error glued(ErrorCode::kCorrupt, "table: bad");
  EXPECT_EQ(glued.add_context("subtable").message(), "subtable: table: bad");
  // Only a whole leading name is refined, and only by a context that contains it whole.
  Error other(ErrorCode::kCorrupt, "metadata table: bad signature");
  EXPECT_EQ(other.add_context("metadata region").message(),
            "metadata region: metadata table: bad signature");
  Error longer(ErrorCode::kCorrupt, "header: bad");
  EXPECT_EQ(longer.add_context("headers").message(), "headers: header: bad");
  // A message starting with a path or a quoted name is left as it is.
  Error path(ErrorCode::kIo, "'/a/b': cannot open");
  EXPECT_EQ(path.add_context("'/a/b' x").message(), "'/a/b' x: '/a/b': cannot open");
  Error no_name(ErrorCode::kIo, "cannot read");
  EXPECT_EQ(no_name.add_context("cannot").message(), "cannot: cannot read");
}

TEST(Error, CodeNames) {
  EXPECT_STREQ(error_code_name(ErrorCode::kIo), "io-error");
  EXPECT_STREQ(error_code_name(ErrorCode::kNoSpace), "no-space");
  EXPECT_STREQ(error_code_name(ErrorCode::kCorrupt), "corrupt");
  EXPECT_STREQ(error_code_name(ErrorCode::kUnsupported), "unsupported");
  EXPECT_STREQ(error_code_name(ErrorCode::kInvalidArgument), "invalid-argument");
  EXPECT_STREQ(error_code_name(ErrorCode::kOutOfRange), "out-of-range");
  EXPECT_STREQ(error_code_name(ErrorCode::kReadOnly), "read-only");
  EXPECT_STREQ(error_code_name(ErrorCode::kBusy), "busy");
  EXPECT_STREQ(error_code_name(ErrorCode::kNeedsLogReplay), "needs-log-replay");
  EXPECT_STREQ(error_code_name(ErrorCode::kNotVhdx), "not-vhdx");
  EXPECT_STREQ(error_code_name(ErrorCode::kInternal), "internal");
  EXPECT_STREQ(error_code_name(ErrorCode::kFailed), "failed");
  EXPECT_STREQ(error_code_name(static_cast<ErrorCode>(99)), "unknown");
}

// What nbdkit and FUSE hand their clients.
TEST(Error, ErrnoForEachCode) {
  EXPECT_EQ(errno_for(Error(ErrorCode::kIo, "read", ENOSPC)), ENOSPC);
  EXPECT_EQ(errno_for(Error(ErrorCode::kIo, "read")), EIO);
  EXPECT_EQ(errno_for(Error(ErrorCode::kNoSpace, "")), ENOSPC);
  EXPECT_EQ(errno_for(Error(ErrorCode::kInvalidArgument, "")), EINVAL);
  EXPECT_EQ(errno_for(Error(ErrorCode::kOutOfRange, "")), EINVAL);
  EXPECT_EQ(errno_for(Error(ErrorCode::kReadOnly, "")), EROFS);
  EXPECT_EQ(errno_for(Error(ErrorCode::kUnsupported, "")), ENOTSUP);
  EXPECT_EQ(errno_for(Error(ErrorCode::kBusy, "")), EBUSY);
  for (ErrorCode code : {ErrorCode::kCorrupt, ErrorCode::kNeedsLogReplay, ErrorCode::kNotVhdx,
                         ErrorCode::kInternal, ErrorCode::kFailed})
    EXPECT_EQ(errno_for(Error(code, "")), EIO) << error_code_name(code);
}

Result<int> parse_digit(char c) {
  if (c < '0' || c > '9')
    return Error(ErrorCode::kInvalidArgument, std::string("not a digit: ") + c);
  return c - '0';
}

Result<int> sum_digits(const std::string& s) {
  int total = 0;
  for (char c : s) {
    VHDX_ASSIGN_OR_RETURN(int d, parse_digit(c));
    total += d;
  }
  return total;
}

Result<void> check_all(const std::string& s) {
  VHDX_TRY(sum_digits(s));
  return ok();
}

TEST(Result, ValuesErrorsAndMacros) {
  auto good = sum_digits("123");
  ASSERT_TRUE(good);
  EXPECT_EQ(*good, 6);
  auto bad = sum_digits("1x3");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message(), "not a digit: x");
  EXPECT_TRUE(check_all("42"));
  auto v = check_all("4?");
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().message(), "not a digit: ?");
}

}  // namespace
}  // namespace vhdx
