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

  TransformerOptions options;
  torch::nn::ModuleList resblocks{nullptr};
};
TORCH_MODULE(Transformer);

// The causal mask of the text tower: 0 on and below the diagonal, -inf above.
torch::Tensor CausalMask(int64_t length, const torch::TensorOptions& options);

}  // namespace atp::clip
