// Reading and writing NumPy .npy files (format versions 1.0-3.0): little-endian float32,
// float16 and uint8, C order. Used by `atp clip encode` for preprocessed pixels in and
// features out, and by tests for reference fixtures. No libtorch; thread-safe (no state).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace atp::clip {

enum class NpyDtype { kFloat32, kFloat16, kUint8 };

struct NpyArray {
  NpyDtype dtype = NpyDtype::kFloat32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // raw little-endian element data, C order

  int64_t numel() const;
  // Every element converted to float32 (exact for all three dtypes).
  std::vector<float> ToFloat32() const;
};

// Errors name the file and what is unsupported (big-endian, Fortran order, other dtypes,
// a header or data shorter than announced).
Result<NpyArray> ReadNpy(const std::string& path);
Result<NpyArray> ParseNpy(const std::string& contents, const std::string& name_for_errors);

// Writes a float32 array in format 1.0.
Status WriteNpyFloat32(const std::string& path, const std::vector<int64_t>& shape, const float* data);

float HalfToFloat(uint16_t h);

}  // namespace atp::clip
