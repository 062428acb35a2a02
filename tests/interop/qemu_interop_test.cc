// Interop with QEMU: images made by qemu-img and filled by qemu-io over a matrix of block sizes,
// virtual sizes, subformats and block_state_zero settings. libvhdx (library and CLI) must read
// every one exactly as QEMU does: same raw bytes, same patterns, and a block map that matches
// the BAT QEMU wrote.
//
// One TEST_P per matrix cell does every check on that cell's image, because CTest runs each
// test in its own process and building the image is the costly part.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "support/cli_run.h"
#include "support/corpus.h"
#include "vhdx/convert.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

using testing::have_program;
using testing::in_ci;
using testing::make_temp_dir;
using testing::run_command;
using testing::sha256_file;
using testing::vhdx_cli;

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * kKiB;
constexpr std::uint64_t kGiB = 1024 * kMiB;
// A chunk (the span one sector-bitmap entry covers) with 512-byte logical sectors, the only
// sector size qemu-img creates: 2^23 sectors. BAT entries of payload blocks past it are
// shifted by the interleaved bitmap entries.
constexpr std::uint64_t kChunk = 4 * kGiB;

enum class SizeVariant {
  kExact,      // a whole number of blocks
  kPlus512,    // one 512-byte sector into a last, partial block
  kPlusOdd,    // + 3 MiB + 4 KiB: a last block that is partial by an odd amount
  kPastChunk,  // just past 4 GiB: crosses into the second chunk (dynamic only)
};

struct Cell {
  std::uint64_t block_mib;
  SizeVariant size;
  bool fixed;
  bool zero_state;  // qemu-img's block_state_zero

  std::uint64_t block_size() const { return block_mib * kMiB; }

  // Base block counts keep fixed images at or under ~260 MiB and every image quick to check.
  std::uint64_t virtual_size() const {
    if (size == SizeVariant::kPastChunk) return kChunk + 3 * kMiB + 4 * kKiB;
    const std::uint64_t blocks = block_mib <= 2 ? 5 : block_mib == 8 ? 4 : block_mib == 32 ? 3 : 1;
    const std::uint64_t base = blocks * block_size();
    switch (size) {
      case SizeVariant::kExact:
        return base;
      case SizeVariant::kPlus512:
        return base + 512;
      default:
        return base + 3 * kMiB + 4 * kKiB;
    }
  }
};

std::string cell_name(const ::testing::TestParamInfo<Cell>& info) {
  const Cell& c = info.param;
  static const char* const kSizeNames[] = {"exact", "plus512", "plus3m4k", "pastchunk"};
  return std::string(c.fixed ? "fixed" : "dynamic") + "_b" + std::to_string(c.block_mib) + "m_" +
         kSizeNames[static_cast<int>(c.size)] + (c.zero_state ? "_zeroon" : "_zerooff");
}

// One qemu-io write: a pattern byte, or `write -z` when zero is set.
struct Write {
  std::uint64_t offset;
  std::uint64_t length;
  std::uint8_t pattern;
  bool zero;
};

// A range of the disk whose expected content is one repeated byte.
struct Segment {
  std::uint64_t offset;
  std::uint64_t length;
  std::uint8_t byte;
  bool written;  // some write covers it (a hole otherwise)
};

// The writes for a cell: block-aligned, crossing block (and chunk) boundaries, a zero-write
// inside patterned data, a zero-write over a fresh block, the last (partial) block, and holes
// wherever none of these land.
std::vector<Write> writes_for(const Cell& cell) {
  const std::uint64_t b = cell.block_size();
  const std::uint64_t v = cell.virtual_size();
  const std::uint64_t blocks = (v + b - 1) / b;
  std::vector<Write> w;
  w.push_back({0, std::min<std::uint64_t>(b, 2 * kMiB), 0x11, false});
  w.push_back({b / 2, 256 * kKiB, 0x44, false});
  w.push_back({b / 2 + 64 * kKiB, 64 * kKiB, 0, true});
  if (blocks >= 2) {
    const std::uint64_t start = b - 96 * kKiB;
    w.push_back({start, std::min(b + 64 * kKiB, v) - start, 0x22, false});
  }
  if (blocks >= 3) w.push_back({2 * b, std::min({b, kMiB, v - 2 * b}), 0, true});
  if (v >= 4 * b + 16 * kKiB) w.push_back({4 * b + 4 * kKiB, 8 * kKiB + 512, 0x55, false});
  if (v > kChunk) {
    w.push_back({kChunk - 64 * kKiB, 128 * kKiB, 0x66, false});
    w.push_back({kChunk - 2 * b, 4 * kKiB, 0x77, false});
  }
  const std::uint64_t last_block_len = v - (blocks - 1) * b;
  const std::uint64_t tail = std::min<std::uint64_t>(12 * kKiB, last_block_len);
  w.push_back({v - tail, tail, 0x33, false});
  return w;
}

// Expected content: the last write covering each byte wins; merged into uniform segments.
std::vector<Segment> segments_for(const std::vector<Write>& writes, std::uint64_t v) {
  std::vector<std::uint64_t> cuts = {0, v};
  for (const Write& w : writes) {
    cuts.push_back(w.offset);
    cuts.push_back(w.offset + w.length);
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  std::vector<Segment> out;
  for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
    Segment s{cuts[i], cuts[i + 1] - cuts[i], 0, false};
    for (const Write& w : writes) {
      if (w.offset <= s.offset && s.offset < w.offset + w.length) {
        s.byte = w.zero ? 0 : w.pattern;
        s.written = true;
      }
    }
    if (!out.empty() && out.back().byte == s.byte && out.back().written == s.written) {
      out.back().length += s.length;
    } else {
      out.push_back(s);
    }
  }
  return out;
}

std::string hex_byte(std::uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", b);
  return buf;
}

// `-c 'read -P 0xNN OFF LEN'` arguments checking every segment; long segments are checked at
// both ends only, to keep the read buffers small.
std::string read_checks(const std::vector<Segment>& segments) {
  std::string args;
  auto add = [&](std::uint64_t off, std::uint64_t len, std::uint8_t byte) {
    args += " -c 'read -P " + hex_byte(byte) + " " + std::to_string(off) + " " +
            std::to_string(len) + "'";
  };
  for (const Segment& s : segments) {
    if (s.length <= 4 * kMiB) {
      add(s.offset, s.length, s.byte);
    } else {
      add(s.offset, 2 * kMiB, s.byte);
      add(s.offset + s.length - 2 * kMiB, 2 * kMiB, s.byte);
    }
  }
  return args;
}

std::uint64_t allocated_bytes(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return UINT64_MAX;
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

std::uint64_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return UINT64_MAX;
  return static_cast<std::uint64_t>(st.st_size);
}

// Half-open byte ranges, sorted and merged.
using Ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

void add_range(Ranges& r, std::uint64_t start, std::uint64_t end) {
  if (start == end) return;
  if (!r.empty() && r.back().second == start) {
    r.back().second = end;
  } else {
    r.emplace_back(start, end);
  }
}

// Whether [start, end) lies inside one range of r.
bool covered(const Ranges& r, std::uint64_t start, std::uint64_t end) {
  for (const auto& [s, e] : r) {
    if (s <= start && end <= e) return true;
  }
  return false;
}

// Reads a qemu-img-map style JSON array into the ranges marked data (and, if wanted, into the
// ranges marked not data).
bool parse_map(const std::string& text, Ranges* data, Ranges* not_data, std::string* error) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) {
    *error = "map output is not a JSON array: " + text.substr(0, 200);
    return false;
  }
  std::uint64_t expect = 0;
  for (const auto& e : j) {
    if (!e.contains("start") || !e.contains("length") || !e.contains("data")) {
      *error = "map entry lacks start/length/data: " + e.dump();
      return false;
    }
    const std::uint64_t start = e["start"].get<std::uint64_t>();
    const std::uint64_t len = e["length"].get<std::uint64_t>();
    if (start != expect) {
      *error = "map entries not contiguous at " + std::to_string(start);
      return false;
    }
    expect = start + len;
    if (e["data"].get<bool>()) {
      add_range(*data, start, start + len);
    } else if (not_data != nullptr) {
      add_range(*not_data, start, start + len);
    }
  }
  return true;
}

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const std::uint8_t* p, std::size_t n) { EVP_DigestUpdate(ctx_, p, n); }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    std::string out;
    for (unsigned int i = 0; i < len; ++i) out += hex_byte(md[i]).substr(2);
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

// A file read through its data map (SEEK_DATA/SEEK_HOLE): holes read as zeros without
// touching the disk, which keeps comparing multi-GiB sparse files cheap.
class SparseFile {
 public:
  ~SparseFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool open(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return false;
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return false;
    size_ = static_cast<std::uint64_t>(st.st_size);
    off_t pos = 0;
    while (static_cast<std::uint64_t>(pos) < size_) {
      const off_t data = ::lseek(fd_, pos, SEEK_DATA);
      if (data < 0) break;  // ENXIO: only a hole remains
      off_t hole = ::lseek(fd_, data, SEEK_HOLE);
      if (hole < 0) hole = static_cast<off_t>(size_);
      add_range(data_, static_cast<std::uint64_t>(data), static_cast<std::uint64_t>(hole));
      pos = hole;
    }
    return true;
  }
  std::uint64_t size() const { return size_; }
  const Ranges& data() const { return data_; }

  bool read(std::uint64_t off, std::uint8_t* out, std::size_t len) const {
    if (off > size_ || len > size_ - off) return false;
    std::memset(out, 0, len);
    const std::uint64_t end = off + len;
    auto it = std::upper_bound(data_.begin(), data_.end(), off,
                               [](std::uint64_t o, const auto& r) { return o < r.second; });
    for (; it != data_.end() && it->first < end; ++it) {
      const std::uint64_t s = std::max(off, it->first), e = std::min(end, it->second);
      if (::pread(fd_, out + (s - off), e - s, static_cast<off_t>(s)) !=
          static_cast<ssize_t>(e - s)) {
        return false;
      }
    }
    return true;
  }

 private:
  int fd_ = -1;
  std::uint64_t size_ = 0;
  Ranges data_;
};

// Compares two files byte for byte, reading only where either holds data. Empty when equal,
// otherwise what differs.
std::string compare_files(const std::string& a_path, const std::string& b_path) {
  SparseFile a, b;
  if (!a.open(a_path)) return "cannot open " + a_path;
  if (!b.open(b_path)) return "cannot open " + b_path;
  if (a.size() != b.size()) {
    return "sizes differ: " + std::to_string(a.size()) + " vs " + std::to_string(b.size());
  }
  Ranges all = a.data();
  all.insert(all.end(), b.data().begin(), b.data().end());
  std::sort(all.begin(), all.end());
  std::vector<std::uint8_t> x(4 * kMiB), y(4 * kMiB);
  for (const auto& [s, e] : all) {
    for (std::uint64_t off = s; off < e; off += x.size()) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(x.size(), e - off));
      if (!a.read(off, x.data(), n) || !b.read(off, y.data(), n)) return "read failed";
      if (std::memcmp(x.data(), y.data(), n) != 0) {
        std::size_t i = 0;
        while (x[i] == y[i]) ++i;
        return "first difference at offset " + std::to_string(off + i) + ": " + hex_byte(x[i]) +
               " vs " + hex_byte(y[i]);
      }
    }
  }
  return "";
}

void PrintTo(const Cell& cell, std::ostream* os) {
  *os << "block " << cell.block_mib << " MiB, virtual size " << cell.virtual_size() << ", "
      << (cell.fixed ? "fixed" : "dynamic")
      << ", block_state_zero=" << (cell.zero_state ? "on" : "off");
}

// Each check_* method is one independent group of assertions on the cell's image: a fatal
// failure in one ends only that group.
class QemuInteropTest : public ::testing::TestWithParam<Cell> {
 protected:
  void SetUp() override {
    if (!have_program("qemu-img") || !have_program("qemu-io")) {
      if (in_ci()) FAIL() << "qemu-img/qemu-io not found on PATH (required when CI=true)";
      GTEST_SKIP() << "qemu-img/qemu-io not found on PATH: QEMU interop not tested";
    }
    cell_ = GetParam();
    v_ = cell_.virtual_size();
    b_ = cell_.block_size();
    writes_ = writes_for(cell_);
    segments_ = segments_for(writes_, v_);
    reads_ = read_checks(segments_);
    cli_ = vhdx_cli();
    dir_ = make_temp_dir();
    image_ = dir_ + "/image.vhdx";
    qemu_raw_ = dir_ + "/qemu.raw";
  }

  // Creates and fills the cell's image with QEMU; QEMU's raw conversion is the reference.
  void make_image() {
    const std::string create = "qemu-img create -q -f vhdx -o subformat=" +
                               std::string(cell_.fixed ? "fixed" : "dynamic") +
                               ",block_size=" + std::to_string(b_) +
                               ",block_state_zero=" + (cell_.zero_state ? "on" : "off") + " " +
                               image_ + " " + std::to_string(v_);
    ASSERT_EQ(run_command(create), 0) << create;
    std::string fill = "qemu-io -f vhdx";
    for (const Write& w : writes_) {
      fill += " -c 'write -q " + (w.zero ? std::string("-z") : "-P " + hex_byte(w.pattern)) + " " +
              std::to_string(w.offset) + " " + std::to_string(w.length) + "'";
    }
    fill += " " + image_;
    ASSERT_EQ(run_command(fill), 0) << fill;
    const std::string convert = "qemu-img convert -f vhdx -O raw " + image_ + " " + qemu_raw_;
    ASSERT_EQ(run_command(convert), 0) << convert;
    ASSERT_EQ(file_size(qemu_raw_), v_);
    // The expected-content model agrees with QEMU itself, so a failure later is ours.
    ASSERT_EQ(run_command("qemu-io -r -f vhdx" + reads_ + " " + image_ + " >/dev/null"), 0)
        << "the test's content model disagrees with qemu-io";
  }

  bool raw_at(std::uint64_t off, std::uint8_t* out, std::size_t len) const {
    return raw_.read(off, out, len);
  }

  void check_cli_info() {
    std::string out;
    ASSERT_EQ(run_command(cli_ + " info " + image_ + " --output=json", &out), 0);
    nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
    ASSERT_TRUE(j.is_object()) << out;
    EXPECT_EQ(j.value("virtual-size", std::uint64_t{0}), v_) << out;
    EXPECT_EQ(j.value("block-size", std::uint64_t{0}), b_) << out;
    EXPECT_EQ(j.value("type", std::string()), cell_.fixed ? "fixed" : "dynamic") << out;
  }

  // vhdx convert -O raw: byte-identical to qemu-img's output, and as sparse.
  void check_cli_convert() {
    const std::string ours = dir_ + "/vhdx.raw";
    ASSERT_EQ(run_command(cli_ + " convert -O raw " + image_ + " " + ours), 0);
    EXPECT_EQ(file_size(ours), v_);
    EXPECT_EQ(compare_files(qemu_raw_, ours), "")
        << "vhdx convert output differs from qemu-img convert";
    // Sparse: nothing allocated outside the image's data extents (QEMU goes further and
    // leaves a hole for every all-zero 4 KiB; this library may copy zeros inside data).
    auto image = Image::open(image_, OpenOptions{});
    ASSERT_TRUE(image) << image.error().to_string();
    auto status = (*image)->block_status(0, v_);
    ASSERT_TRUE(status) << status.error().to_string();
    std::uint64_t data_bytes = 0;
    for (const Extent& e : *status) {
      if (e.kind == ExtentKind::kData) data_bytes += e.length;
    }
    EXPECT_LE(allocated_bytes(ours), data_bytes + 64 * kKiB)
        << "vhdx convert output allocates more than the image's data";
    ::unlink(ours.c_str());
  }

  // vhdx io: every segment reads with its pattern; a wrong pattern fails with exit 1.
  void check_cli_io() {
    EXPECT_EQ(run_command(cli_ + " io " + image_ + reads_ + " >/dev/null"), 0)
        << "vhdx io pattern reads failed:" << reads_;
    const auto first = std::find_if(segments_.begin(), segments_.end(),
                                    [](const Segment& s) { return s.byte != 0; });
    ASSERT_NE(first, segments_.end());
    const std::uint64_t len = std::min<std::uint64_t>(first->length, 64 * kKiB);
    const std::string bad = " -c 'read -P " + hex_byte(first->byte ^ 0xff) + " " +
                            std::to_string(first->offset) + " " + std::to_string(len) + "'";
    std::string out;
    EXPECT_EQ(run_command(cli_ + " io -r " + image_ + bad, &out), 1) << bad;
    EXPECT_NE(out.find("Pattern verification failed at offset " + std::to_string(first->offset)),
              std::string::npos)
        << out;
    // A read that runs 512 bytes past its segment into different content fails too.
    const auto next = first + 1;
    if (next != segments_.end() && next->byte != first->byte) {
      const std::uint64_t start = first->offset + first->length - len;
      const std::string straddle = " -c 'read -P " + hex_byte(first->byte) + " " +
                                   std::to_string(start) + " " + std::to_string(len + 512) + "'";
      EXPECT_EQ(run_command(cli_ + " io -r " + image_ + straddle + " >/dev/null"), 1) << straddle;
    }
  }

  // Library full read: the same bytes as QEMU's raw file, hence the same hash (hashed only
  // up to 1 GiB: past that the byte comparison is the proof and hashing zeros the cost).
  void check_full_read(Image& image) {
    const bool hashing = v_ <= kGiB;
    Sha256 hash;
    std::vector<std::uint8_t> ours(4 * kMiB), theirs(4 * kMiB);
    for (std::uint64_t off = 0; off < v_; off += ours.size()) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(ours.size(), v_ - off));
      auto r = image.read(off, std::span(ours.data(), n));
      ASSERT_TRUE(r) << "read at " << off << ": " << r.error().to_string();
      ASSERT_TRUE(raw_at(off, theirs.data(), n));
      if (std::memcmp(ours.data(), theirs.data(), n) != 0) {
        std::size_t i = 0;
        while (ours[i] == theirs[i]) ++i;
        FAIL() << "library read differs from qemu raw at offset " << off + i << ": got "
               << hex_byte(ours[i]) << ", want " << hex_byte(theirs[i]);
      }
      if (hashing) hash.update(ours.data(), n);
    }
    if (hashing) {
      EXPECT_EQ(hash.hex(), sha256_file(qemu_raw_));
    }
  }

  // Odd-sized, unaligned reads around every segment edge and at random places.
  void check_unaligned_reads(Image& image) {
    std::mt19937_64 rng(cell_.block_mib * 131 + static_cast<int>(cell_.size) * 7 + cell_.fixed * 3 +
                        cell_.zero_state);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> probes;
    for (const Segment& s : segments_) {
      const std::uint64_t at = s.offset >= 777 ? s.offset - 777 : 0;
      probes.emplace_back(at, std::min<std::uint64_t>(1555, v_ - at));
    }
    for (int i = 0; i < 200; ++i) {
      const std::uint64_t len = 1 + rng() % (3 * 4096);
      probes.emplace_back(rng() % (v_ - len), len);
    }
    probes.emplace_back(v_ - 1, 1);
    std::vector<std::uint8_t> ours, theirs;
    for (const auto& [off, len] : probes) {
      ours.assign(len, 0xee);
      theirs.assign(len, 0);
      auto r = image.read(off, ours);
      ASSERT_TRUE(r) << "read " << off << "+" << len << ": " << r.error().to_string();
      ASSERT_TRUE(raw_at(off, theirs.data(), len));
      ASSERT_EQ(ours, theirs) << "read " << off << "+" << len;
    }
    std::vector<std::uint8_t> two(2);
    auto past = image.read(v_ - 1, two);
    ASSERT_FALSE(past) << "a read past the end succeeded";
    EXPECT_EQ(past.error().code(), ErrorCode::kOutOfRange) << past.error().to_string();
  }

  // Block status agrees with the BAT QEMU wrote: a block with any non-zero write is data, a
  // block only zero-written is data or zero (whether a zero write allocates is QEMU's
  // choice), an untouched block keeps its state from creation. Data extents point at the
  // right container bytes; the rest reads as zeros.
  void check_block_status(Image& image, Ranges* lib_data, std::vector<Extent>* extents) {
    auto status = image.block_status(0, v_);
    ASSERT_TRUE(status) << status.error().to_string();
    *extents = *status;
    std::uint64_t expect = 0;
    for (const Extent& e : *status) {
      ASSERT_EQ(e.offset, expect) << "extents not contiguous";
      ASSERT_GT(e.length, 0u);
      expect = e.offset + e.length;
      if (e.kind == ExtentKind::kData) {
        ASSERT_TRUE(e.file_offset.has_value()) << "data extent at " << e.offset;
        add_range(*lib_data, e.offset, e.offset + e.length);
      }
    }
    ASSERT_EQ(expect, v_) << "extents do not cover the disk";

    const std::uint64_t blocks = (v_ + b_ - 1) / b_;
    const ExtentKind initial = cell_.zero_state ? ExtentKind::kZero
                               : cell_.fixed    ? ExtentKind::kData
                                                : ExtentKind::kUnallocated;
    for (std::uint64_t blk = 0; blk < blocks; ++blk) {
      const std::uint64_t start = blk * b_;
      const std::uint64_t end = std::min(v_, start + b_);
      bool nonzero = false, touched = false;
      for (const Write& w : writes_) {
        if (w.offset < end && start < w.offset + w.length) {
          touched = true;
          nonzero = nonzero || (!w.zero && w.pattern != 0);
        }
      }
      std::optional<ExtentKind> kind;
      for (const Extent& e : *status) {
        if (e.offset <= start && start < e.offset + e.length) {
          kind = e.kind;
          EXPECT_GE(e.offset + e.length, end) << "block " << blk << " split across extents";
        }
      }
      ASSERT_TRUE(kind.has_value());
      if (nonzero) {
        EXPECT_EQ(*kind, ExtentKind::kData) << "block " << blk;
      } else if (touched) {
        EXPECT_TRUE(*kind == ExtentKind::kData || *kind == ExtentKind::kZero) << "block " << blk;
      } else {
        EXPECT_EQ(*kind, initial) << "untouched block " << blk;
      }
    }

    SparseFile container;
    ASSERT_TRUE(container.open(image_));
    std::vector<std::uint8_t> a(4 * kMiB), c(4 * kMiB);
    const std::vector<std::uint8_t> zeros(4 * kMiB, 0);
    for (const Extent& e : *status) {
      if (e.kind == ExtentKind::kData) {
        for (std::uint64_t done = 0; done < e.length; done += a.size()) {
          const std::size_t n =
              static_cast<std::size_t>(std::min<std::uint64_t>(a.size(), e.length - done));
          ASSERT_TRUE(raw_at(e.offset + done, a.data(), n));
          ASSERT_TRUE(container.read(*e.file_offset + done, c.data(), n))
              << "data extent at " << e.offset << " lies past the container's end";
          EXPECT_EQ(std::memcmp(a.data(), c.data(), n), 0)
              << "data extent at " << e.offset << " maps to the wrong container bytes";
        }
        continue;
      }
      // Zero or unallocated: whatever QEMU's raw file stores there must be zeros.
      for (const auto& [ds, de] : raw_.data()) {
        const std::uint64_t s = std::max(ds, e.offset), t = std::min(de, e.offset + e.length);
        for (std::uint64_t off = s; off < t; off += a.size()) {
          const std::size_t n =
              static_cast<std::size_t>(std::min<std::uint64_t>(a.size(), t - off));
          ASSERT_TRUE(raw_at(off, a.data(), n));
          EXPECT_EQ(std::memcmp(a.data(), zeros.data(), n), 0)
              << "non-data extent at " << e.offset << " is not zero in qemu's raw near " << off;
        }
      }
    }
  }

  // vhdx map marks the same ranges as data as the library, and agrees with qemu-img map:
  // nothing QEMU calls data-free is data here, and everything data here is data to QEMU.
  void check_maps(const Ranges& lib_data, const std::vector<Extent>& extents) {
    std::string out, error;
    ASSERT_EQ(run_command(cli_ + " map " + image_ + " --output=json", &out), 0);
    Ranges cli_data;
    ASSERT_TRUE(parse_map(out, &cli_data, nullptr, &error)) << error;
    EXPECT_EQ(cli_data, lib_data) << "vhdx map data ranges differ from Image::block_status";
    // Every range that is not data reads as zeros in a fixed or dynamic image, and a data
    // range's "offset" is where the library maps it in the container.
    const nlohmann::json entries = nlohmann::json::parse(out, nullptr, false);
    for (const auto& e : entries) {
      const std::uint64_t start = e.value("start", std::uint64_t{0});
      if (!e.value("data", false)) {
        EXPECT_TRUE(e.value("zero", false)) << "non-data map entry not zero: " << e.dump();
      } else if (e.contains("offset")) {
        std::optional<std::uint64_t> want;
        for (const Extent& x : extents) {
          if (x.offset <= start && start < x.offset + x.length && x.file_offset) {
            want = *x.file_offset + (start - x.offset);
          }
        }
        EXPECT_EQ(e["offset"].get<std::uint64_t>(), want.value_or(UINT64_MAX)) << e.dump();
      }
    }
    std::string qemu_out;  // run_command appends to its output string
    ASSERT_EQ(run_command("qemu-img map -f vhdx --output=json " + image_, &qemu_out), 0);
    Ranges qemu_data, qemu_not_data;
    ASSERT_TRUE(parse_map(qemu_out, &qemu_data, &qemu_not_data, &error)) << error;
    for (const auto& [s, e] : lib_data) {
      EXPECT_TRUE(covered(qemu_data, s, e)) << "data [" << s << ", " << e << ") not data to QEMU";
    }
    for (const auto& [s, e] : qemu_not_data) {
      for (const auto& [ds, de] : lib_data) {
        EXPECT_FALSE(ds < e && s < de) << "QEMU says [" << s << ", " << e << ") holds no data";
      }
    }
  }

  // The library's own convert_to_raw gives the same file as QEMU, with sane progress.
  void check_api_convert(Image& image) {
    const std::string api_raw = dir_ + "/api.raw";
    RawConvertOptions options;
    std::uint64_t last_done = 0, last_total = 0;
    options.progress = [&](std::uint64_t done, std::uint64_t total) {
      EXPECT_GE(done, last_done);
      EXPECT_LE(done, total);
      last_done = done;
      last_total = total;
    };
    auto r = convert_to_raw(image, api_raw, options);
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(compare_files(qemu_raw_, api_raw), "")
        << "convert_to_raw output differs from qemu-img convert";
    if (last_total != 0) {
      EXPECT_EQ(last_done, last_total);
    }
    ::unlink(api_raw.c_str());
  }

  Cell cell_{};
  std::uint64_t v_ = 0, b_ = 0;
  std::vector<Write> writes_;
  std::vector<Segment> segments_;
  std::string reads_, cli_, dir_, image_, qemu_raw_;
  SparseFile raw_;
};

TEST_P(QemuInteropTest, ReadsLikeQemu) {
  ASSERT_NO_FATAL_FAILURE(make_image());
  SCOPED_TRACE("image " + image_);
  ASSERT_TRUE(raw_.open(qemu_raw_));

  const bool have_cli = ::access(cli_.c_str(), X_OK) == 0;
  EXPECT_TRUE(have_cli) << "the vhdx CLI is not built at " << cli_;
  if (have_cli) {
    check_cli_info();
    check_cli_convert();
    check_cli_io();
  }

  auto opened = Image::open(image_, OpenOptions{});
  ASSERT_TRUE(opened) << opened.error().to_string();
  Image& image = **opened;
  EXPECT_EQ(image.virtual_size(), v_);
  EXPECT_EQ(image.info().block_size, b_);
  EXPECT_EQ(image.info().type, cell_.fixed ? DiskType::kFixed : DiskType::kDynamic);

  check_full_read(image);
  check_unaligned_reads(image);
  Ranges lib_data;
  std::vector<Extent> extents;
  check_block_status(image, &lib_data, &extents);
  if (have_cli) check_maps(lib_data, extents);
  check_api_convert(image);
}

std::vector<Cell> matrix() {
  std::vector<Cell> cells;
  for (std::uint64_t block_mib : {1, 2, 8, 32, 256}) {
    for (SizeVariant size : {SizeVariant::kExact, SizeVariant::kPlus512, SizeVariant::kPlusOdd}) {
      for (bool fixed : {false, true}) {
        for (bool zero : {true, false}) cells.push_back({block_mib, size, fixed, zero});
      }
    }
  }
  // Past the first 4 GiB chunk, where bitmap entries interleave the BAT (sparse, dynamic).
  cells.push_back({1, SizeVariant::kPastChunk, false, false});
  cells.push_back({32, SizeVariant::kPastChunk, false, true});
  return cells;
}

INSTANTIATE_TEST_SUITE_P(Matrix, QemuInteropTest, ::testing::ValuesIn(matrix()), cell_name);

}  // namespace
}  // namespace vhdx
