// The states of a job and of one attempt at it, as stored and shown to users.
// A job is pending until dispatched, running while an attempt is live, and ends done,
// failed, or blocked (an upstream job failed, so it can never run). Plain values; thread-safe.
#pragma once

#include <optional>
#include <string>

namespace atp {

enum class JobState { kPending, kRunning, kDone, kFailed, kBlocked };
const char* JobStateName(JobState s);  // "pending", "running", "done", "failed", "blocked"
std::optional<JobState> ParseJobState(const std::string& name);

enum class AttemptState { kRunning, kDone, kFailed, kLost };
const char* AttemptStateName(AttemptState s);  // "running", "done", "failed", "lost"

}  // namespace atp
