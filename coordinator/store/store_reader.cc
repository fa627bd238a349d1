#include "coordinator/store/store_reader.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <set>
#include <vector>

#include "common/clock.h"
#include "coordinator/store/job_state.h"
#include "coordinator/store/sqlite_util.h"
#include "coordinator/store/store.h"

namespace atp {
namespace {

constexpr int kBusyTimeoutMs = 5000;
// No page of Jobs or Metrics is larger, whatever the caller asks: the HTTP server passes
// user input straight through.
constexpr int64_t kMaxPageRows = 10000;
// A live coordinator heartbeats far more often than this; a run silent for longer is
// probably dead, and `atp status` says so.
constexpr double kStaleHeartbeatSeconds = 120;
// `atp status` lists at most this many running jobs, then a count of the rest.
constexpr size_t kMaxRunningLines = 20;

Json NullableText(const Statement& row, int column) { return row.IsNull(column) ? Json() : Json(row.Text(column)); }
Json NullableInt(const Statement& row, int column) { return row.IsNull(column) ? Json() : Json(row.Int64(column)); }
Json NullableReal(const Statement& row, int column) { return row.IsNull(column) ? Json() : Json(row.Double(column)); }

std::string DatabaseName(sqlite3* db) {
  const char* name = sqlite3_db_filename(db, "main");
  return name != nullptr ? name : "the results database";
}

Status CheckPage(int64_t limit, int64_t offset) {
  if (limit < 0 || offset < 0) {
    return InvalidArgument("limit and offset must not be negative (got limit " + std::to_string(limit) + ", offset " +
                           std::to_string(offset) + ")");
  }
  return Status::Ok();
}

// The sweep to show: `requested` when given and present, otherwise the latest submitted.
Result<int64_t> ResolveSweep(sqlite3* db, std::optional<int64_t> requested) {
  Statement select;
  if (requested) {
    ATP_SQLITE_CHECK(db, select.Prepare(db, "SELECT id FROM sweeps WHERE id = ?1"));
    select.Bind(1, *requested);
  } else {
    ATP_SQLITE_CHECK(db, select.Prepare(db, "SELECT id FROM sweeps ORDER BY submitted_at DESC, id DESC LIMIT 1"));
  }
  const int rc = select.Step();
  ATP_SQLITE_CHECK(db, rc);
  if (rc == SQLITE_ROW) return select.Int64(0);
  if (requested) return NotFound("sweep " + std::to_string(*requested) + " is not in " + DatabaseName(db));
  return NotFound("no sweep has been submitted to " + DatabaseName(db) + " yet");
}

constexpr const char* kSweepColumns =
    "SELECT s.id, s.name, s.source_path, s.code_version, s.created_at, s.submitted_at, "
    "       (SELECT count(*) FROM sweep_jobs sj WHERE sj.sweep_id = s.id) "
    "FROM sweeps s ";

Json SweepJson(const Statement& row) {
  return Json{{"id", row.Int64(0)},         {"name", row.Text(1)},         {"path", row.Text(2)},
              {"code_version", row.Text(3)}, {"created_at", row.Double(4)}, {"submitted_at", row.Double(5)},
              {"jobs", row.Int64(6)}};
}

std::string FormatTime(double unix_seconds) {
  const std::time_t seconds = static_cast<std::time_t>(unix_seconds);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S UTC", &utc);
  return text;
}

// "42s", "3m 05s", "2h 10m", "3d 4h": as precise as a person needs at each scale.
std::string FormatDuration(double seconds) {
  const int64_t s = std::max<int64_t>(0, std::llround(seconds));
  char text[32];
  if (s < 60) {
    std::snprintf(text, sizeof(text), "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(text, sizeof(text), "%lldm %02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(text, sizeof(text), "%lldh %02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else {
    std::snprintf(text, sizeof(text), "%lldd %lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>(s % 86400 / 3600));
  }
  return text;
}

// The first line of `text`, at most `max_chars` bytes (cut at a UTF-8 boundary).
std::string OneLine(const std::string& text, size_t max_chars) {
  std::string line = text.substr(0, text.find('\n'));
  if (line.size() <= max_chars) return line;
  size_t cut = max_chars;
  while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
  return line.substr(0, cut) + "...";
}

std::string Text(const Json& json, const char* key, const std::string& fallback = "") {
  auto it = json.find(key);
  return (it != json.end() && it->is_string()) ? it->get<std::string>() : fallback;
}

double Number(const Json& json, const char* key, double fallback = 0) {
  auto it = json.find(key);
  return (it != json.end() && it->is_number()) ? it->get<double>() : fallback;
}

bool HasNumber(const Json& json, const char* key) {
  auto it = json.find(key);
  return it != json.end() && it->is_number();
}

std::string RanksText(const Json& ranks) {
  if (!ranks.is_array()) return "?";
  std::string text;
  for (const Json& rank : ranks) {
    if (!text.empty()) text += ",";
    text += rank.is_number() ? std::to_string(rank.get<long long>()) : "?";
  }
  return text;
}

void AppendRunLine(const Json& run, std::string* out) {
  if (!run.is_object()) {
    *out += "No coordinator run has started on this database yet.\n";
    return;
  }
  const std::string epoch = std::to_string(static_cast<long long>(Number(run, "epoch")));
  const std::string status = Text(run, "status");
  const long long world_size = static_cast<long long>(Number(run, "world_size", 1));
  std::set<std::string> hosts;  // one entry per rank in the run; count machines
  if (run.contains("hosts") && run["hosts"].is_array()) {
    for (const Json& host : run["hosts"]) {
      if (host.is_string()) hosts.insert(host.get<std::string>());
    }
  }
  std::string where = " on " + Text(run, "hostname", "?") + " (pid " +
                      std::to_string(static_cast<long long>(Number(run, "pid"))) + "), " +
                      std::to_string(world_size) + (world_size == 1 ? " rank" : " ranks");
  if (hosts.size() > 1) where += " on " + std::to_string(hosts.size()) + " hosts";
  if (HasNumber(run, "ended_at")) {
    *out += "Run " + epoch + ": " + status + ", ended " + FormatTime(Number(run, "ended_at")) + " (started " +
            FormatTime(Number(run, "started_at")) + ")\n";
    return;
  }
  const double age = Number(run, "heartbeat_age_s");
  if (age > kStaleHeartbeatSeconds) {
    *out += "Run " + epoch + ": no heartbeat for " + FormatDuration(age) + where +
            "; the coordinator has probably stopped (starting it again recovers its jobs)\n";
  } else {
    *out += "Run " + epoch + ": " + status + where + "; last heartbeat " + FormatDuration(age) + " ago\n";
  }
}

// "Compute: OpenBLAS 0.3.21 (pthreads), kernel SkylakeX (selected by atp; ...), 2 threads per job"
void AppendComputeLine(const Json& run, std::string* out) {
  if (!run.is_object() || !run.contains("compute") || !run["compute"].is_object()) return;
  const Json& compute = run["compute"];
  const Json blas = compute.value("blas", Json::object());
  if (!blas.is_object() || Text(blas, "library").empty()) return;
  std::string line = "Compute: " + Text(blas, "library");
  if (!Text(blas, "kernel").empty()) line += ", kernel " + Text(blas, "kernel");
  if (!Text(blas, "selection").empty()) line += " (" + Text(blas, "selection") + ")";
  if (HasNumber(compute, "threads_per_job")) {
    const long long threads = static_cast<long long>(Number(compute, "threads_per_job"));
    line += ", " + std::to_string(threads) + (threads == 1 ? " thread per job" : " threads per job");
  }
  *out += line + "\n";
}

void AppendStageTable(const Json& summary, std::string* out) {
  static const char* kStates[] = {"pending", "running", "done", "failed", "blocked", "total"};
  const Json stages = summary.value("stages", Json::array());
  size_t width = 5;
  for (const Json& stage : stages) width = std::max(width, Text(stage, "stage").size());
  char cell[64];
  std::snprintf(cell, sizeof(cell), "%-*s", static_cast<int>(width), "stage");
  *out += cell;
  for (const char* state : kStates) {
    std::snprintf(cell, sizeof(cell), " %8s", state);
    *out += cell;
  }
  *out += "\n";
  auto append_row = [&](const std::string& name, const Json& counts) {
    std::snprintf(cell, sizeof(cell), "%-*s", static_cast<int>(width), name.c_str());
    *out += cell;
    for (const char* state : kStates) {
      std::snprintf(cell, sizeof(cell), " %8lld", static_cast<long long>(Number(counts, state)));
      *out += cell;
    }
    *out += "\n";
  };
  for (const Json& stage : stages) append_row(Text(stage, "stage"), stage);
  if (stages.size() > 1) append_row("all", summary.value("counts", Json::object()));
}

}  // namespace

StoreReader::~StoreReader() { sqlite3_close_v2(db_); }

Result<std::unique_ptr<StoreReader>> StoreReader::Open(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) {
      return NotFound("no results database at " + path + " (atp-sweep creates it when it first runs a sweep)");
    }
    return IoError("cannot read " + path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(info.st_mode)) return InvalidArgument(path + " is not a file, so not an atp results database");

  // Read-only: in WAL mode a reader never blocks the coordinator's writes, and this
  // connection cannot change the database by mistake.
  ATP_ASSIGN_OR_RETURN(SqliteDb db, SqliteDb::Open(path, SQLITE_OPEN_READONLY));
  ATP_SQLITE_CHECK(db.get(), sqlite3_busy_timeout(db.get(), kBusyTimeoutMs));

  const std::string not_atp = path + " is not an atp results database";
  Statement probe;
  int rc = probe.Prepare(db.get(),
                         "SELECT (SELECT application_id FROM pragma_application_id()),"
                         "       (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'),"
                         "       (SELECT count(*) FROM sqlite_master)");
  if ((rc & 0xff) == SQLITE_NOTADB) return InvalidArgument(not_atp + " (it is not an SQLite file)");
  ATP_SQLITE_CHECK(db.get(), rc);
  rc = probe.Step();
  if ((rc & 0xff) == SQLITE_NOTADB) return InvalidArgument(not_atp + " (it is not an SQLite file)");
  ATP_SQLITE_CHECK(db.get(), rc);
  if (probe.Int64(2) == 0) return InvalidArgument(not_atp + " (it is empty)");
  if (probe.Int64(0) != kStoreApplicationId || probe.Int64(1) == 0) {
    return InvalidArgument(not_atp + " (it is an SQLite database of another program)");
  }
  probe.Reset();

  Statement version;
  ATP_SQLITE_CHECK(db.get(), version.Prepare(db.get(), "SELECT value FROM meta WHERE key = 'schema_version'"));
  rc = version.Step();
  ATP_SQLITE_CHECK(db.get(), rc);
  const std::string stored = rc == SQLITE_ROW ? version.Text(0) : "none";
  int schema_version = 0;
  for (int candidate = 1; candidate <= kStoreSchemaVersion; ++candidate) {
    if (stored == std::to_string(candidate)) schema_version = candidate;
  }
  if (schema_version == 0) {
    return FailedPrecondition(path + " has schema version " + stored + ", but this atp reads versions 1 to " +
                              std::to_string(kStoreSchemaVersion) +
                              ": use the atp build that wrote it, or a newer one");
  }
  return std::unique_ptr<StoreReader>(new StoreReader(db.release(), schema_version));
}

Result<Json> StoreReader::Sweeps() {
  Statement select;
  ATP_SQLITE_CHECK(db_, select.Prepare(db_, std::string(kSweepColumns) + "ORDER BY s.submitted_at DESC, s.id DESC"));
  Json sweeps = Json::array();
  int rc;
  while ((rc = select.Step()) == SQLITE_ROW) sweeps.push_back(SweepJson(select));
  ATP_SQLITE_CHECK(db_, rc);
  return Json{{"sweeps", std::move(sweeps)}};
}

Result<Json> StoreReader::Summary(std::optional<int64_t> sweep_id) {
  // Every query below reads one snapshot, so the counts, failures and running jobs agree
  // even while the coordinator keeps writing.
  ATP_SQLITE_CHECK(db_, sqlite3_exec(db_, "BEGIN", nullptr, nullptr, nullptr));
  struct EndRead {
    sqlite3* db;
    ~EndRead() { sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr); }
  } end_read{db_};

  ATP_ASSIGN_OR_RETURN(int64_t id, ResolveSweep(db_, sweep_id));
  const double now = WallTimeSeconds();
  Json summary{{"now", now}};
  int rc;

  Statement sweep;
  ATP_SQLITE_CHECK(db_, sweep.Prepare(db_, std::string(kSweepColumns) + "WHERE s.id = ?1"));
  ATP_SQLITE_CHECK(db_, sweep.Bind(1, id).Step());
  summary["sweep"] = SweepJson(sweep);

  // One pass over the sweep's jobs gives the per-stage table, the totals and the work left
  // for the estimate below; groups are few (stage x method x dataset x state).
  Statement groups;
  ATP_SQLITE_CHECK(db_, groups.Prepare(db_,
                                       "SELECT j.stage, j.method, j.dataset, j.state, count(*), sum(j.ranks), "
                                       "       min(sj.position) "
                                       "FROM sweep_jobs sj JOIN jobs j ON j.id = sj.job_id "
                                       "WHERE sj.sweep_id = ?1 GROUP BY j.stage, j.method, j.dataset, j.state"));
  groups.Bind(1, id);
  struct StageCounts {
    int64_t first_position = 0;
    std::map<std::string, int64_t> by_state;
  };
  std::map<std::string, StageCounts> by_stage;
  // Work left: (stage|method|dataset) -> jobs and rank count of pending and running jobs.
  std::map<std::string, std::pair<int64_t, int64_t>> remaining_by_kind;
  while ((rc = groups.Step()) == SQLITE_ROW) {
    const std::string stage = groups.Text(0);
    const std::string state = groups.Text(3);
    auto [it, inserted] = by_stage.try_emplace(stage);
    if (inserted || groups.Int64(6) < it->second.first_position) it->second.first_position = groups.Int64(6);
    it->second.by_state[state] += groups.Int64(4);
    if (state == JobStateName(JobState::kPending) || state == JobStateName(JobState::kRunning)) {
      auto& remaining = remaining_by_kind[stage + "|" + groups.Text(1) + "|" + groups.Text(2)];
      remaining.first += groups.Int64(4);
      remaining.second += groups.Int64(5);
    }
  }
  ATP_SQLITE_CHECK(db_, rc);
  std::vector<std::pair<int64_t, std::string>> stage_order;
  for (const auto& [stage, stage_counts] : by_stage) stage_order.emplace_back(stage_counts.first_position, stage);
  std::sort(stage_order.begin(), stage_order.end());
  static const char* kStates[] = {"pending", "running", "done", "failed", "blocked"};
  Json counts{{"total", 0}};
  for (const char* state : kStates) counts[state] = 0;
  Json stage_rows = Json::array();
  for (const auto& [position, stage] : stage_order) {
    Json row{{"stage", stage}};
    int64_t total = 0;
    for (const char* state : kStates) {
      auto found = by_stage[stage].by_state.find(state);
      const int64_t n = found != by_stage[stage].by_state.end() ? found->second : 0;
      row[state] = n;
      counts[state] = counts[state].get<int64_t>() + n;
      total += n;
    }
    row["total"] = total;
    counts["total"] = counts["total"].get<int64_t>() + total;
    stage_rows.push_back(std::move(row));
  }
  summary["counts"] = std::move(counts);
  summary["stages"] = std::move(stage_rows);

  Statement failures;
  ATP_SQLITE_CHECK(db_, failures.Prepare(db_,
                                         "SELECT class, attempts, jobs, last_at, last_error FROM v_failures "
                                         "WHERE sweep_id = ?1 ORDER BY attempts DESC, class"));
  failures.Bind(1, id);
  Json failure_rows = Json::array();
  while ((rc = failures.Step()) == SQLITE_ROW) {
    failure_rows.push_back(Json{{"class", failures.Text(0)},
                                {"count", failures.Int64(1)},
                                {"jobs", failures.Int64(2)},
                                {"last_at", NullableReal(failures, 3)},
                                {"last_error", failures.Text(4)}});
  }
  ATP_SQLITE_CHECK(db_, rc);
  summary["failures"] = std::move(failure_rows);

  Statement running;
  ATP_SQLITE_CHECK(db_, running.Prepare(db_,
                                        "SELECT j.job_key, j.stage, j.method, j.dataset, j.seed, a.host, a.ranks, "
                                        "       a.number, a.progress_step, a.progress_total, a.progress_at, "
                                        "       a.started_at, a.epoch "
                                        // CROSS JOIN keeps this order: the few running attempts
                                        // first (partial index), not every job of the sweep.
                                        "FROM attempts a "
                                        "CROSS JOIN sweep_jobs sj ON sj.job_id = a.job_id AND sj.sweep_id = ?1 "
                                        "CROSS JOIN jobs j ON j.id = a.job_id "
                                        "WHERE a.state = 'running' ORDER BY a.started_at, a.id"));
  running.Bind(1, id);
  Json running_rows = Json::array();
  while ((rc = running.Step()) == SQLITE_ROW) {
    running_rows.push_back(Json{{"key", running.Text(0)},
                                {"stage", running.Text(1)},
                                {"method", running.Text(2)},
                                {"dataset", running.Text(3)},
                                {"seed", NullableInt(running, 4)},
                                {"host", running.Text(5)},
                                {"ranks", running.JsonValue(6, Json::array())},
                                {"attempt", running.Int64(7)},
                                {"step", NullableInt(running, 8)},
                                {"total", NullableInt(running, 9)},
                                {"progress_at", NullableReal(running, 10)},
                                {"started_at", running.Double(11)},
                                {"epoch", running.Int64(12)}});
  }
  ATP_SQLITE_CHECK(db_, rc);
  summary["running"] = std::move(running_rows);

  Statement run;
  ATP_SQLITE_CHECK(db_, run.Prepare(db_,
                                    std::string("SELECT id, started_at, heartbeat_at, ended_at, status, hosts_json, "
                                                "       world_size, hostname, pid, atp_version, git_commit, ") +
                                        // runs.compute_json arrived with schema version 2.
                                        (schema_version_ >= 2 ? "compute_json " : "NULL ") +
                                        "FROM runs ORDER BY id DESC LIMIT 1"));
  rc = run.Step();
  ATP_SQLITE_CHECK(db_, rc);
  int64_t world_size = 1;
  if (rc == SQLITE_ROW) {
    world_size = std::max<int64_t>(1, run.Int64(6));
    summary["run"] = Json{{"epoch", run.Int64(0)},
                          {"started_at", run.Double(1)},
                          {"heartbeat_at", run.Double(2)},
                          {"ended_at", NullableReal(run, 3)},
                          {"status", run.Text(4)},
                          {"hosts", run.JsonValue(5, Json::array())},
                          {"world_size", run.Int64(6)},
                          {"hostname", run.Text(7)},
                          {"pid", run.Int64(8)},
                          {"atp_version", run.Text(9)},
                          {"git_commit", run.Text(10)},
                          {"compute", run.JsonValue(11, Json::object())},
                          {"heartbeat_age_s", run.IsNull(3) ? Json(now - run.Double(2)) : Json()}};
  } else {
    summary["run"] = nullptr;
  }

  // A rough estimate: the rank-seconds left (mean duration of finished jobs of the same
  // stage, method and dataset, in any sweep; extrapolated to kinds without one) spread over
  // the latest run's ranks. Null until some remaining kind of job has finished once.
  Statement means;
  ATP_SQLITE_CHECK(db_, means.Prepare(db_,
                                      "SELECT stage, method, dataset, avg(duration_s) FROM jobs "
                                      "WHERE state = 'done' AND duration_s IS NOT NULL "
                                      "GROUP BY stage, method, dataset"));
  int64_t remaining_jobs = 0;
  int64_t estimated_jobs = 0;
  double estimated_rank_seconds = 0;
  for (const auto& [kind, remaining] : remaining_by_kind) remaining_jobs += remaining.first;
  while ((rc = means.Step()) == SQLITE_ROW) {
    auto it = remaining_by_kind.find(means.Text(0) + "|" + means.Text(1) + "|" + means.Text(2));
    if (it == remaining_by_kind.end()) continue;
    estimated_jobs += it->second.first;
    estimated_rank_seconds += means.Double(3) * static_cast<double>(it->second.second);
  }
  ATP_SQLITE_CHECK(db_, rc);
  if (remaining_jobs == 0) {
    summary["eta_s"] = 0.0;
  } else if (estimated_jobs == 0) {
    summary["eta_s"] = nullptr;
  } else {
    const double rank_seconds =
        estimated_rank_seconds * static_cast<double>(remaining_jobs) / static_cast<double>(estimated_jobs);
    summary["eta_s"] = rank_seconds / static_cast<double>(world_size);
  }
  return summary;
}

Result<Json> StoreReader::Jobs(const JobQuery& query) {
  ATP_RETURN_IF_ERROR(CheckPage(query.limit, query.offset));
  if (!query.state.empty() && !ParseJobState(query.state)) {
    return InvalidArgument("unknown job state '" + query.state +
                           "'; expected one of pending, running, done, failed, blocked");
  }
  ATP_ASSIGN_OR_RETURN(int64_t sweep_id, ResolveSweep(db_, query.sweep_id));
  const int64_t limit = std::min(query.limit, kMaxPageRows);
  constexpr const char* kFilter =
      "FROM sweep_jobs sj JOIN jobs j ON j.id = sj.job_id "
      "WHERE sj.sweep_id = ?1 AND (?2 = '' OR j.state = ?2) AND (?3 = '' OR j.stage = ?3) ";

  Statement count;
  ATP_SQLITE_CHECK(db_, count.Prepare(db_, std::string("SELECT count(*) ") + kFilter));
  ATP_SQLITE_CHECK(db_, count.Bind(1, sweep_id).Bind(2, query.state).Bind(3, query.stage).Step());
  const int64_t total = count.Int64(0);

  Statement select;
  ATP_SQLITE_CHECK(db_, select.Prepare(db_,
                                       std::string("SELECT j.job_key, j.stage, j.method, j.dataset, j.seed, j.state, "
                                                   "       j.attempts, j.lost_attempts, j.failure_class, j.error, "
                                                   "       j.duration_s, j.host, j.ranks, j.ranks_used, "
                                                   "       json_extract(j.spec_json, '$.params'), j.started_at, "
                                                   "       j.ended_at ") +
                                           kFilter + "ORDER BY sj.position LIMIT ?4 OFFSET ?5"));
  select.Bind(1, sweep_id).Bind(2, query.state).Bind(3, query.stage).Bind(4, limit).Bind(5, query.offset);
  Json jobs = Json::array();
  int rc;
  while ((rc = select.Step()) == SQLITE_ROW) {
    jobs.push_back(Json{{"key", select.Text(0)},
                        {"stage", select.Text(1)},
                        {"method", select.Text(2)},
                        {"dataset", select.Text(3)},
                        {"seed", NullableInt(select, 4)},
                        {"state", select.Text(5)},
                        {"attempts", select.Int64(6)},
                        {"lost_attempts", select.Int64(7)},
                        {"failure_class", NullableText(select, 8)},
                        {"error", NullableText(select, 9)},
                        {"duration_s", NullableReal(select, 10)},
                        {"host", NullableText(select, 11)},
                        {"ranks", select.Int64(12)},
                        {"ranks_used", select.JsonValue(13)},
                        {"params", select.JsonValue(14, Json::object())},
                        {"started_at", NullableReal(select, 15)},
                        {"ended_at", NullableReal(select, 16)}});
  }
  ATP_SQLITE_CHECK(db_, rc);
  return Json{{"sweep_id", sweep_id},
              {"jobs", std::move(jobs)},
              {"total", total},
              {"limit", limit},
              {"offset", query.offset}};
}

Result<Json> StoreReader::Metrics(std::optional<int64_t> sweep_id, int64_t limit, int64_t offset) {
  ATP_RETURN_IF_ERROR(CheckPage(limit, offset));
  ATP_ASSIGN_OR_RETURN(int64_t id, ResolveSweep(db_, sweep_id));
  limit = std::min(limit, kMaxPageRows);

  Statement count;
  ATP_SQLITE_CHECK(db_, count.Prepare(db_, "SELECT count(*) FROM v_results WHERE sweep_id = ?1"));
  ATP_SQLITE_CHECK(db_, count.Bind(1, id).Step());
  const int64_t total = count.Int64(0);

  Statement select;
  ATP_SQLITE_CHECK(db_, select.Prepare(db_,
                                       "SELECT job_key, stage, method, dataset, seed, metric, value, params "
                                       "FROM v_results WHERE sweep_id = ?1 ORDER BY job_id, metric "
                                       "LIMIT ?2 OFFSET ?3"));
  select.Bind(1, id).Bind(2, limit).Bind(3, offset);
  Json metrics = Json::array();
  int rc;
  while ((rc = select.Step()) == SQLITE_ROW) {
    metrics.push_back(Json{{"key", select.Text(0)},
                           {"stage", select.Text(1)},
                           {"method", select.Text(2)},
                           {"dataset", select.Text(3)},
                           {"seed", NullableInt(select, 4)},
                           {"name", select.Text(5)},
                           {"value", NullableReal(select, 6)},
                           {"params", select.JsonValue(7, Json::object())}});
  }
  ATP_SQLITE_CHECK(db_, rc);
  return Json{{"sweep_id", id}, {"metrics", std::move(metrics)}, {"total", total}, {"limit", limit},
              {"offset", offset}};
}

std::string StoreReader::FormatSummary(const Json& summary) {
  std::string out;
  const Json sweep = summary.value("sweep", Json::object());
  out += "Sweep " + std::to_string(static_cast<long long>(Number(sweep, "id"))) + " '" + Text(sweep, "name") + "'";
  if (!Text(sweep, "path").empty()) out += " (" + Text(sweep, "path") + ")";
  out += ": " + std::to_string(static_cast<long long>(Number(sweep, "jobs"))) + " jobs, submitted " +
         FormatTime(Number(sweep, "submitted_at")) + "\n";
  AppendRunLine(summary.value("run", Json()), &out);
  AppendComputeLine(summary.value("run", Json()), &out);
  out += "\n";
  AppendStageTable(summary, &out);

  const Json counts = summary.value("counts", Json::object());
  if (HasNumber(summary, "eta_s") && Number(counts, "pending") + Number(counts, "running") > 0) {
    out += "Estimated time left: ~" + FormatDuration(Number(summary, "eta_s")) +
           " (from the mean duration of finished jobs)\n";
  }

  const Json failures = summary.value("failures", Json::array());
  if (!failures.empty()) {
    out += "\nFailures by class (attempts, jobs, last message):\n";
    for (const Json& failure : failures) {
      char head[96];
      std::snprintf(head, sizeof(head), "  %-11s %5lld attempts %5lld jobs  ", Text(failure, "class").c_str(),
                    static_cast<long long>(Number(failure, "count")), static_cast<long long>(Number(failure, "jobs")));
      out += head + OneLine(Text(failure, "last_error"), 100) + "\n";
    }
  }

  const Json running = summary.value("running", Json::array());
  if (!running.empty()) {
    out += "\nRunning (" + std::to_string(running.size()) + "):\n";
    for (size_t i = 0; i < running.size() && i < kMaxRunningLines; ++i) {
      const Json& job = running[i];
      std::string line = "  " + Text(job, "key").substr(0, 12) + "  " + Text(job, "stage") + "  " +
                         Text(job, "method");
      if (!Text(job, "dataset").empty()) line += "  " + Text(job, "dataset");
      if (HasNumber(job, "seed")) line += "  seed " + std::to_string(static_cast<long long>(Number(job, "seed")));
      line += "  on " + Text(job, "host", "?") + " ranks " + RanksText(job.value("ranks", Json::array()));
      if (HasNumber(job, "step")) {
        line += "  step " + std::to_string(static_cast<long long>(Number(job, "step")));
        const double total = Number(job, "total");
        if (total > 0) {
          char percent[32];
          std::snprintf(percent, sizeof(percent), "/%lld (%.0f%%)", static_cast<long long>(total),
                        100.0 * Number(job, "step") / total);
          line += percent;
        }
      } else {
        line += "  starting";
      }
      if (Number(job, "attempt", 1) > 1) {
        line += "  attempt " + std::to_string(static_cast<long long>(Number(job, "attempt")));
      }
      out += line + "\n";
    }
    if (running.size() > kMaxRunningLines) {
      out += "  ... and " + std::to_string(running.size() - kMaxRunningLines) + " more\n";
    }
  }
  return out;
}

}  // namespace atp
