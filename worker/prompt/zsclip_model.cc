#include "worker/prompt/zsclip_model.h"

#include <stdexcept>

#include "worker/data/dataset.h"

namespace atp::prompt {

ZsclipModel::ZsclipModel(const MethodConfig& config, clip::Clip clip,
                         std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                         const std::vector<std::string>& class_names)
    : config_(config), clip_(std::move(clip)), tokenizer_(std::move(tokenizer)) {
  Status status = SetDataset(config.dataset);
  if (!status.ok()) throw std::invalid_argument(status.message());
  SetClasses(class_names, true);
}

Status ZsclipModel::SetDataset(const std::string& dataset) {
  const data::DatasetLayout* layout = data::FindLayout(dataset);
  if (!layout) return InvalidArgument("zsclip: no prompt template for dataset '" + dataset + "'");
  template_ = layout->prompt_template;
  if (config_.design.compat == Compat::kOfficial && !layout->official_code_template.empty()) {
    template_ = layout->official_code_template;
  }
  return Status::Ok();
}

void ZsclipModel::SetClasses(const std::vector<std::string>& class_names, bool) {
  const int64_t length = clip_->options.text.context_length();
  std::vector<int64_t> ids;
  for (const auto& name : class_names) {
    auto tokens = tokenizer_->Tokenize(data::FillTemplate(template_, name), clip::OverlongPolicy::kTruncate,
                                       static_cast<int>(length));
    if (!tokens.ok()) throw std::invalid_argument(tokens.status().message());
    ids.insert(ids.end(), tokens->begin(), tokens->end());
  }
  torch::NoGradGuard no_grad;
  text_ = clip_->EncodeText(torch::tensor(ids, torch::kLong)
                                .view({static_cast<int64_t>(class_names.size()), length})
                                .to(clip_->token_embedding->weight.device()));
}

torch::Tensor ZsclipModel::TrainLoss(const torch::Tensor&, const torch::Tensor&, int64_t) {
  throw std::logic_error("zero-shot CLIP has nothing to train");
}

torch::Tensor ZsclipModel::Logits(const torch::Tensor& input) {
  torch::NoGradGuard no_grad;
  return CosineLogits(input, text_, clip_->logit_scale);
}

}  // namespace atp::prompt
