#include "worker/job_runner.h"

#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "common/messages.h"
#include "worker/executor.h"

namespace atp {
namespace {

std::string SignalDescription(int sig) {
  const char* name = sigabbrev_np(sig);
  std::string text = std::string("SIG") + (name ? name : std::to_string(sig).c_str());
  const char* description = sigdescr_np(sig);
  if (description) text += " (" + std::string(description) + ")";
  return text;
}

}  // namespace

int64_t JobRunner::SystemOomKills() {
  std::ifstream in("/proc/vmstat");
  std::string name;
  int64_t value = 0;
  while (in >> name >> value) {
    if (name == "oom_kill") return value;
  }
  return -1;
}

JobRunner::JobRunner(std::string executor_binary, Clock* clock, OomKillCounter oom_kills)
    : executor_binary_(std::move(executor_binary)), clock_(clock), oom_kills_(std::move(oom_kills)) {}

JobRunner::~JobRunner() { KillExecutor(); }

Status JobRunner::SpawnExecutor() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return IoError(std::string("socketpair: ") + std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  const std::string parent_text = std::to_string(parent);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return IoError(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec. Own process group, so that terminal
    // signals reach the worker (which asks for a checkpoint) and the watchdog can kill the
    // job together with any processes it started.
    ::setpgid(0, 0);
    ::dup2(fds[1], 3);  // dup2 clears close-on-exec on the copy
    const char* args[] = {executor_binary_.c_str(), kExecutorFlag, "3", parent_text.c_str(), nullptr};
    ::execv(executor_binary_.c_str(), const_cast<char* const*>(args));
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  ::close(fds[1]);
  pid_ = pid;
  socket_fd_ = fds[0];
  channel_ = std::make_unique<FrameChannel>(socket_fd_);
  killed_by_us_ = false;
  oom_kills_at_start_ = oom_kills_ ? oom_kills_() : -1;
  return Status::Ok();
}

Status JobRunner::Start(const JobRequest& request, GroupCommunicator* group, int group_rank, int group_size) {
  if (running_) return FailedPrecondition("a job is already running on this worker");
  if (pid_ >= 0) {
    // An executor that died while idle must not cost the next job an attempt: replace it.
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      ::close(socket_fd_);
      channel_.reset();
      socket_fd_ = -1;
      pid_ = -1;
    }
  }
  if (pid_ < 0) ATP_RETURN_IF_ERROR(SpawnExecutor());
  Json run = {{"type", "run"},
              {"spec", request.spec},
              {"attempt", request.attempt},
              {"attempt_number", request.attempt_number > 0 ? request.attempt_number : request.attempt},
              {"upstream", request.upstream},
              {"workdir", request.workdir},
              {"resume", request.resume},
              {"group_rank", group_rank},
              {"group_size", group_size},
              {"device_slot", request.device_slot}};
  running_ = Running{request, group, clock_->Now(), false};
  // A failed send means the executor died just now; Poll() then reports the attempt from its
  // wait status, so the failure is recorded rather than lost.
  (void)channel_->Send(run);
  return Status::Ok();
}

Json JobRunner::Failure(FailureClass failure_class, const std::string& message) const {
  Json event = EncodeBody(FinishedMessage::Failure(failure_class, message));
  event["event"] = "finished";
  return event;
}

Json JobRunner::ReapDeadExecutor(const std::string& context) {
  int status = 0;
  pid_t waited = 0;
  for (int i = 0; i < 200; ++i) {  // up to ~2 s for a closing process to exit on its own
    waited = ::waitpid(pid_, &status, WNOHANG);
    if (waited != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (waited == 0) {
    killed_by_us_ = true;  // it closed its channel but did not exit: our SIGKILL is no OOM
    ::kill(-pid_, SIGKILL);
    waited = ::waitpid(pid_, &status, 0);
  }
  ::close(socket_fd_);
  channel_.reset();
  socket_fd_ = -1;
  pid_ = -1;
  std::string message;
  FailureClass failure_class = FailureClass::kCrash;
  if (waited > 0 && WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    message = "job process killed by " + SignalDescription(sig);
    if (sig == SIGKILL && !killed_by_us_) {
      // Not from atp: the kernel's out-of-memory killer, or someone else (kill -9, a
      // scheduler). The kernel counts its kills; only a count that went up says "oom".
      const int64_t now = oom_kills_ ? oom_kills_() : -1;
      if (oom_kills_at_start_ >= 0 && now > oom_kills_at_start_) {
        failure_class = FailureClass::kOutOfMemory;
        message += "; the kernel's out-of-memory killer ended a process meanwhile (oom_kill count " +
                   std::to_string(oom_kills_at_start_) + " -> " + std::to_string(now) + ")";
      } else if (oom_kills_at_start_ >= 0) {
        message += " from outside atp; not the out-of-memory killer (the kernel's oom_kill count did not change)";
      } else {
        message += " from outside atp (the kernel's out-of-memory killer or another process; its oom_kill count is "
                   "not readable here)";
      }
    }
  } else if (waited > 0 && WIFEXITED(status)) {
    message = "job process exited with code " + std::to_string(WEXITSTATUS(status)) + " without reporting a result";
    if (WEXITSTATUS(status) == 127) message += " (could not execute " + executor_binary_ + ")";
  } else {
    message = "job process vanished";
  }
  if (!context.empty()) message = context + ": " + message;
  return Failure(failure_class, message);
}

Result<std::vector<Json>> JobRunner::Poll(double timeout_s) {
  std::vector<Json> events;
  if (!running_) return events;
  if (!channel_) {  // the executor could not be reached when the job was sent
    events.push_back(Failure(FailureClass::kCrash, "job process was not running"));
    running_.reset();
    return events;
  }
  double wait = timeout_s;
  while (running_) {
    auto frame = channel_->Receive(wait);
    wait = 0;  // drain what is already there, then return
    if (!frame.ok()) {
      events.push_back(ReapDeadExecutor(""));
      running_.reset();
      break;
    }
    if (!frame->has_value()) break;
    Json& event = **frame;
    const std::string kind = event.value("event", "");
    running_->last_activity = clock_->Now();
    if (kind == "allreduce") {
      std::vector<double> data = event["data"].get<std::vector<double>>();
      Json reply = {{"type", "allreduce_result"}};
      Status reduced = running_->group ? running_->group->AllreduceSum(data.data(), data.size())
                                       : FailedPrecondition("job has no group communicator");
      reply["ok"] = reduced.ok();
      if (reduced.ok()) reply["data"] = data; else reply["message"] = reduced.ToString();
      (void)channel_->Send(reply);
      continue;
    }
    if (kind == "finished") {
      // An executor that was asked to stop keeps its stop flag: never reuse it, even when the
      // job finished before it saw the request.
      bool preempted = event.value("failure_class", "") == FailureClassName(FailureClass::kPreempted) ||
                       running_->stop_requested;
      running_.reset();
      events.push_back(std::move(event));
      if (preempted) KillExecutor();  // a stopped executor is not reused
      break;
    }
    events.push_back(std::move(event));
  }
  // Watchdog: no event for longer than the hang timeout.
  if (running_ && clock_->Now() - running_->last_activity > running_->request.hang_timeout_s) {
    double silent = clock_->Now() - running_->last_activity;
    killed_by_us_ = true;
    ::kill(-pid_, SIGKILL);
    ReapDeadExecutor("");
    events.push_back(Failure(FailureClass::kHung, "no progress for " + std::to_string(static_cast<int>(silent)) +
                                         " s (hang timeout " +
                                         std::to_string(static_cast<int>(running_->request.hang_timeout_s)) +
                                         " s): killed"));
    running_.reset();
  }
  return events;
}

void JobRunner::RequestStop() {
  if (!running_ || running_->stop_requested || !channel_) return;
  running_->stop_requested = true;
  (void)channel_->Send(Json{{"type", "stop"}});
}

void JobRunner::KillExecutor() {
  if (pid_ < 0) return;
  killed_by_us_ = true;
  ::kill(-pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  if (socket_fd_ >= 0) ::close(socket_fd_);
  channel_.reset();
  socket_fd_ = -1;
  pid_ = -1;
}

}  // namespace atp
