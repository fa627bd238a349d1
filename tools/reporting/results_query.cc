#include "tools/reporting/results_query.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>
#include <unordered_map>

#include "coordinator/store/sqlite_util.h"

namespace atp {
namespace {

const char* const kJobColumns[] = {"stage", "method", "dataset", "seed", "state"};

bool IsJobColumn(const std::string& key) {
  for (const char* c : kJobColumns)
    if (key == c) return true;
  return false;
}

std::string StripParamsPrefix(const std::string& key) {
  return key.rfind("params.", 0) == 0 ? key.substr(7) : key;
}

// The SQL expression of a key's value as text: the column, or the parameter with booleans
// spelled true/false (json_extract alone would give 1/0) and lists as JSON text.
std::string KeyExpression(const std::string& raw_key) {
  if (IsJobColumn(raw_key)) return "j." + raw_key;
  const std::string path = "'$.params." + StripParamsPrefix(raw_key) + "'";
  return "(CASE json_type(j.spec_json, " + path + ") WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE " +
         "json_extract(j.spec_json, " + path + ") END)";
}

std::string FormatNumber(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string StatesText(const std::map<std::string, int64_t>& states) {
  std::string out;
  for (const char* s : {"done", "running", "pending", "failed", "blocked"}) {
    auto it = states.find(s);
    if (it == states.end()) continue;
    if (!out.empty()) out += ", ";
    out += std::to_string(it->second) + " " + s;
  }
  return out;
}

// "1-9,11,12": runs of consecutive seeds shortened, so 60 seeds stay readable and the
// missing ones stand out.
std::string SeedsText(const std::vector<int64_t>& seeds) {
  std::string out;
  for (size_t i = 0; i < seeds.size();) {
    size_t j = i;
    while (j + 1 < seeds.size() && seeds[j + 1] == seeds[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(seeds[i]);
    if (j >= i + 2) out += "-" + std::to_string(seeds[j]);
    else if (j == i + 1) out += "," + std::to_string(seeds[j]);
    i = j + 1;
  }
  return out;
}

// Group values compare as numbers when both are numbers, so n_ctx 2 sorts before 10.
bool ValueLess(const std::string& a, const std::string& b) {
  char* end_a = nullptr;
  char* end_b = nullptr;
  const double x = std::strtod(a.c_str(), &end_a), y = std::strtod(b.c_str(), &end_b);
  if (!a.empty() && !b.empty() && *end_a == '\0' && *end_b == '\0' && x != y) return x < y;
  return a < b;
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// A parameter value as people write it: strings bare, everything else as JSON.
std::string DisplayValue(const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

}  // namespace

Status CheckResultKey(const std::string& raw_key) {
  const std::string key = StripParamsPrefix(raw_key);
  bool ok = !key.empty();
  for (char c : key) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  if (!ok)
    return InvalidArgument("'" + raw_key +
                           "' is not a result key: use a job column (stage, method, dataset, seed, state) or a "
                           "parameter name of letters, digits and '_' (e.g. n_ctx)");
  return Status();
}

Result<ResultFilter> ParseResultFilter(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    return InvalidArgument("--where '" + text + "' is not KEY=VALUE (e.g. --where dataset=eurosat --where n_ctx=4)");
  ResultFilter f{text.substr(0, eq), text.substr(eq + 1)};
  ATP_RETURN_IF_ERROR(CheckResultKey(f.key));
  if (f.key == "state") {
    static const std::set<std::string> kStates = {"pending", "running", "done", "failed", "blocked"};
    if (!kStates.count(f.value))
      return InvalidArgument("--where state=" + f.value + ": the states are pending, running, done, failed, blocked");
  }
  return f;
}

namespace {

// Appends " AND <condition>" for each filter to `sql` and the values to bind to `binds`.
void AppendFilterSql(const std::vector<ResultFilter>& filters, std::string* sql, std::vector<std::string>* binds) {
  for (const ResultFilter& f : filters) {
    if (IsJobColumn(f.key)) {
      *sql += " AND j." + f.key + " = ?";
      binds->push_back(f.value);
    } else {
      // A parameter stored as a number or boolean matches the typed value; one stored as a
      // string matches the text ("16" and 16 are both found by --where shots=16).
      const std::string path = "'$.params." + StripParamsPrefix(f.key) + "'";
      *sql += " AND (json_extract(j.spec_json, " + path + ") = ? OR json_extract(j.spec_json, " + path +
              ") = CAST(? AS TEXT))";
      binds->push_back(f.value);
      binds->push_back(f.value);
    }
  }
}

// Binds `binds` from parameter `first` on, each as an integer, real or boolean (1/0) when its
// text is one, else as text.
void BindFilterValues(sqlite3_stmt* stmt, int first, const std::vector<std::string>& binds) {
  int index = first;
  for (const std::string& v : binds) {
    char* end = nullptr;
    const long long as_int = std::strtoll(v.c_str(), &end, 10);
    if (!v.empty() && *end == '\0') {
      sqlite3_bind_int64(stmt, index++, as_int);
      continue;
    }
    const double as_double = std::strtod(v.c_str(), &end);
    if (!v.empty() && *end == '\0') {
      sqlite3_bind_double(stmt, index++, as_double);
    } else if (v == "true" || v == "false") {
      sqlite3_bind_int64(stmt, index++, v == "true" ? 1 : 0);
    } else {
      sqlite3_bind_text(stmt, index++, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    }
  }
}

}  // namespace

Result<std::optional<int64_t>> ResolveSweepSelection(sqlite3* db, std::optional<int64_t> sweep_id) {
  if (!sweep_id) return sweep_id;
  Statement find;
  if (*sweep_id == kLatestSweepId) {
    ATP_SQLITE_CHECK(db, find.Prepare(db, "SELECT max(id) FROM sweeps"));
  } else {
    ATP_SQLITE_CHECK(db, find.Prepare(db, "SELECT id FROM sweeps WHERE id = ?"));
    find.Bind(1, *sweep_id);
  }
  const int rc = find.Step();
  ATP_SQLITE_CHECK(db, rc);
  if (rc != SQLITE_ROW || find.IsNull(0)) {
    return NotFound(*sweep_id == kLatestSweepId ? std::string("no sweep in the database")
                                              : "no sweep " + std::to_string(*sweep_id) + " in the database");
  }
  return std::optional<int64_t>(find.Int64(0));
}

Status PrepareJobSelection(sqlite3* db, std::string select_sql, std::optional<int64_t> sweep_id,
                           const std::vector<ResultFilter>& filters, Statement* stmt) {
  if (sweep_id) select_sql += " AND j.id IN (SELECT job_id FROM sweep_jobs WHERE sweep_id = ?)";
  std::vector<std::string> binds;
  AppendFilterSql(filters, &select_sql, &binds);
  ATP_SQLITE_CHECK(db, stmt->Prepare(db, select_sql));
  int next = 1;
  if (sweep_id) stmt->Bind(next++, *sweep_id);
  BindFilterValues(stmt->get(), next, binds);
  return Status::Ok();
}

// A key that is neither a job column nor a parameter of any recorded job is a typo: without
// this check, "--where nokey=1" would print nothing and exit 0.
Status CheckKeyIsKnown(sqlite3* db, const std::string& raw_key) {
  if (IsJobColumn(raw_key)) return Status::Ok();
  const std::string key = StripParamsPrefix(raw_key);
  Statement probe;
  ATP_SQLITE_CHECK(db, probe.Prepare(db, "SELECT 1 FROM jobs WHERE json_type(spec_json, '$.params." + key +
                                             "') IS NOT NULL LIMIT 1"));
  int rc = probe.Step();
  ATP_SQLITE_CHECK(db, rc);
  if (rc == SQLITE_ROW) return Status::Ok();
  Statement keys;
  ATP_SQLITE_CHECK(db, keys.Prepare(db, "SELECT DISTINCT p.key FROM jobs j, json_each(j.spec_json, '$.params') p "
                                        "ORDER BY p.key LIMIT 60"));
  std::string known;
  while ((rc = keys.Step()) == SQLITE_ROW) known += (known.empty() ? "" : ", ") + keys.Text(0);
  ATP_SQLITE_CHECK(db, rc);
  return InvalidArgument("no job in the database has a key '" + raw_key +
                         "'; keys are stage, method, dataset, seed, state" +
                         (known.empty() ? std::string() : " and the parameters " + known));
}

Result<QueryResult> RunResultsQuery(sqlite3* db, const QueryOptions& options) {
  for (const auto& f : options.filters) ATP_RETURN_IF_ERROR(CheckResultKey(f.key));
  for (const auto& k : options.group_by) ATP_RETURN_IF_ERROR(CheckResultKey(k));
  for (const auto& f : options.filters) ATP_RETURN_IF_ERROR(CheckKeyIsKnown(db, f.key));
  for (const auto& k : options.group_by) ATP_RETURN_IF_ERROR(CheckKeyIsKnown(db, k));
  ATP_ASSIGN_OR_RETURN(const std::optional<int64_t> sweep_id, ResolveSweepSelection(db, options.sweep_id));

  // Without --group-by, a group is one configuration: every parameter but the seed.
  const bool default_grouping = options.group_by.empty();
  std::vector<std::string> exprs;
  if (default_grouping) {
    exprs = {"j.stage", "j.method", "json_remove(json_extract(j.spec_json, '$.params'), '$.seed')"};
  } else {
    for (const auto& k : options.group_by) exprs.push_back(KeyExpression(k));
  }
  std::string sql = "SELECT j.id, j.seed, j.state";
  for (const auto& e : exprs) sql += ", " + e;
  sql += " FROM jobs j WHERE 1";
  Statement jobs;
  ATP_RETURN_IF_ERROR(PrepareJobSelection(db, std::move(sql), sweep_id, options.filters, &jobs));

  struct Group {
    std::vector<std::string> key;
    std::map<std::string, int64_t> states;
    std::map<std::string, std::vector<std::pair<int64_t, double>>> values;  // metric -> (seed, value)
  };
  std::map<std::vector<std::string>, size_t> group_index;
  std::vector<Group> groups;
  struct JobInfo {
    size_t group;
    int64_t seed;
    bool done;
  };
  std::unordered_map<int64_t, JobInfo> job_info;
  int rc;
  while ((rc = jobs.Step()) == SQLITE_ROW) {
    std::vector<std::string> key;
    for (size_t i = 0; i < exprs.size(); ++i) key.push_back(jobs.Text(3 + static_cast<int>(i)));
    auto [it, inserted] = group_index.emplace(key, groups.size());
    if (inserted) groups.push_back(Group{key, {}, {}});
    const std::string state = jobs.Text(2);
    ++groups[it->second].states[state];
    job_info[jobs.Int64(0)] = {it->second, jobs.IsNull(1) ? -1 : jobs.Int64(1), state == "done"};
  }
  ATP_SQLITE_CHECK(db, rc);

  Statement metrics;
  std::string msql = "SELECT m.job_id, m.name, m.value FROM metrics m WHERE m.value IS NOT NULL";
  if (!options.metric.empty()) msql += " AND m.name = ?";
  ATP_SQLITE_CHECK(db, metrics.Prepare(db, msql));
  if (!options.metric.empty()) metrics.Bind(1, options.metric);
  while ((rc = metrics.Step()) == SQLITE_ROW) {
    auto it = job_info.find(metrics.Int64(0));
    if (it == job_info.end() || !it->second.done) continue;
    groups[it->second.group].values[metrics.Text(1)].emplace_back(it->second.seed, metrics.Double(2));
  }
  ATP_SQLITE_CHECK(db, rc);

  QueryResult result;
  // Display columns. Default grouping shows stage, method, dataset and the parameters whose
  // value differs between groups; a parameter shared by all groups says nothing.
  std::vector<std::string> param_columns;
  std::vector<Json> configs(groups.size());
  if (default_grouping) {
    std::map<std::string, std::set<std::string>> seen;
    for (size_t g = 0; g < groups.size(); ++g) {
      configs[g] = Json::parse(groups[g].key[2], nullptr, false);
      if (!configs[g].is_object()) configs[g] = Json::object();
      for (auto& [k, v] : configs[g].items()) seen[k].insert(v.dump());
    }
    for (size_t g = 0; g < groups.size(); ++g)  // a key absent from some groups also varies
      for (auto& [k, values] : seen)
        if (!configs[g].contains(k)) values.insert("<absent>");
    for (const auto& [k, values] : seen)
      if (k != "dataset" && values.size() > 1) param_columns.push_back(k);
    result.group_columns = {"stage", "method", "dataset"};
    result.group_columns.insert(result.group_columns.end(), param_columns.begin(), param_columns.end());
  } else {
    result.group_columns = options.group_by;
  }

  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<std::string> shown;
    if (default_grouping) {
      shown = {groups[g].key[0], groups[g].key[1]};
      const Json& c = configs[g];
      shown.push_back(c.contains("dataset") ? DisplayValue(c["dataset"]) : "");
      for (const auto& k : param_columns) shown.push_back(c.contains(k) ? DisplayValue(c[k]) : "");
    } else {
      shown = groups[g].key;
    }
    if (groups[g].values.empty()) {
      QueryRow row;
      row.group = shown;
      row.states = groups[g].states;
      result.rows.push_back(std::move(row));
      continue;
    }
    for (auto& [name, values] : groups[g].values) {
      QueryRow row;
      row.group = shown;
      row.metric = name;
      row.states = groups[g].states;
      row.n = static_cast<int64_t>(values.size());
      double sum = 0;
      for (const auto& [seed, v] : values) {
        sum += v;
        if (seed >= 0) row.seeds.push_back(seed);
      }
      std::sort(row.seeds.begin(), row.seeds.end());
      row.mean = sum / row.n;
      if (row.n > 1) {
        double ss = 0;
        for (const auto& [seed, v] : values) ss += (v - *row.mean) * (v - *row.mean);
        row.std = std::sqrt(ss / (row.n - 1));
      }
      result.rows.push_back(std::move(row));
    }
  }
  std::stable_sort(result.rows.begin(), result.rows.end(), [](const QueryRow& a, const QueryRow& b) {
    for (size_t i = 0; i < a.group.size(); ++i) {
      if (ValueLess(a.group[i], b.group[i])) return true;
      if (ValueLess(b.group[i], a.group[i])) return false;
    }
    return a.metric < b.metric;
  });
  return result;
}

Json QueryResult::ToJson() const {
  Json rows_json = Json::array();
  for (const QueryRow& r : rows) {
    Json group = Json::object();
    for (size_t i = 0; i < group_columns.size(); ++i) group[group_columns[i]] = r.group[i];
    rows_json.push_back({{"group", group},
                         {"metric", r.metric.empty() ? Json(nullptr) : Json(r.metric)},
                         {"mean", r.mean ? Json(*r.mean) : Json(nullptr)},
                         {"std", r.std ? Json(*r.std) : Json(nullptr)},
                         {"n", r.n},
                         {"seeds", r.seeds},
                         {"states", r.states}});
  }
  return {{"group_by", group_columns}, {"rows", rows_json}};
}

Result<std::string> FormatQueryResult(const QueryResult& result, const std::string& format) {
  if (format == "json") return result.ToJson().dump(2) + "\n";
  if (format != "table" && format != "csv")
    return InvalidArgument("unknown format '" + format + "' for atp query: use table, csv or json");
  std::vector<std::string> header = result.group_columns;
  for (const char* c : {"metric", "mean", "std", "n", "seeds", "jobs"}) header.push_back(c);
  std::vector<std::vector<std::string>> cells;
  const std::string missing = format == "csv" ? "" : "—";
  for (const QueryRow& r : result.rows) {
    std::vector<std::string> line = r.group;
    line.push_back(r.metric.empty() ? missing : r.metric);
    line.push_back(r.mean ? FormatNumber(*r.mean) : missing);
    line.push_back(r.std ? FormatNumber(*r.std) : missing);
    line.push_back(std::to_string(r.n));
    line.push_back(SeedsText(r.seeds));
    line.push_back(StatesText(r.states));
    cells.push_back(std::move(line));
  }
  std::ostringstream out;
  if (format == "csv") {
    for (size_t i = 0; i < header.size(); ++i) out << (i ? "," : "") << CsvField(header[i]);
    out << "\n";
    for (const auto& line : cells) {
      for (size_t i = 0; i < line.size(); ++i) out << (i ? "," : "") << CsvField(line[i]);
      out << "\n";
    }
    return out.str();
  }
  // Aligned text; widths count UTF-8 characters so "—" lines up.
  auto width = [](const std::string& s) {
    size_t w = 0;
    for (unsigned char c : s) w += (c & 0xC0) != 0x80;
    return w;
  };
  std::vector<size_t> widths(header.size());
  for (size_t i = 0; i < header.size(); ++i) widths[i] = width(header[i]);
  for (const auto& line : cells)
    for (size_t i = 0; i < line.size(); ++i) widths[i] = std::max(widths[i], width(line[i]));
  auto print = [&](const std::vector<std::string>& line) {
    std::string text;
    for (size_t i = 0; i < line.size(); ++i) {
      text += line[i];
      if (i + 1 < line.size()) text += std::string(widths[i] - width(line[i]) + 2, ' ');
    }
    out << text << "\n";
  };
  print(header);
  for (const auto& line : cells) print(line);
  if (cells.empty()) out << "(no jobs match)\n";
  return out.str();
}

}  // namespace atp
