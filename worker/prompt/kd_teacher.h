// KdTeacher: the frozen, prompted CLIP a PromptKD student distils from (docs/methods.md,
// "PromptKD"). It holds the teacher's normalised text features of every class, computed once
// per job (the official trainer recomputes them for every batch; they do not change), and
// gives the teacher's logits for a batch of pixels: its prompted image tower on the very view
// the student sees. Owns the teacher model; frozen; not thread-safe (one per job).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/clip/clip_model.h"

namespace atp::prompt {

class PromptModel;

class KdTeacher {
 public:
  // `text_features` gives the teacher's unnormalised text features [C, E] of its classes,
  // `image_features` its unnormalised image features [N, E] of pixels; `keep_alive` owns what
  // they use. Text features are computed here, once, without autograd.
  KdTeacher(std::string description, clip::Clip clip, std::vector<std::string> class_names,
            std::function<torch::Tensor()> text_features,
            std::function<torch::Tensor(const torch::Tensor&)> image_features, std::shared_ptr<void> keep_alive);

  // Normalised text features [C, E] of every class, label order.
  const torch::Tensor& text_features() const { return text_features_; }
  const std::vector<std::string>& class_names() const { return class_names_; }
  // exp(logit_scale) · norm(image features) · text_features()ᵀ: [N, C], no autograd.
  torch::Tensor Logits(const torch::Tensor& pixels);
  int64_t embed_dim() const { return text_features_.size(1); }
  int64_t input_resolution() const { return clip_->options.vision.input_resolution(); }
  torch::Tensor logit_scale() const { return clip_->logit_scale; }
  const std::string& description() const { return description_; }

 private:
  std::string description_;
  clip::Clip clip_;
  std::vector<std::string> class_names_;
  std::function<torch::Tensor(const torch::Tensor&)> image_features_;
  std::shared_ptr<void> keep_alive_;
  torch::Tensor text_features_;
};

// Wraps a trained prompt model as a teacher for `class_names` (SetClasses is called here).
// Methods whose towers a teacher can use: maple and those that expose text and image
// features (promptsrc); others are an error naming the method.
Result<std::unique_ptr<KdTeacher>> MakeKdTeacher(const std::string& method, std::unique_ptr<PromptModel> model,
                                                 clip::Clip clip, const std::vector<std::string>& class_names);

}  // namespace atp::prompt
