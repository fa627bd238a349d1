// The PromptKD student (docs/methods.md, "PromptKD"; zhengli97/PromptKD trainers/promptkd.py):
// a CLIP image tower with independent deep vision prompts (IVLP: `n` tokens appended after
// the patch tokens, replaced in blocks 1..J−1), a projector from the student's embedding to
// the teacher's (1×1 conv, BatchNorm, ReLU, 1×1 conv), and no text tower: it classifies
// against the teacher's text features. Trained without labels on KL(teacher ‖ student).
// Owns its learned tensors and the teacher; the student CLIP is shared and frozen. Not
// thread-safe: one model per job.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/clip/clip_model.h"
#include "worker/prompt/kd_teacher.h"
#include "worker/prompt/prompt_model.h"

namespace atp::prompt {

// The official Feature_Trans_Module_two_layer: `conv1` = Sequential(Conv2d(in, out, 1),
// BatchNorm2d(out), ReLU, Conv2d(out, out, 1)) applied to a feature as a 1×1 image, so the
// state-dict keys are conv1.{0,1,3}.* (prefix `VPT_image_trans.` in checkpoints).
struct PromptkdProjectorOptions {
  PromptkdProjectorOptions(int64_t in_dim, int64_t out_dim) : in_dim_(in_dim), out_dim_(out_dim) {}
  TORCH_ARG(int64_t, in_dim);   // the student's embedding (512 for ViT-B/16)
  TORCH_ARG(int64_t, out_dim);  // the teacher's embedding (768 for ViT-L/14)
};

class PromptkdProjectorImpl : public torch::nn::Module {
 public:
  // Draws the two convolutions' weights and biases from the current generator (PyTorch's
  // default Conv2d init); BatchNorm starts at weight 1, bias 0, running mean 0, variance 1.
  explicit PromptkdProjectorImpl(const PromptkdProjectorOptions& options);
  // [N, in_dim] -> [N, out_dim]; BatchNorm uses batch statistics in train() mode.
  torch::Tensor forward(const torch::Tensor& features);

  PromptkdProjectorOptions options;
  torch::nn::Sequential conv1{nullptr};
};
TORCH_MODULE(PromptkdProjector);

// KL(softmax(t/T) ‖ softmax(s/T)) summed over the shard, · T² / (global_batch · C) · weight:
// the official F.kl_div(..., reduction='sum') · T² / numel, split over ranks so that the
// shards' sum is the full batch's loss.
torch::Tensor PromptkdLoss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                           double temperature, double weight, int64_t global_batch);

class PromptkdModel : public PromptModel {
 public:
  // Use MakePromptkdModel, which validates the configuration and draws the tensors.
  PromptkdModel(clip::Clip student, std::shared_ptr<KdTeacher> teacher, int64_t n_ctx, int64_t depth,
                double kd_weight, double temperature);

  bool TakesImageFeatures() const override { return false; }
  // Evaluation classes: rows of the teacher's text features, found by name.
  void SetClasses(const std::vector<std::string>& class_names, bool training_classes) override;
  NamedTensors TrainableParameters() override;
  NamedTensors StateDict() override;
  Status LoadStateDict(const std::map<std::string, torch::Tensor>& state) override;
  // Labels are not read: the teacher's logits on the same pixels are the target.
  torch::Tensor TrainLoss(const torch::Tensor& pixels, const torch::Tensor& labels, int64_t global_batch) override;
  void BeginEvaluation() override;
  torch::Tensor Logits(const torch::Tensor& pixels) override;
  std::vector<std::string> Notes() const override;
  NamedTensors RankLocalBuffers() override;

  // Normalised, projected student image features [N, teacher embed] of pixels.
  torch::Tensor StudentFeatures(const torch::Tensor& pixels);
  // The student's logits against the teacher's text features of every class: [N, C].
  torch::Tensor AllClassLogits(const torch::Tensor& pixels);

  KdTeacher& teacher() { return *teacher_; }
  PromptkdProjector projector() const { return projector_; }
  torch::Tensor vision_prompt(int64_t layer) const { return vision_prompts_.at(static_cast<size_t>(layer)); }
  int64_t depth() const { return static_cast<int64_t>(vision_prompts_.size()); }

 private:
  clip::Clip student_;
  std::shared_ptr<KdTeacher> teacher_;
  std::vector<torch::Tensor> vision_prompts_;  // [0] = image_encoder.VPT; [i] = resblocks.i.VPT_shallow
  PromptkdProjector projector_{nullptr};
  double kd_weight_, temperature_;
  torch::Tensor class_rows_;  // evaluation: rows of the teacher's text features (long)
};

// Checks the configuration against both CLIPs (1 <= depth <= the student's layers, n_ctx >= 1,
// equal input resolutions) and builds the student. Draw order: VPT, VPT_shallow 1..J−1
// (each N(0, 0.02)), then the projector's convolutions.
Result<std::unique_ptr<PromptkdModel>> MakePromptkdModel(clip::Clip student, std::shared_ptr<KdTeacher> teacher,
                                                         int64_t n_ctx, int64_t depth, double kd_weight,
                                                         double temperature);

}  // namespace atp::prompt
