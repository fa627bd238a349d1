#include "worker/prompt/ivlp_model.h"

#include <algorithm>
#include <set>
#include <sstream>
#include <utility>

#include "worker/clip/tokenizer.h"

namespace atp::prompt {
namespace {

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

torch::Tensor DrawPrompt(int64_t rows, int64_t width) {
  return torch::empty({rows, width}, torch::kFloat).normal_(0, 0.02);
}

}  // namespace

IvlpPromptsImpl::IvlpPromptsImpl(const IvlpPromptsOptions& o) : options(o) {
  TORCH_CHECK(o.text_depth() >= 0 && o.vision_depth() >= 0, "IVLP prompt depths must be >= 0, got text ",
              o.text_depth(), ", vision ", o.vision_depth());
  TORCH_CHECK(o.vision_depth() == 0 || o.vision_ctx() >= 1, "IVLP vision prompts need vision_ctx >= 1");
  TORCH_CHECK(o.text_depth() <= 1 || o.text_ctx() >= 1, "IVLP deep text prompts need text_ctx >= 1");
  // Parameter names cannot hold dots; OfficialNamed maps these to the checkpoint keys.
  if (o.vision_depth() >= 1) {
    vision_shallow = register_parameter("vision_VPT", DrawPrompt(o.vision_ctx(), o.vision_width()));
  }
  for (int64_t i = 1; i < o.vision_depth(); ++i) {
    vision_deep.push_back(
        register_parameter("vision_VPT_shallow_" + std::to_string(i), DrawPrompt(o.vision_ctx(), o.vision_width())));
  }
  for (int64_t i = 1; i < o.text_depth(); ++i) {
    text_deep.push_back(
        register_parameter("text_VPT_shallow_" + std::to_string(i), DrawPrompt(o.text_ctx(), o.text_width())));
  }
}

NamedTensors IvlpPromptsImpl::OfficialNamed() const {
  NamedTensors out;
  if (vision_shallow.defined()) out.emplace_back("image_encoder.VPT", vision_shallow);
  for (size_t i = 0; i < vision_deep.size(); ++i) {
    out.emplace_back("image_encoder.transformer.resblocks." + std::to_string(i + 1) + ".VPT_shallow", vision_deep[i]);
  }
  for (size_t i = 0; i < text_deep.size(); ++i) {
    out.emplace_back("text_encoder.transformer.resblocks." + std::to_string(i + 1) + ".VPT_shallow", text_deep[i]);
  }
  return out;
}

torch::Tensor PromptedImageFeatures(clip::VisionTransformer visual, const torch::Tensor& shallow,
                                    const std::vector<torch::Tensor>& deep, const torch::Tensor& pixels) {
  torch::Tensor tokens = visual->EmbedPatches(pixels.to(visual->conv1->weight.dtype()));
  if (!shallow.defined()) {
    TORCH_CHECK(deep.empty(), "IVLP: deep vision prompts without the first layer's");
    return visual->EncodeTokens(tokens);
  }
  const int64_t n = shallow.size(0);
  tokens = torch::cat({tokens, shallow.to(tokens.dtype()).unsqueeze(0).expand({tokens.size(0), n, tokens.size(2)})}, 1);
  clip::LayerHook hook = [&deep, n](int64_t layer, const torch::Tensor& x) -> torch::Tensor {
    if (layer < 1 || layer > static_cast<int64_t>(deep.size())) return x;
    // The prompt tokens sit at the end of the sequence; the previous block's outputs there
    // are dropped and this block's prompts take their place (ResidualAttentionBlock_IVLP).
    const torch::Tensor& prompt = deep[static_cast<size_t>(layer - 1)];
    return torch::cat({x.narrow(1, 0, x.size(1) - n), prompt.to(x.dtype()).unsqueeze(0).expand({x.size(0), n, x.size(2)})},
                      1);
  };
  return visual->EncodeTokens(tokens, hook);
}

IvlpModel::IvlpModel(PromptLearner learner, IvlpPrompts prompts, clip::Clip clip,
                     std::shared_ptr<const clip::ClipTokenizer> tokenizer)
    : learner_(std::move(learner)), prompts_(std::move(prompts)), clip_(std::move(clip)), tokenizer_(std::move(tokenizer)) {
  deep_text_rows_ = DeepTextPromptRows(*learner_);
}

void IvlpModel::SetClasses(const std::vector<std::string>& class_names, bool /*training_classes*/) {
  learner_->SetClasses(class_names);
  deep_text_rows_ = DeepTextPromptRows(*learner_);
  eval_text_features_ = torch::Tensor();
}

torch::Tensor IvlpModel::TextFeatures() {
  const torch::Tensor rows = deep_text_rows_;
  const std::vector<torch::Tensor>& deep = prompts_->text_deep;
  clip::LayerHook hook = [rows, &deep](int64_t layer, const torch::Tensor& x) -> torch::Tensor {
    if (layer < 1 || layer > static_cast<int64_t>(deep.size())) return x;
    return OverwriteDeepTextRows(x, rows, deep[static_cast<size_t>(layer - 1)]);
  };
  return learner_->TextFeatures(torch::Tensor(), hook);
}

torch::Tensor IvlpModel::ImageFeatures(const torch::Tensor& pixels) {
  return PromptedImageFeatures(clip_->visual, prompts_->vision_shallow, prompts_->vision_deep, pixels);
}

NamedTensors IvlpModel::TrainableParameters() {
  NamedTensors out = {{"prompt_learner.ctx", learner_->ctx}};
  const std::vector<torch::Tensor> used = learner_->UsedParameters();
  for (size_t b = 1; b < used.size(); ++b) out.emplace_back("prompt_learner.ctx_att" + std::to_string(b), used[b]);
  for (auto& named : prompts_->OfficialNamed()) out.push_back(std::move(named));
  return out;
}

NamedTensors IvlpModel::StateDict() {
  NamedTensors out = {{"prompt_learner.ctx", learner_->ctx}};
  for (size_t b = 0; b < learner_->ctx_att.size(); ++b) {
    out.emplace_back("prompt_learner.ctx_att" + std::to_string(b + 1), learner_->ctx_att[b]);
  }
  for (auto& named : prompts_->OfficialNamed()) out.push_back(std::move(named));
  return out;
}

Status IvlpModel::LoadStateDict(const std::map<std::string, torch::Tensor>& state) {
  const NamedTensors targets = StateDict();
  std::set<std::string> target_keys;
  for (const auto& named : targets) target_keys.insert(named.first);
  // LoadStrictly skips the frozen towers wholesale; IVLP's prompts live inside them, so a
  // prompt tensor that is not ours (another depth) must be caught here.
  std::vector<std::string> foreign;
  for (const auto& entry : state) {
    std::string key = entry.first;
    if (StartsWith(key, "module.")) key = key.substr(7);
    if (StartsWith(key, "prompt_learner.ZS_image_encoder.")) continue;
    const bool prompt_tensor = key.find(".VPT") != std::string::npos || StartsWith(key, "VPT");
    if (prompt_tensor && !target_keys.count(key)) foreign.push_back(key);
  }
  if (!foreign.empty()) {
    std::string message = "IVLP checkpoint does not fit this model (prompt depths and token counts must match the "
                          "run that wrote it): it holds prompt tensors this model has no place for:";
    for (const auto& key : foreign) message += " " + key;
    return InvalidArgument(message);
  }
  StateDictReading reading;
  reading.model_name = "IVLP";
  reading.must_match = "n_ctx text/vision, attribute count, prompt depths and backbone widths";
  reading.also_ignored = [](const std::string& key) { return StartsWith(key, "prompt_learner.ZS_image_encoder."); };
  if (Status loaded = LoadStrictly(state, targets, reading); !loaded.ok()) return loaded;
  eval_text_features_ = torch::Tensor();
  return Status::Ok();
}

torch::Tensor IvlpModel::TrainLoss(const torch::Tensor& pixels, const torch::Tensor& labels, int64_t global_batch) {
  TORCH_CHECK(global_batch > 0, "IVLP: global batch must be positive, got ", global_batch);
  if (pixels.size(0) == 0) return ZeroLoss(TrainableParameters());
  return ShardCrossEntropy(CosineLogits(ImageFeatures(pixels), TextFeatures(), clip_->logit_scale), labels,
                           global_batch);
}

void IvlpModel::BeginEvaluation() {
  torch::NoGradGuard no_grad;
  eval_text_features_ = TextFeatures();
}

torch::Tensor IvlpModel::Logits(const torch::Tensor& pixels) {
  torch::NoGradGuard no_grad;
  torch::Tensor text = eval_text_features_.defined() ? eval_text_features_ : TextFeatures();
  return CosineLogits(ImageFeatures(pixels), text, clip_->logit_scale);
}

void IvlpModel::EndEvaluation() { eval_text_features_ = torch::Tensor(); }

std::vector<std::string> IvlpModel::Notes() const {
  const PromptLayout& layout = learner_->layout();
  const IvlpPromptsOptions& o = prompts_->options;
  std::vector<std::string> notes;
  std::ostringstream head;
  head << "IVLP: text n_ctx=" << layout.design.n_ctx << " depth " << o.text_depth() << ", vision n_ctx="
       << o.vision_ctx() << " depth " << o.vision_depth() << "; deep text prompts replace ";
  if (layout.design.compat == Compat::kOfficial) {
    const int64_t start = 1 + static_cast<int64_t>(layout.design.attributes.size()) * (layout.design.n_ctx + 1);
    head << "rows [" << start << ", " << start + layout.design.n_ctx << ") (official offset 1 + ATT_NUM*(n_ctx+1))";
  } else {
    head << "the class-context rows (paper)";
  }
  notes.push_back(head.str());
  if (!layout.classes.empty()) {
    const torch::Tensor context = learner_->class_context_positions().to(torch::kCPU, torch::kLong);
    if (o.text_depth() > 1 && !context.equal(deep_text_rows_)) {
      notes.push_back(
          "warning: with these attribute lengths/words the official deep offset misses the class context; the "
          "deep text prompts overwrite other rows and the class context is never refreshed after layer 0");
    }
    if (tokenizer_) notes.push_back("prompt of class 0: " + DescribeClassPrompt(layout.classes[0], *tokenizer_));
  }
  notes.insert(notes.end(), layout.notes.begin(), layout.notes.end());
  return notes;
}

Result<std::unique_ptr<IvlpModel>> MakeIvlpModel(const IvlpSettings& settings, clip::Clip clip,
                                                 std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                                                 const std::vector<std::string>& class_names) {
  if (clip.is_empty()) return InvalidArgument("IVLP needs a CLIP model");
  if (!tokenizer) return InvalidArgument("IVLP needs the CLIP tokenizer");
  if (class_names.empty()) return InvalidArgument("IVLP needs at least one class name");
  const clip::ClipOptions& clip_options = clip->options;
  const int64_t text_layers = clip_options.text.layers(), vision_layers = clip_options.vision.layers();
  if (settings.design.n_ctx < 1) {
    return InvalidArgument("IVLP needs n_ctx >= 1 text context tokens, got " + std::to_string(settings.design.n_ctx));
  }
  if (settings.text_depth < 1 || settings.text_depth > text_layers) {
    return InvalidArgument("text prompt depth " + std::to_string(settings.text_depth) + " does not fit this CLIP (" +
                           std::to_string(text_layers) + " text layers): 1 <= depth <= " +
                           std::to_string(text_layers) + " (the official code asserts a text depth >= 1)");
  }
  if (settings.vision_depth < 0 || settings.vision_depth > vision_layers) {
    return InvalidArgument("vision prompt depth " + std::to_string(settings.vision_depth) +
                           " does not fit this CLIP (" + std::to_string(vision_layers) +
                           " vision layers): 0 <= depth <= " + std::to_string(vision_layers));
  }
  if (settings.vision_depth >= 1 && settings.vision_ctx < 1) {
    return InvalidArgument("IVLP vision prompts need vision n_ctx >= 1, got " + std::to_string(settings.vision_ctx));
  }
  try {
    IvlpPrompts prompts(IvlpPromptsOptions()
                            .text_ctx(settings.design.n_ctx)
                            .vision_ctx(settings.vision_ctx)
                            .text_depth(settings.text_depth)
                            .vision_depth(settings.vision_depth)
                            .text_width(clip_options.text.width())
                            .vision_width(clip_options.vision.width()));
    prompts->to(clip->logit_scale.device());
    PromptLearnerOptions learner_options;
    learner_options.design = settings.design;
    if (settings.official_attribute_tensors && !settings.design.attributes.empty()) learner_options.attribute_tensors = 3;
    PromptLearner learner(learner_options, clip, tokenizer, class_names);
    return std::make_unique<IvlpModel>(std::move(learner), std::move(prompts), std::move(clip), std::move(tokenizer));
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("IVLP: ") + e.what());
  }
}

}  // namespace atp::prompt
