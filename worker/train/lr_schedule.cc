#include "worker/train/lr_schedule.h"

#include <cmath>
#include <limits>

namespace atp::train {
namespace {
// The double nearest pi, as Python's math.pi (what PyTorch's scheduler uses).
constexpr double kPi = 3.141592653589793;
}  // namespace

double CosineWarmupLr(int64_t epoch, int64_t max_epoch, double base_lr, int64_t warmup_epochs, double warmup_lr) {
  if (max_epoch < 1 || epoch < 0 || warmup_epochs < 0) return std::numeric_limits<double>::quiet_NaN();
  if (epoch < warmup_epochs) return warmup_lr;
  // Why the one-epoch lag: Dassl's warm-up scheduler hands over to the cosine scheduler at
  // epoch W, where the cosine's last_epoch is still 0 (WARMUP_RECOUNT), so epoch W runs at
  // base_lr and epoch e at the cosine of (e - W).
  // Evaluated in PyTorch's order (pi * e / T_max) so that the closed forms agree bit for bit.
  const double angle = kPi * static_cast<double>(epoch - warmup_epochs) / static_cast<double>(max_epoch);
  return base_lr * (1.0 + std::cos(angle)) / 2.0;
}

}  // namespace atp::train
