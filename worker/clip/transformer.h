// The pre-LayerNorm transformer shared by both CLIP towers: ResidualAttentionBlock and
// Transformer, with parameter names equal to OpenAI's (ln_1, attn.in_proj_weight, ...,
// mlp.c_fc, mlp.c_proj, ln_2; resblocks.{i}). Tensors are batch-first [batch, seq, width]
// (OpenAI runs [seq, batch, width]; the result is the same). Not thread-safe to train; a
// forward may run concurrently with other forwards.
#pragma once

#include <torch/torch.h>

#include <functional>

namespace atp::clip {

// Called before block `layer` (0-based) runs, with that block's input [batch, seq, width];
// the returned tensor is what the block receives. Deep-prompt methods replace or append
// tokens here (text hooks must keep the shape, see text_encoder.h). Empty = no hook.
using LayerHook = std::function<torch::Tensor(int64_t layer, const torch::Tensor& x)>;

// z * sigmoid(1.702 z), as in CLIP.
torch::Tensor QuickGelu(const torch::Tensor& z);

// A causal text batch laid out so that positions its rows share are computed once. The rows
// come in `groups` groups of `rows_per_group` consecutive rows; within a group every row has
// the same first `prefix` positions (the same tokens and the same learned vectors), so under
// the causal mask their hidden states there are equal too. Hidden states are one matrix
// [groups * prefix + rows * suffix, width]: each group's prefix rows, then every row's
// `suffix` later positions. Suffix positions attend to their group's prefix and causally to
// their own row. Row-wise layers (layer norms, projections, the MLP) see one matrix.
struct SharedPrefixLayout {
  SharedPrefixLayout(int64_t groups, int64_t rows_per_group, int64_t prefix, int64_t suffix,
                     const torch::TensorOptions& options);
  int64_t groups, rows_per_group, prefix, suffix;
  torch::Tensor prefix_mask;  // [prefix, prefix] causal
  torch::Tensor suffix_mask;  // [suffix, suffix] causal (every prefix position is visible)
  int64_t rows() const { return groups * rows_per_group; }
};

// nn.MultiheadAttention(width, heads) used as self-attention, no dropout.
struct SelfAttentionOptions {
  SelfAttentionOptions(int64_t width, int64_t heads) : width_(width), heads_(heads) {}
  TORCH_ARG(int64_t, width);
  TORCH_ARG(int64_t, heads);
};

class SelfAttentionImpl : public torch::nn::Module {
 public:
  explicit SelfAttentionImpl(const SelfAttentionOptions& options);
  // x [N, L, W]; mask [L, L] additive (may be undefined).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask = {});
  // x in the SharedPrefixLayout [groups * prefix + rows * suffix, W]; same layout out, or
  // only the rows `keep` (long, into that layout) when it is defined.
  torch::Tensor ForwardSharedPrefix(const torch::Tensor& x, const SharedPrefixLayout& layout,
                                    const torch::Tensor& keep = {});

  SelfAttentionOptions options;
  torch::Tensor in_proj_weight;  // [3W, W]: rows q, then k, then v
  torch::Tensor in_proj_bias;    // [3W]
  torch::nn::Linear out_proj{nullptr};
};
TORCH_MODULE(SelfAttention);

// c_fc -> QuickGELU -> c_proj, width -> 4 width -> width.
class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(int64_t width);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear c_fc{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(Mlp);

struct ResidualAttentionBlockOptions {
  ResidualAttentionBlockOptions(int64_t width, int64_t heads) : width_(width), heads_(heads) {}
  TORCH_ARG(int64_t, width);
  TORCH_ARG(int64_t, heads);
};

class ResidualAttentionBlockImpl : public torch::nn::Module {
 public:
  explicit ResidualAttentionBlockImpl(const ResidualAttentionBlockOptions& options);
  // x + attn(ln_1(x)), then + mlp(ln_2(x)).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask = {});
  torch::Tensor ForwardSharedPrefix(const torch::Tensor& x, const SharedPrefixLayout& layout,
                                    const torch::Tensor& keep = {});

  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  SelfAttention attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(ResidualAttentionBlock);

struct TransformerOptions {
  TransformerOptions(int64_t width, int64_t layers, int64_t heads)
      : width_(width), layers_(layers), heads_(heads) {}
  TORCH_ARG(int64_t, width);
  TORCH_ARG(int64_t, layers);
  TORCH_ARG(int64_t, heads);
};

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(const TransformerOptions& options);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& mask = {}, const LayerHook& hook = {});
  // The causal blocks over a SharedPrefixLayout (no hooks: deep prompts rewrite prefix rows
  // per layer, and their callers run forward()). Returns the last block's output at the rows
  // `pooled` only: every earlier position still gives its keys and values to the last
  // attention, but its residual stream there reaches nothing, so its output projection and
  // MLP are skipped.
  torch::Tensor ForwardSharedPrefix(torch::Tensor x, const SharedPrefixLayout& layout, const torch::Tensor& pooled);

  TransformerOptions options;
  torch::nn::ModuleList resblocks{nullptr};
};
TORCH_MODULE(Transformer);

// The causal mask of the text tower: 0 on and below the diagonal, -inf above.
torch::Tensor CausalMask(int64_t length, const torch::TensorOptions& options);

}  // namespace atp::clip
