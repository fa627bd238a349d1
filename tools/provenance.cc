#include "tools/provenance.h"

#include "common/build_info.h"
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
  return p;
}

}  // namespace atp
