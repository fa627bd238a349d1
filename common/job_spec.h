// JobSpec: one fully resolved job of a sweep, as expanded from the sweep file.
// Its identity (Key()) is the SHA-256 of the canonical JSON of what determines its result:
// stage, method, parameters, upstream job keys and the sweep's declared code_version.
// How a job is executed (ranks, retries, timeouts) is not part of its identity, so changing
// a retry count or running on more GPUs never re-runs a finished job. Plain value type.
#pragma once

#include <string>
#include <vector>

#include "common/failure.h"
#include "common/json.h"
#include "common/status.h"

namespace atp {

// A job that reports no progress for this long is killed as hung, unless its stage says
// otherwise (hang_timeout_s): well under NCCL's own 10-30 min timeouts.
constexpr double kDefaultHangTimeoutSeconds = 300;

struct JobSpec {
  // --- identity ---
  std::string stage;               // stage name from the sweep ("search", "train", "eval", ...)
  std::string method;              // method catalog name ("sleep", "coop", ...)
  Json params = Json::object();    // resolved parameters, including dataset, seed and every axis value
  std::vector<std::string> upstream;  // keys of the jobs this one depends on (sorted, unique)
  std::string code_version;        // declared by the sweep; bump it to invalidate results on purpose

  // --- execution (not part of the identity) ---
  int ranks = 1;                   // ranks (one per GPU) the job needs, all on one node
  RetryPolicy retry;
  double hang_timeout_s = kDefaultHangTimeoutSeconds;  // no progress for this long: killed as hung
  double expected_seconds = 0;     // duration hint before any duration has been recorded (0: unknown)

  // Convenience accessors into params (empty / -1 when absent).
  std::string dataset() const;
  long long seed() const;

  // Canonical JSON of the identity fields; Key() hashes exactly this.
  Json IdentityJson() const;
  std::string Key() const;

  // Full round trip (identity + execution) for messages and the store.
  Json ToJson() const;
  static Result<JobSpec> FromJson(const Json& json);
};

}  // namespace atp
