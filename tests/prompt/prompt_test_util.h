// Helpers shared by the prompt-method tests: the real CLIP tokenizer (tests skip without the
// vocabulary), a tiny random CLIP with OpenAI's vocabulary size, and a small Fashion-MNIST
// data root imported once per test binary from Debian's dataset-fashion-mnist (tests skip
// without it). Real images, random weights: the tests check mechanics (the loss falls,
// layouts, resume, ranks), not accuracy.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "worker/clip/clip_model.h"
#include "worker/clip/tokenizer.h"
#include "worker/data/dataset.h"
#include "worker/data/fashion_mnist.h"
#include "tests/support/temp_dir.h"

namespace atp::prompt::testing {

// The real vocabulary, or nullptr with the reason in *why.
inline std::shared_ptr<const clip::ClipTokenizer> RealTokenizer(std::string* why) {
  static std::shared_ptr<const clip::ClipTokenizer> cached;
  static std::string cached_why;
  static bool tried = false;
  if (!tried) {
    tried = true;
    auto path = clip::ResolveVocabPath("");
    if (!path.ok()) {
      cached_why = path.status().message();
    } else {
      auto tok = clip::ClipTokenizer::Load(*path);
      if (tok.ok()) cached = *tok;
      else cached_why = tok.status().message();
    }
  }
  *why = cached_why;
  return cached;
}

#define ATP_REQUIRE_TOKENIZER(var)                                                          \
  std::string var##_why;                                                                    \
  auto var = ::atp::prompt::testing::RealTokenizer(&var##_why);                             \
  if (!var) GTEST_SKIP() << "CLIP vocabulary not found (" << var##_why << ")"

// A random ViT CLIP small enough to train in a test: 32x32 images, 8x8 patches, width 64.
inline clip::ClipOptions TinyClipOptions() {
  clip::ClipOptions o;
  o.vision.input_resolution(32).patch_size(8).width(64).layers(2).heads(2).output_dim(32);
  o.text.context_length(77).vocab_size(49408).width(64).layers(2).heads(2).embed_dim(32);
  return o;
}

// Deterministic random weights (torch::manual_seed(seed) then the module's own init, with
// the projections scaled so features are not degenerate), frozen, eval mode.
inline clip::Clip TinyClip(uint64_t seed = 7) {
  torch::manual_seed(seed);
  clip::Clip model(TinyClipOptions());
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) {
    if (p.dim() >= 2) p.normal_(0, 0.05);
  }
  model->logit_scale.fill_(std::log(1 / 0.07));
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  model->eval();
  return model;
}

// <tmp>/atp_prompt_fmnist: Fashion-MNIST with `per_class` images per class and split, or ""
// with the reason in *why when Debian's dataset is not installed.
inline std::string FashionMnistRoot(std::string* why, int per_class = 24) {
  static std::string cached_root;
  static std::string cached_why;
  static bool tried = false;
  if (!tried) {
    tried = true;
    if (!std::filesystem::exists(data::kFashionMnistDebianDir)) {
      cached_why = std::string(data::kFashionMnistDebianDir) + " is missing (apt-get install dataset-fashion-mnist)";
    } else {
      std::string root = (std::filesystem::temp_directory_path() /
                          ("atp_prompt_fmnist_" + std::to_string(per_class) + "_" + std::to_string(getpid())))
                             .string();
      data::FashionMnistImportOptions options;
      options.out_root = root;
      options.max_per_class = per_class;
      auto imported = data::ImportFashionMnist(options);
      if (imported.ok()) cached_root = root;
      else cached_why = imported.status().ToString();
    }
  }
  *why = cached_why;
  return cached_root;
}

// Writes the model as a torch.save-style state dict that LoadClip reads.
inline void SaveClip(clip::Clip model, const std::string& path) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& item : model->named_parameters()) dict.insert(item.key(), item.value().detach().clone());
  for (const auto& item : model->named_buffers()) dict.insert(item.key(), item.value().detach().clone());
  std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

using ::atp::testing::TempDir;

#define ATP_REQUIRE_FASHION_MNIST(var)                                                      \
  std::string var##_why;                                                                    \
  std::string var = ::atp::prompt::testing::FashionMnistRoot(&var##_why);                   \
  if (var.empty()) GTEST_SKIP() << "Fashion-MNIST not available: " << var##_why

}  // namespace atp::prompt::testing
