// The prompt-learning methods as job methods: RegisterPromptMethods() makes zsclip, coop,
// cocoop, maple, dept and attribute_search runnable by job executors (and by `atp train`),
// and MakePromptModel builds the model of one method from a resolved MethodConfig.
// Registration is idempotent and thread-safe; models are per job.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace atp {
class JobContext;
struct MethodResult;
}  // namespace atp

namespace atp::clip {
class ClipImpl;
class ClipTokenizer;
}  // namespace atp::clip

namespace atp::prompt {

struct MethodConfig;
class PromptModel;

void RegisterPromptMethods();

// The job entry point shared by every prompt method: resolve the config, load CLIP, data and
// features, train (unless eval_only) and evaluate per the protocol.
MethodResult RunPromptMethod(JobContext& context);

// Builds the model of config.method for `class_names` (the training classes). Draws the
// initial prompt tensors from the current torch generator (seed it first).
Result<std::unique_ptr<PromptModel>> MakePromptModel(const MethodConfig& config,
                                                     std::shared_ptr<clip::ClipImpl> clip,
                                                     std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                                                     const std::vector<std::string>& class_names);

}  // namespace atp::prompt
