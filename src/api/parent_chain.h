// Opening the parent chain of a differencing image: each parent is found through the child's
// parent locator (image/parent_path.h gives the candidate paths, in order), opened read-only
// and accepted only when its current DataWriteGuid equals the child's parent_linkage (or
// parent_linkage2) and its logical sector size matches.
//
// Bounds on hostile chains: at most kMaxParentChainDepth parents; a file already in the chain
// (same device and inode) is never opened again, so a loop ends with an error; each parent's
// BAT cache is limited to kParentBatCacheBytes. Memory for a chain of the maximum depth is then
// a few hundred MiB at most, whatever the files claim.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "image/engine.h"
#include "vhdx/error.h"
#include "vhdx/types.h"

namespace vhdx {

inline constexpr std::size_t kMaxParentChainDepth = 128;
inline constexpr std::uint64_t kParentBatCacheBytes = 1 << 20;

// Opens every parent of `child` (opened from `child_path`) and attaches each to the image below
// it. On error nothing stays attached. Errors:
// - kIo with ENOENT: no candidate path of some image's locator names an existing file;
// - kCorrupt: a candidate exists but its DataWriteGuid does not match the linkage (the chain is
//   broken) or its sector size differs, the locator has no valid parent_linkage, or the chain
//   loops back to one of its own files;
// - kUnsupported: more than kMaxParentChainDepth parents;
// - any error opening a parent (kBusy when a writer holds it, kCorrupt, ...).
// Messages name the image whose parent is missing and every path tried, with why it was not
// taken.
Result<void> open_parent_chain(image::Engine& child, const std::string& child_path,
                               const OpenOptions& options);

}  // namespace vhdx
