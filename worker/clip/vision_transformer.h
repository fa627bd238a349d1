// CLIP's ViT image tower (OpenAI's VisionTransformer, prefix `visual.` in checkpoints):
// patchify conv, class token, positional embedding, ln_pre, transformer, ln_post on the
// class token, projection. Same threading rules as transformer.h.
#pragma once

#include <torch/torch.h>

#include "worker/clip/transformer.h"

namespace atp::clip {

struct VisionTransformerOptions {
  TORCH_ARG(int64_t, input_resolution) = 224;
  TORCH_ARG(int64_t, patch_size) = 16;
  TORCH_ARG(int64_t, width) = 768;
  TORCH_ARG(int64_t, layers) = 12;
  TORCH_ARG(int64_t, heads) = 12;
  TORCH_ARG(int64_t, output_dim) = 512;
};

class VisionTransformerImpl : public torch::nn::Module {
 public:
  explicit VisionTransformerImpl(const VisionTransformerOptions& options);

  // pixels [N, 3, R, R] (already CLIP-normalised) -> image features [N, output_dim].
  // Runs without autograd when no parameter of the tower and not the input require grad and
  // there is no hook: a frozen, prompt-free tower then keeps no activations.
  torch::Tensor forward(const torch::Tensor& pixels, const LayerHook& hook = {});

  // The two halves of forward, for methods that add tokens before ln_pre (visual prompts):
  // tokens [N, 1 + G², W] = class token + patches, positional embedding added.
  torch::Tensor EmbedPatches(const torch::Tensor& pixels);
  // ln_pre -> transformer (with hook) -> ln_post(token 0) -> proj.
  torch::Tensor EncodeTokens(const torch::Tensor& tokens, const LayerHook& hook = {});

  bool AnyParameterRequiresGrad() const;

  VisionTransformerOptions options;
  torch::nn::Conv2d conv1{nullptr};
  torch::Tensor class_embedding;       // [W]
  torch::Tensor positional_embedding;  // [G² + 1, W]
  torch::nn::LayerNorm ln_pre{nullptr};
  Transformer transformer{nullptr};
  torch::nn::LayerNorm ln_post{nullptr};
  torch::Tensor proj;  // [W, output_dim], right-multiplied
};
TORCH_MODULE(VisionTransformer);

}  // namespace atp::clip
