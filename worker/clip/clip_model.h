// The CLIP ViT model (OpenAI's clip/model.py CLIP class, ViT image towers only): the image
// tower under `visual.`, the text tower and logit_scale at the top level, so that
// named_parameters() equals OpenAI's state-dict keys and loading is a name-for-name copy.
// Hyper-parameters come from the checkpoint's shapes exactly as the reference build_model
// infers them. Same threading rules as transformer.h.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/clip/text_encoder.h"
#include "worker/clip/vision_transformer.h"

namespace atp::clip {

struct ClipOptions {
  VisionTransformerOptions vision;
  TextEncoderOptions text;
  int64_t embed_dim() const { return text.embed_dim(); }
  std::string ToString() const;  // "ViT W=768 L=12 P=16 R=224 | text W=512 L=12 | embed 512"
};

using TensorShapes = std::map<std::string, std::vector<int64_t>>;

// "[3, 224, 224]": a shape as the error messages about checkpoints print it.
std::string ShapeString(const std::vector<int64_t>& shape);

// build_model's inference (widths, layers, heads = width/64, patch, grid, resolution,
// context, vocabulary, embed dim). `source` names the file in errors. ResNet checkpoints
// and state dicts that are not CLIP are rejected here.
Result<ClipOptions> InferClipOptions(const TensorShapes& shapes, const std::string& source);

// Every tensor a ViT CLIP with these options has, with its shape.
TensorShapes ExpectedClipShapes(const ClipOptions& options);

class ClipImpl : public torch::nn::Module {
 public:
  explicit ClipImpl(const ClipOptions& options);

  // pixels [N, 3, R, R] -> unnormalised image features [N, embed].
  torch::Tensor EncodeImage(const torch::Tensor& pixels, const LayerHook& hook = {});
  // ids [N, 77] -> unnormalised text features [N, embed] (the reference encode_text).
  torch::Tensor EncodeText(const torch::Tensor& ids);
  // See TextEncoderImpl::EncodeEmbeddings.
  torch::Tensor EncodeTextEmbeddings(const torch::Tensor& embeddings, const torch::Tensor& eot,
                                     const LayerHook& hook = {}, bool stop_after_last_eot = true,
                                     const SharedPrefix& shared = {});
  // exp(logit_scale) * normalised image features · normalised text featuresᵀ: [N_img, N_txt].
  torch::Tensor Logits(const torch::Tensor& image_features, const torch::Tensor& text_features);

  TextEncoder text() const { return text_; }

  ClipOptions options;
  VisionTransformer visual{nullptr};
  // The text tower's members, registered here under OpenAI's names (shared with text_).
  torch::nn::Embedding token_embedding{nullptr};
  torch::Tensor positional_embedding;
  Transformer transformer{nullptr};
  torch::nn::LayerNorm ln_final{nullptr};
  torch::Tensor text_projection;
  torch::Tensor logit_scale;  // 0-dim; log of the scale

 private:
  TextEncoder text_{nullptr};
};
TORCH_MODULE(Clip);

}  // namespace atp::clip
