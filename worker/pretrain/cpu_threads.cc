#include "worker/pretrain/cpu_threads.h"

#include <dlfcn.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include <ATen/Parallel.h>

namespace atp::pretrain {

int ResolveCpuThreads(int requested) {
  if (requested > 0) return requested;
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  double load[1] = {0.0};
  if (getloadavg(load, 1) != 1) return cores;
  const int busy = static_cast<int>(std::lround(load[0]));
  return std::clamp(cores - busy, 1, cores);
}

void SetCpuThreads(int n) {
  at::set_num_threads(n);
  // Looked up rather than linked: libtorch may use another BLAS, or none.
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(n);
}

}  // namespace atp::pretrain
