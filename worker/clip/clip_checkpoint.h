// Reading CLIP checkpoints into a Clip model. Accepts OpenAI's published .pt files
// (TorchScript archives: their named parameters and buffers are the state dict; the archive's
// own code is never run) and plain state-dict archives written by torch.save (PyTorch >= 1.6
// zip format; a dict of tensors, optionally under a "state_dict" key). Tensors are upcast to
// float32 (the released weights are fp16). The legacy pre-1.6 torch.save format cannot be read
// by libtorch and is rejected with a hint. Every error names the file and the offending keys
// and shapes. Thread-compatible: no shared state.
#pragma once

#include <map>
#include <string>

#include "common/status.h"
#include "worker/clip/clip_model.h"

namespace atp::clip {

using StateDict = std::map<std::string, torch::Tensor>;

// The tensors of a checkpoint file, in float32, without the three scalar entries
// input_resolution, context_length and vocab_size.
Result<StateDict> ReadClipStateDict(const std::string& path);

// Checks names and shapes against the inferred architecture (missing, unexpected and
// misshaped tensors are all reported) and builds the model.
Result<Clip> ClipFromStateDict(const StateDict& state, const std::string& source);

// ReadClipStateDict + ClipFromStateDict. The model is in eval mode with every parameter
// frozen (requires_grad false); methods unfreeze what they train.
Result<Clip> LoadClip(const std::string& path);

}  // namespace atp::clip
