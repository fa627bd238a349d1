// Helpers shared by the CLIP tests: fixture paths, the vocabulary (tests skip without it),
// temporary files, and tiny model options.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "worker/clip/tokenizer.h"

namespace atp::clip::testing {

inline std::string FixturePath(const std::string& name) { return std::string(ATP_CLIP_FIXTURE_DIR) + "/" + name; }

// The real vocabulary, or nullptr (with the reason in *why) when it is not on this machine.
inline std::shared_ptr<const ClipTokenizer> RealTokenizer(std::string* why) {
  static std::shared_ptr<const ClipTokenizer> cached;
  static std::string cached_why;
  static bool tried = false;
  if (!tried) {
    tried = true;
    auto path = ResolveVocabPath("");
    if (!path.ok()) {
      cached_why = path.status().message();
    } else {
      auto tok = ClipTokenizer::Load(*path);
      if (tok.ok()) cached = *tok;
      else cached_why = tok.status().message();
    }
  }
  *why = cached_why;
  return cached;
}

// A directory under the system temp dir, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "atp_clip_test_XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  void Write(const std::string& name, const std::string& contents) const {
    std::ofstream(File(name), std::ios::binary) << contents;
  }

 private:
  std::string path_;
};

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace atp::clip::testing
