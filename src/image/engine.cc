#include "image/engine.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <memory>
#include <string>

#include "base/checked_math.h"
#include "base/endian.h"
#include "base/text.h"
#include "format/constants.h"
#include "format/file_identifier.h"
#include "format/header.h"
#include "format/metadata.h"
#include "format/region_table.h"
#include "log/replay.h"
#include "log/sequence.h"

namespace vhdx::image {
namespace {

using format::kMiB;

// The metadata region read at open is at most this long (a normal one is 1 MiB); items further
// in are refused rather than read, so a hostile region length cannot exhaust memory.
constexpr std::uint64_t kMaxMetadataRead = 32 * kMiB;
// Room past the 64 KiB metadata table allocated with it for the items, which usually follow
// the table and take a few hundred bytes.
constexpr std::size_t kItemsRoom = 4096;
// count_blocks streams the BAT in pieces this large.
constexpr std::uint64_t kScanBytes = 64 * 1024;

std::string num(std::uint64_t v) { return std::to_string(v); }

Error corrupt(std::string message) { return Error(ErrorCode::kCorrupt, std::move(message)); }

Guid guid_at(std::span<const std::uint8_t> b, std::size_t at) {
  return Guid::from_bytes(std::span<const std::uint8_t, 16>(b.data() + at, 16));
}

HeaderInfo header_info(const format::Header& h) {
  HeaderInfo info;
  info.valid = true;
  info.sequence_number = h.sequence_number;
  info.file_write_guid = h.file_write_guid;
  info.data_write_guid = h.data_write_guid;
  info.log_guid = h.log_guid;
  info.log_version = h.log_version;
  info.version = h.version;
  info.log_length = h.log_length;
  info.log_offset = h.log_offset;
  return info;
}

// An invalid header still shows its raw fields when it at least carries the signature, so
// `vhdx info` can tell a torn header from an empty slot.
HeaderInfo raw_header_info(std::span<const std::uint8_t> b, const Error& error) {
  HeaderInfo info;
  info.valid = false;
  info.invalid_reason = error.message();
  if (std::memcmp(b.data(), format::kHeaderSignature, 4) != 0) return info;
  info.sequence_number = load_le64(b, 8);
  info.file_write_guid = guid_at(b, 16);
  info.data_write_guid = guid_at(b, 32);
  info.log_guid = guid_at(b, 48);
  info.log_version = load_le16(b, 64);
  info.version = load_le16(b, 66);
  info.log_length = load_le32(b, 68);
  info.log_offset = load_le64(b, 72);
  return info;
}

const char* region_name(const Guid& guid) {
  if (guid == format::kBatRegionGuid) return "BAT";
  if (guid == format::kMetadataRegionGuid) return "metadata";
  return "unknown";
}

std::string range_text(std::uint64_t offset, std::uint64_t length) {
  return "offset " + num(offset) + ", length " + num(length);
}

}  // namespace

Result<std::unique_ptr<Engine>> Engine::open(std::unique_ptr<File> file,
                                             const OpenOptions& options) {
  if (!file) return Error(ErrorCode::kInvalidArgument, "no file to open");
  std::unique_ptr<Engine> engine(new Engine(std::move(file)));
  VHDX_TRY(engine->open_image(options));
  return engine;
}

Result<void> Engine::open_image(const OpenOptions& options) {
  writable_ = !options.read_only;
  if (writable_ && !file_->writable())
    return Error(ErrorCode::kReadOnly,
                 "cannot open " + file_->name() + " for writing: the file is read-only");
  // 1. File size.
  VHDX_ASSIGN_OR_RETURN(info_.file_size, file_->size());

  // 2. File identifier. The header section's parts are read one by one (not the 1 MiB section
  // at once): what an open needs of it is about 140 KiB.
  const Error not_vhdx(ErrorCode::kNotVhdx, "not a VHDX file: no 'vhdxfile' signature");
  if (info_.file_size < sizeof format::kFileSignature) return not_vhdx;
  std::array<std::uint8_t, 4096> identifier_bytes{};
  VHDX_TRY(file_->read_at(
      0, std::span(identifier_bytes).first(std::min<std::uint64_t>(info_.file_size, 4096))));
  if (std::memcmp(identifier_bytes.data(), format::kFileSignature, sizeof format::kFileSignature) !=
      0)
    return not_vhdx;
  if (info_.file_size < format::kHeaderSectionSize)
    return corrupt("file is " + num(info_.file_size) +
                   " bytes long, shorter than the 1 MiB header section");
  VHDX_ASSIGN_OR_RETURN(auto identifier, format::decode_file_identifier(identifier_bytes));
  info_.creator = std::move(identifier.creator);

  // 3. Both headers; one torn header does not stop the open.
  VHDX_TRY(read_headers());

  // 4. Log state. A writable open replays the log now, before anything it could be updating is
  // read, and reads the header section again.
  if (writable_ && !header_.log_guid.is_zero()) {
    VHDX_TRY(check_log_bounds());
    if (auto r = replay_log(); !r) return std::move(r).error().with_context("log replay");
    VHDX_ASSIGN_OR_RETURN(info_.file_size, file_->size());
    VHDX_TRY(read_headers());
  }
  // A read-only open replays into memory (docs/invariants.md 3): the file is never written, reads
  // see the image as it will be once replayed.
  // A log that cannot be replayed fails the open, unless the caller only wants to inspect the
  // image (allow_dirty_log): then reads are refused with the reason.
  if (!writable_ && !header_.log_guid.is_zero()) {
    VHDX_TRY(check_log_bounds());
    if (auto r = replay_log_in_memory(); !r) {
      Error error = std::move(r).error().with_context("log replay (in memory)");
      if (!options.allow_dirty_log || !file_) return error;
      replay_failure_ = error.message();
    } else {
      VHDX_ASSIGN_OR_RETURN(info_.file_size, file_->size());
      VHDX_TRY(read_headers());
    }
  }
  const HeaderInfo& current = info_.headers[info_.current_header];
  if (!current.log_guid.is_zero()) info_.log_state = LogState::kNeedsReplay;
  if (!current.log_guid.is_zero() && !replayed_in_memory_) {
    if (!options.allow_dirty_log)
      return Error(ErrorCode::kNeedsLogReplay,
                   "image needs log replay (header log GUID " + current.log_guid.to_string() + ")");
    needs_replay_ = true;
    info_.log_state = LogState::kNeedsReplay;
  }

  // 5. Log bounds.
  VHDX_TRY(check_log_bounds());

  // 6. Region tables and the regions they name.
  VHDX_TRY(read_region_tables());

  // 7. Metadata.
  VHDX_TRY(read_metadata());

  // 8. BAT geometry; the BAT itself is read later, page by page.
  return setup_bat();
}

Result<void> Engine::read_headers() {
  std::array<std::uint8_t, format::kHeaderSize> copies[2];
  std::span<const std::uint8_t> bytes[2];
  for (int i = 0; i < 2; ++i) {
    VHDX_TRY(file_->read_at(format::kHeaderOffsets[i], copies[i]));
    bytes[i] = copies[i];
  }
  Result<format::Header> decoded[2] = {format::decode_header(bytes[0]),
                                       format::decode_header(bytes[1])};
  for (int i = 0; i < 2; ++i) {
    info_.headers[i] =
        decoded[i] ? header_info(*decoded[i]) : raw_header_info(bytes[i], decoded[i].error());
  }
  VHDX_ASSIGN_OR_RETURN(auto choice,
                        format::choose_current_header(decoded[0], decoded[1], bytes[0], bytes[1]));
  if (choice.current != 0 && choice.current != 1)
    return Error(ErrorCode::kInternal, "header choice out of range");
  info_.current_header = choice.current;
  header_ = *decoded[choice.current];
  info_.format_version = info_.headers[choice.current].version;
  return ok();
}

Result<void> Engine::check_log_bounds() {
  const HeaderInfo& h = info_.headers[info_.current_header];
  log_ = {h.log_offset, h.log_length};
  if (log_.length == 0) return ok();
  const std::string what = "log (" + range_text(log_.offset, log_.length) + ")";
  if (log_.offset < format::kHeaderSectionSize)
    return corrupt(what + ": overlaps the header section");
  if (!is_aligned(log_.offset, format::kObjectAlignment) ||
      !is_aligned(log_.length, format::kObjectAlignment))
    return corrupt(what + ": not aligned to 1 MiB");
  auto end = checked_add(log_.offset, log_.length);
  if (!end || *end > info_.file_size)
    return corrupt(what + ": extends past the end of the file (" + num(info_.file_size) +
                   " bytes)");
  return ok();
}

Result<void> Engine::read_region_tables() {
  // Not zero-filled: the read overwrites every byte.
  const auto buffer = std::make_unique_for_overwrite<std::uint8_t[]>(format::kRegionTableSize);
  const std::span<std::uint8_t> bytes(buffer.get(), format::kRegionTableSize);
  Result<format::RegionTable> tables[2] = {Error(ErrorCode::kInternal, "not read"),
                                           Error(ErrorCode::kInternal, "not read")};
  // The second copy is read only when the first is invalid: it is the fallback, and the two
  // differing is check's business.
  for (int i = 0; i < 2 && (i == 0 || !tables[0]); ++i) {
    VHDX_TRY(file_->read_at(format::kRegionTableOffsets[i], bytes));
    tables[i] = format::decode_region_table(bytes);
  }
  int used = tables[0] ? 0 : 1;
  if (!tables[used])
    return corrupt("region tables: both copies are invalid (" +
                   tables[0].error().message_with_context("region table 1") + "; " +
                   tables[1].error().message_with_context("region table 2") + ")");
  info_.region_table_used = used;
  const format::RegionTable& table = *tables[used];
  const std::string table_name = "region table " + num(used + 1);
  auto known = format::find_known_regions(table);
  if (!known) return std::move(known).error().with_context(table_name);

  for (const auto& entry : table.entries) {
    RegionInfo region;
    region.guid = entry.guid;
    region.name = region_name(entry.guid);
    region.file_offset = entry.file_offset;
    region.length = entry.length;
    region.required = entry.required;
    info_.regions.push_back(region);

    const auto what = [&] {
      return table_name + ": region " + region.name + " (" +
             range_text(entry.file_offset, entry.length) + ")";
    };
    if (entry.file_offset < format::kHeaderSectionSize)
      return corrupt(what() + ": overlaps the header section");
    if (!is_aligned(entry.file_offset, format::kObjectAlignment) ||
        !is_aligned(entry.length, format::kObjectAlignment))
      return corrupt(what() + ": not aligned to 1 MiB");
    auto end = checked_add(entry.file_offset, entry.length);
    if (!end) return corrupt(what() + ": end overflows");
    if (ranges_overlap(entry.file_offset, entry.length, log_.offset, log_.length))
      return corrupt(what() + ": overlaps the log");
    // Unknown optional regions are ignored, so only the known ones must lie inside the file.
    const bool is_known =
        entry.guid == format::kBatRegionGuid || entry.guid == format::kMetadataRegionGuid;
    if (is_known && *end > info_.file_size)
      return corrupt(what() + ": extends past the end of the file (" + num(info_.file_size) +
                     " bytes)");
  }
  // The codec rejects overlapping regions; check the two this engine relies on regardless.
  bat_region_ = {known->bat.file_offset, known->bat.length};
  metadata_region_ = {known->metadata.file_offset, known->metadata.length};
  if (ranges_overlap(bat_region_.offset, bat_region_.length, metadata_region_.offset,
                     metadata_region_.length))
    return corrupt(table_name + ": the BAT and metadata regions overlap");
  return ok();
}

Result<void> Engine::read_metadata() {
  const std::uint64_t region_length = metadata_region_.length;
  if (region_length < format::kMetadataTableSize)
    return corrupt("metadata region: length " + num(region_length) +
                   " is shorter than the 64 KiB table");
  // The table first; the items only as far as they reach (below), so an open reads kilobytes.
  // Not zero-filled (reads overwrite every byte used), with room for the items that usually
  // follow the table, so that most opens allocate once.
  const std::size_t capacity = format::kMetadataTableSize + kItemsRoom;
  auto buffer = std::make_unique_for_overwrite<std::uint8_t[]>(capacity);
  VHDX_TRY(
      file_->read_at(metadata_region_.offset, std::span(buffer.get(), format::kMetadataTableSize)));

  auto table = format::decode_metadata_table(
      std::span<const std::uint8_t>(buffer.get(), format::kMetadataTableSize));
  if (!table) return std::move(table).error().with_context("metadata region");
  if (auto r = format::validate_metadata_layout(*table, region_length); !r)
    return std::move(r).error().with_context("metadata region");

  // Read further only as far as the items reach (bounded).
  std::uint64_t needed = format::kMetadataTableSize;
  for (const auto& e : table->entries)
    needed = std::max<std::uint64_t>(needed, std::uint64_t{e.offset} + e.length);
  if (needed > kMaxMetadataRead)
    return Error(ErrorCode::kUnsupported,
                 "metadata region: items reach " + num(needed) +
                     " bytes into the region; this library reads at most " + num(kMaxMetadataRead));
  if (needed > capacity) {
    auto grown = std::make_unique_for_overwrite<std::uint8_t[]>(needed);
    std::memcpy(grown.get(), buffer.get(), format::kMetadataTableSize);
    buffer = std::move(grown);
  }
  const std::span<const std::uint8_t> region(buffer.get(), static_cast<std::size_t>(needed));
  if (needed > format::kMetadataTableSize)
    VHDX_TRY(file_->read_at(
        metadata_region_.offset + format::kMetadataTableSize,
        std::span(buffer.get() + format::kMetadataTableSize, needed - format::kMetadataTableSize)));

  for (const auto& e : table->entries) {
    MetadataItemInfo item;
    item.item_id = e.item_id;
    item.name = format::metadata_item_name(e.item_id);
    item.offset = e.offset;
    item.length = e.length;
    item.is_user = e.is_user;
    item.is_virtual_disk = e.is_virtual_disk;
    item.is_required = e.is_required;
    info_.metadata_items.push_back(std::move(item));
  }

  auto disk = format::decode_disk_metadata(*table, region);
  if (!disk) return std::move(disk).error().with_context("metadata region");
  const auto& params = disk->file_parameters;
  has_parent_ = params.has_parent;
  info_.block_size = params.block_size;
  info_.leave_blocks_allocated = params.leave_block_allocated;
  info_.type = params.has_parent              ? DiskType::kDifferencing
               : params.leave_block_allocated ? DiskType::kFixed
                                              : DiskType::kDynamic;
  info_.virtual_size = disk->virtual_size;
  info_.logical_sector_size = disk->logical_sector_size;
  info_.physical_sector_size = disk->physical_sector_size;
  info_.virtual_disk_id = disk->virtual_disk_id;
  if (disk->parent_locator) {
    info_.parent_locator_type = disk->parent_locator->locator_type;
    info_.parent_locator = disk->parent_locator->entries;
  }
  return ok();
}

Result<void> Engine::setup_bat() {
  auto geometry = format::compute_bat_geometry(info_.block_size, info_.virtual_size,
                                               info_.logical_sector_size, has_parent_);
  if (!geometry) return std::move(geometry).error().with_context("metadata");
  geometry_ = *geometry;
  if (!is_power_of_two(geometry_.block_size) || !is_power_of_two(geometry_.chunk_ratio))
    return Error(ErrorCode::kInternal, "BAT geometry: bad block size or chunk ratio");
  block_shift_ = static_cast<unsigned>(std::countr_zero(geometry_.block_size));
  chunk_shift_ = static_cast<unsigned>(std::countr_zero(geometry_.chunk_ratio));
  info_.chunk_ratio = geometry_.chunk_ratio;
  info_.payload_blocks = geometry_.payload_blocks;
  info_.bat_entries = geometry_.total_entries;

  const std::uint64_t capacity = bat_region_.length / format::kBatEntrySize;
  if (capacity < geometry_.total_entries)
    return corrupt("BAT region (" + num(bat_region_.length) + " bytes) holds " + num(capacity) +
                   " entries, but the image needs " + num(geometry_.total_entries));
  bat_.reset(file_.get(), bat_region_.offset, geometry_.total_entries, kDefaultBatCacheBytes);
  return ok();
}

Result<void> Engine::check_readable() const {
  if (failed_)
    return Error(ErrorCode::kFailed, "image is in the failed state after an earlier error (" +
                                         failure_ + "); reopen it");
  if (needs_replay_)
    return Error(ErrorCode::kNeedsLogReplay,
                 "image needs log replay; it was opened for inspection only" +
                     (replay_failure_.empty() ? std::string() : " (" + replay_failure_ + ")"));
  return ok();
}

std::uint64_t Engine::block_bytes(std::uint64_t block) const {
  // The last block may be partial; only the part holding virtual data must be in the file.
  const std::uint64_t start = block << block_shift_;
  return std::min<std::uint64_t>(geometry_.block_size, info_.virtual_size - start);
}

Error Engine::entry_error(std::uint64_t index, bool bitmap, std::uint64_t block,
                          const std::string& reason) const {
  return corrupt("BAT entry " + num(index) +
                 (bitmap ? " (sector bitmap of chunk " : " (payload block ") + num(block) +
                 "): " + reason);
}

Result<BlockMapping> Engine::validate_entry(std::uint64_t index, std::uint64_t raw, bool bitmap,
                                            std::uint64_t block) const {
  const format::BatEntry entry = format::decode_bat_entry(raw);
  if (entry.reserved_bits_set)
    return entry_error(index, bitmap, block, "reserved bits are set (raw entry " + hex(raw) + ")");
  if (bitmap ? !format::is_valid_bitmap_state(entry.state, has_parent_)
             : !format::is_valid_payload_state(entry.state, has_parent_))
    return entry_error(index, bitmap, block,
                       "state " + num(entry.state) + " is not a valid " +
                           (bitmap ? "sector bitmap" : "payload") + " state for " +
                           (has_parent_ ? "a differencing image" : "an image without a parent"));

  BlockMapping mapping{entry.state, 0};
  const bool has_data =
      entry.state == static_cast<std::uint8_t>(format::PayloadState::kFullyPresent) ||
      (!bitmap &&
       entry.state == static_cast<std::uint8_t>(format::PayloadState::kPartiallyPresent));
  if (!has_data) return mapping;

  const std::uint64_t offset = entry.file_offset;
  const std::uint64_t length = bitmap ? format::kSectorBitmapBlockSize : block_bytes(block);
  // Messages are built only on failure: this runs on every read.
  auto what = [&] { return "block at file offset " + num(offset); };
  if (offset < format::kHeaderSectionSize)
    return entry_error(index, bitmap, block, what() + " lies in the header section");
  auto end = checked_add(offset, length);
  if (!end || *end > info_.file_size)
    return entry_error(index, bitmap, block,
                       what() + " (" + num(length) + " bytes) extends past the end of the file (" +
                           num(info_.file_size) + " bytes)");
  if (ranges_overlap(offset, length, log_.offset, log_.length))
    return entry_error(index, bitmap, block, what() + " overlaps the log");
  if (ranges_overlap(offset, length, bat_region_.offset, bat_region_.length))
    return entry_error(index, bitmap, block, what() + " overlaps the BAT region");
  if (ranges_overlap(offset, length, metadata_region_.offset, metadata_region_.length))
    return entry_error(index, bitmap, block, what() + " overlaps the metadata region");
  mapping.file_offset = offset;
  return mapping;
}

Result<BlockMapping> Engine::lookup_block(std::uint64_t block) {
  VHDX_TRY(check_readable());
  if (block >= geometry_.payload_blocks)
    return Error(ErrorCode::kOutOfRange, "payload block " + num(block) + " is past the last (" +
                                             num(geometry_.payload_blocks) + " blocks)");
  // payload_entry_index without the division: the chunk ratio is a power of two.
  const std::uint64_t index = block + (block >> chunk_shift_);
  VHDX_ASSIGN_OR_RETURN(std::uint64_t raw, raw_entry(index));
  return validate_entry(index, raw, false, block);
}

Result<void> Engine::read(std::uint64_t offset, std::span<std::uint8_t> out) {
  VHDX_TRY(check_readable());
  auto end = checked_add(offset, out.size());
  if (!end || *end > info_.virtual_size)
    return Error(ErrorCode::kOutOfRange, "read of " + num(out.size()) + " bytes at offset " +
                                             num(offset) + " lies outside the virtual disk (" +
                                             num(info_.virtual_size) + " bytes)");
  const std::uint64_t block_mask = geometry_.block_size - 1;
  std::size_t done = 0;
  while (done < out.size()) {
    const std::uint64_t pos = offset + done;
    const std::uint64_t block = pos >> block_shift_;
    const std::uint64_t in_block = pos & block_mask;
    std::size_t run = static_cast<std::size_t>(
        std::min<std::uint64_t>(out.size() - done, geometry_.block_size - in_block));
    VHDX_ASSIGN_OR_RETURN(BlockMapping mapping, lookup_block(block));
    switch (static_cast<format::PayloadState>(mapping.state)) {
      case format::PayloadState::kFullyPresent: {
        // Extend over following blocks stored right after this one: one pread for the lot.
        std::uint64_t next_block = block + 1;
        std::uint64_t next_offset = mapping.file_offset + geometry_.block_size;
        while (done + run < out.size()) {
          VHDX_ASSIGN_OR_RETURN(BlockMapping next, lookup_block(next_block));
          if (next.state != mapping.state || next.file_offset != next_offset) break;
          ++next_block;
          run += static_cast<std::size_t>(
              std::min<std::uint64_t>(out.size() - done - run, geometry_.block_size));
          next_offset += geometry_.block_size;
        }
        VHDX_TRY(file_->read_at(mapping.file_offset + in_block, out.subspan(done, run)));
        break;
      }
      case format::PayloadState::kNotPresent:
        if (has_parent_) {
          VHDX_TRY(read_parent(pos, out.subspan(done, run)));
          break;
        }
        std::memset(out.data() + done, 0, run);
        break;
      case format::PayloadState::kUndefined:
      case format::PayloadState::kZero:
      case format::PayloadState::kUnmapped:
      case format::PayloadState::kUnmappedV095:
        std::memset(out.data() + done, 0, run);
        break;
      case format::PayloadState::kPartiallyPresent: {
        // Sectors present in this file can be read; any other needs the parent.
        VHDX_ASSIGN_OR_RETURN(auto runs, sector_runs(block, mapping, pos, run));
        for (const SectorRun& r : runs) {
          const auto part = out.subspan(done + (r.offset - pos), r.length);
          if (r.present)
            VHDX_TRY(file_->read_at(r.file_offset, part));
          else
            VHDX_TRY(read_parent(r.offset, part));
        }
        break;
      }
      default:
        return Error(ErrorCode::kInternal, "unexpected payload state " + num(mapping.state));
    }
    done += run;
  }
  return ok();
}

Result<void> Engine::read_parent(std::uint64_t pos, std::span<std::uint8_t> out) {
  if (!parent_)
    return Error(ErrorCode::kUnsupported, "differencing image: the data at virtual offset " +
                                              num(pos) +
                                              " is in the parent image, which is not open");
  const std::uint64_t parent_size = parent_->virtual_size();
  const std::size_t in_parent =
      pos >= parent_size
          ? 0
          : static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), parent_size - pos));
  if (in_parent > 0) {
    if (auto r = parent_->read(pos, out.first(in_parent)); !r)
      return std::move(r).error().with_context("parent image '" + parent_->source_path() + "'");
  }
  std::memset(out.data() + in_parent, 0, out.size() - in_parent);
  return ok();
}

Result<std::vector<Extent>> Engine::resolve_through_parent(std::vector<Extent> extents) {
  std::vector<Extent> out;
  out.reserve(extents.size());
  const std::uint64_t parent_size = parent_->virtual_size();
  for (const Extent& e : extents) {
    if (e.kind != ExtentKind::kUnallocated) {
      append_extent(out, e);
      continue;
    }
    const std::uint64_t end = e.offset + e.length;
    if (e.offset < parent_size) {
      const std::uint64_t in_parent = std::min(end, parent_size) - e.offset;
      auto below = parent_->block_status(e.offset, in_parent);
      if (!below)
        return std::move(below).error().with_context("parent image '" + parent_->source_path() +
                                                     "'");
      for (Extent p : *below) {
        ++p.depth;
        append_extent(out, p);
      }
    }
    if (end > parent_size) {
      // Past the parent's end the disk reads as zeros.
      Extent zeros;
      zeros.offset = std::max(e.offset, parent_size);
      zeros.length = end - zeros.offset;
      zeros.kind = ExtentKind::kZero;
      append_extent(out, zeros);
    }
  }
  return out;
}

void Engine::append_extent(std::vector<Extent>& extents, const Extent& extent) {
  if (!extents.empty()) {
    Extent& last = extents.back();
    if (last.kind == extent.kind && last.depth == extent.depth &&
        last.offset + last.length == extent.offset &&
        (extent.kind != ExtentKind::kData ||
         *last.file_offset + last.length == *extent.file_offset)) {
      last.length += extent.length;
      return;
    }
  }
  extents.push_back(extent);
}

Result<std::vector<Engine::SectorRun>> Engine::sector_runs(std::uint64_t block,
                                                           const BlockMapping& mapping,
                                                           std::uint64_t pos,
                                                           std::uint64_t length) {
  const std::uint64_t chunk = block >> chunk_shift_;
  const std::uint64_t bitmap_index = geometry_.bitmap_entry_index(chunk);
  VHDX_ASSIGN_OR_RETURN(std::uint64_t raw, bat_.entry(bitmap_index));
  VHDX_ASSIGN_OR_RETURN(BlockMapping bitmap, validate_entry(bitmap_index, raw, true, chunk));
  if (bitmap.state != static_cast<std::uint8_t>(format::BitmapState::kPresent))
    return entry_error(
        geometry_.payload_entry_index(block), false, block,
        "partially present, but the sector bitmap of chunk " + num(chunk) + " is not present");

  // The bits of the sectors [first, last] covering the range; all in this block's chunk.
  const std::uint64_t sector_size = info_.logical_sector_size;
  const std::uint64_t first = pos / sector_size;
  const std::uint64_t last = (pos + length - 1) / sector_size;
  const std::uint64_t bit_mask = format::kSectorsPerChunk - 1;
  const std::uint64_t first_byte = (first & bit_mask) / 8;
  const std::uint64_t last_byte = (last & bit_mask) / 8;
  std::vector<std::uint8_t> bits(last_byte - first_byte + 1);
  VHDX_TRY(file_->read_at(bitmap.file_offset + first_byte, bits));

  const std::uint64_t block_start = block << block_shift_;
  const std::uint64_t end = pos + length;
  std::vector<SectorRun> runs;
  for (std::uint64_t sector = first; sector <= last;) {
    const std::uint64_t bit = (sector & bit_mask) - first_byte * 8;
    const std::uint8_t byte = bits[bit / 8];
    // A whole byte of equal bits (the common case: bitmaps are mostly all set or all clear)
    // is one step of 8 sectors.
    const bool whole_byte = bit % 8 == 0 && last - sector >= 7 && (byte == 0 || byte == 0xFF);
    const std::uint64_t count = whole_byte ? 8 : 1;
    const bool present = whole_byte ? byte != 0 : (byte >> (bit % 8)) & 1;
    const std::uint64_t from = std::max(pos, sector * sector_size);
    const std::uint64_t to = std::min(end, (sector + count) * sector_size);
    sector += count;
    if (!runs.empty() && runs.back().present == present) {
      runs.back().length += to - from;
      continue;
    }
    runs.push_back({from, to - from, present, mapping.file_offset + (from - block_start)});
  }
  return runs;
}

Result<std::vector<Extent>> Engine::block_status(std::uint64_t offset, std::uint64_t length) {
  VHDX_TRY(check_readable());
  auto end = checked_add(offset, length);
  if (!end || *end > info_.virtual_size)
    return Error(ErrorCode::kOutOfRange, "block status of " + num(length) + " bytes at offset " +
                                             num(offset) + " lies outside the virtual disk (" +
                                             num(info_.virtual_size) + " bytes)");
  std::vector<Extent> extents;
  const std::uint64_t block_mask = geometry_.block_size - 1;
  std::uint64_t pos = offset;
  while (pos < *end) {
    const std::uint64_t block = pos >> block_shift_;
    const std::uint64_t in_block = pos & block_mask;
    const std::uint64_t run = std::min<std::uint64_t>(*end - pos, geometry_.block_size - in_block);
    VHDX_ASSIGN_OR_RETURN(BlockMapping mapping, lookup_block(block));
    Extent extent;
    extent.offset = pos;
    extent.length = run;
    switch (static_cast<format::PayloadState>(mapping.state)) {
      case format::PayloadState::kFullyPresent:
        extent.kind = ExtentKind::kData;
        extent.file_offset = mapping.file_offset + in_block;
        break;
      case format::PayloadState::kNotPresent:
        extent.kind = ExtentKind::kUnallocated;
        break;
      case format::PayloadState::kUndefined:
      case format::PayloadState::kZero:
      case format::PayloadState::kUnmapped:
      case format::PayloadState::kUnmappedV095:
        extent.kind = ExtentKind::kZero;
        break;
      case format::PayloadState::kPartiallyPresent: {
        // Present sectors are data in this file; the others come from the parent: unallocated
        // here, resolved through the parent below when it is open.
        VHDX_ASSIGN_OR_RETURN(auto runs, sector_runs(block, mapping, pos, run));
        for (const SectorRun& r : runs) {
          Extent part;
          part.offset = r.offset;
          part.length = r.length;
          part.kind = r.present ? ExtentKind::kData : ExtentKind::kUnallocated;
          if (r.present) part.file_offset = r.file_offset;
          append_extent(extents, part);
        }
        pos += run;
        continue;
      }
      default:
        return Error(ErrorCode::kInternal, "unexpected payload state " + num(mapping.state));
    }
    append_extent(extents, extent);
    pos += run;
  }
  if (parent_) return resolve_through_parent(std::move(extents));
  return extents;
}

Result<void> Engine::for_each_bat_entry(const BatVisitor& visit) {
  const std::uint64_t total = geometry_.total_entries;
  std::vector<std::uint8_t> buffer(std::min(total * format::kBatEntrySize, kScanBytes));
  const std::uint64_t per_piece = buffer.size() / format::kBatEntrySize;
  for (std::uint64_t first = 0; first < total; first += per_piece) {
    const std::uint64_t count = std::min(per_piece, total - first);
    std::span<std::uint8_t> bytes(buffer.data(), count * format::kBatEntrySize);
    if (auto r = file_->read_at(bat_region_.offset + first * format::kBatEntrySize, bytes); !r)
      return std::move(r).error().with_context("BAT");
    for (std::uint64_t i = 0; i < count; ++i)
      VHDX_TRY(visit(first + i, load_le64(bytes, i * format::kBatEntrySize)));
  }
  return ok();
}

Result<BlockCounts> Engine::count_blocks() {
  VHDX_TRY(check_readable());
  BlockCounts counts;
  const std::uint64_t per_chunk = geometry_.chunk_ratio + 1;
  VHDX_TRY(for_each_bat_entry([&](std::uint64_t index, std::uint64_t raw) -> Result<void> {
    const std::uint64_t chunk = index / per_chunk;
    const bool bitmap = index % per_chunk == geometry_.chunk_ratio;
    const std::uint64_t block = bitmap ? chunk : index - chunk;
    // A differencing BAT ends with whole chunks: payload slots past the disk are padding.
    if (!bitmap && block >= geometry_.payload_blocks) return ok();
    // Fast path: states 0-3 with clear reserved bits are valid in every image and carry no
    // offset to check (the low 20 bits are the state and the reserved bits).
    if (!bitmap && (raw & 0xFFFFF) <= 3) {
      switch (raw & 7) {
        case 0:
          ++counts.not_present;
          break;
        case 1:
          ++counts.undefined;
          break;
        case 2:
          ++counts.zero;
          break;
        default:
          ++counts.unmapped;
          break;
      }
      return ok();
    }
    VHDX_ASSIGN_OR_RETURN(BlockMapping mapping, validate_entry(index, raw, bitmap, block));
    if (bitmap) return ok();
    switch (static_cast<format::PayloadState>(mapping.state)) {
      case format::PayloadState::kNotPresent:
        ++counts.not_present;
        break;
      case format::PayloadState::kUndefined:
        ++counts.undefined;
        break;
      case format::PayloadState::kZero:
        ++counts.zero;
        break;
      case format::PayloadState::kUnmapped:
      case format::PayloadState::kUnmappedV095:
        ++counts.unmapped;
        break;
      case format::PayloadState::kFullyPresent:
        ++counts.fully_present;
        break;
      case format::PayloadState::kPartiallyPresent:
        ++counts.partially_present;
        break;
      default:
        return Error(ErrorCode::kInternal, "unexpected payload state " + num(mapping.state));
    }
    return ok();
  }));
  return counts;
}

}  // namespace vhdx::image

// ---------------------------------------------------------------------------------------------
// Write path.

namespace vhdx::image {
namespace {

constexpr std::uint64_t kBatSectorSize = 4096;
constexpr std::uint64_t kZeroChunk = 1 * kMiB;
// Free slots remembered at most (8 bytes each in a std::set node).
constexpr std::size_t kMaxFreeSlots = 64 * 1024;

}  // namespace

Engine::~Engine() {
  // Best effort: a clean close leaves LogGuid zero. Errors cannot be reported from here.
  if (writable_ && !failed_ && (log_writer_ || !pending_bat_.empty())) (void)close();
}

Result<void> Engine::fail(Error error) {
  if (!failed_) {
    failed_ = true;
    failure_ = error.message();
  }
  return error;
}

Result<void> Engine::check_writable() {
  if (failed_)
    return Error(ErrorCode::kFailed, "image is in the failed state after an earlier error (" +
                                         failure_ + "); reopen it");
  if (!writable_) return Error(ErrorCode::kReadOnly, "image was opened read-only");
  if (has_parent_)
    return Error(ErrorCode::kUnsupported, "writing differencing images is not supported yet");
  return ok();
}

Result<void> Engine::sync() {
  // Through the log writer when there is one: it learns what is durable.
  if (log_writer_) return log_writer_->flush();
  return file_->flush();
}

Result<void> Engine::write_header_update(format::Header next) {
  // §4: the non-current slot, sequence + 1, flushed; done twice so both slots agree.
  for (int round = 0; round < 2; ++round) {
    if (header_.sequence_number == UINT64_MAX)
      return Error(ErrorCode::kUnsupported, "header: sequence number exhausted");
    next.sequence_number = header_.sequence_number + 1;
    std::vector<std::uint8_t> bytes(format::kHeaderSize);
    format::encode_header(next, bytes);
    const int slot = 1 - info_.current_header;
    if (auto r = file_->write_at(format::kHeaderOffsets[slot], bytes); !r)
      return std::move(r).error().with_context("header " + num(slot + 1));
    VHDX_TRY(sync());
    header_ = next;
    info_.headers[slot] = header_info(next);
    info_.current_header = slot;
  }
  return ok();
}

Result<void> Engine::replay_log() {
  if (log_.length > UINT32_MAX) return corrupt("log length does not fit 32 bits");
  // Find and plan first (both only read), so a log that cannot be replayed fails the open with
  // the file untouched.
  VHDX_ASSIGN_OR_RETURN(
      auto sequence,
      log::find_active_sequence(*file_, log_.offset, static_cast<std::uint32_t>(log_.length),
                                header_.log_guid));
  if (sequence) {
    VHDX_ASSIGN_OR_RETURN(const std::uint64_t size, file_->size());
    VHDX_TRY(log::plan_replay(*sequence, size));
  }
  // §4: the FileWriteGuid changes before anything is written, replay included. LogGuid stays,
  // so a crash during replay replays again.
  format::Header next = header_;
  next.file_write_guid = Guid::random();
  VHDX_TRY(write_header_update(next));
  file_guid_set_ = true;
  // No valid sequence: nothing was made durable under this GUID (a crash between the header
  // update naming it and its first entry), so there is nothing to replay.
  if (sequence) {
    VHDX_TRY(log::replay_in_place(*file_, *sequence));
    if (sequence->head_sequence() < UINT64_MAX) next_log_sequence_ = sequence->head_sequence() + 1;
  }
  // Replay flushed the file: clear the log (invariant 9).
  next = header_;
  next.log_guid = Guid();
  return write_header_update(next);
}

Result<void> Engine::replay_log_in_memory() {
  if (log_.length > UINT32_MAX) return corrupt("log length does not fit 32 bits");
  VHDX_ASSIGN_OR_RETURN(
      auto sequence,
      log::find_active_sequence(*file_, log_.offset, static_cast<std::uint32_t>(log_.length),
                                header_.log_guid));
  // No valid sequence: nothing was made durable under this GUID, so nothing was changed in place
  // either (invariant 7); the file reads as it is, as a writable open would leave it.
  if (!sequence) {
    replayed_in_memory_ = true;
    return ok();
  }
  // Check the plan first: OverlayFile::create consumes the file even when it fails.
  VHDX_ASSIGN_OR_RETURN(const std::uint64_t size, file_->size());
  VHDX_TRY(log::plan_replay(*sequence, size));
  info_.log_entries = sequence->entries.size();
  info_.log_first_sequence = sequence->entries.front().header.sequence_number;
  info_.log_last_sequence = sequence->head_sequence();
  VHDX_ASSIGN_OR_RETURN(auto overlay, log::OverlayFile::create(std::move(file_), *sequence));
  file_ = std::move(overlay);
  replayed_in_memory_ = true;
  return ok();
}

Result<void> Engine::begin_session(bool data_change) {
  format::Header next = header_;
  bool update = false;
  if (!file_guid_set_) {
    next.file_write_guid = Guid::random();
    update = true;
  }
  if (data_change && !data_guid_set_) {
    next.data_write_guid = Guid::random();
    update = true;
  }
  const bool new_log = !log_writer_;
  if (new_log) {
    if (log_.length == 0 || log_.length > UINT32_MAX)
      return Error(ErrorCode::kUnsupported,
                   "image has no usable log (length " + num(log_.length) + "); cannot write");
    next.log_guid = Guid::random();
    update = true;
  }
  if (!update) return ok();
  VHDX_TRY(write_header_update(next));
  file_guid_set_ = true;
  if (data_change) data_guid_set_ = true;
  if (!new_log) return ok();

  // An empty entry under the new GUID right away, so a crash leaves a valid (empty) sequence.
  VHDX_ASSIGN_OR_RETURN(std::uint64_t size, file_->size());
  VHDX_ASSIGN_OR_RETURN(
      log_writer_,
      log::LogWriter::create(*file_, log_.offset, static_cast<std::uint32_t>(log_.length),
                             header_.log_guid, next_log_sequence_, 0, size));
  VHDX_ASSIGN_OR_RETURN(std::uint64_t seq, log_writer_->append({}));
  VHDX_TRY(log_writer_->flush());
  log_writer_->mark_applied(seq);
  return ok();
}

Result<std::uint64_t> Engine::raw_entry(std::uint64_t index) {
  if (!pending_bat_.empty()) {
    auto it = pending_bat_.find(index);
    if (it != pending_bat_.end()) return it->second;
  }
  return bat_.entry(index);
}

Result<void> Engine::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  VHDX_TRY(check_writable());
  auto end = checked_add(offset, data.size());
  if (!end || *end > info_.virtual_size)
    return Error(ErrorCode::kOutOfRange, "write of " + num(data.size()) + " bytes at offset " +
                                             num(offset) + " lies outside the virtual disk (" +
                                             num(info_.virtual_size) + " bytes)");
  if (data.empty()) return ok();
  if (auto r = write_impl(offset, data); !r) return fail(std::move(r).error());
  return ok();
}

Result<void> Engine::write_impl(std::uint64_t offset, std::span<const std::uint8_t> data) {
  VHDX_TRY(begin_session(true));
  const std::uint64_t sector_size = info_.logical_sector_size;
  std::size_t done = 0;
  std::vector<std::uint8_t> sector;
  // A partial logical sector is read, patched and written whole.
  auto patch = [&](std::uint64_t pos) -> Result<void> {
    const std::uint64_t start = pos / sector_size * sector_size;
    sector.resize(sector_size);
    VHDX_TRY(read(start, sector));
    const std::size_t in = static_cast<std::size_t>(pos - start);
    const std::size_t n = std::min<std::size_t>(sector_size - in, data.size() - done);
    std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(done), n, sector.begin() + in);
    VHDX_TRY(write_aligned(start, sector));
    done += n;
    return ok();
  };
  if (offset % sector_size != 0) VHDX_TRY(patch(offset));
  const std::size_t middle = (data.size() - done) / sector_size * sector_size;
  if (middle > 0) {
    VHDX_TRY(write_aligned(offset + done, data.subspan(done, middle)));
    done += middle;
  }
  if (done < data.size()) VHDX_TRY(patch(offset + done));
  return ok();
}

Result<void> Engine::write_aligned(std::uint64_t offset, std::span<const std::uint8_t> data) {
  const std::uint64_t block_mask = geometry_.block_size - 1;
  std::size_t done = 0;
  while (done < data.size()) {
    const std::uint64_t pos = offset + done;
    const std::uint64_t in_block = pos & block_mask;
    const std::size_t run = static_cast<std::size_t>(
        std::min<std::uint64_t>(data.size() - done, geometry_.block_size - in_block));
    VHDX_TRY(write_block(pos >> block_shift_, in_block, data.subspan(done, run)));
    done += run;
  }
  return ok();
}

Result<void> Engine::write_block(std::uint64_t block, std::uint64_t in_block,
                                 std::span<const std::uint8_t> data) {
  VHDX_ASSIGN_OR_RETURN(BlockMapping mapping, lookup_block(block));
  if (mapping.state == static_cast<std::uint8_t>(format::PayloadState::kFullyPresent))
    return file_->write_at(mapping.file_offset + in_block, data);
  if (mapping.state == static_cast<std::uint8_t>(format::PayloadState::kPartiallyPresent))
    return Error(ErrorCode::kUnsupported, "writing partially present blocks is not supported");

  // §16: a new block (reading as zeros, see allocate_block), then the data. The BAT entry is
  // logged only after a flush (commit_bat).
  VHDX_ASSIGN_OR_RETURN(std::uint64_t at, allocate_block());
  VHDX_TRY(file_->write_at(at + in_block, data));
  unflushed_allocation_ = true;
  const std::uint64_t index = geometry_.payload_entry_index(block);
  return set_pending(
      index,
      format::encode_bat_entry(static_cast<std::uint8_t>(format::PayloadState::kFullyPresent), at));
}

Result<std::uint64_t> Engine::allocate_block() {
  if (!free_space_scanned_) VHDX_TRY(scan_free_space());
  if (!free_slots_.empty()) {
    // Invariant 11: a free slot is referenced by nothing durable. Punching it makes the parts
    // the caller does not write read as zeros; it is durable with the data, before the BAT entry.
    const std::uint64_t at = *free_slots_.begin();
    free_slots_.erase(free_slots_.begin());
    VHDX_TRY(file_->punch_hole(at, geometry_.block_size));
    return at;
  }
  // Past the end of the file: extending it makes the new block read as zeros without writing
  // them (sparse on the host).
  if (!file_end_known_) {
    VHDX_ASSIGN_OR_RETURN(file_end_, file_->size());
    file_end_known_ = true;
  }
  auto at = align_up(std::max(file_end_, format::kHeaderSectionSize), kMiB);
  if (!at) return Error(ErrorCode::kNoSpace, "block allocation: file offset overflows");
  auto end = checked_add(*at, geometry_.block_size);
  // FileOffsetMB is 44 bits.
  if (!end || *end > (std::uint64_t{1} << 63))
    return Error(ErrorCode::kNoSpace, "block allocation: file offset overflows");
  VHDX_TRY(file_->truncate(*end));
  file_end_ = *end;
  info_.file_size = std::max(info_.file_size, *end);
  return *at;
}

Result<void> Engine::trim_free_tail() {
  // Free slots that end the file are given back. Only with the log clear: a log entry's
  // FlushedFileOffset may name the longer size, and replay refuses a file shorter than that.
  VHDX_ASSIGN_OR_RETURN(const std::uint64_t size, file_->size());
  std::uint64_t end = size;
  while (!free_slots_.empty()) {
    const std::uint64_t last = *free_slots_.rbegin();
    if (last + geometry_.block_size < end) break;
    end = std::min(end, last);
    free_slots_.erase(last);
  }
  if (end == size) return ok();
  VHDX_TRY(file_->truncate(end));
  VHDX_TRY(file_->flush());
  file_end_ = end;
  info_.file_size = end;
  return ok();
}

Result<void> Engine::scan_free_space() {
  // Everything the file holds that something references: the header section, the log, every
  // region, every BAT entry with an offset (whatever its state, so nothing another writer left
  // there is ever overwritten) and blocks allocated in this session but not yet committed.
  struct Span {
    std::uint64_t offset;
    std::uint64_t length;
  };
  std::vector<Span> used;
  used.push_back({0, format::kHeaderSectionSize});
  if (log_.length > 0) used.push_back({log_.offset, log_.length});
  for (const auto& region : info_.regions) used.push_back({region.file_offset, region.length});
  const std::uint64_t per_chunk = geometry_.chunk_ratio + 1;
  VHDX_TRY(for_each_bat_entry([&](std::uint64_t index, std::uint64_t raw) -> Result<void> {
    const std::uint64_t offset = format::decode_bat_entry(raw).file_offset;
    if (offset == 0) return ok();
    const bool bitmap = index % per_chunk == geometry_.chunk_ratio;
    used.push_back({offset, bitmap ? kMiB : geometry_.block_size});
    return ok();
  }));
  for (const auto& [index, raw] : pending_bat_) {
    const std::uint64_t offset = format::decode_bat_entry(raw).file_offset;
    if (offset != 0) used.push_back({offset, geometry_.block_size});
  }
  std::sort(used.begin(), used.end(),
            [](const Span& a, const Span& b) { return a.offset < b.offset; });

  // Gaps before the end of the file, cut into 1 MiB-aligned block-sized slots. The list is
  // capped: slots beyond it are merely not reused (the file grows instead).
  VHDX_ASSIGN_OR_RETURN(const std::uint64_t file_size, file_->size());
  std::uint64_t cursor = 0;
  auto add_gap = [&](std::uint64_t gap_end) {
    auto slot = align_up(cursor, kMiB);
    while (slot && free_slots_.size() < kMaxFreeSlots) {
      auto slot_end = checked_add(*slot, geometry_.block_size);
      if (!slot_end || *slot_end > gap_end) break;
      free_slots_.insert(*slot);
      slot = *slot_end;
    }
  };
  for (const Span& span : used) {
    if (span.offset >= file_size) break;
    if (span.offset > cursor) add_gap(span.offset);
    auto end = checked_add(span.offset, span.length);
    cursor = std::max(cursor, end ? *end : UINT64_MAX);
  }
  if (cursor < file_size) add_gap(file_size);
  free_space_scanned_ = true;
  return ok();
}

Result<void> Engine::write_zeros(std::uint64_t file_offset, std::uint64_t length) {
  static const std::vector<std::uint8_t> zeros(kZeroChunk, 0);
  while (length > 0) {
    // Pieces end on kZeroChunk boundaries of the file, so no sector is split between two
    // writes (a crash between them would leave it half zeroed: neither old nor new).
    const std::uint64_t n = std::min(length, kZeroChunk - file_offset % kZeroChunk);
    VHDX_TRY(file_->write_at(file_offset, std::span(zeros).first(n)));
    file_offset += n;
    length -= n;
  }
  return ok();
}

Result<void> Engine::set_pending(std::uint64_t index, std::uint64_t raw) {
  pending_bat_[index] = raw;
  pending_sectors_.insert(index * format::kBatEntrySize / kBatSectorSize);
  if (pending_sectors_.size() >= kMaxPendingBatSectors) return commit_bat();
  return ok();
}

Result<void> Engine::commit_bat() {
  if (pending_bat_.empty()) return ok();
  if (!log_writer_) return Error(ErrorCode::kInternal, "BAT commit without a log");
  // Invariant 6: new payload data is durable before the entry pointing at it is logged.
  if (unflushed_allocation_) {
    VHDX_TRY(sync());
    unflushed_allocation_ = false;
  }
  // The whole 4 KiB BAT sectors holding the changed entries, as they will be.
  std::vector<format::LogUpdate> updates;
  for (const auto& [index, raw] : pending_bat_) {
    const std::uint64_t sector = index * format::kBatEntrySize / kBatSectorSize;
    const std::uint64_t file_offset = bat_region_.offset + sector * kBatSectorSize;
    if (updates.empty() || updates.back().file_offset != file_offset) {
      updates.emplace_back();
      updates.back().kind = format::LogUpdate::Kind::kData;
      updates.back().file_offset = file_offset;
      if (auto r = file_->read_at(file_offset, updates.back().data); !r)
        return std::move(r).error().with_context("BAT sector " + num(sector));
    }
    store_le64(updates.back().data, index * format::kBatEntrySize % kBatSectorSize, raw);
  }
  // Invariant 7: each entry logged and flushed, then written in place (flushed by a later
  // flush). One entry at a time, so every earlier entry is applied when the next is appended and
  // the writer can always reclaim ring space. Any prefix of the entries is a consistent BAT:
  // every block they publish is already durable.
  for (std::size_t first = 0; first < updates.size(); first += kMaxSectorsPerEntry) {
    const auto group =
        std::span(updates).subspan(first, std::min(kMaxSectorsPerEntry, updates.size() - first));
    VHDX_ASSIGN_OR_RETURN(const std::uint64_t sequence, log_writer_->append(group));
    VHDX_TRY(log_writer_->flush());
    for (const auto& update : group) VHDX_TRY(file_->write_at(update.file_offset, update.data));
    log_writer_->mark_applied(sequence);
  }
  for (const auto& [index, raw] : pending_bat_) bat_.update(index, raw);
  pending_bat_.clear();
  pending_sectors_.clear();
  // Invariant 11: the entries releasing these blocks are durable in the log, so nothing a
  // reopen could see points at them any more.
  std::vector<std::uint64_t> released;
  released.swap(pending_release_);
  for (std::uint64_t offset : released) {
    if (auto r = file_->punch_hole(offset, geometry_.block_size); !r)
      return std::move(r).error().with_context("releasing a discarded block");
    if (free_slots_.size() < kMaxFreeSlots) free_slots_.insert(offset);
  }
  return ok();
}

Result<void> Engine::discard(std::uint64_t offset, std::uint64_t length, bool unmap) {
  VHDX_TRY(check_writable());
  auto end = checked_add(offset, length);
  if (!end || *end > info_.virtual_size)
    return Error(ErrorCode::kOutOfRange, "discard of " + num(length) + " bytes at offset " +
                                             num(offset) + " lies outside the virtual disk (" +
                                             num(info_.virtual_size) + " bytes)");
  if (length == 0) return ok();
  if (auto r = discard_impl(offset, length, unmap); !r) return fail(std::move(r).error());
  return ok();
}

Result<void> Engine::discard_impl(std::uint64_t offset, std::uint64_t length, bool unmap) {
  using format::PayloadState;
  const std::uint64_t end = offset + length;
  const std::uint64_t block_mask = geometry_.block_size - 1;
  const auto target = unmap ? PayloadState::kUnmapped : PayloadState::kZero;
  std::uint64_t pos = offset;
  while (pos < end) {
    const std::uint64_t block = pos >> block_shift_;
    const std::uint64_t in_block = pos & block_mask;
    const std::uint64_t run = std::min<std::uint64_t>(end - pos, geometry_.block_size - in_block);
    VHDX_ASSIGN_OR_RETURN(BlockMapping mapping, lookup_block(block));
    const auto state = static_cast<PayloadState>(mapping.state);
    const bool whole = in_block == 0 && run == block_bytes(block);
    // A fixed image keeps its blocks allocated (§6 LeaveBlockAllocated): zero them in place, as
    // any partial range.
    if (state == PayloadState::kFullyPresent && (!whole || info_.leave_blocks_allocated)) {
      VHDX_TRY(begin_session(true));
      VHDX_TRY(write_zeros(mapping.file_offset + in_block, run));
    } else if (whole && state != PayloadState::kNotPresent && state != PayloadState::kZero &&
               state != target) {
      // Blocks that already read as zeros by definition are left alone: no change, no new
      // DataWriteGuid.
      VHDX_TRY(begin_session(true));
      // The block's space is freed once this change is durable in the log (commit_bat).
      if (state == PayloadState::kFullyPresent) pending_release_.push_back(mapping.file_offset);
      VHDX_TRY(set_pending(geometry_.payload_entry_index(block),
                           format::encode_bat_entry(static_cast<std::uint8_t>(target), 0)));
    }
    pos += run;
  }
  return ok();
}

Result<void> Engine::flush() {
  if (failed_)
    return Error(ErrorCode::kFailed, "image is in the failed state after an earlier error (" +
                                         failure_ + "); reopen it");
  if (!writable_ || !log_writer_) return ok();
  if (auto r = commit_bat(); !r) return fail(std::move(r).error());
  if (auto r = sync(); !r) return fail(std::move(r).error());
  return ok();
}

Result<void> Engine::close() {
  if (failed_)
    return Error(ErrorCode::kFailed, "image is in the failed state after an earlier error (" +
                                         failure_ + "); reopen it");
  if (!writable_ || (!log_writer_ && pending_bat_.empty())) return ok();
  if (auto r = close_impl(); !r) return fail(std::move(r).error());
  return ok();
}

Result<void> Engine::close_impl() {
  VHDX_TRY(commit_bat());
  VHDX_TRY(sync());  // the BAT written in place is durable: every entry is retired
  if (!log_writer_->idle())
    return Error(ErrorCode::kInternal, "close: log entries remain that are not applied");
  // Invariant 9: LogGuid cleared only once every logged update is in place and flushed.
  format::Header next = header_;
  next.log_guid = Guid();
  VHDX_TRY(write_header_update(next));
  next_log_sequence_ = log_writer_->next_sequence();
  log_writer_.reset();
  VHDX_TRY(trim_free_tail());
  file_guid_set_ = false;
  data_guid_set_ = false;
  return ok();
}

}  // namespace vhdx::image
