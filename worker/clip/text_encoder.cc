#include "worker/clip/text_encoder.h"

#include <algorithm>
#include <cmath>

namespace atp::clip {

TextEncoderImpl::TextEncoderImpl(const TextEncoderOptions& o) : options(o) {
  token_embedding = register_module("token_embedding", torch::nn::Embedding(o.vocab_size(), o.width()));
  positional_embedding = register_parameter("positional_embedding", 0.01 * torch::randn({o.context_length(), o.width()}));
  transformer = register_module("transformer", Transformer(TransformerOptions(o.width(), o.layers(), o.heads())));
  ln_final = register_module("ln_final", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.width()}).eps(1e-5)));
  text_projection = register_parameter(
      "text_projection", torch::randn({o.width(), o.embed_dim()}) / std::sqrt(static_cast<double>(o.width())));
}

torch::Tensor EotPositions(const torch::Tensor& ids) {
  TORCH_CHECK(ids.dim() == 2, "token ids must be [N, L], got ", ids.sizes());
  return ids.argmax(-1).to(torch::kLong);
}

torch::Tensor TextEncoderImpl::Embed(const torch::Tensor& ids) { return token_embedding(ids.to(torch::kLong)); }

torch::Tensor TextEncoderImpl::forward(const torch::Tensor& ids) {
  return EncodeEmbeddings(Embed(ids), EotPositions(ids));
}

torch::Tensor TextEncoderImpl::EncodeEmbeddings(const torch::Tensor& embeddings, const torch::Tensor& eot,
                                                const LayerHook& hook, bool stop_after_last_eot,
                                                const SharedPrefix& shared) {
  TORCH_CHECK(embeddings.dim() == 3 && embeddings.size(2) == options.width(),
              "text tower expects embeddings [N, L, ", options.width(), "], got ", embeddings.sizes());
  TORCH_CHECK(embeddings.size(1) <= options.context_length(), "text sequence of ", embeddings.size(1),
              " tokens exceeds the context length ", options.context_length());
  TORCH_CHECK(eot.dim() == 1 && eot.size(0) == embeddings.size(0), "eot positions must be [N] with N = ",
              embeddings.size(0), ", got ", eot.sizes());
  torch::Tensor eot_long = eot.to(embeddings.device(), torch::kLong);
  const int64_t n = embeddings.size(0);
  int64_t length = embeddings.size(1);
  int64_t first_eot = 0;
  if (n > 0) {
    const int64_t last = eot_long.max().item<int64_t>();
    first_eot = eot_long.min().item<int64_t>();
    TORCH_CHECK(first_eot >= 0 && last < length, "eot positions must lie in [0, ", length, ")");
    if (stop_after_last_eot) length = last + 1;
  }
  torch::Tensor x = embeddings.narrow(1, 0, length) + positional_embedding.narrow(0, 0, length).to(embeddings.dtype());
  const int64_t group = shared.rows_per_group > 0 ? shared.rows_per_group : n;
  const int64_t prefix = std::min(shared.length, first_eot);
  if (!hook && stop_after_last_eot && n > 0 && prefix >= 2 && n % group == 0) {
    TORCH_CHECK(shared.length <= length, "shared prefix of ", shared.length, " positions exceeds the ", length,
                " computed");
    SharedPrefixLayout layout(n / group, group, prefix, length - prefix, x.options());
    // The group's first row stands for all of them (the caller's promise, SharedPrefix).
    torch::Tensor starts = x.view({layout.groups, group, length, options.width()}).select(1, 0).narrow(1, 0, prefix);
    torch::Tensor flat = torch::cat({starts.reshape({layout.groups * prefix, options.width()}),
                                     x.narrow(1, prefix, layout.suffix).reshape({n * layout.suffix, options.width()})},
                                    0);
    torch::Tensor pooled =
        layout.groups * prefix + torch::arange(n, eot_long.options()) * layout.suffix + (eot_long - prefix);
    return torch::matmul(ln_final(transformer->ForwardSharedPrefix(flat, layout, pooled)), text_projection);
  }
  torch::Tensor mask = CausalMask(length, x.options());
  LayerHook checked_hook;
  if (hook) {
    checked_hook = [&hook](int64_t layer, const torch::Tensor& in) {
      torch::Tensor out = hook(layer, in);
      TORCH_CHECK(out.sizes() == in.sizes(), "text-tower hook at layer ", layer, " changed the shape from ",
                  in.sizes(), " to ", out.sizes(), "; text hooks must replace tokens in place");
      return out;
    };
  }
  x = transformer(x, mask, checked_hook);
  x = ln_final(x);
  torch::Tensor pooled = x.index({torch::arange(n, eot_long.options()), eot_long});
  return torch::matmul(pooled, text_projection);
}

}  // namespace atp::clip
