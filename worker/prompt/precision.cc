#include "worker/prompt/precision.h"

#include <ATen/autocast_mode.h>

namespace atp::prompt {

const char* PrecisionName(Precision precision) {
  switch (precision) {
    case Precision::kFp32: return "fp32";
    case Precision::kBf16: return "bf16";
    case Precision::kFp16: return "fp16";
  }
  return "?";
}

Result<Precision> ResolvePrecision(const std::string& setting, Compat compat, const torch::Device& device) {
  if (setting == "auto") {
    if (!device.is_cuda()) return Precision::kFp32;
    return compat == Compat::kOfficial ? Precision::kFp16 : Precision::kBf16;
  }
  if (setting == "fp32") return Precision::kFp32;
  if (setting == "bf16") return Precision::kBf16;
  if (setting == "fp16") {
    if (!device.is_cuda()) {
      return InvalidArgument("precision = \"fp16\" needs a CUDA device (the official half-precision computation); "
                             "use \"fp32\" or \"bf16\" on the CPU");
    }
    return Precision::kFp16;
  }
  return InvalidArgument("precision is \"" + setting + "\"; valid values: auto, fp32, bf16, fp16");
}

PrecisionScope::PrecisionScope(Precision precision, const torch::Device& device) {
  if (precision == Precision::kFp32) return;
  if (device.is_cuda()) {
    gpu_ = true;
    at::autocast::set_autocast_gpu_dtype(precision == Precision::kFp16 ? at::kHalf : at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    cpu_ = true;  // ResolvePrecision admits only bf16 here
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
}

PrecisionScope::~PrecisionScope() {
  if (!cpu_ && !gpu_) return;
  at::autocast::clear_cache();
  if (gpu_) at::autocast::set_enabled(false);
  if (cpu_) at::autocast::set_cpu_enabled(false);
}

FullPrecisionScope::FullPrecisionScope()
    : cpu_was_(at::autocast::is_cpu_enabled()), gpu_was_(at::autocast::is_enabled()) {
  at::autocast::set_cpu_enabled(false);
  at::autocast::set_enabled(false);
}

FullPrecisionScope::~FullPrecisionScope() {
  at::autocast::set_cpu_enabled(cpu_was_);
  at::autocast::set_enabled(gpu_was_);
}

}  // namespace atp::prompt
