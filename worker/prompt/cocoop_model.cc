#include "worker/prompt/cocoop_model.h"

#include "worker/prompt/coop_model.h"

namespace atp::prompt {

MetaNetImpl::MetaNetImpl(int64_t embed_dim, int64_t text_width) {
  const int64_t hidden = std::max<int64_t>(1, embed_dim / 16);
  // PyTorch's default Linear init (Kaiming-uniform a = sqrt(5)), as the official meta-net.
  linear1 = register_module("linear1", torch::nn::Linear(embed_dim, hidden));
  linear2 = register_module("linear2", torch::nn::Linear(hidden, text_width));
}

torch::Tensor MetaNetImpl::forward(const torch::Tensor& x) { return linear2(torch::relu(linear1(x))); }

CocoopModel::CocoopModel(const MethodConfig& config, clip::Clip clip,
                         std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                         const std::vector<std::string>& class_names)
    : clip_(clip), learner_(LearnerOptionsFor(config), clip, std::move(tokenizer), class_names) {
  meta_net_ = MetaNet(clip->options.embed_dim(), clip->token_embedding->weight.size(1));
  meta_net_->to(clip->token_embedding->weight.device());
}

void CocoopModel::SetClasses(const std::vector<std::string>& class_names, bool) { learner_->SetClasses(class_names); }

NamedTensors CocoopModel::TrainableParameters() {
  NamedTensors out = {{"ctx", learner_->ctx}};
  auto used = learner_->UsedParameters();
  for (size_t b = 1; b < used.size(); ++b) out.push_back({"ctx_att" + std::to_string(b), used[b]});
  for (const auto& item : meta_net_->named_parameters()) out.push_back({"meta_net." + item.key(), item.value()});
  return out;
}

NamedTensors CocoopModel::StateDict() {
  NamedTensors out = {{"ctx", learner_->ctx}};
  for (const auto& item : meta_net_->named_parameters()) out.push_back({"meta_net." + item.key(), item.value()});
  for (size_t b = 0; b < learner_->ctx_att.size(); ++b) {
    out.push_back({"ctx_att" + std::to_string(b + 1), learner_->ctx_att[b]});
  }
  return out;
}

Status CocoopModel::LoadStateDict(const std::map<std::string, torch::Tensor>& state) {
  return LoadStrictly(state, StateDict(), CoopStyleReading("CoCoOp"));
}

torch::Tensor CocoopModel::PerImageLogits(const torch::Tensor& image_features) {
  // The meta-net sees the normalised feature (docs/reference.md §3.4).
  torch::Tensor normalised = image_features / image_features.norm(2, -1, true);
  torch::Tensor shift = meta_net_->forward(normalised);
  torch::Tensor text = learner_->TextFeatures(shift);  // [B, C, E]
  return CosineLogits(image_features, text, clip_->logit_scale);
}

torch::Tensor CocoopModel::TrainLoss(const torch::Tensor& input, const torch::Tensor& labels, int64_t global_batch) {
  return ShardCrossEntropy(PerImageLogits(input), labels, global_batch);
}

torch::Tensor CocoopModel::Logits(const torch::Tensor& input) {
  torch::NoGradGuard no_grad;
  return PerImageLogits(input);
}

}  // namespace atp::prompt
