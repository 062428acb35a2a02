// nbdkit-vhdx-filter: exposes the virtual disk of a VHDX image whose raw bytes another nbdkit
// plugin serves, e.g.
//
//   nbdkit --filter=./nbdkit-vhdx-filter.so file disk.vhdx
//   nbdkit --filter=./nbdkit-vhdx-filter.so curl https://example.com/disk.vhdx
//
// The filter is read-only, whatever the client asks: an NBD export has a fixed size, while a
// write to a VHDX image may need to grow the container file (a new payload block, a log entry),
// and not every plugin below can grow. The plugin below is opened read-only too, so not a byte
// of the image is written; an image whose log needs replay is replayed in memory only.
//
// Limitation: differencing images are served without their parent (there is no path to find
// it from): reads of ranges the child does not hold fail with ENOTSUP (which nbdkit 1.32 sends
// to the client as EINVAL), and extents report those ranges as holes not known to be zero.
//
// Each connection opens its own vhdx::Image in .prepare on that connection's nbdkit_next (valid
// from .prepare to .finalize) and drops it in .finalize. An Image is not thread-safe, so
// requests on one connection are serialised; connections are independent.
//
// Errors: the library's message goes to nbdkit_error (so to nbdkit's log), and the client gets
// vhdx::errno_for's errno, which nbdkit turns into the NBD error the client sees (EROFS and
// EPERM become NBD_EPERM, ENOSPC NBD_ENOSPC, EINVAL NBD_EINVAL, anything else NBD_EIO; nbdkit
// 1.32 sends ENOTSUP as NBD_EINVAL except on fast-zero requests). No exception leaves a callback.
#include <nbdkit-filter.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "vhdx/error.h"
#include "vhdx/file.h"
#include "vhdx/image.h"
#include "vhdx/types.h"

namespace {

// The plugin below seen as a vhdx::File. Valid while the connection's nbdkit_next is, that is
// from .prepare to .finalize.
class NextFile final : public vhdx::File {
 public:
  explicit NextFile(nbdkit_next* next) : next_(next) {}

  vhdx::Result<void> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    VHDX_ASSIGN_OR_RETURN(const std::uint64_t file_size, size());
    if (offset > file_size || out.size() > file_size - offset) {
      return vhdx::Error(vhdx::ErrorCode::kIo,
                         "read of " + std::to_string(out.size()) + " bytes at offset " +
                             std::to_string(offset) + ": unexpected end of file (" +
                             std::to_string(file_size) + " bytes)",
                         EIO);
    }
    // NBD requests carry a 32-bit count; keep well below it so plugins are not asked for
    // huge single buffers.
    constexpr std::size_t kMaxChunk = std::size_t{32} << 20;
    std::size_t done = 0;
    while (done < out.size()) {
      const std::size_t chunk = std::min(out.size() - done, kMaxChunk);
      int err = 0;
      if (next_->pread(next_, out.data() + done, static_cast<std::uint32_t>(chunk), offset + done,
                       0, &err) == -1) {
        if (err == 0) err = EIO;
        return vhdx::Error(vhdx::ErrorCode::kIo,
                           "read of " + std::to_string(chunk) + " bytes at offset " +
                               std::to_string(offset + done) + " from the plugin failed",
                           err);
      }
      done += chunk;
    }
    return vhdx::ok();
  }

  vhdx::Result<void> write_at(std::uint64_t, std::span<const std::uint8_t>) override {
    return read_only_error();
  }

  vhdx::Result<std::uint64_t> size() override {
    if (size_) return *size_;
    const std::int64_t size = next_->get_size(next_);
    if (size < 0) {
      return vhdx::Error(vhdx::ErrorCode::kIo, "the plugin could not tell the file's size", EIO);
    }
    size_ = static_cast<std::uint64_t>(size);
    return *size_;
  }

  vhdx::Result<void> truncate(std::uint64_t) override { return read_only_error(); }
  vhdx::Result<void> flush() override { return vhdx::ok(); }
  vhdx::Result<void> punch_hole(std::uint64_t, std::uint64_t) override { return read_only_error(); }
  bool writable() const override { return false; }
  std::string name() const override { return "<nbdkit plugin>"; }

 private:
  static vhdx::Error read_only_error() {
    return vhdx::Error(vhdx::ErrorCode::kReadOnly, "the nbdkit vhdx filter is read-only");
  }

  nbdkit_next* next_;
  std::optional<std::uint64_t> size_;
};

// Per-connection state.
struct Handle {
  std::unique_ptr<vhdx::Image> image;
};

Handle* handle_of(void* handle) { return static_cast<Handle*>(handle); }

// Reports an exception that reached a callback; returns the errno for the client.
int report_exception(const char* where) {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    nbdkit_error("vhdx: %s: out of memory", where);
    return ENOMEM;
  } catch (const std::exception& e) {
    nbdkit_error("vhdx: %s: %s", where, e.what());
    return EIO;
  } catch (...) {
    nbdkit_error("vhdx: %s: unknown exception", where);
    return EIO;
  }
}

int report_error(const vhdx::Error& error) {
  nbdkit_error("vhdx: %s", error.to_string().c_str());
  return vhdx::errno_for(error);
}

// The image of a prepared connection, or nullptr (with the error logged) before .prepare
// succeeded; nbdkit does not send requests then, so this is a guard only.
vhdx::Image* image_of(void* handle) {
  vhdx::Image* image = handle_of(handle)->image.get();
  if (image == nullptr) nbdkit_error("vhdx: the image is not open on this connection");
  return image;
}

int vhdx_thread_model() { return NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS; }

void* vhdx_open(nbdkit_next_open* next, nbdkit_context* context, int /*readonly*/,
                const char* exportname, int /*is_tls*/) {
  // The plugin below is only ever read.
  if (next(context, 1, exportname) == -1) return nullptr;
  try {
    return new Handle;
  } catch (...) {
    report_exception("open");
    return nullptr;
  }
}

void vhdx_close(void* handle) { delete handle_of(handle); }

int vhdx_prepare(nbdkit_next* next, void* handle, int /*readonly*/) {
  try {
    // nbdkit refuses next->pread before a next->get_size on the connection.
    if (next->get_size(next) == -1) return -1;
    auto image = vhdx::Image::open_file(std::make_unique<NextFile>(next),
                                        vhdx::OpenOptions{.read_only = true});
    if (!image) {
      report_error(image.error());
      return -1;
    }
    handle_of(handle)->image = std::move(*image);
    return 0;
  } catch (...) {
    report_exception("prepare");
    return -1;
  }
}

int vhdx_finalize(nbdkit_next* /*next*/, void* handle) {
  // The Image reads through this connection's next, which is gone after .finalize.
  handle_of(handle)->image.reset();
  return 0;
}

std::int64_t vhdx_get_size(nbdkit_next* /*next*/, void* handle) {
  vhdx::Image* image = image_of(handle);
  if (image == nullptr) return -1;
  const std::uint64_t size = image->virtual_size();
  if (size > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    nbdkit_error("vhdx: virtual size %llu is too large to serve",
                 static_cast<unsigned long long>(size));
    return -1;
  }
  return static_cast<std::int64_t>(size);
}

int vhdx_block_size(nbdkit_next* /*next*/, void* handle, std::uint32_t* minimum,
                    std::uint32_t* preferred, std::uint32_t* maximum) {
  vhdx::Image* image = image_of(handle);
  if (image == nullptr) return -1;
  // Any alignment reads correctly; whole logical sectors avoid partial-sector work.
  *minimum = 1;
  *preferred = std::max<std::uint32_t>(4096, image->info().logical_sector_size);
  *maximum = 0xffffffff;
  return 0;
}

int vhdx_false(nbdkit_next* /*next*/, void* /*handle*/) { return 0; }
int vhdx_true(nbdkit_next* /*next*/, void* /*handle*/) { return 1; }
int vhdx_can_zero(nbdkit_next* /*next*/, void* /*handle*/) { return NBDKIT_ZERO_NONE; }
int vhdx_can_fua(nbdkit_next* /*next*/, void* /*handle*/) { return NBDKIT_FUA_NONE; }
// Cache requests would otherwise pass to the plugin with virtual-disk offsets.
int vhdx_can_cache(nbdkit_next* /*next*/, void* /*handle*/) { return NBDKIT_CACHE_NONE; }

int vhdx_pread(nbdkit_next* /*next*/, void* handle, void* buf, std::uint32_t count,
               std::uint64_t offset, std::uint32_t /*flags*/, int* err) {
  try {
    vhdx::Image* image = image_of(handle);
    if (image == nullptr) {
      *err = EIO;
      return -1;
    }
    auto result = image->read(offset, std::span(static_cast<std::uint8_t*>(buf), count));
    if (!result) {
      *err = report_error(result.error());
      return -1;
    }
    return 0;
  } catch (...) {
    *err = report_exception("pread");
    return -1;
  }
}

// Zero and unallocated ranges are holes that read as zeros, except the unallocated ranges of a
// differencing image: their data is in the parent, which is not open, so they are holes whose
// content is unknown (and reading them fails) rather than zeros a client could skip reading.
std::uint32_t extent_type(const vhdx::Extent& extent, bool differencing) {
  switch (extent.kind) {
    case vhdx::ExtentKind::kData:
      return 0;
    case vhdx::ExtentKind::kZero:
      return NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
    case vhdx::ExtentKind::kUnallocated:
      return differencing ? NBDKIT_EXTENT_HOLE : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
  }
  return 0;
}

int vhdx_extents(nbdkit_next* /*next*/, void* handle, std::uint32_t count, std::uint64_t offset,
                 std::uint32_t /*flags*/, nbdkit_extents* extents, int* err) {
  try {
    vhdx::Image* image = image_of(handle);
    if (image == nullptr) {
      *err = EIO;
      return -1;
    }
    // nbdkit checks the range against the size; clamp anyway so block_status never sees a
    // range past the disk.
    const std::uint64_t size = image->virtual_size();
    if (offset >= size) {
      nbdkit_error("vhdx: extents at offset %llu: past the end of the disk",
                   static_cast<unsigned long long>(offset));
      *err = EINVAL;
      return -1;
    }
    const std::uint64_t length = std::min<std::uint64_t>(count, size - offset);
    auto list = image->block_status(offset, length);
    if (!list) {
      *err = report_error(list.error());
      return -1;
    }
    const bool differencing = image->info().type == vhdx::DiskType::kDifferencing;
    for (const vhdx::Extent& extent : *list) {
      if (nbdkit_add_extent(extents, extent.offset, extent.length,
                            extent_type(extent, differencing)) == -1) {
        *err = errno != 0 ? errno : EIO;
        return -1;
      }
    }
    return 0;
  } catch (...) {
    *err = report_exception("extents");
    return -1;
  }
}

nbdkit_filter make_filter() {
  nbdkit_filter f{};
  f.name = "vhdx";
  f.longname = "libvhdx VHDX filter";
  f.description =
      "Serves, read-only, the virtual disk of a VHDX image that the plugin below provides.";
  f.config_help = "The vhdx filter takes no parameters.";
  f.thread_model = vhdx_thread_model;
  f.open = vhdx_open;
  f.close = vhdx_close;
  f.prepare = vhdx_prepare;
  f.finalize = vhdx_finalize;
  f.get_size = vhdx_get_size;
  f.block_size = vhdx_block_size;
  f.can_write = vhdx_false;
  f.can_flush = vhdx_false;
  f.can_trim = vhdx_false;
  f.can_zero = vhdx_can_zero;
  f.can_fast_zero = vhdx_false;
  f.can_fua = vhdx_can_fua;
  f.can_cache = vhdx_can_cache;
  f.can_extents = vhdx_true;
  f.can_multi_conn = vhdx_true;
  f.pread = vhdx_pread;
  f.extents = vhdx_extents;
  return f;
}

nbdkit_filter filter = make_filter();

}  // namespace

NBDKIT_REGISTER_FILTER(filter)
