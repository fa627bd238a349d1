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

  // {"sweeps":[{id,name,path,created_at,jobs}], ...}
  Result<Json> Sweeps();
  // Summary of one sweep (default latest): {"sweep":{id,name,...}, "counts":{"pending":n,...},
  //  "stages":[{"stage":..,"pending":..,"running":..,"done":..,"failed":..,"blocked":..}],
  //  "failures":[{"class":..,"count":..}], "running":[{key,stage,method,host,ranks,step,total,started_at}],
  //  "run":{epoch, started_at, heartbeat_at, ended_at, status, hosts...}, "eta_s": number|null}
  Result<Json> Summary(std::optional<int64_t> sweep_id);
  // {"jobs":[{key,stage,method,dataset,seed,state,attempts,failure_class,error,duration_s,host,ranks}], "total": n}
  Result<Json> Jobs(const JobQuery& query);
  // {"metrics":[{key,stage,method,dataset,seed,name,value}]} for done jobs of the sweep.
  Result<Json> Metrics(std::optional<int64_t> sweep_id, int64_t limit, int64_t offset);

  // The text `atp status` prints for Summary(): per-stage counts, failure classes, running jobs.
  static std::string FormatSummary(const Json& summary);

  sqlite3* handle() { return db_; }

 private:
  explicit StoreReader(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

}  // namespace atp
