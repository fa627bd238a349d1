#include "worker/clip/clip_checkpoint.h"

#include <gtest/gtest.h>
#include <torch/serialize.h>

#include <algorithm>
#include <fstream>

#include "tests/clip/clip_test_util.h"
#include "tests/clip/hash_weights.h"
#include "tests/support/status_matchers.h"
#include "tests/support/torch_archive_edit.h"

namespace atp::clip {
namespace {

using testing::FixturePath;
using testing::HashStateDict;
using testing::ReadFile;
using testing::TempDir;
using testing::TinyOptions;

// A state-dict archive as torch.save writes it (zip, data.pkl + data/).
void SaveStateDict(const std::string& path, const StateDict& sd, bool wrap = false) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [k, v] : sd) dict.insert(k, v);
  c10::IValue value(dict);
  if (wrap) {
    c10::impl::GenericDict outer(c10::StringType::get(), c10::AnyType::get());
    outer.insert("state_dict", value);
    outer.insert("epoch", c10::IValue(int64_t{3}));
    value = c10::IValue(outer);
  }
  std::vector<char> bytes = torch::pickle_save(value);
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

class ClipCheckpointTest : public ::testing::Test {
 protected:
  std::string LoadError(const StateDict& sd) {
    auto r = ClipFromStateDict(sd, "ckpt.pt");
    EXPECT_FALSE(r.ok());
    return r.ok() ? "" : r.status().message();
  }
  StateDict sd_ = HashStateDict(TinyOptions());
  TempDir dir_;
};

TEST_F(ClipCheckpointTest, LoadsAStateDictArchiveNameForName) {
  StateDict half;
  for (const auto& [k, v] : sd_) half[k] = v.to(torch::kHalf);
  half["input_resolution"] = torch::tensor(16);  // scalar metadata is dropped
  SaveStateDict(dir_.File("tiny.pt"), half);
  auto model = LoadClip(dir_.File("tiny.pt"));
  ASSERT_OK(model);
  for (const auto& p : (*model)->named_parameters()) {
    EXPECT_EQ(p.value().scalar_type(), torch::kFloat32);
    EXPECT_FALSE(p.value().requires_grad());
    EXPECT_TRUE(torch::equal(p.value(), half.at(p.key()).to(torch::kFloat32))) << p.key();
  }
  EXPECT_EQ((*model)->options.vision.patch_size(), 8);
  EXPECT_EQ((*model)->options.text.vocab_size(), 100);
}

TEST_F(ClipCheckpointTest, LoadsAWrappedStateDict) {
  SaveStateDict(dir_.File("wrapped.pt"), sd_, /*wrap=*/true);
  auto model = LoadClip(dir_.File("wrapped.pt"));
  ASSERT_OK(model);
}

TEST_F(ClipCheckpointTest, LoadsStateDictAndTorchScriptArchivesWrittenByPython) {
  auto sd = ReadClipStateDict(FixturePath("tiny_state_dict.pt"));
  ASSERT_OK(sd);
  EXPECT_EQ(sd->count("input_resolution"), 0u);
  EXPECT_EQ(sd->at("visual.conv1.weight").scalar_type(), torch::kFloat32);
  auto ts = ReadClipStateDict(FixturePath("tiny1_torchscript.pt"));
  ASSERT_OK(ts);
  EXPECT_TRUE(ts->count("visual.transformer.resblocks.0.attn.in_proj_weight"));
  EXPECT_OK(ClipFromStateDict(*ts, "tiny1"));
}

TEST_F(ClipCheckpointTest, MissingFileEmptyFileAndGarbageAreNamed) {
  auto missing = LoadClip(dir_.File("nope.pt"));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.pt"), std::string::npos);
  dir_.Write("empty.pt", "");
  EXPECT_NE(LoadClip(dir_.File("empty.pt")).status().message().find("is empty"), std::string::npos);
  dir_.Write("text.pt", "this is not a checkpoint");
  auto garbage = LoadClip(dir_.File("text.pt"));
  EXPECT_NE(garbage.status().message().find("not a PyTorch archive"), std::string::npos) << garbage.status().message();
  dir_.Write("legacy.pt", std::string("\x80\x02\x8a\x0a", 4) + "rest");
  EXPECT_NE(LoadClip(dir_.File("legacy.pt")).status().message().find("legacy"), std::string::npos);
}

TEST_F(ClipCheckpointTest, TruncatedFileIsReportedAsTruncated) {
  for (const char* fixture : {"tiny_state_dict.pt", "tiny1_torchscript.pt"}) {
    std::string bytes = ReadFile(FixturePath(fixture));
    SCOPED_TRACE(fixture);
    dir_.Write("cut.pt", bytes.substr(0, bytes.size() / 2));
    auto r = LoadClip(dir_.File("cut.pt"));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(dir_.File("cut.pt")), std::string::npos);
  }
}

// Regression: a tensor record shorter than its tensor was read past its end (a segfault in
// `atp clip encode`, or garbage features that changed from run to run) in both formats.
TEST_F(ClipCheckpointTest, ATensorRecordShorterThanItsTensorIsRefused) {
  for (const char* fixture : {"tiny_state_dict.pt", "tiny1_torchscript.pt"}) {
    SCOPED_TRACE(fixture);
    const std::vector<std::string> records = atp::testing::StorageRecords(FixturePath(fixture));
    ASSERT_FALSE(records.empty());
    for (double keep : {0.5, 0.0}) {
      // Shorten the largest record (the one most likely to be touched first).
      std::string largest;
      size_t largest_size = 0;
      atp::testing::RewriteArchive(FixturePath(fixture), dir_.File("probe.pt"), [&](const std::string& name, std::string b) {
        if (std::find(records.begin(), records.end(), name) != records.end() && b.size() > largest_size) {
          largest = name;
          largest_size = b.size();
        }
        return b;
      });
      atp::testing::RewriteArchive(FixturePath(fixture), dir_.File("short.pt"), [&](const std::string& name, std::string b) {
        return name == largest ? b.substr(0, static_cast<size_t>(static_cast<double>(b.size()) * keep)) : b;
      });
      auto r = ReadClipStateDict(dir_.File("short.pt"));
      ASSERT_FALSE(r.ok()) << "kept " << keep << " of " << largest;
      EXPECT_NE(r.status().message().find("record holds"), std::string::npos) << r.status().message();
      EXPECT_NE(r.status().message().find(dir_.File("short.pt")), std::string::npos) << r.status().message();
    }
  }
}

TEST_F(ClipCheckpointTest, MissingTensorsAreListedWithShapes) {
  sd_.erase("visual.ln_post.bias");
  sd_.erase("transformer.resblocks.1.mlp.c_proj.weight");
  std::string msg = LoadError(sd_);
  EXPECT_NE(msg.find("ckpt.pt"), std::string::npos);
  EXPECT_NE(msg.find("missing (2)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("visual.ln_post.bias [64]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("transformer.resblocks.1.mlp.c_proj.weight [64, 256]"), std::string::npos) << msg;
}

TEST_F(ClipCheckpointTest, MisshapedAndUnexpectedTensorsAreListed) {
  sd_["ln_final.bias"] = torch::zeros({65});
  sd_["visual.transformer.resblocks.0.attn.out_proj.weight"] = torch::zeros({64, 32});
  sd_["prompt_learner.ctx"] = torch::zeros({4, 64});
  std::string msg = LoadError(sd_);
  EXPECT_NE(msg.find("ln_final.bias is [65], expected [64]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("visual.transformer.resblocks.0.attn.out_proj.weight is [64, 32], expected [64, 64]"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("unexpected (1)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("prompt_learner.ctx [4, 64]"), std::string::npos) << msg;
}

TEST_F(ClipCheckpointTest, ResNetAndNonClipCheckpointsAreRejected) {
  StateDict rn = {{"visual.layer1.0.conv1.weight", torch::zeros({64, 64, 1, 1})},
                  {"visual.attnpool.positional_embedding", torch::zeros({50, 2048})}};
  std::string msg = LoadError(rn);
  EXPECT_NE(msg.find("ResNet"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ViT"), std::string::npos) << msg;
  StateDict other = {{"fc.weight", torch::zeros({10, 4})}, {"fc.bias", torch::zeros({10})}};
  msg = LoadError(other);
  EXPECT_NE(msg.find("not a CLIP ViT checkpoint"), std::string::npos) << msg;
  EXPECT_NE(msg.find("visual.proj"), std::string::npos) << msg;
  EXPECT_NE(msg.find("fc.weight [10, 4]"), std::string::npos) << msg;
  // The same through a file: a dict that is not CLIP.
  SaveStateDict(dir_.File("other.pt"), other);
  auto r = LoadClip(dir_.File("other.pt"));
  EXPECT_NE(r.status().message().find(dir_.File("other.pt") + ": not a CLIP"), std::string::npos)
      << r.status().message();
}

TEST_F(ClipCheckpointTest, WrongRankIsReportedBeforeInference) {
  sd_["visual.conv1.weight"] = torch::zeros({64, 3, 8});
  std::string msg = LoadError(sd_);
  EXPECT_NE(msg.find("visual.conv1.weight has shape [64, 3, 8], expected 4 dimensions"), std::string::npos) << msg;
}

}  // namespace
}  // namespace atp::clip
