// JobContext: what a running method sees of atp inside its job process: the resolved spec,
// its attempt, the outputs of its upstream jobs, a private working directory, the checkpoint
// to resume from, and the calls that report progress and checkpoints (which also feed the
// hang watchdog) and reach the job's group communicator. One JobContext per job; methods call
// it from the job's main thread; stop_requested() may be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "common/job_spec.h"
#include "common/json.h"
#include "common/status.h"

namespace atp {

// What a method returns when it succeeds. Only measured values go here.
struct MethodResult {
  std::map<std::string, double> metrics;
  Json outputs = Json::object();  // consumed by downstream jobs (e.g. the searched attributes)
};

class JobContext {
 public:
  // Transport to the worker rank; the executor provides it (tests provide fakes).
  struct Channel {
    std::function<void(const Json& event)> send_event;
    // Sends an allreduce request and blocks for the reduced data (same length).
    std::function<Status(std::vector<double>* data)> allreduce;
  };

  // `device_slot`: which GPU of the node the job uses, when it uses one (its worker's
  // WorkerOptions::device_slot; 0 for a job run alone by `atp train`).
  JobContext(JobSpec spec, int attempt, Json upstream, std::string workdir, std::string resume_checkpoint,
             int group_rank, int group_size, Channel channel, const std::atomic<bool>* stop_flag,
             int device_slot = 0);

  const JobSpec& spec() const { return spec_; }
  const Json& params() const { return spec_.params; }
  int attempt() const { return attempt_; }               // 1 for the first attempt
  // [{key, stage, method, outputs}] of the upstream jobs, in the order of spec().upstream.
  const Json& upstream() const { return upstream_; }
  const std::string& workdir() const { return workdir_; }
  const std::string& resume_checkpoint() const { return resume_checkpoint_; }  // "" if fresh
  int group_rank() const { return group_rank_; }
  int group_size() const { return group_size_; }
  bool is_leader() const { return group_rank_ == 0; }
  // The GPU this job uses, modulo the GPUs it sees: its worker says which (methods never read
  // the launcher's environment), so the ranks of one node get distinct GPUs.
  int device_slot() const { return device_slot_; }

  // Progress feeds the watchdog: a job that reports nothing for hang_timeout_s is killed.
  void ReportProgress(int64_t step, int64_t total);
  // Records a checkpoint file written by the method (atomically, complete) so that a later
  // attempt of the job resumes from it.
  void ReportCheckpoint(const std::string& path);
  // Sum over the job's ranks (identity for one rank).
  Status AllreduceSum(std::vector<double>* data);

  // True once the worker asked the job to stop (preemption): checkpoint, then throw
  // JobFailure(kPreempted, ...).
  bool stop_requested() const { return stop_flag_ && stop_flag_->load(); }

 private:
  JobSpec spec_;
  int attempt_;
  Json upstream_;
  std::string workdir_;
  std::string resume_checkpoint_;
  int group_rank_;
  int group_size_;
  int device_slot_;
  Channel channel_;
  const std::atomic<bool>* stop_flag_;
};

}  // namespace atp
