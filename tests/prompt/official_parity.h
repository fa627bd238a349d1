// The official-parity fixtures (tests/prompt/fixtures/official/, described in its README):
// tensors written by the released ATPrompt classes for a small random CLIP, read back here, and
// the atp model each case stands for, built with the same settings and loaded with the official
// learned tensors. Shared by the parity tests of every method. Plain functions, no state.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/json.h"
#include "tests/support/status_matchers.h"
#include "worker/clip/clip_checkpoint.h"
#include "worker/prompt/method_config.h"
#include "worker/prompt/prompt_methods.h"
#include "worker/prompt/prompt_model.h"
#include "tests/prompt/prompt_test_util.h"

namespace atp::prompt::testing {

// fp32 arithmetic on both sides: what the official classes and atp compute may differ by
// summation order only. The bound is 1e-5 absolute for tensors within [-1, 1] and 1e-5 of the
// largest magnitude beyond (logits reach 60 at logit scale 100, where one fp32 step is 4e-6).
constexpr double kParityTolerance = 1e-5;

inline std::string OfficialFixtureDir() { return std::string(ATP_PROMPT_FIXTURE_DIR) + "/official"; }

// The parity CLIP's token embedding, a formula rather than 49408 stored rows:
// row i, column j = ((7919 i + 104729 j) mod 1021 − 510) / 1024 (exact in fp16 and fp32).
inline torch::Tensor FormulaTokenEmbedding(int64_t rows, int64_t dim) {
  torch::Tensor i = torch::arange(rows, torch::kLong).unsqueeze(1);
  torch::Tensor j = torch::arange(dim, torch::kLong).unsqueeze(0);
  return ((i * 7919 + j * 104729).remainder(1021) - 510).to(torch::kFloat) / 1024;
}

// parity_clip.pt (OpenAI state-dict layout, fp16, text width 64, vision width 64, 3 + 3
// blocks, 16×16 pixels in 8×8 patches, embed 32) plus the formula's token embedding.
inline clip::StateDict ParityClipState() {
  auto state = clip::ReadClipStateDict(OfficialFixtureDir() + "/parity_clip.pt");
  EXPECT_OK(state);
  if (!state.ok()) return {};
  const int64_t width = state->at("ln_final.weight").size(0);
  (*state)["token_embedding.weight"] = FormulaTokenEmbedding(49408, width);
  return *state;
}

inline clip::Clip ParityClip() {
  auto model = clip::ClipFromStateDict(ParityClipState(), "parity_clip.pt");
  EXPECT_OK(model);
  return model.ok() ? *model : clip::Clip(nullptr);
}

// One case of index.json and its tensors: "state.<key>" the learned tensors as the official
// trainer saves them, "out.<name>" what the official classes computed, "grad.<parameter>" the
// gradients of the training loss, "in.<name>" inputs.
struct OfficialCase {
  Json meta;
  clip::StateDict tensors;

  std::string name() const { return meta["name"].get<std::string>(); }
  std::string method() const { return meta["method"].get<std::string>(); }
  std::vector<std::string> attributes() const { return meta["attributes"].get<std::vector<std::string>>(); }
  std::vector<std::string> class_names() const { return meta["classnames"].get<std::vector<std::string>>(); }
  const torch::Tensor& at(const std::string& key) const {
    auto it = tensors.find(key);
    if (it == tensors.end()) throw std::out_of_range(name() + " has no tensor '" + key + "'");
    return it->second;
  }
  bool has(const std::string& key) const { return tensors.count(key) > 0; }
  // The tensors under `prefix`, without it.
  std::map<std::string, torch::Tensor> Part(const std::string& prefix) const {
    std::map<std::string, torch::Tensor> out;
    for (const auto& [key, value] : tensors) {
      if (key.rfind(prefix, 0) == 0) out[key.substr(prefix.size())] = value;
    }
    return out;
  }
  // Whether compat = "paper" computes what the official code does for this case: not when the
  // official learner keeps '_' in class names or cuts a multi-token attribute word, nor, once
  // MaPLe's deep prompts take part, when it places them by N_CTX while the attribute blocks
  // are N_ATT long.
  bool PaperAgrees(bool with_deep_prompts) const {
    const auto words = attributes();
    if (meta["keep_underscores"].get<bool>()) return false;
    if (std::find(words.begin(), words.end(), "playfulness") != words.end()) return false;
    if (with_deep_prompts && method() == "maple" && !words.empty() &&
        meta["attribute_ctx"].get<int>() != meta["n_ctx"].get<int>()) {
      return false;
    }
    return true;
  }
};

inline std::vector<Json> OfficialIndex() {
  std::ifstream in(OfficialFixtureDir() + "/index.json");
  EXPECT_TRUE(in) << "missing " << OfficialFixtureDir() << "/index.json";
  if (!in) return {};
  return Json::parse(in)["cases"].get<std::vector<Json>>();
}

inline OfficialCase LoadOfficialCase(const Json& meta) {
  OfficialCase c;
  c.meta = meta;
  auto tensors = clip::ReadClipStateDict(OfficialFixtureDir() + "/" + meta["file"].get<std::string>());
  EXPECT_OK(tensors);
  if (tensors.ok()) c.tensors = *tensors;
  return c;
}

inline OfficialCase LoadOfficialCaseNamed(const std::string& name) {
  for (const Json& meta : OfficialIndex()) {
    if (meta["name"].get<std::string>() == name) return LoadOfficialCase(meta);
  }
  ADD_FAILURE() << "no official case '" << name << "' in index.json";
  return {};
}

// The PromptSRC / IVLP cases (official/promptsrc/, written by the released PromptSRC and
// December-2024 ATPrompt classes; the README's table lists them).
inline std::vector<Json> PromptSrcIndex() {
  std::ifstream in(OfficialFixtureDir() + "/promptsrc/index.json");
  EXPECT_TRUE(in) << "missing " << OfficialFixtureDir() << "/promptsrc/index.json";
  if (!in) return {};
  std::vector<Json> cases = Json::parse(in)["cases"].get<std::vector<Json>>();
  for (Json& meta : cases) meta["file"] = "promptsrc/" + meta["file"].get<std::string>();
  return cases;
}

inline OfficialCase LoadPromptSrcCase(const std::string& name) {
  for (const Json& meta : PromptSrcIndex()) {
    if (meta["name"].get<std::string>() == name) return LoadOfficialCase(meta);
  }
  ADD_FAILURE() << "no PromptSRC case '" << name << "' in promptsrc/index.json";
  return {};
}

// The settings the official run had, as an atp MethodConfig in the given compat mode. Paper
// mode replaces '_' in class names (the official *_atp.py learners keep it with ATPrompt off).
inline MethodConfig OfficialConfig(const OfficialCase& c, Compat compat) {
  MethodConfig config;
  config.method = c.method();
  config.protocol = "base2novel";
  config.design.n_ctx = c.meta["n_ctx"].get<int>();
  config.design.attributes = c.attributes();
  config.atprompt = !config.design.attributes.empty();
  config.design.attribute_ctx.assign(config.design.attributes.size(), c.meta["attribute_ctx"].get<int>());
  config.design.compat = compat;
  config.design.ctx_init = c.meta["ctx_init"].get<std::string>();
  config.design.keep_underscores = compat == Compat::kOfficial && c.meta["keep_underscores"].get<bool>();
  config.maple_depth = std::max(1, c.meta["depth"].get<int>());
  config.dept_weight = 0.7;  // LINEAR_PROBE.WEIGHT in the official train.py
  return config;
}

// The atp model of a case with the official learned tensors loaded (strictly, through the
// same LoadStateDict that reads published checkpoints).
template <typename Model>
std::unique_ptr<Model> OfficialModel(const OfficialCase& c, Compat compat, clip::Clip clip,
                                     std::shared_ptr<const clip::ClipTokenizer> tokenizer) {
  torch::manual_seed(0);
  auto made = MakePromptModel(OfficialConfig(c, compat), clip.ptr(), tokenizer, c.class_names());
  EXPECT_OK(made);
  if (!made.ok()) return nullptr;
  Status loaded = (*made)->LoadStateDict(c.Part("state."));
  EXPECT_OK(loaded);
  auto* typed = dynamic_cast<Model*>(made->get());
  EXPECT_NE(typed, nullptr) << c.name() << ": not the expected model type";
  if (typed == nullptr || !loaded.ok()) return nullptr;
  made->release();
  return std::unique_ptr<Model>(typed);
}

inline double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined() || !b.defined() || a.sizes() != b.sizes()) return INFINITY;
  return (a.detach().to(torch::kDouble) - b.detach().to(torch::kDouble)).abs().max().item<double>();
}

// Records the figure (ctest XML and a line on stdout, for the parity table) and checks it.
inline void ExpectClose(const std::string& label, const torch::Tensor& ours, const torch::Tensor& official,
                        double tolerance = kParityTolerance) {
  ASSERT_TRUE(ours.defined()) << label << ": atp gave no tensor";
  ASSERT_EQ(ours.sizes(), official.sizes()) << label;
  const double diff = MaxAbsDiff(ours, official);
  const double bound = tolerance * std::max(1.0, official.abs().max().item<double>());
  std::printf("[parity] %-58s max|diff| = %.3g (bound %.3g)\n", label.c_str(), diff, bound);
  ::testing::Test::RecordProperty("max_abs_diff_" + label, std::to_string(diff));
  EXPECT_LE(diff, bound) << label;
}

// The tokens of each class prompt, up to the fixture's length, against the official
// tokenized_prompts (exact).
inline void ExpectSameTokens(const std::string& label, const PromptLayout& layout, const torch::Tensor& official) {
  const torch::Tensor ids = official.to(torch::kLong);
  ASSERT_EQ(ids.size(0), static_cast<int64_t>(layout.classes.size())) << label;
  int64_t mismatches = 0;
  for (int64_t k = 0; k < ids.size(0); ++k) {
    for (int64_t p = 0; p < ids.size(1); ++p) {
      const int64_t ours = layout.classes[static_cast<size_t>(k)].template_ids[static_cast<size_t>(p)];
      if (ours != ids[k][p].item<int64_t>()) ++mismatches;
    }
  }
  std::printf("[parity] %-58s token mismatches = %lld\n", (label + " tokens").c_str(),
              static_cast<long long>(mismatches));
  EXPECT_EQ(mismatches, 0) << label << ": token layout differs from the official tokenized_prompts";
}

// The training loss of the case's batch (in.labels, the whole batch on one rank) and the
// gradient of every tensor atp trains, against the official loss.backward(): the same tensors
// must receive gradients on both sides (the official ones that never get one are absent).
inline void ExpectOfficialLossAndGradients(const std::string& label, PromptModel& model, const torch::Tensor& input,
                                           const OfficialCase& c) {
  NamedTensors parameters = model.TrainableParameters();
  for (auto& [name, p] : parameters) {
    p.set_requires_grad(true);
    p.mutable_grad() = torch::Tensor();
  }
  const torch::Tensor labels = c.at("in.labels").to(torch::kLong);
  torch::Tensor loss = model.TrainLoss(input, labels, labels.size(0));
  ExpectClose(label + " loss", loss.detach().reshape({1}), c.at("out.loss"));
  loss.backward();
  const auto official = c.Part("grad.");
  std::set<std::string> ours;
  for (auto& [name, p] : parameters) {
    ours.insert(name);
    auto it = official.find(name);
    if (it == official.end()) {
      ADD_FAILURE() << label << ": atp trains " << name << " but the official code gives it no gradient";
      continue;
    }
    ExpectClose(label + " grad " + name, p.grad(), it->second);
  }
  for (const auto& [name, grad] : official) {
    EXPECT_TRUE(ours.count(name)) << label << ": the official code trains " << name << ", atp does not";
  }
  for (auto& [name, p] : parameters) p.set_requires_grad(false);
}

}  // namespace atp::prompt::testing
