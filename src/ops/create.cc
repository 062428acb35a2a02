#include "ops/create.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "base/checked_math.h"
#include "base/utf16.h"
#include "format/bat.h"
#include "format/constants.h"
#include "format/file_identifier.h"
#include "format/header.h"
#include "format/metadata.h"
#include "format/parent_locator.h"
#include "format/region_table.h"

#ifndef VHDX_VERSION
#define VHDX_VERSION "unknown"
#endif

namespace vhdx::ops {
namespace {

using format::kMiB;

// BAT entries held in memory while writing (1 MiB of entries).
constexpr std::uint64_t kBatPageEntries = kMiB / format::kBatEntrySize;

std::string size_text(std::uint64_t bytes) {
  if (bytes != 0 && bytes % kMiB == 0) return std::to_string(bytes / kMiB) + " MiB";
  return std::to_string(bytes) + " bytes";
}

Error invalid(const std::string& option, const std::string& reason) {
  return Error(ErrorCode::kInvalidArgument, "create: " + option + ": " + reason);
}

// Metadata items packed at +64 KiB in Windows' order; the parent locator (differencing only)
// follows the 40 bytes of the five system items.
constexpr std::uint32_t kSystemItemsLength = 40;
constexpr std::uint64_t kMetadataRegionLength = kMiB;
// The longest UTF-16 string a locator entry's u16 byte length can describe (an even count).
constexpr std::size_t kMaxLocatorStringBytes = 0xFFFE;

Result<void> check_locator_string(const std::string& key, const std::string& text,
                                  const char* what) {
  const std::string where = "parent locator " + std::string(what) + " '" + key + "'";
  if (text.empty()) return invalid(where, "is empty");
  if (text.find('\0') != std::string::npos) return invalid(where, "holds a NUL byte");
  auto utf16 = utf8_to_utf16le(text);
  if (!utf16) return invalid(where, "is not valid UTF-8");
  if (utf16->size() > kMaxLocatorStringBytes)
    return invalid(where,
                   "is longer than " + std::to_string(kMaxLocatorStringBytes) + " bytes of UTF-16");
  return ok();
}

}  // namespace

std::string creator_string() { return "libvhdx " VHDX_VERSION; }

Result<std::vector<std::uint8_t>> encode_parent_link(const ParentLink& link) {
  format::ParentLocator locator;
  locator.locator_type = format::kVhdxParentLocatorType;
  locator.entries.emplace_back("parent_linkage", "{" + link.data_write_guid.to_string() + "}");
  std::set<std::string> keys = {"parent_linkage"};
  for (const auto& [key, value] : link.paths) {
    VHDX_TRY(check_locator_string(key, key, "key"));
    VHDX_TRY(check_locator_string(key, value, "value of"));
    if (!keys.insert(key).second) return invalid("parent locator key '" + key + "'", "repeats");
    locator.entries.emplace_back(key, value);
  }
  std::vector<std::uint8_t> item = format::encode_parent_locator(locator);
  const std::uint64_t room =
      kMetadataRegionLength - format::kMetadataTableSize - kSystemItemsLength;
  if (item.size() > room)
    return invalid("parent locator", std::to_string(item.size()) + " bytes is more than the " +
                                         std::to_string(room) + " the metadata region has left");
  return item;
}

Result<NewImageLayout> plan_image(const CreateParams& p) {
  const bool differencing = p.type == DiskType::kDifferencing;
  if (p.type != DiskType::kFixed && p.type != DiskType::kDynamic && !differencing)
    return invalid("subformat", "only fixed, dynamic and differencing images can be created");
  if (differencing && !p.parent)
    return invalid("subformat", "a differencing image needs a parent to link to");
  if (!differencing && p.parent)
    return invalid("subformat", std::string(p.type == DiskType::kFixed ? "fixed" : "dynamic") +
                                    " images have no parent (a parent makes a differencing image)");
  if (p.parent) VHDX_TRY(encode_parent_link(*p.parent));
  if (p.logical_sector_size != 512 && p.logical_sector_size != 4096)
    return invalid("logical_sector_size",
                   std::to_string(p.logical_sector_size) + " is not 512 or 4096");
  if (p.physical_sector_size != 512 && p.physical_sector_size != 4096)
    return invalid("physical_sector_size",
                   std::to_string(p.physical_sector_size) + " is not 512 or 4096");
  if (p.virtual_size == 0) return invalid("size", "the virtual size must not be zero");
  if (p.virtual_size > format::kMaxVirtualSize)
    return invalid("size", std::to_string(p.virtual_size) + " bytes is more than 64 TiB");
  if (p.virtual_size % p.logical_sector_size != 0)
    return invalid("size", std::to_string(p.virtual_size) +
                               " bytes is not a multiple of the logical sector size (" +
                               std::to_string(p.logical_sector_size) + ")");
  if (!is_power_of_two(p.block_size) || p.block_size < format::kMinBlockSize ||
      p.block_size > format::kMaxBlockSize)
    return invalid("block_size",
                   size_text(p.block_size) + " is not a power of two from 1 MiB to 256 MiB");
  if (p.log_size == 0 || p.log_size % kMiB != 0)
    return invalid("log_size", size_text(p.log_size) + " is not a non-zero multiple of 1 MiB");

  auto geometry = format::compute_bat_geometry(p.block_size, p.virtual_size, p.logical_sector_size,
                                               differencing);
  if (!geometry) return Error(ErrorCode::kInvalidArgument, "create: " + geometry.error().message());

  NewImageLayout layout;
  layout.log_offset = format::kHeaderSectionSize;
  layout.log_length = p.log_size;
  layout.metadata_offset = layout.log_offset + layout.log_length;
  layout.metadata_length = kMetadataRegionLength;
  layout.bat_offset = layout.metadata_offset + layout.metadata_length;
  layout.bat_length = geometry->min_region_length();
  layout.payload_offset = layout.bat_offset + layout.bat_length;
  layout.payload_blocks = geometry->payload_blocks;
  layout.chunk_ratio = geometry->chunk_ratio;
  layout.bat_entries = geometry->total_entries;
  // BAT region lengths are u32 on disk; 64 TiB in 1 MiB blocks needs 512 MiB, far below.
  if (layout.bat_length > 0xFFFFFFFFu) return invalid("block_size", "BAT region too large");
  return layout;
}

VhdxWriter::VhdxWriter(int fd, std::string path, CreateParams params, NewImageLayout layout)
    : fd_(fd), path_(std::move(path)), params_(params), layout_(layout) {
  next_free_ = layout_.payload_offset;
}

VhdxWriter::~VhdxWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_ && !file_) ::unlink(path_.c_str());
}

Error VhdxWriter::os_error(const std::string& what, int err) const {
  return Error(err == ENOSPC ? ErrorCode::kNoSpace : ErrorCode::kIo,
               what + " '" + path_ + "': " + std::strerror(err), err);
}

Result<std::unique_ptr<VhdxWriter>> VhdxWriter::create(const std::string& path,
                                                       const CreateParams& params) {
  VHDX_ASSIGN_OR_RETURN(NewImageLayout layout, plan_image(params));
  const int flags = O_RDWR | O_CREAT | O_CLOEXEC | (params.overwrite ? O_TRUNC : O_EXCL);
  const int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST)
      return Error(ErrorCode::kInvalidArgument,
                   "create: '" + path + "' already exists; not overwriting it");
    return Error(err == ENOSPC ? ErrorCode::kNoSpace : ErrorCode::kIo,
                 "create: cannot create '" + path + "': " + std::strerror(err), err);
  }
  // Only regular files: a failed create removes its output, which must never be a device.
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error(ErrorCode::kInvalidArgument, "create: '" + path + "' is not a regular file");
  }
  std::unique_ptr<VhdxWriter> writer(new VhdxWriter(fd, path, params, layout));
  if (params.type == DiskType::kFixed) {
    // Every block gets its space now, zeroed: fallocate, or a sparse extension where the file
    // system cannot preallocate.
    const std::uint64_t end = layout.payload_offset + layout.payload_blocks * params.block_size;
    const std::uint64_t length = end - layout.payload_offset;
    if (::fallocate(fd, 0, static_cast<off_t>(layout.payload_offset), static_cast<off_t>(length)) !=
        0) {
      const int err = errno;
      if (err != EOPNOTSUPP && err != ENOSYS && err != EINVAL)
        return writer->os_error("create: cannot allocate " + std::to_string(length) + " bytes in",
                                err);
      if (::ftruncate(fd, static_cast<off_t>(end)) != 0)
        return writer->os_error("create: cannot set the size of", errno);
    }
  }
  return writer;
}

Result<std::unique_ptr<VhdxWriter>> VhdxWriter::create(std::unique_ptr<File> file,
                                                       const CreateParams& params) {
  VHDX_ASSIGN_OR_RETURN(NewImageLayout layout, plan_image(params));
  if (!file || !file->writable())
    return Error(ErrorCode::kInvalidArgument, "create: the output file is not writable");
  const std::string name = file->name();
  std::unique_ptr<VhdxWriter> writer(new VhdxWriter(-1, name, params, layout));
  writer->file_ = std::move(file);
  auto context = [&](Error e) { return std::move(e).with_context("create '" + name + "'"); };
  if (auto r = writer->file_->truncate(0); !r) return context(std::move(r).error());
  if (params.type == DiskType::kFixed) {
    const std::uint64_t end = layout.payload_offset + layout.payload_blocks * params.block_size;
    if (auto r = writer->file_->truncate(end); !r) return context(std::move(r).error());
  }
  return writer;
}

Result<void> VhdxWriter::pwrite_all(std::uint64_t offset, std::span<const std::uint8_t> data) {
  if (file_) return file_->write_at(offset, data);
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return os_error("cannot write at offset " + std::to_string(offset + done) + " of", errno);
    }
    done += static_cast<std::size_t>(n);
  }
  return ok();
}

Result<void> VhdxWriter::sync() {
  if (file_) return file_->flush();
  if (::fdatasync(fd_) != 0) return os_error("cannot flush", errno);
  return ok();
}

Result<void> VhdxWriter::flush_bat_page() {
  if (!bat_page_dirty_) return ok();
  const std::uint64_t count =
      std::min<std::uint64_t>(bat_page_.size(), layout_.bat_entries - bat_page_first_);
  std::vector<std::uint8_t> bytes(count * format::kBatEntrySize);
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t v = bat_page_[i];
    for (int k = 0; k < 8; ++k) bytes[i * 8 + k] = static_cast<std::uint8_t>(v >> (8 * k));
  }
  VHDX_TRY(pwrite_all(layout_.bat_offset + bat_page_first_ * format::kBatEntrySize, bytes));
  bat_page_dirty_ = false;
  return ok();
}

Result<void> VhdxWriter::set_entry(std::uint64_t block, std::uint64_t raw) {
  const std::uint64_t index = block + block / layout_.chunk_ratio;
  const std::uint64_t first = index - index % kBatPageEntries;
  if (bat_page_.empty() || first != bat_page_first_) {
    if (!bat_page_.empty() && first < bat_page_first_)
      return Error(ErrorCode::kInternal, "create: BAT entries set out of order");
    VHDX_TRY(flush_bat_page());
    bat_page_.assign(kBatPageEntries, 0);
    bat_page_first_ = first;
  }
  bat_page_[index - first] = raw;
  bat_page_dirty_ = true;
  return ok();
}

Result<void> VhdxWriter::write(std::uint64_t block, std::uint64_t in_block,
                               std::span<const std::uint8_t> data) {
  if (finished_) return Error(ErrorCode::kInvalidArgument, "create: image already finished");
  if (block >= layout_.payload_blocks || in_block > params_.block_size ||
      data.size() > params_.block_size - in_block)
    return Error(ErrorCode::kInvalidArgument, "create: write of " + std::to_string(data.size()) +
                                                  " bytes at " + std::to_string(in_block) +
                                                  " of block " + std::to_string(block) +
                                                  " leaves the disk's blocks");
  std::uint64_t offset;
  if (params_.type == DiskType::kFixed) {
    offset = layout_.payload_offset + block * params_.block_size;
  } else if (block == last_block_) {
    offset = last_block_offset_;
  } else {
    if (last_block_ != ~std::uint64_t{0} && block < last_block_)
      return Error(ErrorCode::kInvalidArgument,
                   "create: block " + std::to_string(block) + " written after block " +
                       std::to_string(last_block_) + " (blocks must come in order)");
    offset = next_free_;
    next_free_ += params_.block_size;
    last_block_ = block;
    last_block_offset_ = offset;
    ++allocated_blocks_;
    VHDX_TRY(set_entry(
        block, format::encode_bat_entry(
                   static_cast<std::uint8_t>(format::PayloadState::kFullyPresent), offset)));
  }
  return pwrite_all(offset + in_block, data);
}

Result<void> VhdxWriter::finish() {
  if (finished_) return ok();
  const auto present = static_cast<std::uint8_t>(format::PayloadState::kFullyPresent);
  std::uint64_t end = next_free_;
  if (params_.type == DiskType::kFixed) {
    for (std::uint64_t b = 0; b < layout_.payload_blocks; ++b)
      VHDX_TRY(set_entry(
          b, format::encode_bat_entry(present, layout_.payload_offset + b * params_.block_size)));
    allocated_blocks_ = layout_.payload_blocks;
    end = layout_.payload_offset + layout_.payload_blocks * params_.block_size;
  }
  VHDX_TRY(flush_bat_page());

  // Metadata: the table, then the items packed at +64 KiB in Windows' order, with the flags
  // Windows gives them (the parent locator describes the file, not the virtual disk).
  {
    format::MetadataTable table;
    const auto at = static_cast<std::uint32_t>(format::kMetadataTableSize);
    table.entries = {
        {format::kFileParametersGuid, at, 8, false, false, true},
        {format::kVirtualDiskSizeGuid, at + 8, 8, false, true, true},
        {format::kLogicalSectorSizeGuid, at + 16, 4, false, true, true},
        {format::kPhysicalSectorSizeGuid, at + 20, 4, false, true, true},
        {format::kVirtualDiskIdGuid, at + 24, 16, false, true, true},
    };
    std::vector<std::uint8_t> locator;
    if (params_.parent) {
      VHDX_ASSIGN_OR_RETURN(locator, encode_parent_link(*params_.parent));
      table.entries.push_back({format::kParentLocatorGuid, at + kSystemItemsLength,
                               static_cast<std::uint32_t>(locator.size()), false, false, true});
    }
    std::vector<std::uint8_t> region(format::kMetadataTableSize + kSystemItemsLength, 0);
    region.insert(region.end(), locator.begin(), locator.end());
    std::span<std::uint8_t> bytes(region);
    format::encode_metadata_table(table, bytes.first(format::kMetadataTableSize));
    auto items = bytes.subspan(format::kMetadataTableSize);
    format::FileParameters fp;
    fp.block_size = params_.block_size;
    fp.leave_block_allocated = params_.type == DiskType::kFixed;
    fp.has_parent = params_.parent.has_value();
    format::encode_file_parameters(fp, items.subspan(0, 8));
    format::encode_virtual_disk_size(params_.virtual_size, items.subspan(8, 8));
    format::encode_sector_size(params_.logical_sector_size, items.subspan(16, 4));
    format::encode_sector_size(params_.physical_sector_size, items.subspan(20, 4));
    // A child keeps its parent's identity (§6 Virtual Disk ID).
    const Guid disk_id = params_.parent ? params_.parent->virtual_disk_id : Guid::random();
    disk_id.store(std::span<std::uint8_t, 16>(items.data() + 24, 16));
    VHDX_TRY(pwrite_all(layout_.metadata_offset, region));
  }
  // Both region table copies, BAT first then metadata, as Windows lists them.
  {
    format::RegionTable table;
    table.entries = {
        {format::kBatRegionGuid, layout_.bat_offset, static_cast<std::uint32_t>(layout_.bat_length),
         true},
        {format::kMetadataRegionGuid, layout_.metadata_offset,
         static_cast<std::uint32_t>(layout_.metadata_length), true},
    };
    std::vector<std::uint8_t> bytes(format::kRegionTableSize);
    format::encode_region_table(table, bytes);
    VHDX_TRY(pwrite_all(format::kRegionTableOffsets[0], bytes));
    VHDX_TRY(pwrite_all(format::kRegionTableOffsets[1], bytes));
  }
  {
    std::vector<std::uint8_t> bytes(format::kFileIdentifierSize);
    format::encode_file_identifier(format::FileIdentifier{creator_string()}, bytes);
    VHDX_TRY(pwrite_all(format::kFileIdentifierOffset, bytes));
  }
  // The log stays zeros (its GUID in the headers is zero, so it holds nothing); a dynamic
  // image's file ends right after its last block.
  end = std::max(end, layout_.payload_offset);
  if (file_) {
    VHDX_TRY(file_->truncate(end));
  } else if (::ftruncate(fd_, static_cast<off_t>(end)) != 0) {
    return os_error("cannot set the size of", errno);
  }
  VHDX_TRY(sync());

  // The headers last: only now does the file become a valid image.
  format::Header header;
  header.file_write_guid = Guid::random();
  header.data_write_guid = Guid::random();
  header.log_offset = layout_.log_offset;
  header.log_length = static_cast<std::uint32_t>(layout_.log_length);
  std::vector<std::uint8_t> bytes(format::kHeaderSize);
  for (int slot = 0; slot < 2; ++slot) {
    header.sequence_number = static_cast<std::uint64_t>(slot) + 1;
    format::encode_header(header, bytes);
    VHDX_TRY(pwrite_all(format::kHeaderOffsets[slot], bytes));
  }
  VHDX_TRY(sync());
  if (file_) {
    finished_ = true;
    return ok();
  }
  if (::close(fd_) != 0) {
    const int err = errno;
    fd_ = -1;
    return os_error("cannot close", err);
  }
  fd_ = -1;
  finished_ = true;
  return ok();
}

Result<void> create_image(const std::string& path, const CreateParams& params) {
  VHDX_ASSIGN_OR_RETURN(auto writer, VhdxWriter::create(path, params));
  return writer->finish();
}

}  // namespace vhdx::ops
