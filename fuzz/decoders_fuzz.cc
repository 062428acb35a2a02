// Fuzz target: every format decoder on raw bytes. Decoders must reject anything malformed with
// an error and never read out of bounds; what they accept must survive re-encoding.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "format/bat.h"
#include "format/constants.h"
#include "format/file_identifier.h"
#include "format/header.h"
#include "format/log_entry.h"
#include "format/metadata.h"
#include "format/parent_locator.h"
#include "format/region_table.h"
#include "vhdx/guid.h"

using namespace vhdx;

namespace {

// Copies the input into a zero-padded buffer of at least `size` bytes, so fixed-size decoders
// see every input length.
std::vector<std::uint8_t> padded(std::span<const std::uint8_t> in, std::size_t size) {
  std::vector<std::uint8_t> out(in.begin(), in.end());
  if (out.size() < size) out.resize(size);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t selector = data[0];
  std::span<const std::uint8_t> in(data + 1, size - 1);
  switch (selector % 8) {
    case 0: {
      (void)format::decode_file_identifier(in);
      break;
    }
    case 1: {
      auto bytes = padded(in, format::kHeaderSize);
      auto header = format::decode_header(std::span(bytes).first(format::kHeaderSize));
      if (header) {
        std::vector<std::uint8_t> again(format::kHeaderSize);
        format::encode_header(*header, again);
        if (!format::decode_header(again)) __builtin_trap();
      }
      break;
    }
    case 2: {
      auto bytes = padded(in, format::kRegionTableSize);
      auto table = format::decode_region_table(std::span(bytes).first(format::kRegionTableSize));
      if (table) (void)format::find_known_regions(*table);
      break;
    }
    case 3: {
      // The whole input is a metadata region (table first).
      auto bytes = padded(in, format::kMetadataTableSize);
      auto table =
          format::decode_metadata_table(std::span(bytes).first(format::kMetadataTableSize));
      if (table) (void)format::decode_disk_metadata(*table, bytes);
      break;
    }
    case 4: {
      (void)format::decode_parent_locator(in);
      break;
    }
    case 5: {
      for (std::size_t i = 0; i + 8 <= in.size(); i += 8) {
        std::uint64_t raw = 0;
        for (int k = 0; k < 8; ++k) raw |= static_cast<std::uint64_t>(in[i + k]) << (8 * k);
        (void)format::decode_bat_entry(raw);
      }
      if (in.size() >= 13) {
        std::uint64_t block = std::uint64_t{1} << (20 + in[0] % 10);
        std::uint64_t vsize = 0;
        for (int k = 0; k < 8; ++k) vsize |= static_cast<std::uint64_t>(in[1 + k]) << (8 * k);
        std::uint32_t sector = (in[9] & 1) ? 4096 : 512;
        (void)format::compute_bat_geometry(block, vsize, sector, in[10] & 1);
      }
      break;
    }
    case 6: {
      (void)format::decode_log_entry_header(padded(in, format::kLogEntryHeaderSize));
      // Entries are whole 4 KiB sectors; try the input as one.
      std::size_t length = (in.size() / format::kLogSectorSize) * format::kLogSectorSize;
      if (length > 0) {
        auto header = format::decode_log_entry_header(in);
        Guid guid = header ? header->log_guid : Guid();
        (void)format::decode_log_entry(in.first(length), guid, 1u << 20);
      }
      break;
    }
    case 7: {
      auto bytes = padded(in, format::kMetadataTableSize);
      auto table =
          format::decode_metadata_table(std::span(bytes).first(format::kMetadataTableSize));
      if (table) (void)format::validate_metadata_layout(*table, bytes.size());
      break;
    }
  }
  return 0;
}
