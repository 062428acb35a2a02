#include "ops/check.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string_view>
#include <vector>

#include "base/checked_math.h"
#include "base/endian.h"
#include "base/text.h"
#include "format/bat.h"
#include "format/constants.h"
#include "format/header.h"
#include "format/region_table.h"
#include "image/engine.h"

namespace vhdx::ops {

void CheckReport::add_corruption(std::string message) {
  ++corruption_count;
  if (corruptions.size() < kMaxMessages) corruptions.push_back(std::move(message));
}

namespace {

using format::kMiB;
using std::to_string;

// BAT bytes read per step of the pass over the table.
constexpr std::uint64_t kBatStep = kMiB;
constexpr std::uint64_t kQemuPayloadGap = 4 * kMiB;

// Something that occupies file space, for the overlap sweep.
struct Object {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  // kind: 0 header section, 1 log, 2 region (index = region number), 3 payload block,
  // 4 sector bitmap (index = chunk).
  int kind = 0;
  std::uint64_t index = 0;
};

std::string object_name(const Object& o, const ImageInfo& info) {
  switch (o.kind) {
    case 0:
      return "the header section";
    case 1:
      return "the log";
    case 2:
      return o.index < info.regions.size() ? info.regions[o.index].name + " region" : "a region";
    case 3:
      return "payload block " + to_string(o.index);
    default:
      return "the sector bitmap of chunk " + to_string(o.index);
  }
}

bool same_table(const format::RegionTable& a, const format::RegionTable& b) {
  if (a.entries.size() != b.entries.size()) return false;
  for (std::size_t i = 0; i < a.entries.size(); ++i) {
    const auto& x = a.entries[i];
    const auto& y = b.entries[i];
    if (x.guid != y.guid || x.file_offset != y.file_offset || x.length != y.length ||
        x.required != y.required)
      return false;
  }
  return true;
}

// The header section, decoded without the engine: both headers and both region tables, so a
// damaged copy the engine silently skips is still reported.
Result<void> check_header_section(File& file, std::uint64_t file_size, CheckReport& report) {
  if (file_size < format::kHeaderSectionSize) return ok();  // the engine's open reports it
  // Only the parts checked here are read: both headers and both region tables (140 KiB).
  std::vector<std::uint8_t> bytes(format::kRegionTableSize);
  Result<format::Header> headers[2] = {Error(ErrorCode::kInternal, "not read"),
                                       Error(ErrorCode::kInternal, "not read")};
  for (int i = 0; i < 2; ++i) {
    auto header_bytes = std::span(bytes).first(format::kHeaderSize);
    VHDX_TRY(file.read_at(format::kHeaderOffsets[i], header_bytes));
    headers[i] = format::decode_header(header_bytes);
  }
  if (headers[0] && headers[1]) {
    // Equal sequence numbers are an error unless the two are identical (the engine decides).
  } else if (headers[0] || headers[1]) {
    // One slot torn or damaged: what a crash during a header update (or between the two writes
    // of a new image) leaves. The other header is current and correct, and the next update
    // writes this slot, so the image is sound: a warning, not a corruption.
    const int bad = headers[0] ? 1 : 0;
    report.warnings.push_back(
        headers[bad].error().message_with_context("header " + to_string(bad + 1)) +
        " (torn or damaged; header " + to_string(2 - bad) +
        " is current and the next update of the image rewrites this one)");
  } else {
    for (int i = 0; i < 2; ++i)
      report.add_corruption(headers[i].error().message_with_context("header " + to_string(i + 1)));
  }
  Result<format::RegionTable> tables[2] = {Error(ErrorCode::kInternal, "not read"),
                                           Error(ErrorCode::kInternal, "not read")};
  for (int i = 0; i < 2; ++i) {
    VHDX_TRY(file.read_at(format::kRegionTableOffsets[i], bytes));
    tables[i] = format::decode_region_table(bytes);
  }
  for (int i = 0; i < 2; ++i) {
    if (!tables[i] && tables[1 - i])
      report.add_corruption(
          tables[i].error().message_with_context("region table " + to_string(i + 1)));
  }
  if (tables[0] && tables[1] && !same_table(*tables[0], *tables[1]))
    report.add_corruption("region tables: the two copies differ");
  return ok();
}

// Space a writer may hold without referencing it, which is therefore not a leak: QEMU (7.2)
// starts payload 4 MiB past the end of its log and regions, and gives a fixed image the space
// of its whole disk there while leaving the blocks in the ZERO state, without offsets.
std::uint64_t reserved_end(const ImageInfo& info) {
  std::uint64_t end = format::kHeaderSectionSize;
  const HeaderInfo& header = info.headers[info.current_header];
  end = std::max(end, header.log_offset + header.log_length);
  for (const RegionInfo& r : info.regions) end = std::max(end, r.file_offset + r.length);
  end = *align_up(end, format::kObjectAlignment) + kQemuPayloadGap;
  if (info.leave_blocks_allocated) end += *align_up(info.virtual_size, format::kObjectAlignment);
  return end;
}

// The log facts of an opened image. The engine's read-only open already replayed a dirty log in
// memory when it could; when it could not, reads fail with the reason, which is kept here.
void fill_log_report(image::Engine& engine, CheckLogReport& log) {
  const ImageInfo& info = engine.info();
  const HeaderInfo& header = info.headers[info.current_header];
  log.known = true;
  log.state = info.log_state;
  log.guid = header.log_guid;
  log.offset = header.log_offset;
  log.length = header.log_length;
  log.entries = info.log_entries;
  log.first_sequence = info.log_first_sequence;
  log.last_sequence = info.log_last_sequence;
  if (info.log_state != LogState::kNeedsReplay) return;
  if (engine.log_replayed_in_memory()) {
    log.replayed = true;
    return;
  }
  auto readable = engine.check_readable();
  if (readable) {
    log.replay_error = "the open did not replay it";
    return;
  }
  // The engine wraps the replay's own reason: "... (log replay (in memory): log: REASON)".
  std::string reason = readable.error().message();
  constexpr std::string_view kWrapper = "(log replay (in memory): ";
  if (const auto at = reason.find(kWrapper); at != std::string::npos && reason.back() == ')')
    reason = reason.substr(at + kWrapper.size(), reason.size() - at - kWrapper.size() - 1);
  if (reason.starts_with("log: ")) reason.erase(0, 5);
  log.replay_error = reason;
}

class BatChecker {
 public:
  BatChecker(image::Engine& engine, CheckReport& report)
      : engine_(engine), info_(engine.info()), report_(report) {}

  Result<void> run() {
    const RegionInfo* bat = nullptr;
    for (std::size_t i = 0; i < info_.regions.size(); ++i) {
      const RegionInfo& r = info_.regions[i];
      if (r.name == "BAT") bat = &r;
      objects_.push_back({r.file_offset, r.length, 2, i});
    }
    objects_.push_back({0, format::kHeaderSectionSize, 0, 0});
    const HeaderInfo& header = info_.headers[info_.current_header];
    if (header.log_length != 0) objects_.push_back({header.log_offset, header.log_length, 1, 0});
    if (bat == nullptr) return Error(ErrorCode::kInternal, "check: no BAT region after open");

    const std::uint64_t entries = info_.bat_entries;
    const std::uint64_t group = info_.chunk_ratio + 1;
    std::vector<std::uint8_t> buffer;
    for (std::uint64_t first = 0; first < entries; first += kBatStep / 8) {
      const std::uint64_t count = std::min(kBatStep / 8, entries - first);
      buffer.resize(static_cast<std::size_t>(count * 8));
      VHDX_TRY(engine_.file().read_at(bat->file_offset + first * 8, buffer));
      for (std::uint64_t k = 0; k < count; ++k) {
        const std::uint64_t index = first + k;
        const std::uint64_t raw = load_le64(buffer, static_cast<std::size_t>(k * 8));
        if (index % group == info_.chunk_ratio) {
          check_bitmap_entry(index, index / group, raw);
          partial_block_.reset();  // the chunk ends with its bitmap entry
        } else {
          VHDX_TRY(check_payload_entry(index - index / group));
        }
      }
    }
    sweep();
    return ok();
  }

 private:
  Result<void> check_payload_entry(std::uint64_t block) {
    if (block >= info_.payload_blocks) return ok();
    auto mapping = engine_.lookup_block(block);
    if (!mapping) {
      if (mapping.error().code() != ErrorCode::kCorrupt) return std::move(mapping).error();
      report_.add_corruption(mapping.error().message_with_context("BAT"));
      return ok();
    }
    const auto state = static_cast<format::PayloadState>(mapping->state);
    if (state != format::PayloadState::kFullyPresent &&
        state != format::PayloadState::kPartiallyPresent)
      return ok();
    ++report_.allocated_blocks;
    if (state == format::PayloadState::kPartiallyPresent && !partial_block_) partial_block_ = block;
    std::uint64_t length = info_.block_size;
    // A last block may end with the file; the engine checked the part that holds the disk.
    if (mapping->file_offset + length > info_.file_size) {
      const std::uint64_t used = info_.virtual_size - block * info_.block_size;
      length = *align_up(std::min<std::uint64_t>(used, info_.block_size), format::kObjectAlignment);
    }
    objects_.push_back({mapping->file_offset, length, 3, block});
    return ok();
  }

  void check_bitmap_entry(std::uint64_t index, std::uint64_t chunk, std::uint64_t raw) {
    const format::BatEntry entry = format::decode_bat_entry(raw);
    // Worded as the engine words the same faults (Engine::validate_entry).
    const std::string what =
        "BAT entry " + to_string(index) + " (sector bitmap of chunk " + to_string(chunk) + ")";
    if (entry.reserved_bits_set) {
      report_.add_corruption(what + ": reserved bits are set (raw entry " + hex(raw) + ")");
      return;
    }
    if (!format::is_valid_bitmap_state(entry.state, engine_.has_parent())) {
      report_.add_corruption(
          what + ": state " + to_string(entry.state) + " is not a valid sector bitmap state for " +
          (engine_.has_parent() ? "a differencing image" : "an image without a parent"));
      return;
    }
    if (entry.state != static_cast<std::uint8_t>(format::BitmapState::kPresent)) {
      // A partially present block's sectors are told apart by its chunk's bitmap.
      if (partial_block_)
        report_.add_corruption(what + ": not present, but payload block " +
                               to_string(*partial_block_) + " of the chunk is partially present");
      return;
    }
    const std::uint64_t offset = entry.file_offset;
    if (offset < format::kHeaderSectionSize) {
      report_.add_corruption(what + ": block at file offset " + to_string(offset) +
                             " lies in the header section");
      return;
    }
    if (offset > info_.file_size || info_.file_size - offset < format::kSectorBitmapBlockSize) {
      report_.add_corruption(what + ": block at file offset " + to_string(offset) + " (" +
                             to_string(format::kSectorBitmapBlockSize) +
                             " bytes) extends past the end of the file (" +
                             to_string(info_.file_size) + " bytes)");
      return;
    }
    objects_.push_back({offset, format::kSectorBitmapBlockSize, 4, chunk});
  }

  // Sorts everything by offset and reports each object that starts before an earlier one ends.
  void sweep() {
    std::sort(objects_.begin(), objects_.end(), [](const Object& a, const Object& b) {
      return a.offset != b.offset ? a.offset < b.offset : a.kind < b.kind;
    });
    std::uint64_t end = 0;
    const Object* holder = nullptr;
    for (const Object& o : objects_) {
      if (o.length == 0) continue;
      if (holder != nullptr && o.offset < end) {
        // Overlaps with the log or a known region are the engine's to report for payload.
        report_.add_corruption("file space at offset " + to_string(o.offset) + ": " +
                               object_name(o, info_) + " overlaps " + object_name(*holder, info_));
      }
      const std::uint64_t o_end = o.offset + o.length;  // bounded by the file size or checked
      if (o_end > end) {
        end = o_end;
        holder = &o;
      }
    }
    report_.image_end_offset = end;
  }

  image::Engine& engine_;
  const ImageInfo& info_;
  CheckReport& report_;
  std::vector<Object> objects_;
  std::optional<std::uint64_t> partial_block_;  // first PARTIALLY_PRESENT block of this chunk
};

}  // namespace

Result<CheckReport> check_image(std::unique_ptr<File> file) {
  CheckReport report;
  VHDX_ASSIGN_OR_RETURN(report.file_size, file->size());
  // The header section as the file holds it; redone below when a replayed log changed it.
  CheckReport section;
  VHDX_TRY(check_header_section(*file, report.file_size, section));

  OpenOptions options;
  options.read_only = true;
  options.allow_dirty_log = true;
  auto engine = image::Engine::open(std::move(file), options);
  if (!engine) {
    for (std::string& m : section.corruptions) report.add_corruption(std::move(m));
    report.warnings = std::move(section.warnings);
    switch (engine.error().code()) {
      case ErrorCode::kCorrupt:
        // Both headers invalid: the engine names one the header pass already reported.
        if (std::find(report.corruptions.begin(), report.corruptions.end(),
                      engine.error().message()) == report.corruptions.end())
          report.add_corruption(engine.error().message());
        return report;
      case ErrorCode::kUnsupported:
      case ErrorCode::kNeedsLogReplay:
        report.check_errors.push_back(engine.error().message());
        return report;
      default:
        return std::move(engine).error();
    }
  }
  image::Engine& e = **engine;
  const ImageInfo& info = e.info();
  fill_log_report(e, report.log);
  // The log may update the region tables: check what a replayed file holds (an overlay).
  if (report.log.replayed && report.log.entries != 0) {
    section = CheckReport{};
    VHDX_TRY(check_header_section(e.file(), info.file_size, section));
  }
  for (std::string& m : section.corruptions) report.add_corruption(std::move(m));
  report.warnings = std::move(section.warnings);
  report.file_size = info.file_size;
  report.total_blocks = e.payload_blocks();
  if (!report.log.replay_error.empty()) {
    report.add_corruption("log: the active sequence cannot be replayed: " +
                          report.log.replay_error);
    return report;
  }
  VHDX_TRY(BatChecker(e, report).run());
  const std::uint64_t used = std::max(report.image_end_offset, reserved_end(info));
  if (report.file_size > used) {
    report.leaked_bytes = report.file_size - used;
    report.leaked_clusters = ceil_div(report.leaked_bytes, format::kObjectAlignment);
  }
  return report;
}

}  // namespace vhdx::ops
