#include "worker/data/transforms.h"

#include <cmath>
#include <stdexcept>

#include <ATen/ATen.h>

#include "worker/data/resample.h"

namespace atp::data {

void ShortSideResize(int width, int height, int size, int* out_width, int* out_height) {
  if (width <= height) {
    *out_width = size;
    *out_height = static_cast<int>(static_cast<double>(size) * height / width);
  } else {
    *out_height = size;
    *out_width = static_cast<int>(static_cast<double>(size) * width / height);
  }
}

CropBox CenterCropBox(int width, int height, int size) {
  CropBox box;
  box.height = size;
  box.width = size;
  // std::nearbyint rounds half to even in the default rounding mode, as Python's round().
  box.top = static_cast<int>(std::nearbyint((height - size) / 2.0));
  box.left = static_cast<int>(std::nearbyint((width - size) / 2.0));
  return box;
}

CropBox RandomResizedCropBox(int width, int height, CounterRandom* rng, double scale_lo,
                             double scale_hi, double ratio_lo, double ratio_hi) {
  const double area = static_cast<double>(width) * height;
  const double log_lo = std::log(ratio_lo);
  const double log_hi = std::log(ratio_hi);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng->Uniform(scale_lo, scale_hi);
    const double aspect = std::exp(rng->Uniform(log_lo, log_hi));
    const int w = static_cast<int>(std::nearbyint(std::sqrt(target_area * aspect)));
    const int h = static_cast<int>(std::nearbyint(std::sqrt(target_area / aspect)));
    if (0 < w && w <= width && 0 < h && h <= height) {
      CropBox box;
      box.height = h;
      box.width = w;
      box.top = static_cast<int>(rng->Below(static_cast<uint64_t>(height - h + 1)));
      box.left = static_cast<int>(rng->Below(static_cast<uint64_t>(width - w + 1)));
      return box;
    }
  }
  const double in_ratio = static_cast<double>(width) / height;
  CropBox box;
  if (in_ratio < ratio_lo) {
    box.width = width;
    box.height = static_cast<int>(std::nearbyint(width / ratio_lo));
  } else if (in_ratio > ratio_hi) {
    box.height = height;
    box.width = static_cast<int>(std::nearbyint(height * ratio_hi));
  } else {
    box.width = width;
    box.height = height;
  }
  box.top = (height - box.height) / 2;
  box.left = (width - box.width) / 2;
  return box;
}

AugmentParams DrawAugmentParams(int width, int height, uint64_t seed, int64_t epoch,
                                int64_t sample_index) {
  CounterRandom rng(seed, RandomDomain::kAugment, static_cast<uint64_t>(epoch),
                    static_cast<uint64_t>(sample_index));
  AugmentParams p;
  p.box = RandomResizedCropBox(width, height, &rng);
  p.flip = rng.NextDouble() < 0.5;
  return p;
}

Image ClipTestImage(const Image& image, int resolution) {
  if (resolution <= 0) throw std::invalid_argument("ClipTestImage: resolution must be positive");
  int w, h;
  ShortSideResize(image.width, image.height, resolution, &w, &h);
  const Image resized = ResizeBicubic(image, w, h);
  const CropBox box = CenterCropBox(w, h, resolution);
  if (box.left == 0 && box.top == 0 && w == resolution && h == resolution) return resized;
  return Crop(resized, box.left, box.top, box.width, box.height);
}

Image TrainAugmentImage(const Image& image, int resolution, const AugmentParams& params) {
  if (resolution <= 0) throw std::invalid_argument("TrainAugmentImage: resolution must be positive");
  const Image crop = Crop(image, params.box.left, params.box.top, params.box.width,
                          params.box.height);
  Image out = ResizeBicubic(crop, resolution, resolution);
  if (params.flip) FlipHorizontal(&out);
  return out;
}

void NormalizeInto(const Image& square, float* out) {
  float lut[3][256];
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) lut[c][v] = (static_cast<float>(v) / 255.0f - kClipMean[c]) / kClipStd[c];
  }
  const size_t plane = static_cast<size_t>(square.width) * square.height;
  const uint8_t* p = square.rgb.data();
  for (size_t i = 0; i < plane; ++i, p += 3) {
    out[i] = lut[0][p[0]];
    out[plane + i] = lut[1][p[1]];
    out[2 * plane + i] = lut[2][p[2]];
  }
}

namespace {
at::Tensor ToTensor(const Image& square) {
  at::Tensor t = at::empty({3, square.height, square.width}, at::kFloat);
  NormalizeInto(square, t.data_ptr<float>());
  return t;
}
}  // namespace

at::Tensor ClipTestTransform(const Image& image, int resolution) {
  return ToTensor(ClipTestImage(image, resolution));
}

at::Tensor TrainAugment(const Image& image, int resolution, uint64_t seed, int64_t epoch,
                        int64_t sample_index) {
  const AugmentParams p = DrawAugmentParams(image.width, image.height, seed, epoch, sample_index);
  return ToTensor(TrainAugmentImage(image, resolution, p));
}

}  // namespace atp::data
