// A File over a POSIX file descriptor.
#pragma once

#include <memory>
#include <string>

#include "vhdx/file.h"

namespace vhdx {

// Every open takes an advisory lock on the file, as QEMU does, so two programs cannot change
// an image under each other: a writable open is exclusive, a read-only open is shared with
// other readers. A conflicting open fails with kBusy. The locks are open-file-description
// locks (F_OFD_SETLK) on single bytes laid out as QEMU lays out its own (see lock_file() in
// posix_file.cc), so QEMU and libvhdx see each other's locks. Closing the file releases them.
// They conflict between two opens in one process too, not only across processes. On a file
// system without OFD lock support (EINVAL, ENOLCK, EOPNOTSUPP) the open goes on unlocked.
struct PosixOpenOptions {
  bool writable = false;
  bool create = false;  // create the file (fails if it exists unless truncate_existing)
  bool truncate_existing = false;
  // Read-only opens only: take no lock at all (like qemu-img -U), so the file can be read while
  // another process writes it (the reader may then see an inconsistent image). A writable open
  // with force_share fails with kInvalidArgument.
  bool force_share = false;
};

Result<std::unique_ptr<File>> open_posix_file(const std::string& path,
                                              const PosixOpenOptions& options);

// Bytes the file occupies on its file system (st_blocks * 512): the "actual size".
Result<std::uint64_t> allocated_bytes(const std::string& path);

}  // namespace vhdx
