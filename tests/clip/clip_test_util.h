// Helpers shared by the CLIP tests: fixture paths, the vocabulary (tests skip without it),
// temporary files, and tiny model options.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "worker/clip/tokenizer.h"
#include "tests/support/temp_dir.h"

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

using ::atp::testing::TempDir;

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace atp::clip::testing
