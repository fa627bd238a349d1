// The datasets atp knows by name: the 11 base-to-novel datasets of the paper, the four
// ImageNet variants used for domain generalisation, and Fashion-MNIST (shipped by Debian,
// used by the demo and the tests). Immutable; thread-safe.
#pragma once

#include <string>
#include <vector>

namespace atp {

struct DatasetInfo {
  std::string name;          // the name used in sweeps and on the command line
  std::string display_name;  // as printed in the paper's tables
  bool test_only = false;    // ImageNet variants: evaluation targets only
};

const std::vector<DatasetInfo>& AllDatasets();
const DatasetInfo* FindDataset(const std::string& name);
std::string DatasetNamesList();

}  // namespace atp
