#include "vhdx/error.h"

#include <cerrno>
#include <cstring>

namespace vhdx {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kIo:
      return "io-error";
    case ErrorCode::kNoSpace:
      return "no-space";
    case ErrorCode::kCorrupt:
      return "corrupt";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kInvalidArgument:
      return "invalid-argument";
    case ErrorCode::kOutOfRange:
      return "out-of-range";
    case ErrorCode::kReadOnly:
      return "read-only";
    case ErrorCode::kBusy:
      return "busy";
    case ErrorCode::kNeedsLogReplay:
      return "needs-log-replay";
    case ErrorCode::kNotVhdx:
      return "not-vhdx";
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kFailed:
      return "failed";
  }
  return "unknown";
}

int errno_for(const Error& error) {
  switch (error.code()) {
    case ErrorCode::kIo:
      return error.sys_errno() != 0 ? error.sys_errno() : EIO;
    case ErrorCode::kNoSpace:
      return ENOSPC;
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kOutOfRange:
      return EINVAL;
    case ErrorCode::kReadOnly:
      return EROFS;
    case ErrorCode::kUnsupported:
      return ENOTSUP;
    case ErrorCode::kBusy:
      return EBUSY;
    case ErrorCode::kCorrupt:
    case ErrorCode::kNeedsLogReplay:
    case ErrorCode::kNotVhdx:
    case ErrorCode::kInternal:
    case ErrorCode::kFailed:
      return EIO;
  }
  return EIO;
}

namespace {

// The structure name a message starts with ("header" in "header: checksum mismatch"), or empty
// when it does not start with a plain name (letters, digits, spaces, hyphens, parentheses).
std::string_view leading_name(std::string_view message) {
  const std::size_t end = message.find(": ");
  if (end == std::string_view::npos || end == 0) return {};
  const std::string_view name = message.substr(0, end);
  for (const char c : name) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == ' ' || c == '-' || c == '(' || c == ')';
    if (!plain) return {};
  }
  return name;
}

}  // namespace

Error& Error::add_context(std::string_view context) {
  const std::string_view name = leading_name(message_);
  // "header 2" refines "header"; "logical-sector-size item" refines "sector-size item".
  auto refines = [](std::string_view precise, std::string_view general) {
    if (precise.size() <= general.size()) return false;
    if (precise.starts_with(general) && precise[general.size()] == ' ') return true;
    const char before = precise[precise.size() - general.size() - 1];
    return precise.ends_with(general) && (before == ' ' || before == '-');
  };
  // Already named as precisely ("header 2: ..." under "header") or more.
  if (!name.empty() && (context == name || refines(name, context))) return *this;
  if (!name.empty() && refines(context, name)) {
    message_.replace(0, name.size(), context);
    return *this;
  }
  message_.insert(0, std::string(context) + ": ");
  return *this;
}

std::string Error::to_string() const {
  std::string text = message_ + " (" + error_code_name(code_);
  if (sys_errno_ != 0) text += std::string(", ") + std::strerror(sys_errno_);
  return text + ")";
}

}  // namespace vhdx
