// How a vhdx::Error reaches an NBD client through nbdkit: the plugin and the filter log the
// message with nbdkit_error and hand nbdkit this errno, which it turns into the NBD error code
// the client sees (EROFS and EPERM become NBD_EPERM, ENOSPC NBD_ENOSPC, EINVAL NBD_EINVAL,
// anything else NBD_EIO; nbdkit 1.32 sends ENOTSUP as NBD_EINVAL except on fast-zero requests).
#pragma once

#include <cerrno>

#include "vhdx/error.h"

namespace vhdx::nbdkit {

inline int nbd_errno_for(const Error& error) {
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

}  // namespace vhdx::nbdkit
