// Fuzz target: log scanning and replay on a valid small image whose log region is replaced by
// the fuzzer's bytes. The image is a dynamic one that the engine wrote to and flushed, copied
// before close: its header still names the log, whose entries are real.
//
// Input: byte 0 holds flags, the rest replaces the start of the log region (the remainder
// keeps the image's own log bytes).
//   bit 0: before anything runs, every entry-looking 4 KiB sector ("loge", a 4 KiB-multiple
//          length inside the ring) gets the log GUID of the header (with bit 1) and a correct
//          CRC-32C, so that mutations reach past the checksum;
//   bit 1: see bit 0.
// Then: log::find_active_sequence, plan_replay, a log::OverlayFile over the unmodified bytes and
// replay_in_place on a copy-on-write copy; both must succeed or fail together and, when they
// succeed, have the same size and the same bytes wherever a replay can make them differ from
// the image (every update's range, the growth past the old end, every page the in-place replay
// wrote) plus one 4 KiB page in every 64 KiB elsewhere; a second replay in place must change
// nothing (compared over every page either replay wrote, which is the whole file). Engine opens
// read-only (replay in memory) and read-write (replay in place) must, when both succeed, read
// the same disk (all of it up to 8 MiB). Anything else aborts.
//
// Speed (a long run needs millions of executions): the image lives across runs and only its
// log region changes; whatever writes works on an io CopyOnWriteFile of it, which
// copies only the 4 KiB pages written; comparisons read through static buffers.
//
// Seeds: with VHDX_FUZZ_SEED_OUT set to a folder, the first run writes seeds there (the image's
// own log, with flags 0, 1 and 3); fuzz/make_seeds.sh uses that.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/crc32c.h"
#include "base/endian.h"
#include "format/header.h"
#include "fuzz_util.h"
#include "image/engine.h"
#include "io/fault_file.h"
#include "io/mem_file.h"
#include "log/replay.h"
#include "log/sequence.h"
#include "ops/create.h"

using namespace vhdx;

namespace {

// Replays growing the file past this are not applied on a copy (a hostile LastFileOffset may
// ask for terabytes); plan_replay and the overlay still run.
constexpr std::uint64_t kMaxReplayedFileSize = 64 << 20;

struct DirtyImage {
  std::vector<std::uint8_t> bytes;
  std::uint64_t virtual_size = 0;
  std::uint64_t log_offset = 0;
  std::uint32_t log_length = 0;
  Guid log_guid;
};

void write_seed(const std::string& folder, const std::string& name, std::uint8_t flags,
                std::span<const std::uint8_t> log) {
  std::ofstream out(folder + "/" + name, std::ios::binary);
  out.put(static_cast<char>(flags));
  out.write(reinterpret_cast<const char*>(log.data()), static_cast<std::streamsize>(log.size()));
}

DirtyImage make_dirty_image() {
  ops::CreateParams p;
  p.virtual_size = 4 << 20;
  p.block_size = 1 << 20;
  auto mem = std::make_shared<MemFile>(fuzz::created_image(p));
  DirtyImage out;
  out.virtual_size = p.virtual_size;
  {
    auto engine = image::Engine::open(std::make_unique<fuzz::SharedMemFile>(mem),
                                      OpenOptions{.read_only = false});
    if (!engine) fuzz::fail("open: " + engine.error().to_string());
    std::vector<std::uint8_t> data(96 << 10);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 13 + 1);
    auto step = [](const Result<void>& r) {
      if (!r) fuzz::fail("dirty image: " + r.error().to_string());
    };
    step((*engine)->write(0, data));
    step((*engine)->write((2 << 20) + 4096, data));
    step((*engine)->flush());
    step((*engine)->write((1 << 20) + 512, std::span(data).first(8192)));
    step((*engine)->discard(2 << 20, 1 << 20, false));
    step((*engine)->flush());
    out.bytes = mem->bytes();  // before close: the header still names the log
  }
  // The current header says where the log is and under which GUID.
  auto h1 = format::decode_header(std::span(out.bytes).subspan(64 << 10, 4096));
  auto h2 = format::decode_header(std::span(out.bytes).subspan(128 << 10, 4096));
  auto choice = format::choose_current_header(h1, h2, std::span(out.bytes).subspan(64 << 10, 4096),
                                              std::span(out.bytes).subspan(128 << 10, 4096));
  if (!choice) fuzz::fail("dirty image headers: " + choice.error().to_string());
  const format::Header& h = choice->current == 0 ? *h1 : *h2;
  out.log_offset = h.log_offset;
  out.log_length = h.log_length;
  out.log_guid = h.log_guid;
  if (out.log_guid.is_zero()) fuzz::fail("dirty image: the header names no log");
  MemFile check(out.bytes, false);
  auto seq = log::find_active_sequence(check, out.log_offset, out.log_length, out.log_guid);
  if (!seq || !*seq) fuzz::fail("dirty image: no active log sequence");

  if (const char* folder = std::getenv("VHDX_FUZZ_SEED_OUT")) {
    auto log = std::span(out.bytes).subspan(out.log_offset, out.log_length);
    std::size_t used = log.size();
    while (used > 0 && std::all_of(log.begin() + static_cast<std::ptrdiff_t>(used) - 4096,
                                   log.begin() + static_cast<std::ptrdiff_t>(used),
                                   [](std::uint8_t b) { return b == 0; }))
      used -= 4096;
    write_seed(folder, "engine-log", 0, log.first(used));
    write_seed(folder, "engine-log-fixcrc", 1, log.first(used));
    write_seed(folder, "engine-log-fixguid", 3, log.first(used));
  }
  return out;
}

// Gives every entry-looking sector the header's log GUID (when asked) and a correct checksum.
void fix_entries(std::span<std::uint8_t> log, const Guid& guid, bool set_guid) {
  for (std::size_t at = 0; at + 64 <= log.size(); at += 4096) {
    auto entry = log.subspan(at);
    if (!std::equal(entry.begin(), entry.begin() + 4, "loge")) continue;
    const std::uint32_t length = load_le32(entry, 8);
    if (length == 0 || length % 4096 != 0 || length > entry.size()) continue;
    if (set_guid) guid.store(entry.subspan(32).first<16>());
    store_le32(entry, 4, crc32c_with_zeroed_field(entry.first(length), 4));
  }
}

using ByteRanges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

// Sorts [begin, end) ranges and merges those that overlap or touch; drops empty ones.
void merge_ranges(ByteRanges& ranges) {
  std::sort(ranges.begin(), ranges.end());
  std::size_t kept = 0;
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    const auto r = ranges[i];
    if (r.first >= r.second) continue;
    if (kept > 0 && ranges[kept - 1].second >= r.first)
      ranges[kept - 1].second = std::max(ranges[kept - 1].second, r.second);
    else
      ranges[kept++] = r;
  }
  ranges.resize(kept);
}

// Reads `ranges` of both files and fails where either read fails or the bytes differ.
void expect_same_bytes(File& a, File& b, const ByteRanges& ranges, const std::string& what) {
  static std::vector<std::uint8_t> buf_a(256 << 10), buf_b(256 << 10);
  for (const auto& [begin, end] : ranges) {
    for (std::uint64_t off = begin; off < end;) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf_a.size(), end - off));
      if (auto r = a.read_at(off, std::span(buf_a).first(n)); !r)
        fuzz::fail(what + ": read: " + r.error().to_string());
      if (auto r = b.read_at(off, std::span(buf_b).first(n)); !r)
        fuzz::fail(what + ": read: " + r.error().to_string());
      if (std::memcmp(buf_a.data(), buf_b.data(), n) != 0)
        fuzz::fail(what + " near file offset " + std::to_string(off));
      off += n;
    }
  }
}

// Where the in-memory and the in-place replay of `sequence` are compared, in a file that was
// `base_size` bytes and is `target_size` after replay: every byte either replay can make differ
// from the image (each update's range, the growth past the old end, each page the in-place
// replay wrote), and, to catch a write that lands elsewhere in memory, page `sample_page` of
// every 64 KiB.
void replay_compare_ranges(const log::LogSequence& sequence, const CopyOnWriteFile& in_place,
                           std::uint64_t base_size, std::uint64_t target_size,
                           std::uint64_t sample_page, ByteRanges& out) {
  out.clear();
  for (const log::ReplayUpdate& u : sequence.updates)
    if (u.file_offset < target_size)
      out.emplace_back(u.file_offset,
                       u.file_offset + std::min(u.length(), target_size - u.file_offset));
  out.emplace_back(std::min(base_size, target_size), target_size);
  for (const auto& range : in_place.changed_ranges()) out.push_back(range);
  constexpr std::uint64_t kSampleEvery = 64 << 10;
  for (std::uint64_t at = sample_page * 4096; at < target_size; at += kSampleEvery)
    out.emplace_back(at, std::min<std::uint64_t>(at + 4096, target_size));
  merge_ranges(out);
}

void expect_same_disk(image::Engine& a, image::Engine& b, std::uint64_t size) {
  static std::vector<std::uint8_t> buf_a(256 << 10), buf_b(256 << 10);
  for (std::uint64_t off = 0; off < size; off += buf_a.size()) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf_a.size(), size - off));
    auto ra = a.read(off, std::span(buf_a).first(n));
    auto rb = b.read(off, std::span(buf_b).first(n));
    if (static_cast<bool>(ra) != static_cast<bool>(rb))
      fuzz::fail("engine reads at " + std::to_string(off) + ": " +
                 (ra ? "read-only open reads, read-write open fails: " + rb.error().to_string()
                     : "read-write open reads, read-only open fails: " + ra.error().to_string()));
    if (ra && std::memcmp(buf_a.data(), buf_b.data(), n) != 0)
      fuzz::fail("read-only and read-write opens read different data at " + std::to_string(off));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const DirtyImage base = make_dirty_image();
  if (size == 0) return 0;
  const std::uint8_t flags = data[0];
  // The image with this input's log. It lives across runs (a fresh multi-MiB buffer per run costs
  // more in page faults than the work itself) and nothing writes to it: only the log region is
  // set again, from the input and then the image's own log.
  static std::vector<std::uint8_t> bytes = base.bytes;
  auto log_region = std::span(bytes).subspan(base.log_offset, base.log_length);
  const std::size_t given = std::min<std::size_t>(size - 1, log_region.size());
  std::memcpy(log_region.data(), data + 1, given);
  std::memcpy(log_region.data() + given, base.bytes.data() + base.log_offset + given,
              log_region.size() - given);
  if (flags & 1) fix_entries(log_region, base.log_guid, flags & 2);

  // The log layer, directly.
  fuzz::InputFile original(bytes.data(), bytes.size());
  auto seq = log::find_active_sequence(original, base.log_offset, base.log_length, base.log_guid);
  bool small_replay = true;
  if (seq && *seq) {
    const log::LogSequence& sequence = **seq;
    auto plan = log::plan_replay(sequence, bytes.size());
    auto overlay = log::OverlayFile::create(
        std::make_unique<fuzz::InputFile>(bytes.data(), bytes.size()), sequence);
    if (static_cast<bool>(plan) != static_cast<bool>(overlay))
      fuzz::fail("plan_replay and OverlayFile::create disagree: " +
                 (plan ? overlay.error().to_string() : plan.error().to_string()));
    if (plan && plan->target_size > kMaxReplayedFileSize) small_replay = false;
    if (plan && small_replay) {
      static CopyOnWriteFile replayed(bytes, true);
      replayed.reset(bytes, true);
      if (auto r = log::replay_in_place(replayed, sequence); !r)
        fuzz::fail("replay_in_place after a good plan: " + r.error().to_string());
      const std::uint64_t after_size = *replayed.size();
      if (after_size != plan->target_size || (*overlay)->overlay().size() != after_size)
        fuzz::fail("replay sizes differ: plan " + std::to_string(plan->target_size) +
                   ", in place " + std::to_string(after_size) + ", overlay " +
                   std::to_string((*overlay)->overlay().size()));
      static ByteRanges ranges;
      replay_compare_ranges(sequence, replayed, bytes.size(), after_size, size % 16, ranges);
      expect_same_bytes(**overlay, replayed, ranges, "in-memory and in-place replay differ");

      static CopyOnWriteFile twice(bytes, true);
      twice.assign(replayed, true);
      if (auto r = log::replay_in_place(twice, sequence); !r || *twice.size() != after_size)
        fuzz::fail("a second replay in place changed the file");
      ranges = replayed.changed_ranges();
      for (const auto& range : twice.changed_ranges()) ranges.push_back(range);
      merge_ranges(ranges);
      expect_same_bytes(replayed, twice, ranges, "a second replay in place changed the file");
    }
  }

  // The engine, both ways.
  auto ro = image::Engine::open(std::make_unique<fuzz::InputFile>(bytes.data(), bytes.size()),
                                OpenOptions{.read_only = true});
  if (!small_replay) return 0;
  static CopyOnWriteFile engine_file(bytes, true);
  engine_file.reset(bytes, true);
  auto rw = image::Engine::open(std::make_unique<BorrowedFile>(engine_file),
                                OpenOptions{.read_only = false});
  if (ro && rw) {
    if ((*ro)->virtual_size() != (*rw)->virtual_size())
      fuzz::fail("read-only and read-write opens disagree on the virtual size");
    // The dirty image's disk is 4 MiB; a replayed metadata sector may claim far more.
    expect_same_disk(**ro, **rw, std::min<std::uint64_t>((*ro)->virtual_size(), 8 << 20));
  }
  return 0;
}
