#include "format/parent_locator.h"

#include <string>

#include "base/checked_math.h"
#include "base/endian.h"
#include "base/utf16.h"
#include "format/codec_util.h"
#include "format/constants.h"

namespace vhdx::format {

using detail::corrupt;
using detail::hex;

namespace {

constexpr std::string_view kWhat = "parent-locator item";
constexpr std::size_t kKeyValueCountAt = 18;

// UTF-16LE for `text`; bytes that are not UTF-8 become U+FFFD (encoders cannot fail, and the
// callers pass UTF-8 they decoded themselves).
std::vector<std::uint8_t> to_utf16_lossy(std::string_view text) {
  if (auto units = utf8_to_utf16le(text)) return *std::move(units);
  std::vector<std::uint8_t> out;
  for (char c : text) {
    std::uint16_t unit =
        static_cast<unsigned char>(c) < 0x80 ? static_cast<unsigned char>(c) : 0xFFFD;
    out.push_back(static_cast<std::uint8_t>(unit));
    out.push_back(static_cast<std::uint8_t>(unit >> 8));
  }
  return out;
}

}  // namespace

std::optional<std::string> ParentLocator::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return v;
  return std::nullopt;
}

Result<ParentLocatorHeader> decode_parent_locator_header(std::span<const std::uint8_t> bytes) {
  VHDX_TRY(detail::require_size(kWhat, bytes, kParentLocatorHeaderSize));
  ParentLocatorHeader h;
  h.locator_type = detail::load_guid(bytes, 0);
  h.key_value_count = load_le16(bytes, kKeyValueCountAt);
  return h;
}

Result<ParentLocatorEntry> decode_parent_locator_entry(std::span<const std::uint8_t> bytes) {
  VHDX_TRY(detail::require_size("parent locator entry", bytes, kParentLocatorEntrySize));
  ParentLocatorEntry e;
  e.key_offset = load_le32(bytes, 0);
  e.value_offset = load_le32(bytes, 4);
  e.key_length = load_le16(bytes, 8);
  e.value_length = load_le16(bytes, 10);
  return e;
}

Result<ParentLocator> decode_parent_locator(std::span<const std::uint8_t> item) {
  VHDX_ASSIGN_OR_RETURN(ParentLocatorHeader header, decode_parent_locator_header(item));
  std::uint64_t table_end =
      kParentLocatorHeaderSize + std::uint64_t{header.key_value_count} * kParentLocatorEntrySize;
  if (table_end > item.size())
    return corrupt(kWhat, "key/value count " + std::to_string(header.key_value_count) + " needs " +
                              std::to_string(table_end) + " bytes but the item has " +
                              std::to_string(item.size()));
  ParentLocator locator;
  locator.locator_type = header.locator_type;
  locator.entries.reserve(header.key_value_count);
  for (std::size_t i = 0; i < header.key_value_count; ++i) {
    auto raw = item.subspan(kParentLocatorHeaderSize + i * kParentLocatorEntrySize,
                            kParentLocatorEntrySize);
    VHDX_ASSIGN_OR_RETURN(ParentLocatorEntry e, decode_parent_locator_entry(raw));
    const std::string label = "entry " + std::to_string(i);
    struct Field {
      const char* name;
      std::uint32_t offset;
      std::uint16_t length;
    };
    std::string text[2];
    const Field fields[2] = {{"key", e.key_offset, e.key_length},
                             {"value", e.value_offset, e.value_length}};
    for (int f = 0; f < 2; ++f) {
      const Field& field = fields[f];
      const std::string what = label + ": " + field.name;
      if (field.offset == 0) return corrupt(kWhat, what + " offset is 0");
      if (field.length == 0) return corrupt(kWhat, what + " length is 0");
      if (field.length % 2 != 0)
        return corrupt(kWhat, what + " length " + std::to_string(field.length) +
                                  " is odd (UTF-16 needs an even byte count)");
      std::uint64_t end = std::uint64_t{field.offset} + field.length;  // cannot overflow
      if (end > item.size())
        return corrupt(kWhat, what + " [" + hex(field.offset) + ", +" + hex(field.length) +
                                  ") ends past the item (" + hex(item.size()) + " bytes)");
      auto decoded = utf16le_to_utf8(item.subspan(field.offset, field.length));
      if (!decoded) return corrupt(kWhat, what + " is not UTF-16");  // unreachable: length even
      text[f] = *std::move(decoded);
    }
    for (std::size_t j = 0; j < locator.entries.size(); ++j)
      if (locator.entries[j].first == text[0])
        return corrupt(kWhat, label + ": key '" + text[0] + "' repeats entry " + std::to_string(j));
    locator.entries.emplace_back(std::move(text[0]), std::move(text[1]));
  }
  return locator;
}

std::vector<std::uint8_t> encode_parent_locator(const ParentLocator& locator) {
  const std::size_t count = locator.entries.size();
  std::vector<std::uint8_t> out(kParentLocatorHeaderSize + count * kParentLocatorEntrySize, 0);
  locator.locator_type.store(std::span<std::uint8_t, 16>(out.data(), 16));
  store_le16(out, kKeyValueCountAt, static_cast<std::uint16_t>(count));
  for (std::size_t i = 0; i < count; ++i) {
    auto key = to_utf16_lossy(locator.entries[i].first);
    auto value = to_utf16_lossy(locator.entries[i].second);
    const std::size_t at = kParentLocatorHeaderSize + i * kParentLocatorEntrySize;
    store_le32(out, at, static_cast<std::uint32_t>(out.size()));
    store_le16(out, at + 8, static_cast<std::uint16_t>(key.size()));
    out.insert(out.end(), key.begin(), key.end());
    store_le32(out, at + 4, static_cast<std::uint32_t>(out.size()));
    store_le16(out, at + 10, static_cast<std::uint16_t>(value.size()));
    out.insert(out.end(), value.begin(), value.end());
  }
  return out;
}

}  // namespace vhdx::format
