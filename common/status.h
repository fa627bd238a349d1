// Status and Result<T>: how every module and process boundary in atp reports failure.
// A Status is a code plus a human-readable message that says what went wrong, where
// (file, line, key) and what to do. Values are immutable and cheap to copy; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace atp {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // bad user input: a sweep file, a flag, a parameter
  kNotFound,          // a file, job or key that does not exist
  kAlreadyExists,
  kFailedPrecondition,// the world is not in the state the call needs (e.g. DB locked by another coordinator)
  kIoError,           // filesystem, socket or pipe failure
  kInternal,          // a library (MPI, SQLite, NCCL) reported an error
  kUnavailable,       // a peer went away
  kCancelled,         // stopped on request (signal, preemption)
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "InvalidArgument: sweep.toml:12: key 'seed' ..." ; "OK" when ok.
  std::string ToString() const;

  // Prefixes context ("while loading X: ") to the message; no-op when ok.
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }

// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}                 // NOLINT: implicit by design
  // An OK status carries no value, so it becomes an Internal error rather than a Result
  // that claims success and holds nothing.
  Result(Status status)                                         // NOLINT: implicit by design
      : status_(status.ok() ? Status(StatusCode::kInternal, "Result built from an OK status without a value")
                            : std::move(status)) {}

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace atp

// Returns early from a function returning Status or Result<T> when `expr` is not ok.
#define ATP_RETURN_IF_ERROR(expr)          \
  do {                                     \
    ::atp::Status atp_status_ = (expr);    \
    if (!atp_status_.ok()) return atp_status_; \
  } while (0)

#define ATP_CONCAT_INNER(a, b) a##b
#define ATP_CONCAT(a, b) ATP_CONCAT_INNER(a, b)
// ATP_ASSIGN_OR_RETURN(auto x, MakeX()); binds the value or returns the error. The temporary
// gets one unique name (__COUNTER__) that every use inside the expansion shares.
#define ATP_ASSIGN_OR_RETURN(lhs, expr) ATP_ASSIGN_OR_RETURN_IMPL(ATP_CONCAT(atp_result_, __COUNTER__), lhs, expr)
#define ATP_ASSIGN_OR_RETURN_IMPL(result, lhs, expr) \
  auto result = (expr);                                \
  if (!result.ok()) return result.status();            \
  lhs = std::move(result).value()
