// Precision: the arithmetic a job's forward passes run in (the `precision` parameter) and the
// scopes that apply it. fp32 everywhere; bf16 = autocast to bfloat16 (CPU or CUDA); fp16 =
// the official trainers' half precision (CUDA only). Whatever the setting, the cosine logits,
// the softmax and the loss run in fp32 outside autocast (FullPrecisionScope). The scopes set
// thread-local autocast state: use them on the thread that runs the forward pass.
#pragma once

#include <torch/torch.h>

#include <string>

#include "common/status.h"
#include "worker/prompt/prompt_layout.h"

namespace atp::prompt {

enum class Precision { kFp32, kBf16, kFp16 };

const char* PrecisionName(Precision precision);

// "auto" is fp32 on the CPU; on CUDA fp16 for compat = "official" (the released code's
// arithmetic), else bf16. fp16 on the CPU is an error: half-precision matmuls there are
// neither what the official code ran nor fast.
Result<Precision> ResolvePrecision(const std::string& setting, Compat compat, const torch::Device& device);

// Autocast for the forward passes of one step or one evaluation: bf16 on either device,
// fp16 on CUDA; nothing for fp32.
class PrecisionScope {
 public:
  PrecisionScope(Precision precision, const torch::Device& device);
  ~PrecisionScope();
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  bool cpu_ = false, gpu_ = false;
};

// Turns autocast off (both devices) for its lifetime and restores the previous state, so
// what runs inside is fp32 whatever the enclosing scope.
class FullPrecisionScope {
 public:
  FullPrecisionScope();
  ~FullPrecisionScope();
  FullPrecisionScope(const FullPrecisionScope&) = delete;
  FullPrecisionScope& operator=(const FullPrecisionScope&) = delete;

 private:
  bool cpu_was_, gpu_was_;
};

}  // namespace atp::prompt
