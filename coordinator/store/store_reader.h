// StoreReader: a read-only view of the results database for `atp status`, the HTTP status
// server and the query tools. It opens its own read-only connection, so with WAL it never
// blocks the coordinator's writes and sees every committed transaction. Not thread-safe:
// use one StoreReader per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/json.h"
#include "common/status.h"

struct sqlite3;

namespace atp {

struct JobQuery {
  std::optional<int64_t> sweep_id;  // default: the latest sweep
  std::string state;                // "" = any
  std::string stage;                // "" = any
  int64_t limit = 100;
  int64_t offset = 0;
};

class StoreReader {
 public:
  ~StoreReader();
  StoreReader(const StoreReader&) = delete;
  StoreReader& operator=(const StoreReader&) = delete;

  // NotFound when the file does not exist; InvalidArgument when it is not an atp database.
  static Result<std::unique_ptr<StoreReader>> Open(const std::string& path);

  // Times are seconds since the Unix epoch. "The latest sweep" is the one submitted last
  // (a resubmission makes a sweep the latest again). Unknown sweep ids are NotFound.

  // {"sweeps":[{id,name,path,code_version,created_at,submitted_at,jobs}]}, latest first.
  Result<Json> Sweeps();
  // Summary of one sweep (default latest), read from one snapshot:
  //  {"sweep":{id,name,path,code_version,created_at,submitted_at,jobs}, "now": time,
  //   "counts":{"pending":n,"running":n,"done":n,"failed":n,"blocked":n,"total":n},
  //   "stages":[{"stage":..,"pending":..,"running":..,"done":..,"failed":..,"blocked":..,"total":..}] in sweep order,
  //   "failures":[{"class":..,"count":attempts,"jobs":n,"last_error":..,"last_at":..}] (failed and lost attempts),
  //   "running":[{key,stage,method,dataset,seed,host,ranks:[..],attempt,step,total,progress_at,started_at,epoch}],
  //   "run":{epoch,started_at,heartbeat_at,ended_at,status,hosts,world_size,hostname,pid,atp_version,
  //          git_commit,heartbeat_age_s} of the latest coordinator run, or null,
  //   "eta_s": rough seconds left, null while no remaining kind of job has ever finished}
  Result<Json> Summary(std::optional<int64_t> sweep_id);
  // {"sweep_id":..,"jobs":[{key,stage,method,dataset,seed,state,attempts,lost_attempts,failure_class,error,
  //   duration_s,host,ranks (needed),ranks_used ([..] or null),params,started_at,ended_at}],
  //  "total": n matching, "limit":.., "offset":..} in sweep order. An unknown state or a negative
  //  limit/offset is InvalidArgument; limit is capped at 10,000.
  Result<Json> Jobs(const JobQuery& query);
  // {"sweep_id":..,"metrics":[{key,stage,method,dataset,seed,name,value,params}],"total":n,"limit":..,
  //  "offset":..} for done jobs of the sweep (default latest); value is null for a NaN metric.
  Result<Json> Metrics(std::optional<int64_t> sweep_id, int64_t limit, int64_t offset);

  // The text `atp status` prints for Summary(): the sweep, the run's state and heartbeat age,
  // per-stage counts, the estimate, failure classes with the last message, running jobs.
  static std::string FormatSummary(const Json& summary);

  sqlite3* handle() { return db_; }

 private:
  StoreReader(sqlite3* db, int schema_version) : db_(db), schema_version_(schema_version) {}
  sqlite3* db_;
  // Readers accept every schema version up to kStoreSchemaVersion, so databases written by an
  // older atp keep reporting; columns added since read as null.
  int schema_version_;
};

}  // namespace atp
