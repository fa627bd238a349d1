#include "tools/reporting/seed_statistics.h"

#include <gtest/gtest.h>

#include <cmath>

namespace atp {
namespace {

TEST(SeedStatisticsTest, StudentQuantileMatchesPublishedTables) {
  // Two-sided 95% critical values of Student's t (any statistics textbook's table).
  EXPECT_NEAR(StudentT975(1), 12.706, 1e-3);
  EXPECT_NEAR(StudentT975(4), 2.776, 1e-3);
  EXPECT_NEAR(StudentT975(9), 2.262, 1e-3);
  EXPECT_NEAR(StudentT975(30), 2.042, 1e-3);
  // Beyond the table the expansion takes over, continuing it smoothly.
  EXPECT_NEAR(StudentT975(40), 2.021, 1e-3);
  EXPECT_NEAR(StudentT975(60), 2.000, 1e-3);
  EXPECT_NEAR(StudentT975(120), 1.980, 1e-3);
  EXPECT_NEAR(StudentT975(100000), 1.960, 1e-3);
  EXPECT_LT(StudentT975(31), StudentT975(30));
  EXPECT_TRUE(std::isnan(StudentT975(0)));
}

TEST(SeedStatisticsTest, SummaryHasMeanSampleStdAndTInterval) {
  const SeedSummary s = SummarizeSeeds({1.0, 2.0, 3.0, 4.0, 5.0});
  EXPECT_EQ(s.n, 5);
  EXPECT_DOUBLE_EQ(*s.mean, 3.0);
  EXPECT_NEAR(*s.std, std::sqrt(2.5), 1e-12);  // sample (n - 1) standard deviation
  const double half = 2.7764 * std::sqrt(2.5) / std::sqrt(5.0);
  EXPECT_NEAR(*s.ci_low, 3.0 - half, 1e-9);
  EXPECT_NEAR(*s.ci_high, 3.0 + half, 1e-9);
  EXPECT_NEAR(*s.half_width(), half, 1e-9);
}

TEST(SeedStatisticsTest, OneSeedHasAMeanButNoSpreadOrInterval) {
  const SeedSummary one = SummarizeSeeds({7.5});
  EXPECT_DOUBLE_EQ(*one.mean, 7.5);
  EXPECT_FALSE(one.std.has_value());
  EXPECT_FALSE(one.ci_low.has_value());
  EXPECT_FALSE(one.half_width().has_value());
  const SeedSummary none = SummarizeSeeds({});
  EXPECT_EQ(none.n, 0);
  EXPECT_FALSE(none.mean.has_value());
}

}  // namespace
}  // namespace atp
