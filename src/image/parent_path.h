// Where to look for the parent of a differencing image: turns the Windows paths of a parent
// locator (§6: relative_path, volume_path, absolute_win32_path) into Linux paths to try.
// Pure: no I/O, no file system lookups; the caller opens the candidates in order and checks
// the parent's DataWriteGuid against parent_linkage itself.
//
// Candidate order (first match wins; a path already listed is not repeated):
//   1. relative_path, resolved against the child's directory: `\` and `/` both separate
//      components, `.` and `..` are resolved lexically (as Windows does), `..` at the root stays
//      at the root. This is the path Windows itself tries first.
//   2. absolute_win32_path as it is, when it is already a Linux absolute path (starts with `/`,
//      holds no `\`): an image whose locator a Linux tool wrote.
//   3. The file name alone, in the child's directory, taken from relative_path, then
//      volume_path, then absolute_win32_path: a chain copied off Windows usually lands in one
//      folder, and neither a volume GUID nor a drive letter or UNC share means anything here.
// Windows compares names without case; these candidates keep the stored case.
//
// Thread safety: free functions, no state.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "format/parent_locator.h"
#include "vhdx/error.h"

namespace vhdx::image {

// A locator value longer than this is corrupt: a Windows path holds at most 32767 UTF-16 units,
// each at most 3 bytes of UTF-8.
inline constexpr std::size_t kMaxLocatorPathBytes = 3 * 32767;
// Longest path Linux opens (PATH_MAX less the terminating NUL); longer candidates are dropped.
inline constexpr std::size_t kMaxLinuxPathBytes = 4095;

struct ParentPathCandidate {
  std::string path;  // a Linux path, relative to the working directory if the child's was
  std::string from;  // the locator key it came from, e.g. "relative_path"
  bool same_directory_fallback = false;  // rule 3: only the file name was kept
};

// The candidates for the parent of the image at `child_path`, in the order above.
// Errors:
// - kInvalidArgument: child_path is empty, holds a NUL byte, names no file (ends with `/`, or
//   is `.` / `..`), or is longer than kMaxLinuxPathBytes.
// - kCorrupt, naming the key: a path value that is empty, holds a NUL byte, is longer than
//   kMaxLocatorPathBytes, names no file (ends with a separator, `.`, `..`, a bare drive, volume
//   or share), or a relative_path that is absolute (drive letter, leading `\`, `\\?\`); a
//   locator with none of the three path keys; a locator whose every candidate is longer than
//   kMaxLinuxPathBytes.
Result<std::vector<ParentPathCandidate>> parent_path_candidates(
    std::string_view child_path, const format::ParentLocator& locator);

}  // namespace vhdx::image
