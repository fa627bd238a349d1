#include "common/cpu_share.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace atp {

int AvailableCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

int WorkerRanksOnThisNode() {
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (!local) return 1;
  const int ranks = std::atoi(local);
  return std::max(1, ranks - 1);
}

int ResolveCpuThreads(int requested) {
  if (requested > 0) return requested;
  return std::max(1, AvailableCores() / WorkerRanksOnThisNode());
}

}  // namespace atp
