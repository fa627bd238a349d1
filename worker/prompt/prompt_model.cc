#include "worker/prompt/prompt_model.h"

namespace atp::prompt {

torch::Tensor ShardCrossEntropy(const torch::Tensor& logits, const torch::Tensor& labels, int64_t global_batch) {
  namespace F = torch::nn::functional;
  return F::cross_entropy(logits, labels, F::CrossEntropyFuncOptions().reduction(torch::kSum)) /
         static_cast<double>(global_batch);
}

torch::Tensor CosineLogits(const torch::Tensor& image_features, const torch::Tensor& text_features,
                           const torch::Tensor& logit_scale) {
  torch::Tensor image = image_features / image_features.norm(2, -1, true);
  torch::Tensor text = text_features / text_features.norm(2, -1, true);
  torch::Tensor scale = logit_scale.exp();
  if (text.dim() == 2) return scale * image.matmul(text.t());
  // One prompt set per image: logits[i, c] = <image_i, text_{i,c}>.
  return scale * torch::bmm(text, image.unsqueeze(2)).squeeze(2);
}

}  // namespace atp::prompt
