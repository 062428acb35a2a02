#include "format/file_identifier.h"

#include <gtest/gtest.h>

#include <vector>

#include "format/constants.h"
#include "format/test_util.h"

namespace vhdx::format {
namespace {

using testing::describe;

std::vector<std::uint8_t> encoded(const std::string& creator) {
  std::vector<std::uint8_t> bytes(kFileIdentifierSize, 0xEE);
  encode_file_identifier({creator}, bytes);
  return bytes;
}

TEST(FileIdentifier, GoldenBytes) {
  std::vector<std::uint8_t> expected(kFileIdentifierSize, 0);
  testing::put_ascii(expected, 0, "vhdxfile");
  testing::put_bytes(expected, 8, {'l', 0, 'i', 0, 'b', 0, 'v', 0, 'h', 0, 'd', 0, 'x', 0});
  EXPECT_EQ(encoded("libvhdx"), expected);
}

TEST(FileIdentifier, RoundTripWithNonAscii) {
  for (const char* creator : {"", "QEMU v7.2.22", "Ünïcødé 💾 creator"}) {
    auto id = decode_file_identifier(encoded(creator));
    ASSERT_TRUE(id) << describe(id);
    EXPECT_EQ(id->creator, creator);
  }
}

TEST(FileIdentifier, CreatorStopsAtNul) {
  auto bytes = encoded("abc");
  testing::put_bytes(bytes, 16, {'z', 0});  // after the terminator: ignored
  auto id = decode_file_identifier(bytes);
  ASSERT_TRUE(id) << describe(id);
  EXPECT_EQ(id->creator, "abc");
}

TEST(FileIdentifier, CreatorWithoutTerminatorFillsAll256Units) {
  std::vector<std::uint8_t> bytes(520, 0);
  testing::put_ascii(bytes, 0, "vhdxfile");
  for (std::size_t i = 0; i < 256; ++i) bytes[8 + 2 * i] = 'x';
  auto id = decode_file_identifier(bytes);  // exactly 520 bytes is enough
  ASSERT_TRUE(id) << describe(id);
  EXPECT_EQ(id->creator, std::string(256, 'x'));
}

TEST(FileIdentifier, EncodeTruncatesTo255UnitsAndTerminates) {
  auto bytes = encoded(std::string(300, 'y'));
  EXPECT_EQ(bytes[8 + 2 * 254], 'y');
  EXPECT_EQ(bytes[8 + 2 * 255], 0);  // the NUL terminator in unit 255
  auto id = decode_file_identifier(bytes);
  ASSERT_TRUE(id) << describe(id);
  EXPECT_EQ(id->creator, std::string(255, 'y'));
}

TEST(FileIdentifier, EncodeNeverSplitsSurrogatePair) {
  // 254 ASCII units, then U+1F4BE (two units): only 254 fit before unit 255.
  std::string creator = std::string(254, 'a') + "💾";
  auto id = decode_file_identifier(encoded(creator));
  ASSERT_TRUE(id) << describe(id);
  EXPECT_EQ(id->creator, std::string(254, 'a'));
  creator = std::string(253, 'a') + "💾";  // fits exactly in 255 units
  id = decode_file_identifier(encoded(creator));
  ASSERT_TRUE(id) << describe(id);
  EXPECT_EQ(id->creator, creator);
}

TEST(FileIdentifier, EncodeLeavesInvalidUtf8CreatorEmpty) {
  auto id = decode_file_identifier(encoded("bad \xFF utf8"));
  ASSERT_TRUE(id) << describe(id);
  EXPECT_EQ(id->creator, "");
}

TEST(FileIdentifier, RejectsTruncated) {
  auto bytes = encoded("x");
  EXPECT_FAILS(decode_file_identifier(std::span(bytes).first(519)), kCorrupt,
               "file identifier: truncated (519 bytes, need 520)");
}

TEST(FileIdentifier, RejectsWrongSignatureAsNotVhdx) {
  auto bytes = encoded("x");
  bytes[7] = 'E';
  EXPECT_FAILS(decode_file_identifier(bytes), kNotVhdx,
               "file identifier: signature is 'vhdxfilE', not 'vhdxfile'");
  std::vector<std::uint8_t> zeros(kFileIdentifierSize, 0);
  EXPECT_FAILS(decode_file_identifier(zeros), kNotVhdx, "signature is '........'");
}

}  // namespace
}  // namespace vhdx::format
