#include "worker/train/feature_extractor.h"

#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "tests/clip/hash_weights.h"
#include "tests/support/status_matchers.h"
#include "worker/clip/clip_checkpoint.h"
#include "worker/clip/clip_model.h"
#include "worker/data/image.h"
#include "worker/data/loader.h"
#include "worker/data/transforms.h"
#include "tests/support/temp_dir.h"

namespace atp::train {
namespace {

namespace fs = std::filesystem;
using atp::data::Datum;

using ::atp::testing::TempDir;

bool BitEqual(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return false;
  at::Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

// A tiny CLIP (16x16 input, 32-d features) with deterministic weights, and a data root with
// seven small images of different sizes and aspect ratios (PNG and JPEG), so that crops,
// flips and a partial last batch all occur.
class FeatureExtractorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = atp::clip::ClipFromStateDict(atp::clip::testing::HashStateDict(atp::clip::testing::TinyOptions()),
                                              "tiny");
    ASSERT_OK(model);
    model_ = *model;
    model_->eval();
    const int sizes[][2] = {{23, 17}, {40, 40}, {17, 31}, {50, 20}, {16, 16}, {33, 29}, {64, 48}};
    int n = 0;
    for (const auto& wh : sizes) {
      atp::data::Image im;
      im.width = wh[0];
      im.height = wh[1];
      im.rgb.resize(static_cast<size_t>(im.width) * im.height * 3);
      for (size_t i = 0; i < im.rgb.size(); ++i) im.rgb[i] = static_cast<uint8_t>((i * 37 + n * 91 + (i / 7) * 13) % 256);
      fs::create_directories(root_ + "/ds/images");
      Datum d;
      d.label = n % 3;
      d.classname = "class" + std::to_string(d.label);
      if (n % 2 == 0) {
        d.path = "ds/images/" + std::to_string(n) + ".png";
        ASSERT_OK(atp::data::WritePngFile(root_ + "/" + d.path, im.width, im.height, 3, im.rgb.data()));
      } else {
        d.path = "ds/images/" + std::to_string(n) + ".jpg";
        ASSERT_OK(atp::data::WriteJpegFile(root_ + "/" + d.path, im, 90));
      }
      items_.push_back(d);
      ++n;
    }
  }

  ExtractOptions Options(bool train, int batch_size) const {
    ExtractOptions o;
    o.resolution = 16;
    o.train_augment = train;
    o.seed = 5;
    o.epoch = 2;
    o.batch_size = batch_size;
    o.threads = 2;
    return o;
  }

  // The image tower on each item alone, through the transforms directly (no loader).
  torch::Tensor PerItemFeatures(bool train, uint64_t seed, int64_t epoch) {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> rows;
    for (size_t i = 0; i < items_.size(); ++i) {
      auto image = atp::data::DecodeImageFile(root_ + "/" + items_[i].path);
      EXPECT_OK(image);
      torch::Tensor pixels = train ? atp::data::TrainAugment(*image, 16, seed, epoch, static_cast<int64_t>(i))
                                   : atp::data::ClipTestTransform(*image, 16);
      rows.push_back(model_->EncodeImage(pixels.unsqueeze(0)));
    }
    return torch::cat(rows);
  }

  TempDir tmp_;
  std::string root_ = tmp_ / "data";
  std::string cache_dir_ = tmp_ / "cache";
  std::vector<Datum> items_;
  atp::clip::Clip model_{nullptr};
  const std::string backbone_ = std::string(64, 'b');
};

TEST_F(FeatureExtractorTest, TestFeaturesEqualTheModelOnTheLoadersBatches) {
  auto features = ExtractImageFeatures(model_, root_, items_, Options(false, 3));
  ASSERT_OK(features);
  EXPECT_EQ(features->sizes().vec(), (std::vector<int64_t>{7, 32}));

  atp::data::LoaderOptions lo;
  lo.resolution = 16;
  lo.batch_size = 3;
  lo.threads = 1;
  atp::data::DataLoader loader(root_, items_, lo);
  loader.StartEpoch(0);
  atp::data::Batch batch;
  std::vector<torch::Tensor> parts;
  torch::NoGradGuard no_grad;
  while (*loader.Next(&batch)) parts.push_back(model_->EncodeImage(batch.images));
  EXPECT_TRUE(BitEqual(*features, torch::cat(parts)));
  EXPECT_TRUE(torch::allclose(*features, PerItemFeatures(false, 0, 0), 1e-5, 1e-5));
}

TEST_F(FeatureExtractorTest, TrainFeaturesAreInItemOrderAndMatchPerItemAugmentation) {
  // A shuffled loader with a partial last batch (7 = 3 + 3 + 1).
  auto features = ExtractImageFeatures(model_, root_, items_, Options(true, 3));
  ASSERT_OK(features);

  // The loader's batches placed by item index are exactly what the extractor returns.
  atp::data::LoaderOptions lo;
  lo.resolution = 16;
  lo.batch_size = 3;
  lo.train = true;
  lo.seed = 5;
  lo.threads = 1;
  atp::data::DataLoader loader(root_, items_, lo);
  loader.StartEpoch(2);
  torch::Tensor placed = torch::zeros({7, 32});
  atp::data::Batch batch;
  {
    torch::NoGradGuard no_grad;
    while (*loader.Next(&batch)) {
      placed.index_copy_(0, torch::tensor(batch.item_indices, torch::kLong), model_->EncodeImage(batch.images));
    }
  }
  EXPECT_TRUE(BitEqual(*features, placed));

  const torch::Tensor per_item = PerItemFeatures(true, 5, 2);
  EXPECT_TRUE(torch::allclose(*features, per_item, 1e-5, 1e-5))
      << "max difference " << (*features - per_item).abs().max().item<float>();
  // Another epoch is another view.
  EXPECT_FALSE(torch::allclose(*features, PerItemFeatures(true, 5, 3), 1e-3, 1e-3));
}

TEST_F(FeatureExtractorTest, TrainFeaturesThroughTheCacheAreIdenticalAcrossBatchSizes) {
  FeatureCache cache(cache_dir_, 0);
  auto cold = CachedImageFeatures(&cache, backbone_, "ds", model_, root_, items_, Options(true, 2));
  auto warm = CachedImageFeatures(&cache, backbone_, "ds", model_, root_, items_, Options(true, 5));
  ASSERT_OK(cold);
  ASSERT_OK(warm);
  EXPECT_TRUE(BitEqual(*cold, *warm));
  EXPECT_EQ(cache.stats().misses, 1);
  EXPECT_EQ(cache.stats().hits, 1);
  EXPECT_TRUE(torch::allclose(*warm, PerItemFeatures(true, 5, 2), 1e-5, 1e-5));

  // Another job (a fresh cache object on the same directory) reads the same bits.
  FeatureCache other(cache_dir_, 0);
  auto again = CachedImageFeatures(&other, backbone_, "ds", model_, root_, items_, Options(true, 7));
  ASSERT_OK(again);
  EXPECT_TRUE(BitEqual(*again, *cold));
  EXPECT_EQ(other.stats().hits, 1);
}

TEST_F(FeatureExtractorTest, ColdCallEqualsWarmCallBitForBit) {
  FeatureCache cache(cache_dir_, 0);
  auto direct = ExtractImageFeatures(model_, root_, items_, Options(false, 4));
  auto cold = CachedImageFeatures(&cache, backbone_, "ds", model_, root_, items_, Options(false, 4));
  auto warm = CachedImageFeatures(&cache, backbone_, "ds", model_, root_, items_, Options(false, 4));
  ASSERT_OK(direct);
  ASSERT_OK(cold);
  ASSERT_OK(warm);
  EXPECT_TRUE(BitEqual(*cold, *warm));
  EXPECT_TRUE(BitEqual(*cold, *direct));
  EXPECT_EQ(cache.stats().puts, 1);
}

TEST_F(FeatureExtractorTest, KeysSeparateWhatChangesFeaturesAndOnlyThat) {
  ExtractOptions test = Options(false, 4);
  ExtractOptions test_other = test;
  test_other.seed = 9;
  test_other.epoch = 7;
  test_other.batch_size = 1;
  test_other.threads = 1;
  // The test transform ignores seed and epoch; batch size and threads never matter.
  EXPECT_EQ(PreprocessingName(test), "test R=16");
  EXPECT_EQ(ImageFeatureKey(backbone_, "ds", items_, test).Digest(),
            ImageFeatureKey(backbone_, "ds", items_, test_other).Digest());
  EXPECT_EQ(PreprocessingName(Options(true, 4)), "train R=16 seed=5 epoch=2");

  ExtractOptions epoch3 = Options(true, 4);
  epoch3.epoch = 3;
  std::vector<Datum> reordered(items_.rbegin(), items_.rend());
  std::vector<Datum> relabelled = items_;
  relabelled[0].label = 2;
  const std::string base = ImageFeatureKey(backbone_, "ds", items_, Options(true, 4)).Digest();
  EXPECT_NE(base, ImageFeatureKey(backbone_, "ds", items_, epoch3).Digest());
  EXPECT_NE(base, ImageFeatureKey(backbone_, "ds", items_, test).Digest());
  EXPECT_NE(base, ImageFeatureKey(backbone_, "ds", reordered, Options(true, 4)).Digest());
  EXPECT_NE(base, ImageFeatureKey(std::string(64, 'c'), "ds", items_, Options(true, 4)).Digest());
  EXPECT_NE(base, ImageFeatureKey(backbone_, "other", items_, Options(true, 4)).Digest());
  EXPECT_EQ(base, ImageFeatureKey(backbone_, "ds", relabelled, Options(true, 4)).Digest());
}

TEST_F(FeatureExtractorTest, WithoutACacheFeaturesAreComputed) {
  auto direct = ExtractImageFeatures(model_, root_, items_, Options(true, 3));
  auto uncached = CachedImageFeatures(nullptr, "", "ds", model_, root_, items_, Options(true, 3));
  ASSERT_OK(direct);
  ASSERT_OK(uncached);
  EXPECT_TRUE(BitEqual(*direct, *uncached));
}

TEST_F(FeatureExtractorTest, ProgressReachesTheItemCount) {
  ExtractOptions o = Options(true, 3);
  std::vector<int64_t> seen;
  o.progress = [&](int64_t done, int64_t total) {
    EXPECT_EQ(total, 7);
    seen.push_back(done);
  };
  ASSERT_OK(ExtractImageFeatures(model_, root_, items_, o));
  EXPECT_EQ(seen, (std::vector<int64_t>{3, 6, 7}));
}

TEST_F(FeatureExtractorTest, UnreadableImageIsAnErrorNamingItAndNothingIsCached) {
  std::vector<Datum> items = items_;
  items.push_back({"ds/images/missing.png", 0, "class0"});
  FeatureCache cache(cache_dir_, 0);
  auto features = CachedImageFeatures(&cache, backbone_, "ds", model_, root_, items, Options(false, 4));
  ASSERT_FALSE(features.ok());
  EXPECT_NE(features.status().message().find("missing.png"), std::string::npos) << features.status().ToString();
  EXPECT_EQ(cache.stats().puts, 0);
  EXPECT_FALSE(fs::exists(cache.EntryPath(ImageFeatureKey(backbone_, "ds", items, Options(false, 4)))));
}

TEST_F(FeatureExtractorTest, WrongResolutionIsRejected) {
  ExtractOptions o = Options(false, 4);
  o.resolution = 224;
  auto features = ExtractImageFeatures(model_, root_, items_, o);
  ASSERT_FALSE(features.ok());
  EXPECT_EQ(features.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(features.status().message().find("16"), std::string::npos);
}

TEST_F(FeatureExtractorTest, EmptyItemListGivesNoRows) {
  auto features = ExtractImageFeatures(model_, root_, {}, Options(true, 4));
  ASSERT_OK(features);
  EXPECT_EQ(features->sizes().vec(), (std::vector<int64_t>{0, 32}));
}

}  // namespace
}  // namespace atp::train
