#include "tools/reporting/paper_tables.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <set>
#include <sstream>
#include <unordered_map>

#include "common/paper_attributes.h"
#include "coordinator/store/sqlite_util.h"
#include "tools/reporting/paper_figures.h"
#include "tools/reporting/seed_statistics.h"

namespace atp {
namespace {

// The datasets of the base-to-novel and cross-dataset experiments, in the paper's order.
const std::vector<std::string> kBase2NovelDatasets = {
    "imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
    "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101"};
const std::vector<std::string> kCrossDatasetTargets = {
    "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
    "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101"};
const std::vector<std::string> kDomainTargets = {"imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"};
const char* const kSource = "imagenet";

// One job as the tables see it: the parameters of the conventions (docs/results.md) and the
// metrics they use.
struct JobRow {
  std::string method, state, dataset, protocol, source, class_position, attributes;  // attributes: "(a,b)"
  int64_t seed = -1;
  std::optional<bool> atprompt;
  std::optional<int64_t> n_ctx;
  bool searched = false;  // consumes the outputs of an attribute_search job
  Json outputs;           // attribute_search jobs only
  std::optional<double> base, novel, accuracy;
};

// "(shape,color)" from the JSON list ["shape","color"]; "" when not a list of strings.
std::string AttributeLabel(const std::string& json_text) {
  Json list = Json::parse(json_text, nullptr, false);
  if (!list.is_array()) return "";
  std::string out = "(";
  for (size_t i = 0; i < list.size(); ++i) {
    if (!list[i].is_string()) return "";
    out += (i ? "," : "") + list[i].get<std::string>();
  }
  return out + ")";
}

// `prefilter` (SQL over `j`) keeps out the jobs of other experiments before their parameters
// are extracted, which is most of the work on a large database.
Result<std::vector<JobRow>> LoadJobs(sqlite3* db, const TableOptions& options, const char* prefilter) {
  ATP_ASSIGN_OR_RETURN(const std::optional<int64_t> sweep_id, ResolveSweepSelection(db, options.sweep_id));
  for (const auto& f : options.filters) ATP_RETURN_IF_ERROR(CheckResultKey(f.key));
  // SQLite extracts the few parameters the tables need, so no job's JSON is parsed here.
  std::string sql =
      "SELECT j.id, j.method, j.state, j.dataset, j.seed,"
      " json_extract(j.spec_json, '$.params.atprompt'),"
      " json_extract(j.spec_json, '$.params.n_ctx'),"
      " json_extract(j.spec_json, '$.params.class_position'),"
      // [] (an +ATPrompt job's attributes are the upstream search's): labelled from the search.
      " NULLIF(json_extract(j.spec_json, '$.params.attributes'), '[]'),"
      " json_extract(j.spec_json, '$.params.protocol'), json_extract(j.spec_json, '$.params.source_dataset'),"
      " CASE WHEN j.method = 'attribute_search' THEN j.outputs_json END,"
      " EXISTS (SELECT 1 FROM job_deps d JOIN jobs u ON u.id = d.upstream_job_id"
      "         WHERE d.job_id = j.id AND u.method = 'attribute_search')"
      " FROM jobs j WHERE ";
  sql += prefilter;
  Statement stmt;
  ATP_RETURN_IF_ERROR(PrepareJobSelection(db, std::move(sql), sweep_id, options.filters, &stmt));

  std::vector<JobRow> jobs;
  std::unordered_map<int64_t, size_t> by_id;
  std::unordered_map<std::string, std::string> labels;  // attribute lists repeat: parse each once
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    JobRow job;
    job.method = stmt.Text(1);
    job.state = stmt.Text(2);
    job.dataset = stmt.Text(3);
    if (!stmt.IsNull(4)) job.seed = stmt.Int64(4);
    if (!stmt.IsNull(5)) {
      // A boolean parameter comes back as 1/0; "yes"/"true" strings are accepted too.
      if (sqlite3_column_type(stmt.get(), 5) == SQLITE_TEXT) {
        const std::string v = stmt.Text(5);
        job.atprompt = v == "true" || v == "yes" || v == "1";
      } else {
        job.atprompt = stmt.Int64(5) != 0;
      }
    }
    // Jobs of databases written before recipes were resolved at expansion hold 0 for "the
    // recipe's length", which they never recorded: such a job has no known length.
    if (!stmt.IsNull(6) && stmt.Int64(6) > 0) job.n_ctx = stmt.Int64(6);
    job.class_position = stmt.Text(7);
    if (!stmt.IsNull(8)) {
      const std::string text = stmt.Text(8);
      auto it = labels.find(text);
      if (it == labels.end()) it = labels.emplace(text, AttributeLabel(text)).first;
      job.attributes = it->second;
    }
    job.protocol = stmt.Text(9);
    job.source = stmt.Text(10);
    if (!stmt.IsNull(11)) job.outputs = stmt.JsonValue(11, Json::object());
    job.searched = stmt.Int64(12) != 0;
    by_id.emplace(stmt.Int64(0), jobs.size());
    jobs.push_back(std::move(job));
  }
  ATP_SQLITE_CHECK(db, rc);

  Statement metrics;
  ATP_SQLITE_CHECK(db, metrics.Prepare(db,
                                       "SELECT m.job_id, m.name, m.value FROM metrics m WHERE m.value IS NOT NULL"
                                       " AND m.name IN ('base_accuracy', 'new_accuracy', 'accuracy')"));
  while ((rc = metrics.Step()) == SQLITE_ROW) {
    auto it = by_id.find(metrics.Int64(0));
    if (it == by_id.end() || jobs[it->second].state != "done") continue;
    JobRow& job = jobs[it->second];
    const std::string name = metrics.Text(1);
    const double v = metrics.Double(2);
    if (name == "base_accuracy") job.base = v;
    else if (name == "new_accuracy") job.novel = v;
    else job.accuracy = v;
  }
  ATP_SQLITE_CHECK(db, rc);
  return jobs;
}

// Seeds averaged into one figure.
struct Mean {
  std::vector<double> values;
  int64_t n = 0;
  void Add(double v) { values.push_back(v), ++n; }
  std::optional<double> value() const { return SummarizeSeeds(values).mean; }
  std::optional<double> spread() const { return SummarizeSeeds(values).std; }
};

double HarmonicMean(double a, double b) { return a + b > 0 ? 2 * a * b / (a + b) : 0; }

// One seed's figures, for differences paired by seed.
struct SeedFigures {
  std::optional<double> base, novel;
};

// Jobs of one cell group: the mean of each metric and the jobs that are not done.
struct Group {
  Mean base, novel, accuracy;
  Mean hm;  // per seed: HM of that seed's base and novel (the spread of the HM cell)
  std::map<int64_t, SeedFigures> by_seed;
  std::map<std::string, int64_t> not_done;
  std::set<int64_t> seeds;
  bool repeated_seed = false;  // two done jobs with one seed: configurations are mixed
  void Add(const JobRow& job) {
    if (job.state != "done") {
      ++not_done[job.state];
      return;
    }
    repeated_seed = !seeds.insert(job.seed).second || repeated_seed;
    if (job.base) base.Add(*job.base);
    if (job.novel) novel.Add(*job.novel);
    if (job.accuracy) accuracy.Add(*job.accuracy);
    if (job.base && job.novel) hm.Add(HarmonicMean(*job.base, *job.novel));
    by_seed[job.seed] = SeedFigures{job.base, job.novel};
  }
};

std::string Key(std::initializer_list<std::string> parts) {
  std::string key;
  for (const auto& p : parts) key += p + '\x1f';
  return key;
}

// `with_spread`: the base-to-novel table shows the spread over seeds beside each mean.
TableCell MeanCell(const Mean& m, bool with_spread = false) {
  TableCell c;
  c.value = m.value();
  c.seeds = m.n;
  if (with_spread) c.spread = m.spread();
  return c;
}

// HM of two cells the paper's way: of the seed-averaged base and novel accuracies.
TableCell HmCell(const TableCell& base, const TableCell& novel) {
  TableCell c;
  if (base.value && novel.value) {
    c.value = HarmonicMean(*base.value, *novel.value);
    c.seeds = std::min(base.seeds, novel.seeds);
  }
  return c;
}

// The mean of cells, only when every one has a value: an average over fewer datasets than
// the paper's would not be comparable, so it stays missing.
TableCell AverageCell(const std::vector<TableCell>& cells) {
  TableCell c;
  if (cells.empty()) return c;
  double sum = 0;
  int64_t seeds = INT64_MAX;
  for (const auto& x : cells) {
    if (!x.value) return TableCell{};
    sum += *x.value;
    seeds = std::min(seeds, x.seeds);
  }
  c.value = sum / cells.size();
  c.seeds = seeds;
  return c;
}

// A cell that averages two results of one seed mixes configurations the table does not
// tell apart (e.g. two soft-token lengths in Table 1); say so rather than hide it.
template <typename Groups>
void NoteRepeatedSeeds(const Groups& groups, PaperTable* table) {
  for (const auto& [key, g] : groups) {
    if (!g.repeated_seed) continue;
    table->notes.push_back(
        "Warning: some cells average several results of the same seed (different configurations of one method); "
        "choose one with --sweep or --where (e.g. --where n_ctx=4).");
    return;
  }
}

void MergeNotDone(std::map<std::string, int64_t>* into, const std::map<std::string, int64_t>& from) {
  for (const auto& [state, n] : from) (*into)[state] += n;
}

bool IsBase2Novel(const JobRow& job) {
  if (job.method == "attribute_search") return false;
  return job.protocol == "base2novel" || (job.protocol.empty() && (job.base || job.novel));
}

// The methods to show: the trained methods of the catalog always (their rows say what is
// missing), zero-shot CLIP and any other method when the database has it.
std::vector<std::string> MethodOrder(const std::vector<JobRow>& jobs, const std::function<bool(const JobRow&)>& include,
                                     std::vector<std::string> always) {
  std::set<std::string> present;
  for (const auto& j : jobs)
    if (include(j)) present.insert(j.method);
  std::vector<std::string> order;
  for (const char* m : {"zsclip", "coop", "cocoop", "maple", "dept", "promptsrc", "promptkd"}) {
    const bool listed = std::find(always.begin(), always.end(), m) != always.end();
    if (listed || present.count(m)) order.push_back(m);
    present.erase(m);
  }
  order.insert(order.end(), present.begin(), present.end());
  return order;
}

std::string RowLabel(const std::string& method, bool atprompt) {
  return PaperMethodName(method) + (atprompt ? "+ATPrompt" : "");
}

std::optional<double> PaperBase2Novel(const std::string& method, bool atprompt, const std::string& dataset,
                                      const std::string& metric) {
  auto v = FindPaperFigure("base2novel", PaperMethodName(method), atprompt, dataset, metric);
  // Zero-shot CLIP's average is printed only in the summary table.
  if (!v) v = FindPaperFigure("readme_summary", PaperMethodName(method), atprompt, dataset, metric);
  return v;
}

// `only_found`: list just the datasets the jobs have (the user filtered on dataset), instead
// of the paper's 11 with "—" where nothing ran.
PaperTable Base2NovelTable(const std::vector<JobRow>& jobs, bool only_found) {
  PaperTable t;
  t.name = "base2novel";
  t.title = "Table 1: base-to-novel generalization (accuracy %, mean over seeds)";
  t.label_columns = {"dataset", "method"};
  t.value_columns = {"Base", "Novel", "HM"};
  t.notes = {"Base and Novel: mean over seeds of base_accuracy and new_accuracy; HM: harmonic mean of those means.",
             "± : sample standard deviation over the seeds (of each seed's HM for the HM column).",
             "Average: mean over the 11 datasets of each figure, HM = HM(average Base, average Novel); missing unless "
             "all 11 datasets have results."};
  std::unordered_map<std::string, Group> groups;
  std::vector<std::string> datasets = only_found ? std::vector<std::string>{} : kBase2NovelDatasets;
  for (const auto& j : jobs) {
    if (!IsBase2Novel(j)) continue;
    groups[Key({j.method, j.atprompt.value_or(false) ? "1" : "0", j.dataset})].Add(j);
    if (std::find(datasets.begin(), datasets.end(), j.dataset) == datasets.end()) datasets.push_back(j.dataset);
  }
  const auto methods = MethodOrder(jobs, IsBase2Novel, {"coop", "cocoop", "maple", "dept"});
  std::vector<TableRow> averages, per_dataset;
  for (const auto& method : methods) {
    // Zero-shot CLIP learns no prompt, so it has no +ATPrompt row.
    for (bool atprompt : method == "zsclip" ? std::vector<bool>{false} : std::vector<bool>{false, true}) {
      std::vector<TableCell> bases, novels;
      TableRow average{{"average", RowLabel(method, atprompt)}, {}, {}};
      for (const auto& dataset : datasets) {
        const auto it = groups.find(Key({method, atprompt ? "1" : "0", dataset}));
        const Group g = it == groups.end() ? Group{} : it->second;
        TableRow row{{dataset, RowLabel(method, atprompt)}, {MeanCell(g.base, true), MeanCell(g.novel, true)},
                     g.not_done};
        row.cells.push_back(HmCell(row.cells[0], row.cells[1]));
        if (row.cells[2].value) row.cells[2].spread = g.hm.spread();
        const char* metric_names[] = {"base", "novel", "hm"};
        for (int i = 0; i < 3; ++i) row.cells[i].paper = PaperBase2Novel(method, atprompt, dataset, metric_names[i]);
        if (std::find(kBase2NovelDatasets.begin(), kBase2NovelDatasets.end(), dataset) != kBase2NovelDatasets.end()) {
          bases.push_back(row.cells[0]);
          novels.push_back(row.cells[1]);
          MergeNotDone(&average.not_done, g.not_done);
        }
        per_dataset.push_back(std::move(row));
      }
      average.cells = {AverageCell(bases), AverageCell(novels)};
      average.cells.push_back(HmCell(average.cells[0], average.cells[1]));
      const char* metric_names[] = {"base", "novel", "hm"};
      for (int i = 0; i < 3; ++i) average.cells[i].paper = PaperBase2Novel(method, atprompt, "average", metric_names[i]);
      averages.push_back(std::move(average));
    }
  }
  NoteRepeatedSeeds(groups, &t);
  // The paper prints the average first, then each dataset; within a dataset, methods in order.
  // The average needs all 11 datasets, so a table filtered to some datasets leaves it out.
  if (!only_found) t.rows = std::move(averages);
  for (const auto& dataset : datasets)
    for (const auto& row : per_dataset)
      if (row.labels[0] == dataset) t.rows.push_back(row);
  return t;
}

// What ATPrompt changes, seed by seed: for each method and dataset with results both with and
// without ATPrompt, the difference (with minus without) of base, novel and HM over the seeds
// both have, their mean and its 95% interval. Pairing by seed removes what the seed does to
// both (the few-shot draw), so the interval is that of the effect.
PaperTable PairedTable(const std::vector<JobRow>& jobs) {
  PaperTable t;
  t.name = "atprompt-paired";
  t.title = "ATPrompt minus its baseline, paired by seed (accuracy points)";
  t.label_columns = {"dataset", "method"};
  t.value_columns = {"ΔBase", "ΔNovel", "ΔHM"};
  t.notes = {"Each cell: mean over the seeds that both rows have of (method+ATPrompt minus method) [95% confidence "
             "interval, Student's t with n - 1 degrees of freedom] (n seeds). ΔHM: of each seed's HM.",
             "An interval that excludes 0 is a difference the seeds cannot explain."};
  std::map<std::string, Group> groups;
  std::vector<std::string> datasets;
  for (const auto& j : jobs) {
    if (!IsBase2Novel(j) || j.method == "zsclip") continue;
    groups[Key({j.method, j.atprompt.value_or(false) ? "1" : "0", j.dataset})].Add(j);
    if (std::find(datasets.begin(), datasets.end(), j.dataset) == datasets.end()) datasets.push_back(j.dataset);
  }
  const auto methods = MethodOrder(jobs, [](const JobRow& j) { return IsBase2Novel(j) && j.method != "zsclip"; }, {});
  for (const auto& dataset : datasets) {
    for (const auto& method : methods) {
      const auto with = groups.find(Key({method, "1", dataset}));
      const auto without = groups.find(Key({method, "0", dataset}));
      if (with == groups.end() || without == groups.end()) continue;
      std::vector<double> base, novel, hm;
      for (const auto& [seed, w] : with->second.by_seed) {
        const auto o = without->second.by_seed.find(seed);
        if (o == without->second.by_seed.end()) continue;
        if (w.base && o->second.base) base.push_back(*w.base - *o->second.base);
        if (w.novel && o->second.novel) novel.push_back(*w.novel - *o->second.novel);
        if (w.base && w.novel && o->second.base && o->second.novel)
          hm.push_back(HarmonicMean(*w.base, *w.novel) - HarmonicMean(*o->second.base, *o->second.novel));
      }
      TableRow row{{dataset, RowLabel(method, true) + " vs " + RowLabel(method, false)}, {}, {}};
      MergeNotDone(&row.not_done, with->second.not_done);
      MergeNotDone(&row.not_done, without->second.not_done);
      for (const auto* values : {&base, &novel, &hm}) {
        const SeedSummary s = SummarizeSeeds(*values);
        TableCell c;
        c.value = s.mean;
        c.seeds = s.n;
        c.ci_low = s.ci_low;
        c.ci_high = s.ci_high;
        c.is_difference = true;
        row.cells.push_back(c);
      }
      t.rows.push_back(std::move(row));
    }
  }
  NoteRepeatedSeeds(groups, &t);
  return t;
}

// Cross-dataset (Table 2) and domain generalization (Table 4): one row per method and
// variant, one column per evaluated dataset (the source first), then the targets' average.
PaperTable TransferTable(const std::vector<JobRow>& jobs, bool domain) {
  PaperTable t;
  const std::string protocol = domain ? "domain_generalization" : "cross_dataset";
  const auto& targets = domain ? kDomainTargets : kCrossDatasetTargets;
  t.name = domain ? "domain-generalization" : "cross-dataset";
  t.title = domain ? "Table 4: domain generalization from ImageNet (accuracy %, mean over seeds)"
                   : "Table 2: cross-dataset transfer from ImageNet (accuracy %, mean over seeds)";
  t.label_columns = {"method"};
  t.value_columns = {std::string(kSource) + " (source)"};
  t.value_columns.insert(t.value_columns.end(), targets.begin(), targets.end());
  t.value_columns.push_back("average");
  t.notes = {"Each cell: mean over seeds of the `accuracy` of the eval jobs on that dataset (params.dataset), trained "
             "on params.source_dataset = imagenet.",
             std::string("Average: mean over the ") + std::to_string(targets.size()) +
                 " targets (the source excluded); missing unless every target has results."};
  auto include = [&protocol](const JobRow& j) {
    return j.protocol == protocol && (j.source.empty() || j.source == kSource);
  };
  std::unordered_map<std::string, Group> groups;
  for (const auto& j : jobs)
    if (include(j)) groups[Key({j.method, j.atprompt.value_or(false) ? "1" : "0", j.dataset})].Add(j);
  NoteRepeatedSeeds(groups, &t);
  const auto methods = MethodOrder(jobs, include, {"coop", "cocoop", "maple"});
  const std::string paper_table = domain ? "domain_generalization" : "cross_dataset";
  for (const auto& method : methods) {
    for (bool atprompt : method == "zsclip" ? std::vector<bool>{false} : std::vector<bool>{false, true}) {
      TableRow row{{RowLabel(method, atprompt)}, {}, {}};
      std::vector<TableCell> target_cells;
      std::vector<std::string> columns = {kSource};
      columns.insert(columns.end(), targets.begin(), targets.end());
      for (const auto& dataset : columns) {
        const auto it = groups.find(Key({method, atprompt ? "1" : "0", dataset}));
        const Group g = it == groups.end() ? Group{} : it->second;
        TableCell cell = MeanCell(g.accuracy);
        cell.paper = FindPaperFigure(paper_table, PaperMethodName(method), atprompt, dataset, "acc");
        if (dataset != kSource) target_cells.push_back(cell);
        MergeNotDone(&row.not_done, g.not_done);
        row.cells.push_back(cell);
      }
      TableCell average = AverageCell(target_cells);
      average.paper = FindPaperFigure(paper_table, PaperMethodName(method), atprompt, "average", "acc");
      row.cells.push_back(average);
      t.rows.push_back(std::move(row));
    }
  }
  return t;
}

std::string FormatWeight(double w) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", w);
  return buf;
}

// The three largest weights, "shape,size 0.565; color 0.120; ...".
std::string TopWeights(const std::vector<std::pair<std::string, double>>& weights) {
  auto sorted = weights;
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string out;
  for (size_t i = 0; i < sorted.size() && i < 3; ++i)
    out += (i ? "; " : "") + sorted[i].first + " " + FormatWeight(sorted[i].second);
  return out;
}

// "shape, size" and ["shape","size"] both become "shape, size".
std::string AttributeList(const Json& list) {
  std::string out;
  if (!list.is_array()) return out;
  for (const auto& a : list)
    if (a.is_string()) out += (out.empty() ? "" : ", ") + a.get<std::string>();
  return out;
}

PaperTable AttributeSearchTable(const std::vector<JobRow>& jobs) {
  PaperTable t;
  t.name = "attribute-search";
  t.title = "Attribute search: the searched attribute combination and its weights, per dataset and seed";
  t.label_columns = {"dataset", "seed"};
  t.value_columns = {"attributes", "top weights"};
  t.notes = {"From the outputs of done attribute_search jobs: {\"attributes\": [...], \"weights\": {...}}; the three "
             "largest weights are shown.",
             "Paper: the combination it reports per dataset; its weights are printed for caltech101 only."};
  std::vector<std::string> datasets = kBase2NovelDatasets;
  for (const auto& j : jobs)
    if (j.method == "attribute_search" && std::find(datasets.begin(), datasets.end(), j.dataset) == datasets.end())
      datasets.push_back(j.dataset);
  for (const auto& dataset : datasets) {
    std::string paper_attributes, paper_weights;
    for (const auto& a : PaperAttributes())
      if (dataset == a.dataset) paper_attributes = a.searched;
    std::vector<std::pair<std::string, double>> published;
    for (const auto& f : PaperFigures()) {
      if (std::string(f.table) != "t13_search_weights" || dataset != f.dataset) continue;
      // "AttributeSearch:(shape,size)" -> "shape,size", the spelling of our weights' keys.
      const std::string method = f.method;
      const auto open = method.find('('), close = method.rfind(')');
      if (open == std::string::npos || close == std::string::npos || close < open) continue;
      published.emplace_back(method.substr(open + 1, close - open - 1), f.value);
    }
    paper_weights = TopWeights(published);
    std::map<int64_t, TableRow> by_seed;  // done jobs first claim the seed's row
    TableRow pending_row{{dataset, "—"}, {}, {}};
    for (const auto& j : jobs) {
      if (j.method != "attribute_search" || j.dataset != dataset) continue;
      if (j.state != "done") {
        ++pending_row.not_done[j.state];
        continue;
      }
      std::vector<std::pair<std::string, double>> weights;
      if (j.outputs.contains("weights") && j.outputs["weights"].is_object())
        for (const auto& [k, v] : j.outputs["weights"].items())
          if (v.is_number()) weights.emplace_back(k, v.get<double>());
      TableCell attributes, top;
      attributes.is_text = top.is_text = true;
      attributes.text = AttributeList(j.outputs.value("attributes", Json::array()));
      top.text = TopWeights(weights);
      attributes.seeds = top.seeds = 1;
      by_seed[j.seed] = TableRow{{dataset, j.seed >= 0 ? std::to_string(j.seed) : "—"}, {attributes, top}, {}};
    }
    std::vector<TableRow> rows;
    for (auto& [seed, row] : by_seed) rows.push_back(std::move(row));
    if (rows.empty()) {
      TableCell a, w;
      a.is_text = w.is_text = true;
      pending_row.cells = {a, w};
      rows.push_back(pending_row);
    } else {
      MergeNotDone(&rows.front().not_done, pending_row.not_done);
    }
    for (auto& row : rows) {
      row.cells[0].paper_text = paper_attributes;
      row.cells[1].paper_text = paper_weights;
      t.rows.push_back(std::move(row));
    }
  }
  return t;
}

// An ablation: +ATPrompt base-to-novel jobs that set `param`, one row per dataset, method
// and value of the parameter, with the paper's variants always listed.
struct Ablation {
  std::string name, title, column, paper_table, paper_table_extra;
  std::string (*value)(const JobRow&);                 // "" when the job does not set the parameter
  std::string (*paper_variant)(const std::string&);    // our value -> the paper's method suffix
  std::vector<std::string> paper_values;               // in the paper's order
  bool numeric;
};

std::string NctxValue(const JobRow& j) { return j.n_ctx ? std::to_string(*j.n_ctx) : ""; }
std::string PositionValue(const JobRow& j) { return j.class_position; }
std::string OrderValue(const JobRow& j) { return j.attributes; }

PaperTable AblationTable(const std::vector<JobRow>& jobs, const Ablation& a) {
  PaperTable t;
  t.name = a.name;
  t.title = a.title;
  t.label_columns = {"dataset", "method", a.column};
  t.value_columns = {"Base", "Novel", "HM"};
  t.notes = {"+ATPrompt base-to-novel jobs that set params." + a.column +
                 "; Base and Novel: mean over seeds, HM: harmonic mean of those means.",
             "The paper's figures are for CoOp+ATPrompt on ImageNet; its variants are listed even without results."};
  std::map<std::string, Group> groups;  // (dataset, method, value)
  std::set<std::tuple<std::string, std::string, std::string>> keys;
  for (const auto& j : jobs) {
    if (!IsBase2Novel(j) || !j.atprompt.value_or(false)) continue;
    const std::string v = a.value(j);
    if (v.empty()) continue;
    groups[Key({j.dataset, j.method, v})].Add(j);
    keys.emplace(j.dataset, j.method, v);
  }
  NoteRepeatedSeeds(groups, &t);
  for (const auto& v : a.paper_values) keys.emplace("imagenet", "coop", v);
  std::vector<std::tuple<std::string, std::string, std::string>> ordered(keys.begin(), keys.end());
  auto rank = [&](const std::string& v) {
    auto it = std::find(a.paper_values.begin(), a.paper_values.end(), v);
    return it == a.paper_values.end() ? a.paper_values.size() : static_cast<size_t>(it - a.paper_values.begin());
  };
  std::stable_sort(ordered.begin(), ordered.end(), [&](const auto& x, const auto& y) {
    if (std::get<0>(x) != std::get<0>(y)) return std::get<0>(x) < std::get<0>(y);
    if (std::get<1>(x) != std::get<1>(y)) return std::get<1>(x) < std::get<1>(y);
    if (a.numeric) return std::stoll(std::get<2>(x)) < std::stoll(std::get<2>(y));
    return std::make_pair(rank(std::get<2>(x)), std::get<2>(x)) < std::make_pair(rank(std::get<2>(y)), std::get<2>(y));
  });
  for (const auto& [dataset, method, value] : ordered) {
    const auto it = groups.find(Key({dataset, method, value}));
    const Group g = it == groups.end() ? Group{} : it->second;
    TableRow row{{dataset, RowLabel(method, true), value}, {MeanCell(g.base), MeanCell(g.novel)}, g.not_done};
    row.cells.push_back(HmCell(row.cells[0], row.cells[1]));
    const std::string variant = PaperMethodName(method) + ":" + a.paper_variant(value);
    const char* metric_names[] = {"base", "novel", "hm"};
    for (int i = 0; i < 3; ++i) {
      row.cells[i].paper = FindPaperFigure(a.paper_table, variant, true, dataset, metric_names[i]);
      if (!row.cells[i].paper && !a.paper_table_extra.empty())
        row.cells[i].paper = FindPaperFigure(a.paper_table_extra, variant, true, dataset, metric_names[i]);
    }
    t.rows.push_back(std::move(row));
  }
  return t;
}

const Ablation kSoftTokenLength{"soft-token-length",
                                "Figure 5: soft-token length (+ATPrompt, accuracy %, mean over seeds)",
                                "n_ctx",
                                "fig5_soft_prompt_length",
                                "",
                                NctxValue,
                                [](const std::string& v) { return "len" + v; },
                                {"1", "2", "4", "6", "10"},
                                true};
const Ablation kClassTokenPosition{"class-token-position",
                                   "Table 5: class-token position (+ATPrompt, accuracy %, mean over seeds)",
                                   "class_position",
                                   "t5_class_token_position",
                                   "",
                                   PositionValue,
                                   [](const std::string& v) { return "class_" + v; },
                                   {"front", "middle", "end"},
                                   false};
const Ablation kAttributeOrder{"attribute-order",
                               "Table 7: attribute order (+ATPrompt, accuracy %, mean over seeds)",
                               "attributes",
                               "t7_attribute_order",
                               "t9_attribute_order_supp",
                               OrderValue,
                               [](const std::string& v) { return v; },
                               {"(shape,color)", "(color,shape)", "(size,habitat)", "(habitat,size)"},
                               false};

// Table 8: the +ATPrompt average over the 11 datasets for each attribute source: "searched"
// (the job consumes an attribute_search job's outputs) or a fixed, manual list.
PaperTable AttributeSourceTable(const std::vector<JobRow>& jobs) {
  PaperTable t;
  t.name = "attribute-source";
  t.title = "Table 8: manual versus searched attributes (+ATPrompt, average over 11 datasets, accuracy %)";
  t.label_columns = {"method", "attributes", "datasets"};
  t.value_columns = {"Base", "Novel", "HM"};
  t.notes = {"searched: jobs downstream of an attribute_search job; otherwise the params.attributes list.",
             "Per dataset: mean over seeds; then the mean over the 11 datasets, HM = HM(average Base, average Novel); "
             "missing unless all 11 datasets have results (the datasets column counts those that do)."};
  std::map<std::string, Group> groups;  // (method, source, dataset)
  std::set<std::pair<std::string, std::string>> rows;
  auto source_of = [](const JobRow& j) { return j.searched ? std::string("searched") : j.attributes; };
  for (const auto& j : jobs) {
    if (!IsBase2Novel(j) || !j.atprompt.value_or(false)) continue;
    const std::string source = source_of(j);
    if (source.empty()) continue;
    groups[Key({j.method, source, j.dataset})].Add(j);
    rows.emplace(j.method, source);
  }
  NoteRepeatedSeeds(groups, &t);
  // The paper's rows: the searched attributes, then the manual lists it tried.
  const std::vector<std::pair<std::string, std::string>> paper_rows = {
      {"searched", "searched"},
      {"(shape,size)", "common(shape,size)"},
      {"(color,texture)", "common(color,texture)"},
      {"(plane,engines)", "irrelevant(plane,engines)"},
      {"(football,sport)", "irrelevant(football,sport)"}};
  std::vector<std::pair<std::string, std::string>> ordered;
  for (const auto& [source, _] : paper_rows) ordered.emplace_back("coop", source);
  for (const auto& r : rows)
    if (std::find(ordered.begin(), ordered.end(), r) == ordered.end()) ordered.push_back(r);
  for (const auto& [method, source] : ordered) {
    std::vector<TableCell> bases, novels;
    TableRow row{{RowLabel(method, true), source, ""}, {}, {}};
    int with_results = 0;
    for (const auto& dataset : kBase2NovelDatasets) {
      const auto it = groups.find(Key({method, source, dataset}));
      const Group g = it == groups.end() ? Group{} : it->second;
      bases.push_back(MeanCell(g.base));
      novels.push_back(MeanCell(g.novel));
      with_results += bases.back().value && novels.back().value;
      MergeNotDone(&row.not_done, g.not_done);
    }
    row.labels[2] = std::to_string(with_results) + "/" + std::to_string(kBase2NovelDatasets.size());
    row.cells = {AverageCell(bases), AverageCell(novels)};
    row.cells.push_back(HmCell(row.cells[0], row.cells[1]));
    std::string paper_variant;
    for (const auto& [ours, paper] : paper_rows)
      if (ours == source) paper_variant = PaperMethodName(method) + ":" + paper;
    const char* metric_names[] = {"base", "novel", "hm"};
    for (int i = 0; i < 3; ++i)
      if (!paper_variant.empty())
        row.cells[i].paper = FindPaperFigure("t8_attribute_source", paper_variant, true, "average", metric_names[i]);
    t.rows.push_back(std::move(row));
  }
  return t;
}

struct TableName {
  const char* name;
  std::vector<const char*> aliases;
};
const std::vector<TableName>& TableNames() {
  static const std::vector<TableName> kNames = {
      {"base2novel", {"table1", "base-to-novel"}},
      {"cross-dataset", {"table2", "cross_dataset"}},
      {"domain-generalization", {"table4", "domain_generalization", "dg"}},
      {"attribute-search", {"search", "attribute_search"}},
      {"soft-token-length", {"figure5", "fig5", "n_ctx"}},
      {"class-token-position", {"table5", "class_position"}},
      {"attribute-order", {"table7"}},
      {"attribute-source", {"table8", "manual-vs-searched"}},
      {"atprompt-paired", {"paired"}},
  };
  return kNames;
}

std::string FormatValue(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string FormatDiff(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.2f", v);
  return std::string(buf) == "-0.00" ? "+0.00" : buf;
}

std::string NotDoneText(const std::map<std::string, int64_t>& not_done) {
  std::string out;
  for (const char* s : {"running", "pending", "failed", "blocked"}) {
    auto it = not_done.find(s);
    if (it == not_done.end()) continue;
    out += (out.empty() ? "" : ", ") + std::to_string(it->second) + " " + s;
  }
  return out;
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string LatexEscape(const std::string& s) {
  if (s == "—") return "--";  // a missing label (an unknown seed) in the LaTeX spelling
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 2, "±") == 0) {
      out += "$\\pm$";
      ++i;
      continue;
    }
    const char c = s[i];
    if (c == '_' || c == '&' || c == '%' || c == '#' || c == '$') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

const std::vector<std::string>& PaperTableNames() {
  static const std::vector<std::string> kList = [] {
    std::vector<std::string> names;
    for (const auto& n : TableNames()) names.push_back(n.name);
    return names;
  }();
  return kList;
}

Result<PaperTable> BuildPaperTable(sqlite3* db, const TableOptions& options) {
  std::string name;
  for (const auto& n : TableNames()) {
    if (options.name == n.name) name = n.name;
    for (const char* alias : n.aliases)
      if (options.name == alias) name = n.name;
  }
  if (name.empty()) {
    std::string list;
    for (const auto& n : PaperTableNames()) list += (list.empty() ? "" : ", ") + n;
    return InvalidArgument("unknown table '" + options.name + "': the tables are " + list);
  }
  // Which jobs each table reads (docs/results.md): base-to-novel results carry the protocol
  // or, from before the convention, no protocol at all.
  const char* prefilter =
      name == "cross-dataset"           ? "json_extract(j.spec_json, '$.params.protocol') = 'cross_dataset'"
      : name == "domain-generalization" ? "json_extract(j.spec_json, '$.params.protocol') = 'domain_generalization'"
      : name == "attribute-search"      ? "j.method = 'attribute_search'"
                                        : "j.method <> 'attribute_search' AND coalesce(json_extract(j.spec_json, "
                                          "'$.params.protocol'), 'base2novel') = 'base2novel'";
  ATP_ASSIGN_OR_RETURN(std::vector<JobRow> jobs, LoadJobs(db, options, prefilter));
  if (name == "base2novel") {
    bool dataset_filter = false;
    for (const auto& f : options.filters) dataset_filter = dataset_filter || f.key == "dataset";
    return Base2NovelTable(jobs, dataset_filter);
  }
  if (name == "cross-dataset") return TransferTable(jobs, false);
  if (name == "domain-generalization") return TransferTable(jobs, true);
  if (name == "attribute-search") return AttributeSearchTable(jobs);
  if (name == "soft-token-length") return AblationTable(jobs, kSoftTokenLength);
  if (name == "class-token-position") return AblationTable(jobs, kClassTokenPosition);
  if (name == "attribute-order") return AblationTable(jobs, kAttributeOrder);
  if (name == "atprompt-paired") return PairedTable(jobs);
  return AttributeSourceTable(jobs);
}

Json PaperTable::ToJson() const {
  Json rows_json = Json::array();
  for (const auto& row : rows) {
    Json cells = Json::array();
    for (size_t i = 0; i < row.cells.size(); ++i) {
      const TableCell& c = row.cells[i];
      Json cell = {{"column", value_columns[i]}, {"seeds", c.seeds}};
      if (c.is_text) {
        cell["text"] = c.text;
        cell["paper"] = c.paper_text.empty() ? Json(nullptr) : Json(c.paper_text);
      } else {
        cell["value"] = c.value ? Json(*c.value) : Json(nullptr);
        cell["paper"] = c.paper ? Json(*c.paper) : Json(nullptr);
        cell["diff"] = c.value && c.paper ? Json(*c.value - *c.paper) : Json(nullptr);
        cell["std"] = c.spread ? Json(*c.spread) : Json(nullptr);
        if (c.ci_low && c.ci_high) cell["ci95"] = Json::array({*c.ci_low, *c.ci_high});
      }
      cells.push_back(cell);
    }
    rows_json.push_back({{"labels", row.labels}, {"cells", cells}, {"not_done", row.not_done}});
  }
  return {{"table", name},          {"title", title}, {"label_columns", label_columns},
          {"value_columns", value_columns}, {"rows", rows_json}, {"notes", notes}};
}

Result<std::string> FormatPaperTable(const PaperTable& table, const std::string& format, bool paper) {
  if (format != "md" && format != "latex" && format != "csv")
    return InvalidArgument("unknown format '" + format + "' for atp tables: use md, latex or csv");
  const bool csv = format == "csv", latex = format == "latex";
  const std::string missing = csv ? "" : latex ? "--" : "—";
  bool any_not_done = false;
  for (const auto& row : table.rows) any_not_done = any_not_done || !row.not_done.empty();

  // CSV keeps each figure in a column of its own: the spread and the interval get columns
  // when the table has them.
  bool any_spread = false, any_interval = false;
  for (const auto& row : table.rows) {
    for (const auto& c : row.cells) {
      any_spread = any_spread || c.spread.has_value();
      any_interval = any_interval || (c.ci_low.has_value() && c.ci_high.has_value());
    }
  }
  std::vector<std::string> header = table.label_columns;
  for (const auto& column : table.value_columns) {
    header.push_back(column);
    if (csv) header.push_back(column + " seeds");
    if (csv && any_spread) header.push_back(column + " std");
    if (csv && any_interval) {
      header.push_back(column + " ci low");
      header.push_back(column + " ci high");
    }
    if (paper) {
      header.push_back(column + " paper");
      header.push_back(column + (csv ? " diff" : latex ? " $\\Delta$" : " Δ"));
    }
  }
  if (any_not_done || csv) header.push_back("not done");

  std::vector<std::vector<std::string>> lines;
  for (const auto& row : table.rows) {
    std::vector<std::string> line = row.labels;
    for (const TableCell& c : row.cells) {
      std::string ours;
      if (c.is_text) {
        ours = c.text.empty() ? missing : c.text;
      } else if (c.value) {
        auto number = [&c](double v) { return c.is_difference ? FormatDiff(v) : FormatValue(v); };
        ours = number(*c.value);
        if (!csv) {
          // Spread, interval and seed count ride on the value, so a figure from few or
          // scattered seeds shows as such.
          if (c.spread) ours += " ± " + FormatValue(*c.spread);
          if (c.ci_low && c.ci_high) ours += " [" + number(*c.ci_low) + ", " + number(*c.ci_high) + "]";
          ours += " (" + std::to_string(c.seeds) + ")";
        }
      } else {
        ours = missing;
      }
      line.push_back(ours);
      if (csv) line.push_back(std::to_string(c.seeds));
      if (csv && any_spread) line.push_back(c.spread ? FormatValue(*c.spread) : "");
      if (csv && any_interval) {
        const bool interval = c.ci_low && c.ci_high;
        line.push_back(interval ? (c.is_difference ? FormatDiff(*c.ci_low) : FormatValue(*c.ci_low)) : "");
        line.push_back(interval ? (c.is_difference ? FormatDiff(*c.ci_high) : FormatValue(*c.ci_high)) : "");
      }
      if (paper) {
        if (c.is_text) {
          line.push_back(c.paper_text.empty() ? missing : c.paper_text);
          line.push_back(c.text.empty() || c.paper_text.empty() ? missing
                         : c.text == c.paper_text                ? "same"
                                                                 : "differs");
        } else {
          line.push_back(c.paper ? FormatValue(*c.paper) : missing);
          line.push_back(c.value && c.paper ? FormatDiff(*c.value - *c.paper) : missing);
        }
      }
    }
    if (any_not_done || csv) line.push_back(NotDoneText(row.not_done));
    lines.push_back(std::move(line));
  }

  std::ostringstream out;
  if (csv) {
    for (size_t i = 0; i < header.size(); ++i) out << (i ? "," : "") << CsvField(header[i]);
    out << "\n";
    for (const auto& line : lines) {
      for (size_t i = 0; i < line.size(); ++i) out << (i ? "," : "") << CsvField(line[i]);
      out << "\n";
    }
    return out.str();
  }
  if (latex) {
    out << "% " << table.title << "\n";
    out << "\\begin{tabular}{" << std::string(table.label_columns.size(), 'l')
        << std::string(header.size() - table.label_columns.size(), 'r') << "}\n\\hline\n";
    for (size_t i = 0; i < header.size(); ++i)
      out << (i ? " & " : "") << (header[i].find("$\\Delta$") != std::string::npos ? header[i] : LatexEscape(header[i]));
    out << " \\\\\n\\hline\n";
    for (const auto& line : lines) {
      for (size_t i = 0; i < line.size(); ++i) out << (i ? " & " : "") << LatexEscape(line[i]);
      out << " \\\\\n";
    }
    out << "\\hline\n\\end{tabular}\n";
    for (const auto& note : table.notes) out << "% " << note << "\n";
    out << "% (n): seeds behind the figure; -- : no result.\n";
    if (any_spread) out << "% ±: standard deviation over the seeds.\n";
    if (any_interval) out << "% [lo, hi]: 95% confidence interval.\n";
    return out.str();
  }
  out << "### " << table.title << "\n\n|";
  for (const auto& h : header) out << " " << h << " |";
  out << "\n|";
  // Labels and the "not done" text left-aligned, figures right-aligned.
  for (size_t i = 0; i < header.size(); ++i)
    out << (i < table.label_columns.size() || header[i] == "not done" ? "---|" : "---:|");
  out << "\n";
  for (const auto& line : lines) {
    out << "|";
    for (const auto& cell : line) out << " " << cell << " |";
    out << "\n";
  }
  out << "\n(n): seeds behind the figure; —: no result.";
  if (any_spread) out << " ±: standard deviation over the seeds.";
  if (any_interval) out << " [lo, hi]: 95% confidence interval.";
  if (paper) out << " paper: the published figure; Δ: ours minus the paper's.";
  out << "\n";
  for (const auto& note : table.notes) out << "- " << note << "\n";
  return out.str();
}

Result<std::string> SoftTokenLengthSvg(const PaperTable& table, bool paper) {
  if (table.name != "soft-token-length")
    return InvalidArgument("--svg draws the soft-token-length table only, not '" + table.name + "'");
  // One plot: the (dataset, method) with the most results, the paper's setting on a tie.
  std::map<std::pair<std::string, std::string>, int> counts;
  for (const auto& row : table.rows) {
    auto& n = counts[{row.labels[0], row.labels[1]}];
    for (const auto& c : row.cells) n += c.value.has_value();
  }
  std::pair<std::string, std::string> chosen{"imagenet", "CoOp+ATPrompt"};
  int best = counts.count(chosen) ? counts[chosen] : -1;
  for (const auto& [k, n] : counts)
    if (n > best) best = n, chosen = k;
  struct Point {
    double x;
    std::optional<double> ours[3], theirs[3];
  };
  std::vector<Point> points;
  for (const auto& row : table.rows) {
    if (row.labels[0] != chosen.first || row.labels[1] != chosen.second) continue;
    Point p{std::stod(row.labels[2]), {}, {}};
    for (int i = 0; i < 3; ++i) p.ours[i] = row.cells[i].value, p.theirs[i] = paper ? row.cells[i].paper : std::nullopt;
    points.push_back(p);
  }
  double lo = 1e9, hi = -1e9, xmax = 1;
  for (const auto& p : points) {
    xmax = std::max(xmax, p.x);
    for (int i = 0; i < 3; ++i)
      for (const auto& v : {p.ours[i], p.theirs[i]})
        if (v) lo = std::min(lo, *v), hi = std::max(hi, *v);
  }
  const bool empty = lo > hi;
  if (empty) lo = 0, hi = 100;  // nothing to draw: an empty frame with a sensible axis
  lo = std::floor(lo - 0.5), hi = std::ceil(hi + 0.5);
  const double W = 640, H = 420, L = 60, R = 150, T = 40, B = 50;
  auto px = [&](double x) { return L + (x / xmax) * (W - L - R); };
  auto py = [&](double y) { return T + (hi - y) / (hi - lo) * (H - T - B); };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<text x=\"" << W / 2 - 40 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">Soft-token length: "
    << chosen.second << " on " << chosen.first << "</text>\n";
  s << "<line x1=\"" << L << "\" y1=\"" << H - B << "\" x2=\"" << W - R << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  s << "<line x1=\"" << L << "\" y1=\"" << T << "\" x2=\"" << L << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  const double step = hi - lo > 40 ? 10 : hi - lo > 10 ? 5 : 1;
  for (double y = std::ceil(lo / step) * step + 0.0; y <= hi + 1e-9; y += step) {  // + 0.0: no "-0"
    s << "<line x1=\"" << L << "\" y1=\"" << py(y) << "\" x2=\"" << W - R << "\" y2=\"" << py(y)
      << "\" stroke=\"#ddd\"/><text x=\"" << L - 6 << "\" y=\"" << py(y) + 4 << "\" text-anchor=\"end\">" << y
      << "</text>\n";
  }
  for (const auto& p : points)
    s << "<text x=\"" << px(p.x) << "\" y=\"" << H - B + 18 << "\" text-anchor=\"middle\">" << p.x << "</text>\n";
  s << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 12 << "\" text-anchor=\"middle\">soft tokens (n_ctx)</text>\n";
  s << "<text x=\"16\" y=\"" << (T + H - B) / 2 << "\" text-anchor=\"middle\" transform=\"rotate(-90 16 " << (T + H - B) / 2
    << ")\">accuracy (%)</text>\n";
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c"};
  const char* names[] = {"Base", "Novel", "HM"};
  for (int i = 0; i < 3; ++i) {
    for (int theirs = 0; theirs < 2; ++theirs) {
      // Our line breaks where a length has no result, so a missing run shows as a gap; the
      // paper's line joins the lengths it printed, skipping those it did not try.
      std::string path;
      bool open = false;
      for (const auto& p : points) {
        const auto& v = theirs ? p.theirs[i] : p.ours[i];
        if (!v) {
          open = open && theirs;
          continue;
        }
        char seg[64];
        std::snprintf(seg, sizeof seg, "%s%.1f %.1f ", open ? "L" : "M", px(p.x), py(*v));
        path += seg;
        open = true;
        s << "<circle cx=\"" << px(p.x) << "\" cy=\"" << py(*v) << "\" r=\"" << (theirs ? 2.5 : 3.5) << "\" fill=\""
          << (theirs ? "white" : colors[i]) << "\" stroke=\"" << colors[i] << "\"/>\n";
      }
      if (!path.empty())
        s << "<path d=\"" << path << "\" fill=\"none\" stroke=\"" << colors[i] << "\" stroke-width=\"2\""
          << (theirs ? " stroke-dasharray=\"6 4\"" : "") << "/>\n";
    }
    const double ly = T + 10 + i * 20;
    s << "<line x1=\"" << W - R + 15 << "\" y1=\"" << ly << "\" x2=\"" << W - R + 40 << "\" y2=\"" << ly << "\" stroke=\""
      << colors[i] << "\" stroke-width=\"2\"/><text x=\"" << W - R + 46 << "\" y=\"" << ly + 4 << "\">" << names[i]
      << " (ours)</text>\n";
    if (paper)
      s << "<line x1=\"" << W - R + 15 << "\" y1=\"" << ly + 62 << "\" x2=\"" << W - R + 40 << "\" y2=\"" << ly + 62
        << "\" stroke=\"" << colors[i] << "\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/><text x=\"" << W - R + 46
        << "\" y=\"" << ly + 66 << "\">" << names[i] << " (paper)</text>\n";
  }
  if (empty)
    s << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << (T + H - B) / 2
      << "\" text-anchor=\"middle\" fill=\"#888\">no results yet</text>\n";
  s << "</svg>\n";
  return s.str();
}

}  // namespace atp
