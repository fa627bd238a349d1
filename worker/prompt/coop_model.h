// CoopModel: CoOp (learned class context) and CoOp + ATPrompt (attribute-anchored context,
// shallow version), docs/reference.md §3.2-3.3: text features of the learned prompts against
// frozen image features, cross-entropy on scale·cos. Also the prompt learner every CoOp-style
// model shares. Not thread-safe.
#pragma once

#include <memory>

#include "worker/prompt/method_config.h"
#include "worker/prompt/prompt_learner.h"
#include "worker/prompt/prompt_model.h"

namespace atp::prompt {

// The learner options of a CoOp-style method: the official ATPrompt trainers always create
// three ctx_att tensors under compat "official" (and with at most three attributes).
PromptLearnerOptions LearnerOptionsFor(const MethodConfig& config);

// The learner's tensors under the whole-model keys of the official MaPLe and DePT checkpoints
// ("prompt_learner.ctx", "prompt_learner.ctx_att1", ...). `used_only` leaves out the ctx_att
// tensors no prompt uses (they never receive a gradient).
NamedTensors PrefixedLearnerParameters(const PromptLearner& learner, bool used_only);

// How the CoOp-style models (CoOp, CoCoOp) read checkpoints: the prompt learner's keys,
// with "module." and "prompt_learner." prefixes stripped.
StateDictReading CoopStyleReading(const std::string& model_name);

class CoopModel : public PromptModel {
 public:
  CoopModel(const MethodConfig& config, clip::Clip clip, std::shared_ptr<const clip::ClipTokenizer> tokenizer,
            const std::vector<std::string>& class_names);

  void SetClasses(const std::vector<std::string>& class_names, bool training_classes) override;
  NamedTensors TrainableParameters() override;
  NamedTensors StateDict() override;
  Status LoadStateDict(const std::map<std::string, torch::Tensor>& state) override;
  torch::Tensor TrainLoss(const torch::Tensor& input, const torch::Tensor& labels, int64_t global_batch) override;
  void BeginEvaluation() override;
  torch::Tensor Logits(const torch::Tensor& input) override;
  void EndEvaluation() override { eval_text_ = torch::Tensor(); }
  std::vector<std::string> Notes() const override { return learner_->layout().notes; }

  PromptLearner learner() const { return learner_; }

 private:
  clip::Clip clip_;
  PromptLearner learner_{nullptr};
  torch::Tensor eval_text_;
};

}  // namespace atp::prompt
