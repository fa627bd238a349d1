// CocoopModel: CoCoOp and CoCoOp + ATPrompt (docs/reference.md §3.4): a meta-net maps each
// normalised image feature to an offset added to the class context (attribute context stays put),
// so every image gets its own prompt set and B·C text sequences are encoded per batch. Not
// thread-safe.
#pragma once

#include <memory>

#include "worker/prompt/method_config.h"
#include "worker/prompt/prompt_learner.h"
#include "worker/prompt/prompt_model.h"

namespace atp::prompt {

// Linear(embed → embed/16) → ReLU → Linear(embed/16 → text width), as meta_net.linear1/2.
class MetaNetImpl : public torch::nn::Module {
 public:
  MetaNetImpl(int64_t embed_dim, int64_t text_width);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear linear1{nullptr}, linear2{nullptr};
};
TORCH_MODULE(MetaNet);

class CocoopModel : public PromptModel {
 public:
  CocoopModel(const MethodConfig& config, clip::Clip clip, std::shared_ptr<const clip::ClipTokenizer> tokenizer,
              const std::vector<std::string>& class_names);

  void SetClasses(const std::vector<std::string>& class_names, bool training_classes) override;
  NamedTensors TrainableParameters() override;
  NamedTensors StateDict() override;
  Status LoadStateDict(const std::map<std::string, torch::Tensor>& state) override;
  torch::Tensor TrainLoss(const torch::Tensor& input, const torch::Tensor& labels, int64_t global_batch) override;
  torch::Tensor Logits(const torch::Tensor& input) override;
  std::vector<std::string> Notes() const override { return learner_->layout().notes; }

  PromptLearner learner() const { return learner_; }
  MetaNet meta_net() const { return meta_net_; }

 private:
  torch::Tensor PerImageLogits(const torch::Tensor& image_features);

  clip::Clip clip_;
  PromptLearner learner_{nullptr};
  MetaNet meta_net_{nullptr};
};

}  // namespace atp::prompt
