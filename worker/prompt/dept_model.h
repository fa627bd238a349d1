// DePT, vanilla and + ATPrompt (docs/reference.md §3.6): the CoOp prompt learner plus a linear
// probe on FiLM-modulated features — text features of the labelled classes and image features
// train one head together; evaluation on the training classes fuses its logits with the prompt's.
// Inputs are frozen, unnormalised image features. Owns its learned tensors; CLIP is shared and
// frozen. Not thread-safe: one model per job.
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

struct MethodConfig;

// Feature-wise affine modulation: scale·x + bias, both cast to x's dtype (no sigmoid).
struct FilmOptions {
  explicit FilmOptions(int64_t dim) : dim_(dim) {}
  TORCH_ARG(int64_t, dim);
};

class FilmImpl : public torch::nn::Module {
 public:
  explicit FilmImpl(const FilmOptions& options);  // scale 1, bias 0: draws nothing
  torch::Tensor forward(const torch::Tensor& x);

  FilmOptions options;
  torch::Tensor scale;  // [dim]
  torch::Tensor bias;   // [dim]
};
TORCH_MODULE(Film);

// DePT's modules outside the prompt learner, under the official top-level checkpoint keys.
struct DeptHeadsOptions {
  DeptHeadsOptions(int64_t embed_dim, int64_t num_classes) : embed_dim_(embed_dim), num_classes_(num_classes) {}
  TORCH_ARG(int64_t, embed_dim);
  TORCH_ARG(int64_t, num_classes);  // rows of linear_probe_proj; 0 = no head (official: Identity)
};

class DeptHeadsImpl : public torch::nn::Module {
 public:
  // linear_probe_proj draws PyTorch's default Linear init (weight, then bias).
  explicit DeptHeadsImpl(const DeptHeadsOptions& options);
  bool has_linear_probe() const { return !linear_probe_proj.is_empty(); }

  DeptHeadsOptions options;
  Film film_lp_img{nullptr};
  Film film_lp_text{nullptr};
  torch::nn::Linear linear_probe_proj{nullptr};
};
TORCH_MODULE(DeptHeads);

class DeptModel : public PromptModel {
 public:
  // Use MakeDeptModel. `training_class_names` are the classes the head's rows stand for.
  DeptModel(PromptLearner learner, DeptHeads heads, clip::Clip clip, double weight,
            std::vector<std::string> training_class_names);

  // With training_classes, evaluation fuses the head when the names are the training classes
  // or an in-order subset of them (ImageNet-A/R against the ImageNet head: the head's rows
  // are picked by name, as the official loader picks them by folder); otherwise, and for
  // other classes, the logits are the prompt's similarity logits only.
  void SetClasses(const std::vector<std::string>& class_names, bool training_classes) override;
  NamedTensors TrainableParameters() override;
  NamedTensors StateDict() override;
  Status LoadStateDict(const std::map<std::string, torch::Tensor>& state) override;
  // (1 − w)·CE(sim, y) averaged over the global batch B + w·CE(head([FiLM_text(t)[y]; FiLM_img(v)]),
  // [y; y]) averaged over 2B, as the official mean over the concatenated 2B rows.
  torch::Tensor TrainLoss(const torch::Tensor& features, const torch::Tensor& labels, int64_t global_batch) override;
  void BeginEvaluation() override;
  torch::Tensor Logits(const torch::Tensor& features) override;
  void EndEvaluation() override { eval_text_features_ = torch::Tensor(); }
  std::vector<std::string> Notes() const override;

  // Unnormalised text features [C, embed] of the current prompts.
  torch::Tensor TextFeatures() { return learner_->TextFeatures(); }
  // Head logits [N, C] of FiLM_img(features), restricted to the fused rows; undefined when
  // evaluation is not fused.
  torch::Tensor LinearProbeLogits(const torch::Tensor& features);
  bool fused() const { return fused_rows_.defined(); }
  double weight() const { return weight_; }
  PromptLearner learner() const { return learner_; }
  DeptHeads heads() const { return heads_; }

 private:

  PromptLearner learner_;
  DeptHeads heads_;
  clip::Clip clip_;
  double weight_;
  std::vector<std::string> training_class_names_;
  torch::Tensor fused_rows_;  // head rows of the current classes; undefined = not fused
  std::vector<std::string> notes_;
  torch::Tensor eval_text_features_;
};

// Builds DePT for `class_names` (the training classes). The linear head exists when the
// official trainer creates it: training on base classes (base2novel) or on all classes of an
// ImageNet dataset (cross-dataset / domain generalisation source). Draw order
// (docs/reference.md §3.8): ctx, ctx_att1..3, then linear_probe_proj.
Result<std::unique_ptr<PromptModel>> MakeDeptModel(const MethodConfig& config, clip::Clip clip,
                                                   std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                                                   const std::vector<std::string>& class_names);

}  // namespace atp::prompt
