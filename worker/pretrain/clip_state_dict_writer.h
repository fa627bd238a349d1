// Saving a Clip's weights as a state dict that both atp (clip::LoadClip) and Python
// (torch.load) read: a torch.save-compatible zip archive holding a dict from OpenAI's key names
// ("visual.conv1.weight", ..., "logit_scale") to float32 CPU tensors. Reads the model only;
// do not train it at the same time.
#pragma once

#include <string>

#include "common/status.h"

namespace atp::clip {
class ClipImpl;
}

namespace atp::pretrain {

// Writes every parameter and buffer of `model` to `path`, through a temporary file and a
// rename, so a reader never sees half a checkpoint.
Status SaveClipStateDict(const clip::ClipImpl& model, const std::string& path);

}  // namespace atp::pretrain
