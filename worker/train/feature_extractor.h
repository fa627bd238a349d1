// Image features of a frozen, prompt-free CLIP image tower for a list of items, in item
// order, straight from the model or through a FeatureCache. Training views come from the
// counter-based augmentation, so (seed, epoch, item) fixes a view and its features can be
// shared by every job of a grid. Thread-compatible: one call per model at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "common/status.h"
#include "worker/data/dataset.h"
#include "worker/train/feature_cache.h"

// Declared, not included: clip_model.h brings all of torch/torch.h with it.
namespace atp::clip {
class Clip;
}  // namespace atp::clip

namespace atp::train {

struct ExtractOptions {
  int resolution = 224;        // must equal the model's input resolution
  bool train_augment = false;  // false: ClipTestTransform; true: TrainAugment(seed, epoch, i)
  uint64_t seed = 1;           // train_augment only
  int64_t epoch = 0;           // train_augment only; the epoch number the trainer's loader uses
  int64_t augment_index_offset = 0;  // train_augment only: items are samples offset.. of a longer list
  int batch_size = 64;         // does not change the features (beyond kernel non-determinism)
  int threads = 0;             // decode threads; 0 = all cores
  std::function<void(int64_t done, int64_t total)> progress;  // after each batch; may be empty
};

// Digest of the items' paths in order (labels and class names do not change a feature).
std::string ItemListDigest(const std::vector<atp::data::Datum>& items);

// "test R=224" or "train R=224 seed=1 epoch=3": the preprocessing part of a key.
std::string PreprocessingName(const ExtractOptions& options);

// The cache key of image features of `items` of `dataset` under a backbone digest.
FeatureKey ImageFeatureKey(const std::string& backbone_digest, const std::string& dataset,
                           const std::vector<atp::data::Datum>& items, const ExtractOptions& options);

// [N, embed] float32 unnormalised image features on the CPU, row i for items[i], computed
// without autograd on the model's device. Errors name the image that failed to decode.
Result<at::Tensor> ExtractImageFeatures(atp::clip::Clip& model, const std::string& data_root,
                                        const std::vector<atp::data::Datum>& items,
                                        const ExtractOptions& options);

// As ExtractImageFeatures, through `cache` (nullptr: no cache). A cold call returns exactly
// what it stored, so it equals every later warm call bit for bit. Only valid while the
// image tower has exactly the weights `backbone_digest` names (no fine-tuning, no visual
// prompts).
Result<at::Tensor> CachedImageFeatures(FeatureCache* cache, const std::string& backbone_digest,
                                       const std::string& dataset, atp::clip::Clip& model,
                                       const std::string& data_root,
                                       const std::vector<atp::data::Datum>& items,
                                       const ExtractOptions& options);

}  // namespace atp::train
