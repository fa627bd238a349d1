// Helpers shared by the pretraining tests: temporary folders, and a small Fashion-MNIST data
// root imported once per test binary from Debian's dataset-fashion-mnist (tests that need it
// skip when the package is not installed).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "worker/data/fashion_mnist.h"
#include "tests/support/temp_dir.h"

namespace atp::pretrain::testing {

using ::atp::testing::TempDir;

// A data root with the first `kImportPerClass` images of each class from each idx file
// (24 train, 6 val and 30 test images per class), or "" with the reason in *why.
inline constexpr int kImportPerClass = 30;
inline std::string SmallFashionMnistRoot(std::string* why) {
  static TempDir dir;  // removed at exit; every test of the binary shares it
  static const std::string error = [] {
    std::error_code ec;
    if (!std::filesystem::is_directory(data::kFashionMnistDebianDir, ec)) {
      return std::string(data::kFashionMnistDebianDir) +
             " is missing (install Debian's dataset-fashion-mnist package, as the installer does)";
    }
    data::FashionMnistImportOptions o;
    o.out_root = dir.path();
    o.max_per_class = kImportPerClass;
    auto summary = data::ImportFashionMnist(o);
    return summary.ok() ? std::string() : "importing Fashion-MNIST failed: " + summary.status().message();
  }();
  *why = error;
  return error.empty() ? dir.path() : "";
}

}  // namespace atp::pretrain::testing
