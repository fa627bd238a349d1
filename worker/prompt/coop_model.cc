#include "worker/prompt/coop_model.h"

#include <sstream>

namespace atp::prompt {

PromptLearnerOptions LearnerOptionsFor(const MethodConfig& config) {
  PromptLearnerOptions options;
  options.design = config.design;
  if (config.atprompt && config.design.compat == Compat::kOfficial) options.attribute_tensors = 3;
  return options;
}

Status LoadNamedTensors(const std::map<std::string, torch::Tensor>& state, const NamedTensors& targets,
                        const std::string& model_name) {
  std::map<std::string, torch::Tensor> clean;
  for (const auto& [raw, tensor] : state) {
    std::string name = raw;
    for (const char* prefix : {"module.", "prompt_learner."}) {
      if (name.rfind(prefix, 0) == 0) name = name.substr(std::string(prefix).size());
    }
    clean[name] = tensor;
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, target] : targets) {
    std::string bare = name;
    if (bare.rfind("prompt_learner.", 0) == 0) bare = bare.substr(15);
    auto it = clean.find(bare);
    if (it == clean.end()) {
      return InvalidArgument(model_name + " checkpoint has no tensor '" + name + "'");
    }
    if (it->second.sizes() != target.sizes()) {
      std::ostringstream message;
      message << model_name << " checkpoint tensor '" << name << "' has shape " << it->second.sizes()
              << ", the model expects " << target.sizes();
      return InvalidArgument(message.str());
    }
    target.copy_(it->second.to(target.dtype()));
  }
  return Status::Ok();
}

CoopModel::CoopModel(const MethodConfig& config, clip::Clip clip, std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                     const std::vector<std::string>& class_names)
    : clip_(clip), learner_(LearnerOptionsFor(config), clip, std::move(tokenizer), class_names) {}

void CoopModel::SetClasses(const std::vector<std::string>& class_names, bool) { learner_->SetClasses(class_names); }

NamedTensors CoopModel::TrainableParameters() {
  NamedTensors out = {{"ctx", learner_->ctx}};
  auto used = learner_->UsedParameters();
  for (size_t b = 1; b < used.size(); ++b) out.push_back({"ctx_att" + std::to_string(b), used[b]});
  return out;
}

NamedTensors CoopModel::StateDict() {
  NamedTensors out = {{"ctx", learner_->ctx}};
  for (size_t b = 0; b < learner_->ctx_att.size(); ++b) {
    out.push_back({"ctx_att" + std::to_string(b + 1), learner_->ctx_att[b]});
  }
  return out;
}

Status CoopModel::LoadStateDict(const std::map<std::string, torch::Tensor>& state) {
  return LoadNamedTensors(state, StateDict(), "CoOp");
}

torch::Tensor CoopModel::TrainLoss(const torch::Tensor& input, const torch::Tensor& labels, int64_t global_batch) {
  torch::Tensor text = learner_->TextFeatures();
  return ShardCrossEntropy(CosineLogits(input, text, clip_->logit_scale), labels, global_batch);
}

void CoopModel::BeginEvaluation() {
  torch::NoGradGuard no_grad;
  eval_text_ = learner_->TextFeatures();
}

torch::Tensor CoopModel::Logits(const torch::Tensor& input) {
  torch::NoGradGuard no_grad;
  if (!eval_text_.defined()) BeginEvaluation();
  return CosineLogits(input, eval_text_, clip_->logit_scale);
}

}  // namespace atp::prompt
