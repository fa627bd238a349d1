// IVLP, independent vision-language prompts (the prompted CLIP of PromptSRC and of PromptKD's
// teacher and student; docs/promptsrc.md): CoOp-style text context at layer 0 (the
// PromptLearner, ± ATPrompt's attribute blocks), independent deep text prompts that replace the
// class context in text blocks 1..Jt−1, and vision prompts appended to the image tokens before
// ln_pre and replaced in vision blocks 1..Jv−1. No coupling between the towers. Owns its learned
// tensors; CLIP is shared and frozen. Not thread-safe: one model per job.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/clip/clip_model.h"
#include "worker/prompt/prompt_learner.h"
#include "worker/prompt/prompt_model.h"

namespace atp::clip {
class ClipTokenizer;
}

namespace atp::prompt {

// The prompt tensors IVLP adds inside the two towers, under the official CLIP's names
// (clip/model.py of the PromptSRC and MaPLe repositories: VisionTransformer.VPT and
// ResidualAttentionBlock_IVLP.VPT_shallow of blocks 1..depth−1).
struct IvlpPromptsOptions {
  TORCH_ARG(int64_t, text_ctx) = 4;      // N_CTX_TEXT (deep text prompts, rows per block)
  TORCH_ARG(int64_t, vision_ctx) = 4;    // N_CTX_VISION
  TORCH_ARG(int64_t, text_depth) = 9;    // PROMPT_DEPTH_TEXT Jt: 0 = no text tower prompts
  TORCH_ARG(int64_t, vision_depth) = 9;  // PROMPT_DEPTH_VISION Jv: 0 = no vision prompts
  TORCH_ARG(int64_t, text_width) = 512;
  TORCH_ARG(int64_t, vision_width) = 768;
};

class IvlpPromptsImpl : public torch::nn::Module {
 public:
  // Draws, from the current torch generator, every tensor ~ N(0, 0.02) in the official
  // construction order: VPT, vision VPT_shallow of blocks 1..Jv−1, then text VPT_shallow of
  // blocks 1..Jt−1 (the official code builds the image tower before the text tower).
  explicit IvlpPromptsImpl(const IvlpPromptsOptions& options);

  // The tensors under the official whole-model keys, in construction order:
  // image_encoder.VPT, image_encoder.transformer.resblocks.{i}.VPT_shallow (i = 1..Jv−1),
  // text_encoder.transformer.resblocks.{i}.VPT_shallow (i = 1..Jt−1).
  NamedTensors OfficialNamed() const;

  IvlpPromptsOptions options;
  torch::Tensor vision_shallow;            // image_encoder.VPT [vision_ctx, vision_width]; undefined if Jv = 0
  std::vector<torch::Tensor> vision_deep;  // [i − 1]: block i's VPT_shallow [vision_ctx, vision_width]
  std::vector<torch::Tensor> text_deep;    // [i − 1]: block i's VPT_shallow [text_ctx, text_width]
};
TORCH_MODULE(IvlpPrompts);

// Unnormalised image features [N, embed] of pixels [N, 3, R, R] through `visual` with vision
// prompts: `shallow` [n, W] appended after the positional embedding (before ln_pre), and
// before block i (1 <= i <= deep.size()) the last n tokens replaced by deep[i − 1]. With
// `shallow` undefined the tower runs prompt-free. Shared by IVLP and PromptKD's student.
torch::Tensor PromptedImageFeatures(clip::VisionTransformer visual, const torch::Tensor& shallow,
                                    const std::vector<torch::Tensor>& deep, const torch::Tensor& pixels);

// What an IVLP model is built from (MethodConfig carries these for promptsrc).
struct IvlpSettings {
  PromptDesign design;         // n_ctx = N_CTX_TEXT, ctx_init, attributes, compat
  bool official_attribute_tensors = false;  // create ctx_att1..3 always (the official trainers)
  int64_t vision_ctx = 4;
  int64_t text_depth = 9;
  int64_t vision_depth = 9;
};

class IvlpModel : public PromptModel {
 public:
  // Use MakeIvlpModel, which validates the settings and draws the tensors.
  IvlpModel(PromptLearner learner, IvlpPrompts prompts, clip::Clip clip,
            std::shared_ptr<const clip::ClipTokenizer> tokenizer);

  bool TakesImageFeatures() const override { return false; }
  void SetClasses(const std::vector<std::string>& class_names, bool training_classes) override;
  NamedTensors TrainableParameters() override;
  // prompt_learner.ctx, prompt_learner.ctx_att1.. (ATPrompt), then IvlpPrompts::OfficialNamed().
  NamedTensors StateDict() override;
  // Strict, as every method's (LoadStrictly), and beyond it: a key holding a prompt tensor
  // (VPT, VPT_shallow) of a block this model has no prompt in is an error, so a checkpoint of
  // another depth is refused rather than half loaded. The frozen CLIP (image_encoder.*,
  // text_encoder.*, prompt_learner.ZS_image_encoder.*) and token buffers are skipped.
  Status LoadStateDict(const std::map<std::string, torch::Tensor>& state) override;
  // IVLP's own loss (MaPLe's independentVL.py): cross-entropy of the prompted logits.
  torch::Tensor TrainLoss(const torch::Tensor& pixels, const torch::Tensor& labels, int64_t global_batch) override;
  void BeginEvaluation() override;
  torch::Tensor Logits(const torch::Tensor& pixels) override;
  void EndEvaluation() override;
  std::vector<std::string> Notes() const override;

  // Unnormalised text features [C, embed] of the current classes through the prompted text
  // tower (with autograd unless the caller disables it).
  torch::Tensor TextFeatures();
  // Unnormalised image features [N, embed] through the prompted image tower.
  torch::Tensor ImageFeatures(const torch::Tensor& pixels);

  // [C, n_ctx] long: the rows the deep text prompts overwrite (DeepTextPromptRows).
  torch::Tensor deep_text_rows() const { return deep_text_rows_; }
  PromptLearner learner() const { return learner_; }
  IvlpPrompts prompts() const { return prompts_; }
  clip::Clip clip() const { return clip_; }

 protected:
  PromptLearner learner_;
  IvlpPrompts prompts_;
  clip::Clip clip_;
  std::shared_ptr<const clip::ClipTokenizer> tokenizer_;
  torch::Tensor deep_text_rows_;      // CPU
  torch::Tensor eval_text_features_;  // between BeginEvaluation and EndEvaluation
};

// Checks the settings against the CLIP (n_ctx >= 1, 1 <= Jt <= text layers, 0 <= Jv <= vision
// layers, vision_ctx >= 1 when Jv >= 1) and builds the model for `class_names`. Draw order:
// the IvlpPrompts tensors, then ctx (unless ctx_init gives it) and ctx_att1.. — the official
// order, where the prompted CLIP is built before the prompt learner (docs/promptsrc.md).
Result<std::unique_ptr<IvlpModel>> MakeIvlpModel(const IvlpSettings& settings, clip::Clip clip,
                                                 std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                                                 const std::vector<std::string>& class_names);

}  // namespace atp::prompt
