// PromptLearner: the learned text context of CoOp-style methods — `ctx` (class context) and
// `ctx_att1..` (ATPrompt attribute context) — and the frozen token embeddings of each class's
// template, assembled into the text encoder's input by the PromptLayout's slots. Parameter
// names are the official state-dict keys, so a published prompt checkpoint loads name for name.
// Class names can be swapped (base → new classes, other datasets) without touching the learned
// tensors, as the official loader does by dropping the token buffers. Not thread-safe.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "worker/clip/clip_model.h"
#include "worker/prompt/prompt_layout.h"

namespace atp::prompt {

struct PromptLearnerOptions {
  PromptDesign design;
  // ATPrompt: how many ctx_att tensors exist. The official trainers always create three
  // (unused ones consume RNG draws and appear in checkpoints but never train); the search
  // creates one per attribute. 0 = as many as attributes.
  int attribute_tensors = 0;
};

class PromptLearnerImpl : public torch::nn::Module {
 public:
  // Draws ctx ~ N(0, 0.02) (or copies ctx_init's embeddings), then ctx_att_k ~ N(0, 0.01), in
  // the official order, from the current torch generator. `clip` is frozen and only read.
  PromptLearnerImpl(const PromptLearnerOptions& options, clip::Clip clip,
                    std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                    const std::vector<std::string>& class_names);

  // Rebuilds the layout and the frozen template embeddings for other classes.
  void SetClasses(const std::vector<std::string>& class_names);

  // The encoder input [C, L, D] (positional embedding not added) for the current classes.
  // With `class_context_shift` [B, D] (CoCoOp's meta-net output) the class-context rows of
  // prompt set b are shifted by row b: result [B, C, L, D].
  torch::Tensor Embeddings(const torch::Tensor& class_context_shift = {});

  // Text features [C, embed] (unnormalised) of the current prompts; [B, C, embed] with a shift.
  torch::Tensor TextFeatures(const torch::Tensor& class_context_shift = {}, const clip::LayerHook& hook = {});

  const PromptLayout& layout() const { return layout_; }
  int64_t num_classes() const { return static_cast<int64_t>(layout_.classes.size()); }
  torch::Tensor eot() const { return eot_; }                  // [C] long
  // [C, n_ctx] long: positions of the class context in each class's prompt.
  torch::Tensor class_context_positions() const { return ctx_positions_; }

  // ctx and the ctx_att tensors an attribute slot reads (unused ctx_att tensors excluded).
  std::vector<torch::Tensor> UsedParameters() const;

  torch::Tensor ctx;                   // [n_ctx, D]
  std::vector<torch::Tensor> ctx_att;  // ctx_att1.. : [attribute_ctx_k, D]

 private:
  void BuildBuffers();

  PromptLearnerOptions options_;
  clip::Clip clip_;
  std::shared_ptr<const clip::ClipTokenizer> tokenizer_;
  PromptLayout layout_;
  torch::Tensor template_embeddings_;  // [C, L, D], frozen
  torch::Tensor gather_index_;         // [C, L] rows of cat(template rows, ctx, ctx_att...)
  torch::Tensor context_mask_;         // [C, L, 1] 1 at class-context rows
  torch::Tensor eot_;
  torch::Tensor ctx_positions_;
  // Leading positions every class builds from the same token or the same context vector.
  int64_t shared_prefix_ = 0;
};
TORCH_MODULE(PromptLearner);

// The positions deep text prompts (MaPLe, IVLP) overwrite in each class's prompt, [C, n_ctx]
// long on the CPU. Paper mode: the class-context positions. kOfficial: the released
// model_atp.py offset, rows [1 + A·(n_ctx + 1), 1 + A·(n_ctx + 1) + n_ctx) for A attributes —
// the class context only when every attribute block has n_ctx soft tokens and a one-token word
// (docs/reference.md §3.5). Throws when the rows do not fit the context length.
torch::Tensor DeepTextPromptRows(const PromptLearnerImpl& learner);

// x [C, L', D] (a text block's input, L' the computed length) with rows[c, k] of sequence c set
// to prompt[k] ([n_ctx, D]). Rows at or beyond L' reach no pooled position through the causal
// mask and are left out (exact); they must be the same columns in every class.
torch::Tensor OverwriteDeepTextRows(const torch::Tensor& x, const torch::Tensor& rows, const torch::Tensor& prompt);

}  // namespace atp::prompt
