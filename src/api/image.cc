#include "vhdx/image.h"

#include <cstring>

#include "api/image_access.h"
#include "api/parent_chain.h"
#include "format/constants.h"
#include "image/engine.h"
#include "io/posix_file.h"

namespace vhdx {

const char* disk_type_name(DiskType type) {
  switch (type) {
    case DiskType::kFixed:
      return "fixed";
    case DiskType::kDynamic:
      return "dynamic";
    case DiskType::kDifferencing:
      return "differencing";
  }
  return "unknown";
}

Image::Image(std::unique_ptr<image::Engine> engine) : engine_(std::move(engine)) {}
Image::~Image() = default;

Result<std::unique_ptr<Image>> Image::open(const std::string& path, const OpenOptions& options) {
  PosixOpenOptions posix;
  posix.writable = !options.read_only;
  posix.force_share = options.force_share;
  VHDX_ASSIGN_OR_RETURN(std::unique_ptr<File> file, open_posix_file(path, posix));
  auto engine = image::Engine::open(std::move(file), options);
  if (!engine) return std::move(engine).error().with_context("'" + path + "'");
  (*engine)->set_source_path(path);
  // The host allocation is informational; a stat failure here leaves it at 0.
  if (auto allocated = allocated_bytes(path)) (*engine)->set_actual_size(*allocated);
  std::string parent_error;
  if ((*engine)->has_parent() && options.parents != ParentChain::kIgnore) {
    if (auto chain = open_parent_chain(**engine, path, options); !chain) {
      if (options.parents == ParentChain::kRequire) return std::move(chain).error();
      parent_error = chain.error().message();
    }
  }
  std::unique_ptr<Image> image(new Image(std::move(*engine)));
  image->parent_error_ = std::move(parent_error);
  return image;
}

std::vector<std::string> Image::parent_chain() const {
  std::vector<std::string> paths;
  for (const image::Engine* p = engine_->parent(); p != nullptr; p = p->parent())
    paths.push_back(p->source_path());
  return paths;
}

Result<std::unique_ptr<Image>> Image::open_file(std::unique_ptr<File> file,
                                                const OpenOptions& options) {
  VHDX_ASSIGN_OR_RETURN(auto engine, image::Engine::open(std::move(file), options));
  return std::unique_ptr<Image>(new Image(std::move(engine)));
}

const ImageInfo& Image::info() const { return engine_->info(); }

namespace {

// Errors name the image they come from, as open's do, so that a message read in a log or
// from a tool working on several files (convert, a chain) says which file is damaged.
template <typename T>
Result<T> named(Result<T> result, const image::Engine& engine) {
  if (result || engine.source_path().empty()) return result;
  return std::move(result).error().with_context("'" + engine.source_path() + "'");
}

}  // namespace

Result<void> Image::read(std::uint64_t offset, std::span<std::uint8_t> out) {
  return named(engine_->read(offset, out), *engine_);
}

Result<std::vector<Extent>> Image::block_status(std::uint64_t offset, std::uint64_t length) {
  return named(engine_->block_status(offset, length), *engine_);
}

Result<BlockCounts> Image::count_blocks() { return named(engine_->count_blocks(), *engine_); }

Result<void> Image::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  return named(engine_->write(offset, data), *engine_);
}

Result<void> Image::discard(std::uint64_t offset, std::uint64_t length, bool unmap) {
  return named(engine_->discard(offset, length, unmap), *engine_);
}

Result<void> Image::flush() { return named(engine_->flush(), *engine_); }

Result<void> Image::close() { return named(engine_->close(), *engine_); }

Result<bool> probe(const std::string& path) {
  VHDX_ASSIGN_OR_RETURN(std::unique_ptr<File> file,
                        open_posix_file(path, PosixOpenOptions{.force_share = true}));
  VHDX_ASSIGN_OR_RETURN(std::uint64_t size, file->size());
  std::uint8_t signature[sizeof format::kFileSignature];
  if (size < sizeof signature) return false;
  VHDX_TRY(file->read_at(0, signature));
  return std::memcmp(signature, format::kFileSignature, sizeof signature) == 0;
}

}  // namespace vhdx
