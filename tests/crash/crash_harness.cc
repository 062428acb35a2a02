#include "crash/crash_harness.h"

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "ops/check.h"
#include "support/cli_run.h"
#include "support/corpus.h"

namespace vhdx::crash {
namespace {

// Crash images and model copies are megabytes each, thousands of times: keep them on the heap
// instead of a fresh mmap (and page faults) per allocation.
[[maybe_unused]] const bool kMallocTuned = [] {
  mallopt(M_MMAP_THRESHOLD, 512 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return true;
}();

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::string where(const Step& step) { return step.describe(); }

std::string hex_prefix(const std::uint8_t* bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 8; ++i) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 15];
  }
  return out;
}

}  // namespace

const std::vector<std::uint8_t>& Recording::Change::value() const {
  static const std::vector<std::uint8_t> zeros(kPiece, 0);
  return bytes.empty() ? zeros : bytes;
}

std::uint64_t scale() {
  const char* s = std::getenv("VHDX_CRASH_SCALE");
  if (s == nullptr || *s == '\0') return 1;
  const long long v = std::atoll(s);
  return v < 1 ? 1 : static_cast<std::uint64_t>(v);
}

std::vector<std::uint8_t> make_image(const ops::CreateParams& params) {
  FaultFile file;
  auto writer = ops::VhdxWriter::create(std::make_unique<BorrowedFile>(file), params);
  if (!writer || !(*writer)->finish()) return {};
  return file.bytes();
}

Result<std::vector<std::uint8_t>> read_disk(image::Engine& engine) {
  std::vector<std::uint8_t> out(engine.virtual_size());
  VHDX_TRY(engine.read(0, out));
  return out;
}

std::vector<std::uint8_t> pattern(std::uint64_t seed, std::uint64_t offset, std::uint64_t length) {
  std::vector<std::uint8_t> out(length);
  std::uint64_t word = 0;
  for (std::uint64_t i = 0; i < length; ++i) {
    const std::uint64_t at = offset + i;
    if (i == 0 || at % 8 == 0) word = splitmix(seed * 0x100000001B3ull ^ (at / 8));
    out[i] = static_cast<std::uint8_t>(word >> (8 * (at % 8)));
  }
  return out;
}

QemuChecker::QemuChecker() {
  available_ = testing::have_program("qemu-img");
  ci_ = testing::in_ci();
  if (available_) dir_ = testing::make_temp_dir();
}

std::optional<std::string> QemuChecker::check(const std::vector<std::uint8_t>& bytes,
                                              std::uint32_t logical_sector_size) {
  if (!available_ || logical_sector_size != 512) return std::nullopt;
  const std::string path = dir_ + "/crash.vhdx";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    if (!out) return "cannot write " + path;
  }
  std::string output;
  const int status = testing::run_command("qemu-img check -f vhdx '" + path + "' 2>&1", &output);
  ++checked_;
  if ((status != 0 && status != 3) || output.find("ERROR") != std::string::npos)
    return "qemu-img check exit " + std::to_string(status) + ": " + output;
  return std::nullopt;
}

std::string Step::describe() const {
  switch (kind) {
    case Kind::kWrite:
      return "write " + std::to_string(length) + " bytes at " + std::to_string(offset);
    case Kind::kDiscard:
      return std::string(unmap ? "unmap " : "zero ") + std::to_string(length) + " bytes at " +
             std::to_string(offset);
    case Kind::kFlush:
      return "flush";
    case Kind::kReopen:
      return "close and reopen";
  }
  return "?";
}

std::vector<Step> make_script(const WorkloadSpec& spec) {
  std::mt19937_64 rng(spec.seed);
  const std::uint64_t vs = spec.params.virtual_size;
  const std::uint64_t bs = spec.params.block_size;
  const std::uint64_t sector = spec.params.logical_sector_size;
  const std::uint64_t blocks = (vs + bs - 1) / bs;
  auto below = [&](std::uint64_t n) { return n == 0 ? 0 : rng() % n; };
  std::vector<Step> steps;
  std::vector<Step> written;
  std::vector<bool> allocated(blocks, spec.params.type == DiskType::kFixed);
  while (steps.size() < spec.steps) {
    Step s;
    s.seed = rng();
    if (spec.mix == Mix::kLogWrap) {
      // One BAT change, then a flush that commits it through the log.
      const std::uint64_t b = below(blocks);
      const std::uint64_t block_start = b * bs;
      const std::uint64_t block_len = std::min(bs, vs - block_start);
      if (allocated[b]) {
        s.kind = Step::Kind::kDiscard;
        s.offset = block_start;
        s.length = block_len;
        s.unmap = below(2) == 0;
        allocated[b] = false;
      } else {
        s.kind = Step::Kind::kWrite;
        s.length = std::min(block_len, sector * (1 + below(8)));
        s.offset = block_start + below((block_len - s.length) / sector + 1) * sector;
        allocated[b] = true;
      }
      steps.push_back(s);
      steps.push_back(Step{Step::Kind::kFlush});
      continue;
    }
    const std::uint64_t r = below(100);
    if (r < 50) {
      s.kind = Step::Kind::kWrite;
      if (!written.empty() && below(5) == 0) {
        // Overwrite an earlier write exactly, with new contents.
        const Step& old = written[below(written.size())];
        s.offset = old.offset;
        s.length = old.length;
      } else {
        std::uint64_t len = 0;
        switch (below(6)) {
          case 0:
            len = 1 + below(511);  // inside one sector
            break;
          case 1:
            len = sector * (1 + below(8));
            break;
          case 2:
            len = 4096 * (1 + below(16));
            break;
          case 3:
            len = 1 + below(64 * 1024);
            break;
          case 4:
            len = bs / 2 + below(bs);  // about a block
            break;
          default:
            len = bs + below(2 * bs);  // several blocks
            break;
        }
        len = std::min<std::uint64_t>({len, vs, spec.max_write});
        static constexpr std::uint64_t kAlignments[] = {1, 512, 4096, 65536, 0};
        std::uint64_t align = kAlignments[below(5)];
        if (align == 0) align = bs;
        s.length = len;
        s.offset = below(vs - len + 1) / align * align;
      }
      written.push_back(s);
    } else if (r < 68) {
      s.kind = Step::Kind::kDiscard;
      s.unmap = below(2) == 0;
      if (below(2) == 0) {
        const std::uint64_t b = below(blocks);
        s.offset = b * bs;
        s.length = std::min(vs - s.offset, bs * (1 + below(2)));
      } else {
        s.offset = below(vs);
        s.length = 1 + below(std::min(vs - s.offset, 2 * bs));
        if (below(2) == 0) {  // sector-aligned partial ranges are the common case
          s.offset = s.offset / sector * sector;
          s.length = std::max(sector, s.length / sector * sector);
          s.length = std::min(s.length, vs - s.offset);
        }
      }
    } else if (r < 92) {
      s.kind = Step::Kind::kFlush;
    } else {
      s.kind = Step::Kind::kReopen;
    }
    steps.push_back(s);
  }
  steps.resize(spec.steps);
  return steps;
}

Result<Recording> record_workload(const WorkloadSpec& spec) {
  Recording rec;
  VHDX_ASSIGN_OR_RETURN(auto layout, ops::plan_image(spec.params));
  rec.log_offset = layout.log_offset;
  rec.log_length = layout.log_length;
  rec.virtual_size = spec.params.virtual_size;
  rec.logical_sector_size = spec.params.logical_sector_size;
  rec.initial = make_image(spec.params);
  if (rec.initial.empty()) return Error(ErrorCode::kInternal, "cannot create the image");
  rec.file = std::make_unique<FaultFile>(rec.initial);
  rec.file->record_trace();
  rec.steps = make_script(spec);
  // A final close ends every workload, so its last changes are durable too.
  rec.steps.push_back(Step{Step::Kind::kReopen});

  auto open = [&]() {
    return image::Engine::open(std::make_unique<BorrowedFile>(*rec.file), {.read_only = false});
  };
  VHDX_ASSIGN_OR_RETURN(auto engine, open());
  std::vector<std::uint8_t> model(rec.virtual_size, 0);
  for (std::size_t i = 0; i < rec.steps.size(); ++i) {
    const Step& s = rec.steps[i];
    auto context = [&](Error e) {
      return std::move(e).with_context("step " + std::to_string(i) + " (" + where(s) + ")");
    };
    std::vector<Recording::Change> changes;
    auto note_changes = [&] {
      if (s.length == 0) return;
      for (std::uint64_t p = s.offset / kPiece; p <= (s.offset + s.length - 1) / kPiece; ++p) {
        const std::uint64_t start = p * kPiece;
        const std::uint64_t n = std::min(kPiece, rec.virtual_size - start);
        const auto from = model.begin() + static_cast<std::ptrdiff_t>(start);
        const auto to = from + static_cast<std::ptrdiff_t>(n);
        if (std::all_of(from, to, [](std::uint8_t b) { return b == 0; }))
          changes.push_back({p, {}});
        else
          changes.push_back({p, std::vector<std::uint8_t>(from, to)});
      }
    };
    switch (s.kind) {
      case Step::Kind::kWrite: {
        const auto data = pattern(s.seed, s.offset, s.length);
        if (auto r = engine->write(s.offset, data); !r) return context(std::move(r).error());
        std::copy(data.begin(), data.end(), model.begin() + s.offset);
        note_changes();
        break;
      }
      case Step::Kind::kDiscard:
        if (auto r = engine->discard(s.offset, s.length, s.unmap); !r)
          return context(std::move(r).error());
        std::fill_n(model.begin() + s.offset, s.length, 0);
        note_changes();
        break;
      case Step::Kind::kFlush:
        if (auto r = engine->flush(); !r) return context(std::move(r).error());
        break;
      case Step::Kind::kReopen: {
        if (auto r = engine->close(); !r) return context(std::move(r).error());
        engine.reset();
        if (i + 1 < rec.steps.size()) {
          auto reopened = open();
          if (!reopened) return context(std::move(reopened).error());
          engine = std::move(*reopened);
        }
        break;
      }
    }
    rec.step_end.push_back(rec.file->trace().size());
    rec.changes.push_back(std::move(changes));
  }
  // The workload itself (no crash) must leave exactly the model.
  auto check = image::Engine::open(std::make_unique<CopyOnWriteFile>(rec.file->bytes(), false), {});
  if (!check) return std::move(check).error().with_context("final image");
  VHDX_ASSIGN_OR_RETURN(auto disk, read_disk(**check));
  if (disk != model) return Error(ErrorCode::kInternal, "final image differs from the model");
  rec.final_disk = std::move(model);
  return rec;
}

std::uint64_t count_log_wraps(const Recording& rec) {
  const std::uint64_t ring_end = rec.log_offset + rec.log_length;
  std::uint64_t wraps = 0;
  std::uint64_t last_end = 0;
  for (const FaultOp& op : rec.file->trace()) {
    if (op.kind != FaultOp::Kind::kWrite || op.offset < rec.log_offset || op.offset >= ring_end)
      continue;
    if (op.offset == rec.log_offset && last_end == ring_end) ++wraps;
    last_end = op.offset + op.length;
  }
  return wraps;
}

std::optional<std::string> verify_crash_image(const CopyOnWriteFile& image,
                                              const ShadowView& shadow, QemuChecker* qemu,
                                              std::uint32_t logical_sector_size,
                                              bool* needed_replay) {
  // Buffers reused across crash points: one allocation of the disk's size per point costs
  // page faults, which dominate under sanitizers.
  static thread_local std::vector<std::uint8_t> ro_disk, rw_disk;
  bool dirty = false;
  // Read-only: the log is replayed in memory.
  {
    auto ro = image::Engine::open(image.clone(false), {});
    if (!ro) return "read-only open failed: " + ro.error().to_string();
    dirty = (*ro)->log_replayed_in_memory() || (*ro)->info().log_state == LogState::kNeedsReplay;
    if (needed_replay != nullptr) *needed_replay = dirty;
    ro_disk.resize((*ro)->virtual_size());
    if (auto r = (*ro)->read(0, ro_disk); !r)
      return "read-only read failed: " + r.error().to_string();
  }
  // Writable: the log is replayed in place.
  const auto rw_file = image.clone(true);
  CopyOnWriteFile& rw = *rw_file;
  {
    auto e = image::Engine::open(std::make_unique<BorrowedFile>(rw), {.read_only = false});
    if (!e) return "writable open (replay) failed: " + e.error().to_string();
    rw_disk.resize((*e)->virtual_size());
    if (auto r = (*e)->read(0, rw_disk); !r)
      return "read after replay failed: " + r.error().to_string();
    if (rw_disk != ro_disk) return "in-memory and in-place replay read differently";
    if (auto r = (*e)->close(); !r) return "close after replay failed: " + r.error().to_string();
  }
  // The shadow model.
  const auto& durable = *shadow.durable;
  for (std::uint64_t start = 0; start < ro_disk.size(); start += kPiece) {
    const std::uint64_t n = std::min<std::uint64_t>(kPiece, ro_disk.size() - start);
    const std::uint8_t* got = ro_disk.data() + start;
    if (std::memcmp(got, durable.data() + start, n) == 0) continue;
    const auto& options = (*shadow.candidates)[start / kPiece];
    const bool matches = std::any_of(options.begin(), options.end(), [&](const auto* v) {
      return std::memcmp(got, v->data(), n) == 0;
    });
    if (!matches) {
      std::string why = "virtual bytes [" + std::to_string(start) + ", " +
                        std::to_string(start + n) +
                        ") hold neither their flushed value nor any of the " +
                        std::to_string(options.size()) + " values written since; they read " +
                        hex_prefix(got) + " (flushed: " + hex_prefix(durable.data() + start) + ")";
      if (std::all_of(got, got + n, [](std::uint8_t b) { return b == 0; })) why += ", all zero";
      if (shadow.recording != nullptr) {
        const auto& changes = shadow.recording->changes;
        for (std::size_t i = 0; i < changes.size(); ++i)
          for (const auto& c : changes[i])
            if (c.piece == start / kPiece && std::memcmp(got, c.value().data(), n) == 0)
              why += "; step " + std::to_string(i) + " (" + shadow.recording->steps[i].describe() +
                     ") wrote that value";
      }
      return why;
    }
  }
  // A second writable open finds the log empty (trivially so when nothing needed replay).
  if (dirty) {
    auto again = image::Engine::open(std::make_unique<BorrowedFile>(rw), {.read_only = false});
    if (!again) return "second writable open failed: " + again.error().to_string();
    if ((*again)->info().log_state != LogState::kEmpty)
      return "the log still needs replay after a writable open replayed it";
  }
  auto report = ops::check_image(rw.clone(false));
  if (!report) return "check_image failed: " + report.error().to_string();
  if (report->corruption_count != 0 || !report->check_errors.empty()) {
    std::string why = "check_image: " + std::to_string(report->corruption_count) + " corruptions";
    for (const auto& m : report->corruptions) why += "; " + m;
    for (const auto& m : report->check_errors) why += "; " + m;
    return why;
  }
  if (qemu != nullptr) {
    if (auto q = qemu->check(rw.materialize(), logical_sector_size)) return *q;
  }
  return std::nullopt;
}

NewImageVerdict verify_new_image(const CopyOnWriteFile& image, const ops::CreateParams& params,
                                 const std::vector<std::uint8_t>& expected, QemuChecker* qemu) {
  auto fail = [](std::string why) { return NewImageVerdict{NewImageVerdict::kFailed, why}; };
  auto ro = image::Engine::open(image.clone(false), {});
  if (!ro) {
    const auto code = ro.error().code();
    if (code == ErrorCode::kNotVhdx || code == ErrorCode::kCorrupt)
      return {NewImageVerdict::kRefused, ro.error().to_string()};
    return fail("open failed with an unexpected error: " + ro.error().to_string());
  }
  const auto& info = (*ro)->info();
  if (info.virtual_size != params.virtual_size || info.block_size != params.block_size ||
      info.logical_sector_size != params.logical_sector_size || info.type != params.type)
    return fail("opens with the wrong geometry: " + std::to_string(info.virtual_size) +
                " bytes, blocks of " + std::to_string(info.block_size));
  auto disk = read_disk(**ro);
  if (!disk) return fail("read failed: " + disk.error().to_string());
  if (*disk != expected) return fail("opens, but the disk does not read as the finished image");
  ro->reset();
  // check_image on the image as the crash left it. A crash between the two header writes
  // leaves one slot never written; the other is valid, so the image is usable (and its first
  // writable session rewrites both slots): check warns about it and finds nothing else.
  NewImageVerdict verdict{NewImageVerdict::kComplete, ""};
  auto report = ops::check_image(image.clone(false));
  if (!report) return fail("check_image failed: " + report.error().to_string());
  for (const auto& m : report->warnings) {
    if (m.find("(torn or damaged; header") == std::string::npos)
      return fail("check_image warns: " + m);
    verdict.one_header = true;
  }
  if (!report->corruptions.empty()) return fail("check_image: " + report->corruptions.front());
  if (report->corruption_count > report->corruptions.size() || !report->check_errors.empty())
    return fail("check_image: " + std::to_string(report->corruption_count) + " corruptions, " +
                std::to_string(report->check_errors.size()) + " check errors");
  // The image takes writes: first and last sector, then reads them back, fully clean.
  auto rw = image.clone(true);
  const std::uint64_t sector = params.logical_sector_size;
  const auto first = pattern(1, 0, sector);
  const auto last = pattern(2, params.virtual_size - sector, sector);
  {
    auto e = image::Engine::open(std::make_unique<BorrowedFile>(*rw), {.read_only = false});
    if (!e) return fail("writable open failed: " + e.error().to_string());
    if (auto r = (*e)->write(0, first); !r) return fail("write failed: " + r.error().to_string());
    if (auto r = (*e)->write(params.virtual_size - sector, last); !r)
      return fail("write failed: " + r.error().to_string());
    if (auto r = (*e)->close(); !r) return fail("close failed: " + r.error().to_string());
  }
  {
    auto again = image::Engine::open(rw->clone(false), {});
    if (!again) return fail("reopen after writing failed: " + again.error().to_string());
    std::vector<std::uint8_t> a(sector), b(sector);
    if (!(*again)->read(0, a) || !(*again)->read(params.virtual_size - sector, b) || a != first ||
        b != last)
      return fail("sectors written after the crash do not read back");
  }
  auto after = ops::check_image(rw->clone(false));
  if (!after) return fail("check_image after writing failed: " + after.error().to_string());
  if (after->corruption_count != 0 || !after->check_errors.empty()) {
    std::string why =
        "check_image after writing: " + std::to_string(after->corruption_count) + " corruptions";
    for (const auto& m : after->corruptions) why += "; " + m;
    for (const auto& m : after->check_errors) why += "; " + m;
    return fail(why);
  }
  if (qemu != nullptr) {
    if (auto q = qemu->check(rw->materialize(), params.logical_sector_size)) return fail(*q);
  }
  return verdict;
}

CrashWalker::CrashWalker(const Recording& recording)
    : rec_(recording),
      builder_(recording.initial, recording.file->trace()),
      durable_(recording.virtual_size, 0),
      candidates_((recording.virtual_size + kPiece - 1) / kPiece) {}

void CrashWalker::advance(std::size_t position) {
  builder_.advance(position);
  const auto& ends = rec_.step_end;
  // Steps that returned before the crash.
  const std::size_t complete =
      static_cast<std::size_t>(std::upper_bound(ends.begin(), ends.end(), position) - ends.begin());
  current_ = complete;
  // The last completed flush or close: everything before it is durable.
  std::size_t durable_end = durable_steps_;
  for (std::size_t i = durable_steps_; i < complete; ++i) {
    const auto kind = rec_.steps[i].kind;
    if (kind == Step::Kind::kFlush || kind == Step::Kind::kReopen) durable_end = i + 1;
  }
  for (; durable_steps_ < durable_end; ++durable_steps_)
    for (const auto& c : rec_.changes[durable_steps_])
      std::copy_n(c.value().begin(), std::min(kPiece, durable_.size() - c.piece * kPiece),
                  durable_.begin() + c.piece * kPiece);
  for (std::uint64_t p : touched_) candidates_[p].clear();
  touched_.clear();
  const std::size_t last = std::min(complete, rec_.steps.size() - 1);
  for (std::size_t i = durable_steps_; i <= last; ++i)
    for (const auto& c : rec_.changes[i]) {
      if (candidates_[c.piece].empty()) touched_.push_back(c.piece);
      candidates_[c.piece].push_back(&c.value());
    }
}

CrashRun crash_workload(const Recording& rec, const CrashPlan& plan, QemuChecker* qemu,
                        std::uint64_t seed) {
  static constexpr CrashPolicy kPolicies[] = {
      CrashPolicy::kRandom, CrashPolicy::kTorn,    CrashPolicy::kRandom, CrashPolicy::kApplyAll,
      CrashPolicy::kRandom, CrashPolicy::kDropAll, CrashPolicy::kTorn,   CrashPolicy::kRandom};
  static constexpr const char* kPolicyNames[] = {"random", "torn", "random", "all",
                                                 "random", "none", "torn",   "random"};
  CrashRun run;
  run.log_wraps = count_log_wraps(rec);
  run.mutations = rec.file->mutations();
  CrashWalker walker(rec);
  std::mt19937_64 rng(seed);
  const auto& trace = rec.file->trace();
  for (std::size_t j = 0; j < trace.size(); ++j) {
    if (trace[j].kind == FaultOp::Kind::kFlush) continue;
    if (plan.stride > 1 && rng() % plan.stride != 0) continue;
    walker.advance(j + 1);
    ++run.positions;
    for (std::uint64_t k = 0; k < plan.images_per_position; ++k) {
      const std::size_t which = static_cast<std::size_t>((run.images + j) % 8);
      const std::uint64_t image_seed = rng();
      const auto image = walker.builder().build_overlay(kPolicies[which], image_seed);
      QemuChecker* q = plan.qemu_every != 0 && run.images % plan.qemu_every == 0 ? qemu : nullptr;
      const std::uint64_t qemu_before = q != nullptr ? q->checked() : 0;
      bool replayed = false;
      auto failure =
          verify_crash_image(*image, walker.shadow(), q, rec.logical_sector_size, &replayed);
      if (replayed) ++run.replayed;
      if (q != nullptr) run.qemu_checked += q->checked() - qemu_before;
      ++run.images;
      if (failure) {
        ++run.failures;
        if (run.messages.size() < 5) {
          const std::size_t step = walker.current_step();
          run.messages.push_back(
              "crash after trace op " + std::to_string(j + 1) + " (during step " +
              std::to_string(step) + ": " +
              (step < rec.steps.size() ? rec.steps[step].describe() : std::string("end")) +
              "), policy " + kPolicyNames[which] + ", image seed " + std::to_string(image_seed) +
              ": " + *failure);
        }
      }
    }
  }
  return run;
}

ops::CreateParams params(DiskType type, std::uint64_t virtual_size, std::uint32_t block_size,
                         std::uint32_t sector) {
  ops::CreateParams p;
  p.type = type;
  p.virtual_size = virtual_size;
  p.block_size = block_size;
  p.logical_sector_size = sector;
  return p;
}

}  // namespace vhdx::crash
