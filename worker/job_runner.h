// JobRunner: the worker rank's side of job isolation. It starts an executor process (its own
// binary in executor mode, in a new process group), hands it one job at a time, relays its
// events, serves its allreduce requests through the job's group communicator, and watches
// it: a job that reports no progress for its hang timeout is killed (class "hung"); an
// executor that dies is classified from its wait status (crash; oom for a SIGKILL it did
// not get from us while the kernel's count of out-of-memory kills went up). A crashed, hung or preempted executor is replaced for the next job.
// Not thread-safe: owned by the worker loop.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/communicator.h"
#include "common/job_spec.h"
#include "common/json.h"
#include "common/status.h"
#include "worker/frame_channel.h"

namespace atp {

struct JobRequest {
  int64_t job_id = 0;
  int64_t attempt_id = 0;
  int attempt = 1;              // counted attempt (1-based), seen by the method
  int attempt_number = 0;       // the attempt's number in the database (names its log); 0: = attempt
  Json spec;                    // JobSpec::ToJson()
  Json upstream = Json::array();
  std::string workdir;
  std::string resume;           // checkpoint to resume from, "" for a fresh start
  double hang_timeout_s = kDefaultHangTimeoutSeconds;  // the spec's: no progress this long is a hang
  int device_slot = 0;          // which GPU of the node the job uses (WorkerOptions::device_slot)
};

class JobRunner {
 public:
  // How many processes the kernel's out-of-memory killer has ended so far, or -1 when not
  // known (the system-wide oom_kill count of /proc/vmstat by default).
  using OomKillCounter = std::function<int64_t()>;
  static int64_t SystemOomKills();

  // `executor_binary`: an atp binary that honours --atp-executor (see executor.h).
  JobRunner(std::string executor_binary, Clock* clock, OomKillCounter oom_kills = SystemOomKills);
  ~JobRunner();  // kills the executor
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  // Starts a job; `group` (may be null) is the job's group communicator for k-rank jobs.
  Status Start(const JobRequest& request, GroupCommunicator* group, int group_rank, int group_size);
  bool busy() const { return running_.has_value(); }
  int64_t running_job() const { return running_ ? running_->request.job_id : 0; }

  // Waits up to `timeout_s` for executor activity and returns the events to report:
  // {"event":"progress"|"checkpoint"|"finished", ...}. A "finished" event ends the job.
  Result<std::vector<Json>> Poll(double timeout_s);

  // Asks the running job to checkpoint and stop (preemption). Returns immediately.
  void RequestStop();
  // Kills the executor (shutdown); a running job is reported by the caller, not here.
  void KillExecutor();

  pid_t executor_pid() const { return pid_; }

 private:
  struct Running {
    JobRequest request;
    GroupCommunicator* group = nullptr;
    double last_activity = 0;
    bool stop_requested = false;
  };
  Status SpawnExecutor();
  Json ReapDeadExecutor(const std::string& reason_if_alive);
  Json Failure(FailureClass failure_class, const std::string& message) const;

  std::string executor_binary_;
  Clock* clock_;
  pid_t pid_ = -1;
  std::unique_ptr<FrameChannel> channel_;
  int socket_fd_ = -1;
  std::optional<Running> running_;
  bool killed_by_us_ = false;
  OomKillCounter oom_kills_;
  int64_t oom_kills_at_start_ = -1;  // when the current executor was started
};

}  // namespace atp
