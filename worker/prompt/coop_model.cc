#include "worker/prompt/coop_model.h"

#include <algorithm>

namespace atp::prompt {

PromptLearnerOptions LearnerOptionsFor(const MethodConfig& config) {
  PromptLearnerOptions options;
  options.design = config.design;
  if (config.atprompt && config.design.compat == Compat::kOfficial) options.attribute_tensors = 3;
  return options;
}

NamedTensors PrefixedLearnerParameters(const PromptLearner& learner, bool used_only) {
  const std::vector<torch::Tensor> used = learner->UsedParameters();
  NamedTensors out;
  for (const auto& p : learner->named_parameters(/*recurse=*/true)) {
    const bool is_used =
        std::any_of(used.begin(), used.end(), [&p](const torch::Tensor& u) { return u.is_same(p.value()); });
    if (used_only && !is_used) continue;
    out.emplace_back("prompt_learner." + p.key(), p.value());
  }
  return out;
}

StateDictReading CoopStyleReading(const std::string& model_name) {
  StateDictReading reading;
  reading.model_name = model_name;
  reading.must_match = "n_ctx, attribute count and text width";
  // The official CoOp-style checkpoints hold the prompt learner's own keys; a whole-model
  // export (and DataParallel) adds prefixes.
  reading.strip_prefixes = {"module.", "prompt_learner."};
  return reading;
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
  return LoadStrictly(state, StateDict(), CoopStyleReading("CoOp"));
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
