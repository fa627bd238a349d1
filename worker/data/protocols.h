// The paper's evaluation protocols (docs/reference.md §6.5) as data: which dataset, classes and
// shots a protocol trains on and which (dataset, classes) pairs it evaluates the trained prompt
// on. Base-to-novel: train on the base half, test on base and on new. Cross-dataset: train on all
// 1000 ImageNet classes, test on the full test split of the 10 other datasets. Domain
// generalisation: the same ImageNet model on ImageNet and its four variants. Pure functions.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "worker/data/fewshot.h"

namespace atp::data {

enum class EvalProtocol { kBaseToNovel, kCrossDataset, kDomainGeneralization };

// "base2novel" | "cross_dataset" | "domain_generalization"
Result<EvalProtocol> ParseEvalProtocol(const std::string& text);
const char* EvalProtocolName(EvalProtocol protocol);

struct EvalTarget {
  std::string dataset;
  ClassSubset subset = ClassSubset::kAll;
  bool source = false;  // the training dataset itself (excluded from the paper's averages)
};

struct ProtocolPlan {
  std::string train_dataset;
  ClassSubset train_subset = ClassSubset::kAll;
  int shots = 16;
  std::vector<EvalTarget> targets;
};

// `dataset` is the dataset a base-to-novel run uses; the other protocols always train on
// ImageNet and ignore it. Evaluation uses every class of each target, the paper's protocol
// (the released CoOp cross-dataset script passes SUBSAMPLE new instead).
Result<ProtocolPlan> PlanProtocol(EvalProtocol protocol, const std::string& dataset);

}  // namespace atp::data
