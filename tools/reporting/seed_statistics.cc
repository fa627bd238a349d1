#include "tools/reporting/seed_statistics.h"

#include <cmath>

namespace atp {

double StudentT975(int df) {
  static const double kTable[] = {12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
                                  2.2010,  2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
                                  2.0796,  2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423};
  if (df < 1) return std::nan("");
  if (df <= 30) return kTable[df - 1];
  // Cornish-Fisher expansion of t around the normal quantile z (Abramowitz & Stegun 26.7.5).
  const double z = 1.959963984540054, n = df;
  const double z3 = z * z * z, z5 = z3 * z * z, z7 = z5 * z * z;
  return z + (z3 + z) / (4 * n) + (5 * z5 + 16 * z3 + 3 * z) / (96 * n * n) +
         (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * n * n * n);
}

std::optional<double> SeedSummary::half_width() const {
  if (!ci_low || !ci_high) return std::nullopt;
  return (*ci_high - *ci_low) / 2;
}

SeedSummary SummarizeSeeds(const std::vector<double>& values) {
  SeedSummary s;
  s.n = static_cast<int>(values.size());
  if (values.empty()) return s;
  double sum = 0;
  for (double v : values) sum += v;
  const double mean = sum / s.n;
  s.mean = mean;
  if (s.n < 2) return s;
  double squares = 0;
  for (double v : values) squares += (v - mean) * (v - mean);
  s.std = std::sqrt(squares / (s.n - 1));
  const double half = StudentT975(s.n - 1) * *s.std / std::sqrt(static_cast<double>(s.n));
  s.ci_low = mean - half;
  s.ci_high = mean + half;
  return s;
}

}  // namespace atp
