// Coordinator tests over the in-process communicator: worker ranks are threads with real
// executor processes, so the whole protocol runs without MPI.
#include "coordinator/coordinator.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/in_process_communicator.h"
#include "common/messages.h"
#include "tests/support/binary_dir.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "worker/worker.h"

namespace atp {
namespace {

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    executor_ = testing::SweepExecutable();
    // The executor is a dependency of this test binary: missing, it is a broken build.
    ASSERT_TRUE(std::filesystem::exists(executor_))
        << "'" << executor_ << "' is not built (build the atp-sweep target, or set ATP_BINARY_DIR)";
  }

  // Runs `toml` on a hub whose ranks 1.. live on `nodes`; returns the summary.
  Result<RunSummary> RunSweep(const std::string& toml, const std::vector<std::string>& nodes,
                              const std::atomic<bool>* stop = nullptr) {
    auto sweep = ParseSweep(toml, "test.toml");
    if (!sweep.ok()) return sweep.status();
    std::vector<std::string> all_nodes = {"head"};
    all_nodes.insert(all_nodes.end(), nodes.begin(), nodes.end());
    InProcessHub hub(static_cast<int>(all_nodes.size()), all_nodes);
    std::vector<std::thread> workers;
    std::vector<std::unique_ptr<Communicator>> comms;
    for (int rank = 1; rank < hub.size(); ++rank) comms.push_back(hub.Connect(rank));
    for (auto& comm : comms) {
      workers.emplace_back([this, &comm, stop] {
        WorkerOptions options;
        options.executor_binary = executor_;
        options.heartbeat_interval_s = 0.2;
        Worker worker(comm.get(), options, RealClock(), stop);
        EXPECT_OK(worker.Run());
      });
    }
    auto store = Store::OpenWriter((dir_ / "r.db").string());
    if (!store.ok()) return store.status();
    std::FILE* devnull = std::fopen("/dev/null", "w");
    ProgressReporter reporter(ProgressMode::kQuiet, devnull, RealClock(), 10);
    CoordinatorOptions options;
    options.jobs_dir = (dir_ / "jobs").string();
    auto coordinator_comm = hub.Connect(0);
    Coordinator coordinator(coordinator_comm.get(), store->get(), &reporter, options, RealClock(), stop);
    auto summary = coordinator.Run(*sweep);
    for (auto& t : workers) t.join();
    std::fclose(devnull);
    return summary;
  }

  std::string Query(const std::string& sql) {
    sqlite3* db = nullptr;
    sqlite3_open_v2((dir_ / "r.db").string().c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* stmt = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK) {
      while (sqlite3_step(stmt) == SQLITE_ROW) {
        if (!out.empty()) out += ";";
        const unsigned char* text = sqlite3_column_text(stmt, 0);
        out += text ? reinterpret_cast<const char*>(text) : "NULL";
      }
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
  }

  std::string executor_;
  testing::TempDir temp_dir_;
  std::filesystem::path dir_ = temp_dir_.path();
};

TEST_F(CoordinatorTest, RunsMultiRankJobsOnRanksOfOneNode) {
  const std::string toml = R"(
[sweep]
name = "t"
code_version = "1"
[axes]
seed = [1, 2, 3]
[[stage]]
name = "pair"
method = "sleep"
params = { seconds = 0.1, steps = 1 }
ranks = 2
[[stage]]
name = "single"
method = "sleep"
params = { seconds = 0.05, steps = 1 }
)";
  // Ranks 1,2 on node a; 3,4 on node b; 5 alone on node c.
  auto summary = RunSweep(toml, {"a", "a", "b", "b", "c"});
  ASSERT_OK(summary);
  EXPECT_EQ(summary->done, 6);
  EXPECT_EQ(summary->failed, 0);
  // Every pair ran on [1,2] or [3,4], never across nodes, and its group summed 1 + 2.
  for (const std::string& ranks : {Query("select ranks from attempts a join jobs j on j.id=a.job_id where j.stage='pair'")}) {
    EXPECT_EQ(ranks.find("5"), std::string::npos) << ranks;
    EXPECT_EQ(ranks.find("[2,3]"), std::string::npos) << ranks;
  }
  EXPECT_EQ(Query("select group_concat(value) from metrics m join jobs j on j.id=m.job_id "
                  "where j.stage='pair' and m.name='group_rank_sum'"),
            "3.0,3.0,3.0");
}

TEST_F(CoordinatorTest, FailedUpstreamBlocksDownstreamAndOthersFinish) {
  const std::string toml = R"(
[sweep]
name = "t"
code_version = "1"
[retry]
max_attempts = 2
[axes]
seed = [1, 2]
[[stage]]
name = "first"
method = "sleep"
params = { seconds = 0.05, steps = 1 }
[[override]]
when = { seed = 2 }
set = { fail = "throw" }
[[stage]]
name = "second"
method = "sleep"
params = { seconds = 0.05, steps = 1 }
depends_on = [{ stage = "first", match = ["seed"] }]
)";
  auto summary = RunSweep(toml, {"a", "a"});
  ASSERT_OK(summary);
  EXPECT_EQ(summary->done, 2);
  EXPECT_EQ(summary->failed, 1);
  EXPECT_EQ(summary->blocked, 1);
  EXPECT_EQ(Query("select attempts||' '||failure_class from jobs where state='failed'"), "2 error");
  EXPECT_NE(Query("select error from jobs where state='blocked'").find("upstream job"), std::string::npos);
}

// Regression: a job failed outside a live attempt (lost with the run max_lost times, which
// RecoverInterruptedAttempts records at start-up) left its dependents pending forever: they
// were blocked in the scheduler's memory only, so every relaunch ended "1 not run".
TEST_F(CoordinatorTest, DependentsOfAJobFailedBeforeTheRunAreBlockedInTheDatabase) {
  const std::string toml = R"(
[sweep]
name = "t"
code_version = "1"
[[stage]]
name = "first"
method = "sleep"
params = { seconds = 0.05, steps = 1 }
[[stage]]
name = "second"
method = "sleep"
params = { seconds = 0.05, steps = 1 }
depends_on = [{ stage = "first", match = [] }]
)";
  {
    auto sweep = ParseSweep(toml, "test.toml");
    ASSERT_OK(sweep);
    auto store = Store::OpenWriter((dir_ / "r.db").string());
    ASSERT_OK(store);
    auto epoch = (*store)->BeginRun(Provenance{});
    ASSERT_OK(epoch);
    auto submitted = (*store)->SubmitSweep(*sweep);
    ASSERT_OK(submitted);
    auto jobs = (*store)->LoadSweepJobs(submitted->sweep_id);
    ASSERT_OK(jobs);
    ASSERT_TRUE(jobs->size() == 2);
    auto attempt = (*store)->StartAttempt(jobs->front().id, *epoch, "n", {1});
    ASSERT_OK(attempt);
    ASSERT_OK((*store)->FailAttempt(*attempt, jobs->front().id, FailureClass::kNodeLost, "lost with the run",
                                    JobState::kFailed, false));
    ASSERT_OK((*store)->EndRun(*epoch, "interrupted"));
  }
  auto summary = RunSweep(toml, {"a"});
  ASSERT_OK(summary);
  EXPECT_EQ(summary->failed, 1);
  EXPECT_EQ(summary->blocked, 1);
  EXPECT_EQ(summary->pending, 0);
  EXPECT_EQ(Query("select state from jobs where stage='second'"), "blocked");
  EXPECT_EQ(Query("select count(*) from jobs where state in ('pending', 'running')"), "0");
}

// Regression: a job whose recorded checkpoint was corrupt failed for good as user_error and
// --retry-failed could not recover it. Now the checkpoint is discarded and the job restarts.
TEST_F(CoordinatorTest, ACorruptCheckpointIsDiscardedAndTheJobRestartsAfresh) {
  const std::string toml = R"(
[sweep]
name = "t"
code_version = "1"
[[stage]]
name = "only"
method = "sleep"
params = { seconds = 0.05, steps = 2 }
)";
  const std::string corrupt = (dir_ / "corrupt.json").string();
  std::ofstream(corrupt) << "{\"step\": ";
  {
    auto sweep = ParseSweep(toml, "test.toml");
    ASSERT_OK(sweep);
    auto store = Store::OpenWriter((dir_ / "r.db").string());
    ASSERT_OK(store);
    auto epoch = (*store)->BeginRun(Provenance{});
    auto submitted = (*store)->SubmitSweep(*sweep);
    ASSERT_OK(epoch);
    ASSERT_OK(submitted);
    auto jobs = (*store)->LoadSweepJobs(submitted->sweep_id);
    ASSERT_OK(jobs);
    ASSERT_TRUE(jobs->size() == 1);
    auto attempt = (*store)->StartAttempt(jobs->front().id, *epoch, "n", {1});
    ASSERT_OK(attempt);
    ASSERT_OK((*store)->RecordCheckpoint(jobs->front().id, *attempt, corrupt));
    ASSERT_OK((*store)->FailAttempt(*attempt, jobs->front().id, FailureClass::kPreempted, "stopped",
                                    JobState::kPending, false));
    ASSERT_OK((*store)->EndRun(*epoch, "interrupted"));
  }
  auto summary = RunSweep(toml, {"a"});
  ASSERT_OK(summary);
  EXPECT_EQ(summary->done, 1);
  EXPECT_EQ(Query("select group_concat(coalesce(failure_class, state), ' ') from attempts order by number"),
                  "preempted error done");
  EXPECT_EQ(Query("select count(*) from events where kind = 'checkpoint_discarded'"), "1");
  EXPECT_EQ(Query("select value from metrics where name = 'resumed_from_step'"), "0.0");
}

TEST_F(CoordinatorTest, StopRequestPreemptsRunningJobsWithoutSpendingRetries) {
  const std::string toml = R"(
[sweep]
name = "t"
code_version = "1"
[axes]
seed = [1, 2, 3, 4]
[[stage]]
name = "long"
method = "sleep"
params = { seconds = 20, steps = 40 }
)";
  std::atomic<bool> stop{false};
  std::thread trigger([&stop] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    stop = true;
  });
  auto summary = RunSweep(toml, {"a", "a"}, &stop);
  trigger.join();
  ASSERT_OK(summary);
  EXPECT_TRUE(summary->interrupted);
  EXPECT_EQ(summary->done, 0);
  EXPECT_EQ(Query("select count(*) from attempts where failure_class='preempted'"), "2");
  EXPECT_EQ(Query("select count(*) from jobs where state='pending' and attempts=0"), "4");
  EXPECT_EQ(Query("select count(*) from jobs where checkpoint_path like '%checkpoint.json'"), "2");
  EXPECT_EQ(Query("select status from runs"), "interrupted");
}

// The heartbeat watchdog on the coordinator's clock: a rank that takes a job and then falls
// silent is lost after heartbeat_timeout_s of FakeClock time, its job is retried on the rank
// that still reports, and the sweep ends. Every rank runs on the same FakeClock, moved
// forward by this test, so no real minute is waited for.
TEST(CoordinatorClockTest, ASilentRankIsLostAndItsJobRunsOnAnother) {
  const std::string executor = testing::SweepExecutable();
  ASSERT_TRUE(std::filesystem::exists(executor)) << executor << " is not built";
  testing::TempDir temp_dir;
  const std::filesystem::path dir = temp_dir.path();
  auto sweep = ParseSweep(R"(
[sweep]
name = "t"
code_version = "1"
[axes]
seed = [1, 2]
[[stage]]
name = "only"
method = "sleep"
params = { seconds = 0.05, steps = 1 }
)",
                          "test.toml");
  ASSERT_OK(sweep);

  FakeClock clock;
  InProcessHub hub(3, {"head", "a", "a"});
  auto coordinator_comm = hub.Connect(0);
  auto worker_comm = hub.Connect(1);
  auto silent_comm = hub.Connect(2);
  std::atomic<bool> over{false};
  std::atomic<bool> silent_got_a_job{false};
  std::thread worker_thread([&] {
    WorkerOptions options;
    options.executor_binary = executor;
    options.heartbeat_interval_s = 2;
    Worker worker(worker_comm.get(), options, &clock, nullptr);
    EXPECT_OK(worker.Run());
  });
  // Rank 2 says hello, takes its job and then never answers again.
  std::thread silent_thread([&] {
    EXPECT_OK(silent_comm->Send(0, kProtocolTag, EncodeMessage(HelloMessage{"a", 0})));
    while (!over) {
      auto envelope = silent_comm->Receive(0.02);
      if (envelope.ok() && envelope->has_value()) {
        auto message = DecodeMessage((*envelope)->payload);
        if (message.ok() && message->type == MessageType::kAssign) silent_got_a_job = true;
      }
    }
  });
  // The run's time goes 20 times faster than the wall clock: the running worker heartbeats
  // every 2 s of it (0.1 s), the silent rank is lost after 60 s of it (3 s).
  std::thread ticker([&] {
    while (!over) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      clock.Advance(0.2);
    }
  });

  auto store = Store::OpenWriter((dir / "r.db").string());
  ASSERT_OK(store);
  std::FILE* devnull = std::fopen("/dev/null", "w");
  ProgressReporter reporter(ProgressMode::kQuiet, devnull, RealClock(), 10);
  CoordinatorOptions options;
  options.jobs_dir = (dir / "jobs").string();
  options.heartbeat_timeout_s = 60;
  Coordinator coordinator(coordinator_comm.get(), store->get(), &reporter, options, &clock, nullptr);
  auto summary = coordinator.Run(*sweep);
  over = true;
  ticker.join();
  worker_thread.join();
  silent_thread.join();
  std::fclose(devnull);

  ASSERT_OK(summary);
  EXPECT_TRUE(silent_got_a_job);
  EXPECT_EQ(summary->done, 2);
  EXPECT_EQ(summary->lost_ranks, 1);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((dir / "r.db").string().c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "select count(*) from attempts where failure_class = 'node_lost'", -1, &stmt,
                               nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(stmt, 0), 1);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

}  // namespace
}  // namespace atp
