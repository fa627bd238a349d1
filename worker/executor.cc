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
#include "worker/job_failure.h"
#include "worker/method_registry.h"

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

bool LooksLikeOutOfMemory(const std::string& message) {
  for (const char* needle : {"out of memory", "CUDA out of memory", "std::bad_alloc", "Cannot allocate memory"}) {
    if (message.find(needle) != std::string::npos) return true;
  }
  return false;
}

bool LooksLikeNoSpaceLeft(const std::string& message) {
  return message.find(std::strerror(ENOSPC)) != std::string::npos ||  // "No space left on device"
         message.find(std::strerror(EDQUOT)) != std::string::npos;    // "Disk quota exceeded"
}

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

Json RunOneJob(const Json& request, FrameChannel& channel, Inbox& inbox, std::atomic<bool>& stop_flag) {
  auto spec = JobSpec::FromJson(request.at("spec"));
  if (!spec.ok()) return Json{{"ok", false}, {"failure_class", "user_error"}, {"message", spec.status().message()}};
  const std::string workdir = request.value("workdir", ".");
  std::error_code ec;
  std::filesystem::create_directories(workdir, ec);
  if (ec == std::errc::no_space_on_device) {
    return Json{{"ok", false}, {"failure_class", "error"}, {"no_space_left", true},
                {"message", "cannot create job directory " + workdir + ": " + ec.message()}};
  }
  if (ec) {
    return Json{{"ok", false}, {"failure_class", "user_error"},
                {"message", "cannot create job directory " + workdir + ": " + ec.message()}};
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
                     request.value("group_rank", 0), request.value("group_size", 1), link, &stop_flag);

  Json outcome = {{"ok", false}, {"artifacts", Json::array({Json::array({"log", log_path})})}};
  const MethodFunction* method = FindMethodFunction(spec->method);
  try {
    if (!method) throw JobFailure(FailureClass::kUserError, "method '" + spec->method + "' is not built into this atp");
    MethodResult result = (*method)(context);
    outcome["ok"] = true;
    outcome["metrics"] = result.metrics;
    outcome["outputs"] = result.outputs;
  } catch (const UnusableCheckpoint& e) {
    outcome["failure_class"] = FailureClassName(e.failure_class());
    outcome["message"] = e.what();
    outcome["discard_checkpoint"] = true;
  } catch (const JobFailure& e) {
    outcome["failure_class"] = FailureClassName(e.failure_class());
    outcome["message"] = e.what();
  } catch (const std::bad_alloc&) {
    outcome["failure_class"] = "oom";
    outcome["message"] = "out of memory (std::bad_alloc)";
  } catch (const std::exception& e) {
    outcome["failure_class"] = LooksLikeOutOfMemory(e.what()) ? "oom" : "error";
    outcome["message"] = e.what();
  } catch (...) {
    outcome["failure_class"] = "error";
    outcome["message"] = "unknown exception";
  }
  // A full disk is no fault of the job: the coordinator stops the run instead of spending
  // every job's retries on it (see Coordinator::EndAttempt).
  if (!outcome["ok"].get<bool>() && LooksLikeNoSpaceLeft(outcome.value("message", ""))) {
    outcome["no_space_left"] = true;
    outcome["failure_class"] = "error";
  }
  if (!outcome["ok"].get<bool>()) {
    std::fprintf(stderr, "[atp] failed (%s): %s\n", outcome["failure_class"].get<std::string>().c_str(),
                 outcome["message"].get<std::string>().c_str());
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
    Json outcome = RunOneJob(request, channel, inbox, stop_flag);
    outcome["event"] = "finished";
    if (!channel.Send(outcome).ok()) break;
  }
  // The worker closed the channel: leave without running static destructors of libraries
  // that may still have threads (libtorch pools).
  std::fflush(nullptr);
  std::_Exit(0);
}

}  // namespace atp
