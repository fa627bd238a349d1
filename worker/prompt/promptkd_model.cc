#include "worker/prompt/promptkd_model.h"

#include <sstream>
#include <unordered_map>

#include "worker/prompt/precision.h"

namespace atp::prompt {

PromptkdProjectorImpl::PromptkdProjectorImpl(const PromptkdProjectorOptions& options_) : options(options_) {
  conv1 = register_module(
      "conv1", torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(options.in_dim(), options.out_dim(), 1)),
                                     torch::nn::BatchNorm2d(options.out_dim()), torch::nn::ReLU(),
                                     torch::nn::Conv2d(torch::nn::Conv2dOptions(options.out_dim(), options.out_dim(), 1))));
}

torch::Tensor PromptkdProjectorImpl::forward(const torch::Tensor& features) {
  return conv1->forward(features.unsqueeze(-1).unsqueeze(-1)).squeeze(-1).squeeze(-1);
}

torch::Tensor PromptkdLoss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                           double temperature, double weight, int64_t global_batch) {
  FullPrecisionScope fp32;
  const torch::Tensor s = student_logits.to(torch::kFloat32) / temperature;
  const torch::Tensor t = teacher_logits.to(torch::kFloat32) / temperature;
  // F.kl_div(log q, p, 'sum') = Σ p (log p − log q), with p log p taken as 0 where p = 0.
  const torch::Tensor log_p = torch::log_softmax(t, 1);
  const torch::Tensor p = log_p.exp();
  const torch::Tensor kl = torch::xlogy(p, p).sum() - (p * torch::log_softmax(s, 1)).sum();
  const double numel = static_cast<double>(global_batch) * static_cast<double>(student_logits.size(1));
  return kl * (temperature * temperature) / numel * weight;
}

PromptkdModel::PromptkdModel(clip::Clip student, std::shared_ptr<KdTeacher> teacher, int64_t n_ctx, int64_t depth,
                             double kd_weight, double temperature)
    : student_(std::move(student)), teacher_(std::move(teacher)), kd_weight_(kd_weight), temperature_(temperature) {
  const int64_t width = student_->options.vision.width();
  const auto options = student_->visual->class_embedding.options();
  for (int64_t i = 0; i < depth; ++i) {
    vision_prompts_.push_back(torch::empty({n_ctx, width}, options).normal_(0, 0.02));
  }
  projector_ = PromptkdProjector(PromptkdProjectorOptions(student_->options.embed_dim(), teacher_->embed_dim()));
  projector_->to(options.device());
  SetClasses(teacher_->class_names(), true);
}

void PromptkdModel::SetClasses(const std::vector<std::string>& class_names, bool /*training_classes*/) {
  std::unordered_map<std::string, int64_t> row_of;
  const auto& all = teacher_->class_names();
  for (size_t i = 0; i < all.size(); ++i) row_of.emplace(all[i], static_cast<int64_t>(i));
  std::vector<int64_t> rows;
  for (const auto& name : class_names) {
    auto it = row_of.find(name);
    if (it == row_of.end()) {
      throw std::invalid_argument("class '" + name + "' is not one of the teacher's " + std::to_string(all.size()) +
                                  " classes; a PromptKD student can only name classes its teacher encoded");
    }
    rows.push_back(it->second);
  }
  class_rows_ = torch::tensor(rows, torch::kLong);
}

NamedTensors PromptkdModel::TrainableParameters() {
  // Official: every parameter whose name holds "VPT" (the prompts and VPT_image_trans).
  NamedTensors out;
  out.emplace_back("image_encoder.VPT", vision_prompts_[0]);
  for (size_t i = 1; i < vision_prompts_.size(); ++i) {
    out.emplace_back("image_encoder.transformer.resblocks." + std::to_string(i) + ".VPT_shallow", vision_prompts_[i]);
  }
  for (const auto& p : projector_->named_parameters(/*recurse=*/true)) {
    out.emplace_back("VPT_image_trans." + p.key(), p.value());
  }
  return out;
}

NamedTensors PromptkdModel::RankLocalBuffers() {
  NamedTensors out;
  for (const auto& b : projector_->named_buffers(/*recurse=*/true)) out.emplace_back("VPT_image_trans." + b.key(), b.value());
  return out;
}

NamedTensors PromptkdModel::StateDict() {
  NamedTensors out = TrainableParameters();
  for (auto& b : RankLocalBuffers()) out.push_back(b);
  return out;
}

Status PromptkdModel::LoadStateDict(const std::map<std::string, torch::Tensor>& state) {
  StateDictReading reading;
  reading.model_name = "PromptKD student";
  reading.must_match = "n_ctx, depth, the student's width and the teacher's embedding";
  return LoadStrictly(state, StateDict(), reading);
}

torch::Tensor PromptkdModel::StudentFeatures(const torch::Tensor& pixels) {
  clip::VisionTransformer visual = student_->visual;
  torch::Tensor tokens = visual->EmbedPatches(pixels.to(visual->conv1->weight.dtype()));
  const int64_t n = vision_prompts_[0].size(0);
  tokens = torch::cat({tokens, vision_prompts_[0].to(tokens.dtype()).unsqueeze(0).expand({tokens.size(0), n, tokens.size(2)})}, 1);
  const int64_t depth = this->depth();
  clip::LayerHook hook = [this, depth, n](int64_t layer, const torch::Tensor& x) -> torch::Tensor {
    if (layer < 1 || layer > depth - 1) return x;
    // The previous block's outputs at the prompt positions (the last n) are replaced.
    const torch::Tensor& prompt = vision_prompts_[static_cast<size_t>(layer)];
    return torch::cat({x.narrow(1, 0, x.size(1) - n), prompt.to(x.dtype()).unsqueeze(0).expand({x.size(0), n, x.size(2)})}, 1);
  };
  torch::Tensor features = visual->EncodeTokens(tokens, hook);
  torch::Tensor projected = projector_->forward(features);
  FullPrecisionScope fp32;
  projected = projected.to(torch::kFloat32);
  return projected / projected.norm(2, -1, true);
}

torch::Tensor PromptkdModel::AllClassLogits(const torch::Tensor& pixels) {
  torch::Tensor features = StudentFeatures(pixels);
  FullPrecisionScope fp32;
  return student_->logit_scale.exp().to(torch::kFloat32) *
         features.matmul(teacher_->text_features().to(features.device()).t());
}

torch::Tensor PromptkdModel::TrainLoss(const torch::Tensor& pixels, const torch::Tensor& /*labels*/,
                                       int64_t global_batch) {
  if (pixels.size(0) == 0) return ZeroLoss(TrainableParameters());
  projector_->train();
  const torch::Tensor teacher_logits = teacher_->Logits(pixels);
  return PromptkdLoss(AllClassLogits(pixels), teacher_logits, temperature_, kd_weight_, global_batch);
}

void PromptkdModel::BeginEvaluation() { projector_->eval(); }

torch::Tensor PromptkdModel::Logits(const torch::Tensor& pixels) {
  torch::NoGradGuard no_grad;
  projector_->eval();
  torch::Tensor logits = AllClassLogits(pixels);
  return logits.index_select(1, class_rows_.to(logits.device()));
}

std::vector<std::string> PromptkdModel::Notes() const {
  std::ostringstream note;
  note << "PromptKD student: " << student_->options.ToString() << ", " << vision_prompts_[0].size(0)
       << " vision tokens, depth " << vision_prompts_.size() << ", projector " << projector_->options.in_dim()
       << " -> " << projector_->options.out_dim() << "; KD weight " << kd_weight_ << ", T " << temperature_
       << "; teacher: " << teacher_->description() << ", " << teacher_->class_names().size() << " classes";
  return {note.str()};
}

Result<std::unique_ptr<PromptkdModel>> MakePromptkdModel(clip::Clip student, std::shared_ptr<KdTeacher> teacher,
                                                         int64_t n_ctx, int64_t depth, double kd_weight,
                                                         double temperature) {
  const int64_t layers = student->options.vision.layers();
  if (n_ctx < 1) return InvalidArgument("PromptKD: n_ctx (vision tokens) must be at least 1");
  if (depth < 1 || depth > layers) {
    return InvalidArgument("PromptKD: depth " + std::to_string(depth) + " must be between 1 and the student's " +
                           std::to_string(layers) + " image-tower layers");
  }
  if (teacher->input_resolution() != student->options.vision.input_resolution()) {
    return InvalidArgument("PromptKD: the teacher sees " + std::to_string(teacher->input_resolution()) +
                           " px images but the student " +
                           std::to_string(student->options.vision.input_resolution()) +
                           " px; both must take the same augmented view");
  }
  if (!(temperature > 0)) return InvalidArgument("PromptKD: temperature must be above 0");
  return std::make_unique<PromptkdModel>(std::move(student), std::move(teacher), n_ctx, depth, kd_weight, temperature);
}

}  // namespace atp::prompt
