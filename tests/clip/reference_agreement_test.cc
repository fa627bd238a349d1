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

}  // namespace
}  // namespace atp::clip
