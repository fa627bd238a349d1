#include "worker/prompt/promptsrc_model.h"

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "worker/clip/tokenizer.h"
#include "worker/data/dataset.h"
#include "worker/prompt/method_config.h"
#include "worker/prompt/precision.h"

namespace atp::prompt {

const std::vector<std::string>& PromptSrcTemplates() {
  // OpenAI's ImageNet prompt-engineering list as PromptSRC ships it
  // (muzairkhattak/PromptSRC trainers/imagenet_templates.py, IMAGENET_TEMPLATES), in its order.
  static const std::vector<std::string> kTemplates = {
      "a photo of a {}.", "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
      "a photo of the hard to see {}.", "a low resolution photo of the {}.", "a rendering of a {}.",
      "graffiti of a {}.", "a bad photo of the {}.", "a cropped photo of the {}.", "a tattoo of a {}.",
      "the embroidered {}.", "a photo of a hard to see {}.", "a bright photo of a {}.", "a photo of a clean {}.",
      "a photo of a dirty {}.", "a dark photo of the {}.", "a drawing of a {}.", "a photo of my {}.",
      "the plastic {}.", "a photo of the cool {}.", "a close-up photo of a {}.", "a black and white photo of the {}.",
      "a painting of the {}.", "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.",
      "a bright photo of the {}.", "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.",
      "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.", "a photo of the {}.",
      "a good photo of the {}.", "a rendering of the {}.", "a {} in a video game.", "a photo of one {}.",
      "a doodle of a {}.", "a close-up photo of the {}.", "the origami {}.", "the {} in a video game.",
      "a sketch of a {}.", "a doodle of the {}.", "a origami {}.", "a low resolution photo of a {}.",
      "the toy {}.", "a rendition of the {}.", "a photo of the clean {}.", "a photo of a large {}.",
      "a rendition of a {}.", "a photo of a nice {}.", "a photo of a weird {}.", "a blurry photo of a {}.",
      "a cartoon {}.", "art of a {}.", "a sketch of the {}.", "a embroidered {}.", "a pixelated photo of a {}.",
      "itap of the {}.",
  };
  return kTemplates;
}

std::vector<double> GaussianPromptAggregationWeights(int64_t epochs, double mean, double std) {
  if (epochs < 1) throw std::invalid_argument("GPA needs at least one epoch");
  if (!(std > 0)) throw std::invalid_argument("GPA standard deviation must be > 0");
  // The constant factor 1/(σ√(2π)) cancels in the normalisation; kept for the same rounding.
  std::vector<double> weights;
  double sum = 0;
  for (int64_t e = 1; e <= epochs; ++e) {
    const double z = (static_cast<double>(e) - mean) / std;
    weights.push_back((1 / (std * std::sqrt(2 * M_PI))) * std::exp(-0.5 * z * z));
    sum += weights.back();
  }
  if (!(sum > 0)) {
    throw std::invalid_argument("GPA weights underflow: N(e; " + std::to_string(mean) + ", " + std::to_string(std) +
                                ") is 0 at every epoch 1.." + std::to_string(epochs));
  }
  for (double& w : weights) w /= sum;
  return weights;
}

PromptSrcModel::PromptSrcModel(std::unique_ptr<IvlpModel> ivlp, PromptSrcSettings settings,
                               std::shared_ptr<const clip::ClipTokenizer> tokenizer)
    : ivlp_(std::move(ivlp)), settings_(std::move(settings)), tokenizer_(std::move(tokenizer)) {}

torch::Tensor PromptSrcModel::frozen_text_features() {
  if (!frozen_text_features_.defined()) ComputeFrozenTextFeatures(ivlp_->learner()->layout().class_names);
  return frozen_text_features_;
}

void PromptSrcModel::ComputeFrozenTextFeatures(const std::vector<std::string>& class_names) {
  clip::Clip clip = ivlp_->clip();
  const int64_t length = clip->options.text.context_length();
  const int64_t classes = static_cast<int64_t>(class_names.size());
  const auto& templates = PromptSrcTemplates();
  torch::NoGradGuard no_grad;
  FullPrecisionScope fp32;
  // One template at a time (C prompts), summed: ImageNet's 1000 classes × 60 templates in one
  // forward would hold gigabytes of activations.
  torch::Tensor sum;
  for (const auto& template_text : templates) {
    std::vector<int64_t> ids;
    for (const std::string& name : class_names) {
      // FillTemplate replaces '_' by spaces, as the released learner does first.
      auto tokens = tokenizer_->Tokenize(data::FillTemplate(template_text, name), clip::OverlongPolicy::kTruncate,
                                         static_cast<int>(length));
      if (!tokens.ok()) throw std::invalid_argument(tokens.status().message());
      ids.insert(ids.end(), tokens->begin(), tokens->end());
    }
    torch::Tensor batch = torch::tensor(ids, torch::kLong).view({classes, length});
    torch::Tensor features = clip->EncodeText(batch.to(clip->token_embedding->weight.device())).to(torch::kFloat);
    sum = sum.defined() ? sum + features : features;
  }
  // The mean over templates of the unnormalised features, as the released learner takes it.
  frozen_text_features_ = sum / static_cast<double>(templates.size());
}

void PromptSrcModel::SetClasses(const std::vector<std::string>& class_names, bool training_classes) {
  ivlp_->SetClasses(class_names, training_classes);
  // Only training needs them; they are computed when the loss first asks.
  frozen_text_features_ = torch::Tensor();
}
Status PromptSrcModel::LoadStateDict(const std::map<std::string, torch::Tensor>& state) {
  // The GPA sum is not touched: on resume LoadTrainingState brings it back.
  return ivlp_->LoadStateDict(state);
}

PromptSrcLossTerms PromptSrcModel::LossTerms(const torch::Tensor& pixels, const torch::Tensor& labels,
                                             int64_t global_batch) {
  TORCH_CHECK(global_batch > 0, "PromptSRC: global batch must be positive, got ", global_batch);
  clip::Clip clip = ivlp_->clip();
  torch::Tensor text = ivlp_->TextFeatures();
  torch::Tensor image = ivlp_->ImageFeatures(pixels);
  torch::Tensor frozen_image = frozen_image_features_;
  if (!frozen_image.defined() || frozen_image.size(0) != pixels.size(0)) {
    torch::NoGradGuard no_grad;
    frozen_image = clip->visual->forward(pixels.to(clip->visual->conv1->weight.dtype()));
  }
  frozen_image_features_ = torch::Tensor();  // one shard's worth

  FullPrecisionScope fp32;
  auto normalise = [](const torch::Tensor& t) {
    torch::Tensor f = t.to(torch::kFloat);
    return f / f.norm(2, -1, true);
  };
  const double g = static_cast<double>(global_batch);
  const double n = static_cast<double>(pixels.size(0));
  torch::Tensor text_n = normalise(text), image_n = normalise(image);
  torch::Tensor frozen_text_n = normalise(frozen_text_features().to(text.device()));
  torch::Tensor frozen_image_n = normalise(frozen_image.detach().to(image.device()));
  torch::Tensor scale = clip->logit_scale.to(torch::kFloat).exp();
  torch::Tensor logits = scale * image_n.matmul(text_n.t());
  torch::Tensor zero_shot_logits = (scale * frozen_image_n.matmul(frozen_text_n.t())).detach();

  PromptSrcLossTerms terms;
  terms.cross_entropy = ShardCrossEntropy(logits, labels, global_batch);
  // The text term does not depend on the batch: each rank contributes its share n/G of it.
  terms.scl_text = (text_n - frozen_text_n).abs().mean() * (settings_.text_loss_weight * n / g);
  terms.scl_image = (image_n - frozen_image_n).abs().sum() * (settings_.image_loss_weight / (g * image_n.size(1)));
  // KL(zero-shot ‖ prompted) summed, divided by the batch's logits count (N·C).
  torch::Tensor log_p = torch::log_softmax(logits, 1), log_q = torch::log_softmax(zero_shot_logits, 1);
  terms.scl_logits = (log_q.exp() * (log_q - log_p)).sum() / (g * static_cast<double>(logits.size(1)));
  return terms;
}

torch::Tensor PromptSrcModel::TrainLoss(const torch::Tensor& pixels, const torch::Tensor& labels,
                                        int64_t global_batch) {
  TORCH_CHECK(global_batch > 0, "PromptSRC: global batch must be positive, got ", global_batch);
  if (pixels.size(0) == 0) {
    frozen_image_features_ = torch::Tensor();
    return ZeroLoss(TrainableParameters());
  }
  return LossTerms(pixels, labels, global_batch).Total();
}

void PromptSrcModel::EndTrainingEpoch(int64_t epoch, int64_t epochs) {
  const std::vector<double> weights = GaussianPromptAggregationWeights(epochs, settings_.gpa_mean, settings_.gpa_std);
  const double weight = weights.at(static_cast<size_t>(epoch));
  torch::NoGradGuard no_grad;
  for (auto& [key, tensor] : StateDict()) {
    torch::Tensor weighted = tensor.detach().to(torch::kFloat) * weight;
    auto it = gpa_sum_.find(key);
    if (it == gpa_sum_.end()) {
      gpa_sum_[key] = weighted;
    } else {
      it->second = it->second + weighted;
    }
  }
  if (epoch + 1 == epochs) {
    // The released trainer then loads the aggregate for final inference and saves it.
    for (auto& [key, tensor] : StateDict()) tensor.copy_(gpa_sum_.at(key));
  }
}

NamedTensors PromptSrcModel::TrainingState() {
  NamedTensors out;
  for (const auto& [key, sum] : gpa_sum_) out.emplace_back("gpa." + key, sum);
  return out;
}

Status PromptSrcModel::LoadTrainingState(const std::map<std::string, torch::Tensor>& state) {
  gpa_sum_.clear();
  std::map<std::string, torch::Tensor> ours;
  for (auto& [key, tensor] : StateDict()) ours[key] = tensor;
  for (const auto& [name, sum] : state) {
    if (name.rfind("gpa.", 0) != 0) return InvalidArgument("PromptSRC training state: unexpected entry " + name);
    const std::string key = name.substr(4);
    auto it = ours.find(key);
    if (it == ours.end() || !it->second.sizes().equals(sum.sizes())) {
      return InvalidArgument("PromptSRC training state: GPA sum " + key + " does not fit this model");
    }
    gpa_sum_[key] = sum.to(it->second.device(), torch::kFloat).clone();
  }
  if (!gpa_sum_.empty() && gpa_sum_.size() != ours.size()) {
    return InvalidArgument("PromptSRC training state: the GPA sum covers " + std::to_string(gpa_sum_.size()) + " of " +
                           std::to_string(ours.size()) + " tensors");
  }
  return Status::Ok();
}

std::vector<std::string> PromptSrcModel::Notes() const {
  std::vector<std::string> notes = ivlp_->Notes();
  std::ostringstream head;
  head << "PromptSRC: text loss weight " << settings_.text_loss_weight << ", image loss weight "
       << settings_.image_loss_weight << ", GPA mean " << settings_.gpa_mean << " std " << settings_.gpa_std
       << ", frozen text features from " << PromptSrcTemplates().size() << " templates";
  notes.insert(notes.begin(), head.str());
  return notes;
}

PromptSrcSettings PromptSrcSettingsFor(const MethodConfig& config) {
  PromptSrcSettings s;
  s.ivlp.design = config.design;
  s.ivlp.official_attribute_tensors = config.atprompt && config.design.compat == Compat::kOfficial;
  s.ivlp.vision_ctx = config.vision_n_ctx;
  s.ivlp.text_depth = config.text_depth;
  s.ivlp.vision_depth = config.vision_depth;
  s.text_loss_weight = config.text_loss_weight;
  s.image_loss_weight = config.image_loss_weight;
  s.gpa_mean = config.gpa_mean;
  s.gpa_std = config.gpa_std;
  return s;
}

Result<std::unique_ptr<PromptModel>> MakePromptSrcModel(const MethodConfig& config, clip::Clip clip,
                                                        std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                                                        const std::vector<std::string>& class_names) {
  PromptSrcSettings settings = PromptSrcSettingsFor(config);
  if (!(settings.gpa_std > 0)) return InvalidArgument("PromptSRC: gpa_std must be > 0");
  try {
    (void)GaussianPromptAggregationWeights(std::max(1, config.epochs), settings.gpa_mean, settings.gpa_std);
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("PromptSRC: ") + e.what() + "; set gpa_mean/gpa_std accordingly");
  }
  ATP_ASSIGN_OR_RETURN(std::unique_ptr<IvlpModel> ivlp, MakeIvlpModel(settings.ivlp, clip, tokenizer, class_names));
  try {
    return std::unique_ptr<PromptModel>(std::make_unique<PromptSrcModel>(std::move(ivlp), settings, tokenizer));
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("PromptSRC: ") + e.what());
  }
}

}  // namespace atp::prompt
