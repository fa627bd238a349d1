// ResultsQuery: `atp query` over the results database. Selects jobs by sweep and key=value
// filters (job columns, state, or any job parameter), groups them (by default: every
// parameter except the seed) and aggregates each metric over the group's done jobs (mean,
// sample standard deviation, count, seeds), keeping running, pending, failed and blocked jobs
// visible as state counts. Reads through a caller's read-only connection; not thread-safe.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "coordinator/store/sqlite_util.h"

namespace atp {

// One `--where key=value`. Keys are the job columns stage, method, dataset, seed, state, or a
// parameter name (letters, digits, '_'; "params.NAME" is the same). The value matches a
// parameter stored as a number, boolean (true/false) or string.
struct ResultFilter {
  std::string key;
  std::string value;
};

// Parses "key=value"; InvalidArgument (with the expected form) for anything else.
Result<ResultFilter> ParseResultFilter(const std::string& text);

// The sweep a selection reads: nullopt stays nullopt (every sweep); kLatestSweepId (0, what
// `--sweep latest` gives) becomes the newest sweep's id; any other id must exist. NotFound
// names the id, or says that the database holds no sweep.
inline constexpr int64_t kLatestSweepId = 0;
Result<std::optional<int64_t>> ResolveSweepSelection(sqlite3* db, std::optional<int64_t> sweep_id);

// Prepares `select_sql`, a SELECT over the jobs table aliased `j` that ends inside its WHERE
// clause, with " AND <condition>" appended for the sweep (when `sweep_id` is set) and for each
// filter, and binds their values. Used by the query and by the paper tables alike. Filter keys
// must have passed CheckResultKey: they are written into the SQL text.
Status PrepareJobSelection(sqlite3* db, std::string select_sql, std::optional<int64_t> sweep_id,
                           const std::vector<ResultFilter>& filters, Statement* stmt);

struct QueryOptions {
  std::optional<int64_t> sweep_id;       // default: every job in the database
  std::vector<ResultFilter> filters;
  std::vector<std::string> group_by;     // empty: stage, method and all parameters but the seed
  std::string metric;                    // "" = every metric
};

struct QueryRow {
  std::vector<std::string> group;        // values of QueryResult::group_columns ("" when absent)
  std::string metric;                    // "" when no done job of the group has a metric
  std::optional<double> mean, std;       // std: sample standard deviation, absent below 2 values
  int64_t n = 0;                         // done jobs with a value for the metric
  std::vector<int64_t> seeds;            // their seeds, ascending
  std::map<std::string, int64_t> states; // every job of the group by state ("done", "failed", ...)
};

struct QueryResult {
  std::vector<std::string> group_columns;
  std::vector<QueryRow> rows;            // ordered by group values, then metric
  Json ToJson() const;
};

// The sweep must exist (NotFound otherwise); keys are checked as ParseResultFilter does.
Result<QueryResult> RunResultsQuery(sqlite3* db, const QueryOptions& options);

// "table" (aligned text), "csv" or "json"; InvalidArgument for any other format.
Result<std::string> FormatQueryResult(const QueryResult& result, const std::string& format);

// Checks that a key is a job column or a parameter name; InvalidArgument otherwise.
Status CheckResultKey(const std::string& key);

}  // namespace atp
