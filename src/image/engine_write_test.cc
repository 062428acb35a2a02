// Component tests of the engine's write path on in-memory images: writes at every alignment,
// discard, the header protocol, the log, sticky failure and crashes at every write.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>

#include "format/log_entry.h"
#include "image/engine.h"
#include "image/test_image.h"
#include "io/posix_file.h"
#include "log/sequence.h"

namespace vhdx::image {
namespace {

using format::kMiB;
using testing::kLogOffset;
using testing::TestImage;

// A File over a MemFile the test keeps, so the bytes outlive the engine. Writes past `limit`
// are dropped without an error (a crash: nothing after that point reached the disk); writes
// past `fail_after` fail with kIo.
class SharedFile final : public File {
 public:
  explicit SharedFile(std::shared_ptr<MemFile> base) : base_(std::move(base)) {}
  Result<void> read_at(std::uint64_t o, std::span<std::uint8_t> out) override {
    return base_->read_at(o, out);
  }
  Result<void> write_at(std::uint64_t o, std::span<const std::uint8_t> d) override {
    ++writes;
    if (writes > fail_after) return Error(ErrorCode::kIo, "injected write failure");
    if (writes > limit) return ok();
    return base_->write_at(o, d);
  }
  Result<std::uint64_t> size() override { return base_->size(); }
  Result<void> truncate(std::uint64_t n) override {
    ++writes;
    if (writes > limit) return ok();
    return base_->truncate(n);
  }
  Result<void> flush() override {
    ++flushes;
    if (flushes > fail_flush_after) return Error(ErrorCode::kIo, "injected flush failure");
    return ok();
  }
  Result<void> punch_hole(std::uint64_t o, std::uint64_t l) override {
    return base_->punch_hole(o, l);
  }
  bool writable() const override { return true; }
  std::string name() const override { return "<shared>"; }

  std::uint64_t writes = 0;
  std::uint64_t flushes = 0;
  std::uint64_t limit = UINT64_MAX;
  std::uint64_t fail_after = UINT64_MAX;
  std::uint64_t fail_flush_after = UINT64_MAX;

 private:
  std::shared_ptr<MemFile> base_;
};

struct Opened {
  std::shared_ptr<MemFile> mem;
  SharedFile* file = nullptr;  // owned by the engine
  std::unique_ptr<Engine> engine;
};

Opened open_writable(std::vector<std::uint8_t> bytes) {
  Opened o;
  o.mem = std::make_shared<MemFile>(std::move(bytes));
  auto file = std::make_unique<SharedFile>(o.mem);
  o.file = file.get();
  auto engine = Engine::open(std::move(file), {.read_only = false});
  EXPECT_TRUE(engine) << engine.error().to_string();
  if (engine) o.engine = std::move(*engine);
  return o;
}

std::unique_ptr<Engine> open_read_only(const std::vector<std::uint8_t>& bytes) {
  auto engine = Engine::open(std::make_unique<MemFile>(bytes, false), {});
  EXPECT_TRUE(engine) << engine.error().to_string();
  return engine ? std::move(*engine) : nullptr;
}

std::vector<std::uint8_t> read_all(Engine& engine) {
  std::vector<std::uint8_t> out(engine.virtual_size(), 0xEE);
  auto r = engine.read(0, out);
  EXPECT_TRUE(r) << r.error().to_string();
  return out;
}

std::vector<std::uint8_t> pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(seed + i * 13 + (i >> 10));
  return v;
}

// Applies a write to the model and the engine.
void write_both(Engine& engine, std::vector<std::uint8_t>& model, std::uint64_t offset,
                const std::vector<std::uint8_t>& data) {
  auto r = engine.write(offset, data);
  ASSERT_TRUE(r) << "write at " << offset << ": " << r.error().to_string();
  std::copy(data.begin(), data.end(), model.begin() + static_cast<std::ptrdiff_t>(offset));
}

// A 3.5 MiB disk of 1 MiB blocks: block 0 data, block 1 ZERO, block 2 data, block 3 (partial)
// not present.
TestImage base_image(std::uint32_t sector_size = 512, bool fixed = false) {
  TestImage t({.block_size = 1 * kMiB,
               .virtual_size = 3 * kMiB + 512 * 1024,
               .logical_sector_size = sector_size,
               .fixed = fixed});
  t.allocate(0, 0x01);
  t.set_payload(1, format::PayloadState::kZero);
  t.allocate(2, 0x20);
  if (fixed) t.allocate(3, 0x30);
  return t;
}

void expect_clean_after_close(const std::vector<std::uint8_t>& bytes, std::uint64_t old_sequence,
                              const Guid& old_file_guid, const Guid& old_data_guid) {
  auto engine = open_read_only(bytes);
  ASSERT_NE(engine, nullptr);
  const ImageInfo& info = engine->info();
  EXPECT_EQ(info.log_state, LogState::kEmpty);
  for (const auto& h : info.headers) {
    EXPECT_TRUE(h.valid) << h.invalid_reason;
    EXPECT_TRUE(h.log_guid.is_zero());
    EXPECT_GT(h.sequence_number, old_sequence);
    EXPECT_NE(h.file_write_guid, old_file_guid);
    EXPECT_NE(h.data_write_guid, old_data_guid);
  }
  EXPECT_EQ(info.headers[0].sequence_number + info.headers[1].sequence_number,
            2 * std::max(info.headers[0].sequence_number, info.headers[1].sequence_number) - 1);
}

void run_write_mix(std::uint32_t sector_size, bool fixed) {
  TestImage t = base_image(sector_size, fixed);
  std::vector<std::uint8_t> model = t.expected_disk();
  const Guid old_file = t.header(1).file_write_guid;
  const Guid old_data = t.header(1).data_write_guid;
  Opened o = open_writable(t.bytes());
  ASSERT_NE(o.engine, nullptr);
  Engine& e = *o.engine;
  const std::uint64_t size = e.virtual_size();

  write_both(e, model, 0, pattern(4096, 1));                // aligned, existing block
  write_both(e, model, 1000, pattern(3000, 2));             // unaligned both ends
  write_both(e, model, kMiB - 700, pattern(5000, 3));       // across into the ZERO block
  write_both(e, model, 2 * kMiB + 7, pattern(1, 4));        // one byte
  write_both(e, model, size - 1234, pattern(1234, 5));      // last partial block
  write_both(e, model, 3 * kMiB + 4096, pattern(8192, 6));  // same new block again
  write_both(e, model, 512 * 1024, pattern(2 * kMiB, 7));   // three blocks at once
  EXPECT_EQ(read_all(e), model);

  ASSERT_TRUE(e.close());
  EXPECT_EQ(read_all(e), model);
  o.engine.reset();
  expect_clean_after_close(o.mem->bytes(), 11, old_file, old_data);
  auto reopened = open_read_only(o.mem->bytes());
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(read_all(*reopened), model);
  auto counts = reopened->count_blocks();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->fully_present, 4u);
  EXPECT_EQ(counts->zero, 0u);
  // New blocks are 1 MiB aligned, after everything that was in the file.
  for (std::uint64_t b = 0; b < 4; ++b) {
    auto m = reopened->lookup_block(b);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->file_offset % kMiB, 0u);
  }
}

TEST(EngineWrite, MixedWritesDynamic512) { run_write_mix(512, false); }
TEST(EngineWrite, MixedWritesDynamic4096) { run_write_mix(4096, false); }
TEST(EngineWrite, MixedWritesFixed512) { run_write_mix(512, true); }
TEST(EngineWrite, MixedWritesFixed4096) { run_write_mix(4096, true); }

TEST(EngineWrite, RandomWritesMatchAModel) {
  TestImage t({.block_size = 1 * kMiB, .virtual_size = 6 * kMiB - 4096});
  std::vector<std::uint8_t> model = t.expected_disk();
  Opened o = open_writable(t.bytes());
  ASSERT_NE(o.engine, nullptr);
  std::mt19937_64 rng(42);
  for (int i = 0; i < 200; ++i) {
    const std::uint64_t len = 1 + rng() % 70000;
    const std::uint64_t off = rng() % (model.size() - len);
    write_both(*o.engine, model, off, pattern(len, static_cast<std::uint8_t>(i)));
    if (i % 50 == 49) {
      ASSERT_TRUE(o.engine->flush());
    }
  }
  EXPECT_EQ(read_all(*o.engine), model);
  o.engine.reset();  // the destructor closes
  auto reopened = open_read_only(o.mem->bytes());
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(read_all(*reopened), model);
}

TEST(EngineWrite, ArgumentErrors) {
  TestImage t = base_image();
  auto ro = t.open_ok();
  std::vector<std::uint8_t> buf(512, 1);
  auto r = ro->write(0, buf);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kReadOnly);
  EXPECT_TRUE(ro->flush());  // nothing to do
  Opened o = open_writable(t.bytes());
  r = o.engine->write(o.engine->virtual_size() - 100, buf);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kOutOfRange);
  r = o.engine->discard(UINT64_MAX - 10, 100, false);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kOutOfRange);
  EXPECT_FALSE(o.engine->failed());  // argument errors are not failures
  // Nothing was changed: no header update happened.
  EXPECT_EQ(o.engine->info().headers[1].sequence_number, 11u);
  EXPECT_EQ(o.file->writes, 0u);

  // A writable open of a read-only file.
  auto e = Engine::open(std::make_unique<MemFile>(t.bytes(), false), {.read_only = false});
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code(), ErrorCode::kReadOnly);
}

TEST(EngineWrite, DiscardReadsZeros) {
  TestImage t = base_image();
  std::vector<std::uint8_t> model = t.expected_disk();
  Opened o = open_writable(t.bytes());
  Engine& e = *o.engine;
  // Whole block 0, part of block 2, the tail of block 3 (not present: nothing to do).
  ASSERT_TRUE(e.discard(0, kMiB, false));
  ASSERT_TRUE(e.discard(2 * kMiB + 1000, 5000, false));
  ASSERT_TRUE(e.discard(3 * kMiB, 512 * 1024, true));
  std::fill_n(model.begin(), kMiB, 0);
  std::fill_n(model.begin() + 2 * kMiB + 1000, 5000, 0);
  EXPECT_EQ(read_all(e), model);
  auto m0 = e.lookup_block(0);
  ASSERT_TRUE(m0);
  EXPECT_EQ(m0->state, static_cast<std::uint8_t>(format::PayloadState::kZero));
  // Write into the discarded block, then unmap block 2 whole.
  write_both(e, model, 4096, pattern(100, 9));
  ASSERT_TRUE(e.discard(2 * kMiB, kMiB, true));
  std::fill_n(model.begin() + 2 * kMiB, kMiB, 0);
  ASSERT_TRUE(e.close());
  o.engine.reset();
  auto reopened = open_read_only(o.mem->bytes());
  EXPECT_EQ(read_all(*reopened), model);
  auto counts = reopened->count_blocks();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->fully_present, 1u);  // block 0 again
  EXPECT_EQ(counts->zero, 1u);           // block 1
  EXPECT_EQ(counts->unmapped, 1u);       // block 2
  EXPECT_EQ(counts->not_present, 1u);    // block 3
}

TEST(EngineWrite, DiscardOfZerosChangesNothing) {
  TestImage t = base_image();
  Opened o = open_writable(t.bytes());
  // Block 1 is ZERO, block 3 NOT_PRESENT: no header update, no write at all.
  ASSERT_TRUE(o.engine->discard(kMiB, kMiB, false));
  ASSERT_TRUE(o.engine->discard(3 * kMiB, 100, true));
  ASSERT_TRUE(o.engine->flush());
  ASSERT_TRUE(o.engine->close());
  EXPECT_EQ(o.file->writes, 0u);
  EXPECT_EQ(o.mem->bytes(), t.bytes());
}

TEST(EngineWrite, FixedDiscardKeepsBlocksAllocated) {
  TestImage t = base_image(512, true);
  std::vector<std::uint8_t> model = t.expected_disk();
  Opened o = open_writable(t.bytes());
  ASSERT_TRUE(o.engine->discard(0, 2 * kMiB + 300, true));
  std::fill_n(model.begin(), 2 * kMiB + 300, 0);
  EXPECT_EQ(read_all(*o.engine), model);
  auto counts = o.engine->count_blocks();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->fully_present, 3u);  // 0, 2, 3 stay allocated; 1 was ZERO from the start
}

// After a flush without close, the log holds the BAT sectors and the header names the log.
TEST(EngineWrite, FlushedButNotClosedNeedsReplay) {
  TestImage t = base_image();
  std::vector<std::uint8_t> model = t.expected_disk();
  Opened o = open_writable(t.bytes());
  write_both(*o.engine, model, 3 * kMiB + 10, pattern(100, 3));  // allocates block 3
  ASSERT_TRUE(o.engine->flush());
  const Guid log_guid = o.engine->info().headers[o.engine->info().current_header].log_guid;
  ASSERT_FALSE(log_guid.is_zero());
  std::vector<std::uint8_t> snapshot = o.mem->bytes();
  o.engine.reset();

  // The active sequence ends with an entry carrying the BAT sector of block 3.
  MemFile copy(snapshot, false);
  auto seq = log::find_active_sequence(copy, kLogOffset, kMiB, log_guid);
  ASSERT_TRUE(seq && *seq);
  bool found = false;
  for (const auto& u : (*seq)->updates)
    if (!u.is_zero() && u.file_offset == testing::kBatOffset) found = true;
  EXPECT_TRUE(found);

  // A read-only open replays in memory: it reports the dirty log and reads the written data.
  auto ro = Engine::open(std::make_unique<MemFile>(snapshot, false), {});
  ASSERT_TRUE(ro) << ro.error().to_string();
  EXPECT_EQ((*ro)->info().log_state, LogState::kNeedsReplay);
  EXPECT_TRUE((*ro)->log_replayed_in_memory());
  EXPECT_EQ(read_all(**ro), model);

  // Undo the in-place BAT write: only replay can bring the entry back.
  std::fill_n(snapshot.begin() + testing::kBatOffset, 4096, 0);
  for (std::uint64_t b : {0, 2}) {
    const auto* bytes = t.bytes().data() + testing::kBatOffset + 8 * b;
    std::copy_n(bytes, 8, snapshot.begin() + testing::kBatOffset + 8 * b);
  }
  // Read-only: only the in-memory replay can bring the BAT entries back, and the file stays as
  // it was.
  {
    auto view = std::make_unique<MemFile>(snapshot, false);
    MemFile* view_file = view.get();
    auto replayed = Engine::open(std::move(view), {});
    ASSERT_TRUE(replayed) << replayed.error().to_string();
    EXPECT_EQ(read_all(**replayed), model);
    EXPECT_EQ(view_file->bytes(), snapshot);
  }
  Opened again = open_writable(snapshot);
  ASSERT_NE(again.engine, nullptr);
  EXPECT_EQ(again.engine->info().log_state, LogState::kEmpty);
  EXPECT_TRUE(again.engine->info().headers[again.engine->info().current_header].log_guid.is_zero());
  EXPECT_EQ(read_all(*again.engine), model);
}

// A header naming a log GUID with no entry under it (a crash right after the session's first
// header update): a writable open renews the FileWriteGuid, finds nothing to replay and clears
// the GUID.
TEST(EngineWrite, WritableOpenClearsALogWithoutEntries) {
  TestImage t = base_image();
  t.header(1).log_guid = *Guid::parse("c3f5caec-4c1d-c54e-90d5-48e9bc17ac53");
  t.write_headers();
  Opened o = open_writable(t.bytes());
  ASSERT_NE(o.engine, nullptr);
  const ImageInfo& info = o.engine->info();
  EXPECT_EQ(info.log_state, LogState::kEmpty);
  EXPECT_EQ(info.headers[0].sequence_number, 14u);  // two updates: new FileWriteGuid, clear log
  EXPECT_EQ(info.headers[1].sequence_number, 15u);
  EXPECT_EQ(info.current_header, 1);
  EXPECT_TRUE(info.headers[1].log_guid.is_zero());
  EXPECT_NE(info.headers[1].file_write_guid, t.header(1).file_write_guid);
  EXPECT_EQ(info.headers[1].data_write_guid, t.header(1).data_write_guid);  // no data change
  EXPECT_EQ(read_all(*o.engine), t.expected_disk());
}

TEST(EngineWrite, FailureIsSticky) {
  TestImage t = base_image();
  Opened o = open_writable(t.bytes());
  ASSERT_TRUE(o.engine->write(0, pattern(512, 1)));
  o.file->fail_after = o.file->writes;  // the next write fails
  auto r = o.engine->write(3 * kMiB, pattern(512, 2));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kIo);
  EXPECT_TRUE(o.engine->failed());
  std::vector<std::uint8_t> buf(512);
  auto rr = o.engine->read(0, buf);
  ASSERT_FALSE(rr);
  EXPECT_EQ(rr.error().code(), ErrorCode::kFailed);
  EXPECT_NE(rr.error().message().find("injected write failure"), std::string::npos);
  EXPECT_EQ(o.engine->write(0, buf).error().code(), ErrorCode::kFailed);
  EXPECT_EQ(o.engine->flush().error().code(), ErrorCode::kFailed);
  EXPECT_EQ(o.engine->close().error().code(), ErrorCode::kFailed);
}

TEST(EngineWrite, FlushFailureIsSticky) {
  TestImage t = base_image();
  Opened o = open_writable(t.bytes());
  ASSERT_TRUE(o.engine->write(3 * kMiB, pattern(512, 1)));
  o.file->fail_flush_after = o.file->flushes;
  auto r = o.engine->flush();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kIo);
  EXPECT_EQ(o.engine->write(0, pattern(1, 1)).error().code(), ErrorCode::kFailed);
}

// Header protocol: the first change writes the non-current slot (sequence + 1), flushed, then
// the other slot; both carry new GUIDs and a non-zero LogGuid, before any log entry.
TEST(EngineWrite, SessionStartsWithAHeaderUpdate) {
  TestImage t = base_image();
  Opened o = open_writable(t.bytes());
  ASSERT_TRUE(o.engine->write(0, pattern(512, 1)));
  const auto& info = o.engine->info();
  EXPECT_EQ(info.headers[0].sequence_number, 12u);  // slot 1 was not current: written first
  EXPECT_EQ(info.headers[1].sequence_number, 13u);
  EXPECT_EQ(info.current_header, 1);
  EXPECT_EQ(info.headers[0].log_guid, info.headers[1].log_guid);
  EXPECT_FALSE(info.headers[1].log_guid.is_zero());
  EXPECT_NE(info.headers[1].file_write_guid, t.header(1).file_write_guid);
  EXPECT_NE(info.headers[1].data_write_guid, t.header(1).data_write_guid);
  // On disk too, and the log already holds a valid (empty) sequence under the new GUID.
  auto decoded = format::decode_header(
      std::span(o.mem->bytes()).subspan(format::kHeaderOffsets[1], format::kHeaderSize));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->sequence_number, 13u);
  MemFile copy(o.mem->bytes(), false);
  auto seq = log::find_active_sequence(copy, kLogOffset, kMiB, decoded->log_guid);
  ASSERT_TRUE(seq && *seq);
  EXPECT_TRUE((*seq)->updates.empty());
  // A second write needs no header update.
  ASSERT_TRUE(o.engine->write(4096, pattern(512, 2)));
  EXPECT_EQ(info.headers[1].sequence_number, 13u);
  ASSERT_TRUE(o.engine->close());
  EXPECT_EQ(info.headers[0].sequence_number, 14u);
  EXPECT_EQ(info.headers[1].sequence_number, 15u);
}

std::uint64_t block_offset(Engine& engine, std::uint64_t block) {
  auto mapping = engine.lookup_block(block);
  EXPECT_TRUE(mapping) << mapping.error().to_string();
  if (!mapping) return 0;
  EXPECT_EQ(mapping->state, static_cast<std::uint8_t>(format::PayloadState::kFullyPresent));
  return mapping->file_offset;
}

// A discarded block's space is reused once the discard is durable (flushed through the log),
// and the reused block reads as zeros apart from what was written.
TEST(EngineWrite, DiscardedSpaceIsReusedOnceDurable) {
  TestImage t = base_image();
  std::vector<std::uint8_t> model = t.expected_disk();
  Opened o = open_writable(t.bytes());
  Engine& e = *o.engine;
  const std::uint64_t block0 = block_offset(e, 0);
  ASSERT_TRUE(e.discard(0, kMiB, true));
  std::fill_n(model.begin(), kMiB, 0);
  ASSERT_TRUE(e.flush());
  const std::uint64_t size_before = o.mem->bytes().size();
  // Block 3 (the partial last block) is not present: it takes block 0's old space.
  write_both(e, model, 3 * kMiB + 4096, pattern(8192, 0x55));
  EXPECT_EQ(block_offset(e, 3), block0);
  EXPECT_EQ(o.mem->bytes().size(), size_before);
  EXPECT_EQ(read_all(e), model);
  ASSERT_TRUE(e.close());
  o.engine.reset();
  auto reopened = open_read_only(o.mem->bytes());
  EXPECT_EQ(read_all(*reopened), model);
  EXPECT_EQ(block_offset(*reopened, 3), block0);
}

// Until the BAT change releasing a block is in the log, its space still belongs to it: a crash
// before that commit must find the old data there.
TEST(EngineWrite, DiscardedSpaceIsNotReusedBeforeTheDiscardIsLogged) {
  TestImage t = base_image();
  std::vector<std::uint8_t> model = t.expected_disk();
  Opened o = open_writable(t.bytes());
  Engine& e = *o.engine;
  const std::uint64_t block0 = block_offset(e, 0);
  const std::uint64_t size_before = o.mem->bytes().size();
  ASSERT_TRUE(e.discard(0, kMiB, false));
  write_both(e, model, 3 * kMiB, pattern(512, 0x66));
  std::fill_n(model.begin(), kMiB, 0);
  const std::uint64_t block3 = block_offset(e, 3);
  EXPECT_NE(block3, block0);
  EXPECT_GE(block3, size_before);
  EXPECT_EQ(read_all(e), model);
}

// Free space left by an earlier session (a discard, then close) is found by the next session.
TEST(EngineWrite, FreeSpaceFromAnEarlierSessionIsReused) {
  TestImage t = base_image();
  std::vector<std::uint8_t> model = t.expected_disk();
  std::uint64_t block0 = 0;
  {
    // Block 0's space lies between the BAT and block 2: it stays in the file, free.
    Opened o = open_writable(t.bytes());
    block0 = block_offset(*o.engine, 0);
    ASSERT_TRUE(o.engine->discard(0, kMiB, true));
    ASSERT_TRUE(o.engine->close());
    o.engine.reset();
    t.bytes() = o.mem->bytes();
  }
  std::fill_n(model.begin(), kMiB, 0);
  Opened o = open_writable(t.bytes());
  const std::uint64_t size_before = o.mem->bytes().size();
  write_both(*o.engine, model, kMiB + 100, pattern(3000, 0x77));  // block 1 was ZERO
  EXPECT_EQ(block_offset(*o.engine, 1), block0);
  EXPECT_EQ(o.mem->bytes().size(), size_before);
  ASSERT_TRUE(o.engine->close());
  o.engine.reset();
  EXPECT_EQ(read_all(*open_read_only(o.mem->bytes())), model);
}

// Blocks freed at the end of the file are given back on close, so a discard leaves no leaked
// tail.
TEST(EngineWrite, CloseTruncatesFreeSpaceAtTheEnd) {
  TestImage t = base_image();
  std::vector<std::uint8_t> model = t.expected_disk();
  const std::uint64_t size_before = t.bytes().size();
  Opened o = open_writable(t.bytes());
  const std::uint64_t block0 = block_offset(*o.engine, 0);
  const std::uint64_t block2 = block_offset(*o.engine, 2);
  ASSERT_EQ(block0 + kMiB, block2);       // block 0, then block 2
  ASSERT_EQ(block2 + kMiB, size_before);  // which ends the file
  ASSERT_TRUE(o.engine->discard(2 * kMiB, kMiB, true));
  std::fill_n(model.begin() + 2 * kMiB, kMiB, 0);
  ASSERT_TRUE(o.engine->close());
  EXPECT_EQ(o.mem->bytes().size(), block2);
  EXPECT_EQ(o.engine->info().file_size, block2);
  // A second session frees block 0, which then ends the file too.
  o.engine.reset();
  Opened again = open_writable(o.mem->bytes());
  ASSERT_TRUE(again.engine->discard(0, kMiB, false));
  std::fill_n(model.begin(), kMiB, 0);
  ASSERT_TRUE(again.engine->close());
  EXPECT_EQ(again.mem->bytes().size(), block0);
  again.engine.reset();
  auto reopened = open_read_only(again.mem->bytes());
  EXPECT_EQ(read_all(*reopened), model);
  EXPECT_EQ(reopened->info().log_state, LogState::kEmpty);
}

// An entry of any state that carries a file offset keeps that space from being reused, even
// a ZERO entry another writer left an offset in.
TEST(EngineWrite, SpaceNamedByAnyEntryIsNeverReused) {
  TestImage t = base_image();
  const std::uint64_t kept = t.allocate(3, 0x42);  // appended after block 2
  t.set_payload(3, format::PayloadState::kZero, kept);
  // Unreferenced space after it, inside the file: the one free slot.
  t.bytes().resize(kept + 2 * kMiB);
  std::vector<std::uint8_t> model = t.expected_disk();
  Opened o = open_writable(t.bytes());
  write_both(*o.engine, model, kMiB, pattern(512, 0x11));
  EXPECT_EQ(block_offset(*o.engine, 1), kept + kMiB);
  EXPECT_EQ(o.mem->bytes().size(), kept + 2 * kMiB);
  EXPECT_EQ(read_all(*o.engine), model);
  // The kept block's bytes are untouched.
  EXPECT_EQ(o.mem->bytes()[kept + 1], static_cast<std::uint8_t>(0x42 + 7));
}

// A new block appended to a real file is not written out whole: the file is extended, so the
// host allocates only what was written.
TEST(EngineWrite, NewBlocksAreSparseOnTheHost) {
  TestImage t({.block_size = 32 * kMiB, .virtual_size = 64 * kMiB});
  char dir_template[] = "/tmp/vhdx-engine-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string path = std::string(dir_template) + "/sparse.vhdx";
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(t.bytes().data()),
              static_cast<std::streamsize>(t.bytes().size()));
  }
  auto before = allocated_bytes(path);
  ASSERT_TRUE(before);
  std::vector<std::uint8_t> model = t.expected_disk();
  {
    auto file = open_posix_file(path, {.writable = true});
    ASSERT_TRUE(file) << file.error().to_string();
    auto engine = Engine::open(std::move(*file), {.read_only = false});
    ASSERT_TRUE(engine) << engine.error().to_string();
    write_both(**engine, model, 32 * kMiB + 8192, pattern(4096, 0x5A));
    ASSERT_TRUE((*engine)->close());
    EXPECT_EQ((*engine)->info().file_size, t.bytes().size() + 32 * kMiB);
  }
  auto after = allocated_bytes(path);
  ASSERT_TRUE(after);
  EXPECT_LT(*after - *before, 1 * kMiB) << "the 32 MiB block was written out";
  auto file = open_posix_file(path, {});
  ASSERT_TRUE(file);
  auto engine = Engine::open(std::move(*file), {});
  ASSERT_TRUE(engine);
  EXPECT_EQ(read_all(**engine), model);
  std::remove(path.c_str());
  rmdir(dir_template);
}

// Crash after every possible number of writes: the image always reopens (replaying its log),
// data flushed before the crash reads back, and every other sector holds old or new data.
TEST(EngineWrite, CrashAtEveryWriteKeepsFlushedData) {
  TestImage t = base_image();
  const std::vector<std::uint8_t> before = t.expected_disk();
  const auto a = pattern(3 * kMiB - 100, 0x11);  // blocks 0-2, from byte 100
  const auto b = pattern(kMiB / 2, 0x77);        // block 3 (new)
  const auto c = pattern(8192, 0x33);
  std::vector<std::uint8_t> after_a = before;
  std::copy(a.begin(), a.end(), after_a.begin() + 100);
  std::vector<std::uint8_t> after_b = after_a;
  std::copy(b.begin(), b.end(), after_b.begin() + 3 * kMiB);
  std::vector<std::uint8_t> after_c = after_b;
  std::copy(c.begin(), c.end(), after_c.begin() + 1000);

  auto scenario = [&](Opened& o, std::uint64_t* w_a, std::uint64_t* w_b) {
    Engine& e = *o.engine;
    if (!e.write(100, a)) return;
    if (!e.flush()) return;
    *w_a = o.file->writes;
    if (!e.write(3 * kMiB, b)) return;
    if (!e.flush()) return;
    *w_b = o.file->writes;
    (void)e.write(1000, c);
    (void)e.close();
  };
  // A full run counts the writes.
  std::uint64_t total = 0;
  {
    Opened o = open_writable(t.bytes());
    std::uint64_t wa = 0, wb = 0;
    scenario(o, &wa, &wb);
    total = o.file->writes;
    auto r = open_read_only(o.mem->bytes());
    EXPECT_EQ(read_all(*r), after_c);
  }
  ASSERT_GT(total, 10u);
  const std::uint64_t sector = 512;
  int dirty = 0;
  for (std::uint64_t limit = 0; limit <= total; ++limit) {
    Opened o = open_writable(t.bytes());
    o.file->limit = limit;
    std::uint64_t wa = UINT64_MAX, wb = UINT64_MAX;
    scenario(o, &wa, &wb);
    o.engine.reset();
    std::vector<std::uint8_t> crashed = o.mem->bytes();
    // A read-only open replays in memory and must see what a writable open (replay in place)
    // sees.
    auto ro = Engine::open(std::make_unique<MemFile>(crashed, false), {});
    ASSERT_TRUE(ro) << "crash after " << limit << " writes: " << ro.error().to_string();
    if ((*ro)->info().log_state == LogState::kNeedsReplay) ++dirty;
    const auto read_only_view = read_all(**ro);

    Opened re = open_writable(crashed);
    ASSERT_NE(re.engine, nullptr) << "crash after " << limit << " writes";
    const auto got = read_all(*re.engine);
    ASSERT_EQ(read_only_view, got)
        << "in-memory and in-place replay differ, crash after " << limit << " writes";
    const auto& expected = limit >= wb ? after_b : limit >= wa ? after_a : before;
    for (std::uint64_t s = 0; s < got.size(); s += sector) {
      auto at = [&](const std::vector<std::uint8_t>& v) {
        return std::equal(got.begin() + s, got.begin() + s + sector, v.begin() + s);
      };
      // Flushed data must be there; later writes may or may not have landed, per sector.
      const bool ok = at(expected) || (limit >= wb && at(after_c)) ||
                      (limit < wb && (at(after_a) || at(after_b) || at(after_c)));
      ASSERT_TRUE(ok) << "crash after " << limit << " writes: sector at " << s;
    }
    ASSERT_TRUE(re.engine->close());
    re.engine.reset();
    auto clean = open_read_only(re.mem->bytes());
    ASSERT_NE(clean, nullptr);
    EXPECT_EQ(clean->info().log_state, LogState::kEmpty);
  }
  // Most crash points leave a log to replay.
  EXPECT_GT(dirty, static_cast<int>(total / 2));
}

}  // namespace
}  // namespace vhdx::image
