// The transductive base-to-novel protocol of PromptKD (docs/data.md, "Transductive
// distillation"): the student learns from every training image of every class with its label
// withheld, and is selected on the base half's test accuracy after each epoch, the novel half
// measured at the selected epoch. Pure functions and a small value type; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "worker/data/dataset.h"

namespace atp::data {

struct TransductiveSplits {
  // The whole train split of every class (NUM_SHOTS 0), labels set to kUnlabeled: nothing
  // downstream can learn from them by mistake.
  std::vector<Datum> unlabeled_train;
  std::vector<std::string> class_names;  // every class, by label (base first, then novel)
  int64_t num_base = 0;                  // ceil(n / 2), OxfordPets.subsample_classes
  std::vector<Datum> base_test;          // labels 0..num_base-1
  std::vector<Datum> novel_test;         // labels 0..n-num_base-1 (renumbered)
};

constexpr int kUnlabeled = -1;

// From a full split (ReadDataset): the official PromptKD datasets with TRAINER.MODAL
// base2novel (train_x = subsample 'all' of train, val = base test, test = novel test).
// Fails for a test-only dataset or one whose train split lacks some test class.
Result<TransductiveSplits> MakeTransductiveSplits(DatasetSplits full);

// Dassl's TEST.FINAL_MODEL "best_val": after each epoch the selection accuracy (here the
// base-class test accuracy); an epoch is kept when it is strictly better than every earlier
// one, so ties keep the earliest. Serialised into training checkpoints so a resumed run
// keeps its best.
struct BestEpoch {
  int64_t epoch = 0;       // 1-based; 0 = none yet
  double accuracy = -1;

  // Records epoch `epoch` (1-based) with `accuracy`; true when it becomes the best.
  bool Offer(int64_t epoch, double accuracy);
  Json ToJson() const;
  static Result<BestEpoch> FromJson(const Json& json);
};

}  // namespace atp::data
