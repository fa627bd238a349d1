// AttributeSearch: ATPrompt's differentiable search for a dataset's attribute words
// (docs/reference.md §5): one CoOp+ATPrompt prompt learner per candidate group of attribute
// bases, mixed by softmax weights α, trained DARTS-style (SGD on the prompts with training
// batches, Adam on α with validation batches); the group with the largest weight wins. Not
// thread-safe: one search per job process (ranks of a job each run their own, exchanging
// gradients through the hooks' sync).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "worker/clip/clip_model.h"
#include "worker/data/dataset.h"
#include "worker/prompt/image_inputs.h"
#include "worker/prompt/method_config.h"
#include "worker/prompt/prompt_layout.h"
#include "worker/prompt/trainer.h"

namespace atp::clip {
class ClipTokenizer;
}

namespace atp::prompt {

// The candidate groups, each with its words in base order (docs/reference.md §5.1):
//  - kPaper: every non-empty subset in itertools.combinations order (all 1-subsets, then the
//    2-subsets, ...), 31 for five bases.
//  - kOfficial: the released trainer's pool: subsets of 3 or more bases, shuffled with
//    CPython's random.shuffle seeded with `seed` (the state of a second run: the official
//    first run also spends Python RNG on the few-shot draw before shuffling).
// max_group_size > 0 drops larger groups in both modes (the docs' speed-up); the official pool
// may then be empty, which RunAttributeSearch reports.
std::vector<std::vector<std::string>> CandidatePool(const std::vector<std::string>& bases, Compat compat,
                                                    int max_group_size, int64_t seed);

// "(shape, size)": how the official code prints a group, used in logs and results.
std::string GroupName(const std::vector<std::string>& group);

// The α-mixture of logits (docs/reference.md §5.2):
// Σ_k weights_k · exp(logit_scale) · cos(image, text_k), for image [N, E], texts [K, C, E]
// (unnormalised) and weights [K] (already softmaxed) → [N, C].
torch::Tensor MixtureLogits(const torch::Tensor& image_features, const torch::Tensor& texts,
                            const torch::Tensor& weights, const torch::Tensor& logit_scale);

struct SearchResult {
  std::vector<std::string> attributes;  // the chosen group (largest softmax weight; first on ties)
  std::vector<std::pair<std::vector<std::string>, double>> weights;  // every group, pool order
  int64_t epochs_run = 0;               // in this attempt
  int64_t resumed_from_epoch = 0;       // epoch the attempt started in (0 = fresh)
  int64_t steps = 0;                    // training steps run in this attempt
  double final_loss = 0;                // mean prompt-step (training) loss of the last epoch
  std::vector<std::string> notes;       // layout warnings and data choices, for the job log
};

// Runs the search on `train` (labels 0..C-1 of `class_names`) with α steps on `val`:
//  - config: bases, max_group_size, design.n_ctx (soft tokens per block), design.compat,
//    epochs, batch_size, lr / warmup / momentum / weight_decay (prompts, SGD), alpha_lr (Adam),
//    seed, max_steps_per_epoch, test_batch_size (the official α batch).
//  - The α batch: compat "official" uses the first test_batch_size (100) validation items in
//    order at every step, as the released code does; "paper" walks through the validation
//    split in order, batch_size items per step, wrapping around, so every validation image
//    takes part (global step g uses items g·batch_size, ... modulo the split's size).
//  - Image features come from `inputs` (training features of each epoch's augmentation,
//    shuffled batches in TrainingOrder(n, seed, epoch); validation features under the test
//    transform). Each rank of hooks.sync takes its slice of every batch.
//  - Seeds torch's global generator with config.seed, then draws α = U[0,1)^K and each group's
//    prompts in pool order (the official draw order, docs/reference.md §3.8).
// A checkpoint (prompts, SGD momentum, α, Adam state) is written at each epoch end and on
// preemption; hooks.resume_checkpoint continues a run exactly. Throws JobFailure (diverged on a
// NaN/Inf loss, with epoch and step; preempted after hooks.stop_requested) as a job would;
// other errors as Status.
Result<SearchResult> RunAttributeSearch(const MethodConfig& config, clip::Clip clip,
                                        std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                                        const std::vector<std::string>& class_names,
                                        const std::vector<data::Datum>& train, const std::vector<data::Datum>& val,
                                        ImageInputs* inputs, const TrainerHooks& hooks);

}  // namespace atp::prompt
