#include "worker/methods/sleep_method.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <new>
#include <stdexcept>
#include <thread>

#include "common/atomic_file.h"
#include "worker/job_failure.h"

namespace atp {
namespace {

int64_t ReadCheckpointStep(const std::string& path, int64_t steps) {
  std::ifstream in(path);
  if (!in) throw UnusableCheckpoint("cannot read " + path + ": " + std::strerror(errno));
  Json checkpoint = Json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (checkpoint.is_discarded() || !checkpoint.contains("step") || !checkpoint["step"].is_number_integer() ||
      checkpoint["step"].get<int64_t>() < 0 || checkpoint["step"].get<int64_t>() > steps) {
    throw UnusableCheckpoint(path + " is not a sleep checkpoint of at most " + std::to_string(steps) + " steps");
  }
  return checkpoint["step"].get<int64_t>();
}

// Written atomically, so a reader never sees half a checkpoint; errors carry the system's
// reason ("No space left on device").
std::string WriteCheckpoint(const std::string& workdir, int64_t step) {
  std::string path = workdir + "/checkpoint.json";
  Status written = WriteFileAtomically(path, Json{{"step", step}}.dump() + "\n");
  if (!written.ok()) throw std::runtime_error("checkpoint: " + written.message());
  return path;
}

void InjectFailure(const std::string& kind, int64_t step) {
  std::string where = " (injected at step " + std::to_string(step) + ")";
  if (kind == "throw") throw std::runtime_error("sleep: requested failure" + where);
  if (kind == "bad_alloc") throw std::bad_alloc();
  if (kind == "nan") throw JobFailure(FailureClass::kDiverged, "loss is NaN at step " + std::to_string(step));
  if (kind == "user_error") throw JobFailure(FailureClass::kUserError, "sleep: requested user error" + where);
  if (kind == "exit") std::_Exit(3);
  if (kind == "abort") std::abort();
  if (kind == "segfault") {
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
  }
  if (kind == "oom_kill") raise(SIGKILL);  // what the kernel's OOM killer does
  if (kind == "hang") {
    while (true) std::this_thread::sleep_for(std::chrono::seconds(1));  // no progress: the watchdog must act
  }
}

}  // namespace

MethodResult RunSleepMethod(JobContext& context) {
  const Json& p = context.params();
  const double seconds = p.value("seconds", 1.0);
  const int64_t steps = std::max<int64_t>(1, p.value("steps", 10));
  const std::string fail = p.value("fail", "");
  const bool inject = !fail.empty() && context.attempt() <= p.value("fail_attempts", 1000000);
  const int64_t fail_at_step = p.value("fail_at_step", 0);

  int64_t start_step = 0;
  if (!context.resume_checkpoint().empty()) start_step = ReadCheckpointStep(context.resume_checkpoint(), steps);

  const auto step_duration = std::chrono::duration<double>(seconds / static_cast<double>(steps));
  context.ReportProgress(start_step, steps);
  for (int64_t step = start_step; step < steps; ++step) {
    if (inject && step == fail_at_step) InjectFailure(fail, step);
    // Sleep in short slices so that a preemption request is honoured promptly.
    auto until = std::chrono::steady_clock::now() + step_duration;
    while (std::chrono::steady_clock::now() < until) {
      if (context.stop_requested()) {
        if (context.is_leader()) context.ReportCheckpoint(WriteCheckpoint(context.workdir(), step));
        throw JobFailure(FailureClass::kPreempted, "stopped at step " + std::to_string(step) + " of " +
                                                       std::to_string(steps) + "; checkpoint written");
      }
      double left = std::chrono::duration<double>(until - std::chrono::steady_clock::now()).count();
      std::this_thread::sleep_for(std::chrono::duration<double>(std::min(left, 0.02)));
    }
    if (context.is_leader() && seconds > 0) context.ReportCheckpoint(WriteCheckpoint(context.workdir(), step + 1));
    context.ReportProgress(step + 1, steps);
  }
  if (inject && fail_at_step >= steps) InjectFailure(fail, steps);

  MethodResult result;
  const double value = p.value("value", 0.0);
  double upstream_sum = 0;
  for (const auto& up : context.upstream()) upstream_sum += up["outputs"].value("value", 0.0);
  std::vector<double> rank_sum = {static_cast<double>(context.group_rank() + 1)};
  Status reduced = context.AllreduceSum(&rank_sum);
  if (!reduced.ok()) throw std::runtime_error("allreduce failed: " + reduced.ToString());

  result.metrics["value"] = value;
  result.metrics["steps"] = static_cast<double>(steps);
  result.metrics["resumed_from_step"] = static_cast<double>(start_step);
  result.metrics["upstream_value_sum"] = upstream_sum;
  result.metrics["group_rank_sum"] = rank_sum[0];  // 1 + 2 + ... + k proves the group communicator works
  result.outputs = Json{{"value", value}};
  return result;
}

}  // namespace atp
