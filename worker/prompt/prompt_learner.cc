#include "worker/prompt/prompt_learner.h"

#include <stdexcept>

#include "worker/clip/tokenizer.h"

namespace atp::prompt {

PromptLearnerImpl::PromptLearnerImpl(const PromptLearnerOptions& options, clip::Clip clip,
                                     std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                                     const std::vector<std::string>& class_names)
    : options_(options), clip_(std::move(clip)), tokenizer_(std::move(tokenizer)) {
  auto layout = BuildPromptLayout(options_.design, class_names, *tokenizer_,
                                  static_cast<int>(clip_->options.text.context_length()));
  if (!layout.ok()) throw std::invalid_argument(layout.status().message());
  layout_ = std::move(*layout);

  const auto& design = options_.design;
  const int64_t width = clip_->token_embedding->weight.size(1);
  const auto float_options = torch::TensorOptions().dtype(torch::kFloat32);
  const torch::Device device = clip_->token_embedding->weight.device();

  // ctx: the embeddings of ctx_init's first n tokens when the layout uses them, else N(0, 0.02).
  const ClassPrompt& first = layout_.classes.front();
  bool from_init = !design.ctx_init.empty() && design.n_ctx > 0 &&
                   first.template_ids[first.class_context_positions.front()] !=
                       tokenizer_->Encode("X").value().front();
  torch::Tensor ctx_value;
  if (from_init) {
    std::vector<int64_t> ids;
    for (int p : first.class_context_positions) ids.push_back(first.template_ids[p]);
    torch::NoGradGuard no_grad;
    ctx_value = clip_->token_embedding->forward(torch::tensor(ids, torch::kLong).to(device)).clone();
  } else {
    // Drawn on the CPU generator (then moved), so a seed gives the same prompts on any device.
    ctx_value = torch::empty({design.n_ctx, width}, float_options).normal_(0, 0.02).to(device);
  }
  ctx = register_parameter("ctx", ctx_value);

  const int attributes = static_cast<int>(design.attributes.size());
  const int tensors = options_.attribute_tensors > 0 ? std::max(options_.attribute_tensors, attributes) : attributes;
  for (int b = 0; b < tensors; ++b) {
    // A tensor no attribute uses (the official trainers always create ctx_att1..3) has the
    // attribute length too: the released scripts set N_ATT1..3 to one value, which is what a
    // published checkpoint holds and how many values the generator gives it.
    const int64_t rows = b < attributes ? design.AttributeCtx(b)
                                        : (attributes > 0 ? design.AttributeCtx(attributes - 1) : design.n_ctx);
    ctx_att.push_back(register_parameter("ctx_att" + std::to_string(b + 1),
                                         torch::empty({rows, width}, float_options).normal_(0, 0.01).to(device)));
  }
  BuildBuffers();
}

void PromptLearnerImpl::SetClasses(const std::vector<std::string>& class_names) {
  auto layout = BuildPromptLayout(options_.design, class_names, *tokenizer_,
                                  static_cast<int>(clip_->options.text.context_length()));
  if (!layout.ok()) throw std::invalid_argument(layout.status().message());
  layout_ = std::move(*layout);
  BuildBuffers();
}

void PromptLearnerImpl::BuildBuffers() {
  const int64_t classes = static_cast<int64_t>(layout_.classes.size());
  const int64_t length = layout_.context_length;
  std::vector<int64_t> ids;
  ids.reserve(static_cast<size_t>(classes * length));
  for (const auto& prompt : layout_.classes) ids.insert(ids.end(), prompt.template_ids.begin(), prompt.template_ids.end());
  const torch::Device device = clip_->token_embedding->weight.device();
  {
    torch::NoGradGuard no_grad;
    template_embeddings_ =
        clip_->token_embedding->forward(torch::tensor(ids, torch::kLong).view({classes, length}).to(device)).detach();
  }

  // Rows of the gather table: the template rows of every class, then ctx, then each ctx_att.
  const int64_t ctx_base = classes * length;
  std::vector<int64_t> att_base;
  int64_t next = ctx_base + ctx.size(0);
  for (const auto& t : ctx_att) {
    att_base.push_back(next);
    next += t.size(0);
  }
  std::vector<int64_t> index(static_cast<size_t>(classes * length));
  std::vector<float> mask(static_cast<size_t>(classes * length), 0.f);
  std::vector<int64_t> eot(static_cast<size_t>(classes));
  std::vector<int64_t> positions;
  for (int64_t c = 0; c < classes; ++c) {
    const ClassPrompt& prompt = layout_.classes[static_cast<size_t>(c)];
    for (int64_t p = 0; p < length; ++p) {
      const Slot& slot = prompt.slots[static_cast<size_t>(p)];
      int64_t row = 0;
      switch (slot.kind) {
        case SlotKind::kFixed: row = c * length + slot.source; break;
        case SlotKind::kClassContext:
          row = ctx_base + slot.index;
          mask[static_cast<size_t>(c * length + p)] = 1.f;
          break;
        case SlotKind::kAttributeContext: row = att_base.at(static_cast<size_t>(slot.block)) + slot.index; break;
      }
      index[static_cast<size_t>(c * length + p)] = row;
    }
    eot[static_cast<size_t>(c)] = prompt.eot;
    positions.insert(positions.end(), prompt.class_context_positions.begin(), prompt.class_context_positions.end());
  }
  // The classes' prompts agree up to the first position where a slot's source differs: a
  // fixed token of another id, or another context vector (CoOp: the start token and the
  // whole context, when the class name comes last).
  auto same_source = [&](int64_t p) {
    const Slot& first = layout_.classes.front().slots[static_cast<size_t>(p)];
    for (const ClassPrompt& prompt : layout_.classes) {
      const Slot& slot = prompt.slots[static_cast<size_t>(p)];
      if (slot.kind != first.kind) return false;
      if (slot.kind == SlotKind::kFixed) {
        if (prompt.template_ids[static_cast<size_t>(slot.source)] !=
            layout_.classes.front().template_ids[static_cast<size_t>(first.source)]) {
          return false;
        }
      } else if (slot.index != first.index || (slot.kind == SlotKind::kAttributeContext && slot.block != first.block)) {
        return false;
      }
    }
    return true;
  };
  shared_prefix_ = 0;
  while (classes > 0 && shared_prefix_ < length && same_source(shared_prefix_)) ++shared_prefix_;
  gather_index_ = torch::tensor(index, torch::kLong).view({classes, length}).to(device);
  context_mask_ = torch::tensor(mask).view({classes, length, 1}).to(device);
  eot_ = torch::tensor(eot, torch::kLong).to(device);
  ctx_positions_ = torch::tensor(positions, torch::kLong).view({classes, options_.design.n_ctx}).to(device);
}

torch::Tensor PromptLearnerImpl::Embeddings(const torch::Tensor& class_context_shift) {
  const int64_t classes = gather_index_.size(0);
  const int64_t length = gather_index_.size(1);
  const int64_t width = template_embeddings_.size(2);
  std::vector<torch::Tensor> parts = {template_embeddings_.view({classes * length, width}), ctx};
  for (const auto& t : ctx_att) parts.push_back(t);
  torch::Tensor table = torch::cat(parts, 0);
  torch::Tensor embeddings = table.index_select(0, gather_index_.view({-1})).view({classes, length, width});
  if (!class_context_shift.defined()) return embeddings;
  // CoCoOp: only the class context moves with the image (paper: "meta token only shifts the
  // class soft tokens").
  const int64_t batch = class_context_shift.size(0);
  return embeddings.unsqueeze(0) + context_mask_.unsqueeze(0) * class_context_shift.view({batch, 1, 1, width});
}

torch::Tensor PromptLearnerImpl::TextFeatures(const torch::Tensor& class_context_shift, const clip::LayerHook& hook) {
  torch::Tensor embeddings = Embeddings(class_context_shift);
  if (embeddings.dim() == 3) return clip_->EncodeTextEmbeddings(embeddings, eot_, hook, true, {shared_prefix_, 0});
  // CoCoOp: one image's shift moves the context of all its classes alike, so each image's
  // classes still share their leading positions.
  const int64_t batch = embeddings.size(0), classes = embeddings.size(1);
  torch::Tensor flat = embeddings.reshape({batch * classes, embeddings.size(2), embeddings.size(3)});
  torch::Tensor features =
      clip_->EncodeTextEmbeddings(flat, eot_.repeat({batch}), hook, true, {shared_prefix_, classes});
  return features.view({batch, classes, -1});
}

std::vector<torch::Tensor> PromptLearnerImpl::UsedParameters() const {
  std::vector<torch::Tensor> used = {ctx};
  for (size_t b = 0; b < ctx_att.size() && b < options_.design.attributes.size(); ++b) used.push_back(ctx_att[b]);
  return used;
}

torch::Tensor DeepTextPromptRows(const PromptLearnerImpl& learner) {
  const PromptLayout& layout = learner.layout();
  const int64_t n = layout.design.n_ctx;
  const int64_t classes = learner.num_classes();
  torch::Tensor rows;
  if (layout.design.compat == Compat::kOfficial) {
    // model_atp.py: the deep prompt goes after 1 + ATT_NUM·(N_CTX + 1) rows, which is the
    // class context only when every attribute has N_CTX soft tokens and a one-token word.
    const int64_t start = 1 + static_cast<int64_t>(layout.design.attributes.size()) * (n + 1);
    rows = torch::arange(start, start + n, torch::kLong).unsqueeze(0).expand({classes, n}).contiguous();
  } else {
    rows = learner.class_context_positions().to(torch::kCPU, torch::kLong).contiguous();
  }
  TORCH_CHECK(rows.size(0) == classes && rows.size(1) == n, "deep text prompts: class-context positions must be [",
              classes, ", ", n, "], got ", rows.sizes());
  TORCH_CHECK(classes == 0 || rows.max().item<int64_t>() < layout.context_length,
              "deep text prompts: the official deep-prompt rows end at ", rows.max().item<int64_t>() + 1,
              ", beyond the context length ", layout.context_length);
  return rows;
}

torch::Tensor OverwriteDeepTextRows(const torch::Tensor& x, const torch::Tensor& rows, const torch::Tensor& prompt) {
  TORCH_CHECK(x.size(0) == rows.size(0), "deep text prompts: ", x.size(0), " sequences for ", rows.size(0),
              " classes");
  // The encoder may stop after the last EOT (length L' < 77). Rows at or beyond L' can reach
  // no pooled position through the causal mask, so leaving them out is exact. They are never
  // class-context rows (those precede the EOT); only the official offset can point there, and
  // it points at the same rows in every class.
  const torch::Tensor inside = rows < x.size(1);
  const torch::Tensor columns = inside.all(0).nonzero().squeeze(1);
  TORCH_CHECK(inside.sum().item<int64_t>() == columns.numel() * rows.size(0),
              "deep text prompts: deep-prompt rows straddle the computed length ", x.size(1));
  const int64_t k = columns.numel();
  if (k == 0) return x;
  const int64_t classes = x.size(0), width = x.size(2);
  torch::Tensor selected = prompt.index_select(0, columns.to(prompt.device()));
  torch::Tensor index = rows.index_select(1, columns).to(x.device()).unsqueeze(-1).expand({classes, k, width});
  torch::Tensor source = selected.to(x.dtype()).unsqueeze(0).expand({classes, k, width}).contiguous();
  return x.scatter(1, index.contiguous(), source);
}

}  // namespace atp::prompt
