// PromptModel: what the trainer and the evaluator need from one method (CoOp, CoCoOp, MaPLe,
// DePT, ZS-CLIP; each ± ATPrompt): its trainable parameters, its loss on a shard of a batch,
// its logits, and its state dict under the official key names. One implementation per
// method, built by MakePromptModel (prompt_methods.h). CLIP stays frozen inside. Not
// thread-safe: one model per job process.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace atp::prompt {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

class PromptModel {
 public:
  virtual ~PromptModel() = default;

  // True: inputs are image features [N, embed] from the frozen, prompt-free image tower
  // (computed once and cached for the whole grid). False (MaPLe): inputs are pixels
  // [N, 3, R, R], because the prompts enter the image tower.
  virtual bool TakesImageFeatures() const { return true; }

  // Pixel models that also regularise against the frozen, prompt-free image tower's features
  // of the same augmented views (PromptSRC). The trainer then gives them, rows of the current
  // shard from the feature cache, before each TrainLoss.
  virtual bool UsesFrozenImageFeatures() const { return false; }
  virtual void SetFrozenImageFeatures(const torch::Tensor& /*features*/) {}

  // The classes prompts are built for (label order). `training_classes` says whether these
  // are the classes the model is trained on (DePT fuses its linear head only then).
  virtual void SetClasses(const std::vector<std::string>& class_names, bool training_classes) = 0;

  // What the optimiser updates (tensors that can never receive a gradient, such as unused
  // ctx_att tensors, are left out, as the official SGD skips them), with checkpoint names.
  virtual NamedTensors TrainableParameters() = 0;

  // Learned tensors under the official state-dict keys (token buffers excluded: they are
  // rebuilt from class names). Loading is non-strict for token_* keys only; any other
  // missing or unexpected key, or a shape mismatch, is an error naming it.
  virtual NamedTensors StateDict() = 0;
  virtual Status LoadStateDict(const std::map<std::string, torch::Tensor>& state) = 0;

  // The loss of a shard of a batch, normalised by the global batch size (sum of per-sample
  // losses / global_batch), so that gradients summed over ranks equal the full batch's
  // mean-loss gradient. `input` may have zero rows (a rank with an empty shard).
  virtual torch::Tensor TrainLoss(const torch::Tensor& input, const torch::Tensor& labels, int64_t global_batch) = 0;

  // Evaluation: BeginEvaluation once (text features that do not depend on the image are
  // computed here), Logits [N, C] per batch, EndEvaluation to release them. No autograd.
  virtual void BeginEvaluation() {}
  virtual torch::Tensor Logits(const torch::Tensor& input) = 0;
  virtual void EndEvaluation() {}

  // Called on every rank after the last step of 0-based `epoch` of `epochs`, before that
  // epoch's checkpoint (PromptSRC aggregates its prompts over epochs here).
  virtual void EndTrainingEpoch(int64_t /*epoch*/, int64_t /*epochs*/) {}
  // What a resumed run needs besides the parameters and the optimiser (GPA's running sum);
  // stored in the epoch checkpoints and given back on resume.
  virtual NamedTensors TrainingState() { return {}; }
  virtual Status LoadTrainingState(const std::map<std::string, torch::Tensor>& /*state*/) { return Status::Ok(); }

  // What the job log and the results should record about the model (layout, notes).
  virtual std::vector<std::string> Notes() const { return {}; }

  // Tensors the forward pass updates on each rank (BatchNorm running statistics). The
  // trainer gives every rank rank 0's values at each epoch's end, as nn.DataParallel keeps
  // the first replica's; they are saved with the state dict.
  virtual NamedTensors RankLocalBuffers() { return {}; }
};

// Mean cross-entropy contribution of a shard: sum_i CE(logits_i, y_i) / global_batch.
torch::Tensor ShardCrossEntropy(const torch::Tensor& logits, const torch::Tensor& labels, int64_t global_batch);

// exp(logit_scale) · norm(image) · norm(text)ᵀ for image [N, E], text [C, E] → [N, C];
// text [N, C, E] (one prompt set per image, CoCoOp) → [N, C].
torch::Tensor CosineLogits(const torch::Tensor& image_features, const torch::Tensor& text_features,
                           const torch::Tensor& logit_scale);

// How LoadStateDict reads a checkpoint, for every method: our own checkpoints and the
// official ones (a prompt learner's state dict for CoOp/CoCoOp, a whole model for MaPLe/DePT).
struct StateDictReading {
  std::string model_name;  // "MaPLe", for messages
  std::string must_match;  // what must match the run that wrote the checkpoint, for messages
  // Stripped from the front of checkpoint keys, in this order ("module." from DataParallel).
  std::vector<std::string> strip_prefixes = {"module."};
  // Further keys that are not ours to load (beyond the official ones every method skips).
  std::function<bool(const std::string& key)> also_ignored;
};

// Copies a checkpoint into `targets` strictly. A key (after stripping) is either a target
// with the same shape, or one the official loaders never load: token_* buffers (rebuilt from
// class names), ctx_att tensors this design does not create (never trained), the frozen CLIP
// of a whole-model checkpoint (image_encoder.*, text_encoder.*, logit_scale). Every target
// must be present. All problems are reported at once, naming each key; nothing is copied
// unless everything fits.
Status LoadStrictly(const std::map<std::string, torch::Tensor>& state, const NamedTensors& targets,
                    const StateDictReading& reading);

// A loss of value 0 whose gradient is a defined zero for every tensor: an empty shard must
// still take part in the gradient sum over ranks.
torch::Tensor ZeroLoss(const NamedTensors& tensors);

}  // namespace atp::prompt
