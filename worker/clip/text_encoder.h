// CLIP's text tower: token embedding, positional embedding, causal transformer, ln_final,
// pooling at the end-of-text token, projection. It takes token *embeddings* so that prompt
// learners can splice soft tokens into the sequence. Parameter names are OpenAI's top-level
// ones; ClipImpl registers these same tensors and modules under those names, so a checkpoint
// loads into both at once. Same threading rules as transformer.h.
#pragma once

#include <torch/torch.h>

#include "worker/clip/transformer.h"

namespace atp::clip {

struct TextEncoderOptions {
  TORCH_ARG(int64_t, context_length) = 77;
  TORCH_ARG(int64_t, vocab_size) = 49408;
  TORCH_ARG(int64_t, width) = 512;
  TORCH_ARG(int64_t, layers) = 12;
  TORCH_ARG(int64_t, heads) = 8;
  TORCH_ARG(int64_t, embed_dim) = 512;
};

// What a caller knows about its rows: they come in groups of `rows_per_group` consecutive
// rows whose first `length` positions are built from the same tokens and the same learned
// tensors (CoOp's classes share the start token and the context; CoCoOp's classes of one
// image share them too). The encoder then computes those positions once per group
// (SharedPrefixLayout, transformer.h). The promise is about where the vectors come from, not
// only their values: gradients reach the shared tensors through the group's first row.
struct SharedPrefix {
  int64_t length = 0;          // 0: nothing shared
  int64_t rows_per_group = 0;  // 0: all rows form one group
};

class TextEncoderImpl : public torch::nn::Module {
 public:
  explicit TextEncoderImpl(const TextEncoderOptions& options);

  // ids [N, L<=context] (int or long) -> token embeddings [N, L, width].
  torch::Tensor Embed(const torch::Tensor& ids);

  // The reference encode_text: EOT position = argmax of the ids.
  torch::Tensor forward(const torch::Tensor& ids);

  // embeddings [N, L, width] (L <= context; positional embedding not yet added), eot [N]
  // (long) -> features [N, embed_dim], pooled at eot. With `stop_after_last_eot` only
  // positions 0..max(eot) are computed: the mask is causal, so later positions cannot reach
  // any pooled row and the result equals the full computation up to float reduction order.
  // A hook receives [N, L', width] (L' the computed length) and must return that shape.
  // With `shared` (and no hook) the common positions run once per group; the pooled rows equal
  // the full computation up to float reduction order. Used when at least two positions are
  // shared, every end-of-text token lies after them, and stop_after_last_eot is set.
  torch::Tensor EncodeEmbeddings(const torch::Tensor& embeddings, const torch::Tensor& eot,
                                 const LayerHook& hook = {}, bool stop_after_last_eot = true,
                                 const SharedPrefix& shared = {});

  TextEncoderOptions options;
  torch::nn::Embedding token_embedding{nullptr};
  torch::Tensor positional_embedding;  // [context, width]
  Transformer transformer{nullptr};
  torch::nn::LayerNorm ln_final{nullptr};
  torch::Tensor text_projection;  // [width, embed_dim], right-multiplied
};
TORCH_MODULE(TextEncoder);

// argmax over the ids of each row: where <|endoftext|> (the largest id) sits.
torch::Tensor EotPositions(const torch::Tensor& ids);

}  // namespace atp::clip
