// JobFailure: the exception a method throws to fail its job with a specific failure class
// (diverged, user error, preempted, ...). RunMethodCatching (worker/run_method.h) catches
// every exception in one place and turns it into the attempt's outcome; anything else becomes
// class "error" (or "oom" for std::bad_alloc and out-of-memory messages).
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

#include "common/failure.h"
#include "common/status.h"

namespace atp {

class JobFailure : public std::runtime_error {
 public:
  JobFailure(FailureClass failure_class, const std::string& message)
      : std::runtime_error(message), failure_class_(failure_class) {}
  FailureClass failure_class() const { return failure_class_; }

 private:
  FailureClass failure_class_;
};

// The checkpoint the job was asked to resume from cannot be used (damaged, cut short, written
// for another configuration). Not the user's input: the attempt fails as "error" and the
// coordinator forgets the checkpoint, so the next attempt starts afresh rather than failing
// the same way for good.
class UnusableCheckpoint : public JobFailure {
 public:
  explicit UnusableCheckpoint(const std::string& message)
      : JobFailure(FailureClass::kError, "cannot resume from its checkpoint: " + message) {}
};

// A Status failure inside a job, thrown as a JobFailure: bad input is the user's to fix and is
// not retried, unless the caller names another class.
template <typename T>
T OrFail(Result<T> result, FailureClass failure_class = FailureClass::kUserError) {
  if (!result.ok()) throw JobFailure(failure_class, result.status().message());
  return std::move(*result);
}

inline void OrFail(const Status& status, FailureClass failure_class = FailureClass::kUserError) {
  if (!status.ok()) throw JobFailure(failure_class, status.message());
}

}  // namespace atp
