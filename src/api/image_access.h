// ImageAccess: how the api layer reaches the engine inside a public vhdx::Image (the Image
// declares this struct its friend). Internal to src/api.
#pragma once

#include "image/engine.h"
#include "vhdx/image.h"

namespace vhdx {

struct ImageAccess {
  static image::Engine& engine(Image& image) { return *image.engine_; }
  static const image::Engine& engine(const Image& image) { return *image.engine_; }
};

}  // namespace vhdx
