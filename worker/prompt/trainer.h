// Trainer: the official training loop for one prompt model (docs/reference.md §4.1-4.2): SGD with
// momentum and weight decay over the model's trainable tensors, the constant warm-up + cosine
// schedule stepped per epoch, an epoch's shuffled order from the counter-based stream keyed by
// (seed, epoch), a checkpoint at each epoch end, exact resume, gradients summed over the
// job's ranks (each rank takes its 1/k slice of every batch), a NaN/Inf loss stopping the job
// with its epoch and step. Also the evaluator: top-1 accuracy, split over ranks. Not
// thread-safe; one per job.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "worker/data/dataset.h"
#include "worker/prompt/image_inputs.h"
#include "worker/prompt/precision.h"
#include "worker/prompt/prompt_model.h"

namespace atp::train {
class GradientSync;
}

namespace atp::prompt {

struct TrainerOptions {
  int epochs = 1;
  int batch_size = 32;
  double lr = 0.002;
  int warmup_epochs = 1;
  double warmup_lr = 1e-5;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  uint64_t seed = 1;
  int max_steps_per_epoch = 0;  // 0 = every batch
  int test_batch_size = 100;
  // Where the model lives, and the arithmetic of its forward passes (precision.h): the
  // parameters and the optimiser stay fp32; logits and loss are fp32 in every mode.
  torch::Device device = torch::kCPU;
  Precision precision = Precision::kFp32;
  // Pixel models (MaPLe): the data loader's settings.
  std::string data_root;
  int resolution = 224;
  bool augment = true;  // pixel models: false feeds training images through the test transform
  int threads = 0;
};

struct MethodConfig;

// The options a resolved method config sets (its schedule, optimiser, seed and data
// settings), with where the model runs and the loader's `threads`.
TrainerOptions TrainerOptionsFor(const MethodConfig& config, int resolution, int threads, torch::Device device,
                                 Precision precision);

struct TrainProgress {
  int64_t epoch = 0, epochs = 0;   // epoch is 0-based
  int64_t step = 0, steps = 0;     // within the epoch
  int64_t global_step = 0, total_steps = 0;
  double loss = 0;                 // mean over the batch (all ranks)
  double accuracy = -1;            // training accuracy of the batch in percent; -1: not measured
  double lr = 0;
};

struct TrainerHooks {
  std::function<void(const TrainProgress&)> on_step;  // after every step
  // Evaluation progress (images done on this rank, of its share), so long evaluations keep
  // the hang watchdog fed.
  std::function<void(int64_t done, int64_t total)> on_eval_progress;
  std::function<bool()> stop_requested;               // preemption: checkpoint and stop
  // Called after the leader wrote an epoch's checkpoint (path).
  std::function<void(const std::string&)> on_checkpoint;
  std::string workdir;            // where checkpoints go
  std::string resume_checkpoint;  // "" = fresh start
  bool is_leader = true;
  train::GradientSync* sync = nullptr;  // null: one rank
  Json checkpoint_meta = Json::object();  // stored in checkpoints (method, params)
  // Model selection (PromptKD's best_val rule): called on every rank after each epoch's
  // training, before that epoch's checkpoint is written (evaluations are collective).
  // `epochs_done` is 1-based. What it returns is stored in the checkpoint's meta under
  // "selection" and given to `resume_selection` when a run resumes from that checkpoint.
  std::function<Result<Json>(int64_t epochs_done)> after_epoch;
  std::function<Status(const Json& selection)> resume_selection;
};

struct TrainSummary {
  int64_t epochs_run = 0;       // in this attempt
  int64_t resumed_from_epoch = 0;
  int64_t steps = 0;
  double first_loss = 0;        // mean loss of the first epoch run in this attempt
  double final_loss = 0;        // mean loss of the last epoch
  double seconds = 0;
  std::string checkpoint;       // the last checkpoint written
};

class Trainer {
 public:
  Trainer(PromptModel* model, ImageInputs* inputs, TrainerOptions options, TrainerHooks hooks);

  // Trains on `items` (labels 0..C-1 of the model's current classes). Throws JobFailure
  // (diverged / preempted) as a job would; other errors as Status.
  Result<TrainSummary> Train(const std::vector<data::Datum>& items);

  // Top-1 accuracy in percent of the model on `items` for its current classes.
  Result<double> Evaluate(const std::vector<data::Datum>& items);

 private:
  Result<torch::Tensor> TrainInputs(const std::vector<data::Datum>& items, int64_t epoch,
                                    const std::vector<int64_t>& positions);
  // Every rank takes rank 0's RankLocalBuffers (after each epoch).
  Status SyncRankLocalBuffers();

  PromptModel* model_;
  ImageInputs* inputs_;
  TrainerOptions options_;
  TrainerHooks hooks_;
};

// The shuffled order of an epoch's items: the same permutation the data loader uses.
std::vector<int64_t> TrainingOrder(int64_t num_items, uint64_t seed, int64_t epoch);

}  // namespace atp::prompt
