// Fuzz target: open an image described by the fuzzer's bytes (in memory, in the compact slot
// form of fuzz_util.h), then read the virtual disk in samples, ask for block status and count
// the blocks. Any input must end in an error or a successful read; never a crash, a hang or an
// unbounded allocation.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "fuzz_util.h"
#include "vhdx/image.h"

using namespace vhdx;

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
  (void)img.count_blocks();
  const std::uint64_t vsize = img.virtual_size();
  (void)img.block_status(0, vsize);
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
