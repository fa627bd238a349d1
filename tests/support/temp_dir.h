// TempDir: a fresh directory under the system temp dir for one test, removed with the object
// (whatever the test left in it). Every test binary uses this one.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace atp::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "atp_test_XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::system_error(errno, std::generic_category(), pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& relative) const { return path_ + "/" + relative; }
  std::string operator/(const std::string& relative) const { return File(relative); }

  // Writes `contents` to File(relative), creating the folders on the way.
  void Write(const std::string& relative, const std::string& contents) const {
    std::filesystem::create_directories(std::filesystem::path(File(relative)).parent_path());
    std::ofstream(File(relative), std::ios::binary) << contents;
  }

 private:
  std::string path_;
};

}  // namespace atp::testing
