// MaPLe, vanilla and + ATPrompt (deep version) (docs/reference.md §3.5): CoOp-style text prompts
// at layer 0 (the PromptLearner), deep text prompts that replace the class context in blocks
// 1..J−1, and vision prompts projected from the text prompts, appended to the image tokens and
// replaced in the same blocks. Inputs are pixels: the prompts enter the image tower. Owns
// its learned tensors; CLIP is shared and frozen. Not thread-safe: one model per job.
#pragma once

#include <torch/torch.h>

#include <functional>
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

struct MethodConfig;

// The tensors MaPLe adds to the CoOp prompt learner, named as in the official
// MultiModalPromptLearner (prefix `prompt_learner.` in checkpoints).
struct MapleDeepPromptsOptions {
  MapleDeepPromptsOptions(int64_t n_ctx, int64_t text_width, int64_t vision_width, int64_t depth)
      : n_ctx_(n_ctx), text_width_(text_width), vision_width_(vision_width), depth_(depth) {}
  TORCH_ARG(int64_t, n_ctx);
  TORCH_ARG(int64_t, text_width);    // D: the official code hard-codes 512 (ViT-B)
  TORCH_ARG(int64_t, vision_width);  // the official code hard-codes 768 (ViT-B)
  TORCH_ARG(int64_t, depth);         // J >= 1: blocks 0..J−1 carry prompts
};

class MapleDeepPromptsImpl : public torch::nn::Module {
 public:
  // Draws, from the current torch generator and in the official order: proj (weight, bias),
  // compound_prompts_text[0..J−2] ~ N(0, 0.02), then ONE Linear(D → vision width) whose J−1
  // copies start identical (the official deep copies), so the stream advances by one Linear.
  explicit MapleDeepPromptsImpl(const MapleDeepPromptsOptions& options);

  // compound_prompt_projections[i](compound_prompts_text[i]): [n, vision width].
  torch::Tensor VisionPrompt(int64_t i);

  MapleDeepPromptsOptions options;
  torch::nn::Linear proj{nullptr};                        // layer-0 vision prompt from ctx
  torch::nn::ParameterList compound_prompts_text{nullptr};  // J−1 × [n, D]
  torch::nn::ModuleList compound_prompt_projections{nullptr};  // J−1 × Linear(D → vision width)

 private:
  std::vector<torch::nn::Linear> projections_;  // typed views of compound_prompt_projections
};
TORCH_MODULE(MapleDeepPrompts);

class MapleModel : public PromptModel {
 public:
  enum class Tower { kText, kVision };
  // Called by the hooks of both towers before block `layer` with what the block was about to
  // receive and what it receives instead (equal where no prompt is inserted). A seam for
  // tests and debugging; empty by default.
  using Observer = std::function<void(Tower tower, int64_t layer, const torch::Tensor& before,
                                      const torch::Tensor& after)>;

  // Use MakeMapleModel, which validates the configuration and draws the tensors.
  MapleModel(PromptLearner learner, MapleDeepPrompts prompts, clip::Clip clip,
             std::shared_ptr<const clip::ClipTokenizer> tokenizer);

  bool TakesImageFeatures() const override { return false; }
  void SetClasses(const std::vector<std::string>& class_names, bool training_classes) override;
  NamedTensors TrainableParameters() override;
  NamedTensors StateDict() override;
  Status LoadStateDict(const std::map<std::string, torch::Tensor>& state) override;
  torch::Tensor TrainLoss(const torch::Tensor& pixels, const torch::Tensor& labels, int64_t global_batch) override;
  void BeginEvaluation() override;
  torch::Tensor Logits(const torch::Tensor& pixels) override;
  void EndEvaluation() override;
  std::vector<std::string> Notes() const override;

  // Unnormalised text features [C, embed] with the deep text prompts inserted.
  torch::Tensor TextFeatures();
  // Unnormalised image features [N, embed] of pixels [N, 3, R, R] with the vision prompts.
  torch::Tensor ImageFeatures(const torch::Tensor& pixels);

  // [C, n] long: the positions the deep text prompts overwrite in each class's prompt (paper:
  // the class-context positions; official: [1 + L_att, 1 + L_att + n) for every class).
  torch::Tensor deep_text_rows() const { return deep_text_rows_; }
  int64_t depth() const { return prompts_->options.depth(); }
  PromptLearner learner() const { return learner_; }
  MapleDeepPrompts prompts() const { return prompts_; }

  Observer observer;

 private:
  clip::LayerHook TextHook();
  clip::LayerHook VisionHook(std::vector<torch::Tensor> vision_prompts);
  void ComputeDeepTextRows();

  PromptLearner learner_;
  MapleDeepPrompts prompts_;
  clip::Clip clip_;
  std::shared_ptr<const clip::ClipTokenizer> tokenizer_;
  torch::Tensor deep_text_rows_;      // CPU
  torch::Tensor eval_text_features_;  // between BeginEvaluation and EndEvaluation
};

// Checks the configuration against the CLIP model (1 <= J <= the layer count of both
// towers: prompts enter blocks 1..J−1; n_ctx >= 1) and builds the model for `class_names`.
// Draw order (docs/reference.md §3.8): ctx, proj, compound_prompts_text, one Linear, ctx_att1..3 —
// the PromptLearner draws ctx and the ctx_att tensors together, so the generator is rewound and
// the stream replayed in the official order (the values are fresh draws from the same stream).
Result<std::unique_ptr<PromptModel>> MakeMapleModel(const MethodConfig& config, clip::Clip clip,
                                                    std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                                                    const std::vector<std::string>& class_names);

}  // namespace atp::prompt
