#include "format/parent_locator.h"

#include <gtest/gtest.h>

#include <vector>

#include "base/endian.h"
#include "format/constants.h"
#include "format/test_util.h"

namespace vhdx::format {
namespace {

using testing::describe;

// UTF-16LE of ASCII text.
std::vector<std::uint8_t> u16(const std::string& s) {
  std::vector<std::uint8_t> out;
  for (char c : s) {
    out.push_back(static_cast<std::uint8_t>(c));
    out.push_back(0);
  }
  return out;
}

ParentLocator sample() {
  ParentLocator l;
  l.locator_type = kVhdxParentLocatorType;
  l.entries = {{"parent_linkage", "{ff34003b-11ed-4cf8-a166-b2be05e20b80}"},
               {"relative_path", ".\\base.vhdx"},
               {"absolute_win32_path", "\\\\?\\C:\\Hyper-V\\bäse 💾.vhdx"}};
  return l;
}

// An item with one entry whose offsets and lengths the test sets freely; the key "ab" sits at
// 32 and the value "xyz" at 36.
std::vector<std::uint8_t> one_entry(std::uint32_t key_offset, std::uint32_t value_offset,
                                    std::uint16_t key_length, std::uint16_t value_length) {
  std::vector<std::uint8_t> item(42, 0);
  kVhdxParentLocatorType.store(std::span<std::uint8_t, 16>(item.data(), 16));
  store_le16(item, 18, 1);
  store_le32(item, 20, key_offset);
  store_le32(item, 24, value_offset);
  store_le16(item, 28, key_length);
  store_le16(item, 30, value_length);
  auto key = u16("ab");
  auto value = u16("xyz");
  std::copy(key.begin(), key.end(), item.begin() + 32);
  std::copy(value.begin(), value.end(), item.begin() + 36);
  return item;
}

TEST(ParentLocator, GoldenBytes) {
  ParentLocator l;
  l.locator_type = kVhdxParentLocatorType;
  l.entries = {{"ab", "xyz"}};
  std::vector<std::uint8_t> expected = {// LocatorType B04AEFB7-D19E-4A81-B789-25B8E9445913 in disk
                                        // order.
                                        0xB7, 0xEF, 0x4A, 0xB0, 0x9E, 0xD1, 0x81, 0x4A, 0xB7, 0x89,
                                        0x25, 0xB8, 0xE9, 0x44, 0x59, 0x13, 0,    0,  // reserved
                                        1,    0,  // KeyValueCount
                                        32,   0,    0,    0,    36,   0,    0,    0,    4,    0,
                                        6,    0,  // key at 32 (4 bytes), value at 36 (6 bytes)
                                        'a',  0,    'b',  0,    'x',  0,    'y',  0,    'z',  0};
  EXPECT_EQ(encode_parent_locator(l), expected);
  EXPECT_EQ(one_entry(32, 36, 4, 6), expected);
}

TEST(ParentLocator, RoundTripWithNonAscii) {
  ParentLocator l = sample();
  auto decoded = decode_parent_locator(encode_parent_locator(l));
  ASSERT_TRUE(decoded) << describe(decoded);
  EXPECT_EQ(decoded->locator_type, l.locator_type);
  EXPECT_EQ(decoded->entries, l.entries);
  EXPECT_EQ(decoded->find("relative_path"), ".\\base.vhdx");
  EXPECT_EQ(decoded->find("absolute_win32_path"), "\\\\?\\C:\\Hyper-V\\bäse 💾.vhdx");
  EXPECT_EQ(decoded->find("Relative_Path"), std::nullopt);  // keys are case-sensitive
  EXPECT_EQ(decoded->find("volume_path"), std::nullopt);
}

TEST(ParentLocator, EmptyLocatorAndUnknownTypeDecode) {
  ParentLocator l;
  l.locator_type = testing::guid("11111111-2222-3333-4444-555555555555");
  auto bytes = encode_parent_locator(l);
  EXPECT_EQ(bytes.size(), 20u);
  auto decoded = decode_parent_locator(bytes);
  ASSERT_TRUE(decoded) << describe(decoded);
  EXPECT_EQ(decoded->locator_type, l.locator_type);  // the image layer judges the type
  EXPECT_TRUE(decoded->entries.empty());
}

TEST(ParentLocator, StringsMayBeAnywhereInTheItem) {
  // Value before key, sharing no bytes with the table: offsets are from the item start.
  auto item = one_entry(36, 32, 6, 4);
  auto decoded = decode_parent_locator(item);
  ASSERT_TRUE(decoded) << describe(decoded);
  ASSERT_EQ(decoded->entries.size(), 1u);
  EXPECT_EQ(decoded->entries[0].first, "xyz");
  EXPECT_EQ(decoded->entries[0].second, "ab");
}

TEST(ParentLocator, RejectsTruncatedHeader) {
  std::vector<std::uint8_t> item(19, 0);
  EXPECT_FAILS(decode_parent_locator(item), kCorrupt,
               "parent-locator item: truncated (19 bytes, need 20)");
  EXPECT_FAILS(decode_parent_locator_entry(std::span(item).first(11)), kCorrupt,
               "parent locator entry: truncated (11 bytes, need 12)");
}

TEST(ParentLocator, RejectsCountBeyondItem) {
  auto item = one_entry(32, 36, 4, 6);
  store_le16(item, 18, 2);  // 20 + 2 * 12 = 44 > 42
  EXPECT_FAILS(decode_parent_locator(item), kCorrupt,
               "parent-locator item: key/value count 2 needs 44 bytes but the item has 42");
  store_le16(item, 18, 0xFFFF);
  EXPECT_FAILS(decode_parent_locator(item), kCorrupt, "key/value count 65535 needs 786440 bytes");
}

TEST(ParentLocator, RejectsZeroKeyOffset) {
  EXPECT_FAILS(decode_parent_locator(one_entry(0, 36, 4, 6)), kCorrupt,
               "parent-locator item: entry 0: key offset is 0");
}

TEST(ParentLocator, RejectsZeroValueOffset) {
  EXPECT_FAILS(decode_parent_locator(one_entry(32, 0, 4, 6)), kCorrupt,
               "parent-locator item: entry 0: value offset is 0");
}

TEST(ParentLocator, RejectsZeroKeyLength) {
  EXPECT_FAILS(decode_parent_locator(one_entry(32, 36, 0, 6)), kCorrupt,
               "parent-locator item: entry 0: key length is 0");
}

TEST(ParentLocator, RejectsZeroValueLength) {
  EXPECT_FAILS(decode_parent_locator(one_entry(32, 36, 4, 0)), kCorrupt,
               "parent-locator item: entry 0: value length is 0");
}

TEST(ParentLocator, RejectsOddLengths) {
  EXPECT_FAILS(decode_parent_locator(one_entry(32, 36, 3, 6)), kCorrupt,
               "entry 0: key length 3 is odd");
  EXPECT_FAILS(decode_parent_locator(one_entry(32, 36, 4, 5)), kCorrupt,
               "entry 0: value length 5 is odd");
}

TEST(ParentLocator, RejectsKeyPastItem) {
  EXPECT_FAILS(decode_parent_locator(one_entry(40, 36, 4, 6)), kCorrupt,
               "parent-locator item: entry 0: key [0x28, +0x4) ends past the item (0x2a bytes)");
}

TEST(ParentLocator, RejectsValuePastItem) {
  EXPECT_FAILS(decode_parent_locator(one_entry(32, 0xFFFFFFFFu, 4, 6)), kCorrupt,
               "entry 0: value [0xffffffff, +0x6) ends past the item");
}

TEST(ParentLocator, RejectsDuplicateKey) {
  ParentLocator l = sample();
  l.entries.push_back({"relative_path", "elsewhere.vhdx"});
  EXPECT_FAILS(decode_parent_locator(encode_parent_locator(l)), kCorrupt,
               "parent-locator item: entry 3: key 'relative_path' repeats entry 1");
  // Case differs: distinct keys.
  l.entries.back().first = "Relative_Path";
  EXPECT_TRUE(decode_parent_locator(encode_parent_locator(l)));
}

TEST(ParentLocator, UnpairedSurrogateBecomesReplacementCharacter) {
  auto item = one_entry(32, 36, 4, 6);
  store_le16(item, 38, 0xD800);  // 'y' -> lone high surrogate
  auto decoded = decode_parent_locator(item);
  ASSERT_TRUE(decoded) << describe(decoded);
  EXPECT_EQ(decoded->entries[0].second, "x\xEF\xBF\xBDz");
}

}  // namespace
}  // namespace vhdx::format
