#include "worker/clip/transformer.h"

#include <cmath>
#include <limits>

namespace atp::clip {

torch::Tensor QuickGelu(const torch::Tensor& z) { return z * torch::sigmoid(1.702 * z); }

SelfAttentionImpl::SelfAttentionImpl(const SelfAttentionOptions& o) : options(o) {
  TORCH_CHECK(o.width() % o.heads() == 0, "attention width ", o.width(), " is not a multiple of heads ", o.heads());
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * o.width(), o.width()}));
  in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * o.width()}));
  out_proj = register_module("out_proj", torch::nn::Linear(o.width(), o.width()));
  torch::nn::init::xavier_uniform_(in_proj_weight);
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  const int64_t n = x.size(0), l = x.size(1), w = options.width(), h = options.heads(), d = w / h;
  auto qkv = torch::linear(x, in_proj_weight, in_proj_bias).chunk(3, -1);
  auto heads = [&](const torch::Tensor& t) { return t.reshape({n, l, h, d}).transpose(1, 2); };
  // nn.MultiheadAttention scales q before the product.
  torch::Tensor q = heads(qkv[0]) / std::sqrt(static_cast<double>(d));
  torch::Tensor k = heads(qkv[1]);
  torch::Tensor v = heads(qkv[2]);
  torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1));
  if (mask.defined()) scores = scores + mask;
  torch::Tensor out = torch::matmul(torch::softmax(scores, -1), v);
  return out_proj(out.transpose(1, 2).reshape({n, l, w}));
}

MlpImpl::MlpImpl(int64_t width) {
  c_fc = register_module("c_fc", torch::nn::Linear(width, 4 * width));
  c_proj = register_module("c_proj", torch::nn::Linear(4 * width, width));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) { return c_proj(QuickGelu(c_fc(x))); }

ResidualAttentionBlockImpl::ResidualAttentionBlockImpl(const ResidualAttentionBlockOptions& o) {
  auto ln = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.width()}).eps(1e-5)); };
  ln_1 = register_module("ln_1", ln());
  attn = register_module("attn", SelfAttention(SelfAttentionOptions(o.width(), o.heads())));
  ln_2 = register_module("ln_2", ln());
  mlp = register_module("mlp", Mlp(o.width()));
}

torch::Tensor ResidualAttentionBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  torch::Tensor y = x + attn(ln_1(x), mask);
  return y + mlp(ln_2(y));
}

TransformerImpl::TransformerImpl(const TransformerOptions& o) : options(o) {
  resblocks = register_module("resblocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.layers(); ++i) {
    resblocks->push_back(ResidualAttentionBlock(ResidualAttentionBlockOptions(o.width(), o.heads())));
  }
}

torch::Tensor TransformerImpl::forward(torch::Tensor x, const torch::Tensor& mask, const LayerHook& hook) {
  for (int64_t i = 0; i < options.layers(); ++i) {
    if (hook) x = hook(i, x);
    x = resblocks[static_cast<size_t>(i)]->as<ResidualAttentionBlock>()->forward(x, mask);
  }
  return x;
}

torch::Tensor CausalMask(int64_t length, const torch::TensorOptions& options) {
  return torch::full({length, length}, -std::numeric_limits<float>::infinity(), options).triu(1);
}

}  // namespace atp::clip
