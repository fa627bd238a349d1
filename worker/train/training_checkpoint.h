// TrainingCheckpoint: everything a method needs to resume training exactly where an epoch
// ended, saved in the layout of Dassl's model.pth.tar-N (Python's torch.load reads it), and
// ImportPromptStateDict, which reads the prompt weights out of the checkpoints the official
// ATPrompt/CoOp repositories publish. Plain values and free functions; thread-compatible.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/train/lr_schedule.h"

namespace atp::train {

using TensorMap = std::map<std::string, at::Tensor>;

// torch.optim.SGD's settings; the defaults are Dassl's (docs/reference.md §4.2).
struct SgdSettings {
  double momentum = 0.9;
  double dampening = 0.0;
  double weight_decay = 5e-4;
  bool nesterov = false;
};

struct TrainingCheckpoint {
  // The method's tensors under the official checkpoint names (docs/reference.md §4.6); includes
  // every parameter named in param_order.
  TensorMap state_dict;
  // Completed epochs, which is also the 0-based index of the next epoch to run (Dassl's
  // "epoch": 1-based number of the last finished epoch).
  int64_t epoch = 0;
  // The optimised parameters in optimiser order: Dassl's optimizer state refers to them by
  // position (param_groups[0]["params"] = [0, ..., n-1]).
  std::vector<std::string> param_order;
  // SGD momentum buffers by parameter name; a parameter not stepped yet has none.
  TensorMap momentum;
  SgdSettings sgd;
  CosineWarmupSchedule schedule;
  // Whatever else the method needs to continue identically (generator states as returned by
  // at::Generator::get_state(), a sampler's stream position), by name.
  TensorMap rng_state;
  // Method, params and atp version as JSON text; stored verbatim, not interpreted.
  std::string meta_json = "{}";

  // The lr of the next epoch: what Dassl's optimizer holds after the scheduler's step.
  double lr() const { return schedule.LrAt(epoch); }
};

// Writes `path` atomically (a temporary file in the same folder, fsync, rename), creating the
// folder if needed; a reader never sees a partial checkpoint. The file is a torch.save zip
// archive of the Dassl dict
//   {"state_dict": {name: tensor}, "epoch": int,
//    "optimizer": {"state": {i: {"momentum_buffer": tensor}},
//                  "param_groups": [{"lr", "momentum", "dampening", "weight_decay", "nesterov",
//                                    "maximize", "foreach", "differentiable", "initial_lr",
//                                    "params": [0..n-1]}]},
//    "scheduler": Dassl's ConstantWarmupScheduler.state_dict() after `epoch` steps, its
//                 "successor" (the CosineAnnealingLR) as that scheduler's state dict,
//    "val_result": None,
//    "atp": {"format", "param_order", "max_epoch", "base_lr", "warmup_epochs", "warmup_lr",
//            "meta_json", "rng_state": {name: tensor}}}
// with every tensor moved to the CPU. Errors: InvalidArgument for an inconsistent checkpoint
// (a param_order name without a tensor, a momentum buffer of the wrong shape...), IoError.
Status SaveTrainingCheckpoint(const std::string& path, const TrainingCheckpoint& checkpoint);

// Reads a checkpoint written by SaveTrainingCheckpoint; tensors come back bit for bit, on
// the CPU. Errors name the file and the missing or malformed key.
Result<TrainingCheckpoint> LoadTrainingCheckpoint(const std::string& path);

// The prompt weights of a checkpoint: an official `model.pth.tar-N` (torch.save zip of
// {state_dict, epoch, optimizer, scheduler, val_result}), one of ours, or a bare state dict.
// `path` may also be the model folder, whose `checkpoint` text file names the latest file.
// As the official loader does (docs/reference.md §4.6): "module." prefixes are stripped and the
// buffers token_prefix, token_suffix and token_middle1..3 (with or without a "prompt_learner."
// prefix) are dropped, to be rebuilt from the evaluation dataset's class names. Floating
// tensors are returned as float32 (the released ones are fp16), contiguous, on the CPU.
Result<TensorMap> ImportPromptStateDict(const std::string& path);

// The token buffers ImportPromptStateDict drops: the frozen token embeddings of the prompts the
// official trainer built for the classes it was trained on (token_prefix, token_middle1..3,
// token_suffix; keys without "module." / "prompt_learner." prefixes), in their stored dtype.
// `file` is the checkpoint file read (resolved from a model folder); `buffers` is empty when
// the checkpoint saves none (atp's own checkpoints). Errors as ImportPromptStateDict.
struct PromptTokenBuffers {
  std::string file;
  TensorMap buffers;
};
Result<PromptTokenBuffers> ReadPromptTokenBuffers(const std::string& path);

}  // namespace atp::train
