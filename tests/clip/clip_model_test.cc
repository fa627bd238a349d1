#include "worker/clip/clip_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "tests/clip/hash_weights.h"
#include "tests/support/status_matchers.h"
#include "worker/clip/clip_checkpoint.h"

namespace atp::clip {
namespace {

using testing::HashStateDict;
using testing::TinyOptions;

class ClipModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(0);
    auto m = ClipFromStateDict(HashStateDict(TinyOptions()), "tiny");
    ASSERT_OK(m);
    model_ = *m;
  }
  // Ids with <|endoftext|> (the largest id, 99 here) at `eot`, random tokens before it.
  torch::Tensor Ids(std::vector<int64_t> eots) {
    torch::Tensor ids = torch::zeros({static_cast<int64_t>(eots.size()), 77}, torch::kLong);
    for (size_t r = 0; r < eots.size(); ++r) {
      ids[r].narrow(0, 0, eots[r]).copy_(torch::randint(1, 99, {eots[r]}));
      ids[r][eots[r]] = 99;
    }
    return ids;
  }
  Clip model_{nullptr};
};

TEST_F(ClipModelTest, ParameterNamesAreOpenAiStateDictKeys) {
  auto expected = ExpectedClipShapes(TinyOptions());
  std::set<std::string> names;
  for (const auto& p : model_->named_parameters()) {
    names.insert(p.key());
    ASSERT_TRUE(expected.count(p.key())) << "unexpected parameter " << p.key();
    EXPECT_EQ(p.value().sizes().vec(), expected.at(p.key())) << p.key();
  }
  EXPECT_EQ(names.size(), expected.size());
  EXPECT_TRUE(names.count("visual.transformer.resblocks.1.attn.in_proj_weight"));
  EXPECT_TRUE(names.count("transformer.resblocks.0.mlp.c_fc.bias"));
}

TEST_F(ClipModelTest, InfersPublishedArchitecturesFromShapes) {
  struct Arch {
    int64_t vw, vl, patch, tw, embed;
  };
  for (Arch a : {Arch{768, 12, 32, 512, 512}, Arch{768, 12, 16, 512, 512}, Arch{1024, 24, 14, 768, 768}}) {
    ClipOptions o;
    o.vision.input_resolution(224).patch_size(a.patch).width(a.vw).layers(a.vl).heads(a.vw / 64).output_dim(a.embed);
    o.text.width(a.tw).heads(a.tw / 64).layers(12).embed_dim(a.embed);
    auto inferred = InferClipOptions(ExpectedClipShapes(o), "shapes");
    ASSERT_OK(inferred);
    EXPECT_EQ(inferred->vision.width(), a.vw);
    EXPECT_EQ(inferred->vision.layers(), a.vl);
    EXPECT_EQ(inferred->vision.heads(), a.vw / 64);
    EXPECT_EQ(inferred->vision.patch_size(), a.patch);
    EXPECT_EQ(inferred->vision.input_resolution(), 224);
    EXPECT_EQ(inferred->vision.output_dim(), a.embed);
    EXPECT_EQ(inferred->text.width(), a.tw);
    EXPECT_EQ(inferred->text.heads(), a.tw / 64);
    EXPECT_EQ(inferred->text.layers(), 12);
    EXPECT_EQ(inferred->text.context_length(), 77);
    EXPECT_EQ(inferred->text.vocab_size(), 49408);
  }
}

TEST_F(ClipModelTest, FeaturesHaveEmbedWidth) {
  torch::Tensor img = model_->EncodeImage(torch::randn({3, 3, 16, 16}));
  torch::Tensor txt = model_->EncodeText(Ids({4, 9}));
  EXPECT_EQ(img.sizes().vec(), (std::vector<int64_t>{3, 32}));
  EXPECT_EQ(txt.sizes().vec(), (std::vector<int64_t>{2, 32}));
  torch::Tensor logits = model_->Logits(img, txt);
  EXPECT_EQ(logits.sizes().vec(), (std::vector<int64_t>{3, 2}));
  EXPECT_LE(logits.abs().max().item<float>(), 100.0f + 1e-3f);  // |cos| <= 1 times exp(4.605)
  EXPECT_THROW(model_->EncodeImage(torch::randn({1, 3, 32, 32})), c10::Error);
}

TEST_F(ClipModelTest, TextIsPooledAtTheEndToken) {
  torch::Tensor ids = Ids({6});
  torch::Tensor base = model_->EncodeText(ids);
  // Tokens after the end token cannot matter (causal mask); tokens before it do.
  torch::Tensor after = ids.clone();
  after[0].narrow(0, 7, 70).fill_(5);
  EXPECT_TRUE(torch::allclose(model_->EncodeText(after), base, 1e-5, 1e-6));
  torch::Tensor before = ids.clone();
  before[0][3] = (before[0][3].item<int64_t>() % 98) + 1;
  EXPECT_FALSE(torch::allclose(model_->EncodeText(before), base, 1e-4, 1e-5));
  // Pooling at position p equals the full transformer's row p, projected.
  auto text = model_->text();
  torch::Tensor x = text->Embed(ids) + text->positional_embedding;
  x = text->ln_final(text->transformer(x, CausalMask(77, x.options())));
  torch::Tensor manual = torch::matmul(x.select(1, 6), text->text_projection);
  EXPECT_TRUE(torch::allclose(manual, base, 1e-5, 1e-6));
}

TEST_F(ClipModelTest, StoppingAfterTheLastEndTokenMatchesTheFullSequence) {
  torch::Tensor ids = Ids({3, 17, 40, 76});
  torch::Tensor emb = model_->text()->Embed(ids);
  torch::Tensor eot = EotPositions(ids);
  torch::Tensor fast = model_->EncodeTextEmbeddings(emb, eot, {}, true);
  torch::Tensor full = model_->EncodeTextEmbeddings(emb, eot, {}, false);
  EXPECT_LE((fast - full).abs().max().item<float>(), 1e-5f);
  torch::Tensor short_ids = Ids({3, 9});
  torch::Tensor e2 = model_->text()->Embed(short_ids);
  int64_t seen_length = -1;
  model_->EncodeTextEmbeddings(e2, EotPositions(short_ids), [&](int64_t, const torch::Tensor& x) {
    seen_length = x.size(1);
    return x;
  });
  EXPECT_EQ(seen_length, 10);  // positions 0..9 only
}

TEST_F(ClipModelTest, HooksSeeEveryLayerInOrderAndCanReplaceTokens) {
  torch::Tensor ids = Ids({8, 5});
  torch::Tensor emb = model_->text()->Embed(ids);
  torch::Tensor eot = EotPositions(ids);
  std::vector<int64_t> layers;
  torch::Tensor same = model_->EncodeTextEmbeddings(emb, eot, [&](int64_t layer, const torch::Tensor& x) {
    layers.push_back(layer);
    EXPECT_EQ(x.size(0), 2);
    EXPECT_EQ(x.size(2), 64);
    return x;
  });
  EXPECT_EQ(layers, (std::vector<int64_t>{0, 1}));
  EXPECT_TRUE(torch::allclose(same, model_->EncodeTextEmbeddings(emb, eot), 1e-6, 1e-7));
  // A deep prompt: replace token 1 before layer 1 (as MaPLe does); only that changes the result.
  torch::Tensor prompt = torch::randn({64}, torch::requires_grad());
  torch::Tensor deep = model_->EncodeTextEmbeddings(emb, eot, [&](int64_t layer, const torch::Tensor& x) {
    if (layer != 1) return x;
    torch::Tensor y = x.clone();
    y.select(1, 1).copy_(prompt.expand({2, 64}));
    return y;
  });
  EXPECT_FALSE(torch::allclose(deep, same, 1e-4, 1e-5));
  deep.sum().backward();
  ASSERT_TRUE(prompt.grad().defined());
  EXPECT_GT(prompt.grad().abs().sum().item<float>(), 0.0f);
  // Text hooks must keep the shape.
  EXPECT_THROW(model_->EncodeTextEmbeddings(emb, eot,
                                            [](int64_t, const torch::Tensor& x) { return x.narrow(1, 0, 2); }),
               c10::Error);
}

TEST_F(ClipModelTest, VisionHooksMayAppendTokens) {
  torch::Tensor pixels = torch::randn({2, 3, 16, 16});
  std::vector<int64_t> lengths;
  torch::Tensor base = model_->EncodeImage(pixels);
  torch::Tensor same = model_->EncodeImage(pixels, [&](int64_t layer, const torch::Tensor& x) {
    lengths.push_back(x.size(1));
    return x;
  });
  EXPECT_EQ(lengths, (std::vector<int64_t>{5, 5}));  // class token + 2x2 patches
  EXPECT_TRUE(torch::allclose(same, base, 1e-6, 1e-7));
  torch::Tensor prompts = torch::randn({1, 3, 64}, torch::requires_grad());
  lengths.clear();
  torch::Tensor prompted = model_->EncodeImage(pixels, [&](int64_t layer, const torch::Tensor& x) {
    lengths.push_back(x.size(1));
    if (layer == 0) return torch::cat({x, prompts.expand({2, 3, 64})}, 1);
    return x;
  });
  EXPECT_EQ(lengths, (std::vector<int64_t>{5, 8}));
  EXPECT_TRUE(prompted.requires_grad());
  EXPECT_FALSE(torch::allclose(prompted, base, 1e-4, 1e-5));
}

TEST_F(ClipModelTest, FrozenPromptFreeImageTowerRunsWithoutAutograd) {
  torch::Tensor pixels = torch::randn({1, 3, 16, 16});
  EXPECT_FALSE(model_->EncodeImage(pixels).requires_grad());
  model_->visual->proj.set_requires_grad(true);
  EXPECT_TRUE(model_->EncodeImage(pixels).requires_grad());
  model_->visual->proj.set_requires_grad(false);
}

// Text rows whose first positions come from the same tensors: computing those positions once
// per group (SharedPrefix) must give the full computation's features and the same gradients
// to the shared tensor and to every row's own positions. Four heads, three layers: the head
// split and the last block's pooled-rows-only path are both exercised.
class SharedPrefixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(0);
    ClipOptions options = TinyOptions();
    options.text.heads(4).layers(3);
    auto m = ClipFromStateDict(HashStateDict(options), "tiny, 4 heads");
    ASSERT_OK(m);
    model_ = *m;
  }

  struct Run {
    torch::Tensor features, prefix_grad, suffix_grad;
  };
  // groups x rows_per_group rows: group g's first `prefix` positions are prefix[g] (learned),
  // then each row's own `suffix` positions (learned too); end-of-text at `eot`.
  Run Encode(const torch::Tensor& prefix, const torch::Tensor& suffix, const torch::Tensor& eot, bool shared) {
    torch::Tensor p = prefix.detach().clone().set_requires_grad(true);
    torch::Tensor s = suffix.detach().clone().set_requires_grad(true);
    const int64_t groups = p.size(0), rows = s.size(0), per_group = rows / groups;
    torch::Tensor starts = p.unsqueeze(1).expand({groups, per_group, p.size(1), p.size(2)})
                               .reshape({rows, p.size(1), p.size(2)});
    torch::Tensor embeddings = torch::cat({starts, s}, 1);
    SharedPrefix layout;
    if (shared) layout = {p.size(1), per_group};
    torch::Tensor features = model_->EncodeTextEmbeddings(embeddings, eot, {}, true, layout);
    torch::Tensor weights = torch::linspace(-1, 1, features.numel()).view(features.sizes());
    (features * weights).sum().backward();
    return {features.detach(), p.grad(), s.grad()};
  }

  static void ExpectClose(const torch::Tensor& a, const torch::Tensor& b, const char* what) {
    ASSERT_EQ(a.sizes(), b.sizes()) << what;
    const double scale = std::max(1.0, b.abs().max().item<double>());
    EXPECT_LT((a - b).abs().max().item<double>(), 2e-5 * scale) << what;
  }

  Clip model_{nullptr};
};

TEST_F(SharedPrefixTest, OneGroupMatchesTheFullComputationAndItsGradients) {
  torch::Tensor prefix = torch::randn({1, 6, 64}) * 0.1;
  torch::Tensor suffix = torch::randn({5, 9, 64}) * 0.1;
  torch::Tensor eot = torch::tensor({8, 10, 14, 9, 12}, torch::kLong);  // rows of unequal length
  Run full = Encode(prefix, suffix, eot, false);
  Run shared = Encode(prefix, suffix, eot, true);
  ExpectClose(shared.features, full.features, "features");
  ExpectClose(shared.prefix_grad, full.prefix_grad, "gradient of the shared positions");
  ExpectClose(shared.suffix_grad, full.suffix_grad, "gradient of each row's own positions");
  // The rows really differ, and the gradient reaches every shared position.
  EXPECT_GT((full.features[0] - full.features[1]).abs().max().item<double>(), 1e-3);
  EXPECT_GT(full.prefix_grad.abs().sum(-1).min().item<double>(), 0.0);
}

TEST_F(SharedPrefixTest, GroupsLikeCocoopsImagesMatchTheFullComputation) {
  torch::Tensor prefix = torch::randn({3, 4, 64}) * 0.1;  // 3 images, each its own context
  torch::Tensor suffix = torch::randn({12, 6, 64}) * 0.1;  // 4 classes per image
  torch::Tensor eot = torch::tensor({6, 9, 7, 8, 6, 9, 7, 8, 6, 9, 7, 8}, torch::kLong);
  Run full = Encode(prefix, suffix, eot, false);
  Run shared = Encode(prefix, suffix, eot, true);
  ExpectClose(shared.features, full.features, "features");
  ExpectClose(shared.prefix_grad, full.prefix_grad, "gradient of each image's shared positions");
  ExpectClose(shared.suffix_grad, full.suffix_grad, "gradient of each row's own positions");
}

}  // namespace
}  // namespace atp::clip
