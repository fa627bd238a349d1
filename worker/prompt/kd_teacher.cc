#include "worker/prompt/kd_teacher.h"

#include "worker/prompt/ivlp_model.h"
#include "worker/prompt/maple_model.h"
#include "worker/prompt/prompt_model.h"
#include "worker/prompt/promptsrc_model.h"

namespace atp::prompt {

KdTeacher::KdTeacher(std::string description, clip::Clip clip, std::vector<std::string> class_names,
                     std::function<torch::Tensor()> text_features,
                     std::function<torch::Tensor(const torch::Tensor&)> image_features,
                     std::shared_ptr<void> keep_alive)
    : description_(std::move(description)),
      clip_(std::move(clip)),
      class_names_(std::move(class_names)),
      image_features_(std::move(image_features)),
      keep_alive_(std::move(keep_alive)) {
  torch::NoGradGuard no_grad;
  torch::Tensor text = text_features().to(torch::kFloat32);
  text_features_ = text / text.norm(2, -1, true);
}

torch::Tensor KdTeacher::Logits(const torch::Tensor& pixels) {
  torch::NoGradGuard no_grad;
  torch::Tensor image = image_features_(pixels).to(torch::kFloat32);
  image = image / image.norm(2, -1, true);
  return clip_->logit_scale.exp().to(torch::kFloat32) * image.matmul(text_features_.to(image.device()).t());
}

Result<std::unique_ptr<KdTeacher>> MakeKdTeacher(const std::string& method, std::unique_ptr<PromptModel> model,
                                                 clip::Clip clip, const std::vector<std::string>& class_names) {
  model->SetClasses(class_names, /*training_classes=*/false);
  for (auto& [name, tensor] : model->StateDict()) tensor.set_requires_grad(false);
  std::shared_ptr<PromptModel> owned(std::move(model));
  if (auto* maple = dynamic_cast<MapleModel*>(owned.get())) {
    return std::make_unique<KdTeacher>(
        "MaPLe teacher (" + clip->options.ToString() + ")", clip, class_names, [maple] { return maple->TextFeatures(); },
        [maple](const torch::Tensor& pixels) { return maple->ImageFeatures(pixels); }, owned);
  }
  IvlpModel* ivlp = dynamic_cast<IvlpModel*>(owned.get());
  if (auto* src = dynamic_cast<PromptSrcModel*>(owned.get())) ivlp = &src->ivlp();
  if (ivlp != nullptr) {
    return std::make_unique<KdTeacher>(
        "IVLP teacher (" + clip->options.ToString() + ")", clip, class_names, [ivlp] { return ivlp->TextFeatures(); },
        [ivlp](const torch::Tensor& pixels) { return ivlp->ImageFeatures(pixels); }, owned);
  }
  return InvalidArgument("method '" + method + "' cannot teach a PromptKD student: its model exposes no prompted "
                         "text and image towers (teachers: promptsrc, maple)");
}

}  // namespace atp::prompt
