// ZsclipModel: zero-shot CLIP (docs/reference.md §3.1): one hand-written template per dataset, the
// class name with '_' → ' ', encoded once; nothing trains. compat "official" uses the released
// zsclip.py's templates (Flowers: "a photo of a {}"). Not thread-safe.
#pragma once

#include <memory>

#include "worker/clip/clip_model.h"
#include "worker/clip/tokenizer.h"
#include "worker/prompt/method_config.h"
#include "worker/prompt/prompt_model.h"

namespace atp::prompt {

class ZsclipModel : public PromptModel {
 public:
  ZsclipModel(const MethodConfig& config, clip::Clip clip, std::shared_ptr<const clip::ClipTokenizer> tokenizer,
              const std::vector<std::string>& class_names);

  void SetClasses(const std::vector<std::string>& class_names, bool training_classes) override;
  NamedTensors TrainableParameters() override { return {}; }
  NamedTensors StateDict() override { return {}; }
  Status LoadStateDict(const std::map<std::string, torch::Tensor>&) override { return Status::Ok(); }
  torch::Tensor TrainLoss(const torch::Tensor& input, const torch::Tensor& labels, int64_t global_batch) override;
  torch::Tensor Logits(const torch::Tensor& input) override;
  std::vector<std::string> Notes() const override { return {"template: " + template_}; }

  // Points the model at another dataset's template (cross-dataset evaluation).
  Status SetDataset(const std::string& dataset);

 private:
  MethodConfig config_;
  clip::Clip clip_;
  std::shared_ptr<const clip::ClipTokenizer> tokenizer_;
  std::string template_;
  torch::Tensor text_;  // [C, E]
};

}  // namespace atp::prompt
