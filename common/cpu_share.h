// The cores a computing process may use: its share of the node. Pure functions of the
// process's CPU affinity and the MPI launcher's environment; thread-safe.
#pragma once

namespace atp {

// CPUs in this process's affinity mask (what taskset, cgroups or srun's binding leave it),
// at least 1.
int AvailableCores();

// Worker ranks that share this node: under mpirun, the node's ranks minus the coordinator
// (rank 0 runs no jobs), at least 1; outside mpirun, 1.
int WorkerRanksOnThisNode();

// `requested` when positive; otherwise this process's share: AvailableCores() divided by the
// worker ranks on this node, at least 1. Every computing process (a job, `atp pretrain`,
// `atp clip encode`) takes its thread count from here, and SetCpuThreads applies it to
// libtorch and to the BLAS together (worker/clip/cpu_threads.h).
int ResolveCpuThreads(int requested);

}  // namespace atp
