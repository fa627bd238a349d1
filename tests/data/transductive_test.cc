// PromptKD's transductive protocol: every train image, labels withheld, base/novel tests as
// the subsampled protocol makes them; Dassl's best_val selection rule.
#include "worker/data/transductive.h"

#include <gtest/gtest.h>

#include "tests/support/status_matchers.h"

namespace atp::data {
namespace {

DatasetSplits FiveClasses() {
  DatasetSplits s;
  s.name = "fashion_mnist";
  s.split_file = "split.json";
  const char* names[] = {"a", "b", "c", "d", "e"};
  for (int label = 0; label < 5; ++label) {
    for (int i = 0; i < 3 + label; ++i) s.train.push_back({"train/" + std::to_string(label) + "_" + std::to_string(i), label, names[label]});
    for (int i = 0; i < 2; ++i) s.test.push_back({"test/" + std::to_string(label) + "_" + std::to_string(i), label, names[label]});
  }
  return s;
}

TEST(TransductiveTest, TrainsOnEveryTrainImageWithItsLabelWithheld) {
  auto splits = MakeTransductiveSplits(FiveClasses());
  ASSERT_OK(splits);
  EXPECT_EQ(splits->unlabeled_train.size(), 3u + 4 + 5 + 6 + 7);
  for (const auto& d : splits->unlabeled_train) EXPECT_EQ(d.label, kUnlabeled) << d.path;
  EXPECT_EQ(splits->class_names, (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(splits->num_base, 3);
}

TEST(TransductiveTest, BaseAndNovelTestsAreTheSubsampledHalvesRenumbered) {
  auto splits = MakeTransductiveSplits(FiveClasses());
  ASSERT_OK(splits);
  ASSERT_EQ(splits->base_test.size(), 6u);
  ASSERT_EQ(splits->novel_test.size(), 4u);
  EXPECT_EQ(splits->base_test.front().classname, "a");
  EXPECT_EQ(splits->base_test.back().label, 2);
  EXPECT_EQ(splits->novel_test.front().classname, "d");
  EXPECT_EQ(splits->novel_test.front().label, 0);
  EXPECT_EQ(splits->novel_test.back().classname, "e");
  EXPECT_EQ(splits->novel_test.back().label, 1);
}

TEST(TransductiveTest, RefusesATestClassWithoutTrainingImages) {
  DatasetSplits s = FiveClasses();
  s.test.push_back({"test/x", 7, "x"});
  auto splits = MakeTransductiveSplits(s);
  ASSERT_FALSE(splits.ok());
  EXPECT_NE(splits.status().message().find("'x'"), std::string::npos) << splits.status().message();
  EXPECT_NE(splits.status().message().find("split.json"), std::string::npos);
}

TEST(TransductiveTest, RefusesATestOnlyDataset) {
  DatasetSplits s = FiveClasses();
  s.name = "imagenet_a";
  EXPECT_FALSE(MakeTransductiveSplits(s).ok());
}

TEST(BestEpochTest, KeepsTheEarliestStrictlyBestEpoch) {
  BestEpoch best;
  EXPECT_TRUE(best.Offer(1, 50));
  EXPECT_TRUE(best.Offer(2, 60));
  EXPECT_FALSE(best.Offer(3, 60));  // a tie keeps epoch 2 (Dassl: curr_result > best_result)
  EXPECT_FALSE(best.Offer(4, 55));
  EXPECT_EQ(best.epoch, 2);
  EXPECT_DOUBLE_EQ(best.accuracy, 60);
  EXPECT_TRUE(best.Offer(5, 0.0 + 61));
  EXPECT_EQ(best.epoch, 5);
}

TEST(BestEpochTest, AFirstEpochAtZeroAccuracyIsStillKept) {
  BestEpoch best;
  EXPECT_TRUE(best.Offer(1, 0));
  EXPECT_EQ(best.epoch, 1);
}

TEST(BestEpochTest, RoundTripsThroughJsonAndRefusesAMalformedRecord) {
  BestEpoch best;
  best.Offer(3, 71.25);
  auto back = BestEpoch::FromJson(best.ToJson());
  ASSERT_OK(back);
  EXPECT_EQ(back->epoch, 3);
  EXPECT_DOUBLE_EQ(back->accuracy, 71.25);
  EXPECT_FALSE(BestEpoch::FromJson(Json{{"epoch", "3"}}).ok());
}

}  // namespace
}  // namespace atp::data
