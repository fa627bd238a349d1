#include "worker/train/feature_extractor.h"

#include <torch/torch.h>

#include "common/hash.h"
#include "common/json.h"
#include "worker/clip/clip_model.h"
#include "worker/data/loader.h"

namespace atp::train {

std::string ItemListDigest(const std::vector<atp::data::Datum>& items) {
  // A JSON array of the paths: unambiguous whatever characters a path holds.
  Json paths = Json::array();
  for (const auto& item : items) paths.push_back(item.path);
  return Sha256Hex(paths.dump());
}

std::string PreprocessingName(const ExtractOptions& options) {
  if (!options.train_augment) return "test R=" + std::to_string(options.resolution);
  std::string name = "train R=" + std::to_string(options.resolution) + " seed=" + std::to_string(options.seed) +
                     " epoch=" + std::to_string(options.epoch);
  if (options.augment_index_offset != 0) name += " first_sample=" + std::to_string(options.augment_index_offset);
  return name;
}

FeatureKey ImageFeatureKey(const std::string& backbone_digest, const std::string& dataset,
                           const std::vector<atp::data::Datum>& items, const ExtractOptions& options) {
  FeatureKey key;
  key.backbone = backbone_digest;
  key.dataset = dataset;
  key.items = ItemListDigest(items);
  key.num_items = static_cast<int64_t>(items.size());
  key.preprocessing = PreprocessingName(options);
  key.kind = "image";
  return key;
}

Result<at::Tensor> ExtractImageFeatures(atp::clip::Clip& model, const std::string& data_root,
                                        const std::vector<atp::data::Datum>& items,
                                        const ExtractOptions& options) {
  if (model.is_empty()) return InvalidArgument("ExtractImageFeatures: no model");
  const int64_t model_resolution = model->options.vision.input_resolution();
  if (options.resolution != model_resolution) {
    return InvalidArgument("image features at resolution " + std::to_string(options.resolution) +
                           " asked of a model whose input resolution is " + std::to_string(model_resolution));
  }
  if (options.batch_size < 1) {
    return InvalidArgument("image feature batch size must be >= 1, got " + std::to_string(options.batch_size));
  }
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t embed = model->options.vision.output_dim();
  at::Tensor out = at::empty({n, embed}, at::kFloat);
  if (n == 0) return out;

  try {
    torch::NoGradGuard no_grad;
    const auto params = model->parameters();
    const torch::Device device = params.empty() ? torch::Device(torch::kCPU) : params.front().device();

    atp::data::LoaderOptions loader_options;
    loader_options.resolution = options.resolution;
    loader_options.batch_size = options.batch_size;
    loader_options.train = options.train_augment;
    // Every item needs its row, so the trainer's drop-last rule does not apply here.
    loader_options.drop_last = false;
    loader_options.seed = options.seed;
    loader_options.augment_index_offset = options.augment_index_offset;
    loader_options.threads = options.threads;
    atp::data::DataLoader loader(data_root, items, loader_options);
    loader.StartEpoch(options.train_augment ? options.epoch : 0);

    std::vector<char> filled(static_cast<size_t>(n), 0);
    int64_t done = 0;
    atp::data::Batch batch;
    while (true) {
      ATP_ASSIGN_OR_RETURN(bool more, loader.Next(&batch));
      if (!more) break;
      const int64_t b = batch.images.size(0);
      torch::Tensor features =
          model->EncodeImage(batch.images.to(device)).to(torch::kCPU, torch::kFloat).contiguous();
      if (features.dim() != 2 || features.size(0) != b || features.size(1) != embed) {
        return Internal("the image tower returned features of shape " + c10::str(features.sizes()) +
                        " for a batch of " + std::to_string(b) + " (expected [" + std::to_string(b) + ", " +
                        std::to_string(embed) + "])");
      }
      // A shuffled (train) loader hands items out of order: place each row by its index.
      for (int64_t item : batch.item_indices) filled[static_cast<size_t>(item)] = 1;
      out.index_copy_(0, torch::tensor(batch.item_indices, torch::kLong), features);
      done += b;
      if (options.progress) options.progress(done, n);
    }
    for (int64_t i = 0; i < n; ++i) {
      if (!filled[static_cast<size_t>(i)]) {
        return Internal("the loader never produced item " + std::to_string(i) + " (" + items[i].path + ")");
      }
    }
  } catch (const std::exception& e) {
    return Internal(std::string("image feature extraction under ") + data_root + " failed: " + e.what());
  }
  return out;
}

Result<at::Tensor> CachedImageFeatures(FeatureCache* cache, const std::string& backbone_digest,
                                       const std::string& dataset, atp::clip::Clip& model,
                                       const std::string& data_root,
                                       const std::vector<atp::data::Datum>& items,
                                       const ExtractOptions& options) {
  if (cache == nullptr) return ExtractImageFeatures(model, data_root, items, options);
  if (backbone_digest.empty()) return InvalidArgument("cached image features need the backbone's digest");
  if (model.is_empty()) return InvalidArgument("CachedImageFeatures: no model");
  const FeatureKey key = ImageFeatureKey(backbone_digest, dataset, items, options);
  auto compute = [&]() { return ExtractImageFeatures(model, data_root, items, options); };
  ATP_ASSIGN_OR_RETURN(at::Tensor features, cache->GetOrCompute(key, compute));
  const int64_t embed = model->options.vision.output_dim();
  if (features.dim() != 2 || features.size(0) != static_cast<int64_t>(items.size()) || features.size(1) != embed) {
    // Only a digest that does not describe this model (the wrong checkpoint named) gets here:
    // recompute and replace the entry so that the next call agrees with this one.
    ATP_ASSIGN_OR_RETURN(features, ExtractImageFeatures(model, data_root, items, options));
    (void)cache->Put(key, features);
  }
  return features;
}

}  // namespace atp::train
