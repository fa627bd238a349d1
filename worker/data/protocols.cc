#include "worker/data/protocols.h"

#include "worker/data/dataset.h"

namespace atp::data {

Result<EvalProtocol> ParseEvalProtocol(const std::string& text) {
  if (text == "base2novel") return EvalProtocol::kBaseToNovel;
  if (text == "cross_dataset") return EvalProtocol::kCrossDataset;
  if (text == "domain_generalization") return EvalProtocol::kDomainGeneralization;
  return InvalidArgument("protocol '" + text +
                         "' is not one of base2novel, cross_dataset, domain_generalization");
}

const char* EvalProtocolName(EvalProtocol protocol) {
  switch (protocol) {
    case EvalProtocol::kBaseToNovel: return "base2novel";
    case EvalProtocol::kCrossDataset: return "cross_dataset";
    case EvalProtocol::kDomainGeneralization: return "domain_generalization";
  }
  return "?";
}

Result<ProtocolPlan> PlanProtocol(EvalProtocol protocol, const std::string& dataset) {
  ProtocolPlan plan;
  switch (protocol) {
    case EvalProtocol::kBaseToNovel: {
      const DatasetLayout* layout = FindLayout(dataset);
      if (layout == nullptr) return InvalidArgument("unknown dataset '" + dataset + "'");
      if (layout->test_only) {
        return InvalidArgument(dataset + " is an evaluation-only dataset; base-to-novel needs a "
                               "dataset with a training split");
      }
      plan.train_dataset = dataset;
      plan.train_subset = ClassSubset::kBase;
      plan.targets = {{dataset, ClassSubset::kBase, true}, {dataset, ClassSubset::kNew, true}};
      return plan;
    }
    case EvalProtocol::kCrossDataset:
    case EvalProtocol::kDomainGeneralization: {
      plan.train_dataset = "imagenet";
      plan.train_subset = ClassSubset::kAll;
      plan.targets.push_back({"imagenet", ClassSubset::kAll, true});
      for (const auto& l : AllLayouts()) {
        if (l.name == "imagenet" || l.name == "fashion_mnist") continue;
        const bool wanted = protocol == EvalProtocol::kCrossDataset ? !l.test_only : l.test_only;
        if (wanted) plan.targets.push_back({l.name, ClassSubset::kAll, false});
      }
      return plan;
    }
  }
  return InvalidArgument("unknown protocol");
}

}  // namespace atp::data
