// Test helpers: the shared corpus of real VHDX files, scratch folders and hashes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace vhdx::testing {

// The corpus folder: $VHDX_CORPUS_DIR, or ../shared/corpus beside the source tree.
std::string corpus_dir();
// Decompresses corpus file `relative` (e.g. "dissect-fixed/fixed.vhdx.gz"; .gz or .bz2) into
// a fresh scratch copy and returns its path. Each call gives a new copy the test may modify.
std::string corpus_image(const std::string& relative);
// A new empty folder under $TMPDIR (or /tmp), removed when the test process exits.
std::string make_temp_dir();
// Runs a shell command; returns its exit status and captures stdout (stderr passes through).
int run_command(const std::string& command, std::string* stdout_text = nullptr);
// Lowercase hex SHA-256 of a byte span / of a whole file.
std::string sha256_hex(std::span<const std::uint8_t> bytes);
std::string sha256_file(const std::string& path);
// Whether a program is on PATH (interop tests skip with a message when a peer is missing,
// except under CI=true, where a missing peer is a failure).
bool have_program(const std::string& name);
// A corpus image whose whole virtual disk has a known SHA-256 (the corpus README's; for the
// image whose log needs replay, the disk after the replay).
struct CorpusContent {
  const char* file;  // for corpus_image()
  const char* content_sha256;
};
// The corpus images that read without a parent: fixed, dynamic, config2_base and the dirty-log
// image.
std::span<const CorpusContent> corpus_contents();
// Path of the built CLI (VHDX_BINARY_DIR/bin/vhdx).
std::string vhdx_cli();

}  // namespace vhdx::testing
