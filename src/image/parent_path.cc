#include "image/parent_path.h"

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vhdx::image {
namespace {

using Components = std::vector<std::string_view>;

constexpr std::string_view kRelative = "relative_path";
constexpr std::string_view kVolume = "volume_path";
constexpr std::string_view kAbsolute = "absolute_win32_path";

bool is_separator(char c, bool windows) { return c == '/' || (windows && c == '\\'); }

// Every component between separators, empty ones included (so a trailing separator shows).
Components split(std::string_view path, bool windows) {
  Components out;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || is_separator(path[i], windows)) {
      out.push_back(path.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

bool names_file(std::string_view last) { return !last.empty() && last != "." && last != ".."; }

bool starts_with_drive(std::string_view s) {
  return s.size() >= 2 && s[1] == ':' &&
         ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'));
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i];
    if (a >= 'a' && a <= 'z') a = static_cast<char>(a - 'a' + 'A');
    char b = prefix[i];
    if (b >= 'a' && b <= 'z') b = static_cast<char>(b - 'a' + 'A');
    if (a != b) return false;
  }
  return true;
}

Error corrupt(std::string_view key, const std::string& reason) {
  return Error(ErrorCode::kCorrupt, "parent locator " + std::string(key) + ": " + reason);
}

Result<void> check_value(std::string_view key, std::string_view value) {
  if (value.empty()) return corrupt(key, "empty path");
  if (value.find('\0') != std::string_view::npos) return corrupt(key, "path holds a NUL byte");
  if (value.size() > kMaxLocatorPathBytes)
    return corrupt(key, "path is " + std::to_string(value.size()) + " bytes long (at most " +
                            std::to_string(kMaxLocatorPathBytes) + ")");
  return ok();
}

// `base` (directories, absolute when `absolute`) followed by `more`, with `.` and `..` resolved
// lexically; `..` at the root stays there, `..` of a relative path is kept.
std::string join_normalized(bool absolute, const Components& base, const Components& more) {
  std::vector<std::string_view> out;
  auto add = [&](std::string_view c) {
    if (c.empty() || c == ".") return;
    if (c == "..") {
      if (!out.empty() && out.back() != "..") {
        out.pop_back();
      } else if (!absolute) {
        out.push_back(c);
      }
      return;
    }
    out.push_back(c);
  };
  for (auto c : base) add(c);
  for (auto c : more) add(c);
  std::string path = absolute ? "/" : "";
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (i > 0) path += '/';
    path += out[i];
  }
  return path;
}

// The file name a Windows absolute path ends in, after its prefix (`\\?\`, `\\.\`, a drive,
// `Volume{...}`, a UNC server and share) is set aside.
Result<std::string_view> windows_file_name(std::string_view key, std::string_view value) {
  std::string_view rest = value;
  bool unc = false;
  bool volume = false;
  if (starts_with_nocase(rest, "\\\\?\\") || starts_with_nocase(rest, "\\\\.\\")) {
    rest.remove_prefix(4);
    if (starts_with_nocase(rest, "UNC\\")) {
      rest.remove_prefix(4);
      unc = true;
    } else if (starts_with_nocase(rest, "Volume{")) {
      volume = true;
    }
  } else if (rest.size() >= 2 && is_separator(rest[0], true) && is_separator(rest[1], true)) {
    rest.remove_prefix(2);
    unc = true;
  }
  Components parts = split(rest, true);
  if (!names_file(parts.back())) return corrupt(key, "path names no file: " + std::string(value));
  // Components that are part of the prefix, not directories: the volume, the server and share,
  // or a drive ("C:" alone, or "C:name" drive-relative).
  std::size_t prefix = 0;
  if (unc) prefix = 2;
  if (volume) prefix = 1;
  std::vector<std::string_view> named;
  for (auto c : parts)
    if (!c.empty()) named.push_back(c);
  if (!unc && !volume && !named.empty() && starts_with_drive(named.front())) {
    named.front().remove_prefix(2);
    if (named.front().empty()) prefix = 1;
  }
  // Checked again: a drive-relative name ("C:." or "C:..") is a directory once the drive is off.
  if (named.size() <= prefix || !names_file(named.back()))
    return corrupt(key, "path names no file: " + std::string(value));
  return named.back();
}

}  // namespace

Result<std::vector<ParentPathCandidate>> parent_path_candidates(
    std::string_view child_path, const format::ParentLocator& locator) {
  if (child_path.empty()) return Error(ErrorCode::kInvalidArgument, "child image path is empty");
  if (child_path.find('\0') != std::string_view::npos)
    return Error(ErrorCode::kInvalidArgument, "child image path holds a NUL byte");
  if (child_path.size() > kMaxLinuxPathBytes)
    return Error(ErrorCode::kInvalidArgument,
                 "child image path is " + std::to_string(child_path.size()) + " bytes long");
  Components child_dir = split(child_path, false);
  if (!names_file(child_dir.back()))
    return Error(ErrorCode::kInvalidArgument,
                 "child image path names no file: " + std::string(child_path));
  child_dir.pop_back();
  const bool child_absolute = child_path.front() == '/';

  const std::optional<std::string> relative = locator.find(kRelative);
  const std::optional<std::string> volume = locator.find(kVolume);
  const std::optional<std::string> absolute = locator.find(kAbsolute);
  if (!relative && !volume && !absolute)
    return Error(ErrorCode::kCorrupt,
                 "parent locator has no path (relative_path, volume_path or absolute_win32_path)");

  std::vector<ParentPathCandidate> out;
  bool too_long = false;
  auto add = [&](std::string path, std::string_view from, bool fallback) {
    if (path.size() > kMaxLinuxPathBytes) {
      too_long = true;
      return;
    }
    if (std::any_of(out.begin(), out.end(), [&](const auto& c) { return c.path == path; })) return;
    out.push_back({std::move(path), std::string(from), fallback});
  };
  auto next_to_child = [&](std::string_view name, std::string_view from) {
    add(join_normalized(child_absolute, child_dir, {name}), from, true);
  };

  // Validate every value before producing anything: a corrupt key fails the whole locator.
  std::optional<std::string_view> relative_name, volume_name, absolute_name;
  Components relative_parts;
  if (relative) {
    VHDX_TRY(check_value(kRelative, *relative));
    if (is_separator(relative->front(), true) || starts_with_drive(*relative))
      return corrupt(kRelative, "not a relative path: " + *relative);
    relative_parts = split(*relative, true);
    if (!names_file(relative_parts.back()))
      return corrupt(kRelative, "path names no file: " + *relative);
    relative_name = relative_parts.back();
  }
  if (volume) {
    VHDX_TRY(check_value(kVolume, *volume));
    VHDX_ASSIGN_OR_RETURN(volume_name, windows_file_name(kVolume, *volume));
  }
  bool absolute_is_linux = false;
  if (absolute) {
    VHDX_TRY(check_value(kAbsolute, *absolute));
    absolute_is_linux = absolute->front() == '/' && !absolute->starts_with("//") &&
                        absolute->find('\\') == std::string::npos;
    if (absolute_is_linux) {
      Components parts = split(*absolute, false);
      if (!names_file(parts.back())) return corrupt(kAbsolute, "path names no file: " + *absolute);
      absolute_name = parts.back();
    } else {
      VHDX_ASSIGN_OR_RETURN(absolute_name, windows_file_name(kAbsolute, *absolute));
    }
  }

  if (relative) add(join_normalized(child_absolute, child_dir, relative_parts), kRelative, false);
  if (absolute_is_linux) add(join_normalized(true, {}, split(*absolute, false)), kAbsolute, false);
  if (relative_name) next_to_child(*relative_name, kRelative);
  if (volume_name) next_to_child(*volume_name, kVolume);
  if (absolute_name) next_to_child(*absolute_name, kAbsolute);
  if (out.empty() && too_long)
    return Error(ErrorCode::kCorrupt, "parent locator: every parent path is longer than " +
                                          std::to_string(kMaxLinuxPathBytes) + " bytes");
  return out;
}

}  // namespace vhdx::image
