// `atp data check`: validates a dataset under a data root and lists every problem: split
// entries that are malformed or point outside the root, missing or undecodable images, class
// counts and names that differ from what the dataset defines. Thread-safe; decodes images on
// `threads` threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace atp::data {

struct CheckOptions {
  std::string root;
  std::string dataset;
  int threads = 0;      // 0 = all cores
  bool decode = true;   // false: only check that each image file exists
};

struct CheckReport {
  std::vector<std::string> problems;  // one line each, naming the file
  int64_t train = 0, val = 0, test = 0;
  int64_t images_checked = 0;         // distinct image files
  int classes = 0;
  bool ok() const { return problems.empty(); }
};

// Fails only when the split cannot be read at all (unknown dataset, missing split file);
// everything else is reported in the CheckReport.
Result<CheckReport> CheckDataset(const CheckOptions& options);

}  // namespace atp::data
