#include "ops/convert.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace vhdx::ops {
namespace {

// Virtual bytes handled per step (one copy_file_range call, one progress report).
constexpr std::uint64_t kStep = 4 << 20;
// Bytes per read/write when data goes through memory: small enough to stay in the CPU cache
// between the read, the zero check and the write.
constexpr std::size_t kBuffer = 1 << 20;
// A data step whose first bytes are non-zero is copied without looking further (sparse mode).
constexpr std::size_t kProbe = 4096;
// Extents are asked for in windows of this many blocks, which bounds the extent list.
constexpr std::uint64_t kWindowBlocks = 8192;

bool all_zero(std::span<const std::uint8_t> bytes) {
  if (bytes.empty()) return true;
  // Byte 0 is zero and every byte equals the one before it.
  return bytes[0] == 0 && std::memcmp(bytes.data(), bytes.data() + 1, bytes.size() - 1) == 0;
}

Error os_error(const std::string& what, const std::string& path, int err) {
  return Error(err == ENOSPC ? ErrorCode::kNoSpace : ErrorCode::kIo, what + " '" + path + "'", err);
}

// A file descriptor closed on scope exit.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

// The raw output: a plain file written with pwrite and, for data that can stay in the kernel,
// copy_file_range (which needs the descriptor, so this does not go through vhdx::File).
class RawOutput {
 public:
  static Result<std::unique_ptr<RawOutput>> create(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return os_error("cannot create", path, errno);
    return std::unique_ptr<RawOutput>(new RawOutput(fd, path));
  }

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }

  Result<void> set_size(std::uint64_t size) {
    if (::ftruncate(fd(), static_cast<off_t>(size)) != 0)
      return os_error("cannot set the size of", path_, errno);
    return ok();
  }

  Result<void> write_at(std::uint64_t offset, std::span<const std::uint8_t> data) {
    std::size_t done = 0;
    while (done < data.size()) {
      ssize_t n =
          ::pwrite(fd(), data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return os_error("cannot write at offset " + std::to_string(offset + done) + " of", path_,
                        errno);
      }
      done += static_cast<std::size_t>(n);
    }
    return ok();
  }

  // Allocates [offset, offset+length) as zeros (non-sparse output): fallocate, else writes.
  Result<void> allocate_zeros(std::uint64_t offset, std::uint64_t length) {
    if (length == 0) return ok();
    if (::fallocate(fd(), 0, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0)
      return ok();
    if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
      return os_error("cannot allocate space in", path_, errno);
    if (zeros_.empty()) zeros_.assign(kBuffer, 0);
    for (std::uint64_t done = 0; done < length;) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(zeros_.size(), length - done));
      VHDX_TRY(write_at(offset + done, std::span(zeros_).first(n)));
      done += n;
    }
    return ok();
  }

 private:
  RawOutput(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  Fd fd_;
  std::string path_;
  std::vector<std::uint8_t> zeros_;
};

// One piece of a data extent: `length` bytes at file offset `from` go to virtual offset `to`.
struct Step {
  std::uint64_t from = 0;
  std::uint64_t to = 0;
  std::uint64_t length = 0;
};

// Walks the disk's extents in windows and copies data extents step by step. Single-threaded on
// purpose: writes to one output file serialise in the kernel (the inode lock), and measured on
// tmpfs a second copying thread only added contention.
class Converter {
 public:
  Converter(image::Engine& engine, RawOutput& out, const RawConvertOptions& options, int source_fd)
      : engine_(engine), out_(out), options_(options), source_fd_(source_fd), buffer_(kBuffer) {}

  Result<void> run() {
    const std::uint64_t total = engine_.virtual_size();
    const std::uint64_t window = kWindowBlocks * engine_.block_size();
    report(0);
    for (std::uint64_t pos = 0; pos < total;) {
      const std::uint64_t length = std::min(window, total - pos);
      VHDX_ASSIGN_OR_RETURN(auto extents, engine_.block_status(pos, length));
      for (const Extent& extent : extents) {
        if (extent.kind == ExtentKind::kData && extent.depth > 0) {
          // A parent's data (differencing chain): its file offset is not in our file.
          VHDX_TRY(copy_through_engine(extent));
        } else if (extent.kind == ExtentKind::kData) {
          for (std::uint64_t done = 0; done < extent.length; done += kStep) {
            const Step step{*extent.file_offset + done, extent.offset + done,
                            std::min(kStep, extent.length - done)};
            VHDX_TRY(source_fd_ >= 0 ? copy_with_fds(step, buffer_)
                                     : copy_through_file(step, buffer_));
            report(step.to + step.length);
          }
        } else {
          if (!options_.sparse) VHDX_TRY(out_.allocate_zeros(extent.offset, extent.length));
          report(extent.offset + extent.length);
        }
      }
      pos += length;
    }
    return ok();
  }

 private:
  // Through the engine's read path (data that lives in a parent image).
  Result<void> copy_through_engine(const Extent& extent) {
    for (std::uint64_t done = 0; done < extent.length;) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(buffer_.size(), extent.length - done));
      std::span<std::uint8_t> piece(buffer_.data(), n);
      VHDX_TRY(engine_.read(extent.offset + done, piece));
      if (!options_.sparse || !all_zero(piece))
        VHDX_TRY(out_.write_at(extent.offset + done, piece));
      done += n;
      report(extent.offset + done);
    }
    return ok();
  }

  // Through the engine's File (no descriptor): read, skip zero pieces, write.
  Result<void> copy_through_file(const Step& step, std::vector<std::uint8_t>& buffer) {
    for (std::uint64_t done = 0; done < step.length;) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), step.length - done));
      std::span<std::uint8_t> piece(buffer.data(), n);
      VHDX_TRY(engine_.file().read_at(step.from + done, piece));
      if (!options_.sparse || !all_zero(piece)) VHDX_TRY(out_.write_at(step.to + done, piece));
      done += n;
    }
    return ok();
  }

  // With descriptors: copy_file_range, unless in sparse mode the step starts with zeros, in
  // which case it is read and only its non-zero pieces are written.
  Result<void> copy_with_fds(const Step& step, std::vector<std::uint8_t>& buffer) {
    bool through_memory = !kernel_copy_works_;
    if (!through_memory && options_.sparse) {
      const std::size_t probe =
          static_cast<std::size_t>(std::min<std::uint64_t>(kProbe, step.length));
      std::span<std::uint8_t> head(buffer.data(), probe);
      VHDX_TRY(pread_source(step.from, head));
      through_memory = all_zero(head);
    }
    std::uint64_t copied = 0;
    if (!through_memory) {
      VHDX_ASSIGN_OR_RETURN(copied, copy_in_kernel(step));
      if (copied == step.length) return ok();
    }
    // The kernel declined (another file system, say) or the step needs looking at.
    for (std::uint64_t done = copied; done < step.length;) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), step.length - done));
      std::span<std::uint8_t> piece(buffer.data(), n);
      VHDX_TRY(pread_source(step.from + done, piece));
      if (!options_.sparse || !all_zero(piece)) VHDX_TRY(out_.write_at(step.to + done, piece));
      done += n;
    }
    return ok();
  }

  Result<void> pread_source(std::uint64_t offset, std::span<std::uint8_t> out) {
    std::size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::pread(source_fd_, out.data() + done, out.size() - done,
                          static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return os_error("cannot read at offset " + std::to_string(offset + done) + " of",
                        engine_.source_path(), errno);
      }
      if (n == 0) return unexpected_eof(offset + done);
      done += static_cast<std::size_t>(n);
    }
    return ok();
  }

  Error unexpected_eof(std::uint64_t offset) const {
    return Error(ErrorCode::kIo, "unexpected end of file at offset " + std::to_string(offset) +
                                     " of '" + engine_.source_path() + "'");
  }

  // Returns how much copy_file_range copied before the kernel declined; after a decline every
  // later step goes through memory.
  Result<std::uint64_t> copy_in_kernel(const Step& step) {
    loff_t in = static_cast<loff_t>(step.from);
    loff_t out = static_cast<loff_t>(step.to);
    std::uint64_t done = 0;
    while (done < step.length) {
      ssize_t n = ::copy_file_range(source_fd_, &in, out_.fd(), &out,
                                    static_cast<std::size_t>(step.length - done), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
            errno == EBADF || errno == ETXTBSY || errno == EPERM) {
          kernel_copy_works_ = false;
          return done;
        }
        return os_error("cannot copy to", out_.path(), errno);
      }
      if (n == 0) return unexpected_eof(step.from + done);
      done += static_cast<std::uint64_t>(n);
    }
    return done;
  }

  void report(std::uint64_t done) {
    if (options_.progress && done != last_reported_) {
      last_reported_ = done;
      options_.progress(done, engine_.virtual_size());
    }
  }

  image::Engine& engine_;
  RawOutput& out_;
  const RawConvertOptions& options_;
  int source_fd_;
  bool kernel_copy_works_ = true;
  std::vector<std::uint8_t> buffer_;
  std::uint64_t last_reported_ = ~std::uint64_t{0};
};

// A second descriptor on the image file for copy_file_range, when the engine was opened from a
// path and that path still names a file of the size the engine saw. -1 otherwise.
int open_source(const image::Engine& engine, struct stat* st) {
  // After an in-memory log replay the file on disk is not what the engine serves.
  if (engine.source_path().empty() || engine.log_replayed_in_memory()) return -1;
  int fd = ::open(engine.source_path().c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  if (::fstat(fd, st) != 0 || !S_ISREG(st->st_mode) ||
      static_cast<std::uint64_t>(st->st_size) != engine.info().file_size) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

Result<void> convert_to_raw(image::Engine& engine, const std::string& output_path,
                            const RawConvertOptions& options) {
  // Refuse before touching the output when the image cannot be read at all.
  VHDX_TRY(engine.check_readable());
  // Unallocated ranges of a differencing image hold the parent's data; without the parent open,
  // writing zeros there would produce a wrong disk.
  if (engine.has_parent() && engine.parent() == nullptr)
    return Error(ErrorCode::kUnsupported,
                 "differencing image: its parent image is not open, and converting needs it");

  struct stat source_stat {};
  Fd source(open_source(engine, &source_stat));
  struct stat out_stat {};
  if (source.get() >= 0 && ::stat(output_path.c_str(), &out_stat) == 0 &&
      out_stat.st_dev == source_stat.st_dev && out_stat.st_ino == source_stat.st_ino)
    return Error(ErrorCode::kInvalidArgument,
                 "convert: output '" + output_path + "' is the source image itself");

  // Only regular files: on failure the partial output is removed, which must never hit a device
  // or anything else the user did not ask us to create.
  if (::stat(output_path.c_str(), &out_stat) == 0 && !S_ISREG(out_stat.st_mode))
    return Error(ErrorCode::kInvalidArgument,
                 "convert: output '" + output_path + "' is not a regular file");
  VHDX_ASSIGN_OR_RETURN(std::unique_ptr<RawOutput> out, RawOutput::create(output_path));
  Result<void> result = out->set_size(engine.virtual_size());
  if (result) result = Converter(engine, *out, options, source.get()).run();
  out.reset();
  if (!result) {
    ::unlink(output_path.c_str());
    return std::move(result).error().with_context("convert to '" + output_path + "'");
  }
  return ok();
}

}  // namespace vhdx::ops
