#include "corruption/catalogue.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "guarantees/guarantee_util.h"
#include "support/cli_run.h"
#include "support/corpus.h"
#include "support/image_builder.h"

namespace vhdx::testing {
namespace {

using guarantees::file_state;

// The CLI runs under this address-space limit: every image here has at most a few MiB of
// metadata, so a command needing more is allocating out of proportion to the image.
constexpr std::uint64_t kCliAddressSpaceKiB = 512 * 1024;
// The child running every case (it builds the images in memory too).
constexpr std::uint64_t kCasesAddressSpaceKiB = 512 * 1024;

constexpr char kSeparator = '\x1f';
const char* const kRowsVariable = "VHDX_CATALOGUE_ROWS";
const char* const kDocPath = VHDX_SOURCE_DIR "/docs/corruption-catalogue.md";

bool sanitized() {
#if defined(VHDX_CATALOGUE_SANITIZED)
  return true;
#else
  return false;
#endif
}

std::string current_test() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return info ? info->name() : "?";
}

struct LibraryNote {
  std::string test;
  std::string text;
};
LibraryNote& library_note() {
  static LibraryNote note;
  return note;
}

std::string first_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (std::size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
}

// One CLI verdict: "exit N" and the message a user sees first. For `vhdx info` that opened
// the image: what it says about a dirty log and unavailable block counts. For `vhdx check`: its
// first ERROR line, else its first Warning line, or its leak summary.
enum class Command { kInfo, kCheck };
std::string cli_verdict(const CliRun& run, const std::string& path, Command command) {
  std::vector<std::string> notes;
  if (!run.err.empty()) notes.push_back(first_line(run.err));
  std::istringstream lines(run.out);
  std::string first_warning;
  for (std::string line; std::getline(lines, line) && notes.empty();) {
    if (command == Command::kCheck) {
      if (line.rfind("ERROR:", 0) == 0 ||
          (run.status == 3 && line.find("leaked clusters") != std::string::npos))
        notes.push_back(first_line(line));
      if (line.rfind("Warning:", 0) == 0 && first_warning.empty()) first_warning = line;
      continue;
    }
    if (line.rfind("log:", 0) == 0 && line.find("needs replay") != std::string::npos) {
      // "log: needs replay (guid G, offset O, length L), N entries, ...": keep the state and
      // what follows the parenthesis.
      std::string note = "log: needs replay";
      const std::size_t close = line.find(')');
      if (close != std::string::npos) note += line.substr(close + 1);
      notes.push_back(first_line(note));
    }
  }
  if (notes.empty() && !first_warning.empty()) notes.push_back(first_line(first_warning));
  if (command == Command::kInfo && run.status == 0) {
    std::istringstream again(run.out);
    for (std::string line; std::getline(again, line);)
      if (line.rfind("blocks:", 0) == 0) {
        std::string value = line.substr(7);
        value.erase(0, value.find_first_not_of(' '));
        notes.push_back("blocks: " + first_line(value));
      }
  }
  std::string verdict = "exit " + std::to_string(run.status);
  for (std::size_t i = 0; i < notes.size(); ++i) verdict += (i ? "; " : ": ") + notes[i];
  replace_all(verdict, path, "IMAGE");
  return verdict;
}

std::string cell(std::string text) {
  replace_all(text, "|", "\\|");
  replace_all(text, "\n", " ");
  return text;
}

std::string code_cell(const std::string& text) {
  if (text.empty() || text == "-") return "-";
  return "`" + cell(text) + "`";
}

struct Row {
  std::string id, area, fault, outcome, library, info, check;
};

std::vector<Row> read_rows(const std::string& path) {
  std::vector<Row> rows;
  std::ifstream in(path, std::ios::binary);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> f;
    std::string field;
    std::istringstream parts(line);
    while (std::getline(parts, field, kSeparator)) f.push_back(field);
    if (f.size() != 7) {
      ADD_FAILURE() << "bad catalogue row: " << line;
      continue;
    }
    rows.push_back({f[0], f[1], f[2], f[3], f[4], f[5], f[6]});
  }
  return rows;
}

const char* const kAreas[] = {"file",     "header", "log",           "region table",
                              "metadata", "BAT",    "sector bitmap", "parent locator"};

std::size_t area_rank(const std::string& area) {
  for (std::size_t i = 0; i < std::size(kAreas); ++i)
    if (area == kAreas[i]) return i;
  return std::size(kAreas);
}

// The table groups cases by area, in test order within an area.
std::string render(std::vector<Row> rows) {
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return area_rank(a.area) < area_rank(b.area);
  });
  std::ostringstream md;
  md << "# Corruption catalogue\n\n"
        "<!-- Generated by tests/corruption (CorruptionCatalogue.MatchesDocs); do not edit by "
        "hand. Regenerate: VHDX_UPDATE_CATALOGUE=1 build/tests/corruption_test "
        "--gtest_filter=CorruptionCatalogue.* -->\n\n"
        "Every damaged image the test suite builds, one per fault. Each is made at test time by "
        "`tests/support/image_builder` (Windows layout: log at 1 MiB, metadata at 2 MiB, BAT at "
        "3 MiB, payload from 4 MiB; unless the fault says otherwise the image is dynamic, 8 MiB, "
        "1 MiB blocks, 512-byte sectors; differencing cases use the same geometry with a parent "
        "locator), damaged, and then:\n\n"
        "- opened read-only with `Image::open` on a file and `Image::open_file` on a memory file "
        "(the two must agree), and for log cases also opened read-write; the test asserts the "
        "outcome below: an error code with a phrase of its message, or exact bytes read;\n"
        "- checked unchanged (SHA-256, size, mtime) after every read-only open, `vhdx info` and "
        "`vhdx check`; after a read-write open that fails, checked unchanged too (the log is "
        "validated before the first header update);\n"
        "- run through `vhdx info` and `vhdx check` under a 512 MiB address-space limit (the "
        "images hold at most a few MiB of metadata), which must end in an exit status, never a "
        "signal.\n\n"
        "The check that this table is current runs all cases in one child process under a 512 MiB "
        "address-space limit too (sanitizer builds run without the limits).\n\n"
        "Columns: **Library error** is the first error the library returned in the case (open, "
        "read, block status or block count), as the memory-file open words it; **vhdx info** "
        "and **vhdx check** are the exit status and first message of the command line tool "
        "(`IMAGE` stands for the file's path; for an image `vhdx info` opens, what it says of a "
        "dirty log and of block counts it could not make; for `vhdx check`, its first ERROR line, "
        "else its first Warning line, or its leak summary). `vhdx check` exits 0 when it finds "
        "nothing or only warnings (one header torn beside a valid one), 1 when it cannot check, "
        "2 when it finds corruption, 3 when it finds only leaked space.\n\n"
        "Codes: **corrupt** = kCorrupt, **unsupported** = kUnsupported, **not-vhdx** = "
        "kNotVhdx, **needs-log-replay** = kNeedsLogReplay.\n\n";
  std::map<std::string, int> counts;
  for (const Row& r : rows) ++counts[r.area];
  md << "| Area | Cases |\n|---|---|\n";
  for (const char* area : kAreas) md << "| " << area << " | " << counts[area] << " |\n";
  md << "| **total** | " << rows.size() << " |\n\n";
  md << "| # | Case | Area | Fault | Expected outcome | Library error | `vhdx info` | "
        "`vhdx check` |\n|---|---|---|---|---|---|---|---|\n";
  int n = 0;
  for (const Row& r : rows) {
    md << "| " << ++n << " | " << r.id << " | " << r.area << " | " << cell(r.fault) << " | "
       << cell(r.outcome) << " | " << code_cell(r.library) << " | " << code_cell(r.info) << " | "
       << code_cell(r.check) << " |\n";
  }
  return md.str();
}

std::string self_path() {
  std::vector<char> buf(4096);
  ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) return {};
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

}  // namespace

void note_library_error(const Error& error) {
  LibraryNote& note = library_note();
  if (note.test == current_test() && !note.text.empty()) return;
  note.test = current_test();
  note.text = std::string(error_code_name(error.code())) + ": " + error.message();
}

void catalogue(const std::vector<std::uint8_t>& image, const std::string& area,
               const std::string& fault, const std::string& outcome) {
  bool known_area = false;
  for (const char* a : kAreas) known_area = known_area || area == a;
  EXPECT_TRUE(known_area) << "unknown catalogue area " << area;

  const std::string path = make_temp_dir() + "/" + current_test() + ".vhdx";
  ASSERT_TRUE(write_bytes_file(path, image));
  const auto before = file_state(path);
  const std::string limit = sanitized() ? "" : "ulimit -v " + std::to_string(kCliAddressSpaceKiB);
  auto info = run_vhdx("info " + shell_quote(path), limit);
  auto check = run_vhdx("check " + shell_quote(path), limit);
  EXPECT_TRUE(info.status == 0 || info.status == 1) << "vhdx info exited " << info.status << "\n"
                                                    << info.err;
  EXPECT_TRUE(check.status >= 0 && check.status <= 3)
      << "vhdx check exited " << check.status << "\n"
      << check.err;
  for (const auto* run : {&info, &check}) {
    EXPECT_EQ(run->err.find("AddressSanitizer"), std::string::npos) << run->err;
    EXPECT_EQ(run->err.find("bad_alloc"), std::string::npos) << run->err;
  }
  EXPECT_TRUE(file_state(path) == before) << "vhdx info/check changed " << path;

  const LibraryNote& note = library_note();
  const std::string library = note.test == current_test() ? note.text : "";
  const char* rows_path = std::getenv(kRowsVariable);
  if (rows_path == nullptr || *rows_path == '\0') return;
  std::ofstream out(rows_path, std::ios::app | std::ios::binary);
  const std::string fields[] = {current_test(),
                                area,
                                fault,
                                outcome,
                                library.empty() ? "-" : library,
                                cli_verdict(info, path, Command::kInfo),
                                cli_verdict(check, path, Command::kCheck)};
  for (std::size_t i = 0; i < std::size(fields); ++i) {
    std::string f = fields[i];
    for (char& c : f)
      if (c == kSeparator || c == '\n') c = ' ';
    out << (i ? std::string(1, kSeparator) : "") << f;
  }
  out << "\n";
}

namespace {

// Runs every case in a child (bounded address space), builds the table from the rows they
// write, and compares it with the committed document.
TEST(CorruptionCatalogue, MatchesDocs) {
  const std::string self = self_path();
  ASSERT_FALSE(self.empty());
  const std::string dir = make_temp_dir();
  const std::string rows_path = dir + "/rows";
  const std::string log_path = dir + "/cases.log";
  std::string command = std::string(kRowsVariable) + "=" + shell_quote(rows_path) + " " +
                        shell_quote(self) + " --gtest_filter='Corruption.*' > " +
                        shell_quote(log_path) + " 2>&1";
  if (!sanitized()) command = "ulimit -v " + std::to_string(kCasesAddressSpaceKiB) + "; " + command;
  const int status = run_command("sh -c " + shell_quote(command));
  ASSERT_EQ(status, 0) << "the cases failed in the child; its output:\n"
                       << read_file_text(log_path);

  const std::vector<Row> rows = read_rows(rows_path);
  EXPECT_GE(rows.size(), 60u);
  const std::string table = render(rows);
  const std::string observed = std::string(VHDX_BINARY_DIR) + "/corruption-catalogue.md";
  std::ofstream(observed, std::ios::binary) << table;

  const char* update = std::getenv("VHDX_UPDATE_CATALOGUE");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream(kDocPath, std::ios::binary) << table;
    std::cout << "rewrote " << kDocPath << "\n";
    return;
  }
  const std::string committed = read_file_text(kDocPath);
  std::string differences;
  if (committed != table) {
    std::istringstream want(committed), got(table);
    std::string a, b;
    int shown = 0;
    for (int line = 1; shown < 5; ++line) {
      const bool more_a = static_cast<bool>(std::getline(want, a));
      const bool more_b = static_cast<bool>(std::getline(got, b));
      if (!more_a && !more_b) break;
      if (more_a && more_b && a == b) continue;
      differences += "line " + std::to_string(line) + ":\n  doc:  " + (more_a ? a : "(end)") +
                     "\n  seen: " + (more_b ? b : "(end)") + "\n";
      ++shown;
    }
  }
  EXPECT_TRUE(committed == table)
      << differences << "docs/corruption-catalogue.md differs from what the cases show ("
      << observed << "). Review `diff " << kDocPath << " " << observed
      << "`, then regenerate: VHDX_UPDATE_CATALOGUE=1 " << self
      << " --gtest_filter=CorruptionCatalogue.*";
}

}  // namespace
}  // namespace vhdx::testing
