// Fuzz target: the fuzzer's bytes drive writes, discards, flushes, reads and close/reopen
// cycles on a valid empty dynamic image held in memory, next to a shadow copy of the virtual
// disk. Every operation inside the disk must succeed; every read must match the shadow. After a
// final close, ops::check_image must find no corruption and a fresh read-only open must read
// exactly the shadow over the whole disk. Anything else aborts.
//
// Input: byte 0 picks the image (bit 0: 1 MiB blocks and 512-byte sectors, or 2 MiB blocks and
// 4 KiB sectors), then operations of a few bytes each (see the switch below), at most
// kMaxOperations.
//
// Speed (a long run needs millions of executions): the image file is a copy-on-write
// overlay of the empty image made once, so a run copies only the 4 KiB pages the engine
// writes; written data comes from a pseudo-random pattern made once; the shadow lives across
// runs and only the part the last run wrote is zeroed again.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "image/engine.h"
#include "io/fault_file.h"
#include "ops/check.h"
#include "ops/create.h"

using namespace vhdx;

namespace {

constexpr int kMaxOperations = 48;
constexpr std::uint64_t kMaxWrite = 2 << 20;
// A write of pattern byte p takes kMaxWrite bytes at most from offset p * kPatternStride of the
// pattern: an odd stride, so that sector-aligned writes with different pattern bytes never carry
// the same sectors.
constexpr std::uint64_t kPatternStride = 8191;

struct BaseImage {
  std::vector<std::uint8_t> bytes;
  std::uint64_t virtual_size = 0;
};

const BaseImage& base_image(int which) {
  static const BaseImage images[2] = {
      [] {
        ops::CreateParams p;
        p.virtual_size = (6 << 20) + (64 << 10);  // the last block is partial
        p.block_size = 1 << 20;
        p.logical_sector_size = 512;
        return BaseImage{fuzz::created_image(p), p.virtual_size};
      }(),
      [] {
        ops::CreateParams p;
        p.virtual_size = (4 << 20) + (8 << 10);
        p.block_size = 2 << 20;
        p.logical_sector_size = 4096;
        return BaseImage{fuzz::created_image(p), p.virtual_size};
      }(),
  };
  return images[which];
}

// Bytes no two places of which look alike (xorshift64), for the data of every write.
std::span<const std::uint8_t> write_pattern() {
  static const std::vector<std::uint8_t> pattern = [] {
    std::vector<std::uint8_t> out(255 * kPatternStride + kMaxWrite);
    std::uint64_t x = 0x9E3779B97F4A7C15u;
    for (std::size_t i = 0; i < out.size(); i += 8) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      std::memcpy(out.data() + i, &x, std::min<std::size_t>(8, out.size() - i));
    }
    return out;
  }();
  return pattern;
}

std::unique_ptr<image::Engine> open_engine(CopyOnWriteFile& file, bool read_only) {
  auto engine = image::Engine::open(std::make_unique<BorrowedFile>(file),
                                    OpenOptions{.read_only = read_only});
  if (!engine) fuzz::fail("open: " + engine.error().to_string());
  return std::move(*engine);
}

void expect_ok(const Result<void>& r, const std::string& what) {
  if (!r) fuzz::fail(what + ": " + r.error().to_string());
}

// The virtual disk as it should read. It lives across runs (a fresh multi-MiB buffer per run
// costs more in page faults than the work itself), by 64 KiB chunk: a chunk not marked written
// reads as zeros whatever its bytes hold, so a new run and a discard of whole chunks only clear
// marks, and a chunk's bytes are zeroed when a write first marks it.
class Shadow {
 public:
  static constexpr std::uint64_t kChunk = 64 << 10;

  void reset(std::uint64_t size) {
    if (bytes_.size() < size) {
      bytes_.resize(size);
      written_.resize((size + kChunk - 1) / kChunk);
    }
    std::fill(written_.begin(), written_.end(), false);
  }
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) {
    if (data.empty()) return;
    mark_written(offset, data.size());
    std::memcpy(bytes_.data() + offset, data.data(), data.size());
  }
  void zero(std::uint64_t offset, std::uint64_t length) {
    for (std::uint64_t at = offset, end = offset + length; at < end;) {
      const std::uint64_t c = at / kChunk;
      const std::uint64_t n = std::min(kChunk - at % kChunk, end - at);
      if (n == kChunk || chunk_size(c) == n)
        written_[c] = false;
      else if (written_[c])
        std::memset(bytes_.data() + at, 0, n);
      at += n;
    }
  }
  // Whether `got`, read at virtual offset `offset`, is what the disk holds; chunks not written
  // are compared with zeros, which stay in the cache.
  bool matches(std::uint64_t offset, std::span<const std::uint8_t> got) const {
    static const std::vector<std::uint8_t> zeros(kChunk, 0);
    for (std::size_t done = 0; done < got.size();) {
      const std::uint64_t at = offset + done;
      const auto n = static_cast<std::size_t>(
          std::min<std::uint64_t>(kChunk - at % kChunk, got.size() - done));
      const std::uint8_t* expected = written_[at / kChunk] ? bytes_.data() + at : zeros.data();
      if (std::memcmp(got.data() + done, expected, n) != 0) return false;
      done += n;
    }
    return true;
  }
  std::uint8_t at(std::uint64_t offset) const {
    return written_[offset / kChunk] ? bytes_[offset] : 0;
  }

 private:
  std::uint64_t chunk_size(std::uint64_t c) const {
    return std::min<std::uint64_t>(kChunk, bytes_.size() - c * kChunk);
  }
  void mark_written(std::uint64_t offset, std::uint64_t length) {
    for (std::uint64_t c = offset / kChunk; c <= (offset + length - 1) / kChunk; ++c) {
      if (written_[c]) continue;
      std::memset(bytes_.data() + c * kChunk, 0, chunk_size(c));
      written_[c] = true;
    }
  }

  std::vector<std::uint8_t> bytes_;
  std::vector<bool> written_;  // by 64 KiB chunk
};

// Reads [offset, offset+length) and compares it with the shadow.
void expect_reads_shadow(image::Engine& engine, const Shadow& shadow, std::uint64_t offset,
                         std::uint64_t length, const char* when) {
  static std::vector<std::uint8_t> buf(128 << 10);
  while (length > 0) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(length, buf.size()));
    const auto got = std::span(buf).first(n);
    expect_ok(engine.read(offset, got), std::string("read ") + when);
    if (!shadow.matches(offset, got)) {
      std::uint64_t at = offset;
      for (std::size_t i = 0; i < n && buf[i] == shadow.at(offset + i); ++i) ++at;
      fuzz::fail(std::string("read ") + when + " differs from the shadow at virtual offset " +
                 std::to_string(at));
    }
    offset += n;
    length -= n;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::ByteReader in(data, size);
  const BaseImage& base = base_image(in.u8() & 1);
  const std::uint64_t vsize = base.virtual_size;
  const std::span<const std::uint8_t> pattern = write_pattern();
  static Shadow shadow;
  shadow.reset(vsize);
  // The image file: a copy-on-write overlay of the empty image, kept with its page memory.
  static CopyOnWriteFile file(base.bytes, true);
  file.reset(base.bytes, true);

  auto engine = open_engine(file, false);
  for (int op = 0; op < kMaxOperations && !in.empty(); ++op) {
    const std::uint8_t kind = in.u8() % 8;
    switch (kind) {
      case 0:    // small write, any alignment
      case 1:    // sector-aligned write up to 128 KiB
      case 2: {  // large write, 64 KiB multiple up to 2 MiB (spans blocks)
        std::uint64_t offset = in.u32() % vsize;
        std::uint64_t length = kind == 0   ? 1 + in.u16() % 4096
                               : kind == 1 ? 512 * (1 + std::uint64_t{in.u8()})
                                           : (64 << 10) * (1 + std::uint64_t{in.u8()} % 32);
        if (kind == 1) offset &= ~std::uint64_t{511};
        length = std::min(length, vsize - offset);
        const auto bytes = pattern.subspan(in.u8() * kPatternStride, length);
        expect_ok(engine->write(offset, bytes), "write");
        shadow.write(offset, bytes);
        break;
      }
      case 3: {  // discard, any alignment, up to 3 MiB
        const std::uint64_t offset = in.u32() % vsize;
        const std::uint64_t length = std::min<std::uint64_t>(in.u32() % (3 << 20), vsize - offset);
        const bool unmap = in.u8() & 1;
        expect_ok(engine->discard(offset, length, unmap), "discard");
        shadow.zero(offset, length);
        break;
      }
      case 4:
        expect_ok(engine->flush(), "flush");
        break;
      case 5:
        expect_ok(engine->close(), "close");
        engine.reset();
        engine = open_engine(file, false);
        break;
      case 6: {  // read back up to 1 MiB
        const std::uint64_t offset = in.u32() % vsize;
        const std::uint64_t length =
            std::min<std::uint64_t>(1 + in.u32() % (1 << 20), vsize - offset);
        expect_reads_shadow(*engine, shadow, offset, length, "during the session");
        break;
      }
      case 7: {  // a write reaching past the end: refused, nothing changes
        const std::uint64_t back = 1 + in.u8();
        const std::uint64_t offset = vsize - std::min<std::uint64_t>(back, vsize);
        auto r = engine->write(offset, pattern.first(back + 1));
        if (r || r.error().code() != ErrorCode::kOutOfRange || engine->failed())
          fuzz::fail("a write past the end was not refused with kOutOfRange alone");
        break;
      }
    }
  }
  expect_ok(engine->close(), "final close");
  engine.reset();

  auto report = ops::check_image(std::make_unique<BorrowedFile>(file));
  if (!report) fuzz::fail("check: " + report.error().to_string());
  if (report->corruption_count != 0 || !report->check_errors.empty()) {
    std::string what = "check after close: " + std::to_string(report->corruption_count) +
                       " corruptions, " + std::to_string(report->check_errors.size()) + " errors";
    for (const auto& m : report->corruptions) what += "; " + m;
    for (const auto& m : report->check_errors) what += "; " + m;
    fuzz::fail(what);
  }
  auto reader = open_engine(file, true);
  expect_reads_shadow(*reader, shadow, 0, vsize, "after reopening");
  return 0;
}
