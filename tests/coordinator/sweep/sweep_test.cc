#include "coordinator/sweep/sweep.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "common/dataset_catalog.h"
#include "common/method_catalog.h"
#include "tests/support/status_matchers.h"

namespace atp {
namespace {

constexpr char kSource[] = "test.toml";

class SweepTest : public ::testing::Test {
 protected:
  static Sweep Parse(const std::string& text) {
    Result<Sweep> sweep = ParseSweep(text, kSource);
    EXPECT_OK(sweep);
    return sweep.ok() ? std::move(sweep).value() : Sweep();
  }

  // The 1-based line of the first line of `text` containing `marker`.
  static int LineWith(const std::string& text, const std::string& marker) {
    std::istringstream lines(text);
    std::string line;
    for (int number = 1; std::getline(lines, line); ++number) {
      if (line.find(marker) != std::string::npos) return number;
    }
    ADD_FAILURE() << "marker not found: " << marker;
    return -1;
  }

  // Expects ParseSweep to fail with InvalidArgument at the line holding `marker`, with a
  // message containing every one of `fragments`.
  static void ExpectError(const std::string& text, const std::string& marker,
                          const std::vector<std::string>& fragments) {
    Result<Sweep> sweep = ParseSweep(text, kSource);
    ASSERT_FALSE(sweep.ok()) << "expected an error at '" << marker << "'";
    EXPECT_EQ(sweep.status().code(), StatusCode::kInvalidArgument);
    const std::string& message = sweep.status().message();
    std::string location = std::string(kSource) + ":" + std::to_string(LineWith(text, marker)) + ":";
    EXPECT_EQ(message.rfind(location, 0), 0u) << "message does not start with " << location << ": " << message;
    for (const auto& fragment : fragments) {
      EXPECT_NE(message.find(fragment), std::string::npos) << "missing '" << fragment << "' in: " << message;
    }
  }

  static std::vector<const JobSpec*> JobsOf(const Sweep& sweep, const std::string& stage) {
    std::vector<const JobSpec*> jobs;
    for (const auto& job : sweep.jobs) {
      if (job.stage == stage) jobs.push_back(&job);
    }
    return jobs;
  }

  static const char* Header() { return "[sweep]\nname = \"t\"\ncode_version = \"1\"\n"; }
};

// --- expansion -----------------------------------------------------------------------------

TEST_F(SweepTest, GlobalAxesSpanACartesianProductPerStage) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[axes]
dataset = ["caltech101", "oxford_pets"]
seed = [1, 2, 3]

[[stage]]
name = "work"
method = "sleep"
params = { seconds = 2 }
)toml");
  ASSERT_EQ(sweep.jobs.size(), 6u);
  EXPECT_EQ(sweep.name, "t");
  EXPECT_EQ(sweep.code_version, "1");
  std::set<std::pair<std::string, long long>> points;
  for (const auto& job : sweep.jobs) {
    EXPECT_EQ(job.stage, "work");
    EXPECT_EQ(job.method, "sleep");
    EXPECT_EQ(job.code_version, "1");
    points.insert({job.dataset(), job.seed()});
  }
  EXPECT_EQ(points.size(), 6u);
  // The last axis varies fastest.
  EXPECT_EQ(sweep.jobs[0].dataset(), "caltech101");
  EXPECT_EQ(sweep.jobs[0].seed(), 1);
  EXPECT_EQ(sweep.jobs[1].seed(), 2);
  EXPECT_EQ(sweep.jobs[3].dataset(), "oxford_pets");
}

TEST_F(SweepTest, AxesExpandInTheOrderWrittenWithTheLastVaryingFastest) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[axes]
seed = [1, 2]
dataset = ["dtd", "eurosat"]

[[stage]]
name = "work"
method = "sleep"
[stage.axes]
value = [1]
steps = [3, 4]
)toml");
  ASSERT_EQ(sweep.jobs.size(), 8u);
  std::vector<std::string> order;
  for (const auto& job : sweep.jobs) {
    order.push_back(std::to_string(job.seed()) + job.dataset() + std::to_string(job.params["steps"].get<int>()));
  }
  std::vector<std::string> expected = {"1dtd3", "1dtd4", "1eurosat3", "1eurosat4",
                                       "2dtd3", "2dtd4", "2eurosat3", "2eurosat4"};
  EXPECT_EQ(order, expected);
}

TEST_F(SweepTest, ParamsAreResolvedThroughTheMethodCatalog) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[[stage]]
name = "work"
method = "sleep"
params = { seconds = 2 }
)toml");
  ASSERT_EQ(sweep.jobs.size(), 1u);
  Result<Json> expected = ResolveMethodParams(*FindMethod("sleep"), Json{{"seconds", 2.0}});
  ASSERT_OK(expected);
  EXPECT_EQ(sweep.jobs[0].params, *expected);
  EXPECT_TRUE(sweep.jobs[0].params["seconds"].is_number_float()) << "integers given for float parameters become floats";
  EXPECT_EQ(sweep.jobs[0].params["steps"], 10) << "defaults are filled";
}

TEST_F(SweepTest, IntegerAndFloatSpellingsGiveTheSameKey) {
  auto key_for = [](const std::string& seconds) {
    Sweep sweep = Parse(std::string(Header()) +
                        "[[stage]]\nname = \"w\"\nmethod = \"sleep\"\nparams = { seconds = " + seconds + " }\n");
    return sweep.jobs.empty() ? std::string() : sweep.jobs[0].Key();
  };
  EXPECT_EQ(key_for("2"), key_for("2.0"));
  EXPECT_NE(key_for("2"), key_for("3"));
}

TEST_F(SweepTest, ParameterLayersApplyInOrderSweepStageAxisOverride) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[params]
seconds = 1
steps = 3
value = 0.5

[[stage]]
name = "work"
method = "sleep"
params = { steps = 4, value = 0.25 }
[stage.axes]
value = [7, 8]

[[override]]
when = { value = 8 }
set = { steps = 9 }
)toml");
  ASSERT_EQ(sweep.jobs.size(), 2u);
  EXPECT_EQ(sweep.jobs[0].params["seconds"], 1.0);  // [params]
  EXPECT_EQ(sweep.jobs[0].params["steps"], 4);      // stage params win over [params]
  EXPECT_EQ(sweep.jobs[0].params["value"], 7.0);    // the axis wins over both
  EXPECT_EQ(sweep.jobs[1].params["value"], 8.0);
  EXPECT_EQ(sweep.jobs[1].params["steps"], 9);  // the override wins over all
}

TEST_F(SweepTest, OverStagesSpanOnlyTheNamedGlobalAxes) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[axes]
dataset = ["dtd", "eurosat"]
seed = [1, 2, 3]

[[stage]]
name = "search"
method = "sleep"
over = ["dataset"]

[[stage]]
name = "train"
method = "sleep"
)toml");
  auto search = JobsOf(sweep, "search");
  ASSERT_EQ(search.size(), 2u);
  EXPECT_EQ(search[0]->seed(), 1) << "an axis a stage does not span takes the catalog default";
  EXPECT_EQ(JobsOf(sweep, "train").size(), 6u) << "without over, a stage spans every global axis";
}

TEST_F(SweepTest, GlobalAxisThatNoStageSpansIsAWarning) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[axes]
seed = [1, 2]
steps = [1, 2]

[[stage]]
name = "work"
method = "sleep"
over = ["seed"]
)toml");
  EXPECT_EQ(sweep.jobs.size(), 2u);
  ASSERT_EQ(sweep.warnings.size(), 1u);
  EXPECT_EQ(sweep.warnings[0], "test.toml:7: global axis 'steps' is spanned by no stage (see `over`)");
  EXPECT_NE(FormatDryRun(sweep).find("warning: test.toml:7: global axis 'steps'"), std::string::npos);
}

TEST_F(SweepTest, StageAxesAddToAndReplaceGlobalAxes) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[axes]
dataset = ["dtd", "eurosat", "ucf101"]
seed = [1, 2]

[[stage]]
name = "train"
method = "sleep"
[stage.axes]
dataset = ["imagenet"]
steps = [5, 10]
)toml");
  ASSERT_EQ(sweep.jobs.size(), 4u);  // imagenet x 2 seeds x 2 steps
  for (const auto& job : sweep.jobs) EXPECT_EQ(job.dataset(), "imagenet");
}

TEST_F(SweepTest, StageWithoutAxesHasOneJob) {
  Sweep sweep = Parse(std::string(Header()) + "[[stage]]\nname = \"once\"\nmethod = [\"sleep\"]\n");
  ASSERT_EQ(sweep.jobs.size(), 1u);
  EXPECT_EQ(sweep.stages[0].method_summary, "sleep");
}

TEST_F(SweepTest, DependsOnLinksJobsThatShareTheMatchedValues) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[axes]
dataset = ["dtd", "eurosat"]
seed = [1, 2, 3]

[[stage]]
name = "search"
method = "sleep"
over = ["dataset"]

[[stage]]
name = "train"
method = "sleep"
depends_on = [{ stage = "search", match = ["dataset"] }]

[[stage]]
name = "report"
method = "sleep"
over = []
depends_on = [{ stage = "train", match = [] }]
)toml");
  std::map<std::string, std::string> search_key_by_dataset;
  for (const auto* job : JobsOf(sweep, "search")) search_key_by_dataset[job->dataset()] = job->Key();
  auto train = JobsOf(sweep, "train");
  ASSERT_EQ(train.size(), 6u);
  for (const auto* job : train) {
    EXPECT_EQ(job->upstream, std::vector<std::string>{search_key_by_dataset[job->dataset()]});
  }
  auto report = JobsOf(sweep, "report");
  ASSERT_EQ(report.size(), 1u);
  std::vector<std::string> train_keys;
  for (const auto* job : train) train_keys.push_back(job->Key());
  std::sort(train_keys.begin(), train_keys.end());
  EXPECT_EQ(report[0]->upstream, train_keys) << "match = [] depends on every upstream job, keys sorted";
  ASSERT_EQ(sweep.stages.size(), 3u);
  EXPECT_EQ(sweep.stages[2].depends_on, std::vector<std::string>{"train"});
}

TEST_F(SweepTest, UpstreamJobsComeFirstWhateverTheFileOrder) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[axes]
seed = [1, 2]

[[stage]]
name = "eval"
method = "sleep"
depends_on = [{ stage = "train", match = ["seed"] }]

[[stage]]
name = "train"
method = "sleep"
depends_on = [{ stage = "prepare", match = [] }]

[[stage]]
name = "prepare"
method = "sleep"
over = []
)toml");
  ASSERT_EQ(sweep.stages.size(), 3u);
  EXPECT_EQ(sweep.stages[0].name, "prepare");
  EXPECT_EQ(sweep.stages[1].name, "train");
  EXPECT_EQ(sweep.stages[2].name, "eval");
  std::set<std::string> seen;
  for (const auto& job : sweep.jobs) {
    for (const auto& upstream : job.upstream) EXPECT_TRUE(seen.count(upstream)) << job.stage << " before its upstream";
    seen.insert(job.Key());
  }
  EXPECT_EQ(seen.size(), 5u);
}

TEST_F(SweepTest, DependencyMatchingNoUpstreamJobNamesStageAndValues) {
  std::string text = std::string(Header()) + R"toml(
[[stage]]
name = "search"
method = "sleep"
axes = { dataset = ["dtd"] }

[[stage]]
name = "train"
method = "sleep"
axes = { dataset = ["dtd", "eurosat"] }
depends_on = [{ stage = "search", match = ["dataset"] }]
)toml";
  ExpectError(text, "depends_on = [{ stage = \"search\"", {"stage \"train\"", "dataset=eurosat", "stage \"search\""});
}

TEST_F(SweepTest, OverridesMatchAnyOfListedValuesAndLaterOnesWin) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[axes]
dataset = ["dtd", "eurosat", "ucf101"]

[[stage]]
name = "train"
method = "sleep"
params = { steps = 1 }

[[override]]
when = { dataset = ["dtd", "eurosat"] }
set = { steps = 2, value = 1 }

[[override]]
when = { dataset = "eurosat", method = "sleep" }
set = { steps = 3 }
)toml");
  std::map<std::string, const JobSpec*> by_dataset;
  for (const auto& job : sweep.jobs) by_dataset[job.dataset()] = &job;
  EXPECT_EQ(by_dataset["dtd"]->params["steps"], 2);
  EXPECT_EQ(by_dataset["eurosat"]->params["steps"], 3);
  EXPECT_EQ(by_dataset["eurosat"]->params["value"], 1.0);
  EXPECT_EQ(by_dataset["ucf101"]->params["steps"], 1);
  EXPECT_TRUE(sweep.warnings.empty());
}

TEST_F(SweepTest, OverridesSeeTheJobBeforeAnyOverride) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[[stage]]
name = "train"
method = "sleep"

[[override]]
set = { steps = 2 }

[[override]]
when = { steps = 2 }
set = { value = 9 }
)toml");
  ASSERT_EQ(sweep.jobs.size(), 1u);
  EXPECT_EQ(sweep.jobs[0].params["steps"], 2);
  EXPECT_EQ(sweep.jobs[0].params["value"], 0.0) << "rules do not chain";
  ASSERT_EQ(sweep.warnings.size(), 1u);
  EXPECT_NE(sweep.warnings[0].find("override #2 matches no job"), std::string::npos);
}

TEST_F(SweepTest, OverrideCanBeRestrictedToStagesAndSetExecution) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[axes]
dataset = ["imagenet", "dtd"]

[[stage]]
name = "train"
method = "sleep"
ranks = 1
expected_seconds = 10

[[stage]]
name = "eval"
method = "sleep"
depends_on = [{ stage = "train", match = ["dataset"] }]

[[override]]
stage = "train"
when = { dataset = "imagenet" }
set = { seconds = 5 }
ranks = 4
expected_seconds = 300
hang_timeout_s = 900
)toml");
  for (const auto& job : sweep.jobs) {
    bool changed = job.stage == "train" && job.dataset() == "imagenet";
    EXPECT_EQ(job.params["seconds"], changed ? 5.0 : 1.0) << job.stage << " " << job.dataset();
    EXPECT_EQ(job.ranks, changed ? 4 : 1);
    EXPECT_EQ(job.expected_seconds, changed ? 300 : (job.stage == "train" ? 10 : 0));
    EXPECT_EQ(job.hang_timeout_s, changed ? 900 : 300);
  }
}

TEST_F(SweepTest, ExecutionSettingsAreNotPartOfTheKey) {
  auto keys_for = [](const std::string& execution) {
    Sweep sweep = Parse(std::string(Header()) +
                        "[retry]\nmax_attempts = 5\n[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n" + execution);
    return sweep.jobs.empty() ? std::string() : sweep.jobs[0].Key();
  };
  EXPECT_EQ(keys_for(""), keys_for("ranks = 8\nhang_timeout_s = 5\nexpected_seconds = 3\n"));
}

TEST_F(SweepTest, CodeVersionIsPartOfTheKey) {
  Sweep v1 = Parse("[sweep]\nname = \"t\"\ncode_version = \"1\"\n[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n");
  Sweep v2 = Parse("[sweep]\nname = \"t\"\ncode_version = \"2\"\n[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n");
  ASSERT_EQ(v1.jobs.size(), 1u);
  ASSERT_EQ(v2.jobs.size(), 1u);
  EXPECT_NE(v1.jobs[0].Key(), v2.jobs[0].Key());
}

TEST_F(SweepTest, RetryPolicyIsGlobalWithStageOverrides) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[retry]
max_attempts = 4
max_lost = 1
oom = { retry = false }
crash = { counts_attempt = false }

[[stage]]
name = "a"
method = "sleep"

[[stage]]
name = "b"
method = "sleep"
retry = { max_attempts = 1, oom = { retry = true } }
)toml");
  ASSERT_EQ(sweep.jobs.size(), 2u);
  const RetryPolicy& a = sweep.jobs[0].retry;
  EXPECT_EQ(a.max_attempts, 4);
  EXPECT_EQ(a.max_lost, 1);
  EXPECT_FALSE(a.rule(FailureClass::kOutOfMemory).retry);
  EXPECT_TRUE(a.rule(FailureClass::kOutOfMemory).counts_attempt);
  EXPECT_FALSE(a.rule(FailureClass::kCrash).counts_attempt);
  EXPECT_FALSE(a.rule(FailureClass::kDiverged).retry) << "unnamed classes keep their defaults";
  const RetryPolicy& b = sweep.jobs[1].retry;
  EXPECT_EQ(b.max_attempts, 1);
  EXPECT_EQ(b.max_lost, 1);
  EXPECT_TRUE(b.rule(FailureClass::kOutOfMemory).retry);
  EXPECT_FALSE(b.rule(FailureClass::kCrash).counts_attempt);
}

TEST_F(SweepTest, ExcludeDropsPointsAndCountsThem) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[axes]
dataset = ["dtd", "eurosat"]
seed = [1, 2, 3]

[[stage]]
name = "train"
method = "sleep"

[[stage]]
name = "eval"
method = "sleep"
depends_on = [{ stage = "train", match = ["dataset", "seed"] }]

[[exclude]]
dataset = "eurosat"
seed = [2, 3]

[[exclude]]
stage = "eval"
seed = 1

[[exclude]]
dataset = "ucf101"
)toml");
  EXPECT_EQ(JobsOf(sweep, "train").size(), 4u);
  EXPECT_EQ(JobsOf(sweep, "eval").size(), 2u);
  ASSERT_EQ(sweep.stages.size(), 2u);
  EXPECT_EQ(sweep.stages[0].excluded_points, 2);
  EXPECT_EQ(sweep.stages[1].excluded_points, 4);
  for (const auto& job : sweep.jobs) EXPECT_FALSE(job.dataset() == "eurosat" && job.seed() != 1);
  ASSERT_EQ(sweep.warnings.size(), 1u);
  EXPECT_NE(sweep.warnings[0].find("exclude #3 matches no point"), std::string::npos);
}

TEST_F(SweepTest, IncludeAddsPointsAndMergesRepeatedOnes) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[axes]
dataset = ["dtd"]
seed = [1, 2]

[[stage]]
name = "train"
method = "sleep"

[[exclude]]
seed = 2

[[include]]
stage = "train"
dataset = ["dtd", "eurosat"]
seed = 7

[[include]]
stage = "train"
method = "sleep"
dataset = "dtd"
seed = [1, 2]
)toml");
  std::set<std::pair<std::string, long long>> points;
  for (const auto& job : sweep.jobs) points.insert({job.dataset(), job.seed()});
  std::set<std::pair<std::string, long long>> expected = {{"dtd", 1}, {"dtd", 7}, {"eurosat", 7}, {"dtd", 2}};
  EXPECT_EQ(points, expected) << "includes are not subject to excludes";
  ASSERT_EQ(sweep.jobs.size(), 4u);
  EXPECT_EQ(sweep.stages[0].excluded_points, 1);
  EXPECT_EQ(sweep.stages[0].merged_points, 1) << "the included dtd/1 repeats a product point";
}

TEST_F(SweepTest, PointsCollapsingToOneKeyAreMergedAndCounted) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[[stage]]
name = "work"
method = "sleep"
[stage.axes]
seconds = [1, 2, 3]
steps = [4, 5]

[[override]]
when = { seconds = [2, 3] }
set = { seconds = 1 }
)toml");
  EXPECT_EQ(sweep.jobs.size(), 2u);
  EXPECT_EQ(sweep.stages[0].merged_points, 4);
  std::string dry_run = FormatDryRun(sweep);
  EXPECT_NE(dry_run.find("merged"), std::string::npos);
}

TEST_F(SweepTest, ListParameterValuesAndStringChoicesAreTypeChecked) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[[stage]]
name = "faults"
method = "sleep"
axes = { fail = ["", "throw", "nan"] }
params = { fail_attempts = 1 }
)toml");
  ASSERT_EQ(sweep.jobs.size(), 3u);
  EXPECT_EQ(sweep.jobs[1].params["fail"], "throw");
}

TEST_F(SweepTest, ExpandsAHundredThousandJobs) {
  std::string seeds, steps;
  for (int i = 1; i <= 100; ++i) seeds += (i > 1 ? ", " : "") + std::to_string(i);
  for (int i = 1; i <= 1000; ++i) steps += (i > 1 ? ", " : "") + std::to_string(i);
  Sweep sweep = Parse(std::string(Header()) + "[axes]\nseed = [" + seeds + "]\n" +
                      "[[stage]]\nname = \"grid\"\nmethod = \"sleep\"\naxes = { steps = [" + steps + "] }\n" +
                      "[[stage]]\nname = \"per_seed\"\nmethod = \"sleep\"\n"
                      "depends_on = [{ stage = \"grid\", match = [\"seed\"] }]\n");
  auto counts = sweep.CountsByStage();
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0], std::make_pair(std::string("grid"), int64_t{100000}));
  EXPECT_EQ(counts[1], std::make_pair(std::string("per_seed"), int64_t{100}));
  ASSERT_EQ(sweep.jobs.size(), 100100u);
  EXPECT_EQ(sweep.jobs.back().upstream.size(), 1000u);
}

// --- dry run and files ---------------------------------------------------------------------

TEST_F(SweepTest, DryRunPrintsOneLinePerJobThenCounts) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[axes]
seed = [1, 2]

[[stage]]
name = "train"
method = "sleep"
params = { seconds = 3 }

[[stage]]
name = "report"
method = "sleep"
over = []
depends_on = [{ stage = "train", match = [] }]
ranks = 2
)toml");
  std::string text = FormatDryRun(sweep);
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[0].rfind(sweep.jobs[0].Key().substr(0, 12) + "  train", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("seed=1"), std::string::npos) << "varying parameters are shown";
  EXPECT_EQ(lines[0].find("seconds="), std::string::npos) << "fixed parameters are not repeated per job";
  EXPECT_NE(lines[2].find("ranks=2"), std::string::npos);
  EXPECT_NE(lines[2].find(sweep.jobs[0].Key().substr(0, 12)), std::string::npos) << "upstream keys are shown";
  EXPECT_NE(text.find("fixed: "), std::string::npos);
  EXPECT_NE(text.find("seconds=3.0"), std::string::npos);
  EXPECT_NE(text.find("fail=\"\""), std::string::npos) << "empty strings are visible";
  EXPECT_EQ(lines.back().substr(0, 5), "total");
  EXPECT_NE(lines.back().find(" 3 jobs"), std::string::npos) << text;
}

TEST_F(SweepTest, DryRunAbbreviatesLongUpstreamLists) {
  Sweep sweep = Parse(std::string(Header()) + R"toml(
[[stage]]
name = "work"
method = "sleep"
axes = { seed = [1, 2, 3, 4, 5] }

[[stage]]
name = "all"
method = "sleep"
depends_on = [{ stage = "work", match = [] }]
)toml");
  EXPECT_NE(FormatDryRun(sweep).find("(+2 more)"), std::string::npos);
}

TEST_F(SweepTest, LoadSweepFileReportsMissingFiles) {
  Result<Sweep> sweep = LoadSweepFile("/nonexistent/sweep.toml");
  ASSERT_FALSE(sweep.ok());
  EXPECT_EQ(sweep.status().code(), StatusCode::kNotFound);
  EXPECT_NE(sweep.status().message().find("/nonexistent/sweep.toml"), std::string::npos);
}

TEST_F(SweepTest, SleepExperimentFileExpands) {
  const std::string path = std::string(ATP_SOURCE_DIR) + "/experiments/sleep.toml";
  Result<Sweep> sweep = LoadSweepFile(path);
  ASSERT_OK(sweep);
  EXPECT_EQ(sweep->source_path, path);
  EXPECT_FALSE(sweep->source_text.empty());
  EXPECT_TRUE(sweep->warnings.empty());
  auto counts = sweep->CountsByStage();
  ASSERT_EQ(counts.size(), 3u);
  EXPECT_EQ(counts[0], std::make_pair(std::string("prepare"), int64_t{4}));
  EXPECT_EQ(counts[1], std::make_pair(std::string("work"), int64_t{24}));
  EXPECT_EQ(counts[2], std::make_pair(std::string("aggregate"), int64_t{3}));
  double total_seconds = 0;
  for (const auto& job : sweep->jobs) total_seconds += job.params["seconds"].get<double>();
  EXPECT_GT(total_seconds, 60);
  EXPECT_LT(total_seconds, 150);
}

// --- validation ----------------------------------------------------------------------------

// Regression: sweeps whose axes multiply to 10^9 or 10^18 points aborted with std::bad_alloc
// or std::length_error (--dry-run included), and 10^6 points took 1.5 GB.
TEST_F(SweepTest, AProductOverTheSweepSizeLimitIsRefusedBeforeAllocating) {
  auto axis = [](int n) {
    std::string values;
    for (int i = 1; i <= n; ++i) values += (i > 1 ? "," : "") + std::to_string(i);
    return "[" + values + "]";
  };
  // 1000^6 = 10^18 points; 2^64 overflows with seven such axes.
  std::string huge = std::string(Header()) + "[[stage]]  # w\nname = \"w\"\nmethod = \"sleep\"\n[stage.axes]\n";
  const char* names[] = {"seed", "steps", "seconds", "value", "fail_attempts", "fail_at_step"};
  for (const char* name : names) huge += std::string(name) + " = " + axis(1000) + "\n";
  ExpectError(huge, "# w", {"stage \"w\" expands to 1000000000000000000 points", "seed 1000 x steps 1000",
                                       "limit of " + std::to_string(kMaxSweepPoints)});
  std::string overflow = huge + "[[stage]]\nname = \"x\"\nmethod = \"sleep\"\n[stage.axes]\n";
  for (const char* name : names) overflow += std::string(name) + " = " + axis(1000) + "\n";
  ExpectError(overflow, "# w", {"expands to"});
  // Stages share the limit: the message counts what earlier stages used.
  std::string two = std::string(Header()) + "[[stage]]\nname = \"a\"\nmethod = \"sleep\"\n[stage.axes]\nseed = " +
                    axis(10) + "\n[[stage]]  # b\nname = \"b\"\nmethod = \"sleep\"\n[stage.axes]\nseed = " + axis(1000) +
                    "\nsteps = " + axis(1000) + "\n";
  ExpectError(two, "# b", {"stage \"b\" expands to 1000000 points", "(10 used by earlier stages)"});
}

// Regression: inf and nan passed validation (the coordinator then died on a spec it could not
// store), and so did zero or negative steps and durations.
TEST_F(SweepTest, NonFiniteAndOutOfRangeNumbersAreRefusedWithFileLineAndKey) {
  const std::string stage = "[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n";
  ExpectError(std::string(Header()) + stage + "hang_timeout_s = inf\n", "hang_timeout_s",
              {"hang_timeout_s", "finite"});
  ExpectError(std::string(Header()) + stage + "expected_seconds = inf\n", "expected_seconds",
              {"expected_seconds", "finite"});
  ExpectError(std::string(Header()) + stage + "hang_timeout_s = nan\n", "hang_timeout_s", {"finite", "nan"});
  ExpectError(std::string(Header()) + stage + "hang_timeout_s = 0\n", "hang_timeout_s", {"must be > 0"});
  ExpectError(std::string(Header()) + stage + "params = { seconds = nan }\n", "params", {"seconds", "finite"});
  ExpectError(std::string(Header()) + stage + "params = { value = inf }\n", "params", {"value", "finite"});
  ExpectError(std::string(Header()) + stage + "params = { value = -inf }\n", "params", {"value", "-inf"});
  ExpectError(std::string(Header()) + stage + "params = { seconds = -1 }\n", "params", {"seconds", ">= 0"});
  ExpectError(std::string(Header()) + stage + "params = { steps = 0 }\n", "params", {"steps", ">= 1"});
  ExpectError(std::string(Header()) + stage + "[stage.axes]\nsteps = [2, -3]\n", "steps = [", {"steps", ">= 1"});
  ExpectError(std::string(Header()) + stage + "ranks = 1000000\n", "ranks", {"from 1 to 4096", "got 1000000"});
  ExpectError(std::string(Header()) + "[retry]\nmax_attempts = 1000000000000\n" + stage, "max_attempts",
              {"retry.max_attempts", "from 1 to 1000000"});
}

TEST_F(SweepTest, RejectsTomlSyntaxErrorsWithLineAndColumn) {
  std::string text = std::string(Header()) + "[[stage]]\nname = \"a\nmethod = \"sleep\"\n";
  Result<Sweep> sweep = ParseSweep(text, kSource);
  ASSERT_FALSE(sweep.ok());
  EXPECT_EQ(sweep.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(sweep.status().message().rfind("test.toml:5:", 0), 0u) << sweep.status().message();
  EXPECT_NE(sweep.status().message().find("TOML syntax error"), std::string::npos);
}

TEST_F(SweepTest, RejectsUnknownKeysListingTheValidOnes) {
  ExpectError(std::string(Header()) + "[stages]\nx = 1\n", "[stages]", {"unknown key 'stages'", "stage, override"});
  ExpectError("[sweep]\nname = \"t\"\ncode_version = \"1\"\nauthor = \"me\"\n", "author",
              {"sweep.author", "name, code_version, description"});
  ExpectError(std::string(Header()) + "[[stage]]\nname = \"w\"\nmethod = \"sleep\"\nrank = 2\n", "rank = 2",
              {"stage \"w\".rank", "ranks"});
  ExpectError(std::string(Header()) + "[retry]\nmax_attempt = 2\n[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n",
              "max_attempt", {"retry.max_attempt", "max_attempts, max_lost, error, oom"});
  ExpectError(
      std::string(Header()) + "[retry]\noom = { retries = false }\n[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n",
      "oom =", {"retry.oom.retries", "retry, counts_attempt"});
  ExpectError(std::string(Header()) +
                  "[[stage]]\nname = \"a\"\nmethod = \"sleep\"\n[[stage]]\nname = \"b\"\nmethod = \"sleep\"\n"
                  "depends_on = [{ stage = \"a\", match = [], on = 1 }]\n",
              "depends_on", {"depends_on.on", "stage, match"});
  ExpectError(
      std::string(Header()) +
          "[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n[[override]]\nwhen = {}\nset = { steps = 2 }\nstages = \"w\"\n",
      "stages =", {"override #1.stages", "when, set, stage"});
}

TEST_F(SweepTest, RejectsStageKeysWrittenBelowAStageSubTable) {
  ExpectError(
      std::string(Header()) + "[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n[stage.axes]\nseed = [1]\nranks = 2\n",
      "ranks = 2", {"stage \"w\".axes.ranks", "key of the stage", "above the [stage.axes] header"});
  ExpectError(std::string(Header()) +
                  "[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n[stage.params]\nsteps = 1\nhang_timeout_s = 5\n",
              "hang_timeout_s", {"stage \"w\".params.hang_timeout_s", "above the [stage.params] header"});
}

TEST_F(SweepTest, RejectsWrongTypes) {
  std::string stage = "[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n";
  ExpectError(std::string(Header()) + stage + "ranks = \"2\"\n", "ranks", {"stage \"w\".ranks", "must be an integer"});
  ExpectError(std::string(Header()) + "[[stage]]\nname = \"w\"\nmethod = 3\n", "method = 3",
              {"stage \"w\".method", "string"});
  ExpectError(std::string(Header()) + stage + "params = { seconds = \"two\" }\n", "params",
              {"stage \"w\".params.seconds", "parameter 'seconds' must be a float"});
  ExpectError(std::string(Header()) + stage + "params = { fail = \"explode\" }\n", "params",
              {"valid values", "\"throw\""});
  ExpectError("[sweep]\nname = \"t\"\ncode_version = 1\n" + stage, "code_version", {"sweep.code_version", "\"1\""});
  ExpectError(std::string(Header()) + "[axes]\nseed = 3\n" + stage, "seed = 3", {"axes.seed", "a list of values"});
  ExpectError(std::string(Header()) + "[axes]\nseed = [1, \"two\"]\n" + stage, "seed = [",
              {"axes.seed", "parameter 'seed' must be", "\"two\""});
  ExpectError(std::string(Header()) + stage + "hang_timeout_s = 0\n", "hang_timeout_s", {"must be > 0"});
  ExpectError(std::string(Header()) + stage + "depends_on = \"x\"\n", "depends_on", {"list of tables"});
}

TEST_F(SweepTest, RejectsEmptyAxes) {
  ExpectError(std::string(Header()) + "[axes]\nseed = []\n[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n", "seed = []",
              {"axes.seed", "no values"});
  ExpectError(std::string(Header()) + "[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n[stage.axes]\nsteps = []\n",
              "steps = []", {"stage \"w\".axes.steps", "no values"});
}

TEST_F(SweepTest, RejectsUnknownDatasetsListingTheKnownOnes) {
  ExpectError(std::string(Header()) +
                  "[axes]\ndataset = [\"dtd\", \"imagenett\"]\n[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n",
              "imagenett", {"axes.dataset", "unknown dataset \"imagenett\"", DatasetNamesList()});
  ExpectError(std::string(Header()) +
                  "[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n[[override]]\nwhen = { dataset = \"cifar\" }\nset = { "
                  "steps = 1 }\n",
              "cifar", {"override #1.when.dataset", "unknown dataset"});
}

TEST_F(SweepTest, RejectsUnknownMethodsListingTheKnownOnes) {
  ExpectError(std::string(Header()) + "[[stage]]\nname = \"w\"\nmethod = [\"sleep\", \"coop_atp_typo\"]\n",
              "method =", {"stage \"w\".method", "unknown method \"coop_atp_typo\"", MethodNamesList()});
  ExpectError(std::string(Header()) + "[[stage]]\nname = \"w\"\nmethod = [\"sleep\", \"sleep\"]\n",
              "method =", {"listed twice"});
}

TEST_F(SweepTest, RejectsUnknownParametersWithTheCatalogMessage) {
  std::string stage = "[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n";
  ExpectError(std::string(Header()) + stage + "params = { second = 2 }\n", "params",
              {"stage \"w\".params.second", "unknown parameter 'second' for method 'sleep'",
               "valid parameters: dataset, seed"});
  ExpectError(std::string(Header()) + "[params]\nlr = 0.1\n" + stage, "lr =", {"params.lr", "unknown parameter 'lr'"});
  ExpectError(std::string(Header()) + "[axes]\nepochs = [1, 2]\n" + stage, "epochs",
              {"axes.epochs", "unknown parameter 'epochs'"});
  ExpectError(std::string(Header()) + stage + "[stage.axes]\nepochs = [1]\n", "epochs",
              {"stage \"w\".axes.epochs", "unknown parameter"});
  ExpectError(std::string(Header()) + stage + "[[override]]\nset = { epochs = 5 }\n", "epochs",
              {"override #1.set.epochs", "unknown parameter"});
}

TEST_F(SweepTest, RejectsDuplicateStageNames) {
  ExpectError(std::string(Header()) +
                  "[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n[[stage]]\nname = \"w\" # again\nmethod = \"sleep\"\n",
              "# again", {"already defined at test.toml:4", "unique"});
}

TEST_F(SweepTest, RejectsDependsOnUnknownStage) {
  ExpectError(std::string(Header()) +
                  "[[stage]]\nname = \"train\"\nmethod = \"sleep\"\n"
                  "depends_on = [{ stage = \"serach\", match = [] }]\n",
              "serach", {"stage \"train\".depends_on.stage", "unknown stage \"serach\"", "stages: train"});
}

TEST_F(SweepTest, RejectsDependencyCyclesNamingTheCycle) {
  std::string text = std::string(Header()) + R"toml(
[[stage]]
name = "a"
method = "sleep"
depends_on = [{ stage = "b", match = [] }]

[[stage]]
name = "b"
method = "sleep"
depends_on = [{ stage = "c", match = [] }]

[[stage]]
name = "c"
method = "sleep"
depends_on = [{ stage = "a", match = [] }]  # closes the cycle
)toml";
  ExpectError(text, "closes the cycle", {"a -> b -> c -> a", "remove one"});
  ExpectError(std::string(Header()) +
                  "[[stage]]\nname = \"a\"\nmethod = \"sleep\"\ndepends_on = [{ stage = \"a\", match = [] }]\n",
              "depends_on", {"a -> a"});
}

TEST_F(SweepTest, RejectsRuleKeysThatAreNoAxisOrParameter) {
  std::string stage = "[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n";
  ExpectError(std::string(Header()) + stage + "[[override]]\nwhen = { datset = \"dtd\" }\nset = { steps = 1 }\n",
              "datset", {"override #1.when.datset", "no axis or parameter", "valid keys: dataset, fail"});
  ExpectError(std::string(Header()) + stage + "[[exclude]]\nsed = 3\n", "sed = 3",
              {"exclude #1.sed", "no axis or parameter"});
  ExpectError(std::string(Header()) + stage + "[[exclude]]\nstage = \"w\"\n", "[[exclude]]",
              {"exclude #1", "every point"});
  ExpectError(std::string(Header()) + stage + "[[exclude]]\nstage = \"x\"\nseed = 1\n", "stage = \"x\"",
              {"unknown stage \"x\""});
  ExpectError(std::string(Header()) + stage + "[[override]]\nwhen = { seed = 1 }\n", "[[override]]",
              {"changes nothing"});
}

TEST_F(SweepTest, RejectsIncludesThatDoNotAssignTheStageAxes) {
  std::string base = std::string(Header()) +
                     "[axes]\nseed = [1]\n[[stage]]\nname = \"w\"\nmethod = \"sleep\"\naxes = { steps = [1] }\n";
  ExpectError(base + "[[include]]\nstage = \"w\"\nseed = 2\n", "[[include]]",
              {"include #1", "no value for 'steps'", "seed, steps"});
  ExpectError(base + "[[include]]\nstage = \"w\"\nseed = 2\nsteps = 3\nvalue = 1\n", "value = 1",
              {"include #1.value", "unknown key 'value'"});
  ExpectError(base + "[[include]]\nstage = \"v\"\nseed = 2\n", "stage = \"v\"", {"unknown stage \"v\""});
}

TEST_F(SweepTest, RejectsRanksBelowOne) {
  ExpectError(std::string(Header()) + "[[stage]]\nname = \"w\"\nmethod = \"sleep\"\nranks = 0\n", "ranks = 0",
              {"stage \"w\".ranks", "from 1 to 4096"});
  ExpectError(std::string(Header()) + "[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n[[override]]\nranks = -1\n",
              "ranks = -1", {"override #1.ranks", "from 1 to 4096"});
}

TEST_F(SweepTest, RejectsMissingRequiredParts) {
  ExpectError("[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n", "[[stage]]", {"[sweep]"});
  ExpectError("[sweep]\nname = \"t\"\n[[stage]]\nname = \"w\"\nmethod = \"sleep\"\n", "[sweep]",
              {"code_version", "missing"});
  ExpectError(std::string(Header()), "[sweep]", {"no [[stage]]"});
  ExpectError(std::string(Header()) + "[[stage]]\nmethod = \"sleep\"\n", "[[stage]]", {"stage #1.name", "missing"});
  ExpectError(std::string(Header()) + "[[stage]]\nname = \"w\"\n", "[[stage]]",
              {"stage \"w\".method", "missing", "sleep"});
  ExpectError(std::string(Header()) +
                  "[[stage]]\nname = \"a\"\nmethod = \"sleep\"\n[[stage]]\nname = \"b\"\nmethod = \"sleep\"\n"
                  "depends_on = [{ stage = \"a\" }]\n",
              "depends_on", {"match", "match = []"});
}

TEST_F(SweepTest, RejectsMisnamedAxesInOverAndMatch) {
  std::string base = std::string(Header()) + "[axes]\nseed = [1]\n[[stage]]\nname = \"a\"\nmethod = \"sleep\"\n";
  ExpectError(base + "over = [\"dataset\"]\n", "over", {"stage \"a\".over", "not a global axis", "seed"});
  ExpectError(
      base + "[[stage]]\nname = \"b\"\nmethod = \"sleep\"\ndepends_on = [{ stage = \"a\", match = [\"sed\"] }]\n",
      "match", {"depends_on.match", "'sed' is no parameter of stage \"b\""});
  ExpectError(base + "[stage.axes]\nmethod = [\"sleep\"]\n", "method = [", {"method = [...]"});
  ExpectError(std::string(Header()) + "[axes]\nmethod = [\"sleep\"]\n[[stage]]\nname = \"a\"\nmethod = \"sleep\"\n",
              "method = [", {"axes.method", "per stage"});
  ExpectError(std::string(Header()) + "[axes]\nseed = [1, 1]\n[[stage]]\nname = \"a\"\nmethod = \"sleep\"\n",
              "seed = [", {"listed twice"});
}

TEST_F(SweepTest, ErrorsNameTheSourceGivenByTheCaller) {
  Result<Sweep> sweep = ParseSweep("[sweep]\nname = \"t\"\n", "experiments/x.toml");
  ASSERT_FALSE(sweep.ok());
  EXPECT_EQ(sweep.status().message().rfind("experiments/x.toml:1:", 0), 0u) << sweep.status().message();
}

}  // namespace
}  // namespace atp

namespace atp {
namespace {

// The repository's own sweep files. Not from __FILE__: Ninja compiles with relative paths.
std::string PaperSweepPath(const std::string& name) {
  return std::string(ATP_SOURCE_DIR) + "/experiments/paper/" + name;
}

// Job keys hash effective values: editing one recipe value re-keys exactly the jobs that
// recipe covers (and the jobs downstream of them), no other.
TEST(SweepRecipeTest, ChangingARecipeValueChangesOnlyTheAffectedJobKeys) {
  Result<Sweep> before = LoadSweepFile(PaperSweepPath("base2novel.toml"));
  ASSERT_OK(before);
  RecipeBook edited = DefaultRecipes();
  bool found = false;
  for (auto& rule : edited.mutable_rules()) {
    if (rule.match.method == "coop" && rule.match.dataset == "imagenet" &&
        rule.match.variant == RecipeMatch::Variant::kVanilla) {
      rule.values["epochs"] = 51;
      found = true;
    }
  }
  ASSERT_TRUE(found) << "no vanilla CoOp ImageNet rule in the default recipes";
  Result<Sweep> after = LoadSweepFile(PaperSweepPath("base2novel.toml"), edited);
  ASSERT_OK(after);
  ASSERT_EQ(before->jobs.size(), after->jobs.size());
  int changed = 0;
  for (size_t i = 0; i < before->jobs.size(); ++i) {
    const JobSpec& a = before->jobs[i];
    const JobSpec& b = after->jobs[i];
    const bool affected = a.method == "coop" && a.dataset() == "imagenet" && !a.params.value("atprompt", true);
    if (affected) {
      ++changed;
      EXPECT_NE(a.Key(), b.Key());
      EXPECT_EQ(a.params["epochs"], 50);
      EXPECT_EQ(b.params["epochs"], 51);
    } else {
      EXPECT_EQ(a.Key(), b.Key()) << a.method << " " << a.dataset() << " " << a.params.dump();
    }
  }
  EXPECT_EQ(changed, 3);  // seeds 1, 2, 3
}

TEST(SweepRecipeTest, DryRunListsTheEffectiveRecipeOfEveryJob) {
  Result<Sweep> sweep = LoadSweepFile(PaperSweepPath("base2novel.toml"));
  ASSERT_OK(sweep);
  const std::string text = FormatDryRun(*sweep);
  std::istringstream lines(text);
  std::string line;
  int coop_imagenet = 0;
  while (std::getline(lines, line)) {
    if (line.find(" coop ") == std::string::npos || line.find("atprompt=false") == std::string::npos) continue;
    EXPECT_NE(line.find("n_ctx=4"), std::string::npos) << line;
    EXPECT_NE(line.find("lr=0.002"), std::string::npos) << line;
    EXPECT_NE(line.find("batch=32"), std::string::npos) << line;
    EXPECT_NE(line.find("init=\"a photo of a\""), std::string::npos) << line;
    if (line.find("dataset=imagenet ") != std::string::npos) {
      ++coop_imagenet;
      EXPECT_NE(line.find("epochs=50 "), std::string::npos) << line;
    } else {
      EXPECT_NE(line.find("epochs=200"), std::string::npos) << line;
    }
  }
  EXPECT_EQ(coop_imagenet, 3);
}

// Regression: a recipe value that differs between a stage's jobs (CoOp's epochs on ImageNet
// against elsewhere) was listed on the stage's "fixed:" line with the first job's value.
TEST(SweepRecipeTest, DryRunFixedLineHoldsOnlyValuesAllJobsShare) {
  Result<Sweep> sweep = LoadSweepFile(PaperSweepPath("base2novel.toml"));
  ASSERT_OK(sweep);
  std::map<std::string, std::set<std::string>> epochs_by_stage;
  for (const auto& job : sweep->jobs) {
    if (job.params.contains("epochs")) epochs_by_stage[job.stage].insert(job.params["epochs"].dump());
  }
  const std::string text = FormatDryRun(*sweep);
  std::istringstream lines(text);
  std::string line, stage;
  int checked = 0;
  while (std::getline(lines, line)) {
    const size_t fixed_at = line.find("  fixed: ");
    if (fixed_at == std::string::npos) {
      std::istringstream words(line);
      words >> stage;  // a count line starts with its stage's name
      continue;
    }
    auto epochs = epochs_by_stage.find(stage);
    if (epochs == epochs_by_stage.end()) continue;
    const bool listed = (" " + line.substr(fixed_at + 8) + " ").find(" epochs=") != std::string::npos;
    EXPECT_EQ(listed, epochs->second.size() == 1) << stage << ": " << line;
    ++checked;
  }
  EXPECT_GT(checked, 0) << text;
  bool some_stage_varies = false;
  for (const auto& [name, values] : epochs_by_stage) some_stage_varies |= values.size() > 1;
  EXPECT_TRUE(some_stage_varies) << "the paper sweep's CoOp epochs differ on ImageNet";
}

}  // namespace
}  // namespace atp
