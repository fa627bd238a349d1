// ResultsDb: builds a results database with known results for the query and table tests.
// Jobs are described with their outcome (done with metrics, failed, running, pending), put
// into sweeps through Store::SubmitSweep, and driven through the Store's transitions, so
// the database is exactly what a coordinator would have written. Not thread-safe.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/store/store.h"
#include "coordinator/store/store_reader.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace atp {

enum class Outcome { kDone, kFailed, kRunning, kPending };

struct PlannedJob {
  JobSpec spec;
  Outcome outcome = Outcome::kDone;
  std::map<std::string, double> metrics;
  Json outputs = Json::object();
};

// A job with the parameters of the results conventions (docs/results.md).
inline JobSpec ResultJob(const std::string& method, const std::string& dataset, int seed, Json extra = Json::object(),
                         const std::string& stage = "eval") {
  JobSpec job;
  job.stage = stage;
  job.method = method;
  job.params = Json{{"dataset", dataset}, {"seed", seed}};
  for (auto& [k, v] : extra.items()) job.params[k] = v;
  job.code_version = "v1";
  return job;
}

inline PlannedJob Base2Novel(const std::string& method, bool atprompt, const std::string& dataset, int seed,
                             double base, double novel, Json extra = Json::object()) {
  extra["protocol"] = "base2novel";
  extra["atprompt"] = atprompt;
  return {ResultJob(method, dataset, seed, extra), Outcome::kDone, {{"base_accuracy", base}, {"new_accuracy", novel}}, {}};
}

inline PlannedJob WithOutcome(PlannedJob job, Outcome outcome) {
  job.outcome = outcome;
  if (outcome != Outcome::kDone) job.metrics.clear();
  return job;
}

class ResultsDb {
 public:
  ResultsDb() {
    path_ = dir_ / "results.db";
    auto store = Store::OpenWriter(path_);
    EXPECT_OK(store);
    store_ = std::move(store).value();
    epoch_ = *store_->BeginRun(Provenance{});
  }
  ~ResultsDb() { store_.reset(); }  // closes the database before dir_ goes

  // Submits the jobs as one sweep and plays their outcomes; returns the sweep id. Jobs
  // already in the database (same key, from an earlier sweep) keep their first outcome.
  int64_t AddSweep(const std::string& name, const std::vector<PlannedJob>& jobs) {
    Sweep sweep;
    sweep.name = name;
    sweep.source_path = "experiments/" + name + ".toml";
    sweep.source_text = "name = \"" + name + "\"  # " + std::to_string(jobs.size());
    sweep.code_version = "v1";
    for (const auto& j : jobs) sweep.jobs.push_back(j.spec);
    auto submitted = store_->SubmitSweep(sweep);
    EXPECT_OK(submitted);
    const int64_t sweep_id = submitted->sweep_id;
    auto records = *store_->LoadSweepJobs(sweep_id);
    std::map<std::string, const JobRecord*> by_key;
    for (const auto& r : records) by_key[r.key] = &r;
    for (const auto& j : jobs) {
      const JobRecord* record = by_key.at(j.spec.Key());
      if (record->state != JobState::kPending || j.outcome == Outcome::kPending) continue;
      const int64_t attempt = *store_->StartAttempt(record->id, epoch_, "node01", {1});
      if (j.outcome == Outcome::kDone) {
        JobOutcome outcome;
        outcome.metrics = j.metrics;
        outcome.outputs = j.outputs;
        EXPECT_OK(store_->CompleteAttempt(attempt, record->id, outcome));
      } else if (j.outcome == Outcome::kFailed) {
        EXPECT_OK(store_->FailAttempt(attempt, record->id, FailureClass::kOutOfMemory, "CUDA out of memory",
                                      JobState::kFailed, true));
      }
    }
    return sweep_id;
  }

  std::unique_ptr<StoreReader> Reader() {
    auto reader = StoreReader::Open(path_);
    EXPECT_OK(reader);
    return std::move(reader).value();
  }

  Store& store() { return *store_; }
  const std::string& path() const { return path_; }

 private:
  testing::TempDir dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
  int64_t epoch_ = 0;
};

}  // namespace atp
