#include "common/toml_json.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/support/status_matchers.h"

namespace atp {
namespace {

toml::table Parse(const std::string& text) { return toml::parse(text); }

TEST(TomlToJsonTest, ConvertsEveryParameterKindToItsJsonKind) {
  const toml::table table = Parse(
      "name = \"coop\"\nsteps = 2\nlr = 2.0\natprompt = true\nseeds = [1, 2]\n"
      "[nested]\nwords = [\"color\", \"shape\"]\n");
  const Result<Json> json = TomlToJson(table, "job.toml", "");
  ASSERT_OK(json);
  EXPECT_EQ(*json, Json::parse(R"({"name": "coop", "steps": 2, "lr": 2.0, "atprompt": true, "seeds": [1, 2],
                                   "nested": {"words": ["color", "shape"]}})"));
  EXPECT_TRUE((*json)["steps"].is_number_integer());
  EXPECT_TRUE((*json)["lr"].is_number_float()) << "2.0 stays a float: it is another parameter than 2";
}

// Regression: `atp train` turned a date in a job file or a --set into null, silently, while
// sweep files refused it; both now refuse it through this one conversion.
TEST(TomlToJsonTest, RefusesDatesAndTimesNamingFileLineAndKey) {
  for (const std::string value : {"2025-10-19", "07:32:00", "1979-05-27T07:32:00", "1979-05-27T07:32:00Z"}) {
    const toml::table table = Parse("[params]\nlr = 0.002\nstart = " + value + "\n");
    const Result<Json> json = TomlToJson(*table.get("params"), "job.toml", "params");
    ASSERT_FALSE(json.ok()) << value;
    EXPECT_EQ(json.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(json.status().message(),
              "job.toml:3: params.start: dates and times are not parameter values; write it as a string")
        << value;
  }
}

TEST(TomlToJsonTest, RefusesADateInsideAListOrATable) {
  const toml::table table = Parse("a = [1, 2]\n[b]\nc = [\"x\", 2025-01-01]\n");
  const Result<Json> json = TomlToJson(table, "s.toml", "");
  ASSERT_FALSE(json.ok());
  EXPECT_EQ(json.status().message(), "s.toml:3: b.c: dates and times are not parameter values; write it as a string");
}

TEST(TomlToJsonTest, WithoutASourceTheErrorStartsAtTheKey) {
  const toml::table table = Parse("v = 2025-10-19");
  const Result<Json> json = TomlToJson(*table.get("v"), "", "--set start");
  ASSERT_FALSE(json.ok());
  EXPECT_EQ(json.status().message(), "--set start: dates and times are not parameter values; write it as a string");
}

TEST(TomlToJsonTest, AQuotedDateIsAString) {
  const toml::table table = Parse("v = \"2025-10-19\"");
  const Result<Json> json = TomlToJson(*table.get("v"), "", "v");
  ASSERT_OK(json);
  EXPECT_EQ(*json, Json("2025-10-19"));
}

}  // namespace
}  // namespace atp
