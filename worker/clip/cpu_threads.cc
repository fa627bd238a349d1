#include "worker/clip/cpu_threads.h"

#include <ATen/Parallel.h>

#include "common/blas_runtime.h"

namespace atp {

void SetCpuThreads(int n) {
  at::set_num_threads(n);
  SetBlasThreads(n);
}

int CpuThreads() { return at::get_num_threads(); }

int ComputeThreadsForWidth(int64_t widest_tower, int share) {
  return widest_tower <= kWidestUnsplitTower ? 1 : share;
}

}  // namespace atp
