// The learning-rate schedule every prompt-learning method uses: Dassl's "cosine" schedule
// (CosineAnnealingLR, T_max = max_epoch, eta_min = 0) wrapped in a constant warm-up with
// WARMUP_RECOUNT, in closed form (docs/reference.md §4.2). Pure functions; thread-safe.
#pragma once

#include <cstdint>

namespace atp::train {

// The lr used during `epoch` (0-based) of a run of `max_epoch` epochs:
//   epoch < warmup_epochs:  warmup_lr
//   otherwise:              base_lr * (1 + cos(pi * (epoch - warmup_epochs) / max_epoch)) / 2
// With the defaults (Dassl's WARMUP_EPOCH 1, WARMUP_CONS_LR 1e-5) epoch 0 runs at 1e-5, epoch 1
// at the full base_lr and the last epoch at base_lr * (1 + cos(pi * (E - 2) / E)) / 2, never 0.
// warmup_epochs = 0 is the bare CosineAnnealingLR. Epochs past max_epoch continue the cosine
// (as PyTorch's closed form does). Requires max_epoch >= 1, epoch >= 0 and warmup_epochs >= 0;
// otherwise returns NaN, so that a misconfigured run fails at its first loss instead of
// training with a plausible but wrong lr.
double CosineWarmupLr(int64_t epoch, int64_t max_epoch, double base_lr, int64_t warmup_epochs = 1,
                      double warmup_lr = 1e-5);

// The same schedule as a value, for code that carries it around (a trainer, a checkpoint).
struct CosineWarmupSchedule {
  double base_lr = 0.0;
  int64_t max_epoch = 0;
  int64_t warmup_epochs = 1;
  double warmup_lr = 1e-5;

  double LrAt(int64_t epoch) const { return CosineWarmupLr(epoch, max_epoch, base_lr, warmup_epochs, warmup_lr); }
};

}  // namespace atp::train
