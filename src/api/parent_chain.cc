#include "api/parent_chain.h"

#include <sys/stat.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "format/constants.h"
#include "format/parent_locator.h"
#include "image/parent_path.h"
#include "io/posix_file.h"

namespace vhdx {
namespace {

using FileId = std::pair<dev_t, ino_t>;

std::optional<FileId> file_id(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileId{st.st_dev, st.st_ino};
}

struct Linkage {
  Guid primary;
  std::optional<Guid> alternate;
};

Result<Linkage> read_linkage(const format::ParentLocator& locator, const std::string& path) {
  auto corrupt = [&](const std::string& why) {
    return Error(ErrorCode::kCorrupt, "parent locator of '" + path + "': " + why);
  };
  const auto primary_text = locator.find("parent_linkage");
  if (!primary_text) return corrupt("no parent_linkage key");
  const auto primary = Guid::parse(*primary_text);
  if (!primary) return corrupt("parent_linkage '" + *primary_text + "' is not a GUID");
  Linkage linkage{*primary, std::nullopt};
  if (const auto alternate_text = locator.find("parent_linkage2")) {
    const auto alternate = Guid::parse(*alternate_text);
    if (!alternate) return corrupt("parent_linkage2 '" + *alternate_text + "' is not a GUID");
    // Windows writes an all-zero parent_linkage2 when there is no alternate.
    if (!alternate->is_zero()) linkage.alternate = *alternate;
  }
  return linkage;
}

std::string braced(const Guid& guid) { return "{" + guid.to_string() + "}"; }

// One level: finds, opens and checks the parent of `child`.
Result<std::unique_ptr<image::Engine>> open_parent(const image::Engine& child,
                                                   const std::string& child_path,
                                                   const OpenOptions& options,
                                                   std::set<FileId>& chain_files,
                                                   std::string& parent_path) {
  const ImageInfo& info = child.info();
  if (!info.parent_locator_type)
    return Error(ErrorCode::kCorrupt,
                 "'" + child_path + "' is a differencing image without a parent locator");
  if (*info.parent_locator_type != format::kVhdxParentLocatorType)
    return Error(ErrorCode::kUnsupported,
                 "parent locator of '" + child_path + "': type " +
                     info.parent_locator_type->to_string() + " is not the VHDX locator type " +
                     format::kVhdxParentLocatorType.to_string() + "; the parent cannot be found");
  format::ParentLocator locator{*info.parent_locator_type, info.parent_locator};
  VHDX_ASSIGN_OR_RETURN(Linkage linkage, read_linkage(locator, child_path));
  auto candidates = image::parent_path_candidates(child_path, locator);
  if (!candidates)
    return std::move(candidates).error().with_context("parent locator of '" + child_path + "'");

  std::string tried;
  bool any_exists = false;
  std::optional<Error> first_open_error;
  bool mismatch = false;
  for (const auto& candidate : *candidates) {
    auto note = [&](const std::string& why) {
      tried += "; '" + candidate.path + "' (" + candidate.from + "): " + why;
    };
    const auto id = file_id(candidate.path);
    if (!id) {
      note(errno == ENOENT ? "not found" : "cannot stat it");
      continue;
    }
    any_exists = true;
    if (chain_files.contains(*id)) {
      note("already in this chain (the chain would loop)");
      mismatch = true;
      continue;
    }
    PosixOpenOptions posix;
    posix.force_share = options.force_share;
    auto file = open_posix_file(candidate.path, posix);
    if (!file) {
      note(file.error().message());
      if (!first_open_error) first_open_error = file.error();
      continue;
    }
    OpenOptions parent_options;
    parent_options.read_only = true;
    parent_options.force_share = options.force_share;
    parent_options.parents = ParentChain::kIgnore;  // the caller walks the chain level by level
    auto parent = image::Engine::open(std::move(*file), parent_options);
    if (!parent) {
      note(parent.error().message());
      if (!first_open_error) first_open_error = parent.error();
      continue;
    }
    const ImageInfo& pinfo = (*parent)->info();
    const Guid& data_write_guid = pinfo.headers[pinfo.current_header].data_write_guid;
    if (data_write_guid != linkage.primary &&
        !(linkage.alternate && data_write_guid == *linkage.alternate)) {
      note("its DataWriteGuid " + braced(data_write_guid) + " is not the parent_linkage " +
           braced(linkage.primary) +
           (linkage.alternate ? " or " + braced(*linkage.alternate) : ""));
      mismatch = true;
      continue;
    }
    if (pinfo.logical_sector_size != info.logical_sector_size) {
      note("its logical sector size is " + std::to_string(pinfo.logical_sector_size) +
           ", the child's " + std::to_string(info.logical_sector_size));
      mismatch = true;
      continue;
    }
    chain_files.insert(*id);
    parent_path = candidate.path;
    (*parent)->set_source_path(candidate.path);
    (*parent)->set_bat_cache_limit(kParentBatCacheBytes);
    return std::move(*parent);
  }
  const std::string what = "the parent of '" + child_path + "'";
  const std::string list = tried.empty() ? "" : ": tried" + tried.substr(1);
  if (mismatch)
    return Error(ErrorCode::kCorrupt, "differencing chain broken: no file matches " + what + list);
  if (!any_exists) return Error(ErrorCode::kIo, what + " was not found" + list, ENOENT);
  if (first_open_error)
    return Error(first_open_error->code(), "cannot open " + what + list,
                 first_open_error->sys_errno());
  return Error(ErrorCode::kIo, "cannot open " + what + list);
}

}  // namespace

Result<void> open_parent_chain(image::Engine& child, const std::string& child_path,
                               const OpenOptions& options) {
  std::set<FileId> chain_files;
  if (const auto id = file_id(child_path)) chain_files.insert(*id);
  image::Engine* current = &child;
  std::string current_path = child_path;
  for (std::size_t depth = 1; current->has_parent(); ++depth) {
    if (depth > kMaxParentChainDepth) {
      child.set_parent(nullptr);
      return Error(ErrorCode::kUnsupported, "differencing chain of '" + child_path +
                                                "' is deeper than " +
                                                std::to_string(kMaxParentChainDepth) + " parents");
    }
    std::string parent_path;
    auto parent = open_parent(*current, current_path, options, chain_files, parent_path);
    if (!parent) {
      child.set_parent(nullptr);
      return std::move(parent).error();
    }
    image::Engine* next = parent->get();
    current->set_parent(std::move(*parent));
    current = next;
    current_path = std::move(parent_path);
  }
  return ok();
}

}  // namespace vhdx
