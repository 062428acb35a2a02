#include "ops/convert_vhdx.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "base/checked_math.h"

namespace vhdx::ops {
namespace {

// Bytes moved per read and write: large sequential I/O, and never more than one block.
constexpr std::uint64_t kPiece = 4 << 20;
// Raw outputs: zero runs of this size inside data pieces are left as holes.
constexpr std::size_t kSparseGrain = 64 << 10;

// Whether every byte is zero; stops at the first non-zero word (data is usually non-zero early).
bool all_zero(std::span<const std::uint8_t> bytes) {
  const std::uint8_t* p = bytes.data();
  std::size_t n = bytes.size();
  while (n >= 64) {
    std::uint64_t w[8];
    std::memcpy(w, p, sizeof w);
    if ((w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0) return false;
    p += 64;
    n -= 64;
  }
  for (; n > 0; --n, ++p)
    if (*p != 0) return false;
  return true;
}

Error os_error(const std::string& what, const std::string& path, int err) {
  return Error(err == ENOSPC ? ErrorCode::kNoSpace : ErrorCode::kIo,
               what + " '" + path + "': " + std::strerror(err), err);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Where converted bytes come from. read() fills `out` with the bytes at virtual offset pos, or
// returns false without touching `out` when it knows the range reads as zeros. view() may
// instead return the bytes in memory the source owns (a mapping), valid until the next call.
class Source {
 public:
  virtual ~Source() = default;
  virtual Result<bool> read(std::uint64_t pos, std::span<std::uint8_t> out) = 0;
  // Empty result: the range is zeros. Default: read() into `buffer`.
  virtual Result<std::span<const std::uint8_t>> view(std::uint64_t pos,
                                                     std::span<std::uint8_t> buffer) {
    VHDX_ASSIGN_OR_RETURN(bool has_data, read(pos, buffer));
    if (!has_data) return std::span<const std::uint8_t>{};
    return std::span<const std::uint8_t>(buffer);
  }
};

// A raw file; holes found with SEEK_DATA / SEEK_HOLE are never read.
class RawSource final : public Source {
 public:
  RawSource(int fd, std::string path, std::uint64_t size)
      : fd_(fd), path_(std::move(path)), size_(size) {}
  ~RawSource() override {
    if (map_ != nullptr) ::munmap(map_, static_cast<std::size_t>(size_));
  }
  RawSource(const RawSource&) = delete;
  RawSource& operator=(const RawSource&) = delete;

  // Maps the file so that data pieces are checked and written straight from the page cache,
  // one copy fewer than read-then-write. Without a mapping, view() falls back to read().
  void map() {
    if (size_ == 0) return;
    void* p = ::mmap(nullptr, static_cast<std::size_t>(size_), PROT_READ, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) return;
    ::madvise(p, static_cast<std::size_t>(size_), MADV_SEQUENTIAL);
    map_ = static_cast<std::uint8_t*>(p);
  }

  Result<std::span<const std::uint8_t>> view(std::uint64_t pos,
                                             std::span<std::uint8_t> buffer) override {
    if (map_ == nullptr || pos + buffer.size() > size_) return Source::view(pos, buffer);
    // Drop the previous piece's page table entries: the mapping's footprint stays one piece.
    if (mapped_len_ != 0) ::madvise(map_ + mapped_from_, mapped_len_, MADV_DONTNEED);
    mapped_len_ = 0;
    if (pos >= data_end_) find_data(pos);
    if (pos + buffer.size() <= data_start_) return std::span<const std::uint8_t>{};
    mapped_from_ = static_cast<std::size_t>(pos);
    mapped_len_ = buffer.size();
    return std::span<const std::uint8_t>(map_ + pos, buffer.size());
  }

  Result<bool> read(std::uint64_t pos, std::span<std::uint8_t> out) override {
    if (pos >= size_) return false;
    if (pos >= data_end_) find_data(pos);
    if (pos + out.size() <= data_start_) return false;
    const std::size_t in_file =
        static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), size_ - pos));
    std::size_t done = 0;
    while (done < in_file) {
      const ssize_t n =
          ::pread(fd_, out.data() + done, in_file - done, static_cast<off_t>(pos + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return os_error("cannot read at offset " + std::to_string(pos + done) + " of", path_,
                        errno);
      }
      if (n == 0)
        return Error(ErrorCode::kIo, "unexpected end of file at offset " +
                                         std::to_string(pos + done) + " of '" + path_ + "'");
      done += static_cast<std::size_t>(n);
    }
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(in_file), out.end(), 0);
    return true;
  }

 private:
  // Sets [data_start_, data_end_) to the data segment at or after pos.
  void find_data(std::uint64_t pos) {
    const off_t start = ::lseek(fd_, static_cast<off_t>(pos), SEEK_DATA);
    if (start < 0) {
      if (errno == ENXIO) {  // only a hole up to the end
        data_start_ = data_end_ = ~std::uint64_t{0};
      } else {  // no hole support: everything is data
        data_start_ = 0;
        data_end_ = ~std::uint64_t{0};
      }
      return;
    }
    const off_t end = ::lseek(fd_, start, SEEK_HOLE);
    data_start_ = static_cast<std::uint64_t>(start);
    data_end_ = end < 0 ? ~std::uint64_t{0} : static_cast<std::uint64_t>(end);
  }

  int fd_;
  std::string path_;
  std::uint64_t size_;
  std::uint8_t* map_ = nullptr;
  std::size_t mapped_from_ = 0;
  std::size_t mapped_len_ = 0;
  std::uint64_t data_start_ = 0;
  std::uint64_t data_end_ = 0;
};

// An open image: ranges without data extents are zeros and are not read.
class ImageSource final : public Source {
 public:
  explicit ImageSource(image::Engine& engine) : engine_(engine) {}

  Result<bool> read(std::uint64_t pos, std::span<std::uint8_t> out) override {
    VHDX_ASSIGN_OR_RETURN(auto extents, engine_.block_status(pos, out.size()));
    const bool any_data = std::any_of(extents.begin(), extents.end(),
                                      [](const Extent& e) { return e.kind == ExtentKind::kData; });
    if (!any_data) return false;
    VHDX_TRY(engine_.read(pos, out));
    return true;
  }

 private:
  image::Engine& engine_;
};

class Progress {
 public:
  Progress(const ProgressCallback& callback, std::uint64_t total)
      : callback_(callback), total_(total) {}
  void report(std::uint64_t done) {
    if (callback_) callback_(done, total_);
  }

 private:
  const ProgressCallback& callback_;
  std::uint64_t total_;
};

// Streams the source through one buffer into the writer; pieces never straddle a block since
// both the piece and the block size are powers of two.
Result<void> pump(Source& source, VhdxWriter& writer, std::uint64_t virtual_size,
                  const ProgressCallback& callback) {
  const std::uint64_t block_size = writer.params().block_size;
  const std::uint64_t piece = std::min(kPiece, block_size);
  std::vector<std::uint8_t> buffer(static_cast<std::size_t>(piece));
  Progress progress(callback, virtual_size);
  progress.report(0);
  for (std::uint64_t pos = 0; pos < virtual_size; pos += piece) {
    const std::uint64_t n = std::min(piece, virtual_size - pos);
    std::span<std::uint8_t> piece_buffer(buffer.data(), static_cast<std::size_t>(n));
    VHDX_ASSIGN_OR_RETURN(std::span<const std::uint8_t> chunk, source.view(pos, piece_buffer));
    if (!chunk.empty() && !all_zero(chunk))
      VHDX_TRY(writer.write(pos / block_size, pos % block_size, chunk));
    progress.report(pos + n);
  }
  return writer.finish();
}

// kInvalidArgument when output_path names the same file as source_path.
Result<void> refuse_same_file(const std::string& source_path, const std::string& output_path) {
  struct stat a {};
  struct stat b {};
  if (!source_path.empty() && ::stat(source_path.c_str(), &a) == 0 &&
      ::stat(output_path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
    return Error(ErrorCode::kInvalidArgument,
                 "convert: output '" + output_path + "' is the source itself");
  return ok();
}

Result<std::pair<int, std::uint64_t>> open_raw(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return os_error("cannot open", path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return os_error("cannot stat", path, err);
  }
  return std::pair<int, std::uint64_t>(fd, static_cast<std::uint64_t>(st.st_size));
}

}  // namespace

Result<void> convert_image_to_vhdx(image::Engine& engine, const std::string& output_path,
                                   const CreateParams& params, const ProgressCallback& progress) {
  VHDX_TRY(engine.check_readable());
  // Without the parent open, the ranges this file does not hold cannot be read.
  if (engine.has_parent() && engine.parent() == nullptr)
    return Error(ErrorCode::kUnsupported,
                 "differencing image: its parent image is not open, and converting needs it");
  VHDX_TRY(refuse_same_file(engine.source_path(), output_path));
  CreateParams p = params;
  p.virtual_size = engine.virtual_size();
  VHDX_ASSIGN_OR_RETURN(auto writer, VhdxWriter::create(output_path, p));
  ImageSource source(engine);
  auto result = pump(source, *writer, p.virtual_size, progress);
  if (!result) return std::move(result).error().with_context("convert to '" + output_path + "'");
  return ok();
}

Result<void> convert_raw_to_vhdx(const std::string& raw_path, const std::string& output_path,
                                 const CreateParams& params, const ProgressCallback& progress) {
  VHDX_TRY(refuse_same_file(raw_path, output_path));
  VHDX_ASSIGN_OR_RETURN(auto opened, open_raw(raw_path));
  Fd fd(opened.first);
  const std::uint64_t size = opened.second;
  CreateParams p = params;
  const std::uint32_t sector = p.logical_sector_size == 4096 ? 4096 : 512;
  p.virtual_size = size / sector * sector + (size % sector != 0 ? sector : 0);
  if (size == 0)
    return Error(ErrorCode::kInvalidArgument,
                 "convert: '" + raw_path + "' is empty (a VHDX disk cannot be 0 bytes)");
  VHDX_ASSIGN_OR_RETURN(auto writer, VhdxWriter::create(output_path, p));
  RawSource source(fd.get(), raw_path, size);
  source.map();
  auto result = pump(source, *writer, p.virtual_size, progress);
  if (!result) return std::move(result).error().with_context("convert to '" + output_path + "'");
  return ok();
}

Result<void> convert_raw_to_vhdx(const std::string& raw_path, std::unique_ptr<File> output,
                                 const CreateParams& params, const ProgressCallback& progress) {
  if (!output) return Error(ErrorCode::kInvalidArgument, "convert: no output file");
  const std::string output_name = output->name();
  VHDX_ASSIGN_OR_RETURN(auto opened, open_raw(raw_path));
  Fd fd(opened.first);
  const std::uint64_t size = opened.second;
  if (size == 0)
    return Error(ErrorCode::kInvalidArgument,
                 "convert: '" + raw_path + "' is empty (a VHDX disk cannot be 0 bytes)");
  CreateParams p = params;
  const std::uint32_t sector = p.logical_sector_size == 4096 ? 4096 : 512;
  p.virtual_size = size / sector * sector + (size % sector != 0 ? sector : 0);
  VHDX_ASSIGN_OR_RETURN(auto writer, VhdxWriter::create(std::move(output), p));
  RawSource source(fd.get(), raw_path, size);
  source.map();
  auto result = pump(source, *writer, p.virtual_size, progress);
  if (!result) return std::move(result).error().with_context("convert to '" + output_name + "'");
  return ok();
}

Result<void> convert_raw_to_raw(const std::string& raw_path, const std::string& output_path,
                                const RawConvertOptions& options) {
  VHDX_TRY(refuse_same_file(raw_path, output_path));
  VHDX_ASSIGN_OR_RETURN(auto opened, open_raw(raw_path));
  Fd in(opened.first);
  const std::uint64_t size = opened.second;
  Fd out(::open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (out.get() < 0) return os_error("cannot create", output_path, errno);
  struct stat st {};
  const bool regular = ::fstat(out.get(), &st) == 0 && S_ISREG(st.st_mode);
  auto fail = [&](Error e) {
    if (regular) ::unlink(output_path.c_str());  // never a device such as /dev/null
    return std::move(e).with_context("convert to '" + output_path + "'");
  };
  if (::ftruncate(out.get(), static_cast<off_t>(size)) != 0)
    return fail(os_error("cannot set the size of", output_path, errno));
  RawSource source(in.get(), raw_path, size);
  std::vector<std::uint8_t> buffer(static_cast<std::size_t>(kPiece));
  Progress progress(options.progress, size);
  progress.report(0);
  for (std::uint64_t pos = 0; pos < size; pos += kPiece) {
    std::span<std::uint8_t> chunk(buffer.data(),
                                  static_cast<std::size_t>(std::min(kPiece, size - pos)));
    auto has_data = source.read(pos, chunk);
    if (!has_data) return fail(std::move(has_data).error());
    if (!*has_data) {
      if (options.sparse) {
        progress.report(pos + chunk.size());
        continue;
      }
      std::fill(chunk.begin(), chunk.end(), 0);
    } else if (options.sparse && all_zero(chunk)) {
      progress.report(pos + chunk.size());
      continue;
    }
    // Write only the non-zero runs (64 KiB granularity) so data pieces with zeros stay sparse.
    const std::size_t grain = options.sparse ? kSparseGrain : chunk.size();
    for (std::size_t at = 0; at < chunk.size();) {
      std::size_t run_end = at;
      while (run_end < chunk.size()) {
        const std::size_t n = std::min(grain, chunk.size() - run_end);
        if (options.sparse && all_zero(chunk.subspan(run_end, n))) break;
        run_end += n;
      }
      for (std::size_t done = at; done < run_end;) {
        const ssize_t n = ::pwrite(out.get(), chunk.data() + done, run_end - done,
                                   static_cast<off_t>(pos + done));
        if (n < 0) {
          if (errno == EINTR) continue;
          return fail(os_error("cannot write to", output_path, errno));
        }
        done += static_cast<std::size_t>(n);
      }
      at = run_end == at ? at + std::min(grain, chunk.size() - at) : run_end;
    }
    progress.report(pos + chunk.size());
  }
  if (::fdatasync(out.get()) != 0) return fail(os_error("cannot flush", output_path, errno));
  return ok();
}

}  // namespace vhdx::ops
