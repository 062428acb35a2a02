#include "render.h"

#include <fmt/format.h>

#include <algorithm>

#include "human.h"

namespace vhdx::cli {
namespace {

constexpr std::uint64_t kHeaderOffsets[2] = {64 * 1024, 128 * 1024};

const char* type_name(DiskType type) {
  switch (type) {
    case DiskType::kFixed:
      return "fixed";
    case DiskType::kDynamic:
      return "dynamic";
    case DiskType::kDifferencing:
      return "differencing";
  }
  return "unknown";
}

const char* log_state_name(LogState state) {
  return state == LogState::kNeedsReplay ? "needs-replay" : "empty";
}

const HeaderInfo& current_header(const ImageInfo& info) {
  return info.headers[info.current_header == 1 ? 1 : 0];
}

std::uint64_t allocated_blocks(const BlockCounts& counts) {
  return counts.fully_present + counts.partially_present;
}

std::string size_with_bytes(std::uint64_t bytes) {
  return fmt::format("{} ({} bytes)", human_size(bytes), bytes);
}

}  // namespace

nlohmann::ordered_json info_to_json(const std::string& filename, const ImageInfo& info,
                                    const BlockCountsOrReason& blocks,
                                    const ParentChainView& chain) {
  using Json = nlohmann::ordered_json;
  const HeaderInfo& current = current_header(info);
  Json j;
  j["filename"] = filename;
  j["format"] = "vhdx";
  j["format-version"] = info.format_version;
  j["creator"] = info.creator;
  j["type"] = type_name(info.type);
  j["virtual-size"] = info.virtual_size;
  j["block-size"] = info.block_size;
  j["cluster-size"] = info.block_size;  // qemu-img's name for the same thing
  j["logical-sector-size"] = info.logical_sector_size;
  j["physical-sector-size"] = info.physical_sector_size;
  j["leave-blocks-allocated"] = info.leave_blocks_allocated;
  j["page83-id"] = info.virtual_disk_id.to_string();
  j["file-size"] = info.file_size;
  j["actual-size"] = info.actual_size;
  j["dirty-flag"] = info.log_state == LogState::kNeedsReplay;
  j["log"] = Json{{"state", log_state_name(info.log_state)},
                  {"guid", current.log_guid.to_string()},
                  {"version", current.log_version},
                  {"offset", current.log_offset},
                  {"length", current.log_length},
                  {"entries", info.log_entries}};
  if (info.log_entries > 0) {
    j["log"]["sequence-first"] = info.log_first_sequence;
    j["log"]["sequence-last"] = info.log_last_sequence;
  }
  Json headers = Json::array();
  for (int i = 0; i < 2; ++i) {
    const HeaderInfo& h = info.headers[i];
    Json hj;
    hj["file-offset"] = kHeaderOffsets[i];
    hj["current"] = i == info.current_header;
    hj["valid"] = h.valid;
    if (!h.valid) {
      hj["invalid-reason"] = h.invalid_reason;
    } else {
      hj["sequence-number"] = h.sequence_number;
      hj["file-write-guid"] = h.file_write_guid.to_string();
      hj["data-write-guid"] = h.data_write_guid.to_string();
      hj["log-guid"] = h.log_guid.to_string();
      hj["log-version"] = h.log_version;
      hj["version"] = h.version;
      hj["log-offset"] = h.log_offset;
      hj["log-length"] = h.log_length;
    }
    headers.push_back(std::move(hj));
  }
  j["headers"] = std::move(headers);
  j["region-table"] = info.region_table_used;
  Json regions = Json::array();
  for (const RegionInfo& r : info.regions) {
    regions.push_back(Json{{"name", r.name},
                           {"guid", r.guid.to_string()},
                           {"file-offset", r.file_offset},
                           {"length", r.length},
                           {"required", r.required}});
  }
  j["regions"] = std::move(regions);
  Json metadata = Json::array();
  for (const MetadataItemInfo& m : info.metadata_items) {
    metadata.push_back(Json{{"name", m.name},
                            {"item-id", m.item_id.to_string()},
                            {"offset", m.offset},
                            {"length", m.length},
                            {"is-user", m.is_user},
                            {"is-virtual-disk", m.is_virtual_disk},
                            {"is-required", m.is_required}});
  }
  j["metadata"] = std::move(metadata);
  j["chunk-ratio"] = info.chunk_ratio;
  j["payload-blocks"] = info.payload_blocks;
  j["bat-entries"] = info.bat_entries;
  if (blocks.counts) {
    const BlockCounts& c = *blocks.counts;
    j["blocks"] = Json{{"total", info.payload_blocks},
                       {"allocated", allocated_blocks(c)},
                       {"fully-present", c.fully_present},
                       {"partially-present", c.partially_present},
                       {"zero", c.zero},
                       {"unmapped", c.unmapped},
                       {"undefined", c.undefined},
                       {"not-present", c.not_present}};
  } else {
    j["blocks"] = nullptr;
    j["blocks-unavailable"] = blocks.unavailable_reason;
  }
  if (info.parent_locator_type) {
    Json entries = Json::object();
    for (const auto& [key, value] : info.parent_locator) entries[key] = value;
    j["parent-locator"] =
        Json{{"type", info.parent_locator_type->to_string()}, {"entries", std::move(entries)}};
  }
  if (info.type == DiskType::kDifferencing) {
    if (chain.error.empty())
      j["parent-chain"] = chain.files;
    else
      j["parent-chain-error"] = chain.error;
  }
  return j;
}

std::string info_to_human(const std::string& filename, const ImageInfo& info,
                          const BlockCountsOrReason& blocks, const ParentChainView& chain) {
  const HeaderInfo& current = current_header(info);
  std::vector<std::pair<std::string, std::string>> lines = {
      {"image", filename},
      {"file format", "vhdx"},
      {"format version", std::to_string(info.format_version)},
      {"creator", info.creator},
      {"type", type_name(info.type)},
      {"virtual size", size_with_bytes(info.virtual_size)},
      {"disk size", human_size(info.actual_size)},
      {"file size", size_with_bytes(info.file_size)},
      {"block size", size_with_bytes(info.block_size)},
      {"logical sector size", std::to_string(info.logical_sector_size)},
      {"physical sector size", std::to_string(info.physical_sector_size)},
      {"leave blocks allocated", info.leave_blocks_allocated ? "yes" : "no"},
      {"page 83 id", info.virtual_disk_id.to_string()},
      {"log",
       fmt::format("{} (guid {}, offset {:#x}, length {:#x}){}",
                   info.log_state == LogState::kNeedsReplay ? "needs replay" : "empty",
                   current.log_guid.to_string(), current.log_offset, current.log_length,
                   info.log_entries == 0
                       ? std::string()
                       : fmt::format(", {} {}, sequence {}..{}, replayed in memory",
                                     info.log_entries, info.log_entries == 1 ? "entry" : "entries",
                                     info.log_first_sequence, info.log_last_sequence))},
      {"bat entries", fmt::format("{} ({} payload blocks, chunk ratio {})", info.bat_entries,
                                  info.payload_blocks, info.chunk_ratio)},
  };
  if (blocks.counts) {
    const BlockCounts& c = *blocks.counts;
    lines.emplace_back("allocated blocks",
                       fmt::format("{} ({} fully present, {} partially present)",
                                   allocated_blocks(c), c.fully_present, c.partially_present));
    lines.emplace_back("zero blocks", std::to_string(c.zero));
    lines.emplace_back("unmapped blocks", std::to_string(c.unmapped));
    lines.emplace_back("undefined blocks", std::to_string(c.undefined));
    lines.emplace_back("not present blocks", std::to_string(c.not_present));
  } else {
    lines.emplace_back("blocks", "unavailable: " + blocks.unavailable_reason);
  }
  std::size_t width = 0;
  for (const auto& line : lines) width = std::max(width, line.first.size());
  std::string out;
  for (const auto& [key, value] : lines) {
    out += fmt::format("{:<{}} {}\n", key + ":", width + 1, value);
  }

  out += "headers:\n";
  for (int i = 0; i < 2; ++i) {
    const HeaderInfo& h = info.headers[i];
    if (!h.valid) {
      out += fmt::format("    header {} at {:#x}: invalid: {}\n", i + 1, kHeaderOffsets[i],
                         h.invalid_reason);
      continue;
    }
    out += fmt::format("    header {} at {:#x}: {}sequence number {}\n", i + 1, kHeaderOffsets[i],
                       i == info.current_header ? "current, " : "", h.sequence_number);
    out += fmt::format("        file write guid: {}\n", h.file_write_guid.to_string());
    out += fmt::format("        data write guid: {}\n", h.data_write_guid.to_string());
    out += fmt::format("        log guid:        {}\n", h.log_guid.to_string());
    out += fmt::format("        log:             version {}, offset {:#x}, length {:#x}\n",
                       h.log_version, h.log_offset, h.log_length);
    out += fmt::format("        version:         {}\n", h.version);
  }

  out += fmt::format("regions (table {}):\n", info.region_table_used + 1);
  for (const RegionInfo& r : info.regions) {
    out += fmt::format("    {:<9} {}  offset {:#x}  length {:#x}{}\n", r.name, r.guid.to_string(),
                       r.file_offset, r.length, r.required ? "  required" : "");
  }

  out += "metadata items:\n";
  std::size_t name_width = 0;
  for (const MetadataItemInfo& m : info.metadata_items) {
    name_width = std::max(name_width, m.name.size());
  }
  for (const MetadataItemInfo& m : info.metadata_items) {
    std::string flags;
    if (m.is_user) flags += "  user";
    if (m.is_virtual_disk) flags += "  virtual-disk";
    if (m.is_required) flags += "  required";
    out += fmt::format("    {:<{}}  {}  offset {:#x}  length {}{}\n", m.name, name_width,
                       m.item_id.to_string(), m.offset, m.length, flags);
  }

  if (info.parent_locator_type) {
    out += "parent locator:\n";
    std::size_t key_width = 4;
    for (const auto& entry : info.parent_locator) {
      key_width = std::max(key_width, entry.first.size());
    }
    out += fmt::format("    {:<{}} {}\n", "type:", key_width + 1,
                       info.parent_locator_type->to_string());
    for (const auto& [key, value] : info.parent_locator) {
      out += fmt::format("    {:<{}} {}\n", key + ":", key_width + 1, value);
    }
  }
  if (info.type == DiskType::kDifferencing) {
    if (!chain.error.empty()) {
      out += "parent chain: not opened: " + chain.error + "\n";
    } else if (!chain.files.empty()) {
      out += "parent chain:\n";
      for (std::size_t i = 0; i < chain.files.size(); ++i)
        out += fmt::format("    {}: {}\n", i + 1, chain.files[i]);
    }
  }
  return out;
}

MapEntry map_entry_from_extent(const Extent& extent, bool differencing) {
  MapEntry e;
  e.start = extent.offset;
  e.length = extent.length;
  e.depth = extent.depth;
  switch (extent.kind) {
    case ExtentKind::kData:
      e.present = true;
      e.data = true;
      e.offset = extent.file_offset;
      break;
    case ExtentKind::kZero:
      e.present = true;
      e.zero = true;
      break;
    case ExtentKind::kUnallocated:
      e.zero = !differencing;
      break;
  }
  return e;
}

void append_merged(std::vector<MapEntry>& entries, const MapEntry& entry) {
  if (!entries.empty()) {
    MapEntry& last = entries.back();
    bool same = last.present == entry.present && last.zero == entry.zero &&
                last.data == entry.data && last.depth == entry.depth &&
                last.start + last.length == entry.start &&
                last.offset.has_value() == entry.offset.has_value();
    if (same && last.offset) same = *last.offset + last.length == *entry.offset;
    if (same) {
      last.length += entry.length;
      return;
    }
  }
  entries.push_back(entry);
}

Result<void> walk_map(const BlockStatusFn& block_status, std::uint64_t start, std::uint64_t length,
                      bool differencing, std::uint64_t window,
                      const std::function<void(const MapEntry&)>& emit) {
  if (window == 0) window = 1;
  std::vector<MapEntry> pending;
  std::uint64_t pos = start;
  std::uint64_t end = start + length;  // callers keep start+length inside the disk
  while (pos < end) {
    std::uint64_t n = std::min(window, end - pos);
    auto extents = block_status(pos, n);
    if (!extents) return std::move(extents).error();
    std::uint64_t covered = pos;
    for (const Extent& extent : *extents) {
      if (extent.offset != covered || extent.length == 0 || extent.length > pos + n - covered) {
        return Error(ErrorCode::kInternal,
                     fmt::format("block status: extent at {:#x} (length {:#x}) does not "
                                 "continue the map at {:#x}",
                                 extent.offset, extent.length, covered));
      }
      covered += extent.length;
      append_merged(pending, map_entry_from_extent(extent, differencing));
      // Everything but the last entry is final: a later extent can only extend the last one.
      while (pending.size() > 1) {
        emit(pending.front());
        pending.erase(pending.begin());
      }
    }
    if (covered != pos + n) {
      return Error(
          ErrorCode::kInternal,
          fmt::format("block status: extents end at {:#x}, short of {:#x}", covered, pos + n));
    }
    pos += n;
  }
  for (const MapEntry& e : pending) emit(e);
  return ok();
}

std::string map_entry_json(const MapEntry& e) {
  std::string text = fmt::format(
      R"({{ "start": {}, "length": {}, "depth": {}, "present": {}, "zero": {}, "data": {})",
      e.start, e.length, e.depth, e.present, e.zero, e.data);
  if (e.offset) text += fmt::format(R"(, "offset": {})", *e.offset);
  return text + "}";
}

std::string map_human_header() {
  return fmt::format("{:<16}{:<16}{:<16}{}\n", "Offset", "Length", "Mapped to", "File");
}

std::string map_human_line(const MapEntry& e, const std::string& filename) {
  // "%#x" style: 0 prints as "0", everything else with a 0x prefix.
  auto hex = [](std::uint64_t v) { return v == 0 ? std::string("0") : fmt::format("{:#x}", v); };
  return fmt::format("{:<16}{:<16}{:<16}{}\n", hex(e.start), hex(e.length),
                     hex(e.offset.value_or(0)), filename);
}

}  // namespace vhdx::cli
