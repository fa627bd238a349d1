// Image decoding: JPEG (libjpeg-turbo) and PNG (libpng) files into 8-bit interleaved RGB,
// converted the way PIL's Image.open(...).convert("RGB") does, so that pixels match the
// official Python pipeline. Free functions; thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace atp::data {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes per pixel, size width * height * 3
};

// Largest accepted image, in pixels: PIL's decompression-bomb error threshold
// (2 * Image.MAX_IMAGE_PIXELS); larger files are rejected rather than decoded.
constexpr int64_t kMaxImagePixels = 2LL * 89478485LL;

// Decodes a JPEG or PNG file (format detected from its first bytes, not its name).
// Grayscale, CMYK/YCCK (Adobe-inverted) JPEGs, palette, gray+alpha, RGBA and 16-bit PNGs
// are converted to RGB (alpha is dropped, as PIL's convert("RGB") does; 16-bit samples keep
// their high byte). Truncated or corrupt data, unsupported formats and empty files are
// errors whose message names the file.
Result<Image> DecodeImageFile(const std::string& path);

// As DecodeImageFile, from bytes in memory; `name` is used in error messages only.
Result<Image> DecodeImageMemory(const uint8_t* data, size_t size, const std::string& name);

// Writes an 8-bit PNG (grayscale when `channels` is 1, RGB when 3). Used by the
// Fashion-MNIST importer and by tests that build image trees.
Status WritePngFile(const std::string& path, int width, int height, int channels,
                    const uint8_t* pixels);

// Writes a baseline JPEG from RGB pixels (quality 1..100). Used by tests and the bench.
Status WriteJpegFile(const std::string& path, const Image& image, int quality);

}  // namespace atp::data
