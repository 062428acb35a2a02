#include "support/header_patch.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>

#include "format/constants.h"
#include "format/header.h"

namespace vhdx::testing {
namespace {

// Closes the descriptor on every path out.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

Result<void> set_data_write_guid(const std::string& path, const Guid& guid) {
  Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (fd.get() < 0) return Error(ErrorCode::kIo, "cannot open " + path, errno);
  for (int slot = 0; slot < 2; ++slot) {
    std::array<std::uint8_t, format::kHeaderSize> bytes{};
    const auto offset = static_cast<off_t>(format::kHeaderOffsets[slot]);
    if (::pread(fd.get(), bytes.data(), bytes.size(), offset) !=
        static_cast<ssize_t>(bytes.size())) {
      return Error(ErrorCode::kIo, "cannot read header " + std::to_string(slot + 1) + " of " + path,
                   errno);
    }
    auto header = format::decode_header(bytes);
    if (!header) {
      return Error(ErrorCode::kCorrupt, "header " + std::to_string(slot + 1) + " of " + path +
                                            ": " + header.error().message());
    }
    header->data_write_guid = guid;
    format::encode_header(*header, bytes);
    if (::pwrite(fd.get(), bytes.data(), bytes.size(), offset) !=
        static_cast<ssize_t>(bytes.size())) {
      return Error(ErrorCode::kIo,
                   "cannot write header " + std::to_string(slot + 1) + " of " + path, errno);
    }
  }
  if (::fsync(fd.get()) != 0) return Error(ErrorCode::kIo, "cannot sync " + path, errno);
  return ok();
}

}  // namespace vhdx::testing
