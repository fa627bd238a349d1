#include "worker/prompt/ivlp_model.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "tests/prompt/official_parity.h"
#include "tests/prompt/prompt_test_util.h"
#include "tests/support/status_matchers.h"

namespace atp::prompt {
namespace {

using testing::LoadPromptSrcCase;
using testing::OfficialCase;
using testing::RealTokenizer;

// The IVLP settings an official PromptSRC case ran with (index.json: n_ctx = N_CTX_TEXT,
// attribute_ctx = N_ATT1..3, text/vision depth, vision_ctx; ctx_init only for the vanilla
// trainer, since promptsrc_atp.py always draws a random context).
IvlpSettings CaseSettings(const OfficialCase& c, Compat compat) {
  IvlpSettings s;
  s.design.n_ctx = c.meta["n_ctx"].get<int>();
  s.design.attributes = c.attributes();
  s.design.attribute_ctx.assign(s.design.attributes.size(), c.meta["attribute_ctx"].get<int>());
  s.design.compat = compat;
  s.design.ctx_init = c.meta["ctx_init"].get<std::string>();
  s.official_attribute_tensors = !s.design.attributes.empty();
  s.text_depth = c.meta["text_depth"].get<int64_t>();
  s.vision_depth = c.meta["vision_depth"].get<int64_t>();
  s.vision_ctx = c.meta["vision_ctx"].get<int64_t>();
  return s;
}

std::unique_ptr<IvlpModel> OfficialIvlp(const OfficialCase& c, Compat compat) {
  std::string why;
  auto tokenizer = RealTokenizer(&why);
  if (!tokenizer) return nullptr;
  torch::manual_seed(0);
  auto made = MakeIvlpModel(CaseSettings(c, compat), testing::ParityClip(), tokenizer, c.class_names());
  EXPECT_OK(made);
  if (!made.ok()) return nullptr;
  EXPECT_OK((*made)->LoadStateDict(c.Part("state.")));
  return std::move(*made);
}

// Every prompt tensor of the released IVLP towers and of the prompt learner, against the
// official classes: the layer-0 prompts, the prompted text and image features, the logits.
void ExpectOfficialTowers(const std::string& case_name, Compat compat) {
  const OfficialCase c = LoadPromptSrcCase(case_name);
  auto model = OfficialIvlp(c, compat);
  if (!model) GTEST_SKIP() << "CLIP vocabulary not found";
  const std::string label = case_name + (compat == Compat::kPaper ? " (paper)" : "");
  testing::ExpectSameTokens(label, model->learner()->layout(), c.at("out.tokenized"));
  torch::NoGradGuard no_grad;
  const torch::Tensor official_prompts = c.at("out.prompts");
  testing::ExpectClose(label + " layer-0 prompts", model->learner()->Embeddings().narrow(1, 0, official_prompts.size(1)),
                       official_prompts);
  testing::ExpectClose(label + " text features", model->TextFeatures(), c.at("out.text_features"));
  const torch::Tensor images = c.at("in.images");
  testing::ExpectClose(label + " image features", model->ImageFeatures(images), c.at("out.image_features"));
  model->BeginEvaluation();
  testing::ExpectClose(label + " logits", model->Logits(images), c.at("out.logits"));
  model->EndEvaluation();
}

TEST(IvlpModelParityTest, VanillaTowersAndLogitsMatchTheReleasedPromptSrc) {
  ExpectOfficialTowers("promptsrc_vanilla", Compat::kOfficial);
  ExpectOfficialTowers("promptsrc_vanilla", Compat::kPaper);
}

TEST(IvlpModelParityTest, AtpromptDeepTowersAndLogitsMatchTheReleasedPromptSrcAtp) {
  for (const char* name : {"promptsrc_atp_two_attributes", "promptsrc_atp_one_attribute"}) {
    // One-token attribute words, N_ATT = N_CTX: the official offset is the class context, so
    // both compat modes compute the official prompts.
    ExpectOfficialTowers(name, Compat::kOfficial);
    ExpectOfficialTowers(name, Compat::kPaper);
  }
}

TEST(IvlpModelTest, StateDictKeysAreTheOfficialWholeModelKeys) {
  const OfficialCase c = LoadPromptSrcCase("promptsrc_atp_two_attributes");
  auto model = OfficialIvlp(c, Compat::kOfficial);
  if (!model) GTEST_SKIP() << "CLIP vocabulary not found";
  std::set<std::string> ours, official;
  for (const auto& [key, value] : model->StateDict()) ours.insert(key);
  for (const auto& [key, value] : c.Part("state.")) official.insert(key);
  EXPECT_EQ(ours, official);
  // ctx_att3 exists (the official learner always makes three) but no attribute reads it.
  std::set<std::string> trainable;
  for (const auto& [key, value] : model->TrainableParameters()) trainable.insert(key);
  EXPECT_FALSE(trainable.count("prompt_learner.ctx_att3"));
  EXPECT_TRUE(trainable.count("prompt_learner.ctx_att2"));
  EXPECT_TRUE(trainable.count("text_encoder.transformer.resblocks.2.VPT_shallow"));
}

TEST(IvlpModelTest, CheckpointOfAnotherDepthIsRefusedNamingTheKey) {
  // The official loader (strict=False) would load such a checkpoint and leave the extra
  // block's prompt unused; a teacher imported that way silently differs from the trained one.
  const OfficialCase c = LoadPromptSrcCase("promptsrc_vanilla");  // vision depth 2
  auto model = OfficialIvlp(c, Compat::kOfficial);
  if (!model) GTEST_SKIP() << "CLIP vocabulary not found";
  auto state = c.Part("state.");
  state["image_encoder.transformer.resblocks.2.VPT_shallow"] = torch::zeros({2, 64});
  Status loaded = model->LoadStateDict(state);
  EXPECT_FALSE(loaded.ok());
  EXPECT_NE(loaded.message().find("image_encoder.transformer.resblocks.2.VPT_shallow"), std::string::npos)
      << loaded.message();

  auto missing = c.Part("state.");
  missing.erase("text_encoder.transformer.resblocks.2.VPT_shallow");
  loaded = model->LoadStateDict(missing);
  EXPECT_FALSE(loaded.ok());
  EXPECT_NE(loaded.message().find("missing key text_encoder.transformer.resblocks.2.VPT_shallow"), std::string::npos)
      << loaded.message();

  // The frozen CLIP and the zero-shot image tower of a whole-model checkpoint are skipped.
  auto whole = c.Part("state.");
  whole["prompt_learner.ZS_image_encoder.conv1.weight"] = torch::zeros({1});
  whole["image_encoder.conv1.weight"] = torch::zeros({1});
  whole["prompt_learner.token_prefix"] = torch::zeros({1});
  EXPECT_OK(model->LoadStateDict(whole));
}

TEST(IvlpModelTest, PromptsEnterOnlyTheConfiguredBlocks) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  IvlpSettings s;
  s.design.n_ctx = 2;
  s.design.ctx_init = "a photo of a";
  s.text_depth = 1;  // layer-0 context only: no deep text prompts
  s.vision_depth = 0;
  torch::manual_seed(3);
  auto made = MakeIvlpModel(s, testing::ParityClip(), tokenizer, {"dog", "cat"});
  ASSERT_OK(made);
  EXPECT_TRUE((*made)->prompts()->text_deep.empty());
  EXPECT_FALSE((*made)->prompts()->vision_shallow.defined());
  // Without vision prompts the image tower is CLIP's own.
  torch::NoGradGuard no_grad;
  const torch::Tensor pixels = torch::randn({2, 3, 16, 16});
  clip::Clip clip = (*made)->clip();
  EXPECT_TRUE(torch::allclose((*made)->ImageFeatures(pixels), clip->EncodeImage(pixels), 1e-5, 1e-6));

  s.text_depth = 4;  // the parity CLIP has 3 text blocks
  auto too_deep = MakeIvlpModel(s, testing::ParityClip(), tokenizer, {"dog"});
  EXPECT_FALSE(too_deep.ok());
  EXPECT_NE(too_deep.status().message().find("text prompt depth 4"), std::string::npos);
}

TEST(IvlpModelTest, DrawsPromptsInTheOfficialOrder) {
  // Vision VPT, vision VPT_shallow 1..Jv−1, text VPT_shallow 1..Jt−1, then the learner's
  // ctx_att tensors (ctx comes from ctx_init here): all from one stream, in that order.
  ATP_REQUIRE_TOKENIZER(tokenizer);
  IvlpSettings s;
  s.design.n_ctx = 2;
  s.design.attributes = {"color"};
  s.design.compat = Compat::kOfficial;
  s.official_attribute_tensors = true;
  s.text_depth = 3;
  s.vision_depth = 2;
  s.vision_ctx = 3;
  clip::Clip clip = testing::ParityClip();  // building it draws from the generator too
  torch::manual_seed(11);
  auto made = MakeIvlpModel(s, clip, tokenizer, {"dog"});
  ASSERT_OK(made);
  torch::manual_seed(11);
  std::vector<torch::Tensor> expected = {
      torch::empty({3, 64}).normal_(0, 0.02), torch::empty({3, 64}).normal_(0, 0.02),
      torch::empty({2, 64}).normal_(0, 0.02), torch::empty({2, 64}).normal_(0, 0.02),
      torch::empty({2, 64}).normal_(0, 0.02),  // ctx (random: promptsrc_atp.py ignores CTX_INIT)
      torch::empty({2, 64}).normal_(0, 0.01)};
  const IvlpPrompts prompts = (*made)->prompts();
  EXPECT_TRUE(prompts->vision_shallow.equal(expected[0]));
  EXPECT_TRUE(prompts->vision_deep.at(0).equal(expected[1]));
  EXPECT_TRUE(prompts->text_deep.at(0).equal(expected[2]));
  EXPECT_TRUE(prompts->text_deep.at(1).equal(expected[3]));
  EXPECT_TRUE((*made)->learner()->ctx.equal(expected[4]));
  EXPECT_TRUE((*made)->learner()->ctx_att.at(0).equal(expected[5]));
}

}  // namespace
}  // namespace atp::prompt
