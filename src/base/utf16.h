// UTF-16LE <-> UTF-8 conversion for the creator string and parent locator keys and values.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vhdx {

// Decodes UTF-16LE bytes (an even count) to UTF-8. Unpaired surrogates become U+FFFD.
// Returns nothing when the byte count is odd.
std::optional<std::string> utf16le_to_utf8(std::span<const std::uint8_t> bytes);
// Encodes UTF-8 as UTF-16LE; nothing when the input is not valid UTF-8.
std::optional<std::vector<std::uint8_t>> utf8_to_utf16le(std::string_view text);

}  // namespace vhdx
