#include "worker/pretrain/tiny_clip_trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>

#include "tests/pretrain/pretrain_test_util.h"
#include "tests/support/status_matchers.h"
#include "worker/clip/clip_checkpoint.h"

namespace atp::pretrain {
namespace {

using testing::SmallFashionMnistRoot;
using testing::TempDir;

// Small enough to train in a few seconds on two cores.
TinyClipOptions QuickOptions(const std::string& root) {
  TinyClipOptions o;
  o.data_root = root;
  o.epochs = 4;
  o.batch_size = 48;
  o.learning_rate = 2e-3;
  o.warmup_steps = 4;
  o.max_train_per_class = 20;  // 200 images
  o.max_test_per_class = 10;
  o.resolution = 16;
  o.patch_size = 8;
  o.vision_width = 64;
  o.vision_layers = 1;
  o.text_width = 64;
  o.text_layers = 1;
  o.embed_dim = 32;
  o.threads = 2;
  return o;
}

TEST(TinyClipInitTest, FollowsOpenAisInitialisationAndDependsOnlyOnTheSeed) {
  TinyClipOptions o;
  o.text_layers = 4;
  auto build = [&](uint64_t seed) {
    clip::Clip m(TinyClipModelOptions(o, 2000));
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
    InitializeClipParameters(*m, g);
    return m;
  };
  clip::Clip a = build(5), b = build(5), c = build(6);
  EXPECT_NEAR(a->token_embedding->weight.std().item<float>(), 0.02, 0.001);
  EXPECT_NEAR(a->positional_embedding.std().item<float>(), 0.01, 0.0005);
  EXPECT_NEAR(a->text_projection.std().item<float>(), 1.0 / std::sqrt(128.0), 0.005);
  auto* block = a->transformer->resblocks[0]->as<clip::ResidualAttentionBlock>();
  EXPECT_NEAR(block->attn->in_proj_weight.std().item<float>(), 1.0 / std::sqrt(128.0), 0.003);
  EXPECT_NEAR(block->attn->out_proj->weight.std().item<float>(), 1.0 / std::sqrt(128.0) / std::sqrt(8.0), 0.002);
  EXPECT_NEAR(block->mlp->c_fc->weight.std().item<float>(), 1.0 / std::sqrt(256.0), 0.002);
  EXPECT_EQ(block->attn->in_proj_bias.abs().max().item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(a->logit_scale.item<float>(), std::log(1.0f / 0.07f));
  EXPECT_EQ(a->options.vision.heads(), 2);
  auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters();
  bool any_differs = false;
  for (const auto& p : pa) {
    EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
    any_differs = any_differs || !torch::equal(p.value(), pc[p.key()]);
  }
  EXPECT_TRUE(any_differs);
}

TEST(TinyClipOptionsTest, RejectsWidthsTheLoaderCannotInferAndSaysWhich) {
  TinyClipOptions o;
  o.vision_width = 96;
  EXPECT_NE(o.Validate().message().find("vision_width"), std::string::npos);
  o = TinyClipOptions();
  o.patch_size = 5;
  EXPECT_NE(o.Validate().message().find("patch size"), std::string::npos);
  EXPECT_OK(TinyClipOptions().Validate());
  auto round_trip = TinyClipOptions::FromJson(QuickOptions("/data").ToJson());
  ASSERT_OK(round_trip);
  EXPECT_EQ(round_trip->ToJson(), QuickOptions("/data").ToJson());
}

TEST(TinyClipTrainerTest, MissingDataSaysHowToImportIt) {
  TinyClipOptions o;
  o.data_root = "/nonexistent/data";
  auto t = TinyClipTrainer::Create(o);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("atp data import-fashion-mnist --out /nonexistent/data"), std::string::npos)
      << t.status().message();
}

class TinyClipTrainerDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    root_ = SmallFashionMnistRoot(&why);
    if (root_.empty()) GTEST_SKIP() << "Fashion-MNIST not available, skipping: " << why;
  }
  std::string root_;
};

TEST_F(TinyClipTrainerDataTest, ShortRunLossFallsAndTheCheckpointReloadsWithIdenticalLogits) {
  auto created = TinyClipTrainer::Create(QuickOptions(root_));
  ASSERT_OK(created);
  TinyClipTrainer& t = **created;
  EXPECT_EQ(t.report().train_images, 200);
  EXPECT_EQ(t.report().test_images, 100);
  std::vector<EpochProgress> seen;
  ASSERT_OK(t.Train([&](const EpochProgress& p) { seen.push_back(p); }));
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen.back().epoch, 4);
  EXPECT_GT(seen[0].images_per_second, 0.0);
  const auto& losses = t.report().epoch_losses;
  ASSERT_EQ(losses.size(), 4u);
  EXPECT_LT(losses.back(), losses.front()) << "loss did not fall: " << losses.front() << " -> " << losses.back();
  ASSERT_OK(t.Evaluate());
  EXPECT_EQ(t.report().per_class.size(), 10u);
  EXPECT_GE(t.report().zero_shot_accuracy, 0.0);

  TempDir out;
  ASSERT_OK(t.Save(out.path()));
  const TinyClipPaths paths = TinyClipPathsIn(out.path());
  auto loaded = clip::LoadClip(paths.checkpoint);
  ASSERT_OK(loaded);
  EXPECT_EQ((*loaded)->options.ToString(), t.model()->options.ToString());
  EXPECT_EQ((*loaded)->options.text.vocab_size(), t.tokenizer().vocab_size());
  torch::NoGradGuard no_grad;
  const torch::Tensor pixels = t.TestPixels(16), ids = t.ZeroShotTokenIds();
  torch::Tensor want = t.model()->Logits(t.model()->EncodeImage(pixels), t.model()->EncodeText(ids));
  torch::Tensor got = (*loaded)->Logits((*loaded)->EncodeImage(pixels), (*loaded)->EncodeText(ids));
  EXPECT_TRUE(torch::equal(got, want));

  // The vocabulary file gives the same tokenizer, and the report reads back.
  auto vocab = clip::ClipTokenizer::Load(paths.vocabulary);
  ASSERT_OK(vocab);
  EXPECT_EQ((*vocab)->vocab_size(), t.tokenizer().vocab_size());
  EXPECT_EQ((*vocab)->Encode("X X shape X X Ankle boot.").value(), t.tokenizer().Encode("X X shape X X Ankle boot.").value());
  auto report = ReadTinyClipReport(paths.report);
  ASSERT_OK(report);
  EXPECT_EQ(report->ToJson(), t.report().ToJson());
  EXPECT_GT(report->total_seconds, 0.0);
}

TEST_F(TinyClipTrainerDataTest, SameSeedGivesTheSameWeights) {
  TinyClipOptions o = QuickOptions(root_);
  o.epochs = 1;
  std::vector<clip::Clip> models;
  for (int run = 0; run < 2; ++run) {
    auto t = TinyClipTrainer::Create(o);
    ASSERT_OK(t);
    ASSERT_OK((*t)->Train());
    models.push_back((*t)->model());
  }
  auto a = models[0]->named_parameters(), b = models[1]->named_parameters();
  for (const auto& p : a) EXPECT_TRUE(torch::equal(p.value(), b[p.key()])) << p.key();
}

}  // namespace
}  // namespace atp::pretrain
