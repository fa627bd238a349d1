// Deterministic "random" CLIP weights from an integer hash that a NumPy script reproduces
// bit for bit, so that reference outputs for ViT-B/16-sized weights can be kept as small
// fixtures instead of 600 MB of weights. Value of element i of tensor `name`:
// offset + amp * (2u - 1), u = (fmix32(i * 0x9E3779B1 + fnv1a(name)) >> 8) / 2^24, computed
// in double and rounded to float32; offset/amp chosen per tensor kind (see HashAmp).
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "worker/clip/clip_checkpoint.h"

namespace atp::clip::testing {

inline uint32_t Fnv1a(const std::string& s) {
  uint32_t h = 0x811C9DC5u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x01000193u;
  }
  return h;
}

inline double HashUniform(uint32_t seed, uint32_t i) {
  uint32_t h = i * 0x9E3779B1u + seed;
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return static_cast<double>(h >> 8) * (1.0 / 16777216.0);
}

inline torch::Tensor HashTensor(const std::string& name, std::vector<int64_t> shape, double offset, double amp) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  torch::Tensor t = torch::empty({n}, torch::kFloat32);
  float* p = t.data_ptr<float>();
  const uint32_t seed = Fnv1a(name);
  for (int64_t i = 0; i < n; ++i) {
    p[i] = static_cast<float>(offset + amp * (2.0 * HashUniform(seed, static_cast<uint32_t>(i)) - 1.0));
  }
  return t.reshape(shape);
}

inline bool EndsWith(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

inline torch::Tensor HashWeight(const std::string& name, const std::vector<int64_t>& shape) {
  if (name == "logit_scale") return torch::full({}, static_cast<float>(4.605170185988092));
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (name.find("ln_") != std::string::npos && EndsWith(name, ".weight")) return HashTensor(name, shape, 1.0, 0.1);
  if (EndsWith(name, ".bias") || EndsWith(name, "in_proj_bias")) return HashTensor(name, shape, 0.0, 0.02);
  if (name == "token_embedding.weight" || name == "positional_embedding" || name == "visual.positional_embedding" ||
      name == "visual.class_embedding") {
    return HashTensor(name, shape, 0.0, 0.05);
  }
  if (name == "visual.proj" || name == "text_projection") {
    return HashTensor(name, shape, 0.0, 1.0 / std::sqrt(static_cast<double>(shape[0])));
  }
  return HashTensor(name, shape, 0.0, 1.0 / std::sqrt(static_cast<double>(n / shape[0])));
}

inline StateDict HashStateDict(const ClipOptions& options) {
  StateDict sd;
  for (const auto& [name, shape] : ExpectedClipShapes(options)) sd[name] = HashWeight(name, shape);
  return sd;
}

// The options OpenAI's ViT-B/16 checkpoint infers to.
inline ClipOptions VitB16Options() {
  ClipOptions o;
  o.vision.input_resolution(224).patch_size(16).width(768).layers(12).heads(12).output_dim(512);
  o.text.context_length(77).vocab_size(49408).width(512).layers(12).heads(8).embed_dim(512);
  return o;
}

// ViT-L/14's architecture (OpenAI's ViT-L-14.pt: vision 24 blocks of width 1024 in 16 heads,
// 14-pixel patches; text 12 blocks of width 768 in 12 heads; embedding 768) at a reduced input
// resolution of 28 pixels (a 2×2 patch grid instead of 16×16): every weight but the positional
// embedding's row count has ViT-L/14's shape, and the reference run stays cheap.
inline ClipOptions VitL14ReducedInputOptions() {
  ClipOptions o;
  o.vision.input_resolution(28).patch_size(14).width(1024).layers(24).heads(16).output_dim(768);
  o.text.context_length(77).vocab_size(49408).width(768).layers(12).heads(12).embed_dim(768);
  return o;
}

// A model with these options whose weights are HashWeight's, filled in place (no second copy:
// ViT-L/14-sized weights are 1.7 GB).
inline Clip HashClip(const ClipOptions& options) {
  Clip model(options);
  torch::NoGradGuard no_grad;
  for (auto& named : model->named_parameters(/*recurse=*/true)) {
    named.value().copy_(HashWeight(named.key(), named.value().sizes().vec()));
  }
  for (auto& named : model->named_buffers(/*recurse=*/true)) {
    if (named.value().is_floating_point()) named.value().copy_(HashWeight(named.key(), named.value().sizes().vec()));
  }
  model->eval();
  return model;
}

inline ClipOptions TinyOptions() {
  ClipOptions o;
  o.vision.input_resolution(16).patch_size(8).width(64).layers(2).heads(1).output_dim(32);
  o.text.context_length(77).vocab_size(100).width(64).layers(2).heads(1).embed_dim(32);
  return o;
}

}  // namespace atp::clip::testing
