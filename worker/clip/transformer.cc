#include "worker/clip/transformer.h"

#include <cmath>
#include <limits>
#include <vector>

namespace atp::clip {

namespace {

// Whether autograd will record an operation on `x`: without it, element-wise steps can
// overwrite their own temporaries (the same arithmetic, fewer passes over memory).
bool Recorded(const torch::Tensor& x) { return torch::GradMode::is_enabled() && x.requires_grad(); }

}  // namespace

torch::Tensor QuickGelu(const torch::Tensor& z) {
  if (Recorded(z)) return z * torch::sigmoid(1.702 * z);
  // A frozen tower's forward (feature extraction): one temporary instead of three, 77 MiB
  // each for a ViT-B/16 batch of 32.
  torch::Tensor gate = z * 1.702;
  gate.sigmoid_();
  return gate.mul_(z);
}

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

SharedPrefixLayout::SharedPrefixLayout(int64_t groups, int64_t rows_per_group, int64_t prefix, int64_t suffix,
                                       const torch::TensorOptions& options)
    : groups(groups), rows_per_group(rows_per_group), prefix(prefix), suffix(suffix) {
  TORCH_CHECK(groups > 0 && rows_per_group > 0 && prefix > 0 && suffix > 0, "shared-prefix layout needs positive ",
              "sizes, got groups ", groups, ", rows per group ", rows_per_group, ", prefix ", prefix, ", suffix ",
              suffix);
  prefix_mask = CausalMask(prefix, options);
  suffix_mask = CausalMask(suffix, options);
}

torch::Tensor SelfAttentionImpl::ForwardSharedPrefix(const torch::Tensor& x, const SharedPrefixLayout& o,
                                                     const torch::Tensor& keep) {
  const int64_t w = options.width(), h = options.heads(), d = w / h;
  const int64_t g = o.groups, c = o.rows_per_group, p = o.prefix, s = o.suffix, rows = o.rows();
  TORCH_CHECK(x.dim() == 2 && x.size(0) == g * p + rows * s && x.size(1) == w, "shared-prefix attention expects [",
              g * p + rows * s, ", ", w, "], got ", x.sizes());
  const double root_d = std::sqrt(static_cast<double>(d));
  // split and unbind rather than narrow and select: their backward assembles the gradient
  // once instead of zero-filling a full-size tensor for every piece.
  std::vector<torch::Tensor> halves = torch::linear(x, in_proj_weight, in_proj_bias).split_with_sizes({g * p, rows * s}, 0);
  std::vector<torch::Tensor> pre = halves[0].view({g, p, 3, h, d}).unbind(2);     // q, k, v: [g, p, h, d]
  std::vector<torch::Tensor> suf = halves[1].view({rows, s, 3, h, d}).unbind(2);  // q, k, v: [rows, s, h, d]

  // The prefix attends to itself, causally, once per group: [g, h, p, d].
  torch::Tensor qp = pre[0].transpose(1, 2) / root_d;
  torch::Tensor kp = pre[1].transpose(1, 2);
  torch::Tensor vp = pre[2].transpose(1, 2);
  torch::Tensor out_p = torch::matmul(torch::softmax(torch::matmul(qp, kp.transpose(-2, -1)) + o.prefix_mask, -1), vp);

  // Each suffix position scores its group's prefix keys (one product per group and head over
  // all the group's rows, so the prefix keys are never copied per row) and its own row's
  // earlier suffix keys; one softmax runs over both.
  torch::Tensor qs = suf[0] / root_d;  // [rows, s, h, d]
  torch::Tensor q_group = qs.reshape({g, c * s, h, d}).transpose(1, 2);  // [g, h, c*s, d]
  torch::Tensor to_prefix = torch::matmul(q_group, kp.transpose(-2, -1))  // [g, h, c*s, p]
                                .view({g, h, c, s, p})
                                .permute({0, 2, 1, 3, 4})
                                .reshape({rows, h, s, p});
  torch::Tensor ks = suf[1].transpose(1, 2), vs = suf[2].transpose(1, 2);  // [rows, h, s, d]
  torch::Tensor to_suffix = torch::matmul(qs.transpose(1, 2), ks.transpose(-2, -1)) + o.suffix_mask;
  std::vector<torch::Tensor> probs =
      torch::softmax(torch::cat({to_prefix, to_suffix}, -1), -1).split_with_sizes({p, s}, -1);  // [rows, h, s, *]
  torch::Tensor from_prefix = torch::matmul(probs[0]
                                                .reshape({g, c, h, s, p})
                                                .permute({0, 2, 1, 3, 4})
                                                .reshape({g, h, c * s, p}),
                                            vp)  // [g, h, c*s, d]
                                  .view({g, h, c, s, d})
                                  .permute({0, 2, 3, 1, 4})
                                  .reshape({rows * s, w});
  torch::Tensor from_suffix = torch::matmul(probs[1], vs).transpose(1, 2).reshape({rows * s, w});
  torch::Tensor out = torch::cat({out_p.transpose(1, 2).reshape({g * p, w}), from_prefix + from_suffix}, 0);
  return out_proj(keep.defined() ? out.index_select(0, keep) : out);
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
  torch::Tensor attended = attn(ln_1(x), mask);
  if (Recorded(attended) || Recorded(x)) {
    torch::Tensor y = x + attended;
    return y + mlp(ln_2(y));
  }
  torch::Tensor y = attended.add_(x);  // the residual sums in place: addition commutes exactly
  return mlp(ln_2(y)).add_(y);
}

torch::Tensor ResidualAttentionBlockImpl::ForwardSharedPrefix(const torch::Tensor& x, const SharedPrefixLayout& layout,
                                                              const torch::Tensor& keep) {
  torch::Tensor y = (keep.defined() ? x.index_select(0, keep) : x) + attn->ForwardSharedPrefix(ln_1(x), layout, keep);
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

torch::Tensor TransformerImpl::ForwardSharedPrefix(torch::Tensor x, const SharedPrefixLayout& layout,
                                                   const torch::Tensor& pooled) {
  for (int64_t i = 0; i < options.layers(); ++i) {
    const bool last = i + 1 == options.layers();
    x = resblocks[static_cast<size_t>(i)]->as<ResidualAttentionBlock>()->ForwardSharedPrefix(
        x, layout, last ? pooled : torch::Tensor());
  }
  return options.layers() > 0 ? x : x.index_select(0, pooled);
}

torch::Tensor CausalMask(int64_t length, const torch::TensorOptions& options) {
  return torch::full({length, length}, -std::numeric_limits<float>::infinity(), options).triu(1);
}

}  // namespace atp::clip
