#include "worker/pretrain/clip_state_dict_writer.h"

#include <gtest/gtest.h>

#include <memory>

#include "common/atomic_file.h"
#include "common/json.h"
#include "tests/pretrain/pretrain_test_util.h"
#include "tests/support/python_torch.h"
#include "tests/support/status_matchers.h"
#include "worker/clip/clip_checkpoint.h"
#include "worker/clip/clip_model.h"

namespace atp::pretrain {
namespace {

using testing::TempDir;

clip::Clip SmallRandomClip() {
  clip::ClipOptions o;
  o.vision.input_resolution(16).patch_size(8).width(64).layers(1).heads(1).output_dim(32);
  o.text.context_length(12).vocab_size(600).width(64).layers(2).heads(1).embed_dim(32);
  torch::manual_seed(7);
  clip::Clip model(o);
  torch::NoGradGuard no_grad;
  model->logit_scale.fill_(2.5);
  return model;
}

TEST(ClipStateDictWriterTest, LoadClipReadsBackEveryTensorExactly) {
  TempDir dir;
  clip::Clip model = SmallRandomClip();
  ASSERT_OK(SaveClipStateDict(*model, dir.File("m.pt")));
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_FALSE(IsAtomicWriteTemp(entry.path().filename().string())) << entry.path();
  }
  auto loaded = clip::LoadClip(dir.File("m.pt"));
  ASSERT_OK(loaded);
  EXPECT_EQ((*loaded)->options.ToString(), model->options.ToString());
  auto want = model->named_parameters();
  auto got = (*loaded)->named_parameters();
  ASSERT_EQ(got.size(), want.size());
  for (const auto& p : want) {
    ASSERT_TRUE(got.contains(p.key())) << p.key();
    EXPECT_TRUE(torch::equal(got[p.key()], p.value())) << p.key();
  }
}

TEST(ClipStateDictWriterTest, UnwritableFolderIsAnIoError) {
  clip::Clip model = SmallRandomClip();
  EXPECT_EQ(SaveClipStateDict(*model, "/nonexistent/dir/m.pt").code(), StatusCode::kIoError);
}

TEST(ClipStateDictWriterTest, PythonTorchLoadReadsAStateDictWithOpenAisKeys) {
  std::string why;
  const std::string python = ::atp::testing::PythonWithTorch(&why);
  if (python.empty()) GTEST_SKIP() << why;
  TempDir dir;
  clip::Clip model = SmallRandomClip();
  ASSERT_OK(SaveClipStateDict(*model, dir.File("m.pt")));
  const std::string script =
      "import json, sys, torch\n"
      "sd = torch.load(sys.argv[1], map_location='cpu')\n"
      "print(json.dumps({k: [list(v.shape), str(v.dtype), float(v.double().sum())] for k, v in sd.items()}))\n";
  ::atp::testing::PythonRun run = ::atp::testing::RunPython(python, script, dir.File("m.pt"));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  Json got = Json::parse(run.output);
  auto params = model->named_parameters();
  EXPECT_EQ(got.size(), params.size());
  for (const auto& p : params) {
    ASSERT_TRUE(got.contains(p.key())) << p.key();
    EXPECT_EQ(got[p.key()][0].get<std::vector<int64_t>>(), p.value().sizes().vec()) << p.key();
    EXPECT_EQ(got[p.key()][1], "torch.float32");
    EXPECT_NEAR(got[p.key()][2].get<double>(), p.value().to(torch::kDouble).sum().item<double>(), 1e-6) << p.key();
  }
  EXPECT_TRUE(got.contains("visual.transformer.resblocks.0.attn.in_proj_weight"));
  EXPECT_TRUE(got.contains("token_embedding.weight"));
  EXPECT_NEAR(got["logit_scale"][2].get<double>(), 2.5, 1e-6);
}

}  // namespace
}  // namespace atp::pretrain
