// bench_coordinator: the orchestrator's overhead figures, measured side by side in one run.
//  1. dispatch: jobs dispatched and completed per second with zero-length jobs, through the
//     whole real path (mpirun, isolated executors, SQLite records), with 4 ranks and alone;
//  2. expansion: time to parse, expand and key a 100,000-job sweep, and to record it;
//  3. makespan: a synthetic mix of job lengths run for real under mpirun, and simulated on a
//     larger allocation, divided by the lower bound max(longest job, total work / workers).
// Usage: atp_bench_coordinator [--jobs N] [--mix N] (run from the build tree: it starts
// tools/atp-sweep beside it).
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "coordinator/scheduler.h"
#include "coordinator/store/store.h"
#include "coordinator/sweep/sweep.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

std::string Here() {
  char buffer[4096];
  ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  return std::filesystem::path(std::string(buffer, n > 0 ? static_cast<size_t>(n) : 0)).parent_path().string();
}

double QueryDouble(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  double value = -1;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
      value = sqlite3_column_double(stmt, 0);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return value;
}

int Run(const std::string& command) { return std::system(command.c_str()); }

// Runs a sweep file through atp-sweep; returns the span from the first attempt's start to the
// last attempt's end as recorded in the database (what the orchestrator itself achieved).
double RunSweep(const std::string& sweep_toml, const std::string& dir, int ranks, const std::string& name) {
  std::string toml_path = dir + "/" + name + ".toml";
  std::ofstream(toml_path) << sweep_toml;
  std::string db = dir + "/" + name + ".db";
  std::string sweep_binary = Here() + "/../tools/atp-sweep";
  std::string launcher = ranks > 1 ? "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe "
                                     "--mca btl self,vader -np " + std::to_string(ranks) + " "
                                   : "";
  int code = Run(launcher + sweep_binary + " " + toml_path + " --db " + db + " --log quiet > " + dir + "/" + name +
                 ".log 2>&1");
  if (code != 0) {
    std::fprintf(stderr, "bench: %s failed (exit %d); see %s/%s.log\n", name.c_str(), code, dir.c_str(), name.c_str());
    return -1;
  }
  return QueryDouble(db, "select max(ended_at) - min(started_at) from attempts");
}

std::string ZeroLengthSweep(int jobs) {
  std::string seeds;
  for (int i = 1; i <= jobs; ++i) seeds += (i > 1 ? "," : "") + std::to_string(i);
  return "[sweep]\nname = \"dispatch\"\ncode_version = \"1\"\n[axes]\nseed = [" + seeds +
         "]\n[[stage]]\nname = \"noop\"\nmethod = \"sleep\"\nparams = { seconds = 0.0, steps = 1 }\n";
}

void BenchDispatch(const std::string& dir, int jobs) {
  std::printf("== dispatch: %d zero-length jobs (executor process, progress, SQLite records) ==\n", jobs);
  double alone = RunSweep(ZeroLengthSweep(jobs), dir, 1, "dispatch_alone");
  double four = RunSweep(ZeroLengthSweep(jobs), dir, 4, "dispatch_mpi4");
  if (alone > 0) std::printf("  without mpirun (1 local worker): %8.0f jobs/s (%.2f s)\n", jobs / alone, alone);
  if (four > 0) std::printf("  mpirun -np 4 (3 workers):       %8.0f jobs/s (%.2f s)\n", jobs / four, four);
  if (alone > 0 && four > 0) std::printf("  ratio 4 ranks / alone: %.2f\n", alone / four);
}

void BenchExpansion(const std::string& dir) {
  std::printf("== expansion: a 100,000-job sweep ==\n");
  std::string a, b;
  for (int i = 0; i < 100; ++i) a += (i ? "," : "") + std::to_string(i);
  for (int i = 1; i <= 1000; ++i) b += (i > 1 ? "," : "") + std::to_string(i);  // steps >= 1
  std::string toml = "[sweep]\nname = \"big\"\ncode_version = \"1\"\n[axes]\nseed = [" + a +
                     "]\n[[stage]]\nname = \"s\"\nmethod = \"sleep\"\n[stage.axes]\nsteps = [" + b + "]\n";
  auto start = std::chrono::steady_clock::now();
  auto sweep = atp::ParseSweep(toml, "big.toml");
  double parse = Seconds(start);
  if (!sweep.ok()) {
    std::fprintf(stderr, "bench: %s\n", sweep.status().ToString().c_str());
    return;
  }
  std::string db = dir + "/big.db";
  auto store = atp::Store::OpenWriter(db);
  if (!store.ok()) {
    std::fprintf(stderr, "bench: %s\n", store.status().ToString().c_str());
    return;
  }
  start = std::chrono::steady_clock::now();
  auto submitted = (*store)->SubmitSweep(*sweep);
  double record = Seconds(start);
  start = std::chrono::steady_clock::now();
  auto again = (*store)->SubmitSweep(*sweep);
  double resubmit = Seconds(start);
  std::printf("  parse + expand + key %zu jobs: %.2f s\n", sweep->jobs.size(), parse);
  std::printf("  record in SQLite:               %.2f s (%lld new)\n", record,
              submitted.ok() ? static_cast<long long>(submitted->new_jobs) : -1LL);
  std::printf("  resubmit (all known):           %.2f s (%lld new)\n", resubmit,
              again.ok() ? static_cast<long long>(again->new_jobs) : -1LL);
  std::printf("  total expand + record:          %.2f s (target < 5 s)\n", parse + record);
}

void BenchMakespan(const std::string& dir, int jobs) {
  std::printf("== makespan: synthetic mix of job lengths ==\n");
  std::mt19937 rng(7);
  // A heavy-tailed mix: most jobs short, a few long, as in a grid with large datasets.
  std::lognormal_distribution<double> length(-0.5, 0.8);
  std::vector<double> lengths;
  for (int i = 0; i < jobs; ++i) lengths.push_back(std::min(3.0, std::max(0.05, length(rng))));
  std::string stage_list;
  double total = 0, longest = 0;
  std::string toml = "[sweep]\nname = \"mix\"\ncode_version = \"1\"\n";
  for (int i = 0; i < jobs; ++i) {
    total += lengths[i];
    longest = std::max(longest, lengths[i]);
    char line[256];
    std::snprintf(line, sizeof line,
                  "[[stage]]\nname = \"j%d\"\nmethod = \"sleep\"\nparams = { seconds = %.3f, steps = 2 }\n"
                  "expected_seconds = %.3f\n",
                  i, lengths[i], lengths[i]);
    toml += line;
  }
  const int workers = 3;
  double bound = std::max(longest, total / workers);
  double makespan = RunSweep(toml, dir, workers + 1, "makespan");
  if (makespan > 0) {
    std::printf("  real, mpirun -np 4: %d jobs, %.1f s of work, bound %.2f s, makespan %.2f s, ratio %.3f\n", jobs,
                total, bound, makespan, makespan / bound);
  }
  // The scheduler alone on a larger allocation: 5000 jobs on 8 nodes x 8 ranks, event-simulated.
  std::vector<atp::WorkerRank> ranks;
  for (int node = 0; node < 8; ++node) {
    for (int r = 0; r < 8; ++r) ranks.push_back({1 + node * 8 + r, "node" + std::to_string(node)});
  }
  atp::Scheduler scheduler(ranks);
  std::vector<double> sim_lengths;
  double sim_total = 0, sim_longest = 0;
  for (int i = 0; i < 5000; ++i) {
    double l = std::max(0.05, length(rng)) * 60;
    sim_lengths.push_back(l);
    sim_total += l;
    sim_longest = std::max(sim_longest, l);
    scheduler.AddJob(atp::SchedulerJob{i + 1, 1, {}, l}, atp::JobState::kPending);
  }
  scheduler.Finalize();
  using Event = std::pair<double, int64_t>;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events;
  double now = 0;
  std::vector<int64_t> blocked;
  while (scheduler.HasWork()) {
    for (const auto& a : scheduler.Schedule()) events.push({now + sim_lengths[a.job_id - 1], a.job_id});
    if (events.empty()) break;
    auto [t, id] = events.top();
    events.pop();
    now = t;
    scheduler.OnAttemptEnded(id, atp::Scheduler::Outcome::kDone, &blocked);
  }
  double sim_bound = std::max(sim_longest, sim_total / ranks.size());
  std::printf("  simulated, 5000 jobs on 64 ranks: bound %.0f s, makespan %.0f s, ratio %.3f\n", sim_bound, now,
              now / sim_bound);
}

}  // namespace

int main(int argc, char** argv) {
  int jobs = 2000;
  int mix = 60;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--jobs") jobs = std::atoi(argv[++i]);
    else if (std::string(argv[i]) == "--mix") mix = std::atoi(argv[++i]);
  }
  std::string dir = std::filesystem::temp_directory_path().string() + "/atp-bench-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  BenchExpansion(dir);
  BenchDispatch(dir, jobs);
  BenchMakespan(dir, mix);
  std::filesystem::remove_all(dir);
  return 0;
}
