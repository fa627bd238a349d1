#include "worker/clip/cpu_threads.h"

#include <ATen/Parallel.h>

#include "common/blas_runtime.h"

namespace atp {

void SetCpuThreads(int n) {
  // A spinning OpenMP pool beside the BLAS's pool would take the cores from it (blas_runtime.h).
  at::set_num_threads(OpenMpLoadedSpinning() ? 1 : n);
  SetBlasThreads(n);
}

int CpuThreads() { return at::get_num_threads(); }

int ComputeThreadsForWidth(int64_t widest_tower, int share) {
  return widest_tower <= kWidestUnsplitTower ? 1 : share;
}

}  // namespace atp
