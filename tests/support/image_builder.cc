#include "support/image_builder.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "base/crc32c.h"
#include "base/endian.h"
#include "format/constants.h"
#include "format/file_identifier.h"
#include "format/header.h"
#include "format/metadata.h"

namespace vhdx::testing {
namespace {

using format::kMiB;

constexpr std::uint8_t state_value(format::PayloadState s) { return static_cast<std::uint8_t>(s); }

std::uint64_t round_up(std::uint64_t v, std::uint64_t alignment) {
  return (v + alignment - 1) / alignment * alignment;
}

bool all_zero(std::span<const std::uint8_t> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

// Writes bytes to the image in 4 KiB granules, skipping all-zero granules so that big,
// mostly-empty structures (a BAT, a filled-with-zero block) stay sparse.
void write_nonzero(SparseImage& image, std::uint64_t offset, std::span<const std::uint8_t> bytes) {
  constexpr std::size_t kGranule = 4096;
  std::size_t i = 0;
  while (i < bytes.size()) {
    std::size_t n = std::min(kGranule, bytes.size() - i);
    auto granule = bytes.subspan(i, n);
    if (!all_zero(granule)) {
      // Extend over following non-zero granules so runs stay few.
      std::size_t end = i + n;
      while (end < bytes.size()) {
        std::size_t m = std::min(kGranule, bytes.size() - end);
        if (all_zero(bytes.subspan(end, m))) break;
        end += m;
      }
      image.write(offset + i, bytes.subspan(i, end - i));
      i = end;
    } else {
      i += n;
    }
  }
}

bool check_range(const std::vector<std::uint8_t>& bytes, std::uint64_t offset, std::size_t n) {
  if (offset > bytes.size() || bytes.size() - offset < n) {
    ADD_FAILURE() << "poke at offset " << offset << " outside an image of " << bytes.size()
                  << " bytes";
    return false;
  }
  return true;
}

}  // namespace

// ---- BlockSpec ----

BlockSpec BlockSpec::with_state(format::PayloadState state) {
  BlockSpec b;
  b.state = state_value(state);
  return b;
}

BlockSpec BlockSpec::present_fill(std::uint8_t fill) {
  BlockSpec b = with_state(format::PayloadState::kFullyPresent);
  b.fill = fill;
  return b;
}

BlockSpec BlockSpec::present_pieces(std::vector<Piece> pieces) {
  BlockSpec b = with_state(format::PayloadState::kFullyPresent);
  b.pieces = std::move(pieces);
  return b;
}

// ---- SparseImage ----

void SparseImage::write(std::uint64_t offset, std::span<const std::uint8_t> bytes) {
  if (bytes.empty()) return;
  std::uint64_t begin = offset;
  std::uint64_t end = offset + bytes.size();
  // Runs that overlap or touch [begin, end) merge into one.
  auto first = runs.upper_bound(begin);
  if (first != runs.begin()) {
    auto prev = std::prev(first);
    if (prev->first + prev->second.size() >= begin) first = prev;
  }
  auto last = first;
  std::uint64_t new_begin = begin;
  std::uint64_t new_end = end;
  while (last != runs.end() && last->first <= end) {
    new_begin = std::min(new_begin, last->first);
    new_end = std::max(new_end, last->first + last->second.size());
    ++last;
  }
  std::vector<std::uint8_t> merged(new_end - new_begin, 0);
  for (auto it = first; it != last; ++it)
    std::copy(it->second.begin(), it->second.end(), merged.begin() + (it->first - new_begin));
  std::copy(bytes.begin(), bytes.end(), merged.begin() + (begin - new_begin));
  runs.erase(first, last);
  runs.emplace(new_begin, std::move(merged));
  size = std::max(size, new_end);
}

std::vector<std::uint8_t> SparseImage::to_bytes() const {
  std::vector<std::uint8_t> out(size, 0);
  for (const auto& [offset, bytes] : runs) {
    if (offset >= size) continue;
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), size - offset));
    std::copy_n(bytes.begin(), n, out.begin() + offset);
  }
  return out;
}

bool SparseImage::write_file(const std::string& path) const {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    ADD_FAILURE() << "cannot create " << path << ": " << std::strerror(errno);
    return false;
  }
  bool good = true;
  for (const auto& [offset, bytes] : runs) {
    if (offset >= size) continue;
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), size - offset));
    std::size_t done = 0;
    while (good && done < n) {
      ssize_t w = ::pwrite(fd, bytes.data() + done, n - done, static_cast<off_t>(offset + done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        ADD_FAILURE() << "cannot write " << path << ": " << std::strerror(errno);
        good = false;
      } else {
        done += static_cast<std::size_t>(w);
      }
    }
  }
  if (good && ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    ADD_FAILURE() << "cannot size " << path << ": " << std::strerror(errno);
    good = false;
  }
  ::close(fd);
  return good;
}

// ---- ImageBuilder ----

ImageBuilder::ImageBuilder(ImageSpec spec) : spec_(std::move(spec)) {
  if (spec_.has_parent && spec_.parent_locator.entries.empty()) {
    spec_.parent_locator.locator_type = format::kVhdxParentLocatorType;
    spec_.parent_locator.entries = {
        {"parent_linkage", "{" + spec_.data_write_guid.to_string() + "}"},
        {"relative_path", "parent.vhdx"},
    };
  }
  compute_layout();
}

ImageBuilder& ImageBuilder::set_block(std::uint64_t block, BlockSpec spec) {
  blocks_[block] = std::move(spec);
  return *this;
}

ImageBuilder& ImageBuilder::set_bitmap_entry(std::uint64_t chunk, std::uint64_t raw_entry) {
  bitmap_entries_[chunk] = raw_entry;
  return *this;
}

ImageBuilder& ImageBuilder::set_sector_bitmap(std::uint64_t chunk, std::vector<Piece> pieces) {
  sector_bitmaps_[chunk] = std::move(pieces);
  return *this;
}

BlockSpec ImageBuilder::effective_block(std::uint64_t block) const {
  auto it = blocks_.find(block);
  if (it != blocks_.end()) return it->second;
  return BlockSpec::with_state(spec_.type == ImageType::kFixed ? format::PayloadState::kFullyPresent
                                                               : format::PayloadState::kNotPresent);
}

bool ImageBuilder::block_allocated(const BlockSpec& b) const {
  if (b.allocate) return *b.allocate;
  if (spec_.type == ImageType::kFixed) return true;
  return b.state == state_value(format::PayloadState::kFullyPresent) ||
         b.state == state_value(format::PayloadState::kPartiallyPresent);
}

void ImageBuilder::compute_layout() {
  Layout& l = layout_;
  l = Layout{};
  l.file_identifier = format::kFileIdentifierOffset;
  for (int i = 0; i < 2; ++i) {
    l.headers[i] = format::kHeaderOffsets[i];
    l.region_tables[i] = format::kRegionTableOffsets[i];
  }
  l.log_offset = spec_.log_offset;
  l.log_length = spec_.log_length;
  l.metadata_offset = spec_.metadata_offset;
  l.metadata_length = spec_.metadata_length;
  l.bat_offset = spec_.bat_offset;

  // Geometry, computed leniently: the builder also makes images a reader must reject.
  std::uint64_t bs = spec_.block_size != 0 ? spec_.block_size : kMiB;
  std::uint64_t chunk_bytes = format::kSectorsPerChunk * spec_.logical_sector_size;
  l.chunk_ratio = std::max<std::uint64_t>(1, chunk_bytes / bs);
  l.payload_blocks = (spec_.virtual_size + bs - 1) / bs;
  if (spec_.has_parent) {
    std::uint64_t chunks = (l.payload_blocks + l.chunk_ratio - 1) / l.chunk_ratio;
    l.bat_entries = chunks * (l.chunk_ratio + 1);
  } else {
    l.bat_entries =
        l.payload_blocks == 0 ? 0 : l.payload_blocks + (l.payload_blocks - 1) / l.chunk_ratio;
  }
  l.bat_length =
      spec_.bat_length != 0 ? spec_.bat_length : std::max(kMiB, round_up(l.bat_entries * 8, kMiB));

  // Items packed from +64 KiB in the order Windows writes them.
  std::uint64_t item = l.metadata_offset + format::kMetadataTableSize;
  l.file_parameters = item;
  item += 8;
  l.virtual_disk_size = item;
  item += 8;
  l.logical_sector_size = item;
  item += 4;
  l.physical_sector_size = item;
  item += 4;
  l.virtual_disk_id = item;
  item += 16;
  if (spec_.has_parent) {
    l.parent_locator = item;
    item += format::encode_parent_locator(spec_.parent_locator).size();
  }
  for (const auto& extra : spec_.extra_metadata_items) {
    l.extra_items.push_back(extra.bytes.empty() ? 0 : item);
    item += extra.bytes.size();
  }

  std::uint64_t end = format::kHeaderSectionSize;
  end = std::max(end, l.log_offset + l.log_length);
  end = std::max(end, l.metadata_offset + l.metadata_length);
  end = std::max(end, l.bat_offset + l.bat_length);
  for (const auto& r : spec_.extra_regions) end = std::max(end, r.file_offset + r.length);
  l.payload_offset = spec_.payload_offset != 0 ? spec_.payload_offset : round_up(end, kMiB);

  l.block_offsets.assign(l.payload_blocks, 0);
  std::uint64_t next = l.payload_offset;
  for (std::uint64_t b = 0; b < l.payload_blocks; ++b) {
    if (!block_allocated(effective_block(b))) continue;
    l.block_offsets[b] = next;
    next += bs;
  }
  for (const auto& entry : sector_bitmaps_) {
    l.bitmap_offsets[entry.first] = next;
    next += format::kSectorBitmapBlockSize;
  }
  l.file_size = std::max(end, next);
}

SparseImage ImageBuilder::build_sparse() {
  compute_layout();
  const Layout& l = layout_;
  SparseImage image;
  image.size = l.file_size;

  std::vector<std::uint8_t> ident(format::kFileIdentifierSize);
  format::encode_file_identifier(format::FileIdentifier{spec_.creator}, ident);
  write_nonzero(image, l.file_identifier, ident);

  for (int i = 0; i < 2; ++i) {
    format::Header h;
    h.sequence_number = spec_.sequence_numbers[i];
    h.file_write_guid = spec_.file_write_guid;
    h.data_write_guid = spec_.data_write_guid;
    h.log_guid = spec_.log_guid;
    h.log_version = format::kLogVersion;
    h.version = format::kHeaderVersion;
    h.log_length = spec_.log_length;
    h.log_offset = spec_.log_offset;
    std::vector<std::uint8_t> bytes(format::kHeaderSize);
    format::encode_header(h, bytes);
    image.write(l.headers[i], bytes);
  }

  format::RegionTable table;
  table.entries.push_back(
      {format::kBatRegionGuid, l.bat_offset, static_cast<std::uint32_t>(l.bat_length), true});
  table.entries.push_back(
      {format::kMetadataRegionGuid, l.metadata_offset, spec_.metadata_length, true});
  for (const auto& r : spec_.extra_regions) table.entries.push_back(r);
  std::vector<std::uint8_t> rt(format::kRegionTableSize);
  format::encode_region_table(table, rt);
  for (int i = 0; i < 2; ++i) write_nonzero(image, l.region_tables[i], rt);

  // Metadata table and items.
  auto rel = [&](std::uint64_t abs) { return static_cast<std::uint32_t>(abs - l.metadata_offset); };
  format::MetadataTable mt;
  mt.entries.push_back(
      {format::kFileParametersGuid, rel(l.file_parameters), 8, false, false, true});
  mt.entries.push_back(
      {format::kVirtualDiskSizeGuid, rel(l.virtual_disk_size), 8, false, true, true});
  mt.entries.push_back(
      {format::kLogicalSectorSizeGuid, rel(l.logical_sector_size), 4, false, true, true});
  mt.entries.push_back(
      {format::kPhysicalSectorSizeGuid, rel(l.physical_sector_size), 4, false, true, true});
  mt.entries.push_back({format::kVirtualDiskIdGuid, rel(l.virtual_disk_id), 16, false, true, true});
  std::vector<std::uint8_t> locator;
  if (spec_.has_parent) {
    locator = format::encode_parent_locator(spec_.parent_locator);
    mt.entries.push_back({format::kParentLocatorGuid, rel(l.parent_locator),
                          static_cast<std::uint32_t>(locator.size()), false, false, true});
  }
  for (std::size_t i = 0; i < spec_.extra_metadata_items.size(); ++i) {
    const auto& extra = spec_.extra_metadata_items[i];
    mt.entries.push_back({extra.item_id, extra.bytes.empty() ? 0 : rel(l.extra_items[i]),
                          static_cast<std::uint32_t>(extra.bytes.size()), extra.is_user,
                          extra.is_virtual_disk, extra.is_required});
  }
  std::vector<std::uint8_t> mt_bytes(format::kMetadataTableSize);
  format::encode_metadata_table(mt, mt_bytes);
  write_nonzero(image, l.metadata_offset, mt_bytes);

  std::uint8_t u64[8];
  std::uint8_t u32[4];
  format::FileParameters fp;
  fp.block_size = spec_.block_size;
  fp.leave_block_allocated = spec_.type == ImageType::kFixed;
  fp.has_parent = spec_.has_parent;
  format::encode_file_parameters(fp, u64);
  image.write(l.file_parameters, u64);
  format::encode_virtual_disk_size(spec_.virtual_size, u64);
  image.write(l.virtual_disk_size, u64);
  format::encode_sector_size(spec_.logical_sector_size, u32);
  image.write(l.logical_sector_size, u32);
  format::encode_sector_size(spec_.physical_sector_size, u32);
  image.write(l.physical_sector_size, u32);
  std::uint8_t id[16];
  spec_.virtual_disk_id.store(id);
  image.write(l.virtual_disk_id, id);
  if (spec_.has_parent) image.write(l.parent_locator, locator);
  for (std::size_t i = 0; i < spec_.extra_metadata_items.size(); ++i)
    image.write(l.extra_items[i], spec_.extra_metadata_items[i].bytes);

  // BAT and payload.
  std::uint64_t bs = spec_.block_size != 0 ? spec_.block_size : kMiB;
  std::vector<std::uint8_t> bat(l.bat_length, 0);
  auto put_entry = [&](std::uint64_t index, std::uint64_t raw) {
    if ((index + 1) * 8 <= bat.size()) store_le64(bat, index * 8, raw);
  };
  for (std::uint64_t b = 0; b < l.payload_blocks; ++b) {
    BlockSpec blk = effective_block(b);
    std::uint64_t space = l.block_offsets[b];
    std::uint64_t raw;
    if (blk.raw_entry) {
      raw = *blk.raw_entry;
    } else {
      bool carries = blk.entry_has_offset
                         ? *blk.entry_has_offset
                         : space != 0 &&
                               blk.state != state_value(format::PayloadState::kNotPresent) &&
                               blk.state != state_value(format::PayloadState::kZero);
      std::uint64_t offset = blk.entry_offset ? *blk.entry_offset : (carries ? space : 0);
      raw = format::encode_bat_entry(blk.state, offset);
    }
    put_entry(l.payload_entry_index(b), raw);
    if (space == 0) continue;
    if (blk.fill && *blk.fill != 0) {
      std::vector<std::uint8_t> filled(bs, *blk.fill);
      image.write(space, filled);
    }
    for (const auto& piece : blk.pieces) {
      if (piece.offset >= bs) continue;
      std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(piece.bytes.size(), bs - piece.offset));
      image.write(space + piece.offset, std::span(piece.bytes).first(n));
    }
  }
  for (const auto& [chunk, pieces] : sector_bitmaps_) {
    const std::uint64_t at = l.bitmap_offsets.at(chunk);
    put_entry(
        l.bitmap_entry_index(chunk),
        format::encode_bat_entry(static_cast<std::uint8_t>(format::BitmapState::kPresent), at));
    for (const auto& piece : pieces) {
      if (piece.offset >= format::kSectorBitmapBlockSize) continue;
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(
          piece.bytes.size(), format::kSectorBitmapBlockSize - piece.offset));
      image.write(at + piece.offset, std::span(piece.bytes).first(n));
    }
  }
  for (const auto& [chunk, raw] : bitmap_entries_) put_entry(l.bitmap_entry_index(chunk), raw);
  write_nonzero(image, l.bat_offset, bat);
  image.size = l.file_size;
  return image;
}

void ImageBuilder::expected_read(std::uint64_t offset, std::span<std::uint8_t> out) const {
  std::fill(out.begin(), out.end(), 0);
  if (out.empty()) return;
  std::uint64_t bs = spec_.block_size != 0 ? spec_.block_size : kMiB;
  std::uint64_t end = offset + out.size();
  for (std::uint64_t b = offset / bs; b * bs < end && b < layout_.payload_blocks; ++b) {
    BlockSpec blk = effective_block(b);
    if (blk.state != state_value(format::PayloadState::kFullyPresent)) continue;
    std::uint64_t block_start = b * bs;
    std::uint64_t lo = std::max(offset, block_start);
    std::uint64_t hi = std::min({end, block_start + bs, spec_.virtual_size});
    if (lo >= hi) continue;
    if (blk.fill) std::fill(out.begin() + (lo - offset), out.begin() + (hi - offset), *blk.fill);
    for (const auto& piece : blk.pieces) {
      std::uint64_t p_lo = std::max(lo, block_start + piece.offset);
      std::uint64_t p_hi = std::min(hi, block_start + piece.offset + piece.bytes.size());
      p_hi = std::min(p_hi, block_start + bs);
      if (p_lo >= p_hi) continue;
      std::copy(piece.bytes.begin() + (p_lo - block_start - piece.offset),
                piece.bytes.begin() + (p_hi - block_start - piece.offset),
                out.begin() + (p_lo - offset));
    }
  }
}

std::vector<std::uint8_t> ImageBuilder::expected_bytes(std::uint64_t offset,
                                                       std::uint64_t length) const {
  std::vector<std::uint8_t> out(length);
  expected_read(offset, out);
  return out;
}

std::string ImageBuilder::expected_sha256() const {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<std::uint8_t> buf(4 * kMiB);
  for (std::uint64_t at = 0; at < spec_.virtual_size; at += buf.size()) {
    std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), spec_.virtual_size - at));
    expected_read(at, std::span(buf).first(n));
    EVP_DigestUpdate(ctx.get(), buf.data(), n);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

std::vector<Extent> ImageBuilder::expected_extents(std::uint64_t offset,
                                                   std::uint64_t length) const {
  std::vector<Extent> out;
  std::uint64_t bs = spec_.block_size != 0 ? spec_.block_size : kMiB;
  std::uint64_t end = std::min(offset + length, spec_.virtual_size);
  for (std::uint64_t at = offset; at < end;) {
    std::uint64_t b = at / bs;
    std::uint64_t hi = std::min(end, (b + 1) * bs);
    BlockSpec blk = effective_block(b);
    Extent e;
    e.offset = at;
    e.length = hi - at;
    switch (static_cast<format::PayloadState>(blk.state)) {
      case format::PayloadState::kFullyPresent: {
        e.kind = ExtentKind::kData;
        std::uint64_t base = blk.entry_offset ? *blk.entry_offset : layout_.block_offsets[b];
        e.file_offset = base + (at - b * bs);
        break;
      }
      case format::PayloadState::kNotPresent:
        e.kind = ExtentKind::kUnallocated;
        break;
      default:
        e.kind = ExtentKind::kZero;
        break;
    }
    if (!out.empty()) {
      Extent& prev = out.back();
      bool same = prev.kind == e.kind;
      if (same && e.kind == ExtentKind::kData)
        same = *prev.file_offset + prev.length == *e.file_offset;
      if (same) {
        prev.length += e.length;
        at = hi;
        continue;
      }
    }
    out.push_back(e);
    at = hi;
  }
  return out;
}

BlockCounts ImageBuilder::expected_counts() const {
  BlockCounts c;
  for (std::uint64_t b = 0; b < layout_.payload_blocks; ++b) {
    BlockSpec blk = effective_block(b);
    std::uint8_t state = blk.raw_entry ? static_cast<std::uint8_t>(*blk.raw_entry & 7) : blk.state;
    switch (state) {
      case 0:
        ++c.not_present;
        break;
      case 1:
        ++c.undefined;
        break;
      case 2:
        ++c.zero;
        break;
      case 3:
      case 5:
        ++c.unmapped;
        break;
      case 6:
        ++c.fully_present;
        break;
      case 7:
        ++c.partially_present;
        break;
      default:
        break;
    }
  }
  return c;
}

// ---- free helpers ----

void fix_header_checksum(std::vector<std::uint8_t>& bytes, int slot) {
  std::uint64_t at = format::kHeaderOffsets[slot];
  if (!check_range(bytes, at, format::kHeaderSize)) return;
  std::span<std::uint8_t> h(bytes.data() + at, format::kHeaderSize);
  store_le32(h, 4, crc32c_with_zeroed_field(h, 4));
}

void fix_region_table_checksum(std::vector<std::uint8_t>& bytes, int copy) {
  std::uint64_t at = format::kRegionTableOffsets[copy];
  if (!check_range(bytes, at, format::kRegionTableSize)) return;
  std::span<std::uint8_t> t(bytes.data() + at, format::kRegionTableSize);
  store_le32(t, 4, crc32c_with_zeroed_field(t, 4));
}

void poke_le16(std::vector<std::uint8_t>& bytes, std::uint64_t offset, std::uint16_t value) {
  if (check_range(bytes, offset, 2)) store_le16(bytes, offset, value);
}
void poke_le32(std::vector<std::uint8_t>& bytes, std::uint64_t offset, std::uint32_t value) {
  if (check_range(bytes, offset, 4)) store_le32(bytes, offset, value);
}
void poke_le64(std::vector<std::uint8_t>& bytes, std::uint64_t offset, std::uint64_t value) {
  if (check_range(bytes, offset, 8)) store_le64(bytes, offset, value);
}
void poke_guid(std::vector<std::uint8_t>& bytes, std::uint64_t offset, const Guid& guid) {
  if (check_range(bytes, offset, 16))
    guid.store(std::span<std::uint8_t, 16>(bytes.data() + offset, 16));
}

void write_log_ring(std::vector<std::uint8_t>& image, const Layout& layout,
                    std::uint64_t ring_offset, std::span<const std::uint8_t> bytes) {
  if (layout.log_length == 0 || bytes.size() > layout.log_length) {
    ADD_FAILURE() << bytes.size() << " bytes do not fit a log of " << layout.log_length;
    return;
  }
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const std::uint64_t at = layout.log_offset + (ring_offset + i) % layout.log_length;
    if (!check_range(image, at, 1)) return;
    image[at] = bytes[i];
  }
}

std::vector<std::uint8_t> pattern_bytes(std::uint32_t seed, std::uint64_t start,
                                        std::uint64_t length) {
  std::vector<std::uint8_t> out(length);
  for (std::uint64_t i = 0; i < length; ++i) {
    std::uint64_t x =
        (start + i) * 0x9E3779B97F4A7C15ull ^ (std::uint64_t{seed} + 1) * 0xD6E8FEB86659FD93ull;
    x ^= x >> 32;
    x *= 0xD6E8FEB86659FD93ull;
    x ^= x >> 29;
    out[i] = static_cast<std::uint8_t>(x);
  }
  return out;
}

bool write_bytes_file(const std::string& path, std::span<const std::uint8_t> bytes) {
  SparseImage image;
  image.size = bytes.size();
  if (!bytes.empty()) image.runs.emplace(0, std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
  return image.write_file(path);
}

}  // namespace vhdx::testing
