#include "common/method_catalog.h"
#include "tests/support/status_matchers.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include <string>

namespace atp {
namespace {

class MethodCatalogTest : public ::testing::Test {
 protected:
  const MethodInfo& sleep() const { return *FindMethod("sleep"); }

  static bool Contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
  }
};

TEST_F(MethodCatalogTest, FindsSleepAndNotUnknownMethods) {
  ASSERT_NE(FindMethod("sleep"), nullptr);
  EXPECT_EQ(FindMethod("sleep")->name, "sleep");
  EXPECT_EQ(FindMethod("no-such-method"), nullptr);
  EXPECT_TRUE(Contains(MethodNamesList(), "sleep"));
}

TEST_F(MethodCatalogTest, ResolveFillsEveryDefault) {
  auto resolved = ResolveMethodParams(sleep(), Json::object());
  ASSERT_OK(resolved);
  for (const auto* list : {&CommonParams(), &sleep().params}) {
    for (const auto& p : *list) {
      ASSERT_TRUE(resolved->contains(p.name)) << p.name;
      EXPECT_EQ((*resolved)[p.name], p.default_value) << p.name;
    }
  }
  EXPECT_EQ((*resolved)["seconds"], Json(1.0));
  EXPECT_EQ((*resolved)["steps"], Json(10));
  EXPECT_EQ((*resolved)["seed"], Json(1));
  EXPECT_EQ((*resolved)["dataset"], Json(""));
  EXPECT_EQ((*resolved)["fail"], Json(""));
}

TEST_F(MethodCatalogTest, ResolveKeepsGivenValues) {
  auto resolved = ResolveMethodParams(sleep(), Json{{"steps", 3}, {"seed", 9}, {"fail", "throw"}});
  ASSERT_OK(resolved);
  EXPECT_EQ((*resolved)["steps"], Json(3));
  EXPECT_EQ((*resolved)["seed"], Json(9));
  EXPECT_EQ((*resolved)["fail"], Json("throw"));
}

TEST_F(MethodCatalogTest, ResolveStoresIntegersGivenForFloatsAsFloats) {
  // So that `seconds = 2` and `seconds = 2.0` serialise identically (same job key).
  auto resolved = ResolveMethodParams(sleep(), Json{{"seconds", 2}});
  ASSERT_OK(resolved);
  EXPECT_TRUE((*resolved)["seconds"].is_number_float());
  EXPECT_EQ((*resolved)["seconds"].dump(), Json(2.0).dump());
}

TEST_F(MethodCatalogTest, UnknownParameterErrorListsValidParameters) {
  auto resolved = ResolveMethodParams(sleep(), Json{{"secnds", 1.0}});
  ASSERT_FALSE(resolved.ok());
  EXPECT_EQ(resolved.status().code(), StatusCode::kInvalidArgument);
  const std::string& message = resolved.status().message();
  EXPECT_TRUE(Contains(message, "'secnds'")) << message;
  EXPECT_TRUE(Contains(message, "'sleep'")) << message;
  for (const auto* list : {&CommonParams(), &sleep().params}) {
    for (const auto& p : *list) EXPECT_TRUE(Contains(message, p.name)) << p.name << " missing from: " << message;
  }
}

TEST_F(MethodCatalogTest, WrongTypeIsRejectedNamingTheParameter) {
  struct Case {
    const char* name;
    Json value;
  };
  const std::vector<Case> cases = {
      {"steps", Json("ten")},    // int given a string
      {"steps", Json(2.5)},      // int given a float
      {"seconds", Json("1")},    // float given a string
      {"seconds", Json(true)},   // float given a bool
      {"fail", Json(3)},         // string given a number
      {"seed", Json::array()},   // common int given a list
      {"dataset", Json(1)},      // common string given a number
  };
  for (const auto& c : cases) {
    auto resolved = ResolveMethodParams(sleep(), Json{{c.name, c.value}});
    ASSERT_FALSE(resolved.ok()) << c.name << " = " << c.value.dump();
    EXPECT_EQ(resolved.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(resolved.status().message(), std::string("'") + c.name + "'")) << resolved.status().message();
  }
}

TEST_F(MethodCatalogTest, ChoiceOutsideTheSetListsTheValidValues) {
  auto resolved = ResolveMethodParams(sleep(), Json{{"fail", "explode"}});
  ASSERT_FALSE(resolved.ok());
  EXPECT_EQ(resolved.status().code(), StatusCode::kInvalidArgument);
  const std::string& message = resolved.status().message();
  EXPECT_TRUE(Contains(message, "'fail'")) << message;
  EXPECT_TRUE(Contains(message, "explode")) << message;
  for (const char* valid : {"\"throw\"", "\"segfault\"", "\"hang\"", "\"oom_kill\""}) {
    EXPECT_TRUE(Contains(message, valid)) << valid << " missing from: " << message;
  }
}

TEST_F(MethodCatalogTest, ChoiceInsideTheSetIsAccepted) {
  for (const char* valid : {"", "throw", "segfault", "hang"}) {
    auto resolved = ResolveMethodParams(sleep(), Json{{"fail", valid}});
    EXPECT_OK(resolved) << valid;
  }
}

TEST_F(MethodCatalogTest, ParamsMustBeATable) {
  auto resolved = ResolveMethodParams(sleep(), Json::array({1}));
  ASSERT_FALSE(resolved.ok());
  EXPECT_EQ(resolved.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(MethodCatalogTest, MissingRequiredParameterIsNamed) {
  MethodInfo method{"needs_lr", "test method", false, {{"lr", ParamType::kFloat, Json(), "learning rate", {}}}};
  auto missing = ResolveMethodParams(method, Json::object());
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(Contains(missing.status().message(), "'lr'")) << missing.status().message();
  EXPECT_OK(ResolveMethodParams(method, Json{{"lr", 0.1}}));
}

TEST_F(MethodCatalogTest, MethodThatNeedsADatasetRejectsNone) {
  MethodInfo method{"needs_data", "test method", true, {}};
  auto missing = ResolveMethodParams(method, Json::object());
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(Contains(missing.status().message(), "dataset")) << missing.status().message();
  EXPECT_OK(ResolveMethodParams(method, Json{{"dataset", "eurosat"}}));
}

TEST_F(MethodCatalogTest, CheckParamValueAcceptsIntsForFloatsAndChecksStringLists) {
  ParamInfo rate{"rate", ParamType::kFloat, 0.0, "", {}};
  EXPECT_OK(CheckParamValue(rate, Json(3)));
  EXPECT_OK(CheckParamValue(rate, Json(3.5)));
  ParamInfo flag{"flag", ParamType::kBool, false, "", {}};
  EXPECT_OK(CheckParamValue(flag, Json(true)));
  EXPECT_FALSE(CheckParamValue(flag, Json(1)).ok());
  ParamInfo names{"names", ParamType::kStringList, Json::array(), "", {}};
  EXPECT_OK(CheckParamValue(names, Json::array({"a", "b"})));
  EXPECT_OK(CheckParamValue(names, Json::array()));
  EXPECT_FALSE(CheckParamValue(names, Json::array({"a", 1})).ok());
  EXPECT_FALSE(CheckParamValue(names, Json("a")).ok());
}

}  // namespace
// Regression: inf, nan and negative or zero steps and durations were accepted, and a job
// spec holding inf could not be stored (JSON has no infinity).
TEST_F(MethodCatalogTest, NumbersMustBeFiniteAndAboveTheirFloor) {
  const MethodInfo* sleep = FindMethod("sleep");
  ASSERT_NE(sleep, nullptr);
  const double inf = std::numeric_limits<double>::infinity();
  for (const auto& [params, fragment] : std::vector<std::pair<Json, std::string>>{
           {Json{{"seconds", inf}}, "'seconds' must be a finite number, got inf"},
           {Json{{"value", -inf}}, "'value' must be a finite number, got -inf"},
           {Json{{"value", std::nan("")}}, "got nan"},
           {Json{{"seconds", -0.5}}, "'seconds' must be >= 0"},
           {Json{{"steps", 0}}, "'steps' must be >= 1"},
           {Json{{"fail_at_step", -1}}, "'fail_at_step' must be >= 0"}}) {
    auto resolved = ResolveMethodParams(*sleep, params);
    ASSERT_FALSE(resolved.ok()) << params.dump();
    EXPECT_NE(resolved.status().message().find(fragment), std::string::npos) << resolved.status().message();
  }
  EXPECT_OK(ResolveMethodParams(*sleep, Json{{"seconds", 0}, {"steps", 1}, {"value", -3.5}}));
}

}  // namespace atp
