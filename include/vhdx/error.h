// Error and Result: how every libvhdx call reports failure. Nothing in the library throws across
// its boundary; a call returns Result<T>, holding either a value or an Error.
//
// This header is part of the base layer (it includes nothing from the project), so every layer,
// public or internal, speaks the same error type.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace vhdx {

// Stable codes: callers and edges (CLI exit codes, nbdkit errno, FUSE -errno) switch on these.
// Never renumber; only append.
enum class ErrorCode : int {
  kIo = 1,               // the operating system reported an I/O failure (errno is set)
  kNoSpace = 2,          // ENOSPC or a size limit was hit while writing
  kCorrupt = 3,          // a structure on disk violates the format
  kUnsupported = 4,      // valid VHDX, but uses something this library does not implement
  kInvalidArgument = 5,  // the caller asked for something impossible
  kOutOfRange = 6,       // an offset or length lies outside the virtual disk
  kReadOnly = 7,         // a write was attempted on a read-only image
  kBusy = 8,             // another process holds the image
  kNeedsLogReplay = 9,   // the log holds updates that must be replayed first
  kNotVhdx = 10,         // the file is not a VHDX file at all
  kInternal = 11,        // a bug: an invariant of the library itself failed
  kFailed = 12,          // the image is in the sticky failed state after an earlier error
};

// A short lowercase name for the code, e.g. "corrupt".
const char* error_code_name(ErrorCode code);

class Error;
// The errno an edge that speaks errno (nbdkit, FUSE) reports for an error: the operating
// system's own errno for kIo, else ENOSPC, EINVAL (bad argument or range), EROFS, ENOTSUP,
// EBUSY, and EIO for everything that means the image cannot be trusted.
int errno_for(const Error& error);

class Error {
 public:
  Error(ErrorCode code, std::string message, int sys_errno = 0)
      : code_(code), sys_errno_(sys_errno), message_(std::move(message)) {}

  ErrorCode code() const { return code_; }
  // The errno behind the failure when the operating system reported one, otherwise 0.
  int sys_errno() const { return sys_errno_; }
  // Human-readable text: outermost context first, e.g. "BAT: entry 17: offset past end of file".
  const std::string& message() const { return message_; }

  // Prepends "context: " to the message; used as errors travel up the layers. A context that
  // names more precisely the structure the message starts with takes that name's place rather
  // than repeating it: "header 2" on "header: checksum mismatch" gives "header 2: checksum
  // mismatch", and a context that the message's first name already refines ("BAT" on "BAT
  // entry 5: ...") or equals adds nothing.
  Error& add_context(std::string_view context);
  // The message as add_context(context) would make it, leaving this error as it is.
  std::string message_with_context(std::string_view context) const {
    Error copy = *this;
    return copy.add_context(context).message();
  }
  Error with_context(std::string_view context) && {
    add_context(context);
    return std::move(*this);
  }

  // "message (code name[, strerror])".
  std::string to_string() const;

 private:
  ErrorCode code_;
  int sys_errno_;
  std::string message_;
};

// A value of type T or an Error, with the part of std::expected's interface that the library
// uses, so that moving to std::expected later is mechanical.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool has_value() const { return state_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  Error& error() & { return std::get<1>(state_); }
  const Error& error() const& { return std::get<1>(state_); }
  Error&& error() && { return std::get<1>(std::move(state_)); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT: implicit

  bool has_value() const { return !error_.has_value(); }
  explicit operator bool() const { return has_value(); }
  void value() const {}

  Error& error() & { return *error_; }
  const Error& error() const& { return *error_; }
  Error&& error() && { return std::move(*error_); }

 private:
  std::optional<Error> error_;
};

// Success for Result<void>.
inline Result<void> ok() { return {}; }

}  // namespace vhdx

#define VHDX_CONCAT_INNER(a, b) a##b
#define VHDX_CONCAT(a, b) VHDX_CONCAT_INNER(a, b)

// Returns the error of `expr` (a Result) from the enclosing function, if any.
#define VHDX_TRY(expr)                                                 \
  do {                                                                 \
    auto&& vhdx_try_result_ = (expr);                                  \
    if (!vhdx_try_result_) return std::move(vhdx_try_result_).error(); \
  } while (0)

// Declares or assigns `lhs` from the value of `expr`, or returns its error.
#define VHDX_ASSIGN_OR_RETURN(lhs, expr) \
  VHDX_ASSIGN_OR_RETURN_IMPL(VHDX_CONCAT(vhdx_result_, __LINE__), lhs, expr)
#define VHDX_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp) return std::move(tmp).error();         \
  lhs = std::move(tmp).value()
