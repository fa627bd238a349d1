// Which class-name form — '_' kept or replaced by a space — built the prompts a published
// checkpoint was trained with, read from the token buffers the official trainers save
// (docs/methods.md, "Published checkpoints"). Free functions over plain values; thread-compatible.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "common/status.h"
#include "worker/prompt/prompt_layout.h"
#include "worker/train/training_checkpoint.h"

namespace atp::clip {
class ClipTokenizer;
}

namespace atp::prompt {

struct ClassNameForm {
  bool keep_underscores = false;  // what the evaluation uses
  // "checkpoint" (the buffers match this form only), "job" (the job's value: both forms match,
  // the checkpoint saves no buffers, or checkpoint_class_names = "unchecked").
  std::string decided_by;
  std::string note;  // one line for the log and the job's outputs
};

// Compares the checkpoint's token buffers with the token embeddings of the prompts the official
// trainer builds for `class_names` (the classes the checkpoint was trained on, in label order)
// under `design`, once with '_' kept and once replaced; `token_embedding` is the CLIP's [V, D]
// table (any device or dtype; values are compared after rounding to the buffers' dtype).
// `mode` is checkpoint_class_names: "detect" takes the matching form; "job" requires the
// buffers to match design.keep_underscores; "unchecked" takes design.keep_underscores without
// comparing. InvalidArgument, naming the checkpoint file, the buffer and the first class whose
// rows differ, when no form matches ("detect", "job") or the matching one is not the job's ("job").
Result<ClassNameForm> DecideClassNameForm(const train::PromptTokenBuffers& checkpoint, const PromptDesign& design,
                                          const std::vector<std::string>& class_names,
                                          const clip::ClipTokenizer& tokenizer, const at::Tensor& token_embedding,
                                          const std::string& mode);

}  // namespace atp::prompt
