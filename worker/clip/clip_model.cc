#include "worker/clip/clip_model.h"

#include <cmath>
#include <set>
#include <sstream>

namespace atp::clip {
namespace {

bool StartsWith(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool EndsWith(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

void AddBlockShapes(const std::string& prefix, int64_t width, int64_t layers, TensorShapes* out) {
  for (int64_t i = 0; i < layers; ++i) {
    const std::string p = prefix + "resblocks." + std::to_string(i) + ".";
    (*out)[p + "ln_1.weight"] = {width};
    (*out)[p + "ln_1.bias"] = {width};
    (*out)[p + "attn.in_proj_weight"] = {3 * width, width};
    (*out)[p + "attn.in_proj_bias"] = {3 * width};
    (*out)[p + "attn.out_proj.weight"] = {width, width};
    (*out)[p + "attn.out_proj.bias"] = {width};
    (*out)[p + "ln_2.weight"] = {width};
    (*out)[p + "ln_2.bias"] = {width};
    (*out)[p + "mlp.c_fc.weight"] = {4 * width, width};
    (*out)[p + "mlp.c_fc.bias"] = {4 * width};
    (*out)[p + "mlp.c_proj.weight"] = {width, 4 * width};
    (*out)[p + "mlp.c_proj.bias"] = {width};
  }
}

}  // namespace

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string ClipOptions::ToString() const {
  std::ostringstream s;
  s << "ViT width " << vision.width() << ", " << vision.layers() << " layers, " << vision.heads() << " heads, patch "
    << vision.patch_size() << ", resolution " << vision.input_resolution() << " | text width " << text.width()
    << ", " << text.layers() << " layers, " << text.heads() << " heads, context " << text.context_length()
    << ", vocabulary " << text.vocab_size() << " | embed " << text.embed_dim();
  return s.str();
}

Result<ClipOptions> InferClipOptions(const TensorShapes& shapes, const std::string& source) {
  auto shape_of = [&](const std::string& key) -> const std::vector<int64_t>* {
    auto it = shapes.find(key);
    return it == shapes.end() ? nullptr : &it->second;
  };
  if (shape_of("visual.layer1.0.conv1.weight") != nullptr || shape_of("visual.attnpool.positional_embedding") != nullptr) {
    return InvalidArgument(source +
                           ": this is a ResNet CLIP checkpoint (it has visual.layer1.* / visual.attnpool.*); atp "
                           "supports the ViT CLIPs only (ViT-B/32, ViT-B/16, ViT-L/14)");
  }
  // The reference decides ViT iff visual.proj exists; the rest of the keys must be there too.
  const char* required[] = {"visual.proj",          "visual.conv1.weight", "visual.positional_embedding",
                            "text_projection",      "positional_embedding", "token_embedding.weight",
                            "ln_final.weight"};
  std::vector<std::string> absent;
  for (const char* k : required) {
    if (shape_of(k) == nullptr) absent.push_back(k);
  }
  if (!absent.empty()) {
    std::string msg = source + ": not a CLIP ViT checkpoint; missing ";
    for (size_t i = 0; i < absent.size(); ++i) msg += (i ? ", " : "") + absent[i];
    msg += ". It holds " + std::to_string(shapes.size()) + " tensors";
    int shown = 0;
    for (const auto& [k, s] : shapes) {
      if (shown++ == 5) {
        msg += ", ...";
        break;
      }
      msg += (shown == 1 ? ": " : ", ") + k + " " + ShapeString(s);
    }
    return InvalidArgument(msg);
  }
  auto need_rank = [&](const std::string& key, size_t rank) -> Status {
    if (shape_of(key)->size() != rank) {
      return InvalidArgument(source + ": tensor " + key + " has shape " + ShapeString(*shape_of(key)) +
                             ", expected " + std::to_string(rank) + " dimensions");
    }
    return Status::Ok();
  };
  ATP_RETURN_IF_ERROR(need_rank("visual.conv1.weight", 4));
  ATP_RETURN_IF_ERROR(need_rank("visual.positional_embedding", 2));
  ATP_RETURN_IF_ERROR(need_rank("visual.proj", 2));
  ATP_RETURN_IF_ERROR(need_rank("text_projection", 2));
  ATP_RETURN_IF_ERROR(need_rank("positional_embedding", 2));
  ATP_RETURN_IF_ERROR(need_rank("token_embedding.weight", 2));
  ATP_RETURN_IF_ERROR(need_rank("ln_final.weight", 1));

  ClipOptions o;
  const auto& conv = *shape_of("visual.conv1.weight");
  int64_t vision_layers = 0;
  std::set<std::string> text_blocks;
  for (const auto& [k, s] : shapes) {
    if (StartsWith(k, "visual.") && EndsWith(k, ".attn.in_proj_weight")) ++vision_layers;
    if (StartsWith(k, "transformer.resblocks")) {
      // The third dot-separated component, as the reference counts layers.
      size_t a = k.find('.');
      size_t b = k.find('.', a + 1);
      size_t c = k.find('.', b + 1);
      if (b != std::string::npos) text_blocks.insert(k.substr(b + 1, c == std::string::npos ? c : c - b - 1));
    }
  }
  const int64_t width = conv[0];
  const int64_t patch = conv[3];
  const int64_t grid = std::llround(std::sqrt(static_cast<double>((*shape_of("visual.positional_embedding"))[0] - 1)));
  o.vision.width(width).layers(vision_layers).patch_size(patch).input_resolution(patch * grid).heads(width / 64);
  o.vision.output_dim((*shape_of("text_projection"))[1]);
  const int64_t text_width = (*shape_of("ln_final.weight"))[0];
  o.text.width(text_width)
      .heads(text_width / 64)
      .layers(static_cast<int64_t>(text_blocks.size()))
      .context_length((*shape_of("positional_embedding"))[0])
      .vocab_size((*shape_of("token_embedding.weight"))[0])
      .embed_dim((*shape_of("text_projection"))[1]);
  if (width < 64 || text_width < 64 || width % 64 != 0 || text_width % 64 != 0) {
    return InvalidArgument(source + ": widths must be multiples of 64 (heads are width/64); vision width " +
                           std::to_string(width) + ", text width " + std::to_string(text_width));
  }
  if (vision_layers == 0 || text_blocks.empty()) {
    return InvalidArgument(source + ": no transformer blocks found (visual.transformer.resblocks.* / transformer.resblocks.*)");
  }
  return o;
}

TensorShapes ExpectedClipShapes(const ClipOptions& o) {
  TensorShapes s;
  const int64_t w = o.vision.width(), grid = o.vision.input_resolution() / o.vision.patch_size();
  s["visual.conv1.weight"] = {w, 3, o.vision.patch_size(), o.vision.patch_size()};
  s["visual.class_embedding"] = {w};
  s["visual.positional_embedding"] = {grid * grid + 1, w};
  s["visual.ln_pre.weight"] = {w};
  s["visual.ln_pre.bias"] = {w};
  AddBlockShapes("visual.transformer.", w, o.vision.layers(), &s);
  s["visual.ln_post.weight"] = {w};
  s["visual.ln_post.bias"] = {w};
  s["visual.proj"] = {w, o.vision.output_dim()};
  const int64_t t = o.text.width();
  s["token_embedding.weight"] = {o.text.vocab_size(), t};
  s["positional_embedding"] = {o.text.context_length(), t};
  AddBlockShapes("transformer.", t, o.text.layers(), &s);
  s["ln_final.weight"] = {t};
  s["ln_final.bias"] = {t};
  s["text_projection"] = {t, o.text.embed_dim()};
  s["logit_scale"] = {};
  return s;
}

ClipImpl::ClipImpl(const ClipOptions& o) : options(o) {
  visual = register_module("visual", VisionTransformer(o.vision));
  text_ = TextEncoder(o.text);
  token_embedding = register_module("token_embedding", text_->token_embedding);
  positional_embedding = register_parameter("positional_embedding", text_->positional_embedding);
  transformer = register_module("transformer", text_->transformer);
  ln_final = register_module("ln_final", text_->ln_final);
  text_projection = register_parameter("text_projection", text_->text_projection);
  logit_scale = register_parameter("logit_scale", torch::full({}, std::log(1.0 / 0.07)));
}

torch::Tensor ClipImpl::EncodeImage(const torch::Tensor& pixels, const LayerHook& hook) {
  return visual->forward(pixels, hook);
}

torch::Tensor ClipImpl::EncodeText(const torch::Tensor& ids) { return text_->forward(ids); }

torch::Tensor ClipImpl::EncodeTextEmbeddings(const torch::Tensor& embeddings, const torch::Tensor& eot,
                                             const LayerHook& hook, bool stop_after_last_eot,
                                             const SharedPrefix& shared) {
  return text_->EncodeEmbeddings(embeddings, eot, hook, stop_after_last_eot, shared);
}

torch::Tensor ClipImpl::Logits(const torch::Tensor& image_features, const torch::Tensor& text_features) {
  auto img = image_features / image_features.norm(2, -1, true);
  auto txt = text_features / text_features.norm(2, -1, true);
  return logit_scale.exp() * torch::matmul(img, txt.t());
}

}  // namespace atp::clip
