#include "io/posix_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace vhdx {
namespace {

Error os_error(const std::string& what, const std::string& path, int err) {
  return Error(err == ENOSPC ? ErrorCode::kNoSpace : ErrorCode::kIo, what + " '" + path + "'", err);
}

// QEMU's lock layout, so that QEMU and libvhdx refuse each other: an open holds a shared lock
// on byte 100 + p for each permission p it uses and on byte 200 + p for each permission it will
// not share. An open conflicts with another when that other holds the "will not share" byte of
// a permission it uses, or the "uses" byte of a permission it will not share. Only the three
// permissions an image open needs are used: consistent read, write and resize.
constexpr off_t kUseBase = 100;
constexpr off_t kUnshareBase = 200;
constexpr off_t kPermConsistentRead = 0;
constexpr off_t kPermWrite = 1;
constexpr off_t kPermResize = 3;

int ofd_lock(int fd, short type, off_t byte) {
  struct flock fl = {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = byte;
  fl.l_len = 1;
  return ::fcntl(fd, F_OFD_SETLK, &fl);
}

// Whether another open file description holds a lock on `byte` (ours never count).
Result<bool> locked_by_other(int fd, off_t byte, const std::string& path) {
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = byte;
  fl.l_len = 1;
  if (::fcntl(fd, F_OFD_GETLK, &fl) != 0) return os_error("cannot test the lock of", path, errno);
  return fl.l_type != F_UNLCK;
}

bool locking_unsupported(int err) { return err == EINVAL || err == ENOLCK || err == EOPNOTSUPP; }

Error busy_error(const std::string& path) {
  return Error(ErrorCode::kBusy, "'" + path + "': image is in use by another process (locked)");
}

// Takes the locks of a read-only (shared) or writable (exclusive) open. The locks are set before
// the conflict test, so of two opens racing, at least one sees the other. On failure the caller
// closes fd, which drops whatever was taken.
Result<void> lock_file(int fd, const std::string& path, bool writable) {
  std::vector<off_t> uses = {kPermConsistentRead};
  if (writable) {
    uses.push_back(kPermWrite);
    uses.push_back(kPermResize);
  }
  const off_t unshared[] = {kPermWrite, kPermResize};
  std::vector<off_t> bytes;
  for (off_t p : uses) bytes.push_back(kUseBase + p);
  for (off_t p : unshared) bytes.push_back(kUnshareBase + p);
  for (off_t byte : bytes) {
    if (ofd_lock(fd, F_RDLCK, byte) == 0) continue;
    const int err = errno;
    if (locking_unsupported(err)) return ok();  // e.g. some network file systems
    if (err == EAGAIN || err == EACCES) return busy_error(path);
    return os_error("cannot lock", path, err);
  }
  for (off_t p : uses) {
    VHDX_ASSIGN_OR_RETURN(bool held, locked_by_other(fd, kUnshareBase + p, path));
    if (held) return busy_error(path);
  }
  for (off_t p : unshared) {
    VHDX_ASSIGN_OR_RETURN(bool held, locked_by_other(fd, kUseBase + p, path));
    if (held) return busy_error(path);
  }
  return ok();
}

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path, bool writable)
      : fd_(fd), path_(std::move(path)), writable_(writable) {}
  ~PosixFile() override { ::close(fd_); }

  Result<void> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    std::size_t done = 0;
    while (done < out.size()) {
      ssize_t n =
          ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return os_error("cannot read at offset " + std::to_string(offset + done) + " of", path_,
                        errno);
      }
      if (n == 0)
        return Error(ErrorCode::kIo, "unexpected end of file at offset " +
                                         std::to_string(offset + done) + " of '" + path_ + "'");
      done += static_cast<std::size_t>(n);
    }
    return ok();
  }

  Result<void> write_at(std::uint64_t offset, std::span<const std::uint8_t> data) override {
    if (!writable_) return read_only_error();
    std::size_t done = 0;
    while (done < data.size()) {
      ssize_t n =
          ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return os_error("cannot write at offset " + std::to_string(offset + done) + " of", path_,
                        errno);
      }
      done += static_cast<std::size_t>(n);
    }
    return ok();
  }

  Result<std::uint64_t> size() override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return os_error("cannot stat", path_, errno);
    return static_cast<std::uint64_t>(st.st_size);
  }

  Result<void> truncate(std::uint64_t new_size) override {
    if (!writable_) return read_only_error();
    if (::ftruncate(fd_, static_cast<off_t>(new_size)) != 0)
      return os_error("cannot resize", path_, errno);
    return ok();
  }

  Result<void> flush() override {
    if (::fdatasync(fd_) != 0) return os_error("cannot flush", path_, errno);
    return ok();
  }

  Result<void> punch_hole(std::uint64_t offset, std::uint64_t length) override {
    if (!writable_) return read_only_error();
    if (length == 0) return ok();  // fallocate rejects a zero length with EINVAL
    if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                    static_cast<off_t>(length)) == 0)
      return ok();
    if (errno != EOPNOTSUPP && errno != ENOSYS)
      return os_error("cannot punch hole in", path_, errno);
    // The file system cannot punch holes: write zeros instead, never past the end of the file
    // (a punched hole keeps the size).
    VHDX_ASSIGN_OR_RETURN(std::uint64_t file_size, size());
    if (offset >= file_size) return ok();
    length = std::min(length, file_size - offset);
    std::vector<std::uint8_t> zeros(std::min<std::uint64_t>(length, 1u << 20));
    for (std::uint64_t done = 0; done < length;) {
      std::uint64_t n = std::min<std::uint64_t>(zeros.size(), length - done);
      VHDX_TRY(write_at(offset + done, std::span(zeros).first(n)));
      done += n;
    }
    return ok();
  }

  bool writable() const override { return writable_; }
  std::string name() const override { return path_; }

 private:
  Error read_only_error() const {
    return Error(ErrorCode::kReadOnly, "'" + path_ + "' is open read-only");
  }

  int fd_;
  std::string path_;
  bool writable_;
};

}  // namespace

Result<std::unique_ptr<File>> open_posix_file(const std::string& path,
                                              const PosixOpenOptions& options) {
  if (options.writable && options.force_share)
    return Error(ErrorCode::kInvalidArgument,
                 "'" + path + "': force_share is only allowed for read-only opens");
  int flags = O_CLOEXEC | (options.writable ? O_RDWR : O_RDONLY);
  // O_TRUNC is not used: truncating must wait until the lock shows nobody else has the file.
  if (options.create) flags |= O_CREAT | (options.truncate_existing ? 0 : O_EXCL);
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) return os_error("cannot open", path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return os_error("cannot stat", path, err);
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return Error(ErrorCode::kInvalidArgument, "'" + path + "' is a directory", EISDIR);
  }
  if (!options.force_share) {
    if (auto locked = lock_file(fd, path, options.writable); !locked) {
      ::close(fd);
      return std::move(locked).error();
    }
  }
  if (options.create && options.truncate_existing && st.st_size != 0 && ::ftruncate(fd, 0) != 0) {
    int err = errno;
    ::close(fd);
    return os_error("cannot truncate", path, err);
  }
  return std::unique_ptr<File>(new PosixFile(fd, path, options.writable));
}

Result<std::uint64_t> allocated_bytes(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return os_error("cannot stat", path, errno);
  return static_cast<std::uint64_t>(st.st_blocks) * 512u;
}

}  // namespace vhdx
