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

Status Worker::Send(MessageType type, Json body) {
  return comm_->Send(options_.coordinator_rank, kProtocolTag, EncodeMessage(Message{type, std::move(body)}));
}

Status Worker::HandleAssign(const Json& body) {
  if (runner_.busy() || !queued_.empty()) {
    queued_.push_back(body);
    return Status::Ok();
  }
  return StartJob(body);
}

Status Worker::ReportNotStarted(const Json& body, const std::string& failure_class, const std::string& message) {
  return Send(MessageType::kFinished, Json{{"job_id", body.at("job_id")}, {"attempt_id", body.at("attempt_id")},
                                           {"ok", false}, {"failure_class", failure_class}, {"message", message}});
}

Status Worker::StartJob(const Json& body) {
  JobRequest request;
  request.job_id = body.at("job_id").get<int64_t>();
  request.attempt_id = body.at("attempt_id").get<int64_t>();
  request.attempt = body.value("attempt", 1);
  request.attempt_number = body.value("attempt_number", 0);
  request.spec = body.at("spec");
  request.upstream = body.value("upstream", Json::array());
  request.workdir = body.value("workdir", "");
  request.resume = body.value("resume", "");
  request.hang_timeout_s = body.value("hang_timeout_s", 300.0);
  std::vector<int> ranks = body.at("ranks").get<std::vector<int>>();
  int group_rank = 0;
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (ranks[i] == comm_->rank()) group_rank = static_cast<int>(i);
  }
  job_id_ = request.job_id;
  attempt_id_ = request.attempt_id;
  leader_ = group_rank == 0;
  group_.reset();
  if (ranks.size() > 1) {
    auto group = comm_->CreateGroup(ranks, body.at("group_tag").get<int>());
    if (!group.ok()) {
      return Send(MessageType::kFinished, Json{{"job_id", job_id_}, {"attempt_id", attempt_id_}, {"ok", false},
                                               {"failure_class", "node_lost"},
                                               {"message", "cannot form the job's group: " + group.status().message()}});
    }
    group_ = std::move(group).value();
  }
  Status started = runner_.Start(request, group_.get(), group_rank, static_cast<int>(ranks.size()));
  if (!started.ok()) {
    return Send(MessageType::kFinished, Json{{"job_id", job_id_}, {"attempt_id", attempt_id_}, {"ok", false},
                                             {"failure_class", "crash"},
                                             {"message", "cannot start the job process: " + started.message()}});
  }
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
      if (!pending_checkpoint_.is_null()) ATP_RETURN_IF_ERROR(Send(MessageType::kCheckpoint, pending_checkpoint_));
      pending_checkpoint_ = Json();
      pending_progress_ = Json();
      ATP_RETURN_IF_ERROR(Send(MessageType::kFinished, std::move(body)));
    } else if (leader_ && kind == "progress") {
      pending_progress_ = std::move(body);
    } else if (leader_ && kind == "checkpoint") {
      pending_checkpoint_ = std::move(body);
    }
  }
  if (clock_->Now() - last_relay_ >= kRelayInterval && (!pending_progress_.is_null() || !pending_checkpoint_.is_null())) {
    last_relay_ = clock_->Now();
    if (!pending_checkpoint_.is_null()) ATP_RETURN_IF_ERROR(Send(MessageType::kCheckpoint, pending_checkpoint_));
    if (!pending_progress_.is_null()) ATP_RETURN_IF_ERROR(Send(MessageType::kProgress, pending_progress_));
    pending_checkpoint_ = Json();
    pending_progress_ = Json();
  }
  return Status::Ok();
}

Status Worker::Run() {
  ATP_RETURN_IF_ERROR(Send(MessageType::kHello, Json{{"node", comm_->node_name()}, {"pid", ::getpid()}}));
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
      Json next = std::move(queued_.front());
      queued_.pop_front();
      if (preempting_) {
        ATP_RETURN_IF_ERROR(ReportNotStarted(next, "preempted", "stopped before it started"));
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
        case MessageType::kAssign:
          ATP_RETURN_IF_ERROR(HandleAssign(message->body));
          break;
        case MessageType::kPreempt:
          preempting_ = true;
          runner_.RequestStop();
          while (!queued_.empty()) {
            ATP_RETURN_IF_ERROR(ReportNotStarted(queued_.front(), "preempted", "stopped before it started"));
            queued_.pop_front();
          }
          break;
        case MessageType::kCancel:
          for (auto it = queued_.begin(); it != queued_.end(); ++it) {
            if (it->value("attempt_id", int64_t{0}) == message->body.value("attempt_id", int64_t{0})) {
              ATP_RETURN_IF_ERROR(ReportNotStarted(*it, "node_lost", "cancelled before it started"));
              queued_.erase(it);
              break;
            }
          }
          if (runner_.busy() && message->body.value("attempt_id", int64_t{0}) == attempt_id_) {
            runner_.KillExecutor();
            (void)runner_.Poll(0);  // consumes the dead executor's state
            group_.reset();
            ATP_RETURN_IF_ERROR(Send(MessageType::kFinished,
                                     Json{{"job_id", job_id_}, {"attempt_id", attempt_id_}, {"ok", false},
                                          {"failure_class", "node_lost"},
                                          {"message", "cancelled: another rank of this job was lost"}}));
          }
          break;
        case MessageType::kShutdown:
          runner_.KillExecutor();
          return Status::Ok();
        default:
          break;  // nothing else is addressed to workers
      }
    }
    if (clock_->Now() >= next_heartbeat) {
      next_heartbeat = clock_->Now() + options_.heartbeat_interval_s;
      ATP_RETURN_IF_ERROR(Send(MessageType::kHeartbeat, Json{{"busy", runner_.busy()}, {"job_id", runner_.running_job()}}));
    }
  }
}

}  // namespace atp
