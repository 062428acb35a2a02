// §3 File type identifier (offset 0, 64 KiB).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "vhdx/error.h"

namespace vhdx::format {

struct FileIdentifier {
  std::string creator;  // UTF-8, without the NUL terminator and anything after it
};

// `bytes` is at least kCreatorOffset + kCreatorSize (520) bytes. A wrong signature is kNotVhdx.
Result<FileIdentifier> decode_file_identifier(std::span<const std::uint8_t> bytes);
// Writes the signature and the creator (truncated to 255 UTF-16 units, NUL-terminated) into
// `out`, which is kFileIdentifierSize (64 KiB) bytes; the rest is zeroed.
void encode_file_identifier(const FileIdentifier& id, std::span<std::uint8_t> out);

}  // namespace vhdx::format
