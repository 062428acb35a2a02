// Fuzz target: open an image made of the fuzzer's bytes (in memory), then read the whole
// virtual disk in samples, ask for block status and count the blocks. Any input must end in an
// error or a successful read; never a crash, a hang or an unbounded allocation.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vhdx/file.h"
#include "vhdx/image.h"

using namespace vhdx;

namespace {

// A read-only File over the fuzzer's own buffer. Inputs are up to 5 MiB; copying each one into
// a MemFile cost more than the open itself.
class InputFile final : public File {
 public:
  InputFile(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  Result<void> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    if (offset > size_ || out.size() > size_ - offset)
      return Error(ErrorCode::kIo, "unexpected end of file at offset " + std::to_string(offset));
    std::copy_n(data_ + offset, out.size(), out.begin());
    return ok();
  }
  Result<void> write_at(std::uint64_t, std::span<const std::uint8_t>) override { return denied(); }
  Result<std::uint64_t> size() override { return std::uint64_t{size_}; }
  Result<void> truncate(std::uint64_t) override { return denied(); }
  Result<void> flush() override { return ok(); }
  Result<void> punch_hole(std::uint64_t, std::uint64_t) override { return denied(); }
  bool writable() const override { return false; }
  std::string name() const override { return "<fuzz input>"; }

 private:
  static Error denied() { return Error(ErrorCode::kReadOnly, "<fuzz input> is read-only"); }
  const std::uint8_t* data_;
  std::size_t size_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto image =
      Image::open_file(std::make_unique<InputFile>(data, size), OpenOptions{.read_only = true});
  if (!image && image.error().code() == ErrorCode::kNeedsLogReplay) {
    // Such an image still opens for inspection; reads must then fail cleanly.
    image = Image::open_file(std::make_unique<InputFile>(data, size),
                             OpenOptions{.read_only = true, .allow_dirty_log = true});
  }
  if (!image) return 0;
  Image& img = **image;
  (void)img.count_blocks();
  const std::uint64_t vsize = img.virtual_size();
  (void)img.block_status(0, vsize);
  // Reads sample the disk without reading it all (a 64 TiB disk must stay cheap): one 1 MiB
  // read at the start, one straddling the middle (crosses a block boundary), then 64 KiB at 64
  // points spread over the disk, and the last 4 KiB.
  static std::vector<std::uint8_t> buf(1 << 20);  // allocated once: big allocations are slow
  auto read_at = [&img, vsize](std::uint64_t off, std::uint64_t len) {
    len = std::min<std::uint64_t>({len, buf.size(), vsize - off});
    (void)img.read(off, std::span(buf).first(len));
  };
  if (vsize == 0) return 0;
  read_at(0, buf.size());
  read_at(vsize / 2 > buf.size() / 2 ? vsize / 2 - buf.size() / 2 : 0, buf.size());
  const std::uint64_t step = std::max<std::uint64_t>(vsize / 64, 1);
  for (std::uint64_t off = 0; off < vsize; off += step) read_at(off, 64 * 1024);
  const std::uint64_t tail = std::min<std::uint64_t>(vsize, 4096);
  read_at(vsize - tail, tail);
  return 0;
}
