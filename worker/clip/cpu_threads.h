// The one owner of a computing process's CPU threads: libtorch's intra-op (OpenMP) pool and
// the BLAS's own pool are always set together, to the same count, so that they take turns on
// the same cores instead of multiplying (with libtorch at 2 and OpenBLAS at 2 on 2 cores, a
// job ran 3x slower than at 1). Process-wide settings: call from one thread, between steps.
#pragma once

#include "common/cpu_share.h"

namespace atp {

// at::set_num_threads(n) and the BLAS's thread count (SetBlasThreads). The two pools alternate:
// the BLAS's threads work inside a matrix product while libtorch's OpenMP threads sleep
// (OMP_WAIT_POLICY=PASSIVE, set by PrepareComputeProcess), and the reverse between products.
void SetCpuThreads(int n);

// The thread count SetCpuThreads last set (libtorch's view of it).
int CpuThreads();

}  // namespace atp
