#include "worker/worker.h"

#include <unistd.h>

namespace atp {
namespace {
constexpr double kRelayInterval = 0.5;
}  // namespace

Worker::Worker(Communicator* comm, WorkerOptions options, Clock* clock, const std::atomic<bool>* stop_signal)
    : comm_(comm),
      options_(std::move(options)),
      clock_(clock),
      stop_signal_(stop_signal),
      runner_(options_.executor_binary, clock) {}

template <typename T>
Status Worker::Send(const T& message) {
  return comm_->Send(options_.coordinator_rank, kProtocolTag, EncodeMessage(message));
}

Status Worker::HandleAssign(AssignMessage assign) {
  if (runner_.busy() || !queued_.empty()) {
    queued_.push_back(std::move(assign));
    return Status::Ok();
  }
  return StartJob(assign);
}

Status Worker::ReportNotStarted(const AssignMessage& assign, FailureClass failure_class, const std::string& message) {
  FinishedMessage finished = FinishedMessage::Failure(failure_class, message);
  finished.job_id = assign.job_id;
  finished.attempt_id = assign.attempt_id;
  return Send(finished);
}

Status Worker::ReportFailure(FailureClass failure_class, const std::string& message) {
  FinishedMessage finished = FinishedMessage::Failure(failure_class, message);
  finished.job_id = job_id_;
  finished.attempt_id = attempt_id_;
  return Send(finished);
}

Status Worker::StartJob(const AssignMessage& assign) {
  JobRequest request;
  request.job_id = assign.job_id;
  request.attempt_id = assign.attempt_id;
  request.attempt = assign.attempt;
  request.attempt_number = assign.attempt_number;
  request.spec = assign.spec.ToJson();
  request.upstream = Json::array();
  for (const UpstreamJob& up : assign.upstream) {
    request.upstream.push_back(
        Json{{"key", up.key}, {"stage", up.stage}, {"method", up.method}, {"outputs", up.outputs}});
  }
  request.workdir = assign.workdir;
  request.resume = assign.resume;
  request.hang_timeout_s = assign.spec.hang_timeout_s;
  request.device_slot = options_.device_slot;
  const std::vector<int>& ranks = assign.ranks;
  int group_rank = 0;
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (ranks[i] == comm_->rank()) group_rank = static_cast<int>(i);
  }
  job_id_ = request.job_id;
  attempt_id_ = request.attempt_id;
  leader_ = group_rank == 0;
  group_.reset();
  if (ranks.size() > 1) {
    auto group = comm_->CreateGroup(ranks, assign.group_tag);
    if (!group.ok()) {
      return ReportFailure(FailureClass::kNodeLost, "cannot form the job's group: " + group.status().message());
    }
    group_ = std::move(group).value();
  }
  Status started = runner_.Start(request, group_.get(), group_rank, static_cast<int>(ranks.size()));
  if (!started.ok()) return ReportFailure(FailureClass::kCrash, "cannot start the job process: " + started.message());
  if (preempting_) runner_.RequestStop();
  return Status::Ok();
}

Status Worker::ForwardEvents(const std::vector<Json>& events) {
  for (const Json& event : events) {
    const std::string kind = event.value("event", "");
    Json body = event;
    body.erase("event");
    body["job_id"] = job_id_;
    body["attempt_id"] = attempt_id_;
    if (kind == "finished") {
      group_.reset();
      if (pending_checkpoint_) ATP_RETURN_IF_ERROR(Send(*pending_checkpoint_));
      pending_checkpoint_.reset();
      pending_progress_.reset();
      auto finished = DecodeBody<FinishedMessage>(body);
      if (!finished.ok()) {
        // Never lose an attempt's end: a result that cannot be read is the job's error.
        ATP_RETURN_IF_ERROR(ReportFailure(FailureClass::kError,
                                          "the job process reported an unreadable result: " +
                                              finished.status().message()));
        continue;
      }
      ATP_RETURN_IF_ERROR(Send(*finished));
    } else if (leader_ && kind == "progress") {
      // Progress and checkpoints that cannot be read are dropped: the result still comes.
      auto progress = DecodeBody<ProgressMessage>(body);
      if (progress.ok()) pending_progress_ = *progress;
    } else if (leader_ && kind == "checkpoint") {
      auto checkpoint = DecodeBody<CheckpointMessage>(body);
      if (checkpoint.ok()) pending_checkpoint_ = *checkpoint;
    }
  }
  if (clock_->Now() - last_relay_ >= kRelayInterval && (pending_progress_ || pending_checkpoint_)) {
    last_relay_ = clock_->Now();
    if (pending_checkpoint_) ATP_RETURN_IF_ERROR(Send(*pending_checkpoint_));
    if (pending_progress_) ATP_RETURN_IF_ERROR(Send(*pending_progress_));
    pending_checkpoint_.reset();
    pending_progress_.reset();
  }
  return Status::Ok();
}

Status Worker::Run() {
  ATP_RETURN_IF_ERROR(Send(HelloMessage{comm_->node_name(), static_cast<int64_t>(::getpid())}));
  double next_heartbeat = clock_->Now() + options_.heartbeat_interval_s;
  while (true) {
    if (stop_signal_ && stop_signal_->load() && !preempting_) {
      preempting_ = true;
      runner_.RequestStop();
    }
    if (runner_.busy()) {
      auto events = runner_.Poll(0.001);
      if (!events.ok()) return events.status();
      ATP_RETURN_IF_ERROR(ForwardEvents(*events));
    }
    if (!runner_.busy() && !queued_.empty()) {
      AssignMessage next = std::move(queued_.front());
      queued_.pop_front();
      if (preempting_) {
        ATP_RETURN_IF_ERROR(ReportNotStarted(next, FailureClass::kPreempted, "stopped before it started"));
      } else {
        ATP_RETURN_IF_ERROR(StartJob(next));
      }
      continue;
    }
    auto envelope = comm_->Receive(runner_.busy() ? 0.0 : 0.05);
    if (!envelope.ok()) return envelope.status();
    if (envelope->has_value()) {
      auto message = DecodeMessage((*envelope)->payload);
      if (!message.ok()) return message.status();
      switch (message->type) {
        case MessageType::kAssign: {
          auto assign = DecodeAs<AssignMessage>(*message);
          if (!assign.ok()) return assign.status();
          ATP_RETURN_IF_ERROR(HandleAssign(std::move(assign).value()));
          break;
        }
        case MessageType::kPreempt:
          preempting_ = true;
          runner_.RequestStop();
          while (!queued_.empty()) {
            ATP_RETURN_IF_ERROR(
                ReportNotStarted(queued_.front(), FailureClass::kPreempted, "stopped before it started"));
            queued_.pop_front();
          }
          break;
        case MessageType::kCancel: {
          auto cancel = DecodeAs<CancelMessage>(*message);
          if (!cancel.ok()) return cancel.status();
          for (auto it = queued_.begin(); it != queued_.end(); ++it) {
            if (it->attempt_id == cancel->attempt_id) {
              ATP_RETURN_IF_ERROR(ReportNotStarted(*it, FailureClass::kNodeLost, "cancelled before it started"));
              queued_.erase(it);
              break;
            }
          }
          if (runner_.busy() && cancel->attempt_id == attempt_id_) {
            runner_.KillExecutor();
            (void)runner_.Poll(0);  // consumes the dead executor's state
            group_.reset();
            ATP_RETURN_IF_ERROR(ReportFailure(FailureClass::kNodeLost, "cancelled: another rank of this job was lost"));
          }
          break;
        }
        case MessageType::kShutdown:
          runner_.KillExecutor();
          return Status::Ok();
        default:
          break;  // nothing else is addressed to workers
      }
    }
    if (clock_->Now() >= next_heartbeat) {
      next_heartbeat = clock_->Now() + options_.heartbeat_interval_s;
      ATP_RETURN_IF_ERROR(Send(HeartbeatMessage{runner_.busy(), runner_.running_job()}));
    }
  }
}

}  // namespace atp
