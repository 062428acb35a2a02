// The nbdkit filter: a VHDX image served raw by another plugin (file, curl) comes out as its
// virtual disk. Checked with libnbd's clients (nbdcopy, nbdinfo) and QEMU's (qemu-io) against
// the CLI's own reading of the same image (`vhdx convert`, `vhdx map`), the corpus hashes, and
// the library's error messages; the image file is never changed.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "nbdkit/nbdkit_run.h"
#include "support/cli_run.h"
#include "support/corpus.h"

namespace vhdx::testing {
namespace {

// Runs nbdkit with the filter over `plugin_args` while `command` runs.
CliRun serve(const std::string& plugin_args, const std::string& command, bool read_only = true) {
  return run_nbdkit("--filter=" + shell_quote(nbdkit_filter_path()) + " " + plugin_args, command,
                    read_only);
}

// nbdkit with the filter over the file plugin serving `image`.
CliRun serve_file(const std::string& image, const std::string& command, bool read_only = true) {
  return serve("file " + shell_quote(image), command, read_only);
}

// Runs `vhdx ARGS`, expecting success.
std::string vhdx_ok(const std::string& args) {
  CliRun r = run_vhdx(args);
  EXPECT_EQ(r.status, 0) << "vhdx " << args << "\n" << r.err;
  return r.out;
}

// The SHA-256 of the virtual disk as the CLI reads it.
std::string cli_content_hash(const std::string& image, const std::string& dir) {
  const std::string raw = dir + "/cli.raw";
  vhdx_ok("convert -O raw " + shell_quote(image) + " " + shell_quote(raw));
  return sha256_file(raw);
}

// The SHA-256 of what nbdcopy reads through the filter over `plugin_args`.
std::string filter_content_hash(const std::string& plugin_args, const std::string& dir) {
  const std::string raw = dir + "/nbd.raw";
  CliRun r = serve(plugin_args, "nbdcopy \"$uri\" " + shell_quote(raw));
  EXPECT_EQ(r.status, 0) << r.err;
  return r.status == 0 ? sha256_file(raw) : "";
}

// A range of the disk and whether it holds data (as opposed to reading as zeros for sure).
struct Range {
  std::uint64_t start;
  std::uint64_t length;
  bool data;
  bool operator==(const Range&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Range& r) {
  return os << "{" << r.start << "+" << r.length << (r.data ? " data}" : " zero}");
}

// Adds a range, merging it with the previous one when they touch and agree.
void append(std::vector<Range>& ranges, Range r) {
  if (!ranges.empty() && ranges.back().data == r.data &&
      ranges.back().start + ranges.back().length == r.start) {
    ranges.back().length += r.length;
  } else {
    ranges.push_back(r);
  }
}

// `vhdx map --output=json`: data or zero (zero, unmapped and not-present blocks alike).
std::vector<Range> cli_map(const std::string& image) {
  auto doc =
      nlohmann::json::parse(vhdx_ok("map --output=json " + shell_quote(image)), nullptr, false);
  EXPECT_TRUE(doc.is_array());
  std::vector<Range> ranges;
  if (!doc.is_array()) return ranges;
  for (const auto& e : doc) {
    append(ranges, {e.at("start").get<std::uint64_t>(), e.at("length").get<std::uint64_t>(),
                    e.at("data").get<bool>()});
  }
  return ranges;
}

// `nbdinfo --map --json` through the filter: type 0 is data, 3 (hole, zero) a zero range; any
// other type is a test failure.
std::vector<Range> filter_map(const std::string& image) {
  CliRun r = serve_file(image, "nbdinfo --map --json \"$uri\"");
  EXPECT_EQ(r.status, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_TRUE(doc.is_array()) << r.out;
  std::vector<Range> ranges;
  if (!doc.is_array()) return ranges;
  for (const auto& e : doc) {
    const int type = e.at("type").get<int>();
    EXPECT_TRUE(type == 0 || type == 3) << e.dump();
    append(ranges,
           {e.at("offset").get<std::uint64_t>(), e.at("length").get<std::uint64_t>(), type == 0});
  }
  return ranges;
}

// What the file looked like: content hash and modification time.
struct FileState {
  std::string sha256;
  std::int64_t mtime_ns = 0;
  bool operator==(const FileState&) const = default;
};

FileState file_state(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return {sha256_file(path),
          static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

void require_nbd_clients() {
  VHDX_REQUIRE_PROGRAM("nbdkit");
  VHDX_REQUIRE_PROGRAM("nbdcopy");
  VHDX_REQUIRE_PROGRAM("nbdinfo");
  VHDX_REQUIRE_PROGRAM("qemu-io");
}

// Writes patterns (full, partial and unaligned blocks of 1 MiB), then discards a whole block
// and part of another, into a new 8 MiB image with the given sector size.
std::string make_patterned_image(const std::string& dir, std::uint32_t logical_sector_size) {
  const std::string image = dir + "/disk.vhdx";
  vhdx_ok("create -q -o block_size=1M,logical_sector_size=" + std::to_string(logical_sector_size) +
          " " + shell_quote(image) + " 8M");
  vhdx_ok("io " + shell_quote(image) + " -c 'write -P 0xaa 0 1536k'" +
          " -c 'write -P 0x55 3076k 100k'" + " -c 'write -P 0x11 5M 2M'" +
          " -c 'write -P 0x3c 7340545 1000'" + " -c 'discard 5M 1M'" + " -c 'discard 1M 256k'");
  return image;
}

// What make_patterned_image wrote, as qemu-io reads to check through the filter.
const char* const kPatternReads =
    " -c 'read -P 0xaa 0 1M' -c 'read -P 0 1M 256k' -c 'read -P 0xaa 1280k 256k'"
    " -c 'read -P 0 1536k 1540k' -c 'read -P 0x55 3076k 100k' -c 'read -P 0 3176k 2968k'"
    " -c 'read -P 0x11 6M 1M' -c 'read -P 0 7M 513' -c 'read -P 0x3c 7340545 1000'"
    " -c 'read -P 0 7341545 1047063'";

void check_patterned_image(std::uint32_t logical_sector_size) {
  const std::string dir = make_temp_dir();
  const std::string image = make_patterned_image(dir, logical_sector_size);
  const FileState before = file_state(image);

  // The whole disk, byte for byte, as the CLI reads it.
  const std::string expected = cli_content_hash(image, dir);
  EXPECT_EQ(filter_content_hash("file " + shell_quote(image), dir), expected);

  // Every pattern and every zero range, read by QEMU's NBD client.
  CliRun reads = serve_file(image, std::string("qemu-io -r -f raw \"$nbd\"") + kPatternReads);
  EXPECT_EQ(reads.status, 0) << reads.out << reads.err;
  EXPECT_EQ(reads.out.find("Pattern verification failed"), std::string::npos) << reads.out;

  // The same data and zero ranges as `vhdx map`, and some of each.
  const std::vector<Range> map = filter_map(image);
  EXPECT_EQ(map, cli_map(image));
  std::uint64_t data = 0, zero = 0;
  for (const Range& r : map) (r.data ? data : zero) += r.length;
  EXPECT_EQ(data + zero, 8u << 20);
  EXPECT_GE(data, 3u << 20);
  EXPECT_GE(zero, 3u << 20);

  // What the export advertises: read-only, size, block sizes.
  CliRun info = serve_file(image, "nbdinfo --json \"$uri\"");
  ASSERT_EQ(info.status, 0) << info.err;
  auto doc = nlohmann::json::parse(info.out, nullptr, false);
  ASSERT_TRUE(doc.is_object()) << info.out;
  const auto& exp = doc.at("exports").at(0);
  EXPECT_EQ(exp.at("export-size").get<std::uint64_t>(), 8u << 20);
  EXPECT_TRUE(exp.at("is_read_only").get<bool>());
  EXPECT_FALSE(exp.at("can_trim").get<bool>());
  EXPECT_FALSE(exp.at("can_zero").get<bool>());
  EXPECT_TRUE(exp.at("can_multi_conn").get<bool>());
  EXPECT_EQ(exp.at("block_size_minimum").get<std::uint32_t>(), 1u);
  EXPECT_EQ(exp.at("block_size_preferred").get<std::uint32_t>(), 4096u);
  EXPECT_EQ(exp.at("block_size_maximum").get<std::uint32_t>(), 0xffffffffu);

  EXPECT_EQ(file_state(image), before);
}

TEST(NbdkitFilter, PatternedImageOverFilePlugin) {
  require_nbd_clients();
  check_patterned_image(512);
}

TEST(NbdkitFilter, FourKSectorImageOverFilePlugin) {
  require_nbd_clients();
  check_patterned_image(4096);
}

TEST(NbdkitFilter, CorpusImagesReadTheirContentHashAndStayUnchanged) {
  require_nbd_clients();
  for (const testing::CorpusContent& c : testing::corpus_contents()) {
    SCOPED_TRACE(c.file);
    const std::string dir = make_temp_dir();
    const std::string image = corpus_image(c.file);
    const FileState before = file_state(image);
    EXPECT_EQ(filter_content_hash("file " + shell_quote(image), dir), c.content_sha256);
    EXPECT_EQ(file_state(image), before);
  }
}

TEST(NbdkitFilter, DirtyLogIsReplayedInMemoryOnly) {
  require_nbd_clients();
  const std::string image = corpus_image("local-qemu72-dirtylog/qemu72-pending-bat-log.vhdx.bz2");
  const FileState before = file_state(image);
  // Before replay every BAT entry is ZERO; the log makes block 0 present and full of 0xA5.
  CliRun r = serve_file(image,
                        "qemu-io -r -f raw \"$nbd\" -c 'read -P 0xa5 0 1M'"
                        " -c 'read -P 0 1M 15M' && nbdinfo --map \"$uri\"");
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("Pattern verification failed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0     1048576    0  data"), std::string::npos) << r.out;
  EXPECT_EQ(file_state(image), before);
  // The file itself still needs replay.
  CliRun info = run_vhdx("info --output=json " + shell_quote(image));
  auto doc = nlohmann::json::parse(info.out, nullptr, false);
  ASSERT_TRUE(doc.is_object()) << info.out << info.err;
  EXPECT_EQ(doc.at("log").at("state"), "needs-replay");
}

TEST(NbdkitFilter, CurlPluginUnderneathGivesTheSameContent) {
  require_nbd_clients();
  // The curl plugin ships with nbdkit's Debian package; libcurl reads file:// URLs.
  CliRun probe = run_shell("nbdkit curl --dump-plugin >/dev/null 2>&1");
  if (probe.status != 0) {
    if (in_ci()) FAIL() << "nbdkit's curl plugin is missing, and CI=true requires it";
    GTEST_SKIP() << "nbdkit's curl plugin is not installed";
  }
  const std::string dir = make_temp_dir();
  const std::string image = make_patterned_image(dir, 512);
  const std::string expected = cli_content_hash(image, dir);
  EXPECT_EQ(filter_content_hash("curl " + shell_quote("file://" + image), dir), expected);

  const std::string dirty = corpus_image("local-qemu72-dirtylog/qemu72-pending-bat-log.vhdx.bz2");
  EXPECT_EQ(filter_content_hash("curl " + shell_quote("file://" + dirty), dir),
            "db96ec75f924125171513a349d157d70691a484532596aee03f09daf5062d385");
}

// A small HTTP server that honours byte Range requests (python3's http.server alone does not):
// serves the file argv[1] on 127.0.0.1 at a free port, which it writes to argv[2] once
// listening, and logs each range it serves to argv[3].
const char* const kRangeServer = R"(import http.server, os, re, sys
path, port_file, log_file = sys.argv[1:4]
class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, body):
        size = os.path.getsize(path)
        start, end, status = 0, size - 1, 200
        m = re.fullmatch(r'bytes=(\d+)-(\d*)', self.headers.get('Range', ''))
        if m:
            start, status = int(m[1]), 206
            end = min(int(m[2]) if m[2] else size - 1, size - 1)
            if start >= size:
                self.send_response(416)
                self.send_header('Content-Range', 'bytes */%d' % size)
                self.end_headers()
                return
        self.send_response(status)
        if status == 206:
            self.send_header('Content-Range', 'bytes %d-%d/%d' % (start, end, size))
            with open(log_file, 'a') as log:
                log.write('%d-%d\n' % (start, end))
        self.send_header('Accept-Ranges', 'bytes')
        self.send_header('Content-Length', str(end - start + 1))
        self.end_headers()
        if body:
            with open(path, 'rb') as f:
                f.seek(start)
                self.wfile.write(f.read(end - start + 1))
    def do_HEAD(self):
        self.reply(False)
    def do_GET(self):
        self.reply(True)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
with open(port_file + '.tmp', 'w') as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + '.tmp', port_file)
server.serve_forever()
)";

TEST(NbdkitFilter, CurlPluginOverHttpRangeRequests) {
  require_nbd_clients();
  VHDX_REQUIRE_PROGRAM("python3");
  if (run_shell("nbdkit curl --dump-plugin").status != 0) {
    if (in_ci()) FAIL() << "nbdkit's curl plugin is missing, and CI=true requires it";
    GTEST_SKIP() << "nbdkit's curl plugin is not installed";
  }
  const std::string dir = make_temp_dir();
  const std::string image = make_patterned_image(dir, 512);
  const std::string expected = cli_content_hash(image, dir);
  const std::string script = dir + "/range_server.py";
  std::ofstream(script) << kRangeServer;
  const std::string port_file = dir + "/port", log_file = dir + "/ranges", raw = dir + "/http.raw";

  // Start the server, wait until it listens, copy the disk through curl and the filter, stop it.
  CliRun r = run_shell(
      "python3 " + shell_quote(script) + " " + shell_quote(image) + " " + shell_quote(port_file) +
      " " + shell_quote(log_file) + " & server=$!; " + "for i in $(seq 200); do [ -s " +
      shell_quote(port_file) + " ] && break; sleep 0.05; done; " + nbdkit_program() +
      " -U - -r --filter=" + shell_quote(nbdkit_filter_path()) + " curl \"http://127.0.0.1:$(cat " +
      shell_quote(port_file) + ")/disk.vhdx\" --run " +
      shell_quote("unset LD_PRELOAD ASAN_OPTIONS; nbdcopy \"$uri\" " + shell_quote(raw)) +
      "; status=$?; kill $server; wait $server 2>/dev/null; exit $status");
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(sha256_file(raw), expected);
  // The image was read in ranges, and not all of it: nbdcopy skips the zero ranges.
  std::istringstream ranges(read_file_text(log_file));
  std::uint64_t start = 0, end = 0, served = 0, requests = 0;
  char dash = 0;
  while (ranges >> start >> dash >> end) {
    served += end - start + 1;
    ++requests;
  }
  struct stat st {};
  ASSERT_EQ(stat(image.c_str(), &st), 0);
  EXPECT_GT(requests, 1u);
  EXPECT_LT(served, static_cast<std::uint64_t>(st.st_size));
}

// The library's message for `image`, as `vhdx info` prints it after "vhdx: 'PATH': ".
std::string cli_error_message(const std::string& image) {
  CliRun r = run_vhdx("info " + shell_quote(image));
  EXPECT_NE(r.status, 0) << r.out;
  const std::string prefix = "vhdx: '" + image + "': ";
  EXPECT_EQ(r.err.rfind(prefix, 0), 0u) << r.err;
  std::string message = r.err.substr(std::min(prefix.size(), r.err.size()));
  while (!message.empty() && message.back() == '\n') message.pop_back();
  return message;
}

TEST(NbdkitFilter, NonVhdxFileFailsTheConnectionWithTheLibraryMessage) {
  require_nbd_clients();
  const std::string dir = make_temp_dir();
  const std::string image = dir + "/not.vhdx";
  std::ofstream(image) << std::string(1 << 20, 'x');
  const std::string message = cli_error_message(image);
  EXPECT_NE(message.find("not a VHDX file"), std::string::npos) << message;

  CliRun r = serve_file(image, "nbdcopy \"$uri\" null:");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("vhdx: " + message), std::string::npos) << r.err;
}

TEST(NbdkitFilter, BrokenHeadersFailTheConnectionWithTheLibraryMessage) {
  require_nbd_clients();
  const std::string dir = make_temp_dir();
  const std::string image = dir + "/bad.vhdx";
  vhdx_ok("create -q -o block_size=1M " + shell_quote(image) + " 4M");
  // Garbage after each header's signature: both checksums fail.
  for (const char* offset : {"65544", "131080"}) {
    ASSERT_EQ(run_shell("printf garbage! | dd of=" + shell_quote(image) + " bs=1 seek=" + offset +
                        " conv=notrunc status=none")
                  .status,
              0);
  }
  const std::string message = cli_error_message(image);
  EXPECT_NE(message.find("header"), std::string::npos) << message;
  EXPECT_NE(message.find("checksum"), std::string::npos) << message;

  CliRun r = serve_file(image, "qemu-io -r -f raw \"$nbd\" -c 'read 0 4k'");
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.err.find("vhdx: " + message), std::string::npos) << r.err;
}

TEST(NbdkitFilter, WritesAreRefusedAndTheFileIsUnchanged) {
  require_nbd_clients();
  const std::string dir = make_temp_dir();
  const std::string image = make_patterned_image(dir, 512);
  const FileState before = file_state(image);

  // nbdkit without -r: the filter still makes the export read-only.
  CliRun info = serve_file(image, "nbdinfo --json \"$uri\"", /*read_only=*/false);
  ASSERT_EQ(info.status, 0) << info.err;
  auto doc = nlohmann::json::parse(info.out, nullptr, false);
  ASSERT_TRUE(doc.is_object()) << info.out;
  EXPECT_TRUE(doc.at("exports").at(0).at("is_read_only").get<bool>());

  CliRun write = serve_file(image, "qemu-io -f raw \"$nbd\" -c 'write -P 0x77 0 4k'",
                            /*read_only=*/false);
  EXPECT_NE(write.status, 0) << write.out;
  CliRun write_r = serve_file(image, "qemu-io -r -f raw \"$nbd\" -c 'write -P 0x77 0 4k'",
                              /*read_only=*/false);
  EXPECT_NE(write_r.status, 0) << write_r.out;

  EXPECT_EQ(file_state(image), before);
  CliRun reads = serve_file(image, "qemu-io -r -f raw \"$nbd\" -c 'read -P 0xaa 0 4k'");
  EXPECT_EQ(reads.status, 0) << reads.out << reads.err;
}

TEST(NbdkitFilter, DifferencingImageWithoutParentFailsReadsItCannotServe) {
  require_nbd_clients();
  const std::string image = corpus_image("dissect-differencing/differencing.avhdx.gz");
  // The ranges the child does not hold are holes not known to be zero, so a client reads them
  // (and fails) instead of filling them with zeros.
  CliRun map = serve_file(image, "nbdinfo --map --json \"$uri\"");
  ASSERT_EQ(map.status, 0) << map.err;
  EXPECT_NE(map.out.find("{ \"offset\": 1048576, \"length\": 4096, \"type\": 0,"),
            std::string::npos)
      << map.out;
  auto doc = nlohmann::json::parse(map.out, nullptr, false);
  ASSERT_TRUE(doc.is_array()) << map.out;
  bool saw_data = false, saw_parent_hole = false;
  for (const auto& e : doc) {
    const int type = e.at("type").get<int>();
    EXPECT_TRUE(type == 0 || type == 1) << e.dump();
    saw_data |= type == 0;
    saw_parent_hole |= type == 1;
  }
  EXPECT_TRUE(saw_data);
  EXPECT_TRUE(saw_parent_hole);

  // The map above: the child holds [1 MiB, 1 MiB + 4 KiB); the parent holds what follows.
  CliRun own = serve_file(image, "qemu-io -r -f raw \"$nbd\" -c 'read 1M 4k'");
  EXPECT_EQ(own.status, 0) << own.out << own.err;
  CliRun parents = serve_file(image, "qemu-io -r -f raw \"$nbd\" -c 'read 1052672 4k'");
  EXPECT_NE(parents.status, 0) << parents.out;
  EXPECT_NE(parents.err.find("virtual offset 1052672 is in the parent image"), std::string::npos)
      << parents.err;
  EXPECT_NE(parents.err.find("(unsupported)"), std::string::npos) << parents.err;
}

}  // namespace
}  // namespace vhdx::testing
