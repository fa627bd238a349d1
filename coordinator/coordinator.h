// Coordinator: rank 0's loop. It records the sweep in the Store, recovers attempts lost with
// an earlier run, schedules ready jobs onto idle worker ranks, applies the retry policy of
// each failure class, detects silent ranks by heartbeat, and turns SIGTERM/SIGINT into a
// clean preemption (running jobs checkpoint, states are recorded, workers shut down). It is
// the only writer of the database. Not thread-safe: Run() is called once, from one thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/communicator.h"
#include "common/messages.h"
#include "common/status.h"
#include "coordinator/progress_reporter.h"
#include "coordinator/scheduler.h"
#include "coordinator/store/store.h"
#include "coordinator/sweep/sweep.h"

namespace atp {

struct CoordinatorOptions {
  std::string jobs_dir;                 // job working directories: <jobs_dir>/<job key>/
  double heartbeat_timeout_s = 60;      // a rank silent for this long is lost
  double startup_timeout_s = 120;       // workers that never say hello are lost
  double progress_write_interval_s = 2; // how often a running job's progress is written
  bool retry_failed = false;            // failed and blocked jobs of the sweep get a new chance
  Provenance provenance;
};

struct RunSummary {
  int64_t sweep_id = 0;
  int64_t epoch = 0;
  int64_t total = 0, done = 0, failed = 0, blocked = 0, pending = 0;
  int64_t ran = 0;              // attempts finished in this run
  bool interrupted = false;     // stopped by a signal before the sweep finished
  int lost_ranks = 0;
};

class Coordinator {
 public:
  // `stop_requested` is set by the SIGTERM/SIGINT handler (may be null).
  Coordinator(Communicator* comm, Store* store, ProgressReporter* reporter, CoordinatorOptions options, Clock* clock,
              const std::atomic<bool>* stop_requested);

  Result<RunSummary> Run(const Sweep& sweep);

 private:
  struct LiveAttempt {
    int64_t job_id = 0;
    int64_t attempt_id = 0;
    std::vector<int> ranks;
    std::vector<int> waiting_for;  // member ranks that have not reported kFinished yet
    std::optional<FinishedMessage> leader_outcome;
    std::optional<FinishedMessage> first_failure;
    double started = 0;
    double last_progress_write = 0;
    int64_t step = 0, total = 0;
    bool progress_dirty = false;
  };
  struct RankState {
    std::string node;
    double last_seen = 0;
    bool alive = true;
  };

  Status WaitForWorkers();
  Status Dispatch(const Assignment& assignment);
  Status HandleMessage(int source, const Message& message);
  Status HandleFinished(int source, const FinishedMessage& finished);
  Status EndAttempt(LiveAttempt attempt, const FinishedMessage& outcome);
  Status FailUnschedulable();
  Status Block(const std::vector<int64_t>& ids, int64_t cause);
  Status CheckHeartbeats();
  Status EndAttemptOfLostRank(int64_t job_id, int lost_rank);
  template <typename T>
  void Broadcast(const T& message);
  ProgressSnapshot Snapshot() const;
  static std::string DurationKey(const JobSpec& spec);
  bool IsShortJob(int64_t job_id) const;

  Communicator* comm_;
  Store* store_;
  ProgressReporter* reporter_;
  CoordinatorOptions options_;
  Clock* clock_;
  const std::atomic<bool>* stop_requested_;

  int64_t epoch_ = 0;
  double start_time_ = 0;
  std::unordered_map<int64_t, JobRecord> jobs_;
  std::vector<int64_t> order_;
  std::unique_ptr<Scheduler> scheduler_;
  std::map<int, RankState> ranks_;
  std::unordered_map<int64_t, LiveAttempt> attempts_;   // by attempt id
  std::unordered_map<int64_t, int> node_lost_retries_;  // by job id, this run
  std::vector<double> finish_times_;                     // recent completions, for the rate
  std::map<std::string, std::pair<double, int>> observed_durations_;  // this run: (sum, count) by DurationKey
  int64_t counts_done_ = 0, counts_failed_ = 0, counts_blocked_ = 0;
  int64_t ran_ = 0;
  int lost_ranks_ = 0;
  bool preempting_ = false;
};

}  // namespace atp
