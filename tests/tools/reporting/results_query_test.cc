#include "tools/reporting/results_query.h"

#include <gtest/gtest.h>

#include "tests/support/status_matchers.h"
#include "tests/tools/reporting/results_test_util.h"

namespace atp {
namespace {

PlannedJob Accuracy(const std::string& method, const std::string& dataset, int seed, double accuracy,
                    Json extra = Json::object()) {
  return {ResultJob(method, dataset, seed, extra), Outcome::kDone, {{"accuracy", accuracy}, {"loss", 0.5}}, {}};
}

class ResultsQueryTest : public ::testing::Test {
 protected:
  // coop on eurosat with n_ctx 4: seeds 1-3 done (70, 72, 74), seed 4 failed, seed 5 running;
  // coop on eurosat with n_ctx 8: seed 1 done (80); cocoop on dtd: seed 1 pending.
  void SetUp() override {
    sweep_ = db_.AddSweep("main", {Accuracy("coop", "eurosat", 1, 70, {{"n_ctx", 4}}),
                                   Accuracy("coop", "eurosat", 2, 72, {{"n_ctx", 4}}),
                                   Accuracy("coop", "eurosat", 3, 74, {{"n_ctx", 4}}),
                                   WithOutcome(Accuracy("coop", "eurosat", 4, 0, {{"n_ctx", 4}}), Outcome::kFailed),
                                   WithOutcome(Accuracy("coop", "eurosat", 5, 0, {{"n_ctx", 4}}), Outcome::kRunning),
                                   Accuracy("coop", "eurosat", 1, 80, {{"n_ctx", 8}}),
                                   WithOutcome(Accuracy("cocoop", "dtd", 1, 0, {{"n_ctx", 4}}), Outcome::kPending)});
    reader_ = db_.Reader();
  }

  QueryResult Run(QueryOptions options) {
    auto result = RunResultsQuery(reader_->handle(), options);
    EXPECT_OK(result);
    return result.ok() ? *result : QueryResult{};
  }

  ResultsDb db_;
  int64_t sweep_ = 0;
  std::unique_ptr<StoreReader> reader_;
};

TEST_F(ResultsQueryTest, DefaultGroupingAggregatesEachConfigurationOverSeeds) {
  QueryOptions options;
  options.metric = "accuracy";
  const QueryResult r = Run(options);
  // n_ctx differs between groups, so it is a column; the seed is aggregated away.
  EXPECT_EQ(r.group_columns, (std::vector<std::string>{"stage", "method", "dataset", "n_ctx"}));
  ASSERT_EQ(r.rows.size(), 3u);
  // Ordered by group: cocoop/dtd, coop/eurosat/4, coop/eurosat/8.
  const QueryRow& pending = r.rows[0];
  EXPECT_EQ(pending.group, (std::vector<std::string>{"eval", "cocoop", "dtd", "4"}));
  EXPECT_EQ(pending.metric, "");
  EXPECT_FALSE(pending.mean.has_value());
  EXPECT_EQ(pending.states, (std::map<std::string, int64_t>{{"pending", 1}}));

  const QueryRow& four = r.rows[1];
  EXPECT_EQ(four.group, (std::vector<std::string>{"eval", "coop", "eurosat", "4"}));
  EXPECT_EQ(four.metric, "accuracy");
  EXPECT_DOUBLE_EQ(*four.mean, 72.0);
  EXPECT_DOUBLE_EQ(*four.std, 2.0);  // sample standard deviation of 70, 72, 74
  EXPECT_EQ(four.n, 3);
  EXPECT_EQ(four.seeds, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(four.states, (std::map<std::string, int64_t>{{"done", 3}, {"failed", 1}, {"running", 1}}));

  const QueryRow& eight = r.rows[2];
  EXPECT_DOUBLE_EQ(*eight.mean, 80.0);
  EXPECT_FALSE(eight.std.has_value());  // one seed: no spread to report
  EXPECT_EQ(eight.n, 1);
}

TEST_F(ResultsQueryTest, EveryMetricWithoutMetricFlag) {
  QueryOptions options;
  options.filters = {{"n_ctx", "8"}};
  const QueryResult r = Run(options);
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0].metric, "accuracy");
  EXPECT_EQ(r.rows[1].metric, "loss");
  EXPECT_DOUBLE_EQ(*r.rows[1].mean, 0.5);
}

TEST_F(ResultsQueryTest, WhereFiltersOnParametersColumnsAndState) {
  QueryOptions options;
  options.metric = "accuracy";
  options.group_by = {"method", "seed"};
  options.filters = {{"n_ctx", "4"}, {"dataset", "eurosat"}};
  QueryResult r = Run(options);
  ASSERT_EQ(r.rows.size(), 5u);  // seeds 1-5 of the n_ctx=4 configuration
  EXPECT_EQ(r.rows[3].group, (std::vector<std::string>{"coop", "4"}));
  EXPECT_EQ(r.rows[3].states, (std::map<std::string, int64_t>{{"failed", 1}}));

  options.filters = {{"state", "failed"}};
  r = Run(options);
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0].group, (std::vector<std::string>{"coop", "4"}));
  EXPECT_EQ(r.rows[0].n, 0);

  options.filters = {{"params.n_ctx", "9"}};
  EXPECT_TRUE(Run(options).rows.empty());
}

// Job specs hold the recipe's effective values, so a query finds jobs by the lr that ran.
TEST_F(ResultsQueryTest, WhereMatchesTheEffectiveFloatParameters) {
  db_.AddSweep("recipes", {Accuracy("coop", "dtd", 1, 70, {{"lr", 0.002}, {"epochs", 200}}),
                           Accuracy("coop", "dtd", 2, 40, {{"lr", 0.0035}, {"epochs", 200}})});
  QueryOptions options;
  options.metric = "accuracy";
  options.group_by = {"method", "lr"};
  options.filters = {{"lr", "0.002"}};
  const QueryResult r = Run(options);
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0].group, (std::vector<std::string>{"coop", "0.002"}));
  EXPECT_DOUBLE_EQ(*r.rows[0].mean, 70.0);
}

TEST_F(ResultsQueryTest, WhereMatchesBooleanAndStringParameters) {
  db_.AddSweep("flags", {Accuracy("maple", "dtd", 1, 60, {{"atprompt", true}, {"shots", "16"}}),
                         Accuracy("maple", "dtd", 2, 50, {{"atprompt", false}, {"shots", "16"}})});
  QueryOptions options;
  options.metric = "accuracy";
  options.group_by = {"method", "atprompt"};
  options.filters = {{"atprompt", "true"}, {"shots", "16"}};
  const QueryResult r = Run(options);
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0].group, (std::vector<std::string>{"maple", "true"}));
  EXPECT_DOUBLE_EQ(*r.rows[0].mean, 60.0);
}

TEST_F(ResultsQueryTest, SweepRestrictsToItsJobs) {
  const int64_t other = db_.AddSweep("other", {Accuracy("coop", "eurosat", 1, 70, {{"n_ctx", 4}}),
                                               Accuracy("maple", "eurosat", 1, 90)});
  QueryOptions options;
  options.metric = "accuracy";
  options.group_by = {"method"};
  options.sweep_id = other;
  QueryResult r = Run(options);
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0].group[0], "coop");
  EXPECT_EQ(r.rows[0].n, 1);  // shared with "main", but only one of coop's jobs is in "other"
  EXPECT_EQ(r.rows[1].group[0], "maple");

  options.sweep_id = sweep_;
  r = Run(options);
  ASSERT_EQ(r.rows.size(), 2u);  // cocoop (pending) and coop
  EXPECT_EQ(r.rows[1].n, 4);

  options.sweep_id = 999;
  auto missing = RunResultsQuery(reader_->handle(), options);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST_F(ResultsQueryTest, FormatsTableCsvAndJson) {
  QueryOptions options;
  options.metric = "accuracy";
  options.group_by = {"method", "dataset"};
  const QueryResult r = Run(options);
  const std::string table = *FormatQueryResult(r, "table");
  EXPECT_EQ(table,
            "method  dataset  metric    mean   std   n  seeds  jobs\n"
            "cocoop  dtd      —         —      —     0         1 pending\n"
            "coop    eurosat  accuracy  74.00  4.32  4  1,1-3  4 done, 1 running, 1 failed\n");
  const std::string csv = *FormatQueryResult(r, "csv");
  EXPECT_EQ(csv,
            "method,dataset,metric,mean,std,n,seeds,jobs\n"
            "cocoop,dtd,,,,0,,1 pending\n"
            "coop,eurosat,accuracy,74.00,4.32,4,\"1,1-3\",\"4 done, 1 running, 1 failed\"\n");
  const Json json = Json::parse(*FormatQueryResult(r, "json"));
  EXPECT_EQ(json["group_by"], Json({"method", "dataset"}));
  EXPECT_EQ(json["rows"][1]["group"]["dataset"], "eurosat");
  EXPECT_DOUBLE_EQ(json["rows"][1]["mean"].get<double>(), 74.0);
  EXPECT_EQ(json["rows"][1]["seeds"], Json({1, 1, 2, 3}));  // n_ctx 4 and 8 both ran seed 1
  EXPECT_EQ(json["rows"][1]["states"]["failed"], 1);
  EXPECT_TRUE(json["rows"][0]["mean"].is_null());
}

TEST_F(ResultsQueryTest, NumbersSortAsNumbersAndSeedRunsAreShortened) {
  std::vector<PlannedJob> jobs;
  for (int seed : {1, 2, 3, 4, 5, 7}) jobs.push_back(Accuracy("maple", "ucf101", seed, 50, {{"n_ctx", 10}}));
  jobs.push_back(Accuracy("maple", "ucf101", 1, 40, {{"n_ctx", 2}}));
  jobs.push_back(Accuracy("maple", "ucf101", 2, 40, {{"n_ctx", 2}}));
  db_.AddSweep("lengths", jobs);
  QueryOptions options;
  options.metric = "accuracy";
  options.group_by = {"n_ctx"};
  options.filters = {{"method", "maple"}};
  const QueryResult r = Run(options);
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0].group[0], "2");
  EXPECT_EQ(r.rows[1].group[0], "10");
  const std::string csv = *FormatQueryResult(r, "csv");
  EXPECT_NE(csv.find("\n2,accuracy,40.00,0.00,2,\"1,2\",2 done\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\n10,accuracy,50.00,0.00,6,\"1-5,7\",6 done\n"), std::string::npos) << csv;
}

TEST(ResultFilterTest, RejectsMalformedInput) {
  EXPECT_EQ(ParseResultFilter("dataset").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseResultFilter("=eurosat").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseResultFilter("data set=x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseResultFilter("n_ctx');DROP=1").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseResultFilter("state=finished").status().code(), StatusCode::kInvalidArgument);
  auto ok = ParseResultFilter("class_position=front=x");
  ASSERT_OK(ok);
  EXPECT_EQ(ok->key, "class_position");
  EXPECT_EQ(ok->value, "front=x");  // only the first '=' separates
  EXPECT_EQ(FormatQueryResult(QueryResult{}, "xml").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ResultsQueryTest, BadGroupKeyIsInvalidArgument) {
  QueryOptions options;
  options.group_by = {"seed; DROP TABLE jobs"};
  EXPECT_EQ(RunResultsQuery(reader_->handle(), options).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace atp
