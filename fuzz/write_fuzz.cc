// Fuzz target: the fuzzer's bytes drive writes, discards, flushes, reads and close/reopen
// cycles on a valid empty dynamic image held in memory, next to a shadow copy of the virtual
// disk. Every operation inside the disk must succeed; every read must match the shadow. After a
// final close, ops::check_image must find no corruption and a fresh read-only open must read
// exactly the shadow. Anything else aborts.
//
// Input: byte 0 picks the image (bit 0: 1 MiB blocks and 512-byte sectors, or 2 MiB blocks and
// 4 KiB sectors), then operations of a few bytes each (see the switch below), at most
// kMaxOperations.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "image/engine.h"
#include "io/mem_file.h"
#include "ops/check.h"
#include "ops/create.h"

using namespace vhdx;

namespace {

constexpr int kMaxOperations = 48;

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

std::unique_ptr<image::Engine> open_engine(const std::shared_ptr<MemFile>& mem, bool read_only) {
  auto engine = image::Engine::open(std::make_unique<fuzz::SharedMemFile>(mem),
                                    OpenOptions{.read_only = read_only});
  if (!engine) fuzz::fail("open: " + engine.error().to_string());
  return std::move(*engine);
}

void expect_ok(const Result<void>& r, const std::string& what) {
  if (!r) fuzz::fail(what + ": " + r.error().to_string());
}

// Reads [offset, offset+length) and compares it with the shadow.
void expect_reads_shadow(image::Engine& engine, const std::vector<std::uint8_t>& shadow,
                         std::uint64_t offset, std::uint64_t length, const char* when) {
  static std::vector<std::uint8_t> buf(1 << 20);
  while (length > 0) {
    const std::uint64_t n = std::min<std::uint64_t>(length, buf.size());
    auto span = std::span(buf).first(n);
    expect_ok(engine.read(offset, span), std::string("read ") + when);
    if (!std::equal(span.begin(), span.end(), shadow.begin() + offset)) {
      std::uint64_t at = offset;
      for (std::size_t i = 0; i < n && buf[i] == shadow[offset + i]; ++i) ++at;
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
  // Buffers live across runs: fresh multi-MiB allocations per run cost more (page faults) than
  // the work itself.
  static const auto mem = std::make_shared<MemFile>();
  mem->bytes().assign(base.bytes.begin(), base.bytes.end());
  static std::vector<std::uint8_t> shadow;
  shadow.assign(vsize, 0);
  static std::vector<std::uint8_t> payload(2 << 20);

  auto engine = open_engine(mem, false);
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
        const std::uint8_t pattern = in.u8();
        for (std::uint64_t i = 0; i < length; ++i)
          payload[i] = static_cast<std::uint8_t>(pattern + i * 7 + (i >> 9));
        auto bytes = std::span(payload).first(length);
        expect_ok(engine->write(offset, bytes), "write");
        std::copy(bytes.begin(), bytes.end(), shadow.begin() + offset);
        break;
      }
      case 3: {  // discard, any alignment, up to 3 MiB
        const std::uint64_t offset = in.u32() % vsize;
        const std::uint64_t length = std::min<std::uint64_t>(in.u32() % (3 << 20), vsize - offset);
        const bool unmap = in.u8() & 1;
        expect_ok(engine->discard(offset, length, unmap), "discard");
        std::fill_n(shadow.begin() + offset, length, 0);
        break;
      }
      case 4:
        expect_ok(engine->flush(), "flush");
        break;
      case 5:
        expect_ok(engine->close(), "close");
        engine.reset();
        engine = open_engine(mem, false);
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
        auto r = engine->write(offset, std::span(payload).first(back + 1));
        if (r || r.error().code() != ErrorCode::kOutOfRange || engine->failed())
          fuzz::fail("a write past the end was not refused with kOutOfRange alone");
        break;
      }
    }
  }
  expect_ok(engine->close(), "final close");
  engine.reset();

  auto report = ops::check_image(std::make_unique<fuzz::SharedMemFile>(mem));
  if (!report) fuzz::fail("check: " + report.error().to_string());
  if (report->corruption_count != 0 || !report->check_errors.empty()) {
    std::string what = "check after close: " + std::to_string(report->corruption_count) +
                       " corruptions, " + std::to_string(report->check_errors.size()) + " errors";
    for (const auto& m : report->corruptions) what += "; " + m;
    for (const auto& m : report->check_errors) what += "; " + m;
    fuzz::fail(what);
  }
  auto reader = open_engine(mem, true);
  expect_reads_shadow(*reader, shadow, 0, vsize, "after reopening");
  return 0;
}
