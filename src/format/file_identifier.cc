#include "format/file_identifier.h"

#include <algorithm>
#include <cassert>

#include "base/utf16.h"
#include "format/codec_util.h"
#include "format/constants.h"

namespace vhdx::format {

using detail::corrupt;

Result<FileIdentifier> decode_file_identifier(std::span<const std::uint8_t> bytes) {
  constexpr std::string_view kWhat = "file identifier";
  VHDX_TRY(detail::require_size(kWhat, bytes, kCreatorOffset + kCreatorSize));
  if (!detail::has_signature(bytes, kFileSignature))
    return Error(ErrorCode::kNotVhdx, "file identifier: signature is " +
                                          detail::quoted(bytes.first(8)) + ", not 'vhdxfile'");
  // The creator ends at the first NUL unit (or fills all 256 units).
  auto creator = bytes.subspan(kCreatorOffset, kCreatorSize);
  std::size_t units = 0;
  while (units < kCreatorSize / 2 && (creator[2 * units] | creator[2 * units + 1]) != 0) ++units;
  auto text = utf16le_to_utf8(creator.first(2 * units));
  FileIdentifier id;
  id.creator = text ? *std::move(text) : std::string();
  return id;
}

void encode_file_identifier(const FileIdentifier& id, std::span<std::uint8_t> out) {
  assert(out.size() >= kCreatorOffset + kCreatorSize);
  std::fill(out.begin(), out.end(), 0);
  detail::put_signature(out, kFileSignature);
  auto units = utf8_to_utf16le(id.creator);
  if (!units) return;  // not UTF-8: leave the creator empty, it is diagnostic only
  // At most 255 units so a NUL terminator always fits; never split a surrogate pair.
  std::size_t n = std::min<std::size_t>(units->size() / 2, kCreatorSize / 2 - 1);
  if (n > 0 && n < units->size() / 2) {
    std::uint16_t last =
        static_cast<std::uint16_t>((*units)[2 * n - 2] | ((*units)[2 * n - 1] << 8));
    if (last >= 0xD800 && last <= 0xDBFF) --n;
  }
  std::copy_n(units->begin(), 2 * n, out.begin() + kCreatorOffset);
}

}  // namespace vhdx::format
