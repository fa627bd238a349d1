#include "tools/reporting/paper_tables.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/paper_attributes.h"
#include "tests/support/status_matchers.h"
#include "tests/tools/reporting/results_test_util.h"
#include "tools/reporting/paper_figures.h"

namespace atp {
namespace {

const std::vector<std::string> kDatasets = {"imagenet", "caltech101", "oxford_pets", "stanford_cars",
                                            "oxford_flowers", "food101", "fgvc_aircraft", "sun397",
                                            "dtd", "eurosat", "ucf101"};

PlannedJob Transfer(const std::string& protocol, const std::string& method, bool atprompt, const std::string& dataset,
                    int seed, double accuracy) {
  return {ResultJob(method, dataset, seed,
                    {{"protocol", protocol}, {"atprompt", atprompt}, {"source_dataset", "imagenet"}}),
          Outcome::kDone,
          {{"accuracy", accuracy}},
          {}};
}

double Hm(double a, double b) { return 2 * a * b / (a + b); }

class PaperTablesTest : public ::testing::Test {
 protected:
  PaperTable Build(const std::string& name, std::optional<int64_t> sweep = std::nullopt,
                   std::vector<ResultFilter> filters = {}) {
    if (!reader_) reader_ = db_.Reader();
    TableOptions options;
    options.name = name;
    options.sweep_id = sweep;
    options.filters = std::move(filters);
    auto table = BuildPaperTable(reader_->handle(), options);
    EXPECT_OK(table);
    return table.ok() ? *table : PaperTable{};
  }
  static const TableRow* Find(const PaperTable& t, const std::vector<std::string>& labels) {
    for (const auto& row : t.rows)
      if (row.labels == labels) return &row;
    ADD_FAILURE() << "no row " << ::testing::PrintToString(labels);
    static const TableRow kEmpty{{}, std::vector<TableCell>(16), {}};
    return &kEmpty;
  }
  static std::string Line(const std::string& text, const std::string& start) {
    const auto at = text.find(start);
    if (at == std::string::npos) return "<no line starting " + start + ">";
    return text.substr(at, text.find('\n', at) - at);
  }

  // CoOp on all 11 datasets, seeds 1-3: base 80+i and novel 59+i, 60+i, 61+i on the i-th
  // dataset; CoOp+ATPrompt on ImageNet only, seeds 1 and 2 done (base 76, 77; novel 70, 71)
  // and seed 3 failed.
  int64_t AddBase2Novel() {
    std::vector<PlannedJob> jobs;
    for (size_t i = 0; i < kDatasets.size(); ++i)
      for (int seed = 1; seed <= 3; ++seed)
        jobs.push_back(Base2Novel("coop", false, kDatasets[i], seed, 80.0 + i, 60.0 + i + (seed - 2)));
    jobs.push_back(Base2Novel("coop", true, "imagenet", 1, 76, 70));
    jobs.push_back(Base2Novel("coop", true, "imagenet", 2, 77, 71));
    jobs.push_back(WithOutcome(Base2Novel("coop", true, "imagenet", 3, 0, 0), Outcome::kFailed));
    return db_.AddSweep("base2novel", jobs);
  }

  ResultsDb db_;
  std::unique_ptr<StoreReader> reader_;
};

TEST_F(PaperTablesTest, Base2NovelAveragesSeedsThenTakesHmTheirWay) {
  AddBase2Novel();
  const PaperTable t = Build("base2novel");
  EXPECT_EQ(t.label_columns, (std::vector<std::string>{"dataset", "method"}));
  EXPECT_EQ(t.value_columns, (std::vector<std::string>{"Base", "Novel", "HM"}));
  // 8 average rows (4 catalog methods, each with +ATPrompt), then 11 datasets x 8.
  ASSERT_EQ(t.rows.size(), 8u + 11u * 8u);
  EXPECT_EQ(t.rows[0].labels, (std::vector<std::string>{"average", "CoOp"}));
  EXPECT_EQ(t.rows[8].labels, (std::vector<std::string>{"imagenet", "CoOp"}));

  const TableRow* imagenet = Find(t, {"imagenet", "CoOp"});
  EXPECT_DOUBLE_EQ(*imagenet->cells[0].value, 80.0);
  EXPECT_DOUBLE_EQ(*imagenet->cells[1].value, 60.0);
  EXPECT_DOUBLE_EQ(*imagenet->cells[2].value, Hm(80, 60));
  EXPECT_EQ(imagenet->cells[2].seeds, 3);
  EXPECT_DOUBLE_EQ(*imagenet->cells[0].paper, 76.47);

  // The average's HM is HM(average base, average novel), not the mean of the datasets' HMs.
  const TableRow* average = Find(t, {"average", "CoOp"});
  EXPECT_DOUBLE_EQ(*average->cells[0].value, 85.0);
  EXPECT_DOUBLE_EQ(*average->cells[1].value, 65.0);
  EXPECT_DOUBLE_EQ(*average->cells[2].value, Hm(85, 65));
  double mean_of_hms = 0;
  for (size_t i = 0; i < 11; ++i) mean_of_hms += Hm(80.0 + i, 60.0 + i) / 11;
  EXPECT_GT(std::abs(*average->cells[2].value - mean_of_hms), 1e-3);
  EXPECT_DOUBLE_EQ(*average->cells[2].paper, 71.66);

  // Seed 3 failed: two seeds behind the cell, and the failure is on the row.
  const TableRow* at = Find(t, {"imagenet", "CoOp+ATPrompt"});
  EXPECT_DOUBLE_EQ(*at->cells[0].value, 76.5);
  EXPECT_DOUBLE_EQ(*at->cells[2].value, Hm(76.5, 70.5));
  EXPECT_EQ(at->cells[0].seeds, 2);
  EXPECT_EQ(at->not_done, (std::map<std::string, int64_t>{{"failed", 1}}));
  // Ten datasets have no +ATPrompt result: no average, never a filled-in one.
  const TableRow* at_average = Find(t, {"average", "CoOp+ATPrompt"});
  EXPECT_FALSE(at_average->cells[0].value.has_value());
  EXPECT_FALSE(at_average->cells[2].value.has_value());
  EXPECT_DOUBLE_EQ(*at_average->cells[2].paper, 74.65);
  EXPECT_FALSE(Find(t, {"dtd", "MaPLe"})->cells[0].value.has_value());
}

TEST_F(PaperTablesTest, Base2NovelMarkdownLayout) {
  AddBase2Novel();
  const PaperTable t = Build("table1");  // the paper's numbering is an alias
  const std::string md = *FormatPaperTable(t, "md", false);
  EXPECT_EQ(md.rfind("### Table 1: base-to-novel generalization", 0), 0u) << md.substr(0, 80);
  EXPECT_EQ(Line(md, "| dataset"), "| dataset | method | Base | Novel | HM | not done |");
  EXPECT_EQ(Line(md, "|---"), "|---|---|---:|---:|---:|---|");
  EXPECT_EQ(Line(md, "| imagenet | CoOp |"), "| imagenet | CoOp | 80.00 ± 0.00 (3) | 60.00 ± 1.00 (3) | 68.57 ± 0.65 (3) |  |");
  EXPECT_EQ(Line(md, "| imagenet | CoOp+ATPrompt |"),
            "| imagenet | CoOp+ATPrompt | 76.50 ± 0.71 (2) | 70.50 ± 0.71 (2) | 73.38 ± 0.71 (2) | 1 failed |");
  EXPECT_EQ(Line(md, "| average | CoOp+ATPrompt |"), "| average | CoOp+ATPrompt | — | — | — | 1 failed |");
  EXPECT_EQ(Line(md, "| average | CoOp |"), "| average | CoOp | 85.00 (3) | 65.00 (3) | 73.67 (3) |  |");

  const std::string paper = *FormatPaperTable(t, "md", true);
  EXPECT_EQ(Line(paper, "| dataset"),
            "| dataset | method | Base | Base paper | Base Δ | Novel | Novel paper | Novel Δ | HM | HM paper | HM Δ | "
            "not done |");
  EXPECT_EQ(Line(paper, "| imagenet | CoOp |"),
            "| imagenet | CoOp | 80.00 ± 0.00 (3) | 76.47 | +3.53 | 60.00 ± 1.00 (3) | 67.88 | -7.88 | 68.57 ± 0.65 (3) | 71.92 | "
            "-3.35 |  |");
  EXPECT_EQ(Line(paper, "| average | CoOp+ATPrompt |"),
            "| average | CoOp+ATPrompt | — | 82.68 | — | — | 68.04 | — | — | 74.65 | — | 1 failed |");
}

TEST_F(PaperTablesTest, Base2NovelLatexAndCsvLayout) {
  AddBase2Novel();
  const PaperTable t = Build("base2novel");
  const std::string latex = *FormatPaperTable(t, "latex", true);
  EXPECT_NE(latex.find("\\begin{tabular}{llrrrrrrrrrr}"), std::string::npos);
  EXPECT_NE(latex.find("dataset & method & Base & Base paper & Base $\\Delta$ &"), std::string::npos);
  EXPECT_EQ(Line(latex, "imagenet & CoOp &"),
            "imagenet & CoOp & 80.00 $\\pm$ 0.00 (3) & 76.47 & +3.53 & 60.00 $\\pm$ 1.00 (3) & 67.88 & -7.88 & "
            "68.57 $\\pm$ 0.65 (3) & 71.92 & -3.35 &  \\\\");
  EXPECT_EQ(Line(latex, "fgvc"), "fgvc\\_aircraft & CoOp & 86.00 $\\pm$ 0.00 (3) & 40.44 & +45.56 & 66.00 $\\pm$ 1.00 (3) & 22.30 & "
                                 "+43.70 & 74.68 $\\pm$ 0.64 (3) & 28.75 & +45.93 &  \\\\");
  EXPECT_EQ(Line(latex, "average & CoOp+ATPrompt"),
            "average & CoOp+ATPrompt & -- & 82.68 & -- & -- & 68.04 & -- & -- & 74.65 & -- & 1 failed \\\\");

  const std::string csv = *FormatPaperTable(t, "csv", true);
  EXPECT_EQ(Line(csv, "dataset,"),
            "dataset,method,Base,Base seeds,Base std,Base paper,Base diff,Novel,Novel seeds,Novel std,Novel paper,"
            "Novel diff,HM,HM seeds,HM std,HM paper,HM diff,not done");
  EXPECT_EQ(Line(csv, "imagenet,CoOp+ATPrompt,"),
            "imagenet,CoOp+ATPrompt,76.50,2,0.71,76.27,+0.23,70.50,2,0.71,70.60,-0.10,73.38,2,0.71,73.33,+0.05,1 failed");
  EXPECT_EQ(Line(csv, "average,CoOp+ATPrompt,"), "average,CoOp+ATPrompt,,0,,82.68,,,0,,68.04,,,0,,74.65,,1 failed");
  EXPECT_EQ(Line(*FormatPaperTable(t, "csv", false), "dataset,"),
            "dataset,method,Base,Base seeds,Base std,Novel,Novel seeds,Novel std,HM,HM seeds,HM std,not done");
}

TEST_F(PaperTablesTest, PairedTableGivesPerSeedDifferencesWithTIntervals) {
  // CoOp with and without ATPrompt on dtd, seeds 1-4: ATPrompt adds 2, 4, 3, 3 base points
  // and -1, 1, 0, 0 novel points. Seed 5 has no +ATPrompt result (not paired); DePT has no
  // +ATPrompt run at all and zero-shot CLIP has no ATPrompt variant: no rows for them.
  std::vector<PlannedJob> jobs;
  const double base[] = {70, 72, 71, 69}, novel[] = {50, 55, 52, 51};
  const double base_gain[] = {2, 4, 3, 3}, novel_gain[] = {-1, 1, 0, 0};
  std::vector<double> hm_gain;
  for (int i = 0; i < 4; ++i) {
    jobs.push_back(Base2Novel("coop", false, "dtd", i + 1, base[i], novel[i]));
    jobs.push_back(Base2Novel("coop", true, "dtd", i + 1, base[i] + base_gain[i], novel[i] + novel_gain[i]));
    hm_gain.push_back(Hm(base[i] + base_gain[i], novel[i] + novel_gain[i]) - Hm(base[i], novel[i]));
  }
  jobs.push_back(Base2Novel("coop", false, "dtd", 5, 90, 90));
  jobs.push_back(Base2Novel("dept", false, "dtd", 1, 70, 50));
  jobs.push_back(Base2Novel("zsclip", false, "dtd", 1, 60, 60));
  db_.AddSweep("paired", jobs);
  const PaperTable t = Build("paired");
  EXPECT_EQ(t.name, "atprompt-paired");
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].labels, (std::vector<std::string>{"dtd", "CoOp+ATPrompt vs CoOp"}));
  const TableCell& b = t.rows[0].cells[0];
  EXPECT_EQ(b.seeds, 4);
  EXPECT_DOUBLE_EQ(*b.value, 3.0);
  // Differences 2, 4, 3, 3: sample std sqrt(2/3); t(0.975, 3 df) = 3.1824.
  const double half = 3.1824 * std::sqrt(2.0 / 3.0) / 2;
  EXPECT_NEAR(*b.ci_low, 3 - half, 1e-9);
  EXPECT_NEAR(*b.ci_high, 3 + half, 1e-9);
  const TableCell& h = t.rows[0].cells[2];
  EXPECT_NEAR(*h.value, (hm_gain[0] + hm_gain[1] + hm_gain[2] + hm_gain[3]) / 4, 1e-9);
  EXPECT_EQ(h.seeds, 4);
  const std::string md = *FormatPaperTable(t, "md", false);
  EXPECT_EQ(Line(md, "| dtd |").rfind("| dtd | CoOp+ATPrompt vs CoOp | +3.00 [+1.70, +4.30] (4) | +0.00 [-1.30, +1.30] (4) | ", 0),
            0u)
      << md;
  EXPECT_NE(md.find("[lo, hi]: 95% confidence interval."), std::string::npos);
  EXPECT_EQ(Line(*FormatPaperTable(t, "csv", false), "dtd,").substr(0, 46),
            "dtd,CoOp+ATPrompt vs CoOp,+3.00,4,+1.70,+4.30,");
}

TEST_F(PaperTablesTest, SweepAndWhereChooseTheResults) {
  const int64_t first = AddBase2Novel();
  PlannedJob rerun = Base2Novel("coop", false, "imagenet", 1, 90, 90);
  rerun.spec.code_version = "v2";  // a new job, not the one of the first sweep
  const int64_t second = db_.AddSweep("rerun", {rerun});
  EXPECT_DOUBLE_EQ(*Find(Build("base2novel"), {"imagenet", "CoOp"})->cells[0].value, (3 * 80.0 + 90) / 4);
  EXPECT_DOUBLE_EQ(*Find(Build("base2novel", first), {"imagenet", "CoOp"})->cells[0].value, 80.0);
  const PaperTable only_rerun = Build("base2novel", second);
  EXPECT_DOUBLE_EQ(*Find(only_rerun, {"imagenet", "CoOp"})->cells[0].value, 90.0);
  EXPECT_EQ(Find(only_rerun, {"imagenet", "CoOp"})->cells[0].seeds, 1);
  EXPECT_FALSE(Find(only_rerun, {"dtd", "CoOp"})->cells[0].value.has_value());
  // `--sweep latest` reads the newest sweep, here the rerun.
  const PaperTable latest = Build("base2novel", kLatestSweepId);
  EXPECT_DOUBLE_EQ(*Find(latest, {"imagenet", "CoOp"})->cells[0].value, 90.0);
  EXPECT_EQ(Find(latest, {"imagenet", "CoOp"})->cells[0].seeds, 1);
  // Without --sweep, ImageNet's CoOp cell holds seed 1 twice: the table warns.
  const auto& notes = Build("base2novel").notes;
  EXPECT_NE(notes.back().find("several results of the same seed"), std::string::npos);
  EXPECT_EQ(Build("base2novel", first).notes.size(), 3u);
  const PaperTable seed2 = Build("base2novel", std::nullopt, {{"seed", "2"}});
  EXPECT_DOUBLE_EQ(*Find(seed2, {"imagenet", "CoOp"})->cells[1].value, 60.0);
  EXPECT_EQ(Find(seed2, {"imagenet", "CoOp"})->cells[1].seeds, 1);
}

TEST_F(PaperTablesTest, CrossDatasetAveragesTheTargetsOnly) {
  std::vector<PlannedJob> jobs;
  jobs.push_back(Transfer("cross_dataset", "coop", false, "imagenet", 1, 71));
  jobs.push_back(Transfer("cross_dataset", "coop", false, "imagenet", 2, 73));
  for (size_t k = 1; k < kDatasets.size(); ++k)
    jobs.push_back(Transfer("cross_dataset", "coop", false, kDatasets[k], 1, 50.0 + k));
  for (size_t k = 1; k + 1 < kDatasets.size(); ++k)  // ucf101 missing
    jobs.push_back(Transfer("cross_dataset", "maple", true, kDatasets[k], 1, 60));
  jobs.push_back(WithOutcome(Transfer("cross_dataset", "maple", true, "ucf101", 1, 0), Outcome::kRunning));
  db_.AddSweep("xd", jobs);
  const PaperTable t = Build("cross-dataset");
  ASSERT_EQ(t.value_columns.size(), 12u);
  EXPECT_EQ(t.value_columns.front(), "imagenet (source)");
  EXPECT_EQ(t.value_columns.back(), "average");
  ASSERT_EQ(t.rows.size(), 6u);  // CoOp, CoCoOp, MaPLe, each with +ATPrompt
  const TableRow* coop = Find(t, {"CoOp"});
  EXPECT_DOUBLE_EQ(*coop->cells[0].value, 72.0);
  EXPECT_EQ(coop->cells[0].seeds, 2);
  EXPECT_DOUBLE_EQ(*coop->cells[11].value, 55.5);  // mean of 51..60, the source excluded
  EXPECT_EQ(coop->cells[11].seeds, 1);
  EXPECT_DOUBLE_EQ(*coop->cells[11].paper, 63.88);
  const TableRow* maple = Find(t, {"MaPLe+ATPrompt"});
  EXPECT_FALSE(maple->cells[10].value.has_value());
  EXPECT_FALSE(maple->cells[11].value.has_value());
  EXPECT_EQ(maple->not_done, (std::map<std::string, int64_t>{{"running", 1}}));
  const std::string md = *FormatPaperTable(t, "md", true);
  EXPECT_EQ(Line(md, "| CoOp |").substr(0, 48), "| CoOp | 72.00 (2) | 71.51 | +0.49 | 51.00 (1) |");
  EXPECT_NE(Line(md, "| CoOp |").find("| 55.50 (1) | 63.88 | -8.38 |"), std::string::npos);
}

TEST_F(PaperTablesTest, DomainGeneralizationAveragesTheFourVariants) {
  db_.AddSweep("dg", {Transfer("domain_generalization", "coop", true, "imagenet", 1, 72),
                      Transfer("domain_generalization", "coop", true, "imagenetv2", 1, 60),
                      Transfer("domain_generalization", "coop", true, "imagenet_sketch", 1, 50),
                      Transfer("domain_generalization", "coop", true, "imagenet_a", 1, 40),
                      Transfer("domain_generalization", "coop", true, "imagenet_r", 1, 30),
                      // Another protocol's result on the same dataset stays out of this table.
                      Transfer("cross_dataset", "coop", true, "imagenet", 1, 10)});
  const PaperTable t = Build("domain-generalization");
  EXPECT_EQ(t.value_columns, (std::vector<std::string>{"imagenet (source)", "imagenetv2", "imagenet_sketch",
                                                        "imagenet_a", "imagenet_r", "average"}));
  const TableRow* row = Find(t, {"CoOp+ATPrompt"});
  EXPECT_DOUBLE_EQ(*row->cells[0].value, 72.0);
  EXPECT_DOUBLE_EQ(*row->cells[5].value, 45.0);
  EXPECT_DOUBLE_EQ(*row->cells[5].paper, 60.18);
  const std::string csv = *FormatPaperTable(t, "csv", true);
  EXPECT_EQ(Line(csv, "CoOp+ATPrompt,"),
            "CoOp+ATPrompt,72.00,1,71.67,+0.33,60.00,1,64.43,-4.43,50.00,1,49.13,+0.87,40.00,1,50.91,-10.91,30.00,1,"
            "76.24,-46.24,45.00,1,60.18,-15.18,");
  EXPECT_EQ(Line(csv, "CoOp,"), "CoOp,,0,71.51,,,0,64.20,,,0,47.99,,,0,49.71,,,0,75.21,,,0,59.28,,");
}

TEST_F(PaperTablesTest, AttributeSearchShowsCombinationAndWeights) {
  PlannedJob search{ResultJob("attribute_search", "caltech101", 1, {}, "search"), Outcome::kDone, {}, {}};
  search.outputs = {{"attributes", {"shape", "size"}},
                    {"weights", {{"shape,size", 0.6}, {"shape", 0.2}, {"color", 0.1}, {"size", 0.1}}}};
  PlannedJob other = search;
  other.spec.params["seed"] = 2;
  other.outputs = {{"attributes", {"color"}}, {"weights", {{"color", 0.9}}}};
  db_.AddSweep("search", {search, other,
                          WithOutcome({ResultJob("attribute_search", "dtd", 1, {}, "search"), Outcome::kDone, {}, {}},
                                      Outcome::kRunning)});
  const PaperTable t = Build("attribute-search");
  EXPECT_EQ(t.label_columns, (std::vector<std::string>{"dataset", "seed"}));
  const TableRow* seed1 = Find(t, {"caltech101", "1"});
  EXPECT_EQ(seed1->cells[0].text, "shape, size");
  EXPECT_EQ(seed1->cells[1].text, "shape,size 0.600; shape 0.200; color 0.100");
  EXPECT_EQ(seed1->cells[0].paper_text, "shape, size");
  EXPECT_EQ(seed1->cells[1].paper_text, "shape,size 0.565; shape 0.298; shape,material,size 0.085");
  EXPECT_EQ(Find(t, {"dtd", "—"})->not_done, (std::map<std::string, int64_t>{{"running", 1}}));
  const std::string md = *FormatPaperTable(t, "md", true);
  EXPECT_EQ(Line(md, "| caltech101 | 1 |"),
            "| caltech101 | 1 | shape, size | shape, size | same | shape,size 0.600; shape 0.200; color 0.100 | "
            "shape,size 0.565; shape 0.298; shape,material,size 0.085 | differs |  |");
  EXPECT_EQ(Line(md, "| caltech101 | 2 |").substr(0, 50), "| caltech101 | 2 | color | shape, size | differs |");
  EXPECT_EQ(Line(md, "| dtd |"), "| dtd | — | — | pattern, color, design | — | — | — | — | 1 running |");
  EXPECT_EQ(Line(md, "| eurosat |"), "| eurosat | — | — | habitat | — | — | — | — |  |");
}

TEST_F(PaperTablesTest, SoftTokenLengthRowsAndPlot) {
  db_.AddSweep("length", {Base2Novel("coop", true, "imagenet", 1, 76, 70, {{"n_ctx", 2}}),
                          Base2Novel("coop", true, "imagenet", 2, 78, 72, {{"n_ctx", 2}}),
                          Base2Novel("coop", true, "imagenet", 1, 75, 69, {{"n_ctx", 10}}),
                          Base2Novel("coop", true, "dtd", 1, 60, 50, {{"n_ctx", 16}}),
                          // Without ATPrompt, or without n_ctx, a job is not part of this ablation.
                          Base2Novel("coop", false, "imagenet", 1, 10, 10, {{"n_ctx", 2}}),
                          Base2Novel("coop", true, "imagenet", 3, 10, 10)});
  const PaperTable t = Build("figure5");
  EXPECT_EQ(t.name, "soft-token-length");
  EXPECT_EQ(t.label_columns, (std::vector<std::string>{"dataset", "method", "n_ctx"}));
  ASSERT_EQ(t.rows.size(), 6u);  // dtd/16, then the paper's five lengths on ImageNet
  EXPECT_EQ(t.rows[0].labels, (std::vector<std::string>{"dtd", "CoOp+ATPrompt", "16"}));
  std::vector<std::string> lengths;
  for (size_t i = 1; i < t.rows.size(); ++i) lengths.push_back(t.rows[i].labels[2]);
  EXPECT_EQ(lengths, (std::vector<std::string>{"1", "2", "4", "6", "10"}));
  const TableRow* two = Find(t, {"imagenet", "CoOp+ATPrompt", "2"});
  EXPECT_DOUBLE_EQ(*two->cells[0].value, 77.0);
  EXPECT_DOUBLE_EQ(*two->cells[2].value, Hm(77, 71));
  EXPECT_DOUBLE_EQ(*two->cells[2].paper, 73.33);
  EXPECT_FALSE(Find(t, {"imagenet", "CoOp+ATPrompt", "1"})->cells[0].value.has_value());
  EXPECT_DOUBLE_EQ(*Find(t, {"imagenet", "CoOp+ATPrompt", "1"})->cells[0].paper, 76.07);
  EXPECT_EQ(Line(*FormatPaperTable(t, "md", true), "| imagenet | CoOp+ATPrompt | 10 |"),
            "| imagenet | CoOp+ATPrompt | 10 | 75.00 (1) | 76.18 | -1.18 | 69.00 (1) | 69.95 | -0.95 | 71.88 (1) | 72.93 "
            "| -1.06 |");

  const std::string svg = *SoftTokenLengthSvg(t, true);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("CoOp+ATPrompt on imagenet"), std::string::npos);
  // Ours: Base, Novel and HM over lengths 2 and 10; the paper's, dashed, over all five.
  size_t solid = 0, dashed = 0;
  for (size_t at = svg.find("<path"); at != std::string::npos; at = svg.find("<path", at + 1))
    (svg.substr(at, svg.find('>', at) - at).find("dasharray") != std::string::npos ? dashed : solid)++;
  EXPECT_EQ(solid, 3u);
  EXPECT_EQ(dashed, 3u);
  EXPECT_EQ(SoftTokenLengthSvg(Build("base2novel"), false).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(PaperTablesTest, ClassTokenPositionAndAttributeOrder) {
  db_.AddSweep("ablations", {Base2Novel("coop", true, "imagenet", 1, 76, 70, {{"class_position", "front"}}),
                             Base2Novel("coop", true, "imagenet", 1, 76, 70,
                                        {{"attributes", {"material", "function"}}}),
                             Base2Novel("coop", true, "imagenet", 1, 77, 71, {{"attributes", {"color", "shape"}}})});
  const PaperTable position = Build("class-token-position");
  ASSERT_EQ(position.rows.size(), 3u);
  EXPECT_EQ(position.rows[0].labels[2], "front");
  EXPECT_EQ(position.rows[2].labels[2], "end");
  EXPECT_DOUBLE_EQ(*position.rows[0].cells[0].value, 76.0);
  EXPECT_DOUBLE_EQ(*position.rows[0].cells[0].paper, 76.12);
  EXPECT_FALSE(position.rows[1].cells[0].value.has_value());
  EXPECT_DOUBLE_EQ(*position.rows[2].cells[2].paper, 73.33);

  const PaperTable order = Build("table7");
  std::vector<std::string> lists;
  for (const auto& row : order.rows) lists.push_back(row.labels[2]);
  EXPECT_EQ(lists, (std::vector<std::string>{"(shape,color)", "(color,shape)", "(size,habitat)", "(habitat,size)",
                                             "(material,function)"}));
  EXPECT_DOUBLE_EQ(*order.rows[1].cells[0].value, 77.0);
  EXPECT_DOUBLE_EQ(*order.rows[1].cells[0].paper, 76.27);
  EXPECT_DOUBLE_EQ(*order.rows[4].cells[0].paper, 76.40);  // from the supplementary table
  EXPECT_EQ(Line(*FormatPaperTable(order, "csv", false), "imagenet,CoOp+ATPrompt,\"(color,shape)\""),
            "imagenet,CoOp+ATPrompt,\"(color,shape)\",77.00,1,71.00,1,73.88,1,");
}

TEST_F(PaperTablesTest, AttributeSourceSeparatesSearchedFromManual) {
  std::vector<PlannedJob> jobs;
  for (const auto& dataset : kDatasets) {
    PlannedJob search{ResultJob("attribute_search", dataset, 1, {}, "search"), Outcome::kDone, {}, {}};
    search.outputs = {{"attributes", {"shape"}}, {"weights", {{"shape", 1.0}}}};
    PlannedJob train = Base2Novel("coop", true, dataset, 1, 80, 70, {{"attributes", {"shape"}}});
    train.spec.upstream = {search.spec.Key()};
    jobs.push_back(search);
    jobs.push_back(train);
  }
  jobs.push_back(Base2Novel("coop", true, "imagenet", 1, 70, 60, {{"attributes", {"shape", "size"}}}));
  jobs.push_back(Base2Novel("coop", true, "dtd", 1, 70, 60, {{"attributes", {"shape", "size"}}}));
  db_.AddSweep("source", jobs);
  const PaperTable t = Build("attribute-source");
  EXPECT_EQ(t.label_columns, (std::vector<std::string>{"method", "attributes", "datasets"}));
  ASSERT_EQ(t.rows.size(), 5u);
  EXPECT_EQ(t.rows[0].labels, (std::vector<std::string>{"CoOp+ATPrompt", "searched", "11/11"}));
  EXPECT_DOUBLE_EQ(*t.rows[0].cells[0].value, 80.0);
  EXPECT_DOUBLE_EQ(*t.rows[0].cells[2].value, Hm(80, 70));
  EXPECT_DOUBLE_EQ(*t.rows[0].cells[2].paper, 74.65);
  EXPECT_EQ(t.rows[1].labels, (std::vector<std::string>{"CoOp+ATPrompt", "(shape,size)", "2/11"}));
  EXPECT_FALSE(t.rows[1].cells[0].value.has_value());  // two datasets are not the paper's average
  EXPECT_DOUBLE_EQ(*t.rows[1].cells[0].paper, 82.83);
  EXPECT_EQ(t.rows[4].labels[2], "0/11");
}

TEST_F(PaperTablesTest, BadInputIsInvalidArgument) {
  reader_ = db_.Reader();
  TableOptions options;
  options.name = "table99";
  auto unknown = BuildPaperTable(reader_->handle(), options);
  ASSERT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("base2novel, cross-dataset"), std::string::npos);
  options.name = "base2novel";
  options.sweep_id = 42;
  EXPECT_EQ(BuildPaperTable(reader_->handle(), options).status().code(), StatusCode::kNotFound);
  options.sweep_id = kLatestSweepId;  // a database that holds no sweep has no latest one
  auto no_sweep = BuildPaperTable(reader_->handle(), options);
  ASSERT_EQ(no_sweep.status().code(), StatusCode::kNotFound);
  EXPECT_NE(no_sweep.status().message().find("no sweep in the database"), std::string::npos);
  options.sweep_id.reset();
  options.filters = {{"bad key", "1"}};
  EXPECT_EQ(BuildPaperTable(reader_->handle(), options).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FormatPaperTable(PaperTable{}, "html", false).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(PaperTablesTest, JsonCarriesValuesSeedsAndPaper) {
  AddBase2Novel();
  const Json json = Build("base2novel").ToJson();
  EXPECT_EQ(json["table"], "base2novel");
  const Json& row = json["rows"][8];
  EXPECT_EQ(row["labels"], Json({"imagenet", "CoOp"}));
  EXPECT_DOUBLE_EQ(row["cells"][0]["value"].get<double>(), 80.0);
  EXPECT_EQ(row["cells"][0]["seeds"], 3);
  EXPECT_DOUBLE_EQ(row["cells"][0]["paper"].get<double>(), 76.47);
  EXPECT_NEAR(row["cells"][0]["diff"].get<double>(), 3.53, 1e-9);
  EXPECT_TRUE(json["rows"][1]["cells"][0]["value"].is_null());
}

TEST(PaperFiguresTest, HoldsThePublishedTables) {
  EXPECT_EQ(PaperFigures().size(), 742u);
  EXPECT_EQ(PaperAttributes().size(), 11u);
  EXPECT_DOUBLE_EQ(*FindPaperFigure("base2novel", "CoOp", false, "imagenet", "base"), 76.47);
  EXPECT_DOUBLE_EQ(*FindPaperFigure("base2novel", "PromptKD", true, "average", "hm"), 84.35);
  EXPECT_DOUBLE_EQ(*FindPaperFigure("cross_dataset", "MaPLe", true, "average", "acc"), 66.75);
  EXPECT_FALSE(FindPaperFigure("base2novel", "CoOp", false, "imagenet", "acc").has_value());
  EXPECT_EQ(PaperMethodName("cocoop"), "CoCoOp");
  EXPECT_EQ(PaperMethodName("newmethod"), "newmethod");
}

}  // namespace
}  // namespace atp
