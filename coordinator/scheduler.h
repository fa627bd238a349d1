// Scheduler: decides which ready job runs on which idle worker ranks. Pure logic, no I/O
// and no clock, so it is tested and benchmarked in isolation.
//  - A job needing k ranks runs on k idle ranks of one node (best fit: the node with the
//    fewest idle ranks that still fit, so partly used nodes fill first).
//  - Among ready jobs, the highest priority runs first: the job's expected duration plus the
//    longest chain of expected durations below it (critical path, then longest job first).
//  - When the most urgent job needs more ranks than any node has idle, the node closest to
//    fitting it is reserved (smaller jobs backfill elsewhere), so big jobs never starve.
//  - A job whose upstream job failed is blocked, and so is everything below it.
// Not thread-safe: owned by the coordinator loop.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "coordinator/store/job_state.h"

namespace atp {

struct SchedulerJob {
  int64_t id = 0;
  int ranks = 1;
  std::vector<int64_t> upstream;  // ids of jobs added before this one
  double expected_seconds = 1.0;
};

struct WorkerRank {
  int rank = 0;
  std::string node;
};

struct Assignment {
  int64_t job_id = 0;
  std::vector<int> ranks;  // sorted; the first is the job's leader
};

class Scheduler {
 public:
  explicit Scheduler(const std::vector<WorkerRank>& workers);

  // Adds a job in dependency order (upstream jobs first). `state` is its recorded state:
  // done jobs satisfy their dependents, failed and blocked jobs block them, pending jobs wait
  // (a recorded 'running' job must have been recovered to pending before).
  void AddJob(const SchedulerJob& job, JobState state);
  // Computes priorities and the ready set once all jobs are added. Pending jobs below a
  // recorded failed or blocked job are blocked now; TakeBlockedAtStart lists them.
  void Finalize();
  // The jobs Finalize blocked, each with the failed or blocked job above it: the caller
  // records them, or they would stay pending in the database.
  struct BlockedBy {
    int64_t job_id = 0;
    int64_t cause = 0;
  };
  std::vector<BlockedBy> TakeBlockedAtStart();

  // Assigns as many ready jobs as fit onto idle ranks.
  std::vector<Assignment> Schedule();

  // Pipelining for short jobs: on a live rank running a single-rank job for which
  // `short_enough(job id)` holds, queue the next ready single-rank job, so the worker starts it
  // the moment the current one ends instead of waiting for a round trip to the coordinator.
  // Never done while a multi-rank job is ready (it may need those ranks). Queued jobs count as
  // running.
  std::vector<Assignment> Prefetch(const std::function<bool(int64_t)>& short_enough);
  // The jobs queued behind the running job of `rank` (at most one).
  std::vector<int64_t> QueuedOnRank(int rank) const;

  // The attempt ended. done: dependents may become ready. failed: the job and everything
  // below it are blocked (their ids are appended to `newly_blocked`). retry: the job is ready
  // again. In every case its ranks become idle.
  enum class Outcome { kDone, kFailed, kRetry };
  void OnAttemptEnded(int64_t job_id, Outcome outcome, std::vector<int64_t>* newly_blocked);

  // The rank stopped answering: it takes no more jobs. Returns the job it was running (0 if
  // none); the caller ends that attempt, which frees the job's other ranks.
  int64_t OnRankLost(int rank);

  // Jobs that need more ranks than any live node has: they can never run in this
  // allocation. Removed from the ready set; the caller fails them (and blocks their
  // dependents through OnAttemptEnded(kFailed)).
  std::vector<int64_t> TakeUnschedulable();

  bool Idle() const { return running_ == 0; }                 // no job running
  bool HasWork() const { return ready_count_ > 0 || running_ > 0 || waiting_ > 0; }
  int64_t ready() const { return ready_count_; }
  int64_t running() const { return running_; }
  int64_t waiting() const { return waiting_; }                // pending on upstream jobs
  int live_ranks() const;
  int busy_ranks() const;

 private:
  struct JobNode {
    int ranks = 1;
    double expected = 1.0;
    double priority = 0;
    int64_t order = 0;
    int unfinished_upstream = 0;
    JobState state = JobState::kPending;
    std::vector<int64_t> downstream;
    std::vector<int> assigned;
  };
  struct ReadyEntry {
    double priority;
    int64_t order;
    int64_t job_id;
    bool operator<(const ReadyEntry& other) const {  // max-heap: higher priority, then earlier
      if (priority != other.priority) return priority < other.priority;
      return order > other.order;
    }
  };
  struct Node {
    std::vector<int> idle;  // idle live ranks
    int live = 0;
  };

  void MakeReady(int64_t job_id);
  void Block(int64_t job_id, std::vector<int64_t>* newly_blocked);
  void FreeRanks(int64_t job_id, JobNode& job);
  int MaxLiveNodeSize() const;

  std::unordered_map<int64_t, JobNode> jobs_;
  std::vector<int64_t> insertion_order_;
  std::map<int, std::priority_queue<ReadyEntry>> ready_by_ranks_;  // keyed by ranks needed
  std::map<std::string, Node> nodes_;
  std::unordered_map<int, std::string> node_of_rank_;
  std::unordered_map<int, int64_t> job_on_rank_;     // the job a rank is running
  std::unordered_map<int, int64_t> queued_on_rank_;  // the job queued behind it (Prefetch)
  std::vector<int64_t> unschedulable_;
  std::vector<BlockedBy> blocked_at_start_;
  int64_t ready_count_ = 0;
  int64_t running_ = 0;
  int64_t waiting_ = 0;
  bool finalized_ = false;
};

}  // namespace atp
