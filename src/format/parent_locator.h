// §6 Parent locator metadata item (differencing images).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "vhdx/error.h"
#include "vhdx/guid.h"

namespace vhdx::format {

struct ParentLocator {
  Guid locator_type;
  std::vector<std::pair<std::string, std::string>> entries;  // key, value (UTF-8), disk order

  // The value of `key` (case-sensitive), if present.
  std::optional<std::string> find(std::string_view key) const;
};

// Decodes the item bytes: header, key/value entries with every offset and length inside the
// item, lengths non-zero and even, keys unique. Does not require a known locator type (the
// image layer decides that); does require the key count to fit in the item.
Result<ParentLocator> decode_parent_locator(std::span<const std::uint8_t> item);
// The fixed parts of the item, for callers that inspect them piecewise (no validation beyond
// the size: `bytes` is at least 20 and 12 bytes respectively).
struct ParentLocatorHeader {
  Guid locator_type;
  std::uint16_t key_value_count = 0;
};
struct ParentLocatorEntry {
  std::uint32_t key_offset = 0;  // from the start of the item
  std::uint32_t value_offset = 0;
  std::uint16_t key_length = 0;  // bytes
  std::uint16_t value_length = 0;
};
Result<ParentLocatorHeader> decode_parent_locator_header(std::span<const std::uint8_t> bytes);
Result<ParentLocatorEntry> decode_parent_locator_entry(std::span<const std::uint8_t> bytes);

// Builds the item bytes (header, entries, then UTF-16LE strings).
std::vector<std::uint8_t> encode_parent_locator(const ParentLocator& locator);

}  // namespace vhdx::format
