// PromptSRC (Khattak et al., ICCV 2023), vanilla and + ATPrompt (deep version) (docs/promptsrc.md):
// the IVLP prompted CLIP trained with cross-entropy plus self-regularisation against the frozen
// CLIP — L1 between the prompted and the frozen text features (the frozen ones averaged over
// 60 templates), L1 between the prompted and the frozen image features, and KL between the
// frozen zero-shot logits and the prompted logits — and Gaussian prompt aggregation (GPA) over
// epochs. Owns the IVLP model and the frozen text features; CLIP is shared and frozen. Not
// thread-safe: one model per job.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/prompt/ivlp_model.h"
#include "worker/prompt/prompt_model.h"

namespace atp::clip {
class ClipTokenizer;
}

namespace atp::prompt {

struct MethodConfig;

// The templates whose frozen-CLIP text features PromptSRC averages (its
// trainers/imagenet_templates.py IMAGENET_TEMPLATES, used for every dataset): 60 strings with
// one "{}" for the class name.
const std::vector<std::string>& PromptSrcTemplates();

// GPA's epoch weights as the released trainer computes them: the normal density
// N(e; mean, std) at e = 1..epochs, divided by its sum. Index e − 1 weighs epoch e.
std::vector<double> GaussianPromptAggregationWeights(int64_t epochs, double mean, double std);

struct PromptSrcSettings {
  IvlpSettings ivlp;
  double text_loss_weight = 25;   // TEXT_LOSS_WEIGHT
  double image_loss_weight = 10;  // IMAGE_LOSS_WEIGHT
  double gpa_mean = 15;           // GPA_MEAN (epochs, 1-based)
  double gpa_std = 1;             // GPA_STD
};

// The terms of one shard's loss, each normalised so that sums over ranks give the full batch's
// official value (PromptModel::TrainLoss): cross-entropy sum / G; text L1 (batch-independent)
// × shard size / G; image L1 sum / (G·embed); KL sum / (G·classes).
struct PromptSrcLossTerms {
  torch::Tensor cross_entropy, scl_text, scl_image, scl_logits;
  torch::Tensor Total() const { return cross_entropy + scl_text + scl_image + scl_logits; }
};

class PromptSrcModel : public PromptModel {
 public:
  // Use MakePromptSrcModel.
  PromptSrcModel(std::unique_ptr<IvlpModel> ivlp, PromptSrcSettings settings,
                 std::shared_ptr<const clip::ClipTokenizer> tokenizer);

  bool TakesImageFeatures() const override { return false; }
  bool UsesFrozenImageFeatures() const override { return true; }
  void SetFrozenImageFeatures(const torch::Tensor& features) override { frozen_image_features_ = features; }
  // The frozen template-ensemble text features follow (computed when training first needs them).
  void SetClasses(const std::vector<std::string>& class_names, bool training_classes) override;
  NamedTensors TrainableParameters() override { return ivlp_->TrainableParameters(); }
  NamedTensors StateDict() override { return ivlp_->StateDict(); }
  Status LoadStateDict(const std::map<std::string, torch::Tensor>& state) override;
  torch::Tensor TrainLoss(const torch::Tensor& pixels, const torch::Tensor& labels, int64_t global_batch) override;
  void BeginEvaluation() override { ivlp_->BeginEvaluation(); }
  torch::Tensor Logits(const torch::Tensor& pixels) override { return ivlp_->Logits(pixels); }
  void EndEvaluation() override { ivlp_->EndEvaluation(); }
  // GPA: adds this epoch's weighted tensors to the running sum; after the last epoch the
  // model's tensors become the sum (the released trainer loads it for final inference).
  void EndTrainingEpoch(int64_t epoch, int64_t epochs) override;
  NamedTensors TrainingState() override;
  Status LoadTrainingState(const std::map<std::string, torch::Tensor>& state) override;
  std::vector<std::string> Notes() const override;

  // The loss terms of a shard. Uses the frozen image features set for this shard (the
  // feature cache's), else computes them from `pixels` with the prompt-free image tower.
  PromptSrcLossTerms LossTerms(const torch::Tensor& pixels, const torch::Tensor& labels, int64_t global_batch);

  // Unnormalised frozen text features [C, embed]: the mean over PromptSrcTemplates() of the
  // frozen CLIP's encode_text (class names with '_' replaced by spaces). Computed on first use.
  torch::Tensor frozen_text_features();
  IvlpModel& ivlp() { return *ivlp_; }
  const PromptSrcSettings& settings() const { return settings_; }

 private:
  void ComputeFrozenTextFeatures(const std::vector<std::string>& class_names);

  std::unique_ptr<IvlpModel> ivlp_;
  PromptSrcSettings settings_;
  std::shared_ptr<const clip::ClipTokenizer> tokenizer_;
  torch::Tensor frozen_text_features_;   // undefined until first needed
  torch::Tensor frozen_image_features_;  // rows of the current shard, when the trainer gives them
  std::map<std::string, torch::Tensor> gpa_sum_;  // by state-dict key; empty before the first epoch ends
};

// The PromptSRC settings of a resolved method config (n_ctx is N_CTX_TEXT).
PromptSrcSettings PromptSrcSettingsFor(const MethodConfig& config);

// Builds the model (MakeIvlpModel's checks and draw order) and the frozen text features.
Result<std::unique_ptr<PromptModel>> MakePromptSrcModel(const MethodConfig& config, clip::Clip clip,
                                                        std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                                                        const std::vector<std::string>& class_names);

}  // namespace atp::prompt
