// The image transforms of the official configs (Dassl build_transform, CLIP preprocessing):
// the test transform (short side to R with PIL bicubic, centre crop, /255, CLIP mean/std) and
// the training augmentation (torchvision RandomResizedCrop with scale (0.08, 1) and ratio
// (3/4, 4/3), PIL bicubic to R x R, horizontal flip with p = 0.5, then the same
// normalisation). Augmentation randomness comes from CounterRandom keyed by
// (seed, epoch, sample index), so a sample's view is the same whatever the thread count,
// batch size or method. Free functions; thread-safe.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "worker/data/augment_random.h"
#include "worker/data/image.h"

namespace atp::data {

// OpenAI CLIP's normalisation constants (every config overrides Dassl's ImageNet ones).
inline constexpr float kClipMean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
inline constexpr float kClipStd[3] = {0.26862954f, 0.26130258f, 0.27577711f};

struct CropBox {
  int top = 0;
  int left = 0;
  int height = 0;
  int width = 0;
};

struct AugmentParams {
  CropBox box;
  bool flip = false;
};

// torchvision Resize(size) on a width x height image: the short side becomes `size`, the
// long side int(size * long / short).
void ShortSideResize(int width, int height, int size, int* out_width, int* out_height);

// torchvision CenterCrop(size): offsets round((dim - size) / 2) with round-half-to-even.
CropBox CenterCropBox(int width, int height, int size);

// torchvision RandomResizedCrop.get_params: 10 tries of (area fraction in [scale_lo, scale_hi),
// log-uniform aspect ratio), then the central fallback with the aspect clamped.
CropBox RandomResizedCropBox(int width, int height, CounterRandom* rng,
                             double scale_lo = 0.08, double scale_hi = 1.0,
                             double ratio_lo = 3.0 / 4.0, double ratio_hi = 4.0 / 3.0);

// The crop box, then the flip coin, drawn from the (seed, epoch, sample_index) stream.
AugmentParams DrawAugmentParams(int width, int height, uint64_t seed, int64_t epoch,
                                int64_t sample_index);

// The 8-bit R x R images before normalisation (what PIL would hold before ToTensor).
Image ClipTestImage(const Image& image, int resolution);
Image TrainAugmentImage(const Image& image, int resolution, const AugmentParams& params);

// ToTensor + Normalize of an R x R image into `out` ([3, R, R] floats, channel-major), with
// torchvision's float32 arithmetic: (x / 255 - mean) / std.
void NormalizeInto(const Image& square, float* out);

// [3, R, R] float32 tensors, ready for the CLIP image tower.
at::Tensor ClipTestTransform(const Image& image, int resolution);
at::Tensor TrainAugment(const Image& image, int resolution, uint64_t seed, int64_t epoch,
                        int64_t sample_index);

}  // namespace atp::data
