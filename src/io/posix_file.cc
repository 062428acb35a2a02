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
  int flags = O_CLOEXEC | (options.writable ? O_RDWR : O_RDONLY);
  if (options.create) flags |= O_CREAT | (options.truncate_existing ? O_TRUNC : O_EXCL);
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
  return std::unique_ptr<File>(new PosixFile(fd, path, options.writable));
}

Result<std::uint64_t> allocated_bytes(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return os_error("cannot stat", path, errno);
  return static_cast<std::uint64_t>(st.st_blocks) * 512u;
}

}  // namespace vhdx
