// JobFailure: the exception a method throws to fail its job with a specific failure class
// (diverged, user error, preempted, ...). The executor catches every exception in one place
// and turns it into the attempt's outcome; anything else becomes class "error" (or "oom"
// for std::bad_alloc and out-of-memory messages).
#pragma once

#include <stdexcept>
#include <string>

#include "common/failure.h"

namespace atp {

class JobFailure : public std::runtime_error {
 public:
  JobFailure(FailureClass failure_class, const std::string& message)
      : std::runtime_error(message), failure_class_(failure_class) {}
  FailureClass failure_class() const { return failure_class_; }

 private:
  FailureClass failure_class_;
};

}  // namespace atp
