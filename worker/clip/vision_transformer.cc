#include "worker/clip/vision_transformer.h"

#include <cmath>
#include <optional>

namespace atp::clip {

VisionTransformerImpl::VisionTransformerImpl(const VisionTransformerOptions& o) : options(o) {
  TORCH_CHECK(o.input_resolution() % o.patch_size() == 0, "input resolution ", o.input_resolution(),
              " is not a multiple of the patch size ", o.patch_size());
  const int64_t grid = o.input_resolution() / o.patch_size();
  const double scale = 1.0 / std::sqrt(static_cast<double>(o.width()));
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, o.width(), o.patch_size())
                                                         .stride(o.patch_size())
                                                         .bias(false)));
  class_embedding = register_parameter("class_embedding", scale * torch::randn({o.width()}));
  positional_embedding =
      register_parameter("positional_embedding", scale * torch::randn({grid * grid + 1, o.width()}));
  auto ln = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.width()}).eps(1e-5)); };
  ln_pre = register_module("ln_pre", ln());
  transformer = register_module("transformer", Transformer(TransformerOptions(o.width(), o.layers(), o.heads())));
  ln_post = register_module("ln_post", ln());
  proj = register_parameter("proj", scale * torch::randn({o.width(), o.output_dim()}));
}

bool VisionTransformerImpl::AnyParameterRequiresGrad() const {
  for (const auto& p : parameters()) {
    if (p.requires_grad()) return true;
  }
  return false;
}

torch::Tensor VisionTransformerImpl::EmbedPatches(const torch::Tensor& pixels) {
  TORCH_CHECK(pixels.dim() == 4 && pixels.size(1) == 3 && pixels.size(2) == options.input_resolution() &&
                  pixels.size(3) == options.input_resolution(),
              "image tower expects pixels [N, 3, ", options.input_resolution(), ", ", options.input_resolution(),
              "], got ", pixels.sizes());
  torch::Tensor x = conv1(pixels);                 // [N, W, G, G]
  x = x.flatten(2).transpose(1, 2);                // [N, G², W]
  torch::Tensor cls = class_embedding.to(x.dtype()).expand({x.size(0), 1, x.size(2)});
  x = torch::cat({cls, x}, 1);
  return x + positional_embedding.to(x.dtype());
}

torch::Tensor VisionTransformerImpl::EncodeTokens(const torch::Tensor& tokens, const LayerHook& hook) {
  torch::Tensor x = transformer(ln_pre(tokens), torch::Tensor(), hook);
  return torch::matmul(ln_post(x.select(1, 0)), proj);
}

torch::Tensor VisionTransformerImpl::forward(const torch::Tensor& pixels, const LayerHook& hook) {
  std::optional<torch::NoGradGuard> no_grad;
  if (!hook && !pixels.requires_grad() && !AnyParameterRequiresGrad()) no_grad.emplace();
  return EncodeTokens(EmbedPatches(pixels), hook);
}

}  // namespace atp::clip
