// Fuzz target: open an image described by the fuzzer's bytes (in memory, in the compact slot
// form of fuzz_util.h), then read the virtual disk in samples, ask for block status and count
// the blocks. Any input must end in an error or a successful read; never a crash, a hang or an
// unbounded allocation. A differencing image gets a parent (a small written image made once,
// attached without the linkage check, which needs the real file), so reads and block status go
// through the chain too; wherever block status says the parent decides, the child must read
// exactly what the parent reads.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "api/image_access.h"
#include "fuzz_util.h"
#include "image/engine.h"
#include "vhdx/image.h"

using namespace vhdx;

namespace {

constexpr std::uint64_t kParentSize = 8 << 20;

// A dynamic image with data in some blocks and not in others, made once per logical sector
// size and kept in memory.
std::vector<std::uint8_t> make_parent(std::uint32_t logical_sector_size) {
  ops::CreateParams p;
  p.virtual_size = kParentSize;
  p.block_size = 1 << 20;
  p.logical_sector_size = logical_sector_size;
  auto mem = std::make_shared<MemFile>(fuzz::created_image(p));
  {
    auto engine = image::Engine::open(std::make_unique<fuzz::SharedMemFile>(mem),
                                      OpenOptions{.read_only = false});
    if (!engine) fuzz::fail("parent open: " + engine.error().to_string());
    std::vector<std::uint8_t> data(1536 << 10);
    for (std::size_t i = 0; i < data.size(); ++i)
      data[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 13);  // no short period
    auto step = [](const Result<void>& r) {
      if (!r) fuzz::fail("parent image: " + r.error().to_string());
    };
    step((*engine)->write(0, data));  // blocks 0 and half of 1
    step((*engine)->write((3 << 20) + 8192, std::span(data).first(65536)));  // inside block 3
    step((*engine)->write((7 << 20) - 4096, std::span(data).first(8192)));   // across 6 and 7
    step((*engine)->close());
  }
  return mem->bytes();
}

// Whether `a` holds only zeros.
bool all_zero(std::span<const std::uint8_t> a) {
  return std::all_of(a.begin(), a.end(), [](std::uint8_t b) { return b == 0; });
}

// The start (up to 4 KiB) of the first 16 extents the parent decides must read the same through
// the child as from the parent itself, zeros past the parent's end.
void check_parent_extents(Image& child, image::Engine& parent, const std::vector<Extent>& extents) {
  static std::vector<std::uint8_t> through_child(4096), from_parent(4096);
  int checked = 0;
  for (const Extent& e : extents) {
    if (e.depth != 1) continue;
    if (++checked > 16) break;
    const std::uint64_t length = std::min<std::uint64_t>(e.length, 4096);
    auto got = std::span(through_child).first(length);
    if (!child.read(e.offset, got)) continue;
    auto want = std::span(from_parent).first(length);
    std::fill(want.begin(), want.end(), 0);
    if (e.offset < parent.virtual_size()) {
      const std::uint64_t inside = std::min(length, parent.virtual_size() - e.offset);
      if (!parent.read(e.offset, want.first(inside))) continue;
    }
    if (!std::equal(got.begin(), got.end(), want.begin())) {
      fuzz::fail("a differencing image read differs from its parent at " +
                 std::to_string(e.offset) + " where block status names the parent");
    }
    if (e.offset >= parent.virtual_size() && !all_zero(got)) {
      fuzz::fail("a differencing image read non-zero past its parent's end");
    }
  }
}

// Attaches a parent to a differencing image with the child's logical sector size.
image::Engine* attach_parent(Image& img) {
  image::Engine& engine = ImageAccess::engine(img);
  if (!engine.has_parent()) return nullptr;
  static const std::vector<std::uint8_t> parent_512 = make_parent(512);
  static const std::vector<std::uint8_t> parent_4096 = make_parent(4096);
  const auto& bytes = img.info().logical_sector_size == 4096 ? parent_4096 : parent_512;
  auto parent = image::Engine::open(std::make_unique<fuzz::InputFile>(bytes.data(), bytes.size()),
                                    OpenOptions{.read_only = true});
  if (!parent) fuzz::fail("parent reopen: " + parent.error().to_string());
  engine.set_parent(std::move(*parent));
  return engine.parent();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto image = Image::open_file(std::make_unique<fuzz::SlotImageFile>(data, size),
                                OpenOptions{.read_only = true});
  if (!image && image.error().code() == ErrorCode::kNeedsLogReplay) {
    // Such an image still opens for inspection; reads must then fail cleanly.
    image = Image::open_file(std::make_unique<fuzz::SlotImageFile>(data, size),
                             OpenOptions{.read_only = true, .allow_dirty_log = true});
  }
  if (!image) return 0;
  Image& img = **image;
  image::Engine* parent = attach_parent(img);
  (void)img.count_blocks();
  const std::uint64_t vsize = img.virtual_size();
  auto extents = img.block_status(0, vsize);
  if (parent && extents) check_parent_extents(img, *parent, *extents);
  if (vsize == 0) return 0;
  // Reads sample the disk without reading it all (a 64 TiB disk must stay cheap; so must a
  // 16 MiB one, the fuzzer runs this thousands of times a second): 256 KiB at the start, 256 KiB
  // across the first block boundary and across the middle, 16 KiB at 32 points spread over the
  // disk, and the last 4 KiB. Every block state and sector-bitmap path is reached by one of
  // them; reading more only copies more bytes.
  static std::vector<std::uint8_t> buf(256 * 1024);  // allocated once
  auto read_at = [&img, vsize](std::uint64_t off, std::uint64_t len) {
    if (off >= vsize) return;
    len = std::min<std::uint64_t>({len, buf.size(), vsize - off});
    (void)img.read(off, std::span(buf).first(len));
  };
  const std::uint64_t half = buf.size() / 2;
  const std::uint64_t block = img.info().block_size;
  read_at(0, buf.size());
  read_at(block > half ? block - half : 0, buf.size());
  read_at(vsize / 2 > half ? vsize / 2 - half : 0, buf.size());
  const std::uint64_t step = std::max<std::uint64_t>(vsize / 32, 1);
  for (std::uint64_t off = 0; off < vsize; off += step) read_at(off, 16 * 1024);
  const std::uint64_t tail = std::min<std::uint64_t>(vsize, 4096);
  read_at(vsize - tail, tail);
  return 0;
}
