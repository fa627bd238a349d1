#include "common/failure.h"

namespace atp {

const char* FailureClassName(FailureClass c) {
  switch (c) {
    case FailureClass::kError: return "error";
    case FailureClass::kOutOfMemory: return "oom";
    case FailureClass::kDiverged: return "diverged";
    case FailureClass::kNodeLost: return "node_lost";
    case FailureClass::kPreempted: return "preempted";
    case FailureClass::kUserError: return "user_error";
    case FailureClass::kCrash: return "crash";
    case FailureClass::kHung: return "hung";
  }
  return "error";
}

std::optional<FailureClass> ParseFailureClass(const std::string& name) {
  for (int i = 0; i < kFailureClassCount; ++i) {
    auto c = static_cast<FailureClass>(i);
    if (name == FailureClassName(c)) return c;
  }
  return std::nullopt;
}

RetryRule DefaultRetryRule(FailureClass c) {
  switch (c) {
    case FailureClass::kDiverged:
    case FailureClass::kUserError:
      return {false, true};
    case FailureClass::kNodeLost:
    case FailureClass::kPreempted:
      return {true, false};
    default:
      return {true, true};
  }
}

}  // namespace atp
