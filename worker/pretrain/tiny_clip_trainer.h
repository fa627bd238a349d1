// TinyClipTrainer: the demo's tiny CLIP, pretrained from scratch on Fashion-MNIST. It learns a
// BPE vocabulary from the class captions (captions.h), builds a small ViT CLIP initialised as
// OpenAI's CLIP.initialize_parameters does, trains it contrastively on the train split (AdamW,
// warmup then cosine learning rate, one random caption of its class per image per step,
// MultiPositiveClipLoss), evaluates zero-shot on the test split and saves checkpoint,
// vocabulary and report. A run is a function of its TinyClipOptions (and the thread count,
// through float reduction order). Owns its model and decoded images; not thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "common/status.h"
#include "worker/clip/clip_model.h"
#include "worker/clip/tokenizer.h"
#include "worker/pretrain/bpe_trainer.h"
#include "worker/pretrain/captions.h"
#include "worker/pretrain/tiny_clip_report.h"

namespace atp::pretrain {

// What the trainer reports after each epoch.
struct EpochProgress {
  int epoch = 0;  // 1-based
  int epochs = 0;
  double mean_loss = 0.0;
  double images_per_second = 0.0;  // this epoch
  double elapsed_seconds = 0.0;    // training so far
  double eta_seconds = 0.0;        // remaining epochs at this epoch's speed
};
using ProgressFn = std::function<void(const EpochProgress&)>;
// After every training step: steps done and steps in all, and the step's loss.
using StepFn = std::function<void(int64_t step, int64_t total_steps, double loss)>;

// The model of these options: ViT image tower and text tower, heads = width / 64.
clip::ClipOptions TinyClipModelOptions(const TinyClipOptions& options, int vocab_size);

// Re-draws every parameter from `generator` as OpenAI's CLIP does: the image tower as its
// VisionTransformer constructor and PyTorch's layer defaults leave it, the text tower as
// initialize_parameters (token embedding std 0.02, positional 0.01, attention std width^-0.5,
// projections width^-0.5 (2 layers)^-0.5, MLP fc (2 width)^-0.5), logit_scale ln(1/0.07).
void InitializeClipParameters(clip::ClipImpl& model, at::Generator& generator);

class TinyClipTrainer {
 public:
  // Validates the options, learns the vocabulary, reads the fashion_mnist split under
  // options.data_root and decodes its images at the model's resolution, builds the model.
  static Result<std::unique_ptr<TinyClipTrainer>> Create(const TinyClipOptions& options);

  // Runs every epoch; `progress` is called after each, `on_step` after every step.
  Status Train(const ProgressFn& progress = {}, const StepFn& on_step = {});

  // Zero-shot accuracy on the test split with "a photo of a {}.", in the pretraining view and
  // on the dataset's own images: fills the report's figures.
  Status Evaluate();

  // Writes checkpoint, vocabulary and report (TinyClipPathsIn(out_dir)), creating the folder.
  // The report's total time runs from Create to here.
  Status Save(const std::string& out_dir);

  // Normalised pixels [N, 3, R, R] of the first `count` test images (in split order), in the
  // pretraining view.
  torch::Tensor TestPixels(int64_t count) const;
  // Token ids [classes, context] of the zero-shot prompts.
  torch::Tensor ZeroShotTokenIds() const;

  clip::Clip model() const { return model_; }
  const clip::ClipTokenizer& tokenizer() const { return *tokenizer_; }
  const std::vector<BpeMerge>& merges() const { return merges_; }
  const TinyClipReport& report() const { return report_; }

  TinyClipTrainer(const TinyClipTrainer&) = delete;
  TinyClipTrainer& operator=(const TinyClipTrainer&) = delete;

 private:
  TinyClipTrainer() = default;
  torch::Tensor Normalize(const torch::Tensor& pixels_u8) const;
  // The pixels as the pretraining view shows them (TinyClipOptions::view); plain: unchanged.
  torch::Tensor InView(const torch::Tensor& pixels_u8) const;
  torch::Tensor Augment(const torch::Tensor& pixels_u8, std::mt19937_64* rng) const;

  std::chrono::steady_clock::time_point created_;
  TinyClipOptions options_;
  TinyClipReport report_;
  std::vector<BpeMerge> merges_;
  std::shared_ptr<const clip::ClipTokenizer> tokenizer_;
  std::vector<std::string> class_names_;
  // Every caption tokenised (rows grouped by class, caption_offset_[c] the first of class c),
  // cut to the longest caption: the text tower only runs up to the last end token anyway.
  torch::Tensor caption_ids_;
  std::vector<int64_t> caption_offset_;
  std::vector<int64_t> caption_count_;
  // Decoded images, uint8 [N, 3, R, R] after CLIP's test resize and centre crop, with labels.
  torch::Tensor train_pixels_, test_pixels_;
  std::vector<int64_t> train_labels_, test_labels_;
  clip::Clip model_{nullptr};
};

// Create, Train, Evaluate, Save: the whole of `atp pretrain`. The report's total time covers
// all of it.
Result<TinyClipReport> PretrainTinyClip(const TinyClipOptions& options, const std::string& out_dir,
                                        const ProgressFn& progress = {}, const StepFn& on_step = {});

}  // namespace atp::pretrain
