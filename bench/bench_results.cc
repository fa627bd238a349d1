// bench_results: how long `atp query` and `atp tables` take on a large results database.
// Builds (once, through the Store, as a coordinator would) a database of N jobs, most done with
// two metrics each (base_accuracy, new_accuracy: 2N results) spread over methods, +ATPrompt,
// 11 datasets, soft-token lengths and seeds, plus failed and running jobs; then times each
// query and table (load, aggregate, format) through a read-only connection, best of 3.
// Usage: atp_bench_results [--jobs N] [--db PATH] (default 52,000 jobs = 100,844 results in
// a temporary file; an existing --db is reused as is).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "coordinator/store/sqlite_util.h"
#include "coordinator/store/store.h"
#include "coordinator/store/store_reader.h"
#include "tools/reporting/paper_tables.h"
#include "tools/reporting/results_query.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

const char* const kDatasets[] = {"imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
                                 "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101"};
const char* const kMethods[] = {"zsclip", "coop", "cocoop", "maple", "dept"};
const int kLengths[] = {1, 2, 4, 6, 8, 10, 12, 16};

bool Build(const std::string& path, int64_t jobs) {
  auto store = atp::Store::OpenWriter(path);
  if (!store.ok()) return std::fprintf(stderr, "%s\n", store.status().ToString().c_str()), false;
  const int64_t epoch = *(*store)->BeginRun(atp::Provenance{});
  atp::Sweep sweep;
  sweep.name = "bench";
  sweep.source_path = "bench.toml";
  sweep.source_text = "name = \"bench\"";
  sweep.code_version = "v1";
  for (int64_t i = 0; sweep.jobs.size() < static_cast<size_t>(jobs); ++i) {
    atp::JobSpec job;
    job.stage = "eval";
    job.method = kMethods[i % 5];
    const int64_t rest = i / 5;
    job.params = {{"dataset", kDatasets[rest % 11]},
                  {"atprompt", (rest / 11) % 2 == 1},
                  {"n_ctx", kLengths[(rest / 22) % 8]},
                  {"protocol", "base2novel"},
                  {"seed", rest / 176 + 1}};
    if ((rest / 22) % 8 == 2) job.params["attributes"] = {"color", "shape"};
    job.code_version = "v1";
    sweep.jobs.push_back(std::move(job));
  }
  auto submitted = (*store)->SubmitSweep(sweep);
  if (!submitted.ok()) return std::fprintf(stderr, "%s\n", submitted.status().ToString().c_str()), false;
  auto records = *(*store)->LoadSweepJobs(submitted->sweep_id);
  if (!(*store)->BeginBatch().ok()) return false;
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    if (i % 97 == 5) continue;  // pending
    const int64_t attempt = *(*store)->StartAttempt(r.id, epoch, "node01", {1});
    if (i % 97 == 7) continue;  // running
    if (i % 101 == 3) {
      (void)(*store)->FailAttempt(attempt, r.id, atp::FailureClass::kOutOfMemory, "oom", atp::JobState::kFailed, true);
      continue;
    }
    atp::JobOutcome outcome;
    outcome.metrics = {{"base_accuracy", 70.0 + (i % 13)}, {"new_accuracy", 60.0 + (i % 7)}};
    (void)(*store)->CompleteAttempt(attempt, r.id, outcome);
    if (i % 10000 == 9999 && !((*store)->CommitBatch().ok() && (*store)->BeginBatch().ok())) return false;
  }
  return (*store)->CommitBatch().ok();
}

template <typename F>
double Best(F&& f) {
  double best = 1e9;
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    best = std::min(best, Seconds(start));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t jobs = 52000;
  std::string path;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--jobs") jobs = std::atoll(argv[i + 1]);
    if (std::string(argv[i]) == "--db") path = argv[i + 1];
  }
  const bool temporary = path.empty();
  if (temporary) path = (std::filesystem::temp_directory_path() / ("atp_bench_results_" + std::to_string(getpid()) + ".db")).string();
  if (!std::filesystem::exists(path)) {
    const auto start = std::chrono::steady_clock::now();
    if (!Build(path, jobs)) return 1;
    std::printf("built %s: %lld jobs in %.1f s\n", path.c_str(), static_cast<long long>(jobs), Seconds(start));
  }
  auto reader = atp::StoreReader::Open(path);
  if (!reader.ok()) return std::fprintf(stderr, "%s\n", reader.status().ToString().c_str()), 1;
  sqlite3* db = (*reader)->handle();
  {
    atp::Statement count;
    count.Prepare(db, "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM metrics)");
    count.Step();
    std::printf("database: %lld jobs, %lld results\n", static_cast<long long>(count.Int64(0)),
                static_cast<long long>(count.Int64(1)));
  }
  struct QueryCase {
    const char* name;
    atp::QueryOptions options;
  };
  std::vector<QueryCase> queries(3);
  queries[0].name = "query (default grouping, every metric)";
  queries[1].name = "query --where dataset=dtd --where atprompt=true --group-by method,n_ctx";
  queries[1].options.filters = {{"dataset", "dtd"}, {"atprompt", "true"}};
  queries[1].options.group_by = {"method", "n_ctx"};
  queries[2].name = "query --metric new_accuracy --group-by method,dataset";
  queries[2].options.metric = "new_accuracy";
  queries[2].options.group_by = {"method", "dataset"};
  for (const auto& q : queries) {
    size_t rows = 0;
    const double s = Best([&] {
      auto r = atp::RunResultsQuery(db, q.options);
      rows = r.ok() ? r->rows.size() : 0;
      if (r.ok()) (void)atp::FormatQueryResult(*r, "table");
    });
    std::printf("%-75s %7.3f s  (%zu rows)\n", q.name, s, rows);
  }
  for (const auto& name : atp::PaperTableNames()) {
    size_t rows = 0;
    const double s = Best([&] {
      atp::TableOptions options;
      options.name = name;
      auto t = atp::BuildPaperTable(db, options);
      rows = t.ok() ? t->rows.size() : 0;
      if (t.ok()) (void)atp::FormatPaperTable(*t, "md", true);
    });
    std::printf("tables --table %-60s %7.3f s  (%zu rows)\n", name.c_str(), s, rows);
  }
  reader->reset();
  if (temporary) {
    for (const char* suffix : {"", "-wal", "-shm", ".lock"}) std::filesystem::remove(path + suffix);
  }
  return 0;
}
