#include "worker/clip/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "common/atomic_file.h"

namespace atp::clip {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

size_t ElementSize(NpyDtype d) {
  switch (d) {
    case NpyDtype::kFloat32: return 4;
    case NpyDtype::kFloat16: return 2;
    case NpyDtype::kUint8: return 1;
  }
  return 1;
}

// Extracts the value text of 'key' from the header dict, e.g. "'<f4'" or "(2, 3)".
bool HeaderValue(const std::string& header, const std::string& key, std::string* value) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) return false;
  size_t colon = header.find(':', k);
  if (colon == std::string::npos) return false;
  size_t b = header.find_first_not_of(' ', colon + 1);
  if (b == std::string::npos) return false;
  size_t e;
  if (header[b] == '(') {
    e = header.find(')', b);
    if (e == std::string::npos) return false;
    ++e;
  } else if (header[b] == '\'' || header[b] == '"') {
    e = header.find(header[b], b + 1);
    if (e == std::string::npos) return false;
    ++e;
  } else {
    e = header.find_first_of(",}", b);
    if (e == std::string::npos) return false;
  }
  *value = header.substr(b, e - b);
  return true;
}

}  // namespace

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3FF) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000 | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

std::vector<float> NpyArray::ToFloat32() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    switch (dtype) {
      case NpyDtype::kFloat32: std::memcpy(&out[i], &bytes[4 * i], 4); break;
      case NpyDtype::kFloat16: {
        uint16_t h = static_cast<uint16_t>(bytes[2 * i] | (bytes[2 * i + 1] << 8));
        out[i] = HalfToFloat(h);
        break;
      }
      case NpyDtype::kUint8: out[i] = static_cast<float>(bytes[i]); break;
    }
  }
  return out;
}

Result<NpyArray> ParseNpy(const std::string& c, const std::string& name) {
  auto bad = [&](const std::string& why) { return InvalidArgument(name + ": " + why); };
  if (c.size() < 10 || c.compare(0, 6, kMagic, 6) != 0) return bad("not a .npy file (no \\x93NUMPY magic)");
  int major = static_cast<unsigned char>(c[6]);
  size_t header_len, header_at;
  if (major == 1) {
    header_len = static_cast<unsigned char>(c[8]) | (static_cast<unsigned char>(c[9]) << 8);
    header_at = 10;
  } else if (major == 2 || major == 3) {
    if (c.size() < 12) return bad("truncated .npy header");
    header_len = 0;
    for (int i = 3; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(c[8 + i]);
    header_at = 12;
  } else {
    return bad(".npy format version " + std::to_string(major) + " is not supported");
  }
  if (c.size() < header_at + header_len) return bad("truncated .npy header");
  std::string header = c.substr(header_at, header_len);
  std::string descr, fortran, shape_text;
  if (!HeaderValue(header, "descr", &descr) || !HeaderValue(header, "fortran_order", &fortran) ||
      !HeaderValue(header, "shape", &shape_text)) {
    return bad("malformed .npy header: " + header);
  }
  NpyArray a;
  if (descr == "'<f4'") a.dtype = NpyDtype::kFloat32;
  else if (descr == "'<f2'") a.dtype = NpyDtype::kFloat16;
  else if (descr == "'|u1'" || descr == "'<u1'") a.dtype = NpyDtype::kUint8;
  else return bad("dtype " + descr + " is not supported; use little-endian float32, float16 or uint8");
  if (fortran != "False") return bad("Fortran-ordered arrays are not supported; save with np.ascontiguousarray");
  std::string dims = shape_text.substr(1, shape_text.size() - 2);
  std::stringstream ss(dims);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t b = item.find_first_not_of(' ');
    if (b == std::string::npos) continue;
    try {
      long long d = std::stoll(item.substr(b));
      if (d < 0) return bad("negative dimension in shape " + shape_text);
      a.shape.push_back(d);
    } catch (const std::exception&) {
      return bad("malformed shape " + shape_text);
    }
  }
  size_t data_at = header_at + header_len;
  size_t need = static_cast<size_t>(a.numel()) * ElementSize(a.dtype);
  if (c.size() - data_at < need) {
    return bad("data is " + std::to_string(c.size() - data_at) + " bytes, shape " + shape_text + " needs " +
               std::to_string(need) + " (truncated file?)");
  }
  a.bytes.assign(c.begin() + static_cast<std::ptrdiff_t>(data_at),
                 c.begin() + static_cast<std::ptrdiff_t>(data_at + need));
  return a;
}

Result<NpyArray> ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseNpy(ss.str(), path);
}

Status WriteNpyFloat32(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  std::string shape_text = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    shape_text += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) shape_text += ",";
    if (i + 1 < shape.size()) shape_text += " ";
  }
  shape_text += ")";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_text + ", }";
  // Pad with spaces so that the data starts on a 64-byte boundary, ending in '\n'.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::string prefix(kMagic, 6);
  prefix += {'\x01', '\x00', static_cast<char>(header.size() & 0xFF), static_cast<char>(header.size() >> 8)};
  prefix += header;
  return WriteFileAtomically(path, {prefix, std::string_view(reinterpret_cast<const char*>(data),
                                                             static_cast<size_t>(n) * 4)});
}

}  // namespace atp::clip
