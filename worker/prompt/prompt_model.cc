#include "worker/prompt/prompt_model.h"

#include <set>
#include <sstream>

#include "worker/prompt/precision.h"

namespace atp::prompt {
namespace {

// Half-precision tensors (what a bf16 or fp16 forward pass hands over) as fp32; fp32 and
// fp64 stay as they are.
torch::Tensor AtLeastFp32(const torch::Tensor& t) {
  const auto type = t.scalar_type();
  return type == torch::kHalf || type == torch::kBFloat16 ? t.to(torch::kFloat32) : t;
}

}  // namespace

torch::Tensor ShardCrossEntropy(const torch::Tensor& logits, const torch::Tensor& labels, int64_t global_batch) {
  namespace F = torch::nn::functional;
  FullPrecisionScope fp32;  // softmax and loss in fp32 whatever the forward pass ran in
  return F::cross_entropy(AtLeastFp32(logits), labels, F::CrossEntropyFuncOptions().reduction(torch::kSum)) /
         static_cast<double>(global_batch);
}

torch::Tensor CosineLogits(const torch::Tensor& image_features, const torch::Tensor& text_features,
                           const torch::Tensor& logit_scale) {
  // fp32 outside autocast: a bf16 logit has about 0.2 resolution at CLIP's scale of 100,
  // enough to change an argmax or a loss.
  FullPrecisionScope fp32;
  const torch::Tensor image_fp32 = AtLeastFp32(image_features);
  const torch::Tensor text_fp32 = AtLeastFp32(text_features);
  torch::Tensor image = image_fp32 / image_fp32.norm(2, -1, true);
  torch::Tensor text = text_fp32 / text_fp32.norm(2, -1, true);
  torch::Tensor scale = AtLeastFp32(logit_scale).exp();
  if (text.dim() == 2) return scale * image.matmul(text.t());
  // One prompt set per image: logits[i, c] = <image_i, text_{i,c}>.
  return scale * torch::bmm(text, image.unsqueeze(2)).squeeze(2);
}

namespace {

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

std::string Shape(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

// Keys an official checkpoint holds that no official loader loads into a trained prompt.
bool OfficialUnlearnedKey(const std::string& key) {
  for (const char* prefix : {"", "prompt_learner."}) {
    const std::string p = prefix;
    if (StartsWith(key, p + "token_") || StartsWith(key, p + "ctx_att")) return true;
  }
  return StartsWith(key, "image_encoder.") || StartsWith(key, "text_encoder.") || key == "logit_scale";
}

}  // namespace

Status LoadStrictly(const std::map<std::string, torch::Tensor>& state, const NamedTensors& targets,
                    const StateDictReading& reading) {
  std::map<std::string, torch::Tensor> wanted(targets.begin(), targets.end());
  std::map<std::string, torch::Tensor> found;  // keys that fit
  std::set<std::string> present;               // keys the checkpoint has, whatever their shape
  std::vector<std::string> problems;
  for (const auto& [raw, value] : state) {
    std::string key = raw;
    for (const std::string& prefix : reading.strip_prefixes) {
      if (StartsWith(key, prefix)) key = key.substr(prefix.size());
    }
    present.insert(key);
    auto it = wanted.find(key);
    if (it == wanted.end()) {
      // A target is never skipped; a ctx_att tensor that is not one was never trained.
      if (OfficialUnlearnedKey(key) || (reading.also_ignored && reading.also_ignored(key))) continue;
      problems.push_back("unexpected key " + key);
    } else if (!value.sizes().equals(it->second.sizes())) {
      problems.push_back(key + " has shape " + Shape(value) + " in the checkpoint but " + Shape(it->second) +
                         " in the model");
    } else {
      found[key] = value;
    }
  }
  for (const auto& [key, target] : wanted) {
    if (!present.count(key)) problems.push_back("missing key " + key);
  }
  if (!problems.empty()) {
    std::string message = reading.model_name + " checkpoint does not fit this model (" + reading.must_match +
                          " must match the run that wrote it): ";
    for (size_t i = 0; i < problems.size(); ++i) message += (i ? "; " : "") + problems[i];
    return InvalidArgument(message);
  }
  torch::NoGradGuard no_grad;
  for (auto& [key, target] : wanted) target.copy_(found.at(key));
  return Status::Ok();
}

torch::Tensor ZeroLoss(const NamedTensors& tensors) {
  torch::Tensor loss;
  for (const auto& named : tensors) {
    torch::Tensor term = named.second.sum() * 0;
    loss = loss.defined() ? loss + term : term;
  }
  return loss.defined() ? loss : torch::zeros({});
}

}  // namespace atp::prompt
