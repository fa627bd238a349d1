// The CPU thread budget of a pretraining run: how many threads "every core" means on a machine
// that other processes are also using, and applying that count to libtorch's intra-op pool and
// to OpenBLAS's own pool. Process-wide settings: call from one thread, before training.
#pragma once

namespace atp::pretrain {

// `requested` when positive; otherwise the cores not already busy: the core count minus the
// 1-minute load average (rounded), at least 1. OpenMP threads spin while they wait for each
// other, so a thread more than the free cores stalls every parallel operation (on two busy
// cores, two threads ran 5x slower than one).
int ResolveCpuThreads(int requested);

// torch::set_num_threads(n), and the same for OpenBLAS when libtorch uses it (its pthreads
// pool would otherwise take every core on each matrix product).
void SetCpuThreads(int n);

}  // namespace atp::pretrain
