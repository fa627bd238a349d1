// ImageInputs with k ranks: each rank runs the image tower on its share of the rows only, every
// rank ends with all rows, the training views are those a single rank would draw, and what the
// ranks train on is what the feature cache then holds.
#include "worker/prompt/image_inputs.h"

#include <gtest/gtest.h>

#include <optional>
#include <thread>

#include "tests/prompt/prompt_test_util.h"
#include "tests/prompt/thread_allreduce.h"
#include "tests/support/status_matchers.h"
#include "worker/data/dataset.h"
#include "worker/train/feature_cache.h"
#include "worker/train/gradient_sync.h"

namespace atp::prompt {
namespace {

class ImageInputsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    root_ = testing::FashionMnistRoot(&why);
    if (root_.empty()) GTEST_SKIP() << "Fashion-MNIST not available: " << why;
    auto splits = data::ReadDataset(root_, "fashion_mnist");
    ASSERT_OK(splits);
    items_.assign(splits->train.begin(), splits->train.begin() + 21);  // 21 rows: uneven shares
    clip_ = testing::TinyClip();
    options_.data_root = root_;
    options_.dataset = "fashion_mnist";
    options_.resolution = 32;
    options_.seed = 3;
    options_.batch_size = 4;
    options_.threads = 1;
    options_.backbone_digest = "tiny-random-7";
  }

  struct RankRun {
    torch::Tensor train, test;
    int64_t extracted = 0;  // images this rank ran through the image tower
  };

  // Both kinds of features of items_ on `ranks` ranks played by threads.
  std::vector<RankRun> Run(int ranks, train::FeatureCache* cache) {
    std::vector<RankRun> runs(static_cast<size_t>(ranks));
    testing::ThreadAllreduce allreduce(ranks);
    std::vector<std::thread> threads;
    for (int rank = 0; rank < ranks; ++rank) {
      threads.emplace_back([&, rank] {
        train::RelayGradientSync sync([&](std::vector<double>* d) { return allreduce.Sum(d); }, rank, ranks);
        ImageInputs inputs(clip_, options_, cache, &sync);
        RankRun& run = runs[static_cast<size_t>(rank)];
        int64_t last_total = 0;
        inputs.on_progress = [&](int64_t done, int64_t total) {
          if (done == total) last_total += total;
        };
        auto train = inputs.TrainFeatures(items_, /*epoch=*/2);
        auto test = inputs.TestFeatures(items_);
        EXPECT_OK(train);
        EXPECT_OK(test);
        if (train.ok()) run.train = *train;
        if (test.ok()) run.test = *test;
        run.extracted = last_total;
      });
    }
    for (auto& t : threads) t.join();
    return runs;
  }

  std::string root_;
  std::vector<data::Datum> items_;
  clip::Clip clip_{nullptr};
  ImageInputsOptions options_;
};

TEST_F(ImageInputsTest, EachRankExtractsItsShareAndGetsEveryRow) {
  auto one = Run(1, nullptr);
  ASSERT_TRUE(one[0].train.defined() && one[0].test.defined());
  EXPECT_EQ(one[0].extracted, 2 * 21);
  auto three = Run(3, nullptr);
  for (int rank = 0; rank < 3; ++rank) {
    SCOPED_TRACE("rank " + std::to_string(rank));
    const RankRun& run = three[static_cast<size_t>(rank)];
    ASSERT_TRUE(run.train.defined() && run.test.defined());
    EXPECT_EQ(run.extracted, 2 * 7) << "each rank runs the tower on 7 of the 21 images, for each kind";
    // Every rank holds the same rows, bit for bit (each row has one non-zero addend).
    EXPECT_TRUE(torch::equal(run.train, three[0].train));
    EXPECT_TRUE(torch::equal(run.test, three[0].test));
    // The rows are those one rank computes: in particular rank 1 and 2's training views are
    // the augmentation draws of samples 7.. and 14.., not of 0.. (batches differ, so allclose).
    EXPECT_TRUE(torch::allclose(run.train, one[0].train, 1e-5, 1e-6))
        << "max difference " << (run.train - one[0].train).abs().max().item<double>();
    EXPECT_TRUE(torch::allclose(run.test, one[0].test, 1e-5, 1e-6));
  }
  // Different epochs are different views: the comparison above can fail.
  EXPECT_FALSE(torch::allclose(one[0].train, one[0].test, 1e-3, 1e-4));
}

TEST_F(ImageInputsTest, ColdRanksFillTheCacheWithWhatTheyUsed) {
  testing::TempDir dir;
  train::FeatureCache cache(dir.File("cache"), 0);
  auto cold = Run(2, &cache);
  ASSERT_TRUE(cold[0].train.defined());
  EXPECT_EQ(cold[0].extracted, 2 * 10) << "rank 0 runs the tower on rows 0..9 of each kind";
  EXPECT_EQ(cold[1].extracted, 2 * 11) << "rank 1 on rows 10..20";
  auto warm = Run(2, &cache);
  for (int rank = 0; rank < 2; ++rank) {
    const RankRun& run = warm[static_cast<size_t>(rank)];
    EXPECT_EQ(run.extracted, 0) << "a warm cache: no rank runs the image tower";
    EXPECT_TRUE(torch::equal(run.train, cold[static_cast<size_t>(rank)].train));
    EXPECT_TRUE(torch::equal(run.test, cold[static_cast<size_t>(rank)].test));
  }
  // A single rank reads the same entries.
  auto single = Run(1, &cache);
  EXPECT_EQ(single[0].extracted, 0);
  EXPECT_TRUE(torch::equal(single[0].train, cold[0].train));
}

}  // namespace
}  // namespace atp::prompt
