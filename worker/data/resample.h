// PIL-compatible image geometry on 8-bit RGB images: bicubic resampling that reproduces
// Pillow's Resample.c bit for bit (separable two-pass convolution, a = -0.5 cubic kernel
// whose support widens by the downscale factor, 22-bit fixed-point coefficients, 8-bit
// intermediate), and the crops and flip the transforms need. Free functions; thread-safe.
#pragma once

#include "worker/data/image.h"

namespace atp::data {

// PIL's Image.resize((out_width, out_height), Image.BICUBIC) of the whole image.
// Requires positive output sizes.
Image ResizeBicubic(const Image& src, int out_width, int out_height);

// The pixels [left, left + width) x [top, top + height) (PIL's crop; the region must lie
// inside the image).
Image Crop(const Image& src, int left, int top, int width, int height);

// Mirrors the image left-right in place.
void FlipHorizontal(Image* image);

}  // namespace atp::data
