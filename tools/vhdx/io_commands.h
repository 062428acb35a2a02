// `vhdx io`: a qemu-io style exerciser. Commands run one after another against an IoTarget; each
// prints what qemu-io would print. A command is one row of the table in io_commands.cc: to add
// one, write its handler and add its row.
#pragma once

#include <cstdint>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "vhdx/error.h"
#include "vhdx/types.h"

namespace vhdx::cli {

// What the commands need from an open image; the CLI adapts vhdx::Image to it, tests use fakes.
class IoTarget {
 public:
  virtual ~IoTarget() = default;
  virtual const ImageInfo& info() const = 0;
  virtual Result<void> read(std::uint64_t offset, std::span<std::uint8_t> out) = 0;
  virtual Result<std::vector<Extent>> block_status(std::uint64_t offset, std::uint64_t length) = 0;
  virtual bool writable() const = 0;
  // Writing; targets that cannot write keep these defaults (commands check writable() first).
  virtual Result<void> write(std::uint64_t /*offset*/, std::span<const std::uint8_t> /*data*/) {
    return Error(ErrorCode::kReadOnly, "the target cannot write");
  }
  // Makes the range read back as zeros; unmap lets whole blocks be released as unmapped.
  virtual Result<void> discard(std::uint64_t /*offset*/, std::uint64_t /*length*/, bool /*unmap*/) {
    return Error(ErrorCode::kReadOnly, "the target cannot discard");
  }
  virtual Result<void> flush() { return ok(); }
};

struct IoSession {
  IoTarget& target;
  std::ostream& out;
  std::ostream& err;
  bool quit = false;  // set by `quit`: run no further commands
};

struct IoCommand {
  const char* name;
  const char* alias;     // short name like qemu-io's ("r" for read), or nullptr
  const char* synopsis;  // arguments, e.g. "[-qv] [-P pattern] off len"
  const char* summary;   // one line
  const char* details;   // `help NAME` text, may be empty
  bool needs_write;      // refused on a read-only open
  // Runs the command on its words (words[0] is the name); false when it failed.
  bool (*run)(IoSession& session, const std::vector<std::string>& words);
};

// The command table, in `help` order.
std::span<const IoCommand> io_commands();

// Parses and runs one command line; false when it failed (the reason is on session.err).
bool run_io_command(IoSession& session, const std::string& line);

// Text for `vhdx io --help`: every command with its synopsis and summary.
std::string io_command_list();

}  // namespace vhdx::cli
