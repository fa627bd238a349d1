// ImageInputs: where a method's image-side inputs come from. For methods whose image tower is
// frozen and prompt-free, these are CLIP image features computed once per (backbone, dataset,
// item list, preprocessing) and shared through the on-disk feature cache by every job of a
// grid; training features are those of the counter-based augmentation of one epoch, so they
// are the same in every job with the same dataset, shots and seed. With k ranks each rank
// computes 1/k of the rows and the rows are summed across ranks (exact: all but one addend is
// zero). Not thread-safe; one per job.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/clip/clip_model.h"
#include "worker/data/dataset.h"

#include "worker/train/feature_extractor.h"

namespace atp::train {
class FeatureCache;
class GradientSync;
}  // namespace atp::train

namespace atp::prompt {

struct ImageInputsOptions {
  std::string data_root;
  std::string dataset;
  int resolution = 224;
  uint64_t seed = 1;
  int batch_size = 64;  // images per forward when extracting
  int threads = 0;
  std::string backbone_digest;  // identifies the weights in cache keys
  bool augment = true;  // false: training features are those of the test transform
};

class ImageInputs {
 public:
  // `cache` and `sync` may be null (no cache; one rank).
  ImageInputs(clip::Clip clip, ImageInputsOptions options, train::FeatureCache* cache, train::GradientSync* sync);

  // Unnormalised image features [N, embed] of `items` under the test transform, item order.
  Result<torch::Tensor> TestFeatures(const std::vector<data::Datum>& items);
  // Features of epoch `epoch`'s training augmentation of `items`, item order.
  Result<torch::Tensor> TrainFeatures(const std::vector<data::Datum>& items, int64_t epoch);

  // Progress of feature extraction (done, total images), for the job's progress line.
  std::function<void(int64_t done, int64_t total)> on_progress;

 private:
  Result<torch::Tensor> Features(const std::vector<data::Datum>& items, bool train, int64_t epoch);
  // k ranks: each computes 1/k of the rows, then a sum over ranks gives each all of them.
  Result<torch::Tensor> SharedFeatures(const std::vector<data::Datum>& items, train::ExtractOptions extract,
                                       torch::Device device);

  clip::Clip clip_;
  ImageInputsOptions options_;
  train::FeatureCache* cache_;
  train::GradientSync* sync_;
};

}  // namespace atp::prompt
