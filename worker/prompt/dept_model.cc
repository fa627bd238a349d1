#include "worker/prompt/dept_model.h"

#include <algorithm>
#include <cctype>
#include <sstream>
#include <utility>

#include "worker/prompt/coop_model.h"
#include "worker/prompt/method_config.h"

namespace atp::prompt {
namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The official condition (dept.py): SUBSAMPLE_CLASSES "base", or "all" on an ImageNet dataset.
bool TrainsLinearProbe(const MethodConfig& config) {
  if (config.protocol == "base2novel") return true;
  const std::string trained_on = config.source_dataset.empty() ? config.dataset : config.source_dataset;
  return Lower(trained_on).find("imagenet") != std::string::npos;
}

}  // namespace

FilmImpl::FilmImpl(const FilmOptions& o) : options(o) {
  scale = register_parameter("scale", torch::ones({o.dim()}));
  bias = register_parameter("bias", torch::zeros({o.dim()}));
}

torch::Tensor FilmImpl::forward(const torch::Tensor& x) {
  return scale.to(x.dtype()).unsqueeze(0) * x + bias.to(x.dtype()).unsqueeze(0);
}

DeptHeadsImpl::DeptHeadsImpl(const DeptHeadsOptions& o) : options(o) {
  film_lp_img = register_module("film_lp_img", Film(FilmOptions(o.embed_dim())));
  film_lp_text = register_module("film_lp_text", Film(FilmOptions(o.embed_dim())));
  if (o.num_classes() > 0) {
    linear_probe_proj =
        register_module("linear_probe_proj", torch::nn::Linear(torch::nn::LinearOptions(o.embed_dim(), o.num_classes())));
  }
}

DeptModel::DeptModel(PromptLearner learner, DeptHeads heads, clip::Clip clip, double weight,
                     std::vector<std::string> training_class_names)
    : learner_(std::move(learner)),
      heads_(std::move(heads)),
      clip_(std::move(clip)),
      weight_(weight),
      training_class_names_(std::move(training_class_names)) {
  if (heads_->has_linear_probe()) fused_rows_ = torch::arange(heads_->options.num_classes(), torch::kLong);
}

void DeptModel::SetClasses(const std::vector<std::string>& class_names, bool training_classes) {
  learner_->SetClasses(class_names);
  eval_text_features_ = torch::Tensor();
  fused_rows_ = torch::Tensor();
  notes_.clear();
  if (!training_classes || !heads_->has_linear_probe()) return;
  // Greedy in-order match: exact for the training classes themselves and for any subset that
  // keeps their order (the official A/R head slice keeps ImageNet's order). A name that occurs
  // twice among the training classes binds to its first unused occurrence.
  std::vector<int64_t> rows;
  size_t next = 0;
  for (const auto& name : class_names) {
    while (next < training_class_names_.size() && training_class_names_[next] != name) ++next;
    if (next == training_class_names_.size()) {
      notes_.push_back("DePT: class '" + name +
                       "' is not among the training classes (in order); evaluating with the prompt's similarity "
                       "logits only, without the linear head");
      return;
    }
    rows.push_back(static_cast<int64_t>(next++));
  }
  fused_rows_ = torch::tensor(rows, torch::kLong);
  if (rows.size() != training_class_names_.size()) {
    notes_.push_back("DePT: linear head restricted to " + std::to_string(rows.size()) + " of its " +
                     std::to_string(training_class_names_.size()) + " rows by class name");
  }
}

NamedTensors DeptModel::TrainableParameters() {
  NamedTensors out = PrefixedLearnerParameters(learner_, /*used_only=*/true);
  for (const auto& p : heads_->named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value());
  return out;
}

NamedTensors DeptModel::StateDict() {
  NamedTensors out = PrefixedLearnerParameters(learner_, /*used_only=*/false);
  for (const auto& p : heads_->named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value());
  return out;
}

Status DeptModel::LoadStateDict(const std::map<std::string, torch::Tensor>& state) {
  StateDictReading reading;
  reading.model_name = "DePT";
  reading.must_match = "n_ctx, attribute count, training classes and backbone";
  // The head, when this model has none: the official Identity is loaded non-strictly.
  reading.also_ignored = [](const std::string& key) { return key.rfind("linear_probe_proj.", 0) == 0; };
  if (Status loaded = LoadStrictly(state, StateDict(), reading); !loaded.ok()) return loaded;
  eval_text_features_ = torch::Tensor();
  return Status::Ok();
}

torch::Tensor DeptModel::TrainLoss(const torch::Tensor& features, const torch::Tensor& labels, int64_t global_batch) {
  TORCH_CHECK(global_batch > 0, "DePT: global batch must be positive, got ", global_batch);
  TORCH_CHECK(heads_->has_linear_probe(),
              "DePT trains its linear head only on base classes or on all classes of an ImageNet dataset (as the "
              "official trainer); this model was built without one");
  if (features.size(0) == 0) return ZeroLoss(TrainableParameters());
  torch::Tensor text = learner_->TextFeatures();
  torch::Tensor sim = CosineLogits(features, text, clip_->logit_scale);
  torch::Tensor text_lp = heads_->film_lp_text(text).index_select(0, labels);
  torch::Tensor image_lp = heads_->film_lp_img(features);
  torch::Tensor head_in = torch::cat({text_lp, image_lp.to(text_lp.dtype())}, 0);
  torch::Tensor lp = heads_->linear_probe_proj(head_in.to(heads_->linear_probe_proj->weight.dtype()));
  torch::Tensor lp_labels = torch::cat({labels, labels}, 0);
  return (1 - weight_) * ShardCrossEntropy(sim, labels, global_batch) +
         weight_ * ShardCrossEntropy(lp, lp_labels, 2 * global_batch);
}

void DeptModel::BeginEvaluation() {
  torch::NoGradGuard no_grad;
  eval_text_features_ = learner_->TextFeatures();
}

torch::Tensor DeptModel::LinearProbeLogits(const torch::Tensor& features) {
  if (!fused()) return torch::Tensor();
  torch::Tensor image = heads_->film_lp_img(features);
  torch::Tensor logits = heads_->linear_probe_proj(image.to(heads_->linear_probe_proj->weight.dtype()));
  return logits.index_select(1, fused_rows_.to(logits.device()));
}

torch::Tensor DeptModel::Logits(const torch::Tensor& features) {
  torch::NoGradGuard no_grad;
  torch::Tensor text = eval_text_features_.defined() ? eval_text_features_ : learner_->TextFeatures();
  torch::Tensor sim = CosineLogits(features, text, clip_->logit_scale);
  if (!fused()) return sim;
  torch::Tensor lp = LinearProbeLogits(features);
  return (1 - weight_) * sim + weight_ * lp.to(sim.dtype());
}

std::vector<std::string> DeptModel::Notes() const {
  std::vector<std::string> notes;
  std::ostringstream head;
  head << "DePT: w=" << weight_ << ", linear head "
       << (heads_->has_linear_probe() ? std::to_string(heads_->options.num_classes()) + " classes" : "none")
       << ", evaluation " << (fused_rows_.defined() ? "fused with the head" : "similarity only");
  notes.push_back(head.str());
  notes.insert(notes.end(), notes_.begin(), notes_.end());
  const auto& layout_notes = learner_->layout().notes;
  notes.insert(notes.end(), layout_notes.begin(), layout_notes.end());
  return notes;
}

Result<std::unique_ptr<PromptModel>> MakeDeptModel(const MethodConfig& config, clip::Clip clip,
                                                   std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                                                   const std::vector<std::string>& class_names) {
  if (clip.is_empty()) return InvalidArgument("DePT needs a CLIP model");
  if (!tokenizer) return InvalidArgument("DePT needs the CLIP tokenizer");
  if (class_names.empty()) return InvalidArgument("DePT needs at least one class name");
  if (!(config.dept_weight >= 0 && config.dept_weight <= 1)) {
    return InvalidArgument("DePT weight w must lie in [0, 1], got " + std::to_string(config.dept_weight));
  }
  PromptLearner learner{nullptr};
  try {
    learner = PromptLearner(LearnerOptionsFor(config), clip, std::move(tokenizer), class_names);
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("DePT prompt learner: ") + e.what());
  }
  const int64_t head_rows = TrainsLinearProbe(config) ? static_cast<int64_t>(class_names.size()) : 0;
  DeptHeads heads(DeptHeadsOptions(clip->options.embed_dim(), head_rows));
  heads->to(clip->logit_scale.device());
  return std::unique_ptr<PromptModel>(
      std::make_unique<DeptModel>(std::move(learner), std::move(heads), std::move(clip), config.dept_weight, class_names));
}

}  // namespace atp::prompt
