#include "tools/provenance.h"

#include "common/blas_runtime.h"
#include "common/build_info.h"
#include "common/cpu_share.h"
#include "common/mpi_communicator.h"

namespace atp {

Provenance CollectProvenance(int argc, char** argv, int world_size) {
  Provenance p;
  p.atp_version = ATP_VERSION;
  p.git_commit = ATP_GIT_COMMIT;
  p.libtorch_version = ATP_LIBTORCH_VERSION;
  p.cuda_version = ATP_CUDA_VERSION;
  p.nccl_version = ATP_NCCL_VERSION;
  p.mpi_version = MpiScope::LibraryVersion();
  for (int i = 0; i < argc; ++i) {
    if (i) p.command_line += ' ';
    p.command_line += argv[i];
  }
  p.world_size = world_size;
  // The kernel the executors run (this launcher chose it for them; each job's outputs record
  // what its own process ran) and the default threads of a job on this node.
  p.compute = Json{{"blas", CurrentBlasRuntime().ToJson()}, {"threads_per_job", ResolveCpuThreads(0)}};
  return p;
}

}  // namespace atp
