// Fuzz target: parent locator decoding (format/parent_locator.h) and parent path resolution
// (image/parent_path.h). Byte 0 picks the mode:
//   even: the rest is a parent locator item; decode it, re-encode what decoded and decode that
//         again (it must give the same entries), then resolve its paths for a fixed child path;
//   odd:  the rest holds up to four strings separated by 0xFF bytes: the child path, then the
//         values of relative_path, volume_path and absolute_win32_path (raw bytes, NULs
//         included), resolved directly.
// Errors must be kCorrupt or kInvalidArgument. A success must list at least one candidate; no
// candidate may be empty, hold a NUL, exceed the Linux path limit, end in `/`, repeat an earlier
// one, or be relative when the child's path is absolute.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "format/parent_locator.h"
#include "fuzz_util.h"
#include "image/parent_path.h"

using namespace vhdx;

namespace {

void resolve(std::string_view child, const format::ParentLocator& locator) {
  auto candidates = image::parent_path_candidates(child, locator);
  if (!candidates) {
    const auto code = candidates.error().code();
    if (code != ErrorCode::kCorrupt && code != ErrorCode::kInvalidArgument)
      fuzz::fail("parent paths: unexpected error " + candidates.error().to_string());
    return;
  }
  if (candidates->empty()) fuzz::fail("parent paths: success without a candidate");
  for (std::size_t i = 0; i < candidates->size(); ++i) {
    const std::string& path = (*candidates)[i].path;
    if (path.empty() || path.find('\0') != std::string::npos ||
        path.size() > image::kMaxLinuxPathBytes || path.back() == '/')
      fuzz::fail("parent paths: bad candidate '" + path + "'");
    if (child.front() == '/' && path.front() != '/')
      fuzz::fail("parent paths: relative candidate for an absolute child: " + path);
    for (std::size_t j = 0; j < i; ++j)
      if ((*candidates)[j].path == path) fuzz::fail("parent paths: repeated candidate " + path);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) == 0) {
    auto locator = format::decode_parent_locator(std::span(data + 1, size - 1));
    if (!locator) return 0;
    auto again = format::decode_parent_locator(format::encode_parent_locator(*locator));
    if (!again || again->locator_type != locator->locator_type ||
        again->entries != locator->entries)
      fuzz::fail("parent locator: re-encoded item decodes differently");
    resolve("/images/vm/child.avhdx", *locator);
    resolve("child.avhdx", *locator);
    return 0;
  }
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= rest.size() && fields.size() < 4; ++i) {
    if (i == rest.size() || static_cast<unsigned char>(rest[i]) == 0xFF) {
      fields.push_back(rest.substr(start, i - start));
      start = i + 1;
    }
  }
  static constexpr const char* kKeys[] = {"relative_path", "volume_path", "absolute_win32_path"};
  format::ParentLocator locator;
  for (std::size_t i = 1; i < fields.size(); ++i)
    locator.entries.emplace_back(kKeys[i - 1], std::string(fields[i]));
  resolve(fields[0], locator);
  return 0;
}
