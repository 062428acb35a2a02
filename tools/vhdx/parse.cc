#include "parse.h"

#include <fmt/format.h>

#include <cctype>
#include <limits>

namespace vhdx::cli {
namespace {

Error bad_size(std::string_view text) {
  return Error(ErrorCode::kInvalidArgument,
               fmt::format("invalid size '{}': expected a byte count with an optional k, M, G, "
                           "T, P or E suffix (powers of 1024)",
                           text));
}

// Parses digits in `base` into *out; false on no digits, a bad digit or overflow.
bool parse_digits(std::string_view digits, unsigned base, std::uint64_t* out, bool* overflow) {
  if (digits.empty()) return false;
  std::uint64_t value = 0;
  for (char c : digits) {
    unsigned digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<unsigned>(c - '0');
    } else if (base == 16 && std::isxdigit(static_cast<unsigned char>(c))) {
      digit = static_cast<unsigned>(std::tolower(static_cast<unsigned char>(c)) - 'a' + 10);
    } else {
      return false;
    }
    if (digit >= base) return false;
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / base) {
      *overflow = true;
      return false;
    }
    value = value * base + digit;
  }
  *out = value;
  return true;
}

}  // namespace

Result<std::uint64_t> parse_size(std::string_view text) {
  std::string_view rest = text;
  unsigned base = 10;
  if (rest.size() > 2 && rest[0] == '0' && (rest[1] == 'x' || rest[1] == 'X')) {
    base = 16;
    rest.remove_prefix(2);
  }
  // The suffix is the last character when it is a letter that is not a hex digit (or, in
  // decimal, any letter).
  unsigned shift = 0;
  if (!rest.empty()) {
    char last = static_cast<char>(std::toupper(static_cast<unsigned char>(rest.back())));
    bool is_suffix = true;
    switch (last) {
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
      case 'T':
        shift = 40;
        break;
      case 'P':
        shift = 50;
        break;
      case 'E':
        shift = base == 16 ? 0 : 60;
        is_suffix = base != 16;
        break;
      case 'B':
        shift = 0;
        is_suffix = base != 16;
        break;
      default:
        is_suffix = false;
        break;
    }
    if (is_suffix) rest.remove_suffix(1);
  }
  std::uint64_t value = 0;
  bool overflow = false;
  if (!parse_digits(rest, base, &value, &overflow)) {
    if (overflow) {
      return Error(ErrorCode::kInvalidArgument, fmt::format("size '{}' is too large", text));
    }
    return bad_size(text);
  }
  if (shift != 0 && value > (std::numeric_limits<std::uint64_t>::max() >> shift)) {
    return Error(ErrorCode::kInvalidArgument, fmt::format("size '{}' is too large", text));
  }
  return value << shift;
}

Result<std::uint8_t> parse_pattern_byte(std::string_view text) {
  std::string_view digits = text;
  unsigned base = 10;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    base = 16;
    digits.remove_prefix(2);
  } else if (digits.size() > 1 && digits[0] == '0') {
    base = 8;
    digits.remove_prefix(1);
  }
  std::uint64_t value = 0;
  bool overflow = false;
  if (!parse_digits(digits, base, &value, &overflow) || value > 0xff) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("'{}' is not a valid pattern byte (0..255, 0x00..0xff)", text));
  }
  return static_cast<std::uint8_t>(value);
}

Result<std::vector<std::string>> split_command_line(std::string_view line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quote != 0) {
      if (c == quote) {
        quote = 0;
      } else if (c == '\\' && quote == '"' && i + 1 < line.size()) {
        word += line[++i];
      } else {
        word += c;
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < line.size()) {
      word += line[++i];
      in_word = true;
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (quote != 0) {
    return Error(
        ErrorCode::kInvalidArgument,
        fmt::format("unterminated {} quote in '{}'", quote == '"' ? "double" : "single", line));
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

OptionParser::OptionParser(const std::vector<std::string>& words, std::string_view spec)
    : words_(words), spec_(spec) {}

char OptionParser::next() {
  value_.clear();
  if (char_ == 0) {
    if (index_ >= words_.size()) return 0;
    const std::string& word = words_[index_];
    if (word == "--") {
      ++index_;
      return 0;
    }
    if (word.size() < 2 || word[0] != '-') return 0;
    char_ = 1;
  }
  const std::string& word = words_[index_];
  char letter = word[char_++];
  bool last_in_word = char_ >= word.size();
  std::size_t pos = spec_.find(letter);
  if (letter == ':' || pos == std::string::npos) {
    error_ = fmt::format("invalid option -- '{}'", letter);
    if (last_in_word) {
      ++index_;
      char_ = 0;
    }
    return '?';
  }
  bool takes_value = pos + 1 < spec_.size() && spec_[pos + 1] == ':';
  if (!takes_value) {
    if (last_in_word) {
      ++index_;
      char_ = 0;
    }
    return letter;
  }
  if (!last_in_word) {
    value_ = word.substr(char_);
    ++index_;
    char_ = 0;
    return letter;
  }
  ++index_;
  char_ = 0;
  if (index_ >= words_.size()) {
    error_ = fmt::format("option requires an argument -- '{}'", letter);
    return '?';
  }
  value_ = words_[index_++];
  return letter;
}

std::vector<std::string> OptionParser::operands() const {
  std::size_t start = index_ + (char_ != 0 ? 1 : 0);
  if (start >= words_.size()) return {};
  return std::vector<std::string>(words_.begin() + static_cast<std::ptrdiff_t>(start),
                                  words_.end());
}

}  // namespace vhdx::cli
