#include "worker/pretrain/contrastive_loss.h"

namespace atp::pretrain {

torch::Tensor MultiPositiveClipLoss(const torch::Tensor& logits, const torch::Tensor& image_classes,
                                    const torch::Tensor& text_classes) {
  TORCH_CHECK(logits.dim() == 2 && image_classes.dim() == 1 && text_classes.dim() == 1 &&
                  logits.size(0) == image_classes.size(0) && logits.size(1) == text_classes.size(0),
              "logits [", logits.sizes(), "] do not match ", image_classes.size(0), " images and ",
              text_classes.size(0), " texts");
  // positive[i][t]: image i and text t show the same class.
  torch::Tensor positive = image_classes.unsqueeze(1).eq(text_classes.unsqueeze(0)).to(logits.dtype());
  torch::Tensor per_image = positive.sum(1);
  torch::Tensor per_text = positive.sum(0);
  TORCH_CHECK(per_image.min().item<float>() > 0, "an image's class has no text in the batch");
  TORCH_CHECK(per_text.min().item<float>() > 0, "a text's class has no image in the batch");
  torch::Tensor image_to_text = -(positive / per_image.unsqueeze(1) * torch::log_softmax(logits, 1)).sum(1).mean();
  torch::Tensor text_to_image = -(positive / per_text.unsqueeze(0) * torch::log_softmax(logits, 0)).sum(0).mean();
  return (image_to_text + text_to_image) / 2;
}

}  // namespace atp::pretrain
