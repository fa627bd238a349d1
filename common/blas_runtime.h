// BlasRuntime: the BLAS this process does its matrix products with, the kernel it runs, and
// atp's start-up choice of that kernel. OpenBLAS picks its kernels from the CPU when it is
// loaded and falls back to old SSE3 ones ("Prescott") on CPUs it does not know, at a fifth of
// the speed an AVX2 or AVX-512 kernel gives; the choice can only be changed through the
// environment before the library loads, so a computing process re-executes itself once.
// Process-wide state: call PrepareComputeProcess first thing in main(), before any thread.
#pragma once

#include <string>

#include "common/json.h"
#include "common/status.h"

namespace atp {

// Environment variables (docs/compute.md):
//   ATP_BLAS_CORETYPE   the user's choice: an OpenBLAS core name (e.g. SkylakeX), or "off"
//                       (leave the library's own choice alone). Unset: atp decides.
//   ATP_BLAS_STATE      set by atp for its re-executed and child processes: what the library
//                       chose by itself and what atp selected or rejected, so that the
//                       decision is made once per process tree.
inline constexpr const char* kBlasCoretypeEnv = "ATP_BLAS_CORETYPE";
inline constexpr const char* kBlasStateEnv = "ATP_BLAS_STATE";

struct BlasRuntime {
  std::string library;         // "OpenBLAS 0.3.21 (pthreads)"; "none" when no BLAS is loaded
  std::string kernel;          // the kernel this process runs (OpenBLAS core name), "" if unknown
  std::string library_kernel;  // what the library picks by itself on this CPU
  std::string best_kernel;     // the best kernel this CPU supports, by instruction set
  std::string selection;       // how `kernel` was chosen, in words
  std::string check;           // "passed", "failed: ..." or "not run" (processes that do not compute)
  int threads = 0;             // the BLAS's own thread count (0: unknown)

  Json ToJson() const;
  // "OpenBLAS 0.3.21 (pthreads), kernel SkylakeX (selected by atp: ...), 2 threads"
  std::string Summary() const;
};

// Whether the process will compute (and must run on the selected kernel) or only starts
// processes that do (atp-sweep's coordinator and worker ranks). kJob computes one job
// (`atp train`, `atp eval`, a sweep's executor): it restarts for the kernel but not for the
// thread environment, because most jobs by hand are narrow and run on one thread, where the
// OpenMP wait policy does not matter, and a restart loads libtorch a second time (0.4 s of a
// 2.8 s demo job). A sweep's executors inherit the environment from their launcher.
enum class ProcessRole { kCompute, kJob, kLauncher };

// Chooses the kernel and the OpenMP wait policy for this process and its children:
//  - the kernel: ATP_BLAS_CORETYPE if set; otherwise OPENBLAS_CORETYPE if the user set it;
//    otherwise the best kernel of this CPU when the library's own choice is of an older
//    instruction set (a fallback), else the library's own choice;
//  - OMP_WAIT_POLICY=PASSIVE unless set: libtorch's OpenMP threads sleep instead of spinning
//    while the BLAS's threads work, so the two pools never compete for the same cores;
//  - OMP_NUM_THREADS and OPENBLAS_NUM_THREADS, unless set: the process's share of the cores
//    (ResolveCpuThreads(0), common/cpu_share.h).
// Both go into the environment (children inherit them). A kCompute process whose libraries
// loaded under another environment re-executes itself (/proc/self/exe, same argv) once (a kJob
// process only for the kernel); then it multiplies two small matrices through the BLAS and
// compares with a plain loop in double. Computing processes also tune the heap for tensors
// (common/heap_tuning.h).
// A selected kernel that fails that check is rejected: the process re-executes once more
// with the library's own choice, and says so on stderr. Returns what this process runs.
BlasRuntime PrepareComputeProcess(int argc, char** argv, ProcessRole role);

// What PrepareComputeProcess found (a description of the loaded library if it was not called).
BlasRuntime CurrentBlasRuntime();

// Whether this process's OpenMP runtime loaded without a wait policy (a kJob process started
// by hand): its idle threads then spin for a while after each parallel region, on the cores
// the BLAS's threads need next. SetCpuThreads keeps libtorch's own pool at one thread in
// such a process and gives the BLAS all of them.
bool OpenMpLoadedSpinning();

// The best OpenBLAS x86-64 kernel for this CPU by its instruction sets (cpuid): SkylakeX
// (AVX-512), Haswell or Zen (AVX2+FMA), Sandybridge (AVX), Nehalem, Core2, Prescott.
std::string BestKernelForThisCpu();

// An ordinal of the instruction set a kernel name needs (1 SSE3 ... 4 AVX-512), 0 if unknown.
int KernelIsaLevel(const std::string& kernel);

// Multiplies 128x128x128 and 37x53x71 single-precision products (plain and transposed)
// through the loaded BLAS's sgemm and compares them with a triple loop in double.
Status CheckBlasProduct();

// OpenBLAS's own thread count (openblas_set_num_threads); no-op without OpenBLAS.
void SetBlasThreads(int threads);
int BlasThreads();

}  // namespace atp
