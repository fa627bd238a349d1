#include "worker/data/transductive.h"

#include <set>

#include "worker/data/fewshot.h"

namespace atp::data {

Result<TransductiveSplits> MakeTransductiveSplits(DatasetSplits full) {
  const DatasetLayout* layout = FindLayout(full.name);
  if (layout != nullptr && layout->test_only) {
    return InvalidArgument(full.name + " is an evaluation-only dataset; transductive distillation needs its "
                           "training images");
  }
  if (full.train.empty()) return InvalidArgument(full.name + " (" + full.split_file + ") has no training images");
  TransductiveSplits out;
  out.class_names = ClassNamesByLabel(full.train);
  std::set<int> train_labels;
  for (const auto& d : full.train) train_labels.insert(d.label);
  for (const auto& d : full.test) {
    if (!train_labels.count(d.label)) {
      return InvalidArgument(full.name + " (" + full.split_file + "): test class " + std::to_string(d.label) +
                             " ('" + d.classname + "') has no training image; the student distils over every "
                             "class of the train split");
    }
  }
  const int64_t n = static_cast<int64_t>(out.class_names.size());
  out.num_base = (n + 1) / 2;
  // Base and novel tests exactly as the subsampled protocol makes them (labels renumbered).
  // (The class list comes from lists[0], the train split, as in the official code.)
  std::vector<Datum> base_test = full.test, novel_test = full.test;
  {
    std::vector<Datum> train = full.train, val;
    SubsampleClasses(ClassSubset::kBase, {&train, &val, &base_test});
    train = full.train;
    SubsampleClasses(ClassSubset::kNew, {&train, &val, &novel_test});
  }
  out.base_test = std::move(base_test);
  out.novel_test = std::move(novel_test);
  out.unlabeled_train = std::move(full.train);
  for (auto& d : out.unlabeled_train) d.label = kUnlabeled;
  return out;
}

bool BestEpoch::Offer(int64_t at_epoch, double at_accuracy) {
  if (epoch > 0 && !(at_accuracy > accuracy)) return false;
  epoch = at_epoch;
  accuracy = at_accuracy;
  return true;
}

Json BestEpoch::ToJson() const { return Json{{"epoch", epoch}, {"accuracy", accuracy}}; }

Result<BestEpoch> BestEpoch::FromJson(const Json& json) {
  if (!json.is_object() || !json.contains("epoch") || !json.contains("accuracy") ||
      !json["epoch"].is_number_integer() || !json["accuracy"].is_number()) {
    return InvalidArgument("best-epoch record must be {\"epoch\": int, \"accuracy\": number}, got " + json.dump());
  }
  BestEpoch best;
  best.epoch = json["epoch"].get<int64_t>();
  best.accuracy = json["accuracy"].get<double>();
  return best;
}

}  // namespace atp::data
