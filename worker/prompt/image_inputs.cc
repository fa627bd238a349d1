#include "worker/prompt/image_inputs.h"

#include <algorithm>
#include <cstdio>
#include <optional>

#include "worker/train/feature_cache.h"
#include "worker/train/feature_extractor.h"
#include "worker/train/gradient_sync.h"

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
  extract.train_augment = train && options_.augment;
  extract.seed = options_.seed;
  extract.epoch = epoch;
  extract.batch_size = options_.batch_size;
  extract.threads = options_.threads;
  extract.progress = on_progress;
  const torch::Device device = clip_->token_embedding->weight.device();
  if (sync_ == nullptr || sync_->size() == 1) {
    ATP_ASSIGN_OR_RETURN(torch::Tensor features,
                         train::CachedImageFeatures(cache_, options_.backbone_digest, options_.dataset, clip_,
                                                    options_.data_root, items, extract));
    return features.to(device);
  }
  return SharedFeatures(items, extract, device);
}

Result<torch::Tensor> ImageInputs::SharedFeatures(const std::vector<data::Datum>& items,
                                                  train::ExtractOptions extract, torch::Device device) {
  // The ranks first agree on whether every one of them finds the features in the cache (a
  // rank that finds them while another does not must not skip the collective that follows).
  std::optional<train::FeatureKey> key;
  torch::Tensor cached;
  if (cache_ != nullptr) {
    if (options_.backbone_digest.empty()) return InvalidArgument("cached image features need the backbone's digest");
    key = train::ImageFeatureKey(options_.backbone_digest, options_.dataset, items, extract);
    auto got = cache_->Get(*key);  // an unreadable entry counts as a miss: it is recomputed
    if (got.ok() && got->has_value()) cached = **got;
  }
  const auto float_on_device = torch::TensorOptions().dtype(torch::kFloat).device(device);
  std::vector<torch::Tensor> misses = {torch::full({1}, cached.defined() ? 0.0 : 1.0, float_on_device)};
  ATP_RETURN_IF_ERROR(sync_->AllreduceSum(misses));
  if (misses[0].item<float>() == 0) return cached.to(device);

  // Each rank runs the image tower on its contiguous share of the rows; its share's training
  // views are those of the whole list (the augmentation is keyed by the sample's position).
  // Summing over ranks, where every row has one non-zero addend, gives every rank every row
  // exactly; chunks bound the size of one collective.
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t embed = clip_->options.vision.output_dim();
  const int64_t k = sync_->size(), r = sync_->rank();
  const int64_t begin = n * r / k, end = n * (r + 1) / k;
  std::vector<data::Datum> share(items.begin() + begin, items.begin() + end);
  extract.augment_index_offset = begin;
  ATP_ASSIGN_OR_RETURN(torch::Tensor mine, train::ExtractImageFeatures(clip_, options_.data_root, share, extract));
  torch::Tensor all = torch::zeros({n, embed}, float_on_device);
  all.narrow(0, begin, end - begin).copy_(mine);
  const int64_t rows_per_collective = std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(1, embed));
  for (int64_t row = 0; row < n; row += rows_per_collective) {
    std::vector<torch::Tensor> chunk = {all.narrow(0, row, std::min(rows_per_collective, n - row))};
    ATP_RETURN_IF_ERROR(sync_->AllreduceSum(chunk));
  }
  // What every rank trains on is what the cache holds, so a later warm job equals this one.
  if (key && r == 0) {
    Status stored = cache_->Put(*key, all.to(torch::kCPU).contiguous());
    if (!stored.ok()) std::fprintf(stderr, "[atp] feature cache: %s\n", stored.ToString().c_str());
  }
  return all;
}

}  // namespace atp::prompt
