#include "worker/prompt/image_inputs.h"

#include "worker/train/feature_cache.h"
#include "worker/train/feature_extractor.h"

namespace atp::prompt {

ImageInputs::ImageInputs(clip::Clip clip, ImageInputsOptions options, train::FeatureCache* cache,
                         train::GradientSync* sync)
    : clip_(std::move(clip)), options_(std::move(options)), cache_(cache), sync_(sync) {}

Result<torch::Tensor> ImageInputs::TestFeatures(const std::vector<data::Datum>& items) {
  return Features(items, /*train=*/false, 0);
}

Result<torch::Tensor> ImageInputs::TrainFeatures(const std::vector<data::Datum>& items, int64_t epoch) {
  return Features(items, /*train=*/true, epoch);
}

Result<torch::Tensor> ImageInputs::Features(const std::vector<data::Datum>& items, bool train, int64_t epoch) {
  train::ExtractOptions extract;
  extract.resolution = options_.resolution;
  extract.train_augment = train;
  extract.seed = options_.seed;
  extract.epoch = epoch;
  extract.batch_size = options_.batch_size;
  extract.threads = options_.threads;
  extract.progress = on_progress;
  // Every rank of a job reads (or computes) the whole tensor: the cache makes the second
  // rank's read cheap, and identical rows on every rank keep the ranks' steps identical.
  ATP_ASSIGN_OR_RETURN(torch::Tensor features,
                       train::CachedImageFeatures(cache_, options_.backbone_digest, options_.dataset, clip_,
                                                  options_.data_root, items, extract));
  return features.to(clip_->token_embedding->weight.device());
}

}  // namespace atp::prompt
