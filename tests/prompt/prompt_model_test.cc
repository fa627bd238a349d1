// The helpers every prompt model shares: the shard loss and cosine logits (checked against
// element-by-element arithmetic, not the tensor code under test), and the strict state-dict
// reading that our own and the official checkpoints go through.
#include "worker/prompt/prompt_model.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/support/status_matchers.h"
#include "worker/prompt/coop_model.h"

namespace atp::prompt {
namespace {

TEST(ShardCrossEntropyTest, SumsPerSampleLossesOverTheGlobalBatch) {
  torch::Tensor logits = torch::tensor({{2.0, 0.5, -1.0}, {0.0, 0.0, 3.0}}, torch::kDouble);
  torch::Tensor labels = torch::tensor({0, 1}, torch::kLong);
  double expected = 0;
  for (int i = 0; i < 2; ++i) {
    double denominator = 0;
    for (int c = 0; c < 3; ++c) denominator += std::exp(logits[i][c].item<double>());
    expected += -std::log(std::exp(logits[i][labels[i].item<int64_t>()].item<double>()) / denominator);
  }
  // A shard of 2 samples out of a global batch of 8: the rank's share of the mean loss.
  EXPECT_NEAR(ShardCrossEntropy(logits, labels, 8).item<double>(), expected / 8, 1e-12);
}

TEST(CosineLogitsTest, ScalesCosineSimilaritiesOfSharedAndPerImageText) {
  torch::Tensor image = torch::tensor({{3.0, 4.0}, {1.0, 0.0}}, torch::kDouble);
  torch::Tensor text = torch::tensor({{0.0, 2.0}, {-1.0, 0.0}, {1.0, 1.0}}, torch::kDouble);
  torch::Tensor scale = torch::tensor(std::log(10.0), torch::kDouble);
  torch::Tensor shared = CosineLogits(image, text, scale);
  ASSERT_EQ(shared.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_NEAR(shared[0][0].item<double>(), 10 * 0.8, 1e-12);  // (3,4)/5 · (0,1)
  EXPECT_NEAR(shared[0][1].item<double>(), 10 * -0.6, 1e-12);
  EXPECT_NEAR(shared[1][2].item<double>(), 10 / std::sqrt(2.0), 1e-12);
  // CoCoOp: one prompt set per image; image 1 gets the text negated.
  torch::Tensor per_image = torch::stack({text, -text});
  torch::Tensor logits = CosineLogits(image, per_image, scale);
  EXPECT_NEAR(logits[0][0].item<double>(), 10 * 0.8, 1e-12);
  EXPECT_NEAR(logits[1][1].item<double>(), 10 * 1.0, 1e-12);
}

NamedTensors Targets() {
  return {{"prompt_learner.ctx", torch::zeros({2, 4})}, {"prompt_learner.proj.weight", torch::zeros({3})}};
}

StateDictReading WholeModel() {
  StateDictReading reading;
  reading.model_name = "MaPLe";
  reading.must_match = "n_ctx";
  return reading;
}

TEST(LoadStrictlyTest, CopiesTargetsAndSkipsWhatOfficialLoadersSkip) {
  NamedTensors targets = Targets();
  std::map<std::string, torch::Tensor> state = {
      {"module.prompt_learner.ctx", torch::ones({2, 4})},
      {"prompt_learner.proj.weight", torch::full({3}, 2.0)},
      {"prompt_learner.token_prefix", torch::ones({5, 1, 4})},  // rebuilt from class names
      {"prompt_learner.ctx_att3", torch::ones({2, 4})},         // the official code's third, never trained
      {"image_encoder.conv1.weight", torch::ones({1})},         // frozen CLIP of a whole-model export
      {"logit_scale", torch::ones({})}};
  ASSERT_OK(LoadStrictly(state, targets, WholeModel()));
  EXPECT_TRUE(targets[0].second.equal(torch::ones({2, 4})));
  EXPECT_TRUE(targets[1].second.equal(torch::full({3}, 2.0)));
}

TEST(LoadStrictlyTest, NamesEveryProblemAndCopiesNothing) {
  NamedTensors targets = Targets();
  std::map<std::string, torch::Tensor> state = {{"prompt_learner.ctx", torch::ones({2, 4})},
                                                {"prompt_learner.proj.weight", torch::ones({4})},
                                                {"prompt_learner.mystery", torch::ones({1})}};
  Status status = LoadStrictly(state, targets, WholeModel());
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("MaPLe checkpoint does not fit this model (n_ctx must match"), std::string::npos);
  EXPECT_NE(status.message().find("unexpected key prompt_learner.mystery"), std::string::npos);
  EXPECT_NE(status.message().find("prompt_learner.proj.weight has shape [4] in the checkpoint but [3]"),
            std::string::npos);
  EXPECT_EQ(status.message().find("missing key prompt_learner.proj.weight"), std::string::npos)
      << "a misshaped key is reported once, as misshaped: " << status.message();
  EXPECT_TRUE(targets[0].second.equal(torch::zeros({2, 4}))) << "nothing is copied from a checkpoint that does not fit";

  state.erase("prompt_learner.mystery");
  state.erase("prompt_learner.proj.weight");
  status = LoadStrictly(state, targets, WholeModel());
  EXPECT_NE(status.message().find("missing key prompt_learner.proj.weight"), std::string::npos) << status.message();
}

TEST(LoadStrictlyTest, CoopStyleReadingAcceptsThePromptLearnersOwnKeys) {
  NamedTensors targets = {{"ctx", torch::zeros({4, 8})}, {"ctx_att1", torch::zeros({1, 8})}};
  // An official CoOp+ATPrompt checkpoint: the prompt learner's state dict with its buffers
  // and two ctx_att tensors, of which this one-attribute design uses one.
  std::map<std::string, torch::Tensor> official = {{"ctx", torch::ones({4, 8})},
                                                   {"ctx_att1", torch::ones({1, 8})},
                                                   {"ctx_att2", torch::ones({1, 8})},
                                                   {"token_prefix", torch::ones({10, 1, 8})},
                                                   {"token_middle1", torch::ones({10, 1, 8})},
                                                   {"token_suffix", torch::ones({10, 60, 8})}};
  ASSERT_OK(LoadStrictly(official, targets, CoopStyleReading("CoOp")));
  EXPECT_TRUE(targets[1].second.equal(torch::ones({1, 8})));
  // A CoCoOp checkpoint is not a CoOp one: its meta-net is named, not dropped.
  official["meta_net.linear1.weight"] = torch::ones({2, 8});
  Status status = LoadStrictly(official, targets, CoopStyleReading("CoOp"));
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("unexpected key meta_net.linear1.weight"), std::string::npos) << status.message();
}

TEST(ZeroLossTest, GivesEveryTensorADefinedZeroGradient) {
  torch::Tensor a = torch::ones({2, 3}, torch::requires_grad());
  torch::Tensor b = torch::ones({4}, torch::requires_grad());
  torch::Tensor loss = ZeroLoss({{"a", a}, {"b", b}});
  EXPECT_EQ(loss.item<double>(), 0.0);
  loss.backward();
  ASSERT_TRUE(a.grad().defined());
  ASSERT_TRUE(b.grad().defined());
  EXPECT_TRUE(a.grad().equal(torch::zeros({2, 3})));
  EXPECT_TRUE(b.grad().equal(torch::zeros({4})));
}

}  // namespace
}  // namespace atp::prompt
