#include "io_commands.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>
#include <thread>

#include "human.h"
#include "parse.h"
#include "render.h"

namespace vhdx::cli {
namespace {

// Reads go through a bounded buffer whatever the requested length.
constexpr std::uint64_t kReadChunk = 1 << 20;
// Map walks ask for block status a window at a time so huge disks stay cheap in memory.
constexpr std::uint64_t kMapWindow = std::uint64_t{1} << 32;

const IoCommand* find_command(std::string_view name);

// "name synopsis -- summary", as qemu-io's help lists commands.
std::string command_line_summary(const IoCommand& command) {
  return fmt::format("{}{}{} -- {}\n", command.name, command.synopsis[0] != '\0' ? " " : "",
                     command.synopsis, command.summary);
}

void print_usage(IoSession& s, const IoCommand& command) {
  s.err << "usage: " << command_line_summary(command);
}

// Checks the operand count; prints why and the usage when it is wrong.
bool expect_operands(IoSession& s, const IoCommand& command,
                     const std::vector<std::string>& operands, std::size_t count) {
  if (operands.size() == count) return true;
  s.err << fmt::format("{}: expected {} argument{}, got {}\n", command.name, count,
                       count == 1 ? "" : "s", operands.size());
  print_usage(s, command);
  return false;
}

// Runs an OptionParser to the end, calling `on_option(letter, value)`; false on a bad option.
template <typename OnOption>
bool parse_options(IoSession& s, const IoCommand& command, const std::vector<std::string>& words,
                   std::string_view spec, std::vector<std::string>* operands, OnOption on_option) {
  OptionParser parser(words, spec);
  while (char letter = parser.next()) {
    if (letter == '?') {
      s.err << fmt::format("{}: {}\n", command.name, parser.error());
      print_usage(s, command);
      return false;
    }
    if (!on_option(letter, parser.value())) return false;
  }
  *operands = parser.operands();
  return true;
}

// The two qemu-io statistics lines after a transfer (or the -C one-line form).
void print_report(IoSession& s, const char* op, std::uint64_t offset, std::uint64_t bytes,
                  double seconds, bool machine) {
  double rate = seconds > 0 ? static_cast<double>(bytes) / seconds : 0.0;
  double ops = seconds > 0 ? 1.0 / seconds : 0.0;
  if (machine) {
    auto whole = static_cast<std::uint64_t>(seconds);
    std::string time =
        fmt::format("{}:{:02}:{:05.2f}", whole / 3600, (whole / 60) % 60,
                    static_cast<double>(whole % 60) + (seconds - static_cast<double>(whole)));
    s.out << fmt::format("{},1,{},{:.3f},{:.3f}\n", bytes, time, rate, ops);
    return;
  }
  s.out << fmt::format("{} {}/{} bytes at offset {}\n", op, bytes, bytes, offset);
  s.out << fmt::format("{}, 1 ops; {} ({}/sec and {:.4f} ops/sec)\n",
                       io_size(static_cast<double>(bytes)), io_time(seconds), io_size(rate), ops);
}

Result<std::uint64_t> size_operand(const std::string& text) { return parse_size(text); }

// [offset, offset+length) must lie inside the disk.
Result<void> check_range(IoSession& s, std::uint64_t offset, std::uint64_t length) {
  std::uint64_t size = s.target.info().virtual_size;
  if (offset > size || length > size - offset) {
    return Error(ErrorCode::kOutOfRange,
                 fmt::format("offset {} + length {} is beyond the end of the disk ({} bytes)",
                             offset, length, size));
  }
  return ok();
}

bool cmd_read(IoSession& s, const std::vector<std::string>& words) {
  const IoCommand& self = *find_command("read");
  std::optional<std::uint8_t> pattern;
  std::optional<std::uint64_t> pattern_start;
  std::optional<std::uint64_t> pattern_length;
  bool quiet = false;
  bool verbose = false;
  bool machine = false;
  std::vector<std::string> operands;
  bool parsed = parse_options(
      s, self, words, "CP:s:l:pqvb", &operands, [&](char letter, const std::string& value) {
        switch (letter) {
          case 'C':
            machine = true;
            return true;
          case 'p':
            return true;  // accepted and ignored, as by qemu-io
          case 'q':
            quiet = true;
            return true;
          case 'v':
            verbose = true;
            return true;
          case 'b':
            s.err << "read: -b: VHDX images have no VM state\n";
            return false;
          case 'P': {
            auto byte = parse_pattern_byte(value);
            if (!byte) {
              s.err << "read: " << byte.error().message() << "\n";
              return false;
            }
            pattern = *byte;
            return true;
          }
          case 's':
          case 'l': {
            auto n = size_operand(value);
            if (!n) {
              s.err << fmt::format("read: -{}: {}\n", letter, n.error().message());
              return false;
            }
            (letter == 's' ? pattern_start : pattern_length) = *n;
            return true;
          }
        }
        return false;
      });
  if (!parsed || !expect_operands(s, self, operands, 2)) return false;
  auto offset = size_operand(operands[0]);
  auto length = size_operand(operands[1]);
  for (auto* r : {&offset, &length}) {
    if (!*r) {
      s.err << "read: " << r->error().message() << "\n";
      return false;
    }
  }
  if (!pattern && (pattern_start || pattern_length)) {
    s.err << "read: -s and -l need -P\n";
    print_usage(s, self);
    return false;
  }
  // The verified range, relative to the start of the read.
  std::uint64_t verify_start = pattern_start.value_or(0);
  std::uint64_t verify_end = *length;
  if (verify_start > *length) {
    s.err << "read: pattern verification range exceeds end of read data\n";
    return false;
  }
  if (pattern_length) {
    if (*pattern_length > *length - verify_start) {
      s.err << "read: pattern verification range exceeds end of read data\n";
      return false;
    }
    verify_end = verify_start + *pattern_length;
  }
  if (auto r = check_range(s, *offset, *length); !r) {
    s.err << "read failed: " << r.error().to_string() << "\n";
    return false;
  }

  std::vector<std::uint8_t> buffer(std::min(*length, kReadChunk));
  std::optional<std::uint64_t> mismatch;  // relative to the read start
  std::string dump;
  auto begin = std::chrono::steady_clock::now();
  for (std::uint64_t done = 0; done < *length;) {
    std::uint64_t n = std::min<std::uint64_t>(buffer.size(), *length - done);
    std::span<std::uint8_t> chunk(buffer.data(), n);
    if (auto r = s.target.read(*offset + done, chunk); !r) {
      s.err << "read failed: " << r.error().to_string() << "\n";
      return false;
    }
    if (pattern && !mismatch) {
      std::uint64_t from = std::max(done, verify_start);
      std::uint64_t to = std::min(done + n, verify_end);
      for (std::uint64_t i = from; i < to; ++i) {
        if (buffer[i - done] != *pattern) {
          mismatch = i;
          break;
        }
      }
    }
    if (verbose && !quiet) dump += hex_dump(*offset + done, chunk);
    done += n;
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  if (mismatch) {
    // qemu-io names the verified range; this names it from the first differing byte on.
    s.out << fmt::format("Pattern verification failed at offset {}, {} bytes\n",
                         *offset + *mismatch, verify_end - *mismatch);
  }
  if (!quiet) {
    s.out << dump;
    print_report(s, "read", *offset, *length, seconds, machine);
  }
  return !mismatch;
}

// Parses the two "off len" operands of a transfer command and checks they lie inside the disk.
bool range_operands(IoSession& s, const IoCommand& self, const std::vector<std::string>& operands,
                    std::uint64_t* offset, std::uint64_t* length) {
  if (!expect_operands(s, self, operands, 2)) return false;
  auto off = size_operand(operands[0]);
  auto len = size_operand(operands[1]);
  for (auto* r : {&off, &len}) {
    if (!*r) {
      s.err << self.name << ": " << r->error().message() << "\n";
      return false;
    }
  }
  if (auto r = check_range(s, *off, *len); !r) {
    s.err << self.name << " failed: " << r.error().to_string() << "\n";
    return false;
  }
  *offset = *off;
  *length = *len;
  return true;
}

// The data of a `write -s` file: its first `period` bytes (the whole file, or as much of it as
// the write covers) repeat from the start of the write, as in qemu-io. The file is read piece by
// piece as the write goes, so a large source costs no more memory than the write buffer.
class SourcePattern {
 public:
  static Result<SourcePattern> open(const std::string& path, std::uint64_t length) {
    SourcePattern source;
    source.path_ = path;
    source.in_.open(path, std::ios::binary | std::ios::ate);
    if (!source.in_) return Error(ErrorCode::kIo, fmt::format("cannot open source file {}", path));
    const std::streamoff size = source.in_.tellg();
    if (size < 0) return Error(ErrorCode::kIo, fmt::format("cannot read source file {}", path));
    if (size == 0 && length > 0)
      return Error(ErrorCode::kIo, fmt::format("source file {} is empty", path));
    source.period_ = std::min(static_cast<std::uint64_t>(size), length);
    return source;
  }

  // Fills `out` with the bytes for the write's bytes [position, position + out.size()).
  Result<void> fill(std::uint64_t position, std::span<std::uint8_t> out) {
    std::uint64_t at = position % period_;
    for (std::size_t done = 0; done < out.size();) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(out.size() - done, period_ - at));
      in_.clear();
      in_.seekg(static_cast<std::streamoff>(at));
      in_.read(reinterpret_cast<char*>(out.data() + done), static_cast<std::streamsize>(n));
      if (static_cast<std::size_t>(in_.gcount()) != n)
        return Error(ErrorCode::kIo, fmt::format("cannot read source file {}", path_));
      done += n;
      at = 0;
    }
    return ok();
  }

 private:
  std::ifstream in_;
  std::uint64_t period_ = 0;
  std::string path_;
};

bool cmd_write(IoSession& s, const std::vector<std::string>& words) {
  const IoCommand& self = *find_command("write");
  std::uint8_t pattern = 0xcd;  // qemu-io's default fill
  bool have_pattern = false;
  std::optional<std::string> source;
  bool zero = false;
  bool unmap = false;
  bool fua = false;
  bool quiet = false;
  bool machine = false;
  std::vector<std::string> operands;
  bool parsed = parse_options(s, self, words, "bcCfnpP:qs:uz", &operands,
                              [&](char letter, const std::string& value) {
                                switch (letter) {
                                  case 'b':
                                    s.err << "write: -b: VHDX images have no VM state\n";
                                    return false;
                                  case 'c':
                                    s.err << "write: -c: VHDX images have no compressed clusters\n";
                                    return false;
                                  case 'C':
                                    machine = true;
                                    return true;
                                  case 'f':
                                    fua = true;
                                    return true;
                                  case 'n':  // zero writes never fall back to a slow path here
                                  case 'p':  // accepted and ignored, as by qemu-io
                                    return true;
                                  case 'q':
                                    quiet = true;
                                    return true;
                                  case 'u':
                                    unmap = true;
                                    return true;
                                  case 'z':
                                    zero = true;
                                    return true;
                                  case 's':
                                    source = value;
                                    return true;
                                  case 'P': {
                                    auto byte = parse_pattern_byte(value);
                                    if (!byte) {
                                      s.err << "write: " << byte.error().message() << "\n";
                                      return false;
                                    }
                                    pattern = *byte;
                                    have_pattern = true;
                                    return true;
                                  }
                                }
                                return false;
                              });
  if (!parsed) return false;
  if (zero && (have_pattern || source)) {
    s.err << "write: -z supports neither -P nor -s\n";
    print_usage(s, self);
    return false;
  }
  if (have_pattern && source) {
    s.err << "write: -P and -s cannot be used together\n";
    print_usage(s, self);
    return false;
  }
  if (unmap && !zero) {
    s.err << "write: -u requires -z\n";
    print_usage(s, self);
    return false;
  }
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  if (!range_operands(s, self, operands, &offset, &length)) return false;
  std::optional<SourcePattern> fill;
  if (source) {
    auto opened = SourcePattern::open(*source, length);
    if (!opened) {
      s.err << "write: " << opened.error().message() << "\n";
      return false;
    }
    fill = std::move(*opened);
  }

  auto begin = std::chrono::steady_clock::now();
  if (zero) {
    // discard guarantees the range reads back as zeros, which is what a zero write promises.
    if (auto r = s.target.discard(offset, length, unmap); !r) {
      s.err << "write failed: " << r.error().to_string() << "\n";
      return false;
    }
  } else {
    std::vector<std::uint8_t> buffer(std::min(length, kReadChunk), pattern);
    for (std::uint64_t done = 0; done < length;) {
      std::uint64_t n = std::min<std::uint64_t>(buffer.size(), length - done);
      if (fill) {
        if (auto r = fill->fill(done, {buffer.data(), n}); !r) {
          s.err << "write: " << r.error().message() << "\n";
          return false;
        }
      }
      if (auto r = s.target.write(offset + done, {buffer.data(), n}); !r) {
        s.err << "write failed: " << r.error().to_string() << "\n";
        return false;
      }
      done += n;
    }
  }
  if (fua) {
    if (auto r = s.target.flush(); !r) {
      s.err << "write failed: " << r.error().to_string() << "\n";
      return false;
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  if (!quiet) print_report(s, "wrote", offset, length, seconds, machine);
  return true;
}

bool cmd_discard(IoSession& s, const std::vector<std::string>& words) {
  const IoCommand& self = *find_command("discard");
  bool quiet = false;
  bool machine = false;
  std::vector<std::string> operands;
  bool parsed =
      parse_options(s, self, words, "Cq", &operands, [&](char letter, const std::string&) {
        (letter == 'C' ? machine : quiet) = true;
        return true;
      });
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  if (!parsed || !range_operands(s, self, operands, &offset, &length)) return false;
  auto begin = std::chrono::steady_clock::now();
  if (auto r = s.target.discard(offset, length, /*unmap=*/true); !r) {
    s.err << "discard failed: " << r.error().to_string() << "\n";
    return false;
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  if (!quiet) print_report(s, "discard", offset, length, seconds, machine);
  return true;
}

bool cmd_flush(IoSession& s, const std::vector<std::string>& words) {
  if (!expect_operands(s, *find_command("flush"), {words.begin() + 1, words.end()}, 0)) {
    return false;
  }
  if (auto r = s.target.flush(); !r) {
    s.err << "flush failed: " << r.error().to_string() << "\n";
    return false;
  }
  return true;
}

bool cmd_sleep(IoSession& s, const std::vector<std::string>& words) {
  const IoCommand& self = *find_command("sleep");
  std::vector<std::string> operands(words.begin() + 1, words.end());
  if (!expect_operands(s, self, operands, 1)) return false;
  auto ms = size_operand(operands[0]);
  // An hour is far beyond any test's need; the bound keeps a typo from hanging a script.
  constexpr std::uint64_t kMaxSleepMs = 3600 * 1000;
  if (!ms || *ms > kMaxSleepMs) {
    s.err << fmt::format("sleep: invalid milliseconds value '{}'\n", operands[0]);
    return false;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(*ms));
  return true;
}

bool cmd_map(IoSession& s, const std::vector<std::string>& words) {
  const IoCommand& self = *find_command("map");
  if (!expect_operands(s, self, {words.begin() + 1, words.end()}, 0)) return false;
  const ImageInfo& info = s.target.info();
  // qemu-io's map speaks only of allocation: anything this image describes is allocated.
  struct Run {
    std::uint64_t start, length;
    bool allocated;
  };
  std::optional<Run> run;
  auto print = [&](const Run& r) {
    s.out << fmt::format("{} ({:#x}) bytes {} allocated at offset {} ({:#x})\n",
                         io_size(static_cast<double>(r.length)), r.length,
                         r.allocated ? "   " : "not", io_size(static_cast<double>(r.start)),
                         r.start);
  };
  auto result = walk_map(
      [&](std::uint64_t off, std::uint64_t len) { return s.target.block_status(off, len); }, 0,
      info.virtual_size, info.type == DiskType::kDifferencing, kMapWindow,
      [&](const MapEntry& e) {
        // A parent's ranges are not allocated in this image.
        const bool allocated = e.present && e.depth == 0;
        if (run && run->allocated == allocated) {
          run->length += e.length;
          return;
        }
        if (run) print(*run);
        run = Run{e.start, e.length, allocated};
      });
  if (!result) {
    s.err << "map failed: " << result.error().to_string() << "\n";
    return false;
  }
  if (run) print(*run);
  return true;
}

bool cmd_length(IoSession& s, const std::vector<std::string>& words) {
  if (!expect_operands(s, *find_command("length"), {words.begin() + 1, words.end()}, 0)) {
    return false;
  }
  s.out << io_size(static_cast<double>(s.target.info().virtual_size)) << "\n";
  return true;
}

bool cmd_info(IoSession& s, const std::vector<std::string>& words) {
  if (!expect_operands(s, *find_command("info"), {words.begin() + 1, words.end()}, 0)) {
    return false;
  }
  const ImageInfo& info = s.target.info();
  const char* type = info.type == DiskType::kFixed     ? "fixed"
                     : info.type == DiskType::kDynamic ? "dynamic"
                                                       : "differencing";
  s.out << "format name: vhdx\n";
  s.out << "cluster size: " << io_size(info.block_size) << "\n";
  s.out << "Format specific information:\n";
  s.out << "    type: " << type << "\n";
  s.out << "    logical sector size: " << info.logical_sector_size << "\n";
  s.out << "    physical sector size: " << info.physical_sector_size << "\n";
  s.out << "    log: " << (info.log_state == LogState::kNeedsReplay ? "needs replay" : "empty")
        << "\n";
  s.out << "    creator: " << info.creator << "\n";
  return true;
}

bool cmd_help(IoSession& s, const std::vector<std::string>& words) {
  if (words.size() > 2) {
    return expect_operands(s, *find_command("help"), {words.begin() + 1, words.end()}, 1);
  }
  if (words.size() == 2) {
    const IoCommand* command = find_command(words[1]);
    if (command == nullptr) {
      s.err << fmt::format("command \"{}\" not found\n", words[1]);
      return false;
    }
    s.out << command_line_summary(*command);
    if (command->details[0] != '\0') s.out << "\n" << command->details;
    return true;
  }
  s.out << io_command_list() << "\nUse 'help commandname' for extended help.\n";
  return true;
}

bool cmd_quit(IoSession& s, const std::vector<std::string>& words) {
  if (!expect_operands(s, *find_command("quit"), {words.begin() + 1, words.end()}, 0)) {
    return false;
  }
  s.quit = true;
  return true;
}

constexpr IoCommand kCommands[] = {
    {"discard", "d", "[-Cq] off len", "discards a number of bytes at a specified offset",
     " discards a range of bytes from the given offset; it reads back as zeros\n"
     "\n"
     " Example:\n"
     " 'discard 512 1k' - discards 1 kilobyte from 512 bytes into the file\n"
     "\n"
     " Whole blocks of a dynamic image are released (unmapped); the rest is zero-filled.\n"
     " -C, -- report statistics in a machine parsable format\n"
     " -q, -- quiet mode, do not show I/O statistics\n",
     true, cmd_discard},
    {"flush", "f", "", "flush all in-core file state to disk", "", true, cmd_flush},
    {"help", "?", "[command]", "help for one or all commands", "", false, cmd_help},
    {"info", "i", "", "prints information about the current file", "", false, cmd_info},
    {"length", "len", "", "gets the length of the current file", "", false, cmd_length},
    {"map", nullptr, "", "prints the allocated areas of a file", "", false, cmd_map},
    {"quit", "q", "", "exit the program", "", false, cmd_quit},
    {"read", "r", "[-Cqv] [-P pattern [-s off] [-l len]] off len",
     "reads a number of bytes at a specified offset",
     " reads a range of bytes from the given offset\n"
     "\n"
     " Example:\n"
     " 'read -v 512 1k' - dumps 1 kilobyte read from 512 bytes into the file\n"
     "\n"
     " Offsets and lengths take k, M, G, T suffixes (powers of 1024).\n"
     " -C, -- report statistics in a machine parsable format\n"
     " -l, -- length for pattern verification (only with -P)\n"
     " -p, -- ignored for backwards compatibility\n"
     " -P, -- use a pattern to verify read data; the command fails on the first byte that\n"
     "        differs and names its offset\n"
     " -q, -- quiet mode, do not show I/O statistics\n"
     " -s, -- start offset for pattern verification (only with -P)\n"
     " -v, -- dump buffer to standard output\n",
     false, cmd_read},
    {"sleep", nullptr, "ms", "waits for the given value in milliseconds", "", false, cmd_sleep},
    {"write", "w", "[-Cfquz] [-P pattern | -s source_file] off len",
     "writes a number of bytes at a specified offset",
     " writes a range of bytes from the given offset\n"
     "\n"
     " Example:\n"
     " 'write 512 1k' - writes 1 kilobyte at 512 bytes into the open file\n"
     "\n"
     " Writes a buffer filled with a set pattern (0xcd unless -P says otherwise).\n"
     " Offsets and lengths take k, M, G, T suffixes (powers of 1024).\n"
     " -C, -- report statistics in a machine parsable format\n"
     " -f, -- flush after the write (Force Unit Access)\n"
     " -n, -- ignored: zero writes never fall back to a slow path\n"
     " -p, -- ignored for backwards compatibility\n"
     " -P, -- use different pattern to fill file\n"
     " -q, -- quiet mode, do not show I/O statistics\n"
     " -s, -- fill the write from a file, its bytes repeated as needed\n"
     " -u, -- with -z, allow whole blocks to be unmapped\n"
     " -z, -- write zeroes (the range reads back as zeros)\n",
     true, cmd_write},
};

const IoCommand* find_command(std::string_view name) {
  for (const IoCommand& command : kCommands) {
    if (name == command.name || (command.alias != nullptr && name == command.alias)) {
      return &command;
    }
  }
  return nullptr;
}

}  // namespace

std::span<const IoCommand> io_commands() { return kCommands; }

bool run_io_command(IoSession& session, const std::string& line) {
  auto words = split_command_line(line);
  if (!words) {
    session.err << words.error().message() << "\n";
    return false;
  }
  if (words->empty()) return true;  // a blank line, as at an interactive prompt
  const IoCommand* command = find_command((*words)[0]);
  if (command == nullptr) {
    session.err << fmt::format("command \"{}\" not found\n", (*words)[0]);
    return false;
  }
  if (command->needs_write && !session.target.writable()) {
    session.err << fmt::format("{}: Block node is read-only (the image was opened with -r)\n",
                               command->name);
    return false;
  }
  return command->run(session, *words);
}

std::string io_command_list() {
  std::string text;
  for (const IoCommand& command : kCommands) text += command_line_summary(command);
  return text;
}

}  // namespace vhdx::cli
