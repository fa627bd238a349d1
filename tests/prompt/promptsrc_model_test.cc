#include "worker/prompt/promptsrc_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "tests/prompt/official_parity.h"
#include "tests/prompt/prompt_test_util.h"
#include "tests/support/status_matchers.h"
#include "worker/prompt/method_config.h"

namespace atp::prompt {
namespace {

using testing::ExpectClose;
using testing::LoadPromptSrcCase;
using testing::OfficialCase;
using testing::RealTokenizer;

// The method config an official PromptSRC case ran with.
MethodConfig CaseConfig(const OfficialCase& c, Compat compat) {
  MethodConfig config;
  config.method = "promptsrc";
  config.epochs = c.meta.value("epochs", 20);
  config.design.n_ctx = c.meta["n_ctx"].get<int>();
  config.design.attributes = c.attributes();
  config.atprompt = !config.design.attributes.empty();
  config.design.attribute_ctx.assign(config.design.attributes.size(), c.meta["attribute_ctx"].get<int>());
  config.design.compat = compat;
  config.design.ctx_init = c.meta["ctx_init"].get<std::string>();
  config.vision_n_ctx = c.meta["vision_ctx"].get<int>();
  config.text_depth = c.meta["text_depth"].get<int>();
  config.vision_depth = c.meta["vision_depth"].get<int>();
  config.text_loss_weight = c.meta.value("text_loss_weight", 25.0);
  config.image_loss_weight = c.meta.value("image_loss_weight", 10.0);
  config.gpa_mean = c.meta.value("gpa_mean", 15.0);
  config.gpa_std = c.meta.value("gpa_std", 1.0);
  return config;
}

std::unique_ptr<PromptSrcModel> OfficialPromptSrc(const OfficialCase& c, Compat compat) {
  std::string why;
  auto tokenizer = RealTokenizer(&why);
  if (!tokenizer) return nullptr;
  torch::manual_seed(0);
  auto made = MakePromptSrcModel(CaseConfig(c, compat), testing::ParityClip(), tokenizer, c.class_names());
  EXPECT_OK(made);
  if (!made.ok()) return nullptr;
  if (!c.Part("state.").empty()) EXPECT_OK((*made)->LoadStateDict(c.Part("state.")));
  return std::unique_ptr<PromptSrcModel>(dynamic_cast<PromptSrcModel*>(made->release()));
}

const char* const kStepCases[] = {"promptsrc_vanilla", "promptsrc_atp_two_attributes", "promptsrc_atp_one_attribute"};

TEST(PromptSrcModelParityTest, FrozenTextAndImageFeaturesMatchTheReleasedLearner) {
  for (const char* name : kStepCases) {
    const OfficialCase c = LoadPromptSrcCase(name);
    auto model = OfficialPromptSrc(c, Compat::kOfficial);
    if (!model) GTEST_SKIP() << "CLIP vocabulary not found";
    // The 60-template ensemble of the frozen CLIP (fixed_embeddings, unnormalised).
    ExpectClose(std::string(name) + " frozen text features", model->frozen_text_features(),
                c.at("out.fixed_embeddings"));
    torch::NoGradGuard no_grad;
    clip::Clip clip = model->ivlp().clip();
    ExpectClose(std::string(name) + " frozen image features", clip->visual->forward(c.at("in.images")),
                c.at("out.zs_image_features"));
  }
}

TEST(PromptSrcModelParityTest, LossTermsAndGradientsOfOneStepMatchTheReleasedTrainer) {
  for (const char* name : kStepCases) {
    for (Compat compat : {Compat::kOfficial, Compat::kPaper}) {
      const OfficialCase c = LoadPromptSrcCase(name);
      auto model = OfficialPromptSrc(c, compat);
      if (!model) GTEST_SKIP() << "CLIP vocabulary not found";
      const std::string label = std::string(name) + (compat == Compat::kPaper ? " (paper)" : "");
      const torch::Tensor images = c.at("in.images");
      const torch::Tensor labels = c.at("in.labels").to(torch::kLong);
      const int64_t batch = labels.size(0), classes = static_cast<int64_t>(c.class_names().size());
      {
        torch::NoGradGuard no_grad;
        PromptSrcLossTerms terms = model->LossTerms(images, labels, batch);
        ExpectClose(label + " cross-entropy", terms.cross_entropy.reshape({1}), c.at("out.loss_ce"));
        ExpectClose(label + " L_SCL text", terms.scl_text.reshape({1}), c.at("out.l1_text") * 25);
        ExpectClose(label + " L_SCL image", terms.scl_image.reshape({1}), c.at("out.l1_image") * 10);
        ExpectClose(label + " L_SCL logits", terms.scl_logits.reshape({1}),
                    c.at("out.kl_sum") / static_cast<double>(batch * classes));
      }
      // forward_backward's total loss and the gradient of every trained tensor.
      testing::ExpectOfficialLossAndGradients(label, *model, images, c);
    }
  }
}

TEST(PromptSrcModelParityTest, GpaWeightsMatchTheReleasedTrainer) {
  for (const char* name : {"promptsrc_gpa", "promptsrc_gpa_official_recipe"}) {
    const OfficialCase c = LoadPromptSrcCase(name);
    const std::vector<double> ours = GaussianPromptAggregationWeights(
        c.meta["epochs"].get<int64_t>(), c.meta["gpa_mean"].get<double>(), c.meta["gpa_std"].get<double>());
    // The fixture stores fp32: one rounding of weights <= 1 (atp computes them in double).
    ExpectClose(std::string(name) + " GPA weights", torch::tensor(ours, torch::kFloat64), c.at("out.gauss"), 1e-7);
  }
}

TEST(PromptSrcModelParityTest, GpaAggregateOfEpochSnapshotsMatchesTheReleasedTrainer) {
  // The released trainer's weights after each of 4 epochs (2 steps each), and the model it
  // loads at the end; atp's EndTrainingEpoch sees the same snapshots.
  const OfficialCase c = LoadPromptSrcCase("promptsrc_gpa");
  auto model = OfficialPromptSrc(c, Compat::kOfficial);
  if (!model) GTEST_SKIP() << "CLIP vocabulary not found";
  const int64_t epochs = c.meta["epochs"].get<int64_t>();
  for (int64_t e = 0; e < epochs; ++e) {
    ASSERT_OK(model->LoadStateDict(c.Part("epoch" + std::to_string(e + 1) + ".")));
    // A resumed run continues from the checkpointed sum: round-trip it every epoch.
    std::map<std::string, torch::Tensor> saved;
    for (auto& [key, value] : model->TrainingState()) saved[key] = value.clone();
    ASSERT_OK(model->LoadTrainingState(saved));
    model->EndTrainingEpoch(e, epochs);
  }
  for (const auto& [key, value] : model->StateDict()) {
    ExpectClose("promptsrc_gpa aggregate " + key, value, c.at("gpa." + key));
  }
}

TEST(PromptSrcModelTest, ShardLossesSumToTheFullBatchLoss) {
  const OfficialCase c = LoadPromptSrcCase("promptsrc_atp_two_attributes");
  auto model = OfficialPromptSrc(c, Compat::kOfficial);
  if (!model) GTEST_SKIP() << "CLIP vocabulary not found";
  torch::NoGradGuard no_grad;
  const torch::Tensor images = c.at("in.images");
  const torch::Tensor labels = c.at("in.labels").to(torch::kLong);
  const torch::Tensor full = model->TrainLoss(images, labels, 4);
  const torch::Tensor a = model->TrainLoss(images.narrow(0, 0, 3), labels.narrow(0, 0, 3), 4);
  const torch::Tensor b = model->TrainLoss(images.narrow(0, 3, 1), labels.narrow(0, 3, 1), 4);
  EXPECT_NEAR((a + b).item<double>(), full.item<double>(), 1e-5);
  EXPECT_EQ(model->TrainLoss(images.narrow(0, 0, 0), labels.narrow(0, 0, 0), 4).item<double>(), 0.0);
}

TEST(PromptSrcModelTest, CachedFrozenImageFeaturesGiveTheComputedLoss) {
  // The trainer passes the frozen tower's features of the same views from the feature cache;
  // the loss must be what computing them from the pixels gives.
  const OfficialCase c = LoadPromptSrcCase("promptsrc_vanilla");
  auto model = OfficialPromptSrc(c, Compat::kOfficial);
  if (!model) GTEST_SKIP() << "CLIP vocabulary not found";
  torch::NoGradGuard no_grad;
  const torch::Tensor images = c.at("in.images");
  const torch::Tensor labels = c.at("in.labels").to(torch::kLong);
  const double computed = model->TrainLoss(images, labels, 4).item<double>();
  model->SetFrozenImageFeatures(c.at("out.zs_image_features"));
  EXPECT_NEAR(model->TrainLoss(images, labels, 4).item<double>(), computed, 1e-5);
  // Features of other views change the image term: the cached rows are really used.
  model->SetFrozenImageFeatures(c.at("out.zs_image_features").flip(0));
  EXPECT_GT(std::abs(model->TrainLoss(images, labels, 4).item<double>() - computed), 1e-4);
}

TEST(PromptSrcModelTest, GpaThatUnderflowsIsRefused) {
  EXPECT_THROW(GaussianPromptAggregationWeights(5, 1000, 1), std::invalid_argument);
  EXPECT_THROW(GaussianPromptAggregationWeights(5, 3, 0), std::invalid_argument);
  // Mean beyond the last epoch (the ATPrompt scripts run 5 or 10 epochs with GPA_MEAN 15):
  // practically all weight on the last epoch.
  const auto w = GaussianPromptAggregationWeights(10, 15, 1);
  EXPECT_GT(w.back(), 0.99);
}

}  // namespace
}  // namespace atp::prompt
