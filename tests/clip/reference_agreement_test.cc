// Agreement with OpenAI's reference clip/model.py (run once, outside this repository, on the
// same weights and inputs; its outputs are the fixtures). The tiny models' weights are fixture
// archives written by Python (fp16, as OpenAI's are); the ViT-B/16-sized weights come from
// hash_weights.h, which the reference run reproduced bit for bit.
#include <gtest/gtest.h>

#include <iostream>

#include "tests/clip/clip_test_util.h"
#include "tests/clip/hash_weights.h"
#include "tests/support/status_matchers.h"
#include "worker/clip/clip_checkpoint.h"
#include "worker/clip/npy.h"

namespace atp::clip {
namespace {

using testing::FixturePath;

torch::Tensor LoadNpyTensor(const std::string& name) {
  auto a = ReadNpy(FixturePath(name));
  EXPECT_OK(a);
  if (!a.ok()) return torch::Tensor();
  std::vector<float> v = a->ToFloat32();
  return torch::from_blob(v.data(), a->shape, torch::kFloat32).clone();
}

float MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<float>(); }

void CheckTinyModel(const std::string& prefix, const std::string& archive) {
  auto model = LoadClip(FixturePath(archive));
  ASSERT_OK(model);
  torch::Tensor images = LoadNpyTensor(prefix + "_images.npy");
  torch::Tensor ids = LoadNpyTensor(prefix + "_text_ids.npy").to(torch::kLong);
  torch::Tensor img = (*model)->EncodeImage(images);
  torch::Tensor txt = (*model)->EncodeText(ids);
  float di = MaxAbsDiff(img, LoadNpyTensor(prefix + "_image_features.npy"));
  float dt = MaxAbsDiff(txt, LoadNpyTensor(prefix + "_text_features.npy"));
  std::cout << archive << ": max abs diff image " << di << ", text " << dt << "\n";
  EXPECT_LE(di, 1e-5f);
  EXPECT_LE(dt, 1e-5f);
  EXPECT_FLOAT_EQ((*model)->logit_scale.item<float>(), LoadNpyTensor(prefix + "_logit_scale.npy")[0].item<float>());
}

TEST(ClipReferenceAgreementTest, TinyStateDictArchiveMatchesReference) {
  CheckTinyModel("tiny", "tiny_state_dict.pt");
}

TEST(ClipReferenceAgreementTest, TinyTorchScriptArchiveMatchesReference) {
  CheckTinyModel("tiny1", "tiny1_torchscript.pt");
}

TEST(ClipReferenceAgreementTest, VitB16SizedWeightsMatchReference) {
  torch::NoGradGuard no_grad;
  auto model = ClipFromStateDict(testing::HashStateDict(testing::VitB16Options()), "hash ViT-B/16");
  ASSERT_OK(model);
  torch::Tensor pixels = testing::HashTensor("pixels", {2, 3, 224, 224}, 0.0, 1.5);
  torch::Tensor ids = LoadNpyTensor("vitb16_text_ids.npy").to(torch::kLong);
  torch::Tensor img = (*model)->EncodeImage(pixels);
  torch::Tensor want_img = LoadNpyTensor("vitb16_image_features.npy");
  torch::Tensor want_txt = LoadNpyTensor("vitb16_text_features.npy");
  torch::Tensor emb = (*model)->text()->Embed(ids);
  torch::Tensor eot = EotPositions(ids);
  torch::Tensor txt_fast = (*model)->EncodeTextEmbeddings(emb, eot, {}, true);
  torch::Tensor txt_full = (*model)->EncodeTextEmbeddings(emb, eot, {}, false);
  float di = MaxAbsDiff(img, want_img), df = MaxAbsDiff(txt_fast, want_txt), dl = MaxAbsDiff(txt_full, want_txt);
  std::cout << "ViT-B/16-sized: max abs diff image " << di << " (features up to "
            << want_img.abs().max().item<float>() << "), text truncated " << df << ", text full 77 " << dl
            << " (features up to " << want_txt.abs().max().item<float>() << ")\n";
  EXPECT_LE(di, 1e-4f);
  EXPECT_LE(df, 1e-4f);
  EXPECT_LE(dl, 1e-4f);
}

TEST(ClipReferenceAgreementTest, VitL14ArchitectureMatchesReference) {
  // ViT-L/14's layer count, widths, heads and patch size at a 28-pixel input (the reference
  // features were computed at the same reduced input; hash_weights.h).
  torch::NoGradGuard no_grad;
  const ClipOptions options = testing::VitL14ReducedInputOptions();
  // The hashed model is built directly; its shapes must be what a real ViT-L/14 checkpoint
  // infers to (apart from the positional embedding's rows).
  TensorShapes shapes = ExpectedClipShapes(options);
  auto inferred = InferClipOptions(shapes, "ViT-L/14-shaped");
  ASSERT_OK(inferred);
  EXPECT_EQ(inferred->ToString(), options.ToString());
  EXPECT_EQ(shapes.at("visual.conv1.weight"), (std::vector<int64_t>{1024, 3, 14, 14}));
  EXPECT_EQ(shapes.at("visual.proj"), (std::vector<int64_t>{1024, 768}));
  EXPECT_EQ(shapes.at("text_projection"), (std::vector<int64_t>{768, 768}));
  EXPECT_TRUE(shapes.count("visual.transformer.resblocks.23.mlp.c_proj.weight"));
  EXPECT_FALSE(shapes.count("visual.transformer.resblocks.24.mlp.c_proj.weight"));

  Clip model = testing::HashClip(options);
  torch::Tensor pixels = testing::HashTensor("pixels", {2, 3, 28, 28}, 0.0, 1.5);
  torch::Tensor ids = LoadNpyTensor("vitb16_text_ids.npy").to(torch::kLong);
  torch::Tensor img = model->EncodeImage(pixels);
  torch::Tensor txt = model->EncodeText(ids);
  torch::Tensor want_img = LoadNpyTensor("vitl14_image_features.npy");
  torch::Tensor want_txt = LoadNpyTensor("vitl14_text_features.npy");
  ASSERT_EQ(img.sizes(), want_img.sizes());
  ASSERT_EQ(txt.sizes(), want_txt.sizes());
  float di = MaxAbsDiff(img, want_img), dt = MaxAbsDiff(txt, want_txt);
  std::cout << "ViT-L/14-sized (28 px input): max abs diff image " << di << " (features up to "
            << want_img.abs().max().item<float>() << "), text " << dt << " (features up to "
            << want_txt.abs().max().item<float>() << ")\n";
  EXPECT_LE(di, 1e-4f);
  EXPECT_LE(dt, 1e-4f);
}

}  // namespace
}  // namespace atp::clip
