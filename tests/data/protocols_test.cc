// The evaluation protocols' training and evaluation sets (docs/reference.md §6.5).
#include "tests/support/status_matchers.h"
#include "worker/data/protocols.h"

#include <gtest/gtest.h>

namespace atp::data {
namespace {

TEST(ProtocolsTest, BaseToNovelTrainsOnBaseAndTestsBothHalves) {
  auto p = PlanProtocol(*ParseEvalProtocol("base2novel"), "dtd");
  ASSERT_OK(p);
  EXPECT_EQ(p->train_dataset, "dtd");
  EXPECT_EQ(p->train_subset, ClassSubset::kBase);
  EXPECT_EQ(p->shots, 16);
  ASSERT_EQ(p->targets.size(), 2u);
  EXPECT_EQ(p->targets[1].subset, ClassSubset::kNew);
  EXPECT_FALSE(PlanProtocol(EvalProtocol::kBaseToNovel, "imagenet_a").ok());
  EXPECT_FALSE(PlanProtocol(EvalProtocol::kBaseToNovel, "cifar").ok());
}

TEST(ProtocolsTest, CrossDatasetTrainsOnAllImageNetClassesAndTestsTenDatasets) {
  auto p = PlanProtocol(EvalProtocol::kCrossDataset, "");
  ASSERT_OK(p);
  EXPECT_EQ(p->train_dataset, "imagenet");
  EXPECT_EQ(p->train_subset, ClassSubset::kAll);
  ASSERT_EQ(p->targets.size(), 11u);  // source + 10 targets
  int sources = 0;
  for (const auto& t : p->targets) {
    EXPECT_EQ(t.subset, ClassSubset::kAll);
    sources += t.source;
    EXPECT_NE(t.dataset, "imagenetv2");
  }
  EXPECT_EQ(sources, 1);
}

TEST(ProtocolsTest, DomainGeneralisationTestsTheFourVariants) {
  auto p = PlanProtocol(*ParseEvalProtocol("domain_generalization"), "ignored");
  ASSERT_OK(p);
  ASSERT_EQ(p->targets.size(), 5u);
  EXPECT_EQ(p->targets[1].dataset, "imagenetv2");
  EXPECT_EQ(p->targets[4].dataset, "imagenet_r");
  EXPECT_FALSE(ParseEvalProtocol("xd").ok());
}

}  // namespace
}  // namespace atp::data
