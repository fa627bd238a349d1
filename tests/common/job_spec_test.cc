#include "common/job_spec.h"

#include <gtest/gtest.h>

#include <string>

#include "common/hash.h"
#include "common/method_catalog.h"
#include "tests/support/status_matchers.h"

namespace atp {
namespace {

class JobSpecTest : public ::testing::Test {
 protected:
  // A sleep job with parameters resolved through the catalog, as the sweep expander makes them.
  static JobSpec SleepJob(const Json& params) {
    auto resolved = ResolveMethodParams(*FindMethod("sleep"), params);
    EXPECT_OK(resolved);
    JobSpec spec;
    spec.stage = "train";
    spec.method = "sleep";
    spec.params = resolved.ok() ? *resolved : Json::object();
    spec.code_version = "v1";
    return spec;
  }
};

TEST_F(JobSpecTest, KeyIsAStableSha256Hex) {
  JobSpec spec = SleepJob(Json{{"seconds", 2.0}, {"seed", 3}});
  const std::string key = spec.Key();
  EXPECT_EQ(key.size(), 64u);
  EXPECT_EQ(key.find_first_not_of("0123456789abcdef"), std::string::npos) << key;
  EXPECT_EQ(spec.Key(), key);
  EXPECT_EQ(SleepJob(Json{{"seconds", 2.0}, {"seed", 3}}).Key(), key);
}

TEST_F(JobSpecTest, KeyHashesTheCanonicalIdentityJson) {
  // Keys name finished results in existing databases: a change to the canonical form would
  // silently re-run every finished job. The canonical form is compact with sorted keys.
  JobSpec spec;
  spec.stage = "s";
  spec.method = "sleep";
  spec.params = Json{{"seed", 1}};
  spec.code_version = "1";
  const std::string canonical =
      R"({"code_version":"1","method":"sleep","params":{"seed":1},"stage":"s","upstream":[]})";
  EXPECT_EQ(spec.IdentityJson().dump(), canonical);
  EXPECT_EQ(spec.Key(), Sha256Hex(canonical));
}

TEST_F(JobSpecTest, KeyIgnoresTheOrderOfParamKeys) {
  JobSpec a = SleepJob(Json::parse(R"({"seconds": 2.5, "steps": 4, "seed": 7})"));
  JobSpec b = SleepJob(Json::parse(R"({"seed": 7, "steps": 4, "seconds": 2.5})"));
  EXPECT_EQ(a.Key(), b.Key());
}

TEST_F(JobSpecTest, IntegerAndFloatSpellingsOfAFloatParamGiveTheSameKey) {
  // `seconds = 1` and `seconds = 1.0` in a sweep file are the same job.
  JobSpec as_int = SleepJob(Json::parse(R"({"seconds": 1})"));
  JobSpec as_float = SleepJob(Json::parse(R"({"seconds": 1.0})"));
  EXPECT_EQ(as_int.Key(), as_float.Key());
}

TEST_F(JobSpecTest, KeyIgnoresUpstreamOrderAndDuplicates) {
  JobSpec a = SleepJob(Json::object());
  a.upstream = {"k2", "k1", "k3"};
  JobSpec b = SleepJob(Json::object());
  b.upstream = {"k3", "k1", "k2", "k1"};
  EXPECT_EQ(a.Key(), b.Key());
}

TEST_F(JobSpecTest, KeyChangesWithEachIdentityField) {
  const JobSpec base = SleepJob(Json{{"seed", 1}});
  const std::string key = base.Key();

  JobSpec stage = base;
  stage.stage = "eval";
  EXPECT_NE(stage.Key(), key);

  JobSpec method = base;
  method.method = "other";
  EXPECT_NE(method.Key(), key);

  JobSpec params = SleepJob(Json{{"seed", 2}});
  EXPECT_NE(params.Key(), key);

  JobSpec upstream = base;
  upstream.upstream = {"abc"};
  EXPECT_NE(upstream.Key(), key);

  JobSpec code = base;
  code.code_version = "v2";
  EXPECT_NE(code.Key(), key);
}

TEST_F(JobSpecTest, ExecutionFieldsDoNotChangeTheKey) {
  // Running on more GPUs or with another retry budget must never re-run a finished job.
  const JobSpec base = SleepJob(Json{{"seed", 1}});
  JobSpec changed = base;
  changed.ranks = 4;
  changed.retry.max_attempts = 9;
  changed.retry.max_lost = 1;
  changed.retry.rule(FailureClass::kCrash).retry = false;
  changed.retry.rule(FailureClass::kError).counts_attempt = false;
  changed.hang_timeout_s = 5;
  changed.expected_seconds = 123;
  EXPECT_EQ(changed.Key(), base.Key());
  EXPECT_EQ(changed.IdentityJson(), base.IdentityJson());
}

TEST_F(JobSpecTest, AccessorsReadDatasetAndSeed) {
  JobSpec spec = SleepJob(Json{{"dataset", "eurosat"}, {"seed", 5}});
  EXPECT_EQ(spec.dataset(), "eurosat");
  EXPECT_EQ(spec.seed(), 5);
  JobSpec bare;
  EXPECT_EQ(bare.dataset(), "");
  EXPECT_EQ(bare.seed(), -1);
}

TEST_F(JobSpecTest, ToJsonFromJsonRoundTripsIdentityAndExecution) {
  JobSpec spec = SleepJob(Json{{"seconds", 0.5}, {"dataset", "dtd"}, {"seed", 2}});
  spec.upstream = {"bbb", "aaa"};
  spec.ranks = 2;
  spec.retry.max_attempts = 5;
  spec.retry.max_lost = 7;
  spec.retry.rule(FailureClass::kCrash).retry = false;
  spec.retry.rule(FailureClass::kOutOfMemory).counts_attempt = false;
  spec.hang_timeout_s = 42.5;
  spec.expected_seconds = 17;

  auto back = JobSpec::FromJson(spec.ToJson());
  ASSERT_OK(back);
  EXPECT_EQ(back->Key(), spec.Key());
  EXPECT_EQ(back->stage, spec.stage);
  EXPECT_EQ(back->method, spec.method);
  EXPECT_EQ(back->params, spec.params);
  EXPECT_EQ(back->code_version, spec.code_version);
  EXPECT_EQ(back->upstream, (std::vector<std::string>{"aaa", "bbb"}));  // canonical order
  EXPECT_EQ(back->ranks, 2);
  EXPECT_EQ(back->retry.max_attempts, 5);
  EXPECT_EQ(back->retry.max_lost, 7);
  for (int i = 0; i < kFailureClassCount; ++i) {
    auto c = static_cast<FailureClass>(i);
    EXPECT_EQ(back->retry.rule(c).retry, spec.retry.rule(c).retry) << FailureClassName(c);
    EXPECT_EQ(back->retry.rule(c).counts_attempt, spec.retry.rule(c).counts_attempt) << FailureClassName(c);
  }
  EXPECT_DOUBLE_EQ(back->hang_timeout_s, 42.5);
  EXPECT_DOUBLE_EQ(back->expected_seconds, 17);
  // Serialising again gives the same bytes.
  EXPECT_EQ(back->ToJson().dump(), spec.ToJson().dump());
}

TEST_F(JobSpecTest, FromJsonWithoutExecutionUsesDefaults) {
  JobSpec spec = SleepJob(Json::object());
  auto back = JobSpec::FromJson(spec.IdentityJson());
  ASSERT_OK(back);
  const JobSpec defaults;
  EXPECT_EQ(back->ranks, defaults.ranks);
  EXPECT_EQ(back->retry.max_attempts, defaults.retry.max_attempts);
  EXPECT_DOUBLE_EQ(back->hang_timeout_s, defaults.hang_timeout_s);
  EXPECT_EQ(back->Key(), spec.Key());
}

TEST_F(JobSpecTest, FromJsonRejectsMalformedJsonAsInvalidArgument) {
  const Json good = SleepJob(Json::object()).ToJson();
  std::vector<std::pair<std::string, Json>> cases;
  cases.emplace_back("not an object", Json::array({1, 2}));
  cases.emplace_back("a string", Json("spec"));
  Json missing_stage = good;
  missing_stage.erase("stage");
  cases.emplace_back("missing stage", missing_stage);
  Json missing_params = good;
  missing_params.erase("params");
  cases.emplace_back("missing params", missing_params);
  Json method_number = good;
  method_number["method"] = 3;
  cases.emplace_back("method is a number", method_number);
  Json upstream_string = good;
  upstream_string["upstream"] = "abc";
  cases.emplace_back("upstream is a string", upstream_string);
  Json ranks_string = good;
  ranks_string["execution"]["ranks"] = "two";
  cases.emplace_back("ranks is a string", ranks_string);
  Json unknown_class = good;
  unknown_class["execution"]["retry_rules"]["meltdown"] = {{"retry", true}};
  cases.emplace_back("unknown failure class", unknown_class);

  for (const auto& [what, json] : cases) {
    auto parsed = JobSpec::FromJson(json);
    EXPECT_FALSE(parsed.ok()) << what;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << what << ": " << parsed.status().ToString();
  }
}

TEST_F(JobSpecTest, FromJsonRejectsParamsThatAreNotAnObject) {
  // Parameters are always a table; a spec whose params are a list or a number is malformed
  // and must be refused here rather than fail later inside the job process.
  for (const Json& params : {Json::array({1, 2}), Json(5), Json("seed=1")}) {
    Json json = SleepJob(Json::object()).ToJson();
    json["params"] = params;
    auto parsed = JobSpec::FromJson(json);
    EXPECT_FALSE(parsed.ok()) << "params = " << params.dump();
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << "params = " << params.dump();
  }
}

TEST_F(JobSpecTest, FromJsonNamesTheUnknownFailureClass) {
  Json json = SleepJob(Json::object()).ToJson();
  json["execution"]["retry_rules"]["meltdown"] = {{"retry", true}};
  auto parsed = JobSpec::FromJson(json);
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("meltdown"), std::string::npos) << parsed.status().message();
}

}  // namespace
}  // namespace atp
