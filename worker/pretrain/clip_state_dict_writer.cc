#include "worker/pretrain/clip_state_dict_writer.h"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <string_view>

#include "common/atomic_file.h"
#include "worker/clip/clip_model.h"

namespace atp::pretrain {

Status SaveClipStateDict(const clip::ClipImpl& model, const std::string& path) {
  // A typed Dict pickles as a plain Python dict of tensors, which is what torch.save(state_dict)
  // writes and what ReadClipStateDict's pickle_load branch expects.
  c10::Dict<std::string, at::Tensor> dict;
  auto add = [&](const std::string& key, const at::Tensor& t) {
    // Own storage per tensor: views of one buffer would be saved as one shared storage.
    dict.insert(key, t.detach().to(torch::kCPU, torch::kFloat32).contiguous().clone());
  };
  for (const auto& p : model.named_parameters(/*recurse=*/true)) add(p.key(), p.value());
  for (const auto& b : model.named_buffers(/*recurse=*/true)) add(b.key(), b.value());
  std::vector<char> bytes;
  try {
    bytes = torch::pickle_save(c10::IValue(dict));
  } catch (const std::exception& e) {
    return Internal("cannot serialise the CLIP state dict for " + path + ": " + e.what());
  }
  return WriteFileAtomically(path, std::string_view(bytes.data(), bytes.size()));
}

}  // namespace atp::pretrain
