// The failure taxonomy: why a job attempt failed, and what atp does about each class.
// Every failed attempt is recorded with exactly one class; the retry policy is per class.
// Plain value types; thread-safe.
#pragma once

#include <optional>
#include <string>

namespace atp {

enum class FailureClass {
  kError,        // the job raised an error (exception) that is not one of the classes below
  kOutOfMemory,  // host or device out of memory, or killed by the kernel's OOM killer (SIGKILL)
  kDiverged,     // NaN or infinite loss: the same seed would diverge again
  kNodeLost,     // the worker rank or node went silent, or the coordinator died while it ran
  kPreempted,    // SIGTERM/SIGINT (e.g. SLURM preemption): checkpointed, resumes later
  kUserError,    // bad input (unknown parameter, missing data): retrying cannot help
  kCrash,        // the job process died from a signal (segfault, abort, ...)
  kHung,         // no progress for longer than the hang timeout: killed by the watchdog
};

const char* FailureClassName(FailureClass c);  // "error", "oom", "diverged", ...
std::optional<FailureClass> ParseFailureClass(const std::string& name);

// What the coordinator does after an attempt failed with a given class.
struct RetryRule {
  bool retry = true;           // false: the job fails at once (terminal class)
  bool counts_attempt = true;  // false: the attempt does not use up max_attempts
};

// Defaults: diverged and user errors are terminal; preemption and node loss retry without
// spending the retry budget (node loss is still capped by RetryPolicy::max_lost, so a job
// that takes the whole run down with it is not rerun forever).
RetryRule DefaultRetryRule(FailureClass c);

struct RetryPolicy {
  int max_attempts = 3;  // counted attempts before a retryable job is marked failed
  int max_lost = 3;      // attempts lost with the run (coordinator died) before a job is deemed poison
  RetryRule rules[8] = {DefaultRetryRule(FailureClass::kError),    DefaultRetryRule(FailureClass::kOutOfMemory),
                        DefaultRetryRule(FailureClass::kDiverged), DefaultRetryRule(FailureClass::kNodeLost),
                        DefaultRetryRule(FailureClass::kPreempted), DefaultRetryRule(FailureClass::kUserError),
                        DefaultRetryRule(FailureClass::kCrash),    DefaultRetryRule(FailureClass::kHung)};
  const RetryRule& rule(FailureClass c) const { return rules[static_cast<int>(c)]; }
  RetryRule& rule(FailureClass c) { return rules[static_cast<int>(c)]; }
};

constexpr int kFailureClassCount = 8;

}  // namespace atp
