#include "coordinator/coordinator.h"

#include <algorithm>
#include <filesystem>

#include "common/messages.h"

namespace atp {
namespace {

constexpr int kMaxMessagesPerRound = 512;  // drained per loop round, then one commit

std::string ShortKey(const std::string& key) { return key.substr(0, 12); }

// Jobs shorter than this are queued behind a running job of the same kind (Prefetch): for
// them the round trip to the coordinator would cost more than the job.
constexpr double kShortJobSeconds = 0.25;

// Group tags must be unique among groups being formed at once and within MPI_TAG_UB
// (at least 32767 by the standard).
int GroupTag(int64_t attempt_id) { return static_cast<int>(attempt_id % 32000) + 1; }

}  // namespace

Coordinator::Coordinator(Communicator* comm, Store* store, ProgressReporter* reporter, CoordinatorOptions options,
                         Clock* clock, const std::atomic<bool>* stop_requested)
    : comm_(comm),
      store_(store),
      reporter_(reporter),
      options_(std::move(options)),
      clock_(clock),
      stop_requested_(stop_requested) {}

template <typename T>
void Coordinator::Broadcast(const T& message) {
  std::string bytes = EncodeMessage(message);
  for (auto& [rank, state] : ranks_) {
    if (state.alive) (void)comm_->Send(rank, kProtocolTag, bytes);
  }
}

Status Coordinator::WaitForWorkers() {
  const int workers = comm_->size() - 1;
  double deadline = clock_->Now() + options_.startup_timeout_s;
  std::map<int, std::string> nodes;
  while (static_cast<int>(nodes.size()) < workers && clock_->Now() < deadline) {
    ATP_ASSIGN_OR_RETURN(auto envelope, comm_->Receive(0.1));
    if (!envelope) {
      if (stop_requested_ && stop_requested_->load()) break;
      continue;
    }
    ATP_ASSIGN_OR_RETURN(Message message, DecodeMessage(envelope->payload));
    if (message.type != MessageType::kHello) continue;
    auto hello = DecodeAs<HelloMessage>(message);
    if (!hello.ok()) {
      reporter_->Message("ignored a malformed hello from rank " + std::to_string(envelope->source) + ": " +
                         hello.status().message());
      continue;
    }
    nodes[envelope->source] = hello->node;
  }
  for (int rank = 1; rank <= workers; ++rank) {
    auto it = nodes.find(rank);
    RankState state;
    state.last_seen = clock_->Now();
    if (it == nodes.end()) {
      state.alive = false;
      lost_ranks_ += 1;
      reporter_->Message("rank " + std::to_string(rank) + " did not report within " +
                         FormatDuration(options_.startup_timeout_s) + "; continuing without it");
    } else {
      state.node = it->second;
    }
    ranks_[rank] = state;
  }
  return Status::Ok();
}

Status Coordinator::Dispatch(const Assignment& assignment) {
  JobRecord& job = jobs_[assignment.job_id];
  const std::string& leader_node = ranks_[assignment.ranks.front()].node;
  ATP_ASSIGN_OR_RETURN(int64_t attempt_id,
                       store_->StartAttempt(job.id, epoch_, leader_node, assignment.ranks));
  job.state = JobState::kRunning;
  job.total_attempts += 1;
  AssignMessage assign;
  for (int64_t up : job.upstream_ids) {
    auto it = jobs_.find(up);
    if (it == jobs_.end()) continue;
    assign.upstream.push_back(
        UpstreamJob{it->second.key, it->second.spec.stage, it->second.spec.method, it->second.outputs});
  }
  assign.job_id = job.id;
  assign.attempt_id = attempt_id;
  assign.attempt = job.attempts + 1;
  assign.attempt_number = job.total_attempts;  // the attempt row's number: names its log
  assign.spec = job.spec;
  assign.ranks = assignment.ranks;
  assign.group_tag = GroupTag(attempt_id);
  assign.resume = job.checkpoint;
  assign.workdir = options_.jobs_dir + "/" + job.key;
  std::string bytes = EncodeMessage(assign);
  LiveAttempt live;
  live.job_id = job.id;
  live.attempt_id = attempt_id;
  live.ranks = assignment.ranks;
  live.waiting_for = assignment.ranks;
  live.started = clock_->Now();
  attempts_[attempt_id] = std::move(live);
  for (int rank : assignment.ranks) ATP_RETURN_IF_ERROR(comm_->Send(rank, kProtocolTag, bytes));
  reporter_->Event("started", Json{{"job", ShortKey(job.key)}, {"stage", job.spec.stage},
                                   {"method", job.spec.method}, {"ranks", assignment.ranks}});
  return Status::Ok();
}

std::string Coordinator::DurationKey(const JobSpec& spec) {
  return spec.stage + "|" + spec.method + "|" + spec.dataset();
}

bool Coordinator::IsShortJob(int64_t job_id) const {
  const JobRecord& job = jobs_.at(job_id);
  auto it = observed_durations_.find(DurationKey(job.spec));
  if (it != observed_durations_.end() && it->second.second >= 3) {
    return it->second.first / it->second.second < kShortJobSeconds;
  }
  return job.spec.expected_seconds > 0 && job.spec.expected_seconds < kShortJobSeconds;
}

Status Coordinator::Block(const std::vector<int64_t>& ids, int64_t cause) {
  const std::string reason = "upstream job " + ShortKey(jobs_[cause].key) + " (" + jobs_[cause].spec.stage + "/" +
                             jobs_[cause].spec.method + ") failed";
  for (int64_t id : ids) {
    JobRecord& job = jobs_[id];
    ATP_RETURN_IF_ERROR(store_->BlockJob(id, reason));
    job.state = JobState::kBlocked;
    counts_blocked_ += 1;
    reporter_->Event("blocked", Json{{"job", ShortKey(job.key)}, {"stage", job.spec.stage},
                                     {"method", job.spec.method}, {"message", reason}});
  }
  return Status::Ok();
}

Status Coordinator::FailUnschedulable() {
  for (int64_t id : scheduler_->TakeUnschedulable()) {
    JobRecord& job = jobs_[id];
    ATP_ASSIGN_OR_RETURN(int64_t attempt_id, store_->StartAttempt(id, epoch_, "", {}));
    std::string message = "needs " + std::to_string(job.spec.ranks) +
                          " ranks on one node, but no node of this allocation has that many live worker ranks; "
                          "run with more ranks per node or lower `ranks` in the sweep";
    ATP_RETURN_IF_ERROR(store_->FailAttempt(attempt_id, id, FailureClass::kUserError, message, JobState::kFailed, true));
    job.state = JobState::kFailed;
    counts_failed_ += 1;
    reporter_->Event("failed", Json{{"job", ShortKey(job.key)}, {"stage", job.spec.stage},
                                    {"method", job.spec.method}, {"class", FailureClassName(FailureClass::kUserError)},
                                    {"message", message}});
    std::vector<int64_t> blocked;
    scheduler_->OnAttemptEnded(id, Scheduler::Outcome::kFailed, &blocked);
    ATP_RETURN_IF_ERROR(Block(blocked, id));
  }
  return Status::Ok();
}

Status Coordinator::EndAttempt(LiveAttempt attempt, const FinishedMessage& outcome) {
  JobRecord& job = jobs_[attempt.job_id];
  const double now = clock_->Now();
  ran_ += 1;
  if (outcome.ok) {
    JobOutcome result;
    result.metrics = outcome.metrics;
    result.outputs = outcome.outputs;
    result.artifacts = outcome.artifacts;
    ATP_RETURN_IF_ERROR(store_->CompleteAttempt(attempt.attempt_id, job.id, result));
    job.state = JobState::kDone;
    job.outputs = result.outputs;
    auto& observed = observed_durations_[DurationKey(job.spec)];
    observed.first += now - attempt.started;
    observed.second += 1;
    counts_done_ += 1;
    finish_times_.push_back(now);
    std::vector<int64_t> none;
    scheduler_->OnAttemptEnded(job.id, Scheduler::Outcome::kDone, &none);
    reporter_->Event("done", Json{{"job", ShortKey(job.key)}, {"stage", job.spec.stage}, {"method", job.spec.method},
                                  {"seconds", now - attempt.started}, {"metrics", outcome.metrics}});
    return Status::Ok();
  }

  const FailureClass failure = outcome.failure_class;
  const std::string class_name = FailureClassName(failure);
  const std::string& message = outcome.message;
  if (outcome.discard_checkpoint && !job.checkpoint.empty()) {
    ATP_RETURN_IF_ERROR(store_->DiscardCheckpoint(job.id, attempt.attempt_id, message));
    job.checkpoint.clear();
  }
  // A full disk is the run's problem, not the job's: every job would fail the same way and
  // spend its retries in seconds. The attempt is not counted and the run stops (exit 3); the
  // relaunch, once there is space, continues.
  const bool no_space_left = outcome.no_space_left;
  if (no_space_left && !preempting_) {
    preempting_ = true;
    reporter_->Message("no space left on device for job " + ShortKey(job.key) + " (" + message +
                       "): stopping the run; free space under " + options_.jobs_dir +
                       " and relaunch the same command to continue");
    Broadcast(PreemptMessage{});
  }
  RetryRule rule = job.spec.retry.rule(failure);
  if (no_space_left) rule = RetryRule{true, false};
  const int counted = job.attempts + (rule.counts_attempt ? 1 : 0);
  JobState next = JobState::kPending;
  std::string verdict;
  if (no_space_left) {
    verdict = "not counted (no space left on device); the run stops";
  } else if (!rule.retry) {
    next = JobState::kFailed;
    verdict = "not retried (" + class_name + " is terminal)";
  } else if (rule.counts_attempt && counted >= job.spec.retry.max_attempts) {
    next = JobState::kFailed;
    verdict = "gave up after " + std::to_string(counted) + " attempts";
  } else if (failure == FailureClass::kNodeLost && ++node_lost_retries_[job.id] > job.spec.retry.max_attempts) {
    next = JobState::kFailed;
    verdict = "lost its rank " + std::to_string(node_lost_retries_[job.id]) + " times";
  } else if (failure == FailureClass::kPreempted) {
    verdict = "will resume from its checkpoint";
  } else {
    verdict = "will retry";
  }
  std::string recorded = message + (next == JobState::kFailed ? " [" + verdict + "]" : "");
  ATP_RETURN_IF_ERROR(store_->FailAttempt(attempt.attempt_id, job.id, failure, recorded, next, rule.counts_attempt));
  job.attempts = counted;
  job.failure = failure;
  job.error = recorded;
  job.state = next;
  Json details = {{"job", ShortKey(job.key)}, {"stage", job.spec.stage}, {"method", job.spec.method},
                  {"class", class_name}, {"message", message + " — " + verdict}};
  if (next == JobState::kFailed) {
    counts_failed_ += 1;
    reporter_->Event("failed", details);
    std::vector<int64_t> blocked;
    scheduler_->OnAttemptEnded(job.id, Scheduler::Outcome::kFailed, &blocked);
    return Block(blocked, job.id);
  }
  reporter_->Event(failure == FailureClass::kPreempted ? "preempted" : "retry", details);
  std::vector<int64_t> none;
  // A preempted job stays pending for the next run: it is not dispatched again in this one.
  if (!preempting_) scheduler_->OnAttemptEnded(job.id, Scheduler::Outcome::kRetry, &none);
  else scheduler_->OnAttemptEnded(job.id, Scheduler::Outcome::kFailed, &none);
  return Status::Ok();
}

Status Coordinator::HandleMessage(int source, const Message& message) {
  auto rank_it = ranks_.find(source);
  if (rank_it != ranks_.end()) rank_it->second.last_seen = clock_->Now();
  if (rank_it != ranks_.end() && !rank_it->second.alive) return Status::Ok();  // a lost rank stays lost
  auto malformed = [&](const Status& status) {
    reporter_->Message("ignored a malformed message from rank " + std::to_string(source) + ": " + status.message());
    return Status::Ok();
  };
  switch (message.type) {
    case MessageType::kProgress: {
      auto progress = DecodeAs<ProgressMessage>(message);
      if (!progress.ok()) return malformed(progress.status());
      auto attempt_it = attempts_.find(progress->attempt_id);
      if (attempt_it == attempts_.end()) break;
      LiveAttempt& a = attempt_it->second;
      a.step = progress->step;
      a.total = progress->total;
      a.progress_dirty = true;
      if (clock_->Now() - a.last_progress_write >= options_.progress_write_interval_s) {
        ATP_RETURN_IF_ERROR(store_->UpdateProgress(a.attempt_id, a.step, a.total));
        a.last_progress_write = clock_->Now();
        a.progress_dirty = false;
      }
      break;
    }
    case MessageType::kCheckpoint: {
      auto checkpoint = DecodeAs<CheckpointMessage>(message);
      if (!checkpoint.ok()) return malformed(checkpoint.status());
      auto attempt_it = attempts_.find(checkpoint->attempt_id);
      if (attempt_it == attempts_.end()) break;
      ATP_RETURN_IF_ERROR(
          store_->RecordCheckpoint(attempt_it->second.job_id, checkpoint->attempt_id, checkpoint->path));
      jobs_[attempt_it->second.job_id].checkpoint = checkpoint->path;
      break;
    }
    case MessageType::kFinished: {
      auto finished = DecodeAs<FinishedMessage>(message);
      if (finished.ok()) return HandleFinished(source, *finished);
      // An attempt's end is never dropped: when the report names its attempt but cannot be
      // read otherwise, the attempt fails as "error" with what was wrong.
      const auto attempt_id = message.body.find("attempt_id");
      if (attempt_id == message.body.end() || !attempt_id->is_number_integer()) return malformed(finished.status());
      FinishedMessage unreadable =
          FinishedMessage::Failure(FailureClass::kError, "unreadable result: " + finished.status().message());
      unreadable.attempt_id = attempt_id->get<int64_t>();
      return HandleFinished(source, unreadable);
    }
    default:
      break;  // hello (late) and heartbeat only refresh last_seen
  }
  return Status::Ok();
}

Status Coordinator::HandleFinished(int source, const FinishedMessage& finished) {
  auto attempt_it = attempts_.find(finished.attempt_id);
  if (attempt_it == attempts_.end()) return Status::Ok();  // a stale report for an attempt already ended
  LiveAttempt& a = attempt_it->second;
  auto& waiting = a.waiting_for;
  waiting.erase(std::remove(waiting.begin(), waiting.end(), source), waiting.end());
  if (source == a.ranks.front()) a.leader_outcome = finished;
  if (!finished.ok && !a.first_failure) a.first_failure = finished;
  if (!waiting.empty()) return Status::Ok();
  LiveAttempt done = std::move(a);
  attempts_.erase(attempt_it);
  FinishedMessage outcome = done.first_failure ? *done.first_failure : *done.leader_outcome;
  return EndAttempt(std::move(done), outcome);
}

Status Coordinator::CheckHeartbeats() {
  const double now = clock_->Now();
  for (auto& [rank, state] : ranks_) {
    if (!state.alive || now - state.last_seen <= options_.heartbeat_timeout_s) continue;
    state.alive = false;
    lost_ranks_ += 1;
    reporter_->Message("rank " + std::to_string(rank) + " on " + state.node + " silent for " +
                       FormatDuration(now - state.last_seen) + ": marked lost; its job is retried elsewhere");
    std::vector<int64_t> lost_jobs = scheduler_->QueuedOnRank(rank);
    int64_t running_job = scheduler_->OnRankLost(rank);
    if (running_job != 0) lost_jobs.insert(lost_jobs.begin(), running_job);
    for (int64_t job_id : lost_jobs) ATP_RETURN_IF_ERROR(EndAttemptOfLostRank(job_id, rank));
  }
  return FailUnschedulable();
}

Status Coordinator::EndAttemptOfLostRank(int64_t job_id, int lost_rank) {
  auto it = std::find_if(attempts_.begin(), attempts_.end(),
                         [job_id](const auto& entry) { return entry.second.job_id == job_id; });
  if (it == attempts_.end()) return Status::Ok();
  LiveAttempt lost = std::move(it->second);
  attempts_.erase(it);
  // The job's other ranks may be blocked in a collective with the lost one: end their part.
  std::string cancel = EncodeMessage(CancelMessage{job_id, lost.attempt_id});
  for (int member : lost.ranks) {
    if (member != lost_rank && ranks_[member].alive) (void)comm_->Send(member, kProtocolTag, cancel);
  }
  return EndAttempt(std::move(lost), FinishedMessage::Failure(FailureClass::kNodeLost,
                                                             "rank " + std::to_string(lost_rank) + " on " +
                                                                 ranks_[lost_rank].node + " stopped answering"));
}

ProgressSnapshot Coordinator::Snapshot() const {
  ProgressSnapshot s;
  s.total = static_cast<int64_t>(jobs_.size());
  s.done = counts_done_;
  s.failed = counts_failed_;
  s.blocked = counts_blocked_;
  s.running = scheduler_ ? scheduler_->running() : 0;
  s.pending = s.total - s.done - s.failed - s.blocked - s.running;
  s.live_ranks = scheduler_ ? scheduler_->live_ranks() : 0;
  s.busy_ranks = scheduler_ ? scheduler_->busy_ranks() : 0;
  const double now = clock_->Now();
  s.elapsed_s = now - start_time_;
  // Rate over the last minute of completions (or the whole run when it is younger).
  const double window = std::min(60.0, std::max(1e-3, s.elapsed_s));
  auto first_recent = std::lower_bound(finish_times_.begin(), finish_times_.end(), now - window);
  const double recent = static_cast<double>(finish_times_.end() - first_recent);
  s.rate_per_s = recent / window;
  s.done_this_run = static_cast<int64_t>(finish_times_.size());
  s.eta_s = (s.rate_per_s > 0) ? static_cast<double>(s.pending + s.running) / s.rate_per_s : -1;
  return s;
}

Result<RunSummary> Coordinator::Run(const Sweep& sweep) {
  start_time_ = clock_->Now();
  // Workers first, so that the run's provenance lists every rank's host.
  ATP_RETURN_IF_ERROR(WaitForWorkers());
  Provenance provenance = options_.provenance;
  provenance.hosts = {comm_->node_name()};
  for (const auto& [rank, state] : ranks_) provenance.hosts.push_back(state.alive ? state.node : "(lost)");
  ATP_ASSIGN_OR_RETURN(epoch_, store_->BeginRun(provenance));
  ATP_ASSIGN_OR_RETURN(RecoverySummary recovery, store_->RecoverInterruptedAttempts(epoch_));
  if (recovery.requeued || recovery.poisoned) {
    reporter_->Message("recovered from an interrupted run: " + std::to_string(recovery.requeued) +
                       " job(s) requeued, " + std::to_string(recovery.poisoned) +
                       " failed after being lost with the run too often");
  }
  ATP_ASSIGN_OR_RETURN(SubmitSummary submitted, store_->SubmitSweep(sweep));
  if (options_.retry_failed) {
    ATP_ASSIGN_OR_RETURN(int64_t reset, store_->ResetFailedJobs(submitted.sweep_id));
    if (reset) reporter_->Message("--retry-failed: " + std::to_string(reset) + " failed or blocked job(s) reset");
  }
  ATP_ASSIGN_OR_RETURN(std::vector<JobRecord> records, store_->LoadSweepJobs(submitted.sweep_id));
  ATP_ASSIGN_OR_RETURN(auto durations, store_->MeanDurations());
  std::error_code ec;
  std::filesystem::create_directories(options_.jobs_dir, ec);
  if (ec) return IoError("cannot create the job directory " + options_.jobs_dir + ": " + ec.message());

  std::vector<WorkerRank> workers;
  for (const auto& [rank, state] : ranks_) {
    if (state.alive) workers.push_back(WorkerRank{rank, state.node});
  }
  scheduler_ = std::make_unique<Scheduler>(workers);
  for (auto& record : records) {
    double expected = record.spec.expected_seconds;
    if (expected <= 0) {
      auto it = durations.find(DurationKey(record.spec));
      expected = it != durations.end() ? it->second : 1.0;
    }
    scheduler_->AddJob(SchedulerJob{record.id, record.spec.ranks, record.upstream_ids, expected}, record.state);
    if (record.state == JobState::kDone) counts_done_ += 1;
    if (record.state == JobState::kFailed) counts_failed_ += 1;
    if (record.state == JobState::kBlocked) counts_blocked_ += 1;
    order_.push_back(record.id);
    jobs_.emplace(record.id, std::move(record));
  }
  // Jobs below a job that failed outside a live attempt (lost with the run too often, see
  // RecoverInterruptedAttempts) are blocked here, in the database too: otherwise they would
  // stay pending forever and the sweep would never end.
  scheduler_->Finalize();
  ATP_RETURN_IF_ERROR(store_->BeginBatch());
  for (const auto& blocked : scheduler_->TakeBlockedAtStart()) {
    ATP_RETURN_IF_ERROR(Block({blocked.job_id}, blocked.cause));
  }
  ATP_RETURN_IF_ERROR(FailUnschedulable());
  ATP_RETURN_IF_ERROR(store_->CommitBatch());
  reporter_->Message("sweep '" + sweep.name + "': " + std::to_string(jobs_.size()) + " jobs (" +
                     std::to_string(submitted.new_jobs) + " new, " + std::to_string(counts_done_) +
                     " already done) on " + std::to_string(workers.size()) + " worker rank(s); run epoch " +
                     std::to_string(epoch_));

  double next_db_heartbeat = clock_->Now();
  while (true) {
    if (stop_requested_ && stop_requested_->load() && !preempting_) {
      preempting_ = true;
      reporter_->Message("stop requested: running jobs checkpoint and stop; relaunch the same command to continue");
      Broadcast(PreemptMessage{});
    }
    ATP_RETURN_IF_ERROR(store_->BeginBatch());
    if (!preempting_) {
      for (const Assignment& a : scheduler_->Schedule()) ATP_RETURN_IF_ERROR(Dispatch(a));
      for (const Assignment& a : scheduler_->Prefetch([this](int64_t job) { return IsShortJob(job); })) {
        ATP_RETURN_IF_ERROR(Dispatch(a));
      }
    }
    bool finished = preempting_ ? scheduler_->running() == 0 : !scheduler_->HasWork();
    if (finished) {
      ATP_RETURN_IF_ERROR(store_->CommitBatch());
      break;
    }
    // Wait for the first message a little, then drain what else has arrived.
    for (int i = 0; i < kMaxMessagesPerRound; ++i) {
      ATP_ASSIGN_OR_RETURN(auto envelope, comm_->Receive(i == 0 ? 0.05 : 0.0));
      if (!envelope) break;
      auto message = DecodeMessage(envelope->payload);
      if (!message.ok()) {
        reporter_->Message("ignored a malformed message from rank " + std::to_string(envelope->source) + ": " +
                           message.status().message());
        continue;
      }
      ATP_RETURN_IF_ERROR(HandleMessage(envelope->source, *message));
    }
    ATP_RETURN_IF_ERROR(CheckHeartbeats());
    if (clock_->Now() >= next_db_heartbeat) {
      ATP_RETURN_IF_ERROR(store_->Heartbeat(epoch_));
      for (auto& [id, a] : attempts_) {
        if (a.progress_dirty) {
          ATP_RETURN_IF_ERROR(store_->UpdateProgress(a.attempt_id, a.step, a.total));
          a.progress_dirty = false;
          a.last_progress_write = clock_->Now();
        }
      }
      next_db_heartbeat = clock_->Now() + options_.progress_write_interval_s;
    }
    ATP_RETURN_IF_ERROR(store_->CommitBatch());
    reporter_->Update(Snapshot());
  }

  Broadcast(ShutdownMessage{});
  RunSummary summary;
  summary.sweep_id = submitted.sweep_id;
  summary.epoch = epoch_;
  ProgressSnapshot last = Snapshot();
  summary.total = last.total;
  summary.done = counts_done_;
  summary.failed = counts_failed_;
  summary.blocked = counts_blocked_;
  summary.pending = last.pending + last.running;
  summary.ran = ran_;
  summary.interrupted = preempting_;
  summary.lost_ranks = lost_ranks_;
  std::string outcome = preempting_ ? "interrupted" : (summary.failed + summary.blocked > 0 ? "completed with failures"
                                                                                             : "completed");
  ATP_RETURN_IF_ERROR(store_->EndRun(epoch_, outcome));
  reporter_->Finish(last, "sweep '" + sweep.name + "' " + outcome + ": " + std::to_string(summary.done) + " done, " +
                              std::to_string(summary.failed) + " failed, " + std::to_string(summary.blocked) +
                              " blocked, " + std::to_string(summary.pending) + " not run");
  return summary;
}

}  // namespace atp
