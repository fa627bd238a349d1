#include "worker/job_runner.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/atomic_file.h"
#include "common/in_process_communicator.h"
#include "common/job_spec.h"
#include "common/method_catalog.h"
#include "tests/support/binary_dir.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace atp {
namespace {

namespace fs = std::filesystem;

// Every job here finishes in well under a second; this only stops a broken runner from
// hanging the suite.
constexpr double kGiveUpAfterSeconds = 60;

class JobRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    executor_ = testing::SweepExecutable();
    // The executor is a dependency of this test binary: missing, it is a broken build.
    ASSERT_EQ(::access(executor_.c_str(), X_OK), 0)
        << "'" << executor_ << "' is missing (build the atp-sweep target, or set ATP_BINARY_DIR)";
    runner_ = std::make_unique<JobRunner>(executor_, RealClock());
  }

  void TearDown() override {
    runner_.reset();  // kills the executor before its directory goes
  }

  // A sleep job with `params` resolved through the catalog, as the coordinator sends it.
  JobRequest SleepJob(const Json& params, const std::string& name = "job") {
    auto resolved = ResolveMethodParams(*FindMethod("sleep"), params);
    EXPECT_OK(resolved);
    JobSpec spec;
    spec.stage = "test";
    spec.method = "sleep";
    spec.params = resolved.ok() ? *resolved : Json::object();
    spec.code_version = "1";
    JobRequest request;
    request.job_id = ++next_job_id_;
    request.attempt_id = next_job_id_ * 10;
    request.spec = spec.ToJson();
    request.workdir = (fs::path(dir_) / name).string();
    request.hang_timeout_s = 60;
    return request;
  }

  // Polls until the job's "finished" event; returns every event in order (the last one is
  // "finished", or the list is empty when the runner never finished the job).
  std::vector<Json> RunToEnd() {
    std::vector<Json> events;
    auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double>(kGiveUpAfterSeconds);
    while (std::chrono::steady_clock::now() < give_up) {
      auto polled = runner_->Poll(0.05);
      EXPECT_OK(polled);
      if (!polled.ok()) break;
      for (auto& event : *polled) {
        events.push_back(event);
        if (event.value("event", "") == "finished") {
          EXPECT_FALSE(runner_->busy());
          return events;
        }
      }
    }
    ADD_FAILURE() << "the job did not finish within " << kGiveUpAfterSeconds << " s";
    return {};
  }

  // Polls until the running job's first progress event (its executor has started it).
  bool WaitForFirstProgress() {
    auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double>(kGiveUpAfterSeconds);
    while (std::chrono::steady_clock::now() < give_up) {
      auto polled = runner_->Poll(0.05);
      if (!polled.ok()) return false;
      if (!OfKind(*polled, "finished").empty()) return false;
      if (!OfKind(*polled, "progress").empty()) return true;
    }
    return false;
  }

  void Start(const JobRequest& request) {
    Status started = runner_->Start(request, nullptr, 0, 1);
    EXPECT_OK(started);
    EXPECT_TRUE(runner_->busy());
    EXPECT_EQ(runner_->running_job(), request.job_id);
  }

  Json Run(const JobRequest& request) {
    Start(request);
    std::vector<Json> events = RunToEnd();
    return events.empty() ? Json::object() : events.back();
  }

  static std::vector<Json> OfKind(const std::vector<Json>& events, const std::string& kind) {
    std::vector<Json> out;
    for (const auto& e : events) {
      if (e.value("event", "") == kind) out.push_back(e);
    }
    return out;
  }

  static bool ProcessGone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  std::string executor_;
  testing::TempDir temp_dir_;
  std::string dir_ = temp_dir_.path();
  FakeClock fake_clock_;  // for the tests of the watchdog; outlives runner_
  std::unique_ptr<JobRunner> runner_;
  int64_t next_job_id_ = 0;
};

TEST_F(JobRunnerTest, SleepJobSucceedsWithMetrics) {
  Json finished = Run(SleepJob(Json{{"seconds", 0.05}, {"steps", 2}, {"value", 0.75}}));
  ASSERT_TRUE(finished.value("ok", false)) << finished.dump();
  const Json& metrics = finished.at("metrics");
  EXPECT_DOUBLE_EQ(metrics.at("value").get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(metrics.at("steps").get<double>(), 2);
  EXPECT_DOUBLE_EQ(metrics.at("resumed_from_step").get<double>(), 0);
  EXPECT_DOUBLE_EQ(metrics.at("group_rank_sum").get<double>(), 1);  // one rank: identity
  EXPECT_DOUBLE_EQ(finished.at("outputs").at("value").get<double>(), 0.75);
}

TEST_F(JobRunnerTest, RelaysProgressEvents) {
  Start(SleepJob(Json{{"seconds", 0.05}, {"steps", 3}}));
  std::vector<Json> events = RunToEnd();
  ASSERT_FALSE(events.empty());
  std::vector<Json> progress = OfKind(events, "progress");
  std::vector<int64_t> steps;
  for (const auto& p : progress) {
    EXPECT_EQ(p.at("total").get<int64_t>(), 3);
    steps.push_back(p.at("step").get<int64_t>());
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST_F(JobRunnerTest, ReportsCheckpointsThatExist) {
  Start(SleepJob(Json{{"seconds", 0.05}, {"steps", 2}}));
  std::vector<Json> events = RunToEnd();
  std::vector<Json> checkpoints = OfKind(events, "checkpoint");
  ASSERT_FALSE(checkpoints.empty());
  const std::string path = checkpoints.back().at("path").get<std::string>();
  ASSERT_TRUE(fs::exists(path)) << path;
  EXPECT_EQ(Json::parse(ReadFile(path)).at("step").get<int64_t>(), 2);
}

TEST_F(JobRunnerTest, WritesTheAttemptLogInTheWorkdir) {
  JobRequest request = SleepJob(Json{{"seconds", 0.01}, {"steps", 1}});
  request.attempt = 2;
  Json finished = Run(request);
  ASSERT_TRUE(finished.value("ok", false)) << finished.dump();
  const std::string log = request.workdir + "/attempt-2.log";
  ASSERT_TRUE(fs::exists(log)) << log;
  EXPECT_NE(ReadFile(log).find("sleep"), std::string::npos) << ReadFile(log);
  // The log is recorded as an artifact of the attempt.
  bool listed = false;
  for (const auto& artifact : finished.value("artifacts", Json::array())) {
    if (artifact.at(0) == "log" && artifact.at(1) == log) listed = true;
  }
  EXPECT_TRUE(listed) << finished.dump();
}

TEST_F(JobRunnerTest, ThrownErrorIsClassifiedAsError) {
  Json finished = Run(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}, {"fail", "throw"}}));
  EXPECT_FALSE(finished.value("ok", true));
  EXPECT_EQ(finished.value("failure_class", ""), "error");
  EXPECT_NE(finished.value("message", "").find("requested failure"), std::string::npos) << finished.dump();
}

TEST_F(JobRunnerTest, SegfaultIsClassifiedAsCrashNamingTheSignal) {
  Json finished = Run(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}, {"fail", "segfault"}}));
  EXPECT_FALSE(finished.value("ok", true));
  EXPECT_EQ(finished.value("failure_class", ""), "crash");
  EXPECT_NE(finished.value("message", "").find("SIGSEGV"), std::string::npos) << finished.dump();
}

TEST_F(JobRunnerTest, AbortIsClassifiedAsCrashNamingTheSignal) {
  Json finished = Run(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}, {"fail", "abort"}}));
  EXPECT_EQ(finished.value("failure_class", ""), "crash");
  EXPECT_NE(finished.value("message", "").find("SIGABRT"), std::string::npos) << finished.dump();
}

TEST_F(JobRunnerTest, ExitWithoutResultIsClassifiedAsCrash) {
  Json finished = Run(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}, {"fail", "exit"}}));
  EXPECT_EQ(finished.value("failure_class", ""), "crash");
  EXPECT_NE(finished.value("message", "").find("code 3"), std::string::npos) << finished.dump();
}

TEST_F(JobRunnerTest, ASigkillWhileTheKernelCountsAnOomKillIsClassifiedAsOom) {
  int64_t kills = 7;
  runner_ = std::make_unique<JobRunner>(executor_, RealClock(), [&kills] { return kills++; });
  Json finished = Run(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}, {"fail", "oom_kill"}}));
  EXPECT_FALSE(finished.value("ok", true));
  EXPECT_EQ(finished.value("failure_class", ""), "oom");
  EXPECT_NE(finished.value("message", "").find("SIGKILL"), std::string::npos) << finished.dump();
  EXPECT_NE(finished.value("message", "").find("out-of-memory killer"), std::string::npos) << finished.dump();
}

// Regression: an executor killed by SIGKILL from outside (kill -9, a scheduler) was recorded
// as "oom" although the kernel's out-of-memory killer had not acted.
TEST_F(JobRunnerTest, ASigkillFromOutsideIsACrashNotOom) {
  runner_ = std::make_unique<JobRunner>(executor_, RealClock(), [] { return int64_t{7}; });
  Json finished = Run(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}, {"fail", "oom_kill"}}));
  EXPECT_EQ(finished.value("failure_class", ""), "crash") << finished.dump();
  EXPECT_NE(finished.value("message", "").find("not the out-of-memory killer"), std::string::npos) << finished.dump();
  // The real counter, where the kernel offers one, reads the same way.
  if (JobRunner::SystemOomKills() >= 0) {
    runner_ = std::make_unique<JobRunner>(executor_, RealClock());
    EXPECT_EQ(Run(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}, {"fail", "oom_kill"}})).value("failure_class", ""),
              "crash");
  }
}

TEST_F(JobRunnerTest, BadAllocIsClassifiedAsOom) {
  Json finished = Run(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}, {"fail", "bad_alloc"}}));
  EXPECT_EQ(finished.value("failure_class", ""), "oom");
}

TEST_F(JobRunnerTest, MethodFailureClassesPassThrough) {
  EXPECT_EQ(Run(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}, {"fail", "nan"}})).value("failure_class", ""),
            "diverged");
  EXPECT_EQ(Run(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}, {"fail", "user_error"}})).value("failure_class", ""),
            "user_error");
}

TEST_F(JobRunnerTest, UnknownMethodIsAUserError) {
  JobRequest request = SleepJob(Json::object());
  request.spec["method"] = "no-such-method";
  Json finished = Run(request);
  EXPECT_EQ(finished.value("failure_class", ""), "user_error");
  EXPECT_NE(finished.value("message", "").find("no-such-method"), std::string::npos) << finished.dump();
}

// The watchdog runs on the runner's clock: a FakeClock moved past the hang timeout, with no
// real second spent waiting for it.
TEST_F(JobRunnerTest, HungJobIsKilledAfterItsHangTimeout) {
  FakeClock& clock = fake_clock_;
  runner_ = std::make_unique<JobRunner>(executor_, &clock);
  JobRequest request = SleepJob(Json{{"seconds", 1.0}, {"steps", 2}, {"fail", "hang"}});
  request.hang_timeout_s = 1;
  Start(request);
  const pid_t executor = runner_->executor_pid();
  ASSERT_GT(executor, 0);
  ASSERT_TRUE(WaitForFirstProgress());  // the job's last sign of life before it hangs
  clock.Advance(0.9);
  auto early = runner_->Poll(0.01);
  ASSERT_OK(early);
  EXPECT_TRUE(OfKind(*early, "finished").empty()) << "killed before its hang timeout";
  EXPECT_TRUE(runner_->busy());
  clock.Advance(0.2);
  std::vector<Json> events = RunToEnd();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().value("failure_class", ""), "hung") << events.back().dump();
  EXPECT_FALSE(events.back().value("ok", true));
  // The executor and its process group are gone.
  EXPECT_EQ(runner_->executor_pid(), -1);
  EXPECT_TRUE(ProcessGone(executor));
  EXPECT_TRUE(::kill(-executor, 0) != 0 && errno == ESRCH);
}

TEST_F(JobRunnerTest, NextJobRunsAfterACrash) {
  Json crashed = Run(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}, {"fail", "segfault"}}, "crash"));
  ASSERT_EQ(crashed.value("failure_class", ""), "crash");
  Json next = Run(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}, {"value", 2.0}}, "next"));
  ASSERT_TRUE(next.value("ok", false)) << next.dump();
  EXPECT_DOUBLE_EQ(next.at("metrics").at("value").get<double>(), 2.0);
}

TEST_F(JobRunnerTest, NextJobRunsAfterAHang) {
  FakeClock& clock = fake_clock_;
  runner_ = std::make_unique<JobRunner>(executor_, &clock);
  JobRequest hung = SleepJob(Json{{"seconds", 1.0}, {"steps", 2}, {"fail", "hang"}}, "hung");
  hung.hang_timeout_s = 1;
  Start(hung);
  ASSERT_TRUE(WaitForFirstProgress());
  clock.Advance(2);
  std::vector<Json> events = RunToEnd();
  ASSERT_FALSE(events.empty());
  ASSERT_EQ(events.back().value("failure_class", ""), "hung");
  Json next = Run(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}}, "next"));
  EXPECT_TRUE(next.value("ok", false)) << next.dump();
}

TEST_F(JobRunnerTest, ReusesTheExecutorAfterASuccess) {
  ASSERT_TRUE(Run(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}}, "first")).value("ok", false));
  const pid_t executor = runner_->executor_pid();
  ASSERT_GT(executor, 0);
  ASSERT_TRUE(Run(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}}, "second")).value("ok", false));
  EXPECT_EQ(runner_->executor_pid(), executor);
}

TEST_F(JobRunnerTest, StartWhileBusyIsRefused) {
  Start(SleepJob(Json{{"seconds", 0.2}, {"steps", 2}}, "first"));
  Status second = runner_->Start(SleepJob(Json::object(), "second"), nullptr, 0, 1);
  EXPECT_EQ(second.code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(RunToEnd().empty());
}

TEST_F(JobRunnerTest, RequestStopPreemptsWithACheckpoint) {
  // Long enough that the stop arrives mid-run; it ends the job within a step.
  Start(SleepJob(Json{{"seconds", 30.0}, {"steps", 300}}));
  std::vector<Json> events;
  auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double>(kGiveUpAfterSeconds);
  // Wait for the first checkpoint, so that the job is past its start.
  while (OfKind(events, "checkpoint").empty() && std::chrono::steady_clock::now() < give_up) {
    auto polled = runner_->Poll(0.05);
    ASSERT_OK(polled);
    events.insert(events.end(), polled->begin(), polled->end());
  }
  ASSERT_FALSE(OfKind(events, "checkpoint").empty());
  const size_t before_stop = OfKind(events, "checkpoint").size();
  runner_->RequestStop();
  std::vector<Json> rest = RunToEnd();
  ASSERT_FALSE(rest.empty());
  const Json& finished = rest.back();
  EXPECT_EQ(finished.value("failure_class", ""), "preempted") << finished.dump();
  std::vector<Json> checkpoints = OfKind(rest, "checkpoint");
  ASSERT_FALSE(checkpoints.empty()) << "no checkpoint written on stop (" << before_stop << " before)";
  EXPECT_TRUE(fs::exists(checkpoints.back().at("path").get<std::string>()));
  // A stopped executor is retired.
  EXPECT_EQ(runner_->executor_pid(), -1);
}

TEST_F(JobRunnerTest, ResumesFromTheCheckpointOfAStoppedJob) {
  JobRequest first = SleepJob(Json{{"seconds", 30.0}, {"steps", 300}});
  Start(first);
  std::vector<Json> events;
  auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double>(kGiveUpAfterSeconds);
  while (OfKind(events, "checkpoint").size() < 2 && std::chrono::steady_clock::now() < give_up) {
    auto polled = runner_->Poll(0.05);
    ASSERT_OK(polled);
    events.insert(events.end(), polled->begin(), polled->end());
  }
  runner_->RequestStop();
  std::vector<Json> rest = RunToEnd();
  ASSERT_FALSE(rest.empty());
  ASSERT_EQ(rest.back().value("failure_class", ""), "preempted");
  events.insert(events.end(), rest.begin(), rest.end());
  const std::string checkpoint = OfKind(events, "checkpoint").back().at("path").get<std::string>();
  const int64_t saved_step = Json::parse(ReadFile(checkpoint)).at("step").get<int64_t>();
  ASSERT_GT(saved_step, 0);

  // The next attempt of the same job, in the same workdir, resumes; shortened so it ends soon.
  JobRequest second = SleepJob(Json{{"seconds", 0.01}, {"steps", 300}});
  second.workdir = first.workdir;
  second.attempt = 2;
  second.resume = checkpoint;
  Json finished = Run(second);
  ASSERT_TRUE(finished.value("ok", false)) << finished.dump();
  EXPECT_GT(finished.at("metrics").at("resumed_from_step").get<double>(), 0);
  EXPECT_DOUBLE_EQ(finished.at("metrics").at("resumed_from_step").get<double>(), static_cast<double>(saved_step));
}

// Regression: a missing or corrupt checkpoint failed its job for good as user_error, and
// --retry-failed could not recover it (the next attempt read the same checkpoint). Now the
// attempt fails as "error" and asks the coordinator to forget the checkpoint.
TEST_F(JobRunnerTest, AnUnusableResumeCheckpointFailsTheAttemptAndIsDiscarded) {
  JobRequest request = SleepJob(Json{{"seconds", 0.01}, {"steps", 1}});
  request.resume = dir_ + "/no-such-checkpoint.json";
  Json missing = Run(request);
  EXPECT_EQ(missing.value("failure_class", ""), "error") << missing.dump();
  EXPECT_TRUE(missing.value("discard_checkpoint", false)) << missing.dump();
  for (const std::string& corrupt : {std::string("{\"step\": "), std::string("{\"step\": -4}"), std::string("\x01\x02")}) {
    std::ofstream(dir_ + "/corrupt.json", std::ios::trunc) << corrupt;
    JobRequest again = SleepJob(Json{{"seconds", 0.01}, {"steps", 1}});
    again.resume = dir_ + "/corrupt.json";
    Json finished = Run(again);
    EXPECT_EQ(finished.value("failure_class", ""), "error") << finished.dump();
    EXPECT_TRUE(finished.value("discard_checkpoint", false)) << finished.dump();
    EXPECT_NE(finished.value("message", "").find("cannot resume from its checkpoint"), std::string::npos);
  }
}

// Regression: a retry after preemption wrote "attempt 1" into attempt-1.log while the database
// numbered it attempt 2 (preempted attempts use none of the retry budget).
TEST_F(JobRunnerTest, TheLogIsNamedByTheDatabaseAttemptNumber) {
  JobRequest request = SleepJob(Json{{"seconds", 0.01}, {"steps", 1}});
  request.attempt = 1;         // counted attempts so far + 1: what the method sees
  request.attempt_number = 2;  // the first attempt was preempted
  Json finished = Run(request);
  ASSERT_TRUE(finished.value("ok", false)) << finished.dump();
  const std::string log = request.workdir + "/attempt-2.log";
  ASSERT_TRUE(fs::exists(log)) << log;
  EXPECT_NE(ReadFile(log).find("attempt 2:"), std::string::npos) << ReadFile(log);
  EXPECT_FALSE(fs::exists(request.workdir + "/attempt-1.log"));
}

// Regression: a job whose directory was out of space failed with an error that never said
// so, and spent its retries in seconds. The executor now says "No space left on device" and
// flags the outcome, on which the coordinator stops the run without counting the attempt.
TEST_F(JobRunnerTest, AFullDiskIsNamedAndFlagged) {
  JobRequest request = SleepJob(Json{{"seconds", 1.0}, {"steps", 2}});
  fs::create_directories(request.workdir);
  Start(request);
  // The sleep method's first checkpoint is the executor's first atomic write, through
  // AtomicWriteTempPath(<workdir>/checkpoint.json, pid, 0); pointing that name at /dev/full
  // makes the write fail with ENOSPC.
  const std::string temp = AtomicWriteTempPath(request.workdir + "/checkpoint.json", runner_->executor_pid(), 0);
  ASSERT_EQ(::symlink("/dev/full", temp.c_str()), 0) << std::strerror(errno);
  std::vector<Json> events = RunToEnd();
  ASSERT_FALSE(events.empty());
  const Json& finished = events.back();
  EXPECT_FALSE(finished.value("ok", true));
  EXPECT_TRUE(finished.value("no_space_left", false)) << finished.dump();
  EXPECT_NE(finished.value("message", "").find("No space left on device"), std::string::npos) << finished.dump();
}

TEST_F(JobRunnerTest, TwoRankJobReducesThroughTheGroupCommunicator) {
  // Two worker ranks (threads over the in-process hub) run the two members of one job; each
  // runner relays its executor's allreduce to the group. The sleep method sums 1 + 2.
  InProcessHub hub(2);
  const JobRequest request = SleepJob(Json{{"seconds", 0.05}, {"steps", 2}}, "pair");
  std::vector<Json> finished(2);
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < 2; ++rank) {
    ranks.emplace_back([&, rank] {
      auto comm = hub.Connect(rank);
      auto group = comm->CreateGroup({0, 1}, 1);
      ASSERT_OK(group);
      JobRunner runner(executor_, RealClock());
      ASSERT_OK(runner.Start(request, group->get(), rank, 2));
      auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double>(kGiveUpAfterSeconds);
      while (runner.busy() && std::chrono::steady_clock::now() < give_up) {
        auto polled = runner.Poll(0.05);
        ASSERT_OK(polled);
        for (const auto& event : *polled) {
          if (event.value("event", "") == "finished") finished[rank] = event;
        }
      }
    });
  }
  for (auto& t : ranks) t.join();
  for (int rank = 0; rank < 2; ++rank) {
    ASSERT_TRUE(finished[rank].value("ok", false)) << "rank " << rank << ": " << finished[rank].dump();
    EXPECT_DOUBLE_EQ(finished[rank].at("metrics").at("group_rank_sum").get<double>(), 3.0) << "rank " << rank;
  }
}

TEST_F(JobRunnerTest, MultiRankJobWithoutAGroupFails) {
  // group_size 2 but no group communicator: the allreduce cannot be served.
  JobRequest request = SleepJob(Json{{"seconds", 0.01}, {"steps", 1}});
  ASSERT_OK(runner_->Start(request, nullptr, 0, 2));
  std::vector<Json> events = RunToEnd();
  ASSERT_FALSE(events.empty());
  EXPECT_FALSE(events.back().value("ok", true)) << events.back().dump();
}

TEST_F(JobRunnerTest, StopRequestedAsTheJobFinishesDoesNotStopTheNextJob) {
  // The stop request races with the job's own end: the job has already finished (its result
  // is unread) when RequestStop is called. That request must not carry over to the next job
  // the runner starts.
  JobRequest quick = SleepJob(Json{{"seconds", 0.01}, {"steps", 1}}, "quick");
  Start(quick);
  // Give the job ample time to finish before the stop is sent (setup, not an assertion).
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  runner_->RequestStop();
  std::vector<Json> events = RunToEnd();
  ASSERT_FALSE(events.empty());
  if (!events.back().value("ok", false)) {
    GTEST_SKIP() << "the first job was still running when the stop arrived; the race was not reproduced";
  }
  Json next = Run(SleepJob(Json{{"seconds", 0.2}, {"steps", 2}}, "next"));
  EXPECT_TRUE(next.value("ok", false)) << "a stop meant for the previous job stopped this one: " << next.dump();
}

TEST_F(JobRunnerTest, MissingExecutorBinaryIsReportedAsACrash) {
  runner_ = std::make_unique<JobRunner>(dir_ + "/no-such-executor", RealClock());
  Start(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}}));
  std::vector<Json> events = RunToEnd();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().value("failure_class", ""), "crash");
  EXPECT_NE(events.back().value("message", "").find("could not execute"), std::string::npos) << events.back().dump();
}

TEST_F(JobRunnerTest, ExecutorThatClosesItsChannelAndLingersIsNotReportedAsOom) {
  // An executor that drops the job channel but does not exit is killed by the runner after
  // a grace period. That SIGKILL comes from atp itself, so the attempt must not be blamed on
  // the kernel's out-of-memory killer.
  const std::string script = dir_ + "/lingering-executor.sh";
  {
    std::ofstream out(script);
    out << "#!/bin/sh\nexec 3>&-\nexec sleep 30\n";
  }
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
  runner_ = std::make_unique<JobRunner>(script, RealClock());
  Start(SleepJob(Json{{"seconds", 0.01}, {"steps", 1}}));
  std::vector<Json> events = RunToEnd();
  ASSERT_FALSE(events.empty());
  EXPECT_FALSE(events.back().value("ok", true));
  EXPECT_NE(events.back().value("failure_class", ""), "oom") << events.back().dump();
}

TEST_F(JobRunnerTest, KillExecutorEndsTheProcess) {
  Start(SleepJob(Json{{"seconds", 30.0}, {"steps", 30}}));
  const pid_t executor = runner_->executor_pid();
  ASSERT_GT(executor, 0);
  runner_->KillExecutor();
  EXPECT_EQ(runner_->executor_pid(), -1);
  EXPECT_TRUE(ProcessGone(executor));
}

}  // namespace
}  // namespace atp
