#include "common/method_recipes.h"

#include <gtest/gtest.h>

#include <string>

#include "common/dataset_catalog.h"
#include "common/method_catalog.h"
#include "tests/support/status_matchers.h"

namespace atp {
namespace {

class MethodRecipesTest : public ::testing::Test {
 protected:
  static Json Resolve(const std::string& method, Json params) {
    Result<Json> resolved = ResolveMethodParams(*FindMethod(method), params);
    EXPECT_OK(resolved);
    return resolved.ok() ? *resolved : Json::object();
  }
};

TEST_F(MethodRecipesTest, EveryPromptJobResolvesEveryRecipeParameter) {
  for (const char* method : {"coop", "cocoop", "maple", "dept", "promptsrc", "attribute_search", "promptkd"}) {
    for (const auto& dataset : AllDatasets()) {
      for (const char* protocol : {"base2novel", "cross_dataset", "domain_generalization"}) {
        for (const char* compat : {"paper", "official"}) {
          for (bool atprompt : {false, true}) {
            Json params = {{"dataset", dataset.name}, {"protocol", protocol}, {"compat", compat}};
            if (std::string(method) != "attribute_search") params["atprompt"] = atprompt;
            Result<Json> resolved = ResolveMethodParams(*FindMethod(method), params);
            ASSERT_OK(resolved) << method << " " << dataset.name << " " << protocol << " " << compat;
            for (const auto& p : FindMethod(method)->params) {
              if (p.optional) continue;
              EXPECT_TRUE(resolved->contains(p.name)) << method << " lacks " << p.name;
            }
            EXPECT_GE((*resolved)["epochs"].get<int>(), 1);
          }
        }
      }
    }
  }
}

// PromptSRC's released config (vit_b16_c2_ep20_batch4_4+4ctx.yaml), ATPrompt's December 2024
// scripts in official mode and for + ATPrompt, and the cross-dataset config's depth and GPA.
TEST_F(MethodRecipesTest, PromptSrcFollowsItsReleasedConfigsAndAtpromptsScripts) {
  Json paper = Resolve("promptsrc", {{"dataset", "dtd"}});
  EXPECT_EQ(paper["epochs"], 20);
  EXPECT_EQ(paper["batch_size"], 4);
  EXPECT_DOUBLE_EQ(paper["lr"].get<double>(), 0.0025);
  EXPECT_EQ(paper["n_ctx"], 4);
  EXPECT_EQ(paper["vision_n_ctx"], 4);
  EXPECT_EQ(paper["text_depth"], 9);
  EXPECT_EQ(paper["vision_depth"], 9);
  EXPECT_EQ(paper["ctx_init"], "a photo of a");
  EXPECT_DOUBLE_EQ(paper["text_loss_weight"].get<double>(), 25);
  EXPECT_DOUBLE_EQ(paper["image_loss_weight"].get<double>(), 10);
  EXPECT_DOUBLE_EQ(paper["gpa_mean"].get<double>(), 15);
  EXPECT_DOUBLE_EQ(paper["gpa_std"].get<double>(), 1);
  Json official = Resolve("promptsrc", {{"dataset", "dtd"}, {"compat", "official"}});
  EXPECT_EQ(official["epochs"], 10);
  EXPECT_EQ(official["ctx_init"], "");
  Json atp = Resolve("promptsrc", {{"dataset", "dtd"}, {"atprompt", true}});
  EXPECT_EQ(atp["epochs"], 10);
  EXPECT_EQ(atp["n_ctx"], 4);
  EXPECT_EQ(atp["attribute_ctx"], 4);
  EXPECT_EQ(atp["ctx_init"], "");
  Json transfer = Resolve("promptsrc", {{"dataset", "dtd"}, {"protocol", "cross_dataset"}});
  EXPECT_EQ(transfer["text_depth"], 3);
  EXPECT_EQ(transfer["vision_depth"], 3);
  EXPECT_DOUBLE_EQ(transfer["gpa_mean"].get<double>(), 6);
  EXPECT_DOUBLE_EQ(transfer["gpa_std"].get<double>(), 10);
  EXPECT_EQ(transfer["ctx_init"], "a photo of a");
}

// The paper's CoOp row is the CoCoOp paper's CoOp run: "a photo of a", 200 epochs, 50 on ImageNet.
TEST_F(MethodRecipesTest, PaperCoopIsTheCocoopPapersRecipe) {
  Json caltech = Resolve("coop", {{"dataset", "caltech101"}});
  EXPECT_EQ(caltech["epochs"], 200);
  EXPECT_EQ(caltech["n_ctx"], 4);
  EXPECT_EQ(caltech["ctx_init"], "a photo of a");
  EXPECT_EQ(caltech["batch_size"], 32);
  EXPECT_DOUBLE_EQ(caltech["lr"].get<double>(), 0.002);
  EXPECT_EQ(caltech["class_name_underscores"], false);
  EXPECT_EQ(Resolve("coop", {{"dataset", "imagenet"}})["epochs"], 50);
  Json transfer = Resolve("coop", {{"dataset", "caltech101"}, {"protocol", "cross_dataset"}});
  EXPECT_EQ(transfer["source_dataset"], "imagenet");
  EXPECT_EQ(transfer["epochs"], 50);
  EXPECT_EQ(transfer["ctx_init"], "a photo of a");
}

// Regression: the official vanilla CoOp recipe took the vanilla script's epochs and tokens
// (trainers/coop.py) but the underscores of trainers/coop_atp.py, a run neither route makes.
TEST_F(MethodRecipesTest, OfficialCoopIsAtpromptsVanillaScriptWhole) {
  Json official = Resolve("coop", {{"dataset", "oxford_pets"}, {"compat", "official"}});
  EXPECT_EQ(official["epochs"], 200);
  EXPECT_EQ(official["n_ctx"], 16);
  EXPECT_EQ(official["ctx_init"], "");
  EXPECT_EQ(official["class_name_underscores"], false);  // trainers/coop.py replaces '_'
  EXPECT_EQ(Resolve("coop", {{"dataset", "oxford_pets"}, {"compat", "official"}, {"atprompt", true}})
                ["class_name_underscores"],
            false);
  // Cross-dataset has no vanilla script: the ATPrompt script with ATPrompt off, whose
  // trainer keeps '_'.
  Json transfer = Resolve("coop", {{"dataset", "dtd"}, {"compat", "official"}, {"protocol", "cross_dataset"}});
  EXPECT_EQ(transfer["n_ctx"], 4);
  EXPECT_EQ(transfer["epochs"], 10);
  EXPECT_EQ(transfer["class_name_underscores"], true);
  // The other base-to-novel route, set by hand, resolves as given.
  Json atp_route = Resolve("coop", {{"dataset", "oxford_pets"}, {"compat", "official"}, {"n_ctx", 2},
                                    {"epochs", 100}, {"class_name_underscores", true}});
  EXPECT_EQ(atp_route["n_ctx"], 2);
  EXPECT_EQ(atp_route["class_name_underscores"], true);
}

// Only eval_only jobs that set it, or set class_name_underscores, carry checkpoint_class_names
// (so no other job's key changes); a class-name form set by the user is one the checkpoint
// must confirm.
TEST_F(MethodRecipesTest, CheckpointClassNamesIsResolvedForEvalOnlyJobs) {
  EXPECT_FALSE(Resolve("coop", {{"dataset", "dtd"}}).contains("checkpoint_class_names"));
  // Absent means "detect": eval jobs that set nothing keep the keys they had.
  EXPECT_FALSE(Resolve("coop", {{"dataset", "dtd"}, {"eval_only", true}}).contains("checkpoint_class_names"));
  EXPECT_EQ(Resolve("coop", {{"dataset", "dtd"}, {"eval_only", true}, {"class_name_underscores", false}})
                ["checkpoint_class_names"],
            "job");
  EXPECT_EQ(Resolve("coop", {{"dataset", "dtd"}, {"eval_only", true}, {"checkpoint_class_names", "unchecked"}})
                ["checkpoint_class_names"],
            "unchecked");
  Result<Json> training = ResolveMethodParams(*FindMethod("coop"), {{"dataset", "dtd"}, {"checkpoint_class_names", "detect"}});
  ASSERT_FALSE(training.ok());
  EXPECT_NE(training.status().message().find("eval_only"), std::string::npos) << training.status().message();
  Result<Json> bad = ResolveMethodParams(*FindMethod("coop"),
                                         {{"dataset", "dtd"}, {"eval_only", true}, {"checkpoint_class_names", "maybe"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("checkpoint_class_names"), std::string::npos) << bad.status().message();
}

TEST_F(MethodRecipesTest, AtpromptRowsFollowThePerDatasetTable) {
  Json dtd = Resolve("coop", {{"dataset", "dtd"}, {"atprompt", true}});
  EXPECT_EQ(dtd["epochs"], 100);
  EXPECT_EQ(dtd["n_ctx"], 4);
  EXPECT_EQ(dtd["attribute_ctx"], 4);
  EXPECT_EQ(dtd["ctx_init"], "");
  Json ucf = Resolve("dept", {{"dataset", "ucf101"}, {"atprompt", true}});
  EXPECT_DOUBLE_EQ(ucf["weight"].get<double>(), 0.5);
  Json maple_xd = Resolve("maple", {{"dataset", "dtd"}, {"atprompt", true}, {"protocol", "cross_dataset"}});
  EXPECT_EQ(maple_xd["n_ctx"], 4);
  EXPECT_EQ(maple_xd["epochs"], 2);
  EXPECT_EQ(maple_xd["depth"], 3);
  Json maple_xd_official = Resolve(
      "maple", {{"dataset", "dtd"}, {"atprompt", true}, {"protocol", "cross_dataset"}, {"compat", "official"}});
  EXPECT_EQ(maple_xd_official["n_ctx"], 2);
  EXPECT_EQ(maple_xd_official["attribute_ctx"], 4);
  EXPECT_EQ(maple_xd_official["epochs"], 3);
}

TEST_F(MethodRecipesTest, PromptkdIsTheReleasedScriptWithItsPerDatasetKdWeight) {
  Json pets = Resolve("promptkd", {{"dataset", "oxford_pets"}});
  EXPECT_EQ(pets["epochs"], 20);
  EXPECT_EQ(pets["batch_size"], 8);
  EXPECT_DOUBLE_EQ(pets["lr"].get<double>(), 0.005);
  EXPECT_EQ(pets["warmup_epochs"], 1);
  EXPECT_EQ(pets["n_ctx"], 4);
  EXPECT_EQ(pets["depth"], 9);
  EXPECT_DOUBLE_EQ(pets["temperature"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(pets["kd_weight"].get<double>(), 1000.0);
  EXPECT_EQ(pets["teacher_method"], "promptsrc");
  EXPECT_EQ(pets["teacher_backbone"], "ViT-L/14");
  for (const char* dataset : {"fgvc_aircraft", "oxford_flowers", "dtd"}) {
    EXPECT_DOUBLE_EQ(Resolve("promptkd", {{"dataset", dataset}})["kd_weight"].get<double>(), 200.0) << dataset;
  }
  // The +ATPrompt row distils with the same recipe (its teacher differs).
  EXPECT_EQ(Resolve("promptkd", {{"dataset", "dtd"}, {"atprompt", true}})["kd_weight"], 200.0);
}

TEST_F(MethodRecipesTest, ExplicitValuesWinOverTheRecipe) {
  Json coop = Resolve("coop", {{"dataset", "dtd"}, {"ctx_init", ""}, {"n_ctx", 16}, {"epochs", 3}, {"lr", 1}});
  EXPECT_EQ(coop["n_ctx"], 16);
  EXPECT_EQ(coop["epochs"], 3);
  EXPECT_TRUE(coop["lr"].is_number_float());
  // A phrase sets one soft token per word.
  EXPECT_EQ(Resolve("coop", {{"dataset", "dtd"}, {"ctx_init", "a photo"}})["n_ctx"], 2);
}

TEST_F(MethodRecipesTest, NctxThatContradictsCtxInitIsRejected) {
  Result<Json> r = ResolveMethodParams(*FindMethod("coop"), {{"dataset", "dtd"}, {"n_ctx", 16}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("ctx_init = \"\""), std::string::npos) << r.status().message();
}

// Sweeps written when 0 meant "the official value" now get an error that says what to do.
TEST_F(MethodRecipesTest, ZeroIsNoLongerTheRecipeMarker) {
  Result<Json> r = ResolveMethodParams(*FindMethod("maple"), {{"dataset", "dtd"}, {"epochs", 0}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'epochs'"), std::string::npos);
  EXPECT_NE(r.status().message().find("leave it out"), std::string::npos) << r.status().message();
}

TEST_F(MethodRecipesTest, PaperAttributesFilledUnlessASearchRunsUpstream) {
  Json params = Resolve("coop", {{"dataset", "caltech101"}, {"atprompt", true}});
  Json searched = params;
  ASSERT_OK(ResolvePaperAttributes(&searched, true));
  EXPECT_TRUE(searched["attributes"].empty());
  ASSERT_OK(ResolvePaperAttributes(&params, false));
  EXPECT_EQ(params["attributes"], Json({"shape", "size"}));
}

TEST_F(MethodRecipesTest, LaterRulesOverrideEarlierOnes) {
  RecipeBook book({{{"coop"}, {{"epochs", 1}, {"n_ctx", 3}}, "a"},
                   {{"coop", RecipeMatch::Variant::kAny, RecipeMatch::Setting::kAny, "", "dtd"}, {{"epochs", 7}}, "b"}});
  RecipeKey key{"coop", false, "base2novel", "paper", "dtd"};
  EXPECT_EQ(book.ValuesFor(key), Json({{"epochs", 7}, {"n_ctx", 3}}));
  EXPECT_EQ(book.SourcesFor(key), (std::vector<std::string>{"a", "b"}));
  key.training_dataset = "eurosat";
  EXPECT_EQ(book.ValuesFor(key)["epochs"], 1);
}

}  // namespace
}  // namespace atp
