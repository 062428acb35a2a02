// Parsing of command-line values shared by the subcommands: sizes with binary suffixes, pattern
// bytes, and the small getopt-style parser behind `vhdx io` commands.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vhdx/error.h"

namespace vhdx::cli {

// A byte count: decimal or 0x-hex digits with an optional suffix k/K, M/m, G/g, T/t, P/p, E/e
// (powers of 1024) or B/b (bytes), as qemu-img accepts. Anything else, or a value above
// 2^64-1, is kInvalidArgument with a message quoting the text.
Result<std::uint64_t> parse_size(std::string_view text);

// A pattern byte as qemu-io takes it: decimal, 0x-hex or 0-octal, 0..255.
Result<std::uint8_t> parse_pattern_byte(std::string_view text);

// Splits a command line into words at blanks; single and double quotes group words, a
// backslash escapes the next character outside single quotes. An unterminated quote is an error.
Result<std::vector<std::string>> split_command_line(std::string_view line);

// getopt-style parsing of a command's words (words[0] is the command name). `spec` lists the
// option letters, a letter followed by ':' takes a value ("P:s:l:qv"). Options may be grouped
// ("-qv") and values attached ("-P0xab") or separate ("-P 0xab"). Parsing stops at "--" or at
// the first word that is not an option; the rest are the operands.
class OptionParser {
 public:
  OptionParser(const std::vector<std::string>& words, std::string_view spec);

  // The next option letter, or 0 when options are done. On an unknown option or a missing
  // value it returns '?' and error() says why.
  char next();
  const std::string& value() const { return value_; }
  const std::string& error() const { return error_; }
  // The operands after the options (valid once next() returned 0).
  std::vector<std::string> operands() const;

 private:
  const std::vector<std::string>& words_;
  std::string spec_;
  std::size_t index_ = 1;  // word being parsed
  std::size_t char_ = 0;   // position inside a group like "-qv"; 0 = start a new word
  std::string value_;
  std::string error_;
};

}  // namespace vhdx::cli
