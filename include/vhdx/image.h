// The libvhdx public API: open a VHDX image, inspect it, read it, and ask where its data is.
//
//   auto image = vhdx::Image::open("disk.vhdx", {});
//   if (!image) { fprintf(stderr, "%s\n", image.error().to_string().c_str()); return 1; }
//   std::vector<std::uint8_t> buf(4096);
//   if (auto r = (*image)->read(0, buf); !r) { ... }
//
// Thread safety: one Image may be used by one thread at a time.
// Ownership: Image owns its File and closes it when destroyed.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "vhdx/error.h"
#include "vhdx/file.h"
#include "vhdx/guid.h"
#include "vhdx/types.h"

namespace vhdx {

namespace image {
class Engine;
}

class Image {
 public:
  ~Image();
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;

  // Opens the file at path (O_RDONLY for a read-only open). A differencing image's parents are
  // found and opened read-only as options.parents says (vhdx/types.h).
  static Result<std::unique_ptr<Image>> open(const std::string& path, const OpenOptions& options);
  // Opens an image on a File the caller supplies (in-memory, fault-injecting, nbdkit-backed...).
  // Parents are never looked for (there is no path to find them from): reads of a differencing
  // image that need its parent fail with kUnsupported.
  static Result<std::unique_ptr<Image>> open_file(std::unique_ptr<File> file,
                                                  const OpenOptions& options);

  const ImageInfo& info() const;
  // Differencing images: the parent files opened, nearest first (empty otherwise).
  std::vector<std::string> parent_chain() const;
  // Why the chain could not be opened (OpenOptions::parents = kTry), or empty.
  const std::string& parent_error() const { return parent_error_; }
  std::uint64_t virtual_size() const { return info().virtual_size; }

  // Reads out.size() bytes of the virtual disk at offset. The range must lie inside the disk
  // (kOutOfRange otherwise); any alignment is fine.
  Result<void> read(std::uint64_t offset, std::span<std::uint8_t> out);

  // The extents covering [offset, offset+length), in order, adjacent extents of the same kind
  // merged (data extents only when their file offsets are contiguous).
  Result<std::vector<Extent>> block_status(std::uint64_t offset, std::uint64_t length);

  // Scans the whole BAT and counts payload entries by state (reads every BAT page: cost
  // proportional to the BAT, not done at open).
  Result<BlockCounts> count_blocks();

  // Writing needs an image opened with OpenOptions::read_only = false. Differencing images are
  // not writable yet (kUnsupported). A write or discard is durable once flush() or close()
  // returns. After any failed write, discard, flush or close the image is in a sticky failed
  // state: every later call fails with kFailed until it is reopened.

  // Writes data at offset of the virtual disk; the range must lie inside it (kOutOfRange), any
  // alignment is fine. kReadOnly on a read-only image.
  Result<void> write(std::uint64_t offset, std::span<const std::uint8_t> data);
  // Makes [offset, offset+length) read back as zeros. Whole blocks of a dynamic image are
  // released (state ZERO, or UNMAPPED when unmap); other ranges are zero-filled in place.
  Result<void> discard(std::uint64_t offset, std::uint64_t length, bool unmap = false);
  // Makes every write and discard so far durable. Does nothing on a read-only image.
  Result<void> flush();
  // Flushes and marks the file clean (its log GUID cleared). The destructor does this too, but
  // cannot report errors. The image stays usable; a later write starts a new write session.
  Result<void> close();

 private:
  friend struct ImageAccess;  // lets src/api reach the engine for operations
  explicit Image(std::unique_ptr<image::Engine> engine);
  std::unique_ptr<image::Engine> engine_;
  std::string parent_error_;
};

// Whether the file at path starts with the VHDX file type identifier. An error only when the
// file cannot be read at all.
Result<bool> probe(const std::string& path);

}  // namespace vhdx
