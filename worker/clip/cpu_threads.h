// The one owner of a computing process's CPU threads: libtorch's intra-op (OpenMP) pool and
// the BLAS's own pool are always set together, to the same count, so that they take turns on
// the same cores instead of multiplying (with libtorch at 2 and OpenBLAS at 2 on 2 cores, a
// job ran 3x slower than at 1). Process-wide settings: call from one thread, between steps.
#pragma once

#include <cstdint>

#include "common/cpu_share.h"

namespace atp {

// at::set_num_threads(n) and the BLAS's thread count (SetBlasThreads). The two pools alternate:
// the BLAS's threads work inside a matrix product while libtorch's OpenMP threads sleep
// (OMP_WAIT_POLICY=PASSIVE, set by PrepareComputeProcess), and the reverse between products.
void SetCpuThreads(int n);

// The thread count SetCpuThreads last set (libtorch's view of it).
int CpuThreads();

// Towers at most this wide (the demo's tiny CLIP is 128) give each product and each
// element-wise operation too little work to split: a second thread only adds wake-ups. The
// demo's CoOp job, warm, ran 5.0-5.6 s at 1 thread and 7.3-9.8 s at 2, 2.3-2.7 s of which in
// the kernel (futex wake-ups), on the same loaded 2-core machine; see docs/compute.md.
inline constexpr int64_t kWidestUnsplitTower = 256;

// The compute threads for a model whose widest tower is `widest_tower` wide, given the cores
// of the process's share: 1 for towers up to kWidestUnsplitTower, else `share`. Only the
// default: a job's explicit `threads` is used as given.
int ComputeThreadsForWidth(int64_t widest_tower, int share);

}  // namespace atp
