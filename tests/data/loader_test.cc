// DataLoader: batches equal the single-image transforms, and order and augmentation are the
// same whatever the thread count and batch size; decode failures stop the epoch with the
// file's name instead of dropping the image.
#include "worker/data/loader.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <algorithm>
#include <map>

#include "tests/data/test_util.h"
#include "tests/support/status_matchers.h"
#include "worker/data/transforms.h"

namespace atp::data {
namespace {

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 11; ++i) {
      const std::string rel = "set/c" + std::to_string(i % 3) + "/img" + std::to_string(i) + ".jpg";
      testing::WritePatternJpeg(dir_ / rel, 40 + 7 * i, 30 + 5 * (i % 4), i);
      items_.push_back(Datum{rel, i % 3, "c" + std::to_string(i % 3)});
    }
  }

  // item index -> its image tensor, over one epoch.
  std::map<int64_t, at::Tensor> RunEpoch(LoaderOptions o, int64_t epoch,
                                         std::vector<int64_t>* order = nullptr) {
    DataLoader loader(dir_.path(), items_, o);
    loader.StartEpoch(epoch);
    std::map<int64_t, at::Tensor> out;
    Batch b;
    while (true) {
      auto more = loader.Next(&b);
      EXPECT_OK(more);
      if (!more.ok() || !*more) break;
      EXPECT_EQ(b.images.size(0), b.labels.size(0));
      for (int64_t i = 0; i < b.images.size(0); ++i) {
        const int64_t item = b.item_indices[i];
        EXPECT_EQ(b.labels[i].item<int64_t>(), items_[item].label);
        out[item] = b.images[i].clone();
        if (order) order->push_back(item);
      }
    }
    return out;
  }

  testing::TempDir dir_;
  std::vector<Datum> items_;
};

TEST_F(LoaderTest, TestModeKeepsListOrderAndMatchesClipTestTransform) {
  LoaderOptions o;
  o.resolution = 16;
  o.batch_size = 4;
  o.threads = 3;
  std::vector<int64_t> order;
  auto got = RunEpoch(o, 0, &order);
  ASSERT_EQ(got.size(), items_.size());
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], static_cast<int64_t>(i));
  for (size_t i = 0; i < items_.size(); ++i) {
    auto img = DecodeImageFile(dir_ / items_[i].path);
    ASSERT_OK(img);
    EXPECT_TRUE(at::equal(got[i], ClipTestTransform(*img, 16))) << i;
  }
}

TEST_F(LoaderTest, TrainEpochIsTheSameForAnyThreadCountAndBatchSize) {
  LoaderOptions o;
  o.resolution = 16;
  o.train = true;
  o.seed = 3;
  o.batch_size = 4;
  o.threads = 1;
  std::vector<int64_t> order1, order4;
  auto one = RunEpoch(o, 2, &order1);
  o.threads = 4;
  o.prefetch_batches = 1;
  auto four = RunEpoch(o, 2, &order4);
  EXPECT_EQ(order1, order4);
  o.batch_size = 3;
  o.threads = 2;
  auto other_batch = RunEpoch(o, 2);
  ASSERT_EQ(one.size(), items_.size());
  for (const auto& [item, t] : one) {
    EXPECT_TRUE(at::equal(t, four[item])) << item;
    EXPECT_TRUE(at::equal(t, other_batch[item])) << item;
    auto img = DecodeImageFile(dir_ / items_[item].path);
    EXPECT_TRUE(at::equal(t, TrainAugment(*img, 16, 3, 2, item))) << item;
  }
}

TEST_F(LoaderTest, EpochOrderIsASeededPermutationThatChangesPerEpoch) {
  LoaderOptions o;
  o.train = true;
  o.seed = 9;
  DataLoader loader(dir_.path(), items_, o);
  auto e0 = loader.EpochOrder(0), e1 = loader.EpochOrder(1);
  EXPECT_NE(e0, e1);
  EXPECT_EQ(e0, loader.EpochOrder(0));
  std::sort(e1.begin(), e1.end());
  for (size_t i = 0; i < e1.size(); ++i) EXPECT_EQ(e1[i], static_cast<int64_t>(i));
  o.seed = 10;
  EXPECT_NE(DataLoader(dir_.path(), items_, o).EpochOrder(0), e0);
}

TEST_F(LoaderTest, DropLastFollowsTheOfficialRule) {
  EXPECT_TRUE(OfficialDropLast(11, 4));
  EXPECT_FALSE(OfficialDropLast(3, 4));
  LoaderOptions o;
  o.batch_size = 4;
  o.drop_last = true;
  o.train = true;
  o.resolution = 8;
  DataLoader loader(dir_.path(), items_, o);
  EXPECT_EQ(loader.BatchesPerEpoch(), 2);
  EXPECT_EQ(RunEpoch(o, 0).size(), 8u);
  o.drop_last = false;
  EXPECT_EQ(DataLoader(dir_.path(), items_, o).BatchesPerEpoch(), 3);
}

TEST_F(LoaderTest, UndecodableImageEndsTheEpochWithItsName) {
  testing::WriteText(dir_ / items_[5].path, "not an image");
  LoaderOptions o;
  o.batch_size = 2;
  o.resolution = 8;
  o.threads = 2;
  DataLoader loader(dir_.path(), items_, o);
  loader.StartEpoch(0);
  Batch b;
  Status error;
  int batches = 0;
  while (true) {
    auto more = loader.Next(&b);
    if (!more.ok()) {
      error = more.status();
      break;
    }
    if (!*more) break;
    ++batches;
  }
  EXPECT_EQ(batches, 2);  // batches 0 and 1; batch 2 holds item 5
  EXPECT_NE(error.message().find(items_[5].path), std::string::npos) << error.ToString();
  auto after = loader.Next(&b);
  ASSERT_OK(after);
  EXPECT_FALSE(*after);
  // A new epoch can start after a failure (e.g. once the file is fixed).
  testing::WritePatternJpeg(dir_ / items_[5].path, 20, 20, 0);
  loader.StartEpoch(1);
  auto first = loader.Next(&b);
  ASSERT_OK(first);
  EXPECT_TRUE(*first);
}

TEST_F(LoaderTest, NextBeforeStartEpochIsAnError) {
  DataLoader loader(dir_.path(), items_, LoaderOptions{});
  Batch b;
  EXPECT_FALSE(loader.Next(&b).ok());
}

}  // namespace
}  // namespace atp::data
