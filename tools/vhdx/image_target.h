// Opening images for the subcommands, and the adapter that lets `vhdx io` commands run on one.
#pragma once

#include <memory>
#include <string>

#include "io_commands.h"
#include "vhdx/image.h"

namespace vhdx::cli {

class ImageTarget final : public IoTarget {
 public:
  explicit ImageTarget(Image& image) : image_(image) {}
  const ImageInfo& info() const override { return image_.info(); }
  Result<void> read(std::uint64_t offset, std::span<std::uint8_t> out) override {
    return image_.read(offset, out);
  }
  Result<std::vector<Extent>> block_status(std::uint64_t offset, std::uint64_t length) override {
    return image_.block_status(offset, length);
  }
  // Every open is read-only until the library can write.
  bool writable() const override { return false; }

 private:
  Image& image_;
};

}  // namespace vhdx::cli
