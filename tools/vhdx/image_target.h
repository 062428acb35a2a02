// Opening images for the subcommands, and the adapter that lets `vhdx io` commands run on one.
#pragma once

#include <memory>
#include <string>

#include "io_commands.h"
#include "vhdx/image.h"

namespace vhdx::cli {

class ImageTarget final : public IoTarget {
 public:
  ImageTarget(Image& image, bool writable) : image_(image), writable_(writable) {}
  const ImageInfo& info() const override { return image_.info(); }
  Result<void> read(std::uint64_t offset, std::span<std::uint8_t> out) override {
    return image_.read(offset, out);
  }
  Result<std::vector<Extent>> block_status(std::uint64_t offset, std::uint64_t length) override {
    return image_.block_status(offset, length);
  }
  bool writable() const override { return writable_; }
  Result<void> write(std::uint64_t offset, std::span<const std::uint8_t> data) override {
    return image_.write(offset, data);
  }
  Result<void> discard(std::uint64_t offset, std::uint64_t length, bool unmap) override {
    return image_.discard(offset, length, unmap);
  }
  Result<void> flush() override { return image_.flush(); }

 private:
  Image& image_;
  bool writable_;
};

}  // namespace vhdx::cli
