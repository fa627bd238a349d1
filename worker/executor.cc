#include "worker/executor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <new>
#include <string>
#include <thread>

#include "common/failure.h"
#include "worker/frame_channel.h"
#include "worker/job_context.h"
#include "worker/method_registry.h"
#include "worker/run_method.h"

namespace atp {
namespace {

// Everything the reader thread receives, handed to the job thread.
struct Inbox {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Json> runs;
  std::deque<Json> allreduce_results;
  bool closed = false;
};

// Sends the job's output to its own log file in its working directory (appending, so that a
// resumed attempt keeps the earlier attempt's lines).
void RedirectOutput(const std::string& log_path) {
  std::fflush(stdout);
  std::fflush(stderr);
  int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;  // keep the inherited streams rather than lose the output
  ::dup2(fd, STDOUT_FILENO);
  ::dup2(fd, STDERR_FILENO);
  ::close(fd);
}

FinishedMessage RunOneJob(const Json& request, FrameChannel& channel, Inbox& inbox, std::atomic<bool>& stop_flag) {
  auto spec = JobSpec::FromJson(request.value("spec", Json()));
  if (!spec.ok()) return FinishedMessage::Failure(FailureClass::kUserError, spec.status().message());
  const std::string workdir = request.value("workdir", ".");
  std::error_code ec;
  std::filesystem::create_directories(workdir, ec);
  if (ec == std::errc::no_space_on_device) {
    FinishedMessage full =
        FinishedMessage::Failure(FailureClass::kError, "cannot create job directory " + workdir + ": " + ec.message());
    full.no_space_left = true;
    return full;
  }
  if (ec) {
    return FinishedMessage::Failure(FailureClass::kUserError,
                                    "cannot create job directory " + workdir + ": " + ec.message());
  }
  const int attempt = request.value("attempt", 1);
  // The log is named and headed by the attempt's number in the database, which also counts
  // attempts that used none of the retry budget (preempted, lost); the method sees `attempt`.
  const int attempt_number = request.value("attempt_number", attempt);
  const std::string log_path = workdir + "/attempt-" + std::to_string(attempt_number) + ".log";
  RedirectOutput(log_path);
  std::fprintf(stderr, "[atp] job %s attempt %d: %s %s\n", spec->Key().substr(0, 12).c_str(), attempt_number,
               spec->method.c_str(), spec->params.dump().c_str());

  JobContext::Channel link;
  link.send_event = [&channel](const Json& event) { (void)channel.Send(event); };
  link.allreduce = [&channel, &inbox](std::vector<double>* data) -> Status {
    ATP_RETURN_IF_ERROR(channel.Send(Json{{"event", "allreduce"}, {"data", *data}}));
    std::unique_lock<std::mutex> lock(inbox.mutex);
    inbox.changed.wait(lock, [&] { return !inbox.allreduce_results.empty() || inbox.closed; });
    if (inbox.allreduce_results.empty()) return Unavailable("worker closed the channel during an allreduce");
    Json reply = std::move(inbox.allreduce_results.front());
    inbox.allreduce_results.pop_front();
    if (!reply.value("ok", false)) return Internal(reply.value("message", "allreduce failed"));
    *data = reply["data"].get<std::vector<double>>();
    return Status::Ok();
  };
  JobContext context(*spec, attempt, request.value("upstream", Json::array()), workdir, request.value("resume", ""),
                     request.value("group_rank", 0), request.value("group_size", 1), link, &stop_flag,
                     request.value("device_slot", 0));

  FinishedMessage outcome = RunMethodCatching(FindMethodFunction(spec->method), spec->method, context);
  outcome.artifacts.emplace_back("log", log_path);
  if (!outcome.ok) {
    std::fprintf(stderr, "[atp] failed (%s): %s\n", FailureClassName(outcome.failure_class), outcome.message.c_str());
  }
  std::fflush(stdout);
  std::fflush(stderr);
  return outcome;
}

}  // namespace

bool IsExecutorCommandLine(int argc, char** argv) { return argc >= 3 && std::strcmp(argv[1], kExecutorFlag) == 0; }

int MaybeRunExecutor(int argc, char** argv) {
  if (!IsExecutorCommandLine(argc, argv)) return -1;
  const int fd = std::atoi(argv[2]);
  const pid_t expected_parent = static_cast<pid_t>(argc > 3 ? std::atol(argv[3]) : 0);
  // Die with the worker rank; if it is already gone, stop now.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (expected_parent != 0 && getppid() != expected_parent) return 1;
  // Terminal signals go to the worker, which asks us to checkpoint; never die from them here.
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGUSR1, SIG_IGN);  // scancel --signal=USR1 reaches every process of the step
  signal(SIGUSR2, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  RegisterBuiltinMethods();

  FrameChannel channel(fd);
  Inbox inbox;
  std::atomic<bool> stop_flag{false};
  std::thread reader([&] {
    while (true) {
      auto frame = channel.Receive(-1);
      std::lock_guard<std::mutex> lock(inbox.mutex);
      if (!frame.ok()) {
        inbox.closed = true;
        inbox.changed.notify_all();
        return;
      }
      if (!frame->has_value()) continue;
      Json& message = **frame;
      const std::string type = message.value("type", "");
      if (type == "run") {
        inbox.runs.push_back(std::move(message));
      } else if (type == "allreduce_result") {
        inbox.allreduce_results.push_back(std::move(message));
      } else if (type == "stop") {
        stop_flag = true;
      }
      inbox.changed.notify_all();
    }
  });

  while (true) {
    Json request;
    {
      std::unique_lock<std::mutex> lock(inbox.mutex);
      inbox.changed.wait(lock, [&] { return !inbox.runs.empty() || inbox.closed; });
      if (inbox.runs.empty()) break;
      request = std::move(inbox.runs.front());
      inbox.runs.pop_front();
    }
    // stop_flag is never cleared: a stopped (preempted) executor is retired by its worker.
    Json outcome = EncodeBody(RunOneJob(request, channel, inbox, stop_flag));
    outcome["event"] = "finished";
    if (!channel.Send(outcome).ok()) break;
  }
  // The worker closed the channel: leave without running static destructors of libraries
  // that may still have threads (libtorch pools).
  std::fflush(nullptr);
  std::_Exit(0);
}

}  // namespace atp
