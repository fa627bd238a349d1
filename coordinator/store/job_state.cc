#include "coordinator/store/job_state.h"

namespace atp {

const char* JobStateName(JobState s) {
  switch (s) {
    case JobState::kPending: return "pending";
    case JobState::kRunning: return "running";
    case JobState::kDone: return "done";
    case JobState::kFailed: return "failed";
    case JobState::kBlocked: return "blocked";
  }
  return "?";
}

std::optional<JobState> ParseJobState(const std::string& name) {
  for (JobState s : {JobState::kPending, JobState::kRunning, JobState::kDone, JobState::kFailed, JobState::kBlocked}) {
    if (name == JobStateName(s)) return s;
  }
  return std::nullopt;
}

const char* AttemptStateName(AttemptState s) {
  switch (s) {
    case AttemptState::kRunning: return "running";
    case AttemptState::kDone: return "done";
    case AttemptState::kFailed: return "failed";
    case AttemptState::kLost: return "lost";
  }
  return "?";
}

}  // namespace atp
