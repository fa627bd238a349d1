// Fashion-MNIST importer: reads the idx files of Debian's `dataset-fashion-mnist` package and
// writes the dataset in atp's DATA layout: <out>/fashion_mnist/images/<class folder>/*.png and
// <out>/fashion_mnist/split_zhou_FashionMNIST.json with train/val/test lists of
// [path, label, class name]. Val is carved from the 60000 training images per class with
// CoOp's split_trainval rule (20% per class, random.shuffle with CPython's RNG seeded 1), so
// every import yields the same split. Not thread-safe for a shared output root.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"

namespace atp::data {

// Where Debian installs the idx files.
constexpr const char* kFashionMnistDebianDir = "/usr/share/datasets/fashion-mnist";

// The dataset's class names, by label (T-shirt/top, Trouser, ...).
const std::vector<std::string>& FashionMnistClassNames();

struct FashionMnistImportOptions {
  std::string source_dir = kFashionMnistDebianDir;
  std::string out_root;
  // 0 = all; otherwise only the first N images of each class from each idx file (tests).
  int max_per_class = 0;
  // After each image written: images written, images to write. May be empty.
  std::function<void(int64_t done, int64_t total)> progress;
};

struct FashionMnistImportSummary {
  int64_t train = 0, val = 0, test = 0;
  std::string split_file;  // absolute path of the written JSON
};

Result<FashionMnistImportSummary> ImportFashionMnist(const FashionMnistImportOptions& options);

// A gzip-compressed idx file (images: [n, rows, cols] uint8; labels: [n] uint8).
struct IdxArray {
  std::vector<int> dims;
  std::vector<uint8_t> data;
};
Result<IdxArray> ReadIdxGz(const std::string& path);

}  // namespace atp::data
