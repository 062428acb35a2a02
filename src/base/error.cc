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

std::string Error::to_string() const {
  std::string text = message_ + " (" + error_code_name(code_);
  if (sys_errno_ != 0) text += std::string(", ") + std::strerror(sys_errno_);
  return text + ")";
}

}  // namespace vhdx
