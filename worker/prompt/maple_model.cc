#include "worker/prompt/maple_model.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <mutex>
#include <sstream>
#include <utility>

#include "worker/clip/tokenizer.h"
#include "worker/prompt/coop_model.h"
#include "worker/prompt/method_config.h"

namespace atp::prompt {
namespace {

// The default CPU generator's state. Every prompt tensor is drawn on the CPU (as the official
// code does, before moving the model), so this is the only stream that matters.
torch::Tensor CpuGeneratorState() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void SetCpuGeneratorState(const torch::Tensor& state) {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

// Draws a fresh N(0, std) tensor like `target` from the CPU stream and copies it in.
void RedrawNormal(torch::Tensor& target, double std) {
  torch::NoGradGuard no_grad;
  target.copy_(torch::empty(target.sizes(), torch::kFloat).normal_(0, std));
}

}  // namespace

MapleDeepPromptsImpl::MapleDeepPromptsImpl(const MapleDeepPromptsOptions& o) : options(o) {
  TORCH_CHECK(o.depth() >= 1, "MaPLe prompt depth must be >= 1, got ", o.depth());
  auto linear = [&o] { return torch::nn::Linear(torch::nn::LinearOptions(o.text_width(), o.vision_width())); };
  proj = register_module("proj", linear());
  compound_prompts_text = register_module("compound_prompts_text", torch::nn::ParameterList());
  for (int64_t i = 0; i + 1 < o.depth(); ++i) {
    // ParameterList keeps the tensor's own requires_grad, so it is set here.
    compound_prompts_text->append(torch::empty({o.n_ctx(), o.text_width()}).normal_(0, 0.02).requires_grad_(true));
  }
  compound_prompt_projections = register_module("compound_prompt_projections", torch::nn::ModuleList());
  torch::nn::Linear single = linear();
  // Constructing a Linear draws its initial values; the official copies do not, so the
  // stream is put back to where it stood after the one Linear.
  const torch::Tensor after_single = CpuGeneratorState();
  for (int64_t i = 0; i + 1 < o.depth(); ++i) {
    torch::nn::Linear copy = linear();
    {
      torch::NoGradGuard no_grad;
      copy->weight.copy_(single->weight);
      copy->bias.copy_(single->bias);
    }
    compound_prompt_projections->push_back(copy);
    projections_.push_back(copy);
  }
  SetCpuGeneratorState(after_single);
}

torch::Tensor MapleDeepPromptsImpl::VisionPrompt(int64_t i) {
  torch::nn::Linear& projection = projections_.at(static_cast<size_t>(i));
  return projection(compound_prompts_text[i].to(projection->weight.dtype()));
}

MapleModel::MapleModel(PromptLearner learner, MapleDeepPrompts prompts, clip::Clip clip,
                       std::shared_ptr<const clip::ClipTokenizer> tokenizer)
    : learner_(std::move(learner)), prompts_(std::move(prompts)), clip_(std::move(clip)), tokenizer_(std::move(tokenizer)) {
  ComputeDeepTextRows();
}

void MapleModel::ComputeDeepTextRows() { deep_text_rows_ = DeepTextPromptRows(*learner_); }

void MapleModel::SetClasses(const std::vector<std::string>& class_names, bool /*training_classes*/) {
  learner_->SetClasses(class_names);
  ComputeDeepTextRows();
  eval_text_features_ = torch::Tensor();
}

clip::LayerHook MapleModel::TextHook() {
  const int64_t depth = this->depth();
  const torch::Tensor rows = deep_text_rows_;
  return [this, depth, rows](int64_t layer, const torch::Tensor& x) -> torch::Tensor {
    torch::Tensor out = x;
    if (layer >= 1 && layer <= depth - 1) {
      out = OverwriteDeepTextRows(x, rows, prompts_->compound_prompts_text[layer - 1]);
    }
    if (observer) observer(Tower::kText, layer, x, out);
    return out;
  };
}

clip::LayerHook MapleModel::VisionHook(std::vector<torch::Tensor> vision_prompts) {
  const int64_t depth = this->depth();
  return [this, depth, prompts = std::move(vision_prompts)](int64_t layer, const torch::Tensor& x) -> torch::Tensor {
    torch::Tensor out = x;
    if (layer >= 1 && layer <= depth - 1) {
      // The prompt tokens sit at the end of the sequence; the previous block's outputs there
      // are dropped and this block's prompts take their place.
      const torch::Tensor& prompt = prompts.at(static_cast<size_t>(layer - 1));
      const int64_t n = prompt.size(0);
      out = torch::cat({x.narrow(1, 0, x.size(1) - n),
                        prompt.to(x.dtype()).unsqueeze(0).expand({x.size(0), n, x.size(2)})},
                       1);
    }
    if (observer) observer(Tower::kVision, layer, x, out);
    return out;
  };
}

torch::Tensor MapleModel::TextFeatures() { return learner_->TextFeatures(torch::Tensor(), TextHook()); }

torch::Tensor MapleModel::ImageFeatures(const torch::Tensor& pixels) {
  clip::VisionTransformer visual = clip_->visual;
  torch::Tensor tokens = visual->EmbedPatches(pixels.to(visual->conv1->weight.dtype()));
  torch::Tensor shared = prompts_->proj(learner_->ctx.to(prompts_->proj->weight.dtype()));  // [n, W]
  const int64_t n = shared.size(0);
  tokens = torch::cat({tokens, shared.to(tokens.dtype()).unsqueeze(0).expand({tokens.size(0), n, tokens.size(2)})}, 1);
  std::vector<torch::Tensor> deep;
  for (int64_t i = 0; i + 1 < depth(); ++i) deep.push_back(prompts_->VisionPrompt(i));
  return visual->EncodeTokens(tokens, VisionHook(std::move(deep)));
}

NamedTensors MapleModel::TrainableParameters() {
  NamedTensors out = PrefixedLearnerParameters(learner_, /*used_only=*/true);
  for (const auto& p : prompts_->named_parameters(/*recurse=*/true)) {
    out.emplace_back("prompt_learner." + p.key(), p.value());
  }
  return out;
}

NamedTensors MapleModel::StateDict() {
  NamedTensors out = PrefixedLearnerParameters(learner_, /*used_only=*/false);
  for (const auto& p : prompts_->named_parameters(/*recurse=*/true)) {
    out.emplace_back("prompt_learner." + p.key(), p.value());
  }
  return out;
}

Status MapleModel::LoadStateDict(const std::map<std::string, torch::Tensor>& state) {
  StateDictReading reading;
  reading.model_name = "MaPLe";
  reading.must_match = "n_ctx, attribute count, depth J and backbone widths";
  if (Status loaded = LoadStrictly(state, StateDict(), reading); !loaded.ok()) return loaded;
  eval_text_features_ = torch::Tensor();
  return Status::Ok();
}

torch::Tensor MapleModel::TrainLoss(const torch::Tensor& pixels, const torch::Tensor& labels, int64_t global_batch) {
  TORCH_CHECK(global_batch > 0, "MaPLe: global batch must be positive, got ", global_batch);
  if (pixels.size(0) == 0) return ZeroLoss(TrainableParameters());
  torch::Tensor text = TextFeatures();
  torch::Tensor image = ImageFeatures(pixels);
  return ShardCrossEntropy(CosineLogits(image, text, clip_->logit_scale), labels, global_batch);
}

void MapleModel::BeginEvaluation() {
  torch::NoGradGuard no_grad;
  eval_text_features_ = TextFeatures();
}

torch::Tensor MapleModel::Logits(const torch::Tensor& pixels) {
  torch::NoGradGuard no_grad;
  torch::Tensor text = eval_text_features_.defined() ? eval_text_features_ : TextFeatures();
  return CosineLogits(ImageFeatures(pixels), text, clip_->logit_scale);
}

void MapleModel::EndEvaluation() { eval_text_features_ = torch::Tensor(); }

std::vector<std::string> MapleModel::Notes() const {
  const PromptLayout& layout = learner_->layout();
  const int64_t n = layout.design.n_ctx;
  std::vector<std::string> notes;
  std::ostringstream head;
  head << "MaPLe: depth J=" << depth() << ", n_ctx=" << n << ", prompts " << prompts_->options.text_width()
       << " (text) -> " << prompts_->options.vision_width() << " (vision); deep text prompts replace ";
  if (layout.design.compat == Compat::kOfficial) {
    const int64_t start = 1 + static_cast<int64_t>(layout.design.attributes.size()) * (n + 1);
    head << "rows [" << start << ", " << start + n << ") (official offset 1 + ATT_NUM*(n_ctx+1))";
  } else {
    head << "the class-context rows (paper)";
  }
  notes.push_back(head.str());
  if (!layout.classes.empty()) {
    const torch::Tensor context = learner_->class_context_positions().to(torch::kCPU, torch::kLong);
    if (layout.design.compat == Compat::kOfficial && !context.equal(deep_text_rows_)) {
      notes.push_back(
          "warning: with these attribute lengths/words the official deep offset misses the class context; the "
          "deep text prompts overwrite other rows and the class context is never refreshed after layer 0");
    }
    if (tokenizer_) notes.push_back("prompt of class 0: " + DescribeClassPrompt(layout.classes[0], *tokenizer_));
  }
  notes.insert(notes.end(), layout.notes.begin(), layout.notes.end());
  return notes;
}

Result<std::unique_ptr<PromptModel>> MakeMapleModel(const MethodConfig& config, clip::Clip clip,
                                                    std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                                                    const std::vector<std::string>& class_names) {
  if (clip.is_empty()) return InvalidArgument("MaPLe needs a CLIP model");
  if (!tokenizer) return InvalidArgument("MaPLe needs the CLIP tokenizer");
  if (class_names.empty()) return InvalidArgument("MaPLe needs at least one class name");
  const clip::ClipOptions& clip_options = clip->options;
  const int64_t text_layers = clip_options.text.layers(), vision_layers = clip_options.vision.layers();
  const int64_t depth = config.maple_depth;
  if (depth < 1 || depth > std::min(text_layers, vision_layers)) {
    return InvalidArgument("maple_depth J=" + std::to_string(depth) + " does not fit this CLIP (text " +
                           std::to_string(text_layers) + " layers, vision " + std::to_string(vision_layers) +
                           " layers): prompts enter blocks 0..J-1, so 1 <= J <= " +
                           std::to_string(std::min(text_layers, vision_layers)) + "; set maple_depth accordingly");
  }
  if (config.design.n_ctx < 1) {
    return InvalidArgument("MaPLe needs n_ctx >= 1 (the vision prompt is projected from the class context), got " +
                           std::to_string(config.design.n_ctx));
  }

  // The PromptLearner draws ctx and ctx_att together; the official order puts proj, the
  // compound prompts and the projection Linear in between. Rewind and replay in that order.
  const torch::Tensor start = CpuGeneratorState();
  PromptLearner learner{nullptr};
  try {
    learner = PromptLearner(LearnerOptionsFor(config), clip, tokenizer, class_names);
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("MaPLe prompt learner: ") + e.what());
  }
  // ctx was drawn unless it holds the embeddings of ctx_init's first n tokens.
  bool ctx_random = true;
  if (!config.design.ctx_init.empty()) {
    auto ids = tokenizer->Encode(config.design.ctx_init);
    const int64_t n = config.design.n_ctx;
    if (ids.ok() && static_cast<int64_t>(ids->size()) >= n) {
      torch::NoGradGuard no_grad;
      std::vector<int64_t> first(ids->begin(), ids->begin() + n);
      torch::Tensor init = clip->token_embedding(torch::tensor(first, torch::kLong).to(clip->logit_scale.device()));
      ctx_random = !init.to(learner->ctx.options()).equal(learner->ctx.detach());
    }
  }
  SetCpuGeneratorState(start);
  if (ctx_random) RedrawNormal(learner->ctx, 0.02);
  MapleDeepPrompts prompts(MapleDeepPromptsOptions(config.design.n_ctx, clip_options.text.width(),
                                                   clip_options.vision.width(), depth));
  for (torch::Tensor& att : learner->ctx_att) RedrawNormal(att, 0.01);
  prompts->to(clip->logit_scale.device());

  try {
    return std::unique_ptr<PromptModel>(
        std::make_unique<MapleModel>(std::move(learner), std::move(prompts), std::move(clip), std::move(tokenizer)));
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("MaPLe: ") + e.what());
  }
}

}  // namespace atp::prompt
