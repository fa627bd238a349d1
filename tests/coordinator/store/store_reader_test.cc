#include "coordinator/store/store_reader.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "coordinator/store/sqlite_util.h"
#include "coordinator/store/store.h"
#include "tests/coordinator/store/schema_downgrade.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace atp {
namespace {

JobSpec Job(const std::string& stage, const std::string& dataset, int seed, std::vector<std::string> upstream = {}) {
  JobSpec job;
  job.stage = stage;
  job.method = "coop";
  job.params = Json{{"dataset", dataset}, {"seed", seed}, {"shots", 16}};
  job.upstream = std::move(upstream);
  job.code_version = "v1";
  return job;
}

// Two train jobs, each with an eval job below it.
Sweep TwoStageSweep(const std::string& name) {
  Sweep sweep;
  sweep.name = name;
  sweep.source_path = "experiments/" + name + ".toml";
  sweep.source_text = "name = \"" + name + "\"";
  sweep.code_version = "v1";
  sweep.jobs = {Job("train", "caltech101", 1), Job("train", "eurosat", 1)};
  sweep.jobs.push_back(Job("eval", "caltech101", 1, {sweep.jobs[0].Key()}));
  sweep.jobs.push_back(Job("eval", "eurosat", 1, {sweep.jobs[1].Key()}));
  return sweep;
}

class StoreReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = temp_dir_ / "results.db";
  }

  std::unique_ptr<Store> OpenWriter() {
    auto store = Store::OpenWriter(db_path_);
    EXPECT_OK(store);
    return store.ok() ? std::move(store).value() : nullptr;
  }
  std::unique_ptr<StoreReader> OpenReader() {
    auto reader = StoreReader::Open(db_path_);
    EXPECT_OK(reader);
    return reader.ok() ? std::move(reader).value() : nullptr;
  }

  // Leaves TwoStageSweep with: caltech101 train done (metrics), eurosat train failed (oom,
  // then a crash), the eurosat eval blocked, the caltech101 eval running at step 30/120.
  struct Populated {
    int64_t sweep_id = 0;
    int64_t epoch = 0;
    std::vector<JobRecord> jobs;
  };
  Populated Populate(Store& store) {
    Populated out;
    Provenance provenance;
    provenance.hosts = {"node01", "node01", "node02"};
    provenance.world_size = 3;
    out.epoch = *store.BeginRun(provenance);
    out.sweep_id = store.SubmitSweep(TwoStageSweep("base2new"))->sweep_id;
    out.jobs = *store.LoadSweepJobs(out.sweep_id);
    const auto& jobs = out.jobs;

    const int64_t done = *store.StartAttempt(jobs[0].id, out.epoch, "node01", {1});
    JobOutcome outcome;
    outcome.metrics = {{"accuracy", 93.5}, {"loss", 0.21}};
    EXPECT_OK(store.CompleteAttempt(done, jobs[0].id, outcome));

    const int64_t oom = *store.StartAttempt(jobs[1].id, out.epoch, "node02", {2});
    EXPECT_OK(store.FailAttempt(oom, jobs[1].id, FailureClass::kOutOfMemory, "CUDA out of memory (first)",
                                JobState::kPending, true));
    const int64_t crash = *store.StartAttempt(jobs[1].id, out.epoch, "node02", {2});
    EXPECT_OK(store.FailAttempt(crash, jobs[1].id, FailureClass::kOutOfMemory,
                                "CUDA out of memory\nTried to allocate 2.00 GiB", JobState::kFailed, true));
    EXPECT_OK(store.BlockJob(jobs[3].id, "upstream job failed"));

    const int64_t running = *store.StartAttempt(jobs[2].id, out.epoch, "node01", {1, 2});
    EXPECT_OK(store.UpdateProgress(running, 30, 120));
    EXPECT_OK(store.Heartbeat(out.epoch));
    return out;
  }

  testing::TempDir temp_dir_;
  std::string dir_ = temp_dir_.path();
  std::string db_path_;
};

TEST_F(StoreReaderTest, MissingFileIsNotFound) {
  auto reader = StoreReader::Open(dir_ + "/nothing.db");
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), StatusCode::kNotFound);
  EXPECT_NE(reader.status().message().find("nothing.db"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/nothing.db"));  // opening must not create it
}

TEST_F(StoreReaderTest, FileThatIsNotADatabaseIsInvalidArgument) {
  std::ofstream(db_path_) << "[sweep]\nname = \"base\"\n" << std::string(2048, '#');
  auto reader = StoreReader::Open(db_path_);
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), StatusCode::kInvalidArgument) << reader.status().ToString();
  EXPECT_NE(reader.status().message().find("not an atp results database"), std::string::npos);
}

TEST_F(StoreReaderTest, SqliteDatabaseOfAnotherProgramIsInvalidArgument) {
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(db_path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "CREATE TABLE studies (id INTEGER PRIMARY KEY)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(other);
  auto reader = StoreReader::Open(db_path_);
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), StatusCode::kInvalidArgument) << reader.status().ToString();
}

TEST_F(StoreReaderTest, SeesCommittedWritesWhileTheWriterHoldsTheDatabase) {
  auto store = OpenWriter();
  const int64_t sweep_id = store->SubmitSweep(TwoStageSweep("base2new"))->sweep_id;
  auto reader = OpenReader();
  ASSERT_NE(reader, nullptr);
  auto before = reader->Summary(std::nullopt);
  ASSERT_OK(before);
  EXPECT_EQ((*before)["counts"]["pending"], 4);

  const int64_t epoch = *store->BeginRun(Provenance{});
  auto jobs = *store->LoadSweepJobs(sweep_id);
  const int64_t attempt = *store->StartAttempt(jobs[0].id, epoch, "node01", {1});
  auto after = reader->Summary(std::nullopt);
  ASSERT_OK(after);
  EXPECT_EQ((*after)["counts"]["running"], 1);

  // Uncommitted work of a batch stays invisible until the commit.
  ASSERT_OK(store->BeginBatch());
  ASSERT_OK(store->CompleteAttempt(attempt, jobs[0].id, JobOutcome{}));
  EXPECT_EQ((*reader->Summary(std::nullopt))["counts"]["done"], 0);
  ASSERT_OK(store->CommitBatch());
  EXPECT_EQ((*reader->Summary(std::nullopt))["counts"]["done"], 1);
}

TEST_F(StoreReaderTest, AnOpenReadDoesNotBlockTheWriter) {
  auto store = OpenWriter();
  const int64_t sweep_id = store->SubmitSweep(TwoStageSweep("base2new"))->sweep_id;
  auto reader = OpenReader();
  // A read left in the middle of its rows holds a snapshot for as long as it lives.
  Statement open_read;
  ASSERT_EQ(open_read.Prepare(reader->handle(), "SELECT id FROM jobs ORDER BY id"), SQLITE_OK);
  ASSERT_EQ(open_read.Step(), SQLITE_ROW);

  // Without WAL these commits would wait for the reader's lock and fail as busy.
  auto epoch = store->BeginRun(Provenance{});
  ASSERT_OK(epoch);
  auto jobs = *store->LoadSweepJobs(sweep_id);
  auto attempt = store->StartAttempt(jobs[0].id, *epoch, "node01", {1});
  ASSERT_OK(attempt);
  ASSERT_OK(store->Heartbeat(*epoch));
  EXPECT_EQ(open_read.Step(), SQLITE_ROW);  // the reader's snapshot is still usable
}

TEST_F(StoreReaderTest, SweepsListsTheLatestFirstWithJobCounts) {
  auto store = OpenWriter();
  Sweep small = TwoStageSweep("small");
  small.jobs.resize(2);
  const int64_t first = store->SubmitSweep(small)->sweep_id;
  const int64_t second = store->SubmitSweep(TwoStageSweep("base2new"))->sweep_id;
  auto reader = OpenReader();
  auto sweeps = reader->Sweeps();
  ASSERT_OK(sweeps);
  const Json& list = (*sweeps)["sweeps"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["id"], second);
  EXPECT_EQ(list[0]["name"], "base2new");
  EXPECT_EQ(list[0]["jobs"], 4);
  EXPECT_EQ(list[0]["path"], "experiments/base2new.toml");
  EXPECT_EQ(list[1]["id"], first);
  EXPECT_EQ(list[1]["jobs"], 2);
}

TEST_F(StoreReaderTest, SummaryCountsStagesFailuresRunningJobsAndTheRun) {
  auto store = OpenWriter();
  const Populated populated = Populate(*store);
  auto reader = OpenReader();
  auto summary = reader->Summary(std::nullopt);
  ASSERT_OK(summary);
  const Json& s = *summary;

  EXPECT_EQ(s["sweep"]["id"], populated.sweep_id);
  EXPECT_EQ(s["sweep"]["name"], "base2new");
  EXPECT_EQ(s["counts"], (Json{{"pending", 0}, {"running", 1}, {"done", 1}, {"failed", 1}, {"blocked", 1},
                               {"total", 4}}));
  ASSERT_EQ(s["stages"].size(), 2u);
  EXPECT_EQ(s["stages"][0]["stage"], "train");  // in sweep order, not alphabetical
  EXPECT_EQ(s["stages"][0]["done"], 1);
  EXPECT_EQ(s["stages"][0]["failed"], 1);
  EXPECT_EQ(s["stages"][1]["stage"], "eval");
  EXPECT_EQ(s["stages"][1]["running"], 1);
  EXPECT_EQ(s["stages"][1]["blocked"], 1);

  ASSERT_EQ(s["failures"].size(), 1u);
  EXPECT_EQ(s["failures"][0]["class"], "oom");
  EXPECT_EQ(s["failures"][0]["count"], 2);
  EXPECT_EQ(s["failures"][0]["jobs"], 1);
  EXPECT_EQ(s["failures"][0]["last_error"], "CUDA out of memory\nTried to allocate 2.00 GiB");

  ASSERT_EQ(s["running"].size(), 1u);
  EXPECT_EQ(s["running"][0]["key"], populated.jobs[2].key);
  EXPECT_EQ(s["running"][0]["host"], "node01");
  EXPECT_EQ(s["running"][0]["ranks"], (Json{1, 2}));
  EXPECT_EQ(s["running"][0]["step"], 30);
  EXPECT_EQ(s["running"][0]["total"], 120);

  EXPECT_EQ(s["run"]["epoch"], populated.epoch);
  EXPECT_EQ(s["run"]["status"], "running");
  EXPECT_EQ(s["run"]["world_size"], 3);
  EXPECT_GE(s["run"]["heartbeat_age_s"].get<double>(), 0.0);
  EXPECT_LT(s["run"]["heartbeat_age_s"].get<double>(), 60.0);
  // The only job left (an eval) is of a kind that never finished, so there is no estimate.
  EXPECT_TRUE(s["eta_s"].is_null());
}

TEST_F(StoreReaderTest, SummaryOfAnUnknownSweepIsNotFoundAndOfAnEmptyDatabaseToo) {
  OpenWriter();
  auto reader = OpenReader();
  EXPECT_EQ(reader->Summary(std::nullopt).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(reader->Summary(42).status().code(), StatusCode::kNotFound);
}

TEST_F(StoreReaderTest, SummaryDefaultsToTheLatestSweepAndCanShowAnEarlierOne) {
  auto store = OpenWriter();
  Sweep small = TwoStageSweep("small");
  small.jobs.resize(2);
  const int64_t first = store->SubmitSweep(small)->sweep_id;
  ASSERT_OK(store->SubmitSweep(TwoStageSweep("base2new")));
  auto reader = OpenReader();
  EXPECT_EQ((*reader->Summary(std::nullopt))["sweep"]["name"], "base2new");
  EXPECT_EQ((*reader->Summary(first))["counts"]["total"], 2);
  // Resubmitting the earlier sweep makes it the latest again.
  ASSERT_OK(store->SubmitSweep(small));
  EXPECT_EQ((*reader->Summary(std::nullopt))["sweep"]["id"], first);
}

TEST_F(StoreReaderTest, JobsFiltersByStateAndStageAndPages) {
  auto store = OpenWriter();
  const Populated populated = Populate(*store);
  auto reader = OpenReader();

  JobQuery all;
  auto jobs = reader->Jobs(all);
  ASSERT_OK(jobs);
  EXPECT_EQ((*jobs)["total"], 4);
  ASSERT_EQ((*jobs)["jobs"].size(), 4u);
  const Json& failed_job = (*jobs)["jobs"][1];
  EXPECT_EQ(failed_job["key"], populated.jobs[1].key);
  EXPECT_EQ(failed_job["state"], "failed");
  EXPECT_EQ(failed_job["attempts"], 2);
  EXPECT_EQ(failed_job["failure_class"], "oom");
  EXPECT_EQ(failed_job["dataset"], "eurosat");
  EXPECT_EQ(failed_job["seed"], 1);
  EXPECT_EQ(failed_job["host"], "node02");
  EXPECT_EQ(failed_job["ranks_used"], (Json{2}));
  EXPECT_EQ(failed_job["params"]["shots"], 16);
  EXPECT_TRUE((*jobs)["jobs"][0]["duration_s"].is_number());

  JobQuery failed;
  failed.state = "failed";
  EXPECT_EQ((*reader->Jobs(failed))["total"], 1);
  JobQuery eval;
  eval.stage = "eval";
  eval.limit = 1;
  eval.offset = 1;
  auto page = reader->Jobs(eval);
  EXPECT_EQ((*page)["total"], 2);
  ASSERT_EQ((*page)["jobs"].size(), 1u);
  EXPECT_EQ((*page)["jobs"][0]["key"], populated.jobs[3].key);

  JobQuery bad_state;
  bad_state.state = "finished";
  EXPECT_EQ(reader->Jobs(bad_state).status().code(), StatusCode::kInvalidArgument);
  JobQuery bad_page;
  bad_page.offset = -1;
  EXPECT_EQ(reader->Jobs(bad_page).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(StoreReaderTest, MetricsListsTheResultsOfDoneJobs) {
  auto store = OpenWriter();
  const Populated populated = Populate(*store);
  auto reader = OpenReader();
  auto metrics = reader->Metrics(std::nullopt, 100, 0);
  ASSERT_OK(metrics);
  EXPECT_EQ((*metrics)["total"], 2);
  const Json& rows = (*metrics)["metrics"];
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["key"], populated.jobs[0].key);
  EXPECT_EQ(rows[0]["name"], "accuracy");
  EXPECT_DOUBLE_EQ(rows[0]["value"].get<double>(), 93.5);
  EXPECT_EQ(rows[1]["name"], "loss");
  EXPECT_EQ(rows[0]["dataset"], "caltech101");
  EXPECT_EQ(rows[0]["stage"], "train");
}

TEST_F(StoreReaderTest, ViewsAnswerTheDocumentedQueries) {
  auto store = OpenWriter();
  const Populated populated = Populate(*store);
  auto reader = OpenReader();
  sqlite3* db = reader->handle();
  auto text = [&](const std::string& sql) {
    Statement statement;
    EXPECT_EQ(statement.Prepare(db, sql), SQLITE_OK) << sqlite3_errmsg(db);
    std::string rows;
    int rc;
    while ((rc = statement.Step()) == SQLITE_ROW) {
      for (int i = 0; i < sqlite3_column_count(statement.get()); ++i) rows += (i ? "|" : "") + statement.Text(i);
      rows += "\n";
    }
    EXPECT_EQ(rc, SQLITE_DONE) << sqlite3_errmsg(db);
    return rows;
  };
  EXPECT_EQ(text("SELECT stage, method, dataset, seed, metric, value, json_extract(params, '$.shots') "
                 "FROM v_results ORDER BY metric"),
            "train|coop|caltech101|1|accuracy|93.5|16\ntrain|coop|caltech101|1|loss|0.21|16\n");
  EXPECT_EQ(text("SELECT stage, pending, running, done, failed, blocked, total FROM v_stage_progress "
                 "ORDER BY stage_order"),
            "train|0|0|1|1|0|2\neval|0|1|0|0|1|2\n");
  EXPECT_EQ(text("SELECT class, attempts, jobs, last_error FROM v_failures"),
            "oom|2|1|CUDA out of memory\nTried to allocate 2.00 GiB\n");
  EXPECT_EQ(text("SELECT short_key, state, total_attempts, progress_step FROM v_job_status WHERE state = 'running'"),
            populated.jobs[2].key.substr(0, 12) + "|running|1|30\n");
}

TEST_F(StoreReaderTest, FormatSummaryShowsRunStagesFailuresAndRunningJobs) {
  auto store = OpenWriter();
  const Populated populated = Populate(*store);
  auto reader = OpenReader();
  const std::string text = StoreReader::FormatSummary(*reader->Summary(std::nullopt));
  EXPECT_NE(text.find("Sweep " + std::to_string(populated.sweep_id) + " 'base2new' (experiments/base2new.toml): 4 jobs"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("Run " + std::to_string(populated.epoch) + ": running on "), std::string::npos) << text;
  EXPECT_NE(text.find("3 ranks on 2 hosts"), std::string::npos) << text;
  EXPECT_NE(text.find("last heartbeat"), std::string::npos) << text;
  EXPECT_NE(text.find("stage  pending  running     done   failed  blocked    total"), std::string::npos) << text;
  EXPECT_NE(text.find("train        0        0        1        1        0        2"), std::string::npos) << text;
  EXPECT_NE(text.find("eval         0        1        0        0        1        2"), std::string::npos) << text;
  EXPECT_NE(text.find("all          0        1        1        1        1        4"), std::string::npos) << text;
  // Failure classes with counts and the first line of the last message.
  EXPECT_NE(text.find("oom"), std::string::npos) << text;
  EXPECT_NE(text.find("2 attempts"), std::string::npos) << text;
  EXPECT_NE(text.find("CUDA out of memory\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("Tried to allocate"), std::string::npos) << text;
  // Running jobs with host, ranks and progress.
  EXPECT_NE(text.find(populated.jobs[2].key.substr(0, 12) + "  eval  coop  caltech101  seed 1  on node01 ranks 1,2"
                                                            "  step 30/120 (25%)"),
            std::string::npos)
      << text;
}

TEST_F(StoreReaderTest, TheRunsComputeEnvironmentIsRecordedAndShown) {
  auto store = OpenWriter();
  Provenance provenance;
  provenance.compute = Json{{"blas",
                             {{"library", "OpenBLAS 0.3.21 (pthreads)"},
                              {"kernel", "SkylakeX"},
                              {"library_kernel", "Prescott"},
                              {"selection", "selected by atp; the library chose Prescott"},
                              {"check", "passed"},
                              {"threads", 2}}},
                            {"threads_per_job", 2}};
  ASSERT_OK(store->BeginRun(provenance));
  ASSERT_OK(store->SubmitSweep(TwoStageSweep("base2new")));
  auto reader = OpenReader();
  auto summary = reader->Summary(std::nullopt);
  ASSERT_OK(summary);
  EXPECT_EQ((*summary)["run"]["compute"]["blas"]["kernel"], "SkylakeX");
  const std::string text = StoreReader::FormatSummary(*summary);
  EXPECT_NE(text.find("Compute: OpenBLAS 0.3.21 (pthreads), kernel SkylakeX (selected by atp; the library chose "
                      "Prescott), 2 threads per job"),
            std::string::npos)
      << text;
}

// A database written by an atp whose schema was version 1 (before runs.compute_json) must keep
// reporting through the read-only tools without a coordinator migrating it first.
TEST_F(StoreReaderTest, AVersionOneDatabaseStillReports) {
  {
    auto store = OpenWriter();
    ASSERT_NE(store, nullptr);
    Populate(*store);
  }
  ASSERT_EQ(DowngradeToSchemaVersionOne(db_path_), "");
  auto reader = OpenReader();
  ASSERT_NE(reader, nullptr);
  auto summary = reader->Summary(std::nullopt);
  ASSERT_OK(summary);
  EXPECT_EQ((*summary)["run"]["world_size"], 3);
  EXPECT_EQ((*summary)["run"]["compute"], Json::object());
  EXPECT_FALSE(StoreReader::FormatSummary(*summary).empty());
}

TEST_F(StoreReaderTest, FormatSummarySaysWhenTheCoordinatorStoppedHeartbeating) {
  Json summary = {{"sweep", {{"id", 1}, {"name", "base"}, {"jobs", 0}, {"submitted_at", 0}}},
                  {"run",
                   {{"epoch", 4},
                    {"status", "running"},
                    {"hostname", "node01"},
                    {"pid", 99},
                    {"world_size", 8},
                    {"ended_at", nullptr},
                    {"heartbeat_age_s", 3700}}},
                  {"stages", Json::array()},
                  {"counts", Json::object()}};
  const std::string text = StoreReader::FormatSummary(summary);
  EXPECT_NE(text.find("Run 4: no heartbeat for 1h 01m"), std::string::npos) << text;
  EXPECT_NE(text.find("probably stopped"), std::string::npos) << text;

  summary["run"] = nullptr;
  EXPECT_NE(StoreReader::FormatSummary(summary).find("No coordinator run has started"), std::string::npos);
}

TEST_F(StoreReaderTest, SummaryOfOneHundredThousandJobs) {
  {
    auto store = OpenWriter();
    Sweep sweep;
    sweep.name = "large";
    for (int i = 0; i < 100000; ++i) sweep.jobs.push_back(Job(i < 60000 ? "train" : "eval", "d" + std::to_string(i % 7), i));
    auto submitted = store->SubmitSweep(sweep);
    ASSERT_OK(submitted);
    auto jobs = *store->LoadSweepJobs(submitted->sweep_id);
    const int64_t epoch = *store->BeginRun(Provenance{});
    ASSERT_OK(store->BeginBatch());
    for (int i = 0; i < 2000; ++i) {
      const int64_t attempt = *store->StartAttempt(jobs[i].id, epoch, "node01", {i % 8});
      if (i < 1900) {
        ASSERT_OK(store->CompleteAttempt(attempt, jobs[i].id, JobOutcome{}));
      } else if (i < 1950) {
        ASSERT_OK(store->FailAttempt(attempt, jobs[i].id, FailureClass::kHung, "no progress", JobState::kFailed, true));
      }
    }
    ASSERT_OK(store->CommitBatch());
  }
  auto reader = OpenReader();
  const auto start = std::chrono::steady_clock::now();
  auto summary = reader->Summary(std::nullopt);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_OK(summary);
  EXPECT_EQ((*summary)["counts"]["total"], 100000);
  EXPECT_EQ((*summary)["counts"]["done"], 1900);
  EXPECT_EQ((*summary)["counts"]["failed"], 50);
  EXPECT_EQ((*summary)["counts"]["running"], 50);
  EXPECT_EQ((*summary)["running"].size(), 50u);
  EXPECT_TRUE((*summary)["eta_s"].is_number());  // train jobs of every dataset have finished
  std::printf("[ timing   ] Summary of a 100,000-job sweep: %.3f s\n", seconds);
}

}  // namespace
}  // namespace atp
