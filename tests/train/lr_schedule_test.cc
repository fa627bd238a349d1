#include "worker/train/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <sstream>
#include <tuple>
#include <vector>

#include "tests/support/python_torch.h"

namespace atp::train {
namespace {

using testing::PythonWithTorch;
using testing::RunPython;

// Dassl's scheduler classes (dassl/optim/lr_scheduler.py) rebuilt from the description in
// docs/reference.md §4.2, driven the way Dassl's trainer drives them: the lr of epoch e is what
// the optimizer holds during e, and the scheduler steps once after each epoch. Prints
// "E W epoch lr" lines, lr as repr (round-trips exactly).
constexpr char kDasslScheduler[] = R"PY(
import sys, torch
from torch.optim.lr_scheduler import _LRScheduler, CosineAnnealingLR

class _BaseWarmupScheduler(_LRScheduler):
    def __init__(self, optimizer, successor, warmup_epoch, last_epoch=-1, verbose=False):
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        super().__init__(optimizer, last_epoch, verbose)

    def step(self, epoch=None):
        if self.last_epoch >= self.warmup_epoch:
            self.successor.step(epoch)
            self._last_lr = self.successor.get_last_lr()
        else:
            super().step(epoch)

class ConstantWarmupScheduler(_BaseWarmupScheduler):
    def __init__(self, optimizer, successor, warmup_epoch, cons_lr, last_epoch=-1, verbose=False):
        self.cons_lr = cons_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch, verbose)

    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        return [self.cons_lr for _ in self.base_lrs]

base_lr = float(sys.argv[1])
for spec in sys.argv[2:]:
    max_epoch, warmup = (int(x) for x in spec.split(":"))
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr, momentum=0.9, weight_decay=5e-4)
    # build_lr_scheduler: CosineAnnealingLR(optimizer, float(max_epoch)); WARMUP_RECOUNT True
    # leaves the successor's last_epoch alone.
    sched = CosineAnnealingLR(opt, float(max_epoch))
    if warmup > 0:
        sched = ConstantWarmupScheduler(opt, sched, warmup, 1e-5)
    for epoch in range(max_epoch):
        print(max_epoch, warmup, epoch, repr(opt.param_groups[0]["lr"]))
        p.grad = torch.ones(1)
        opt.step()
        sched.step()
)PY";

TEST(CosineWarmupLrTest, MatchesTheSpecsWorkedExamples) {
  // docs/reference.md §4.2, in units of lr_base (4 decimals); epoch 0 is the absolute 1e-5.
  const std::vector<double> e10 = {1.0, .9755, .9045, .7939, .6545, .5, .3455, .2061, .0955};
  const std::vector<double> e5 = {1.0, .9045, .6545, .3455};
  const double base = 0.002;
  EXPECT_DOUBLE_EQ(CosineWarmupLr(0, 10, base), 1e-5);
  EXPECT_DOUBLE_EQ(CosineWarmupLr(0, 5, base), 1e-5);
  for (size_t i = 0; i < e10.size(); ++i) {
    EXPECT_NEAR(CosineWarmupLr(static_cast<int64_t>(i) + 1, 10, base) / base, e10[i], 5e-5) << "E=10 epoch " << i + 1;
  }
  for (size_t i = 0; i < e5.size(); ++i) {
    EXPECT_NEAR(CosineWarmupLr(static_cast<int64_t>(i) + 1, 5, base) / base, e5[i], 5e-5) << "E=5 epoch " << i + 1;
  }
}

TEST(CosineWarmupLrTest, FirstEpochAfterWarmupRunsAtTheFullLrAndTheLastNeverAtZero) {
  EXPECT_EQ(CosineWarmupLr(1, 200, 0.002), 0.002);
  EXPECT_GT(CosineWarmupLr(199, 200, 0.002), 0.0);
  EXPECT_EQ(CosineWarmupLr(1, 10, 0.002, /*warmup_epochs=*/2, /*warmup_lr=*/3e-5), 3e-5);
  EXPECT_EQ(CosineWarmupLr(2, 10, 0.002, 2, 3e-5), 0.002);
  EXPECT_EQ(CosineWarmupLr(0, 10, 0.002, /*warmup_epochs=*/0), 0.002);  // bare cosine
}

TEST(CosineWarmupLrTest, InvalidArgumentsGiveNaN) {
  EXPECT_TRUE(std::isnan(CosineWarmupLr(0, 0, 0.002)));
  EXPECT_TRUE(std::isnan(CosineWarmupLr(-1, 10, 0.002)));
  EXPECT_TRUE(std::isnan(CosineWarmupLr(3, 10, 0.002, -1)));
}

TEST(CosineWarmupLrTest, ScheduleValueAgreesWithTheFunction) {
  CosineWarmupSchedule s{0.0035, 5, 1, 1e-5};
  for (int64_t e = 0; e < 5; ++e) EXPECT_EQ(s.LrAt(e), CosineWarmupLr(e, 5, 0.0035));
}

TEST(CosineWarmupLrTest, AgreesWithPyTorchsSchedulersInDasslsWrapper) {
  std::string why;
  const std::string python = PythonWithTorch(&why);
  if (python.empty()) GTEST_SKIP() << why;
  const double base = 0.002;
  // (max_epoch, warm-up epochs): the configs' E values (5, 10, 20, 50, 200), E = 1 and 2,
  // a longer warm-up, and no warm-up at all (the bare CosineAnnealingLR).
  const std::vector<std::pair<int, int>> specs = {{1, 1}, {2, 1}, {5, 1},  {10, 1}, {20, 1},
                                                  {50, 1}, {200, 1}, {10, 3}, {10, 0}};
  std::string args = "0.002";
  for (const auto& [e, w] : specs) args += " " + std::to_string(e) + ":" + std::to_string(w);
  auto run = RunPython(python, kDasslScheduler, args);
  ASSERT_EQ(run.exit_code, 0) << run.output;

  std::map<std::pair<int, int>, int> epochs_seen;
  std::istringstream lines(run.output);
  int max_epoch, warmup, epoch;
  std::string lr_text;
  double worst = 0;
  while (lines >> max_epoch >> warmup >> epoch >> lr_text) {
    const double python_lr = std::stod(lr_text);
    const double ours = CosineWarmupLr(epoch, max_epoch, base, warmup);
    // PyTorch's CosineAnnealingLR.step() uses its recursive form (each lr from the previous
    // one), so it drifts from the closed form by a few ulps per step; the relative bound
    // is far below anything an fp16/fp32 parameter update can resolve.
    const double rel = std::abs(ours - python_lr) / python_lr;
    worst = std::max(worst, rel);
    EXPECT_LT(rel, 1e-12) << "E=" << max_epoch << " W=" << warmup << " epoch " << epoch << ": ours " << ours
                          << ", PyTorch " << lr_text;
    ++epochs_seen[{max_epoch, warmup}];
  }
  for (const auto& [e, w] : specs) EXPECT_EQ((epochs_seen[{e, w}]), e) << "E=" << e << " W=" << w << "\n" << run.output;
  std::ostringstream worst_text;
  worst_text << std::scientific << worst;
  RecordProperty("worst_relative_difference", worst_text.str());
}

}  // namespace
}  // namespace atp::train
