// Store: the results database (SQLite, WAL). Exactly one writer, the coordinator, owns a
// Store opened with OpenWriter; it holds an exclusive lock file beside the database for its
// lifetime, so a second coordinator on the same database is refused with a clear message.
// Every state change is written together with an event row in the same transaction, so the
// current state can always be re-derived from the event log. Not thread-safe: one thread
// (the coordinator loop) uses a writer Store. Readers use StoreReader (store_reader.h).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/failure.h"
#include "common/job_spec.h"
#include "common/json.h"
#include "common/status.h"
#include "coordinator/store/job_state.h"
#include "coordinator/sweep/sweep.h"

struct sqlite3;

namespace atp {

class StatementCache;

// The schema this build creates, migrates to and reads (meta.schema_version; docs/schema.md).
inline constexpr int kStoreSchemaVersion = 2;
// PRAGMA application_id of every atp results database ("ATPR"), so tools can tell it apart.
inline constexpr int32_t kStoreApplicationId = 0x41545052;

// Where and how a run happened; one row per coordinator start (its epoch).
struct Provenance {
  std::string atp_version;
  std::string git_commit;        // of the atp build
  std::string libtorch_version;  // "" when the build has no libtorch
  std::string cuda_version;
  std::string nccl_version;
  std::string mpi_version;
  std::string command_line;
  std::vector<std::string> hosts;  // hostname of each rank, rank order
  int world_size = 1;
  // What computes: {"blas": BlasRuntime::ToJson(), "threads_per_job": n} (common/blas_runtime.h).
  Json compute;
};

struct SubmitSummary {
  int64_t sweep_id = 0;
  int64_t new_jobs = 0;       // inserted by this submission
  int64_t known_jobs = 0;     // already in the database (same key)
  int64_t done_jobs = 0;      // of the known ones, already done: will not run again
};

struct RecoverySummary {
  int64_t requeued = 0;       // jobs whose attempt was lost with an earlier run, now pending again
  int64_t poisoned = 0;       // jobs lost too often (RetryPolicy::max_lost): now failed
};

struct JobRecord {
  int64_t id = 0;
  std::string key;
  JobSpec spec;
  JobState state = JobState::kPending;
  int attempts = 0;           // attempts that count against RetryPolicy::max_attempts
  int lost_attempts = 0;      // attempts lost because the coordinator died while they ran
  int total_attempts = 0;     // every attempt row, whatever its outcome
  std::optional<FailureClass> failure;  // of the last failed attempt
  std::string error;                    // message of the last failed attempt
  std::string checkpoint;     // latest checkpoint path recorded for the job ("" if none)
  Json outputs = Json::object();  // the job's outputs when done (what downstream jobs consume)
  std::vector<int64_t> upstream_ids;
};

struct JobOutcome {
  std::map<std::string, double> metrics;
  Json outputs = Json::object();
  std::vector<std::pair<std::string, std::string>> artifacts;  // (kind, path): "log", "checkpoint", ...
};

class Store {
 public:
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Opens (creating if needed) the database for writing; creates or migrates the schema,
  // sets WAL and a busy timeout, and takes `<path>.lock` with flock(LOCK_EX|LOCK_NB).
  // FailedPrecondition names the lock file when another coordinator holds it.
  static Result<std::unique_ptr<Store>> OpenWriter(const std::string& path);

  // Starts a coordinator epoch: a `runs` row with the provenance. Returns the epoch id.
  // Earlier runs that never ended (their coordinator died) get status 'lost'.
  Result<int64_t> BeginRun(const Provenance& provenance);
  // Marks the run finished with a short status ("completed", "interrupted", "failed: ...").
  Status EndRun(int64_t epoch, const std::string& status);
  // Records that the coordinator of `epoch` is alive (runs.heartbeat_at = now).
  Status Heartbeat(int64_t epoch);

  // Attempts still 'running' from epochs before `epoch` were lost when that coordinator
  // died: each becomes 'lost'; its job returns to pending with lost_attempts + 1, or fails
  // (class node_lost, message says it was lost N times) once lost_attempts reaches the
  // job's RetryPolicy::max_lost.
  Result<RecoverySummary> RecoverInterruptedAttempts(int64_t epoch);

  // Records the sweep (name, path, TOML text, its hash) and inserts its jobs by key:
  // INSERT OR IGNORE, so jobs already known (from this or another sweep) are linked, not
  // duplicated; job dependencies are recorded by id. One transaction; 100,000 jobs in well
  // under 5 s.
  Result<SubmitSummary> SubmitSweep(const Sweep& sweep);

  // Failed and blocked jobs of the sweep go back to pending with attempts reset (an event
  // records it). Used by `atp-sweep --retry-failed`. Returns how many were reset.
  Result<int64_t> ResetFailedJobs(int64_t sweep_id);

  // Every job of the sweep with its current state, in submission (dependency) order.
  Result<std::vector<JobRecord>> LoadSweepJobs(int64_t sweep_id);

  // Mean duration in seconds of done attempts, keyed by "stage|method|dataset".
  Result<std::map<std::string, double>> MeanDurations();

  // --- state transitions; group many into one transaction with BeginBatch/CommitBatch ---
  Status BeginBatch();
  Status CommitBatch();

  // Job -> running; a new attempt row (number = previous attempt rows + 1). Returns its id.
  Result<int64_t> StartAttempt(int64_t job_id, int64_t epoch, const std::string& host,
                               const std::vector<int>& ranks);
  // Throttled by the caller; stored on the attempt (progress_step, progress_total, progress_at).
  // Progress of an attempt that has already ended is ignored; an unknown attempt is NotFound.
  Status UpdateProgress(int64_t attempt_id, int64_t step, int64_t total);
  Status RecordCheckpoint(int64_t job_id, int64_t attempt_id, const std::string& path);
  // The job's checkpoint could not be read by `attempt_id`: the next attempt starts afresh.
  // Recorded as a "checkpoint_discarded" event with the reason.
  Status DiscardCheckpoint(int64_t job_id, int64_t attempt_id, const std::string& reason);
  // Attempt -> done, job -> done with metrics, outputs, artifacts and duration.
  Status CompleteAttempt(int64_t attempt_id, int64_t job_id, const JobOutcome& outcome);
  // Attempt -> failed with class and message; job -> `next` (pending to retry, or failed);
  // attempts + 1 when `counts_attempt`.
  Status FailAttempt(int64_t attempt_id, int64_t job_id, FailureClass failure, const std::string& message,
                     JobState next, bool counts_attempt);
  // Job -> blocked (an upstream job failed), with the reason. Blocking a blocked job is a no-op.
  // Every transition checks the states it starts from: a job or attempt in another state is
  // FailedPrecondition (e.g. the late result of an attempt already declared hung) and writes nothing.
  Status BlockJob(int64_t job_id, const std::string& reason);

  sqlite3* handle() { return db_; }  // for tests and StoreReader-style queries

 private:
  Status RequireSweep(int64_t sweep_id);  // NotFound unless the sweep is recorded
  Store(sqlite3* db, int lock_fd, std::string path);
  sqlite3* db_;
  int lock_fd_;
  std::string path_;
  int batch_depth_ = 0;
  int64_t epoch_ = 0;                           // of BeginRun; events before it carry no epoch
  std::unique_ptr<StatementCache> statements_;  // prepared once per connection, reused
};

}  // namespace atp
