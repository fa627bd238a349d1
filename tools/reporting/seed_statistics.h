// SeedStatistics: what a set of per-seed results says: mean, sample standard deviation and
// the 95% confidence interval of the mean (Student's t, n - 1 degrees of freedom). Used for
// the spread of each table cell and for paired per-seed differences (method + ATPrompt minus
// method, seed by seed). Pure functions over values; thread-safe.
#pragma once

#include <optional>
#include <vector>

namespace atp {

// The 0.975 quantile of Student's t distribution with `df` degrees of freedom (df >= 1): a
// table for df <= 30, the Cornish-Fisher expansion beyond (error below 1e-4).
double StudentT975(int df);

struct SeedSummary {
  int n = 0;
  std::optional<double> mean;
  std::optional<double> std;                      // sample standard deviation; n >= 2
  std::optional<double> ci_low, ci_high;          // 95% interval of the mean; n >= 2
  std::optional<double> half_width() const;       // (ci_high - ci_low) / 2
};

SeedSummary SummarizeSeeds(const std::vector<double>& values);

}  // namespace atp
