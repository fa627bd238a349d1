// atp-sweep: runs a sweep (see tools/sweep_command.h). The same binary is the job executor
// when started with --atp-executor (worker/executor.h).
#include "tools/sweep_command.h"
#include "worker/executor.h"

int main(int argc, char** argv) {
  int executor_code = atp::MaybeRunExecutor(argc, argv);
  if (executor_code >= 0) return executor_code;
  return atp::RunSweepCommand(argc, argv);
}
