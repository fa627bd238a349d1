// Helpers shared by the data tests: a temporary directory, image and split-file builders,
// digests and fixture paths.
#pragma once

#include <openssl/evp.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/json.h"
#include "worker/data/image.h"
#include "tests/support/temp_dir.h"

namespace atp::data::testing {

inline std::string FixturePath(const std::string& name) {
  return std::string(ATP_DATA_FIXTURES) + "/" + name;
}

inline Json LoadFixture(const std::string& name) {
  std::ifstream in(FixturePath(name));
  return Json::parse(in);
}

using ::atp::testing::TempDir;

inline void WriteText(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline std::string Md5Hex(const std::vector<uint8_t>& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_md5(), nullptr);
  std::string hex;
  char buf[3];
  for (unsigned i = 0; i < len; ++i) {
    snprintf(buf, sizeof(buf), "%02x", digest[i]);
    hex += buf;
  }
  return hex;
}

// The deterministic pattern the PIL fixtures were made from (pil_expected.json "pattern").
inline Image Pattern(int w, int h, int seed) {
  Image im;
  im.width = w;
  im.height = h;
  im.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c) {
        int v = x * 37 + y * 91 + c * 53 + x * y * 7 + seed * 11 + (c == 1 ? (x ^ y) * 29 : 0);
        im.rgb[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<uint8_t>(v % 256);
      }
    }
  }
  return im;
}

// Writes a JPEG of the pattern at root/rel (directories created).
inline void WritePatternJpeg(const std::string& path, int w, int h, int seed) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  Status st = WriteJpegFile(path, Pattern(w, h, seed), 90);
  if (!st.ok()) throw std::runtime_error(st.ToString());
}

// A split_zhou JSON from (path, label, name) triples per part.
struct Entry {
  std::string path;
  int label;
  std::string name;
};
inline void WriteSplitJson(const std::string& file, const std::vector<Entry>& train,
                           const std::vector<Entry>& val, const std::vector<Entry>& test) {
  auto arr = [](const std::vector<Entry>& v) {
    Json a = Json::array();
    for (const auto& e : v) a.push_back(Json::array({e.path, e.label, e.name}));
    return a;
  };
  Json j;
  j["train"] = arr(train);
  j["val"] = arr(val);
  j["test"] = arr(test);
  WriteText(file, j.dump());
}

}  // namespace atp::data::testing
