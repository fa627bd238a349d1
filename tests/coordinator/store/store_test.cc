#include "coordinator/store/store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "coordinator/store/sqlite_util.h"
#include "tests/coordinator/store/schema_downgrade.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace atp {
namespace {

JobSpec TrainJob(const std::string& dataset, int seed) {
  JobSpec job;
  job.stage = "train";
  job.method = "sleep";
  job.params = Json{{"dataset", dataset}, {"seed", seed}, {"lr", 0.002}};
  job.code_version = "v1";
  return job;
}

JobSpec EvalJob(const JobSpec& upstream) {
  JobSpec job;
  job.stage = "eval";
  job.method = "sleep";
  job.params = Json{{"dataset", upstream.dataset()}, {"seed", upstream.seed()}};
  job.upstream = {upstream.Key()};
  job.code_version = "v1";
  return job;
}

// A train job per (dataset, seed) followed by an eval job that depends on it.
Sweep MakeSweep(const std::string& name, const std::vector<std::string>& datasets, int seeds) {
  Sweep sweep;
  sweep.name = name;
  sweep.source_path = name + ".toml";
  sweep.source_text = "name = \"" + name + "\"\n";
  sweep.code_version = "v1";
  for (const std::string& dataset : datasets) {
    for (int seed = 1; seed <= seeds; ++seed) sweep.jobs.push_back(TrainJob(dataset, seed));
  }
  const size_t train_jobs = sweep.jobs.size();
  for (size_t i = 0; i < train_jobs; ++i) sweep.jobs.push_back(EvalJob(sweep.jobs[i]));
  return sweep;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = temp_dir_ / "results.db";
  }

  std::unique_ptr<Store> OpenStore() {
    auto store = Store::OpenWriter(db_path_);
    EXPECT_OK(store);
    return store.ok() ? std::move(store).value() : nullptr;
  }

  static int64_t BeginTestRun(Store& store) {
    Provenance provenance;
    provenance.atp_version = "0.1.0";
    provenance.hosts = {"node01", "node01"};
    provenance.world_size = 2;
    auto epoch = store.BeginRun(provenance);
    EXPECT_OK(epoch);
    return epoch.ok() ? *epoch : 0;
  }

  // The single value of a query on the store's connection, as text ("" when no row).
  static std::string Query(Store& store, const std::string& sql) {
    Statement statement;
    EXPECT_EQ(statement.Prepare(store.handle(), sql), SQLITE_OK) << sqlite3_errmsg(store.handle());
    return statement.Step() == SQLITE_ROW ? statement.Text(0) : std::string();
  }
  static int64_t Count(Store& store, const std::string& sql) { return std::atoll(Query(store, sql).c_str()); }

  // The event kinds of one job, oldest first, joined by spaces.
  static std::string EventKinds(Store& store, int64_t job_id) {
    return Query(store, "SELECT group_concat(kind, ' ') FROM (SELECT kind FROM events WHERE job_id = " +
                            std::to_string(job_id) + " ORDER BY id)");
  }

  static JobRecord LoadJob(Store& store, int64_t sweep_id, size_t index) {
    auto jobs = store.LoadSweepJobs(sweep_id);
    EXPECT_OK(jobs);
    return jobs->at(index);
  }

  testing::TempDir temp_dir_;
  std::string dir_ = temp_dir_.path();
  std::string db_path_;
};

TEST_F(StoreTest, CreatesSchemaAndReopensWithoutChangingIt) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(Query(*store, "SELECT value FROM meta WHERE key = 'schema_version'"), std::to_string(kStoreSchemaVersion));
    EXPECT_EQ(Query(*store, "PRAGMA journal_mode"), "wal");
    EXPECT_EQ(Query(*store, "PRAGMA foreign_keys"), "1");
    EXPECT_EQ(Query(*store, "PRAGMA synchronous"), "1");  // NORMAL
    EXPECT_EQ(Count(*store, "PRAGMA application_id"), kStoreApplicationId);
    for (const char* table : {"meta", "sweeps", "runs", "jobs", "sweep_jobs", "job_deps", "attempts", "events",
                              "metrics", "artifacts"}) {
      EXPECT_EQ(Count(*store, std::string("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '") +
                                  table + "'"),
                1)
          << table;
    }
    for (const char* view : {"v_results", "v_job_status", "v_stage_progress", "v_failures"}) {
      EXPECT_EQ(Count(*store, std::string("SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name = '") +
                                  view + "'"),
                1)
          << view;
    }
    ASSERT_OK(store->SubmitSweep(MakeSweep("base", {"caltech101"}, 1)));
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM jobs"), 2);
  EXPECT_EQ(Query(*store, "SELECT value FROM meta WHERE key = 'schema_version'"), std::to_string(kStoreSchemaVersion));
}

TEST_F(StoreTest, AVersionOneDatabaseGainsTheRunsComputeColumnAndKeepsItsRuns) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_OK(store->BeginRun(Provenance{}));
  }
  // Back to the version-1 layout: runs without compute_json.
  ASSERT_EQ(DowngradeToSchemaVersionOne(db_path_), "");
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Query(*store, "SELECT value FROM meta WHERE key = 'schema_version'"), std::to_string(kStoreSchemaVersion));
  Provenance provenance;
  provenance.compute = Json{{"threads_per_job", 3}};
  ASSERT_OK(store->BeginRun(provenance));
  EXPECT_EQ(Query(*store, "SELECT group_concat(compute_json, ' ') FROM (SELECT compute_json FROM runs ORDER BY id)"),
            "{} {\"threads_per_job\":3}");
}

TEST_F(StoreTest, RefusesADatabaseWrittenByANewerSchema) {
  { ASSERT_NE(OpenStore(), nullptr); }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db_path_.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "UPDATE meta SET value = '99' WHERE key = 'schema_version'", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  auto store = Store::OpenWriter(db_path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("schema version 99"), std::string::npos) << store.status().message();
}

TEST_F(StoreTest, SecondWriterIsRefusedAndTheMessageNamesTheLockFile) {
  auto first = OpenStore();
  ASSERT_NE(first, nullptr);
  auto second = Store::OpenWriter(db_path_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find(db_path_ + ".lock"), std::string::npos) << second.status().message();
  EXPECT_NE(second.status().message().find("another coordinator"), std::string::npos);
  EXPECT_NE(second.status().message().find("pid " + std::to_string(getpid())), std::string::npos);
}

// Regression: a second coordinator reaching the same database through a symlink or another
// spelling of its path took a lock file of its own, and only SQLite's busy timeout stopped it
// (10 s later, after it had begun marking the live run's attempts lost).
TEST_F(StoreTest, ASecondWriterThroughAnotherPathToTheSameFileIsRefused) {
  auto first = OpenStore();
  ASSERT_NE(first, nullptr);
  std::filesystem::create_symlink(db_path_, dir_ + "/link.db");
  std::filesystem::create_directories(dir_ + "/sub");
  std::filesystem::create_directory_symlink(dir_, dir_ + "/alias");
  for (const std::string& other : {dir_ + "/link.db", dir_ + "/sub/../results.db", dir_ + "/alias/results.db"}) {
    SCOPED_TRACE(other);
    const auto start = std::chrono::steady_clock::now();
    auto second = Store::OpenWriter(other);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition) << second.status().ToString();
    EXPECT_NE(second.status().message().find("another coordinator"), std::string::npos) << second.status().message();
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
  }
}

TEST_F(StoreTest, LockIsReleasedWhenTheWriterCloses) {
  ASSERT_NE(OpenStore(), nullptr);  // destroyed at once
  EXPECT_NE(OpenStore(), nullptr);
}

TEST_F(StoreTest, RefusesToWriteIntoAnotherProgramsDatabase) {
  sqlite3* foreign = nullptr;
  ASSERT_EQ(sqlite3_open(db_path_.c_str(), &foreign), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(foreign, "CREATE TABLE trials (id INTEGER PRIMARY KEY)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(foreign);
  auto store = Store::OpenWriter(db_path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(store.status().message().find("did not create"), std::string::npos) << store.status().message();
}

TEST_F(StoreTest, RefusesAFileThatIsNotADatabase) {
  std::ofstream(db_path_) << "name = \"not a database\"\n" << std::string(4096, 'x');
  auto store = Store::OpenWriter(db_path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument) << store.status().ToString();
}

TEST_F(StoreTest, ResubmittingTheSameSweepAddsNothing) {
  auto store = OpenStore();
  const Sweep sweep = MakeSweep("base", {"caltech101", "eurosat"}, 2);
  auto first = store->SubmitSweep(sweep);
  ASSERT_OK(first);
  EXPECT_EQ(first->new_jobs, 8);
  EXPECT_EQ(first->known_jobs, 0);

  auto second = store->SubmitSweep(sweep);
  ASSERT_OK(second);
  EXPECT_EQ(second->sweep_id, first->sweep_id);
  EXPECT_EQ(second->new_jobs, 0);
  EXPECT_EQ(second->known_jobs, 8);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM jobs"), 8);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM sweeps"), 1);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM sweep_jobs"), 8);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM events WHERE kind = 'submitted'"), 8);
}

TEST_F(StoreTest, ExtendedSweepAddsOnlyTheNewJobsAndSharesTheOldOnes) {
  auto store = OpenStore();
  auto small = store->SubmitSweep(MakeSweep("base", {"caltech101"}, 2));
  ASSERT_OK(small);
  // Finish one job so that the extension reports it as done.
  auto jobs = store->LoadSweepJobs(small->sweep_id);
  ASSERT_OK(jobs);
  const int64_t epoch = BeginTestRun(*store);
  auto attempt = store->StartAttempt(jobs->at(0).id, epoch, "node01", {1});
  ASSERT_OK(attempt);
  ASSERT_OK(store->CompleteAttempt(*attempt, jobs->at(0).id, JobOutcome{}));

  Sweep extended = MakeSweep("base", {"caltech101", "eurosat"}, 2);
  extended.source_text += "datasets = [\"caltech101\", \"eurosat\"]\n";
  auto bigger = store->SubmitSweep(extended);
  ASSERT_OK(bigger);
  EXPECT_NE(bigger->sweep_id, small->sweep_id);
  EXPECT_EQ(bigger->new_jobs, 4);
  EXPECT_EQ(bigger->known_jobs, 4);
  EXPECT_EQ(bigger->done_jobs, 1);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM jobs"), 8);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM sweep_jobs WHERE sweep_id = " + std::to_string(bigger->sweep_id)), 8);
  // The shared job keeps its result in both sweeps.
  auto extended_jobs = store->LoadSweepJobs(bigger->sweep_id);
  ASSERT_OK(extended_jobs);
  EXPECT_EQ(extended_jobs->at(0).id, jobs->at(0).id);
  EXPECT_EQ(extended_jobs->at(0).state, JobState::kDone);
}

TEST_F(StoreTest, ResubmissionUpdatesHowUnfinishedJobsRunButNotFinishedOnes) {
  auto store = OpenStore();
  Sweep sweep = MakeSweep("base", {"caltech101"}, 2);
  auto submitted = store->SubmitSweep(sweep);
  ASSERT_OK(submitted);
  auto jobs = store->LoadSweepJobs(submitted->sweep_id);
  const int64_t epoch = BeginTestRun(*store);
  auto attempt = store->StartAttempt(jobs->at(0).id, epoch, "node01", {1});
  ASSERT_OK(attempt);
  ASSERT_OK(store->CompleteAttempt(*attempt, jobs->at(0).id, JobOutcome{}));

  for (JobSpec& job : sweep.jobs) job.retry.max_attempts = 7;  // execution only: the keys stay the same
  ASSERT_OK(store->SubmitSweep(sweep));
  auto reloaded = store->LoadSweepJobs(submitted->sweep_id);
  ASSERT_OK(reloaded);
  EXPECT_EQ(reloaded->at(0).spec.retry.max_attempts, 3);  // done: the spec that produced it
  EXPECT_EQ(reloaded->at(1).spec.retry.max_attempts, 7);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM jobs"), 4);
}

TEST_F(StoreTest, SpecJsonIsJobSpecToJson) {
  auto store = OpenStore();
  Sweep sweep = MakeSweep("base", {"caltech101", "eurosat"}, 2);
  sweep.jobs[1].ranks = 4;
  sweep.jobs[2].retry.max_attempts = 9;
  sweep.jobs[2].retry.rule(FailureClass::kOutOfMemory).retry = false;
  sweep.jobs[3].hang_timeout_s = 42.5;
  sweep.jobs[4].expected_seconds = 3600;
  sweep.jobs[5].retry.max_lost = 0;
  sweep.jobs[6].retry.rule(FailureClass::kHung).counts_attempt = false;
  sweep.jobs[7].code_version = "quote \" and ünïcode";
  ASSERT_OK(store->SubmitSweep(sweep));
  Statement select;
  ASSERT_EQ(select.Prepare(store->handle(), "SELECT spec_json, job_key FROM jobs WHERE job_key = ?1"), SQLITE_OK);
  for (const JobSpec& job : sweep.jobs) {
    select.Reset().Bind(1, job.Key());
    ASSERT_EQ(select.Step(), SQLITE_ROW) << job.IdentityJson().dump();
    EXPECT_EQ(select.Text(0), job.ToJson().dump());
  }
}

TEST_F(StoreTest, RecordsDependenciesById) {
  auto store = OpenStore();
  auto submitted = store->SubmitSweep(MakeSweep("base", {"caltech101", "eurosat"}, 1));
  ASSERT_OK(submitted);
  auto jobs = store->LoadSweepJobs(submitted->sweep_id);
  ASSERT_OK(jobs);
  ASSERT_EQ(jobs->size(), 4u);
  // Submission order is kept: two train jobs, then their eval jobs.
  EXPECT_EQ(jobs->at(0).spec.stage, "train");
  EXPECT_EQ(jobs->at(2).spec.stage, "eval");
  EXPECT_TRUE(jobs->at(0).upstream_ids.empty());
  EXPECT_EQ(jobs->at(2).upstream_ids, std::vector<int64_t>{jobs->at(0).id});
  EXPECT_EQ(jobs->at(3).upstream_ids, std::vector<int64_t>{jobs->at(1).id});
  EXPECT_EQ(jobs->at(2).key, jobs->at(2).spec.Key());
  EXPECT_EQ(jobs->at(2).spec.upstream, std::vector<std::string>{jobs->at(0).key});
}

TEST_F(StoreTest, DependencyOnAJobOfAnEarlierSweepIsResolved) {
  auto store = OpenStore();
  const JobSpec train = TrainJob("caltech101", 1);
  Sweep first;
  first.name = "train-only";
  first.jobs = {train};
  ASSERT_OK(store->SubmitSweep(first));
  Sweep second;
  second.name = "eval-only";
  second.jobs = {EvalJob(train)};
  auto submitted = store->SubmitSweep(second);
  ASSERT_OK(submitted);
  auto jobs = store->LoadSweepJobs(submitted->sweep_id);
  ASSERT_OK(jobs);
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ(jobs->at(0).upstream_ids.size(), 1u);
}

TEST_F(StoreTest, UnknownUpstreamKeyIsRejectedAndNothingIsRecorded) {
  auto store = OpenStore();
  Sweep sweep = MakeSweep("base", {"caltech101"}, 1);
  JobSpec orphan = EvalJob(TrainJob("imagenet", 9));  // its upstream is not submitted
  sweep.jobs.push_back(orphan);
  auto submitted = store->SubmitSweep(sweep);
  ASSERT_FALSE(submitted.ok());
  EXPECT_EQ(submitted.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(submitted.status().message().find(orphan.upstream[0].substr(0, 12)), std::string::npos);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM jobs"), 0);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM sweeps"), 0);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM events"), 0);
}

TEST_F(StoreTest, SubmitsOneHundredThousandJobsIdempotently) {
  auto store = OpenStore();
  Sweep sweep;
  sweep.name = "large";
  sweep.source_text = "# 100,000 jobs";
  for (int i = 0; i < 100000; ++i) {
    JobSpec job = TrainJob("dataset" + std::to_string(i % 11), i);
    job.params["shots"] = 16;
    sweep.jobs.push_back(std::move(job));
  }
  const auto start = std::chrono::steady_clock::now();
  auto first = store->SubmitSweep(sweep);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_OK(first);
  EXPECT_EQ(first->new_jobs, 100000);
  std::printf("[ timing   ] SubmitSweep of 100,000 new jobs: %.2f s\n", seconds);

  const auto again = std::chrono::steady_clock::now();
  auto second = store->SubmitSweep(sweep);
  const double resubmit_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - again).count();
  ASSERT_OK(second);
  EXPECT_EQ(second->new_jobs, 0);
  EXPECT_EQ(second->known_jobs, 100000);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM jobs"), 100000);
  std::printf("[ timing   ] SubmitSweep of the same 100,000 jobs again: %.2f s\n", resubmit_seconds);
}

TEST_F(StoreTest, StartAndCompleteRecordStateAttemptAndEvents) {
  auto store = OpenStore();
  auto submitted = store->SubmitSweep(MakeSweep("base", {"caltech101"}, 1));
  ASSERT_OK(submitted);
  const int64_t job_id = LoadJob(*store, submitted->sweep_id, 0).id;
  const int64_t epoch = BeginTestRun(*store);

  auto attempt = store->StartAttempt(job_id, epoch, "node01", {1, 2});
  ASSERT_OK(attempt);
  const std::string id = std::to_string(job_id);
  EXPECT_EQ(Query(*store, "SELECT state || ' ' || host || ' ' || ranks_used FROM jobs WHERE id = " + id),
            "running node01 [1,2]");
  EXPECT_EQ(Query(*store, "SELECT number || ' ' || epoch || ' ' || state FROM attempts WHERE id = " +
                              std::to_string(*attempt)),
            "1 " + std::to_string(epoch) + " running");

  ASSERT_OK(store->UpdateProgress(*attempt, 40, 100));
  EXPECT_EQ(Query(*store, "SELECT progress_step || '/' || progress_total FROM attempts WHERE id = " +
                              std::to_string(*attempt)),
            "40/100");

  JobOutcome outcome;
  outcome.metrics = {{"accuracy", 0.913}, {"loss", 0.25}};
  outcome.outputs = Json{{"prompt", "a photo of a {}"}, {"checkpoint", "ckpt/final.pt"}};
  outcome.artifacts = {{"log", "jobs/x/log.txt"}};
  ASSERT_OK(store->CompleteAttempt(*attempt, job_id, outcome));
  EXPECT_EQ(Query(*store, "SELECT state FROM jobs WHERE id = " + id), "done");
  EXPECT_GE(std::atof(Query(*store, "SELECT duration_s FROM jobs WHERE id = " + id).c_str()), 0.0);
  EXPECT_EQ(Query(*store, "SELECT state FROM attempts WHERE id = " + std::to_string(*attempt)), "done");
  EXPECT_EQ(EventKinds(*store, job_id), "submitted started done");
  EXPECT_EQ(Query(*store, "SELECT epoch FROM events WHERE kind = 'done'"), std::to_string(epoch));
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM artifacts WHERE kind = 'log' AND job_id = " + id), 1);
}

TEST_F(StoreTest, MetricsAndOutputsRoundTrip) {
  auto store = OpenStore();
  auto submitted = store->SubmitSweep(MakeSweep("base", {"caltech101"}, 1));
  ASSERT_OK(submitted);
  const int64_t job_id = LoadJob(*store, submitted->sweep_id, 0).id;
  const int64_t epoch = BeginTestRun(*store);
  auto attempt = store->StartAttempt(job_id, epoch, "node01", {1});
  ASSERT_OK(attempt);
  ASSERT_OK(store->RecordCheckpoint(job_id, *attempt, "jobs/a/ckpt-100.pt"));

  JobOutcome outcome;
  outcome.metrics = {{"base_acc", 97.5}, {"new_acc", 94.125}, {"hm", 95.78}};
  outcome.outputs = Json{{"prompt_path", "jobs/a/prompt.pt"}, {"tokens", {1, 2, 3}}, {"nested", {{"a", nullptr}}}};
  ASSERT_OK(store->CompleteAttempt(*attempt, job_id, outcome));

  const JobRecord job = LoadJob(*store, submitted->sweep_id, 0);
  EXPECT_EQ(job.state, JobState::kDone);
  EXPECT_EQ(job.outputs, outcome.outputs);
  EXPECT_EQ(job.checkpoint, "jobs/a/ckpt-100.pt");
  EXPECT_EQ(job.total_attempts, 1);
  Statement metrics;
  ASSERT_EQ(metrics.Prepare(store->handle(), "SELECT name, value FROM metrics WHERE job_id = ?1 ORDER BY name"),
            SQLITE_OK);
  metrics.Bind(1, job_id);
  std::map<std::string, double> stored;
  while (metrics.Step() == SQLITE_ROW) stored[metrics.Text(0)] = metrics.Double(1);
  EXPECT_EQ(stored, outcome.metrics);
  EXPECT_EQ(EventKinds(*store, job_id), "submitted started checkpoint done");
}

TEST_F(StoreTest, FailAttemptCountsOnlyAttemptsThatCount) {
  auto store = OpenStore();
  auto submitted = store->SubmitSweep(MakeSweep("base", {"caltech101"}, 1));
  ASSERT_OK(submitted);
  const int64_t job_id = LoadJob(*store, submitted->sweep_id, 0).id;
  const int64_t epoch = BeginTestRun(*store);

  auto first = store->StartAttempt(job_id, epoch, "node01", {1});
  ASSERT_OK(first);
  ASSERT_OK(store->FailAttempt(*first, job_id, FailureClass::kOutOfMemory, "CUDA out of memory", JobState::kPending,
                               /*counts_attempt=*/true));
  JobRecord job = LoadJob(*store, submitted->sweep_id, 0);
  EXPECT_EQ(job.state, JobState::kPending);
  EXPECT_EQ(job.attempts, 1);
  EXPECT_EQ(job.failure, FailureClass::kOutOfMemory);
  EXPECT_EQ(job.error, "CUDA out of memory");

  auto second = store->StartAttempt(job_id, epoch, "node01", {1});
  ASSERT_OK(second);
  ASSERT_OK(store->FailAttempt(*second, job_id, FailureClass::kPreempted, "SIGTERM", JobState::kPending,
                               /*counts_attempt=*/false));
  job = LoadJob(*store, submitted->sweep_id, 0);
  EXPECT_EQ(job.attempts, 1);
  EXPECT_EQ(job.total_attempts, 2);

  auto third = store->StartAttempt(job_id, epoch, "node02", {3});
  ASSERT_OK(third);
  EXPECT_EQ(Query(*store, "SELECT number FROM attempts WHERE id = " + std::to_string(*third)), "3");
  ASSERT_OK(store->FailAttempt(*third, job_id, FailureClass::kDiverged, "loss is NaN at step 40", JobState::kFailed,
                               /*counts_attempt=*/true));
  job = LoadJob(*store, submitted->sweep_id, 0);
  EXPECT_EQ(job.state, JobState::kFailed);
  EXPECT_EQ(job.attempts, 2);
  EXPECT_EQ(job.total_attempts, 3);
  EXPECT_EQ(job.failure, FailureClass::kDiverged);
  EXPECT_EQ(EventKinds(*store, job_id), "submitted started failed started failed started failed");
  EXPECT_EQ(Query(*store, "SELECT json_extract(detail, '$.class') FROM events WHERE job_id = " +
                              std::to_string(job_id) + " ORDER BY id DESC LIMIT 1"),
            "diverged");
}

TEST_F(StoreTest, FailAttemptRejectsANextStateOtherThanPendingOrFailed) {
  auto store = OpenStore();
  auto submitted = store->SubmitSweep(MakeSweep("base", {"caltech101"}, 1));
  const int64_t job_id = LoadJob(*store, submitted->sweep_id, 0).id;
  auto attempt = store->StartAttempt(job_id, BeginTestRun(*store), "node01", {1});
  ASSERT_OK(attempt);
  Status status = store->FailAttempt(*attempt, job_id, FailureClass::kError, "boom", JobState::kDone, true);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Query(*store, "SELECT state FROM jobs WHERE id = " + std::to_string(job_id)), "running");
}

TEST_F(StoreTest, TransitionFromTheWrongStateIsRefusedAndWritesNothing) {
  auto store = OpenStore();
  auto submitted = store->SubmitSweep(MakeSweep("base", {"caltech101"}, 1));
  const int64_t job_id = LoadJob(*store, submitted->sweep_id, 0).id;
  const int64_t epoch = BeginTestRun(*store);
  auto attempt = store->StartAttempt(job_id, epoch, "node01", {1});
  ASSERT_OK(attempt);
  const int64_t events_before = Count(*store, "SELECT count(*) FROM events");

  auto again = store->StartAttempt(job_id, epoch, "node01", {1});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(again.status().message().find("it is running, not pending"), std::string::npos)
      << again.status().message();

  ASSERT_OK(store->FailAttempt(*attempt, job_id, FailureClass::kHung, "no progress for 600 s", JobState::kPending,
                               true));
  // A late result of the attempt that was already declared hung.
  Status late = store->CompleteAttempt(*attempt, job_id, JobOutcome{});
  EXPECT_EQ(late.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(late.message().find("already failed"), std::string::npos) << late.message();
  EXPECT_EQ(Query(*store, "SELECT state FROM jobs WHERE id = " + std::to_string(job_id)), "pending");

  EXPECT_EQ(store->StartAttempt(999999, epoch, "node01", {1}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->CompleteAttempt(999999, job_id, JobOutcome{}).code(), StatusCode::kNotFound);
  // Only the fail transition above wrote anything.
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM events"), events_before + 1);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM attempts"), 1);
}

TEST_F(StoreTest, ProgressOfAnEndedAttemptIsIgnoredAndOfAnUnknownOneIsNotFound) {
  auto store = OpenStore();
  auto submitted = store->SubmitSweep(MakeSweep("base", {"caltech101"}, 1));
  const int64_t job_id = LoadJob(*store, submitted->sweep_id, 0).id;
  auto attempt = store->StartAttempt(job_id, BeginTestRun(*store), "node01", {1});
  ASSERT_OK(attempt);
  ASSERT_OK(store->CompleteAttempt(*attempt, job_id, JobOutcome{}));
  EXPECT_OK(store->UpdateProgress(*attempt, 5, 10));
  EXPECT_EQ(Query(*store, "SELECT progress_step FROM attempts WHERE id = " + std::to_string(*attempt)), "");
  EXPECT_EQ(store->UpdateProgress(424242, 5, 10).code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, RecoveryRequeuesLostAttemptsThenPoisonsAfterMaxLost) {
  auto store = OpenStore();
  Sweep sweep = MakeSweep("base", {"caltech101"}, 1);
  for (JobSpec& job : sweep.jobs) job.retry.max_lost = 2;
  auto submitted = store->SubmitSweep(sweep);
  ASSERT_OK(submitted);
  const int64_t job_id = LoadJob(*store, submitted->sweep_id, 0).id;

  const int64_t first_run = BeginTestRun(*store);
  auto first_attempt = store->StartAttempt(job_id, first_run, "node01", {1});
  ASSERT_OK(first_attempt);
  // The coordinator dies here; the next one starts a new epoch and recovers.
  const int64_t second_run = BeginTestRun(*store);
  EXPECT_EQ(Query(*store, "SELECT status FROM runs WHERE id = " + std::to_string(first_run)), "lost");
  auto recovered = store->RecoverInterruptedAttempts(second_run);
  ASSERT_OK(recovered);
  EXPECT_EQ(recovered->requeued, 1);
  EXPECT_EQ(recovered->poisoned, 0);
  JobRecord job = LoadJob(*store, submitted->sweep_id, 0);
  EXPECT_EQ(job.state, JobState::kPending);
  EXPECT_EQ(job.lost_attempts, 1);
  EXPECT_EQ(job.attempts, 0);
  EXPECT_EQ(Query(*store, "SELECT state || ' ' || failure_class FROM attempts WHERE id = " +
                              std::to_string(*first_attempt)),
            "lost node_lost");

  auto second_attempt = store->StartAttempt(job_id, second_run, "node01", {1});
  ASSERT_OK(second_attempt);
  const int64_t third_run = BeginTestRun(*store);
  recovered = store->RecoverInterruptedAttempts(third_run);
  ASSERT_OK(recovered);
  EXPECT_EQ(recovered->requeued, 0);
  EXPECT_EQ(recovered->poisoned, 1);
  job = LoadJob(*store, submitted->sweep_id, 0);
  EXPECT_EQ(job.state, JobState::kFailed);
  EXPECT_EQ(job.lost_attempts, 2);
  EXPECT_EQ(job.failure, FailureClass::kNodeLost);
  EXPECT_NE(job.error.find("lost 2 times"), std::string::npos) << job.error;
  EXPECT_EQ(EventKinds(*store, job_id), "submitted started lost started lost");
}

TEST_F(StoreTest, RecoveryLeavesAttemptsOfTheCurrentRunAlone) {
  auto store = OpenStore();
  auto submitted = store->SubmitSweep(MakeSweep("base", {"caltech101"}, 1));
  const int64_t job_id = LoadJob(*store, submitted->sweep_id, 0).id;
  const int64_t epoch = BeginTestRun(*store);
  ASSERT_OK(store->StartAttempt(job_id, epoch, "node01", {1}));
  auto recovered = store->RecoverInterruptedAttempts(epoch);
  ASSERT_OK(recovered);
  EXPECT_EQ(recovered->requeued + recovered->poisoned, 0);
  EXPECT_EQ(LoadJob(*store, submitted->sweep_id, 0).state, JobState::kRunning);
}

TEST_F(StoreTest, BlockJobRecordsTheReasonOnceAndRefusesRunningJobs) {
  auto store = OpenStore();
  auto submitted = store->SubmitSweep(MakeSweep("base", {"caltech101"}, 1));
  const JobRecord train = LoadJob(*store, submitted->sweep_id, 0);
  const JobRecord eval = LoadJob(*store, submitted->sweep_id, 1);
  ASSERT_OK(store->BlockJob(eval.id, "upstream job 1234 (train/sleep) failed"));
  ASSERT_OK(store->BlockJob(eval.id, "upstream job 1234 (train/sleep) failed"));
  const JobRecord blocked = LoadJob(*store, submitted->sweep_id, 1);
  EXPECT_EQ(blocked.state, JobState::kBlocked);
  EXPECT_EQ(blocked.error, "upstream job 1234 (train/sleep) failed");
  EXPECT_EQ(EventKinds(*store, eval.id), "submitted blocked");

  ASSERT_OK(store->StartAttempt(train.id, BeginTestRun(*store), "node01", {1}));
  EXPECT_EQ(store->BlockJob(train.id, "no").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->BlockJob(987654, "no").code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, ResetFailedJobsReturnsFailedAndBlockedJobsToPending) {
  auto store = OpenStore();
  auto submitted = store->SubmitSweep(MakeSweep("base", {"caltech101", "eurosat"}, 1));
  ASSERT_OK(submitted);
  auto jobs = store->LoadSweepJobs(submitted->sweep_id);
  const int64_t epoch = BeginTestRun(*store);
  // caltech101: train fails for good, its eval is blocked. eurosat: train is done.
  auto failing = store->StartAttempt(jobs->at(0).id, epoch, "node01", {1});
  ASSERT_OK(failing);
  ASSERT_OK(store->FailAttempt(*failing, jobs->at(0).id, FailureClass::kUserError, "unknown dataset",
                               JobState::kFailed, true));
  ASSERT_OK(store->BlockJob(jobs->at(2).id, "upstream failed"));
  auto passing = store->StartAttempt(jobs->at(1).id, epoch, "node01", {1});
  ASSERT_OK(passing);
  ASSERT_OK(store->CompleteAttempt(*passing, jobs->at(1).id, JobOutcome{}));

  auto reset = store->ResetFailedJobs(submitted->sweep_id);
  ASSERT_OK(reset);
  EXPECT_EQ(*reset, 2);
  auto after = store->LoadSweepJobs(submitted->sweep_id);
  EXPECT_EQ(after->at(0).state, JobState::kPending);
  EXPECT_EQ(after->at(0).attempts, 0);
  EXPECT_EQ(after->at(0).total_attempts, 1);  // the history stays
  EXPECT_EQ(after->at(2).state, JobState::kPending);
  EXPECT_EQ(after->at(1).state, JobState::kDone);
  EXPECT_EQ(after->at(3).state, JobState::kPending);
  EXPECT_EQ(EventKinds(*store, jobs->at(0).id), "submitted started failed reset");
  EXPECT_EQ(Query(*store, "SELECT json_extract(detail, '$.from') FROM events WHERE kind = 'reset' AND job_id = " +
                              std::to_string(jobs->at(2).id)),
            "blocked");
  EXPECT_EQ(store->ResetFailedJobs(12345).status().code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, EventLogReproducesTheCurrentStateOfEveryJob) {
  auto store = OpenStore();
  auto submitted = store->SubmitSweep(MakeSweep("base", {"caltech101", "eurosat", "dtd"}, 2));
  auto jobs = store->LoadSweepJobs(submitted->sweep_id);
  const int64_t epoch = BeginTestRun(*store);
  auto a = store->StartAttempt(jobs->at(0).id, epoch, "n", {1});
  ASSERT_OK(store->CompleteAttempt(*a, jobs->at(0).id, JobOutcome{}));
  auto b = store->StartAttempt(jobs->at(1).id, epoch, "n", {2});
  ASSERT_OK(store->FailAttempt(*b, jobs->at(1).id, FailureClass::kCrash, "SIGSEGV", JobState::kFailed, true));
  ASSERT_OK(store->BlockJob(jobs->at(7).id, "upstream failed"));
  ASSERT_OK(store->StartAttempt(jobs->at(2).id, epoch, "n", {3}));
  auto c = store->StartAttempt(jobs->at(3).id, epoch, "n", {4});
  ASSERT_OK(store->FailAttempt(*c, jobs->at(3).id, FailureClass::kOutOfMemory, "OOM", JobState::kPending, true));

  EXPECT_EQ(Count(*store,
                  "SELECT count(*) FROM jobs j WHERE j.state IS NOT "
                  "(SELECT e.job_state FROM events e WHERE e.job_id = j.id AND e.job_state IS NOT NULL "
                  " ORDER BY e.id DESC LIMIT 1)"),
            0);
}

TEST_F(StoreTest, BatchCommitsItsTransitionsTogether) {
  auto store = OpenStore();
  auto submitted = store->SubmitSweep(MakeSweep("base", {"caltech101", "eurosat"}, 1));
  auto jobs = store->LoadSweepJobs(submitted->sweep_id);
  const int64_t epoch = BeginTestRun(*store);
  auto observer = SqliteDb::Open(db_path_, SQLITE_OPEN_READONLY);
  ASSERT_OK(observer);
  auto running_seen_by_observer = [&] {
    Statement count;
    EXPECT_EQ(count.Prepare(observer->get(), "SELECT count(*) FROM jobs WHERE state = 'running'"), SQLITE_OK);
    EXPECT_EQ(count.Step(), SQLITE_ROW);
    return count.Int64(0);
  };

  ASSERT_OK(store->BeginBatch());
  ASSERT_OK(store->StartAttempt(jobs->at(0).id, epoch, "node01", {1}));
  ASSERT_OK(store->BeginBatch());  // nested: only the outermost commit counts
  ASSERT_OK(store->StartAttempt(jobs->at(1).id, epoch, "node01", {2}));
  ASSERT_OK(store->CommitBatch());
  EXPECT_EQ(running_seen_by_observer(), 0);
  ASSERT_OK(store->CommitBatch());
  EXPECT_EQ(running_seen_by_observer(), 2);
  EXPECT_EQ(store->CommitBatch().code(), StatusCode::kFailedPrecondition);
}

TEST_F(StoreTest, FailedTransitionInsideABatchLeavesNoPartialWrite) {
  auto store = OpenStore();
  auto submitted = store->SubmitSweep(MakeSweep("base", {"caltech101"}, 1));
  auto jobs = store->LoadSweepJobs(submitted->sweep_id);
  const int64_t epoch = BeginTestRun(*store);
  auto attempt = store->StartAttempt(jobs->at(0).id, epoch, "node01", {1});
  ASSERT_OK(attempt);

  ASSERT_OK(store->BeginBatch());
  ASSERT_OK(store->UpdateProgress(*attempt, 10, 100));
  // The attempt row matches but the job does not: the attempt update inside this
  // transition must be undone, while the batch's other work survives.
  EXPECT_EQ(store->CompleteAttempt(*attempt, jobs->at(1).id, JobOutcome{}).code(), StatusCode::kInvalidArgument);
  ASSERT_OK(store->CommitBatch());
  EXPECT_EQ(Query(*store, "SELECT state || ' ' || progress_step FROM attempts WHERE id = " + std::to_string(*attempt)),
            "running 10");
  EXPECT_EQ(Query(*store, "SELECT state FROM jobs WHERE id = " + std::to_string(jobs->at(0).id)), "running");
}

TEST_F(StoreTest, ProcessKilledInsideABatchLeavesNoneOfIt) {
  {
    auto store = OpenStore();
    ASSERT_OK(store->SubmitSweep(MakeSweep("base", {"caltech101"}, 1)));
  }
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child commits one transition, then dies in the middle of a batch.
    auto store = Store::OpenWriter(db_path_);
    if (!store.ok()) _exit(2);
    auto jobs = (*store)->LoadSweepJobs(1);
    auto epoch = (*store)->BeginRun(Provenance{});
    if (!jobs.ok() || !epoch.ok()) _exit(3);
    if (!(*store)->StartAttempt(jobs->at(0).id, *epoch, "node01", {1}).ok()) _exit(4);
    if (!(*store)->BeginBatch().ok()) _exit(5);
    if (!(*store)->BlockJob(jobs->at(1).id, "never committed").ok()) _exit(6);
    raise(SIGKILL);
    _exit(7);
  }
  int wait_status = 0;
  ASSERT_EQ(waitpid(child, &wait_status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wait_status)) << "child exited with " << WEXITSTATUS(wait_status);

  auto store = OpenStore();  // the lock died with the child
  ASSERT_NE(store, nullptr);
  auto jobs = store->LoadSweepJobs(1);
  ASSERT_OK(jobs);
  EXPECT_EQ(jobs->at(0).state, JobState::kRunning);  // committed before the kill
  EXPECT_EQ(jobs->at(1).state, JobState::kPending);  // the batch never happened
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM events WHERE kind = 'blocked'"), 0);
  EXPECT_EQ(Query(*store, "PRAGMA integrity_check"), "ok");
  // The next run finds the orphaned attempt.
  const int64_t epoch = BeginTestRun(*store);
  auto recovered = store->RecoverInterruptedAttempts(epoch);
  ASSERT_OK(recovered);
  EXPECT_EQ(recovered->requeued, 1);
}

TEST_F(StoreTest, RunsRecordProvenanceHeartbeatAndEnd) {
  auto store = OpenStore();
  Provenance provenance;
  provenance.atp_version = "0.1.0";
  provenance.git_commit = "abc123";
  provenance.mpi_version = "Open MPI 4.1";
  provenance.command_line = "mpirun -np 3 atp-sweep base.toml";
  provenance.hosts = {"node01", "node01", "node02"};
  provenance.world_size = 3;
  auto epoch = store->BeginRun(provenance);
  ASSERT_OK(epoch);
  const std::string id = std::to_string(*epoch);
  EXPECT_EQ(Query(*store, "SELECT status || ' ' || world_size || ' ' || hosts_json FROM runs WHERE id = " + id),
            "running 3 [\"node01\",\"node01\",\"node02\"]");
  EXPECT_EQ(Query(*store, "SELECT command_line FROM runs WHERE id = " + id), provenance.command_line);
  EXPECT_EQ(Query(*store, "SELECT pid FROM runs WHERE id = " + id), std::to_string(getpid()));
  ASSERT_OK(store->Heartbeat(*epoch));
  ASSERT_OK(store->EndRun(*epoch, "completed"));
  EXPECT_EQ(Query(*store, "SELECT status FROM runs WHERE id = " + id), "completed");
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM runs WHERE ended_at IS NOT NULL"), 1);
  EXPECT_EQ(Query(*store, "SELECT group_concat(kind, ' ') FROM events WHERE job_id IS NULL"), "run_started run_ended");
  EXPECT_EQ(store->Heartbeat(777).code(), StatusCode::kNotFound);
  EXPECT_EQ(store->EndRun(777, "completed").code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, MeanDurationsAreKeyedByStageMethodAndDataset) {
  auto store = OpenStore();
  auto submitted = store->SubmitSweep(MakeSweep("base", {"caltech101"}, 2));
  auto jobs = store->LoadSweepJobs(submitted->sweep_id);
  const int64_t epoch = BeginTestRun(*store);
  for (int i = 0; i < 2; ++i) {
    auto attempt = store->StartAttempt(jobs->at(i).id, epoch, "n", {1});
    ASSERT_OK(store->CompleteAttempt(*attempt, jobs->at(i).id, JobOutcome{}));
  }
  // Make the durations known: 10 s and 30 s.
  ASSERT_EQ(sqlite3_exec(store->handle(),
                         "UPDATE attempts SET ended_at = started_at + 10 WHERE id = 1;"
                         "UPDATE attempts SET ended_at = started_at + 30 WHERE id = 2",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  auto means = store->MeanDurations();
  ASSERT_OK(means);
  ASSERT_EQ(means->size(), 1u);
  EXPECT_NEAR(means->at("train|sleep|caltech101"), 20.0, 1e-6);
}

TEST_F(StoreTest, ErrorMessagesThatAreNotUtf8OrHugeAreStoredSafely) {
  auto store = OpenStore();
  auto submitted = store->SubmitSweep(MakeSweep("base", {"caltech101"}, 1));
  const int64_t job_id = LoadJob(*store, submitted->sweep_id, 0).id;
  auto attempt = store->StartAttempt(job_id, BeginTestRun(*store), "n", {1});
  ASSERT_OK(attempt);
  const std::string message = "bad bytes \xff\xfe then " + std::string(100000, 'x');
  ASSERT_OK(store->FailAttempt(*attempt, job_id, FailureClass::kError, message, JobState::kPending, true));
  const JobRecord job = LoadJob(*store, submitted->sweep_id, 0);
  EXPECT_LT(job.error.size(), 17000u);
  EXPECT_EQ(job.error.rfind("bad bytes ", 0), 0u);
  EXPECT_NE(job.error.find("[truncated]"), std::string::npos);
  EXPECT_NO_THROW(Json(job.error).dump());
}

}  // namespace
}  // namespace atp
