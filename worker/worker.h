// Worker: the loop of a worker rank. It announces itself to the coordinator, runs the jobs it
// is assigned through a JobRunner (so every job is isolated in an executor process), forms the
// group communicator of multi-rank jobs, relays progress and results, and heartbeats from its
// own loop so that a silent rank is detected even while a job computes. Not thread-safe: one
// thread runs Run().
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/communicator.h"
#include "common/messages.h"
#include "common/status.h"
#include "worker/job_runner.h"

namespace atp {

struct WorkerOptions {
  std::string executor_binary;      // an atp binary that honours --atp-executor
  double heartbeat_interval_s = 2.0;
  int coordinator_rank = 0;
  // This rank's place among the worker ranks of its node: its jobs use GPU device_slot
  // (modulo the GPUs they see), so the ranks of one node, and of one multi-rank job, get
  // distinct GPUs. Whoever starts the worker knows it (the launcher's node-local rank).
  int device_slot = 0;
};

class Worker {
 public:
  // `stop_signal` (may be null) is set by a SIGTERM/SIGINT handler: the running job is asked
  // to checkpoint and stop, as when the coordinator sends kPreempt.
  Worker(Communicator* comm, WorkerOptions options, Clock* clock, const std::atomic<bool>* stop_signal);
  // Returns when the coordinator sends kShutdown, or with an error if it cannot be reached.
  Status Run();

 private:
  Status HandleAssign(AssignMessage assign);
  Status StartJob(const AssignMessage& assign);
  Status ReportNotStarted(const AssignMessage& assign, FailureClass failure_class, const std::string& message);
  // Ends the running attempt's part on this rank with a failure.
  Status ReportFailure(FailureClass failure_class, const std::string& message);
  template <typename T>
  Status Send(const T& message);
  Status ForwardEvents(const std::vector<Json>& events);

  Communicator* comm_;
  WorkerOptions options_;
  Clock* clock_;
  const std::atomic<bool>* stop_signal_;
  JobRunner runner_;
  std::unique_ptr<GroupCommunicator> group_;  // of the running multi-rank job
  int64_t job_id_ = 0;
  int64_t attempt_id_ = 0;
  bool leader_ = true;
  bool preempting_ = false;
  // Progress and checkpoints reach the coordinator at most every kRelayInterval per job (the
  // watchdog is local; the coordinator only displays and records them); the latest
  // checkpoint is always sent before the job's result.
  double last_relay_ = -1e18;
  std::optional<ProgressMessage> pending_progress_;
  std::optional<CheckpointMessage> pending_checkpoint_;
  // Assignments queued behind the running job (the coordinator pipelines short jobs).
  std::deque<AssignMessage> queued_;
};

}  // namespace atp
