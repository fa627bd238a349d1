// atp-sweep: runs a sweep (see tools/sweep_command.h). The same binary is the job executor
// when started with --atp-executor (worker/executor.h).
#include "common/blas_runtime.h"
#include "tools/sweep_command.h"
#include "worker/executor.h"
#if ATP_HAVE_PROMPT_METHODS
#include "worker/prompt/prompt_methods.h"
#endif

int main(int argc, char** argv) {
  // Before anything else (it may re-execute the process): executors compute on the chosen BLAS
  // kernel and threads; the sweep's own ranks only pass that environment on to them.
  atp::PrepareComputeProcess(argc, argv,
                             atp::IsExecutorCommandLine(argc, argv) ? atp::ProcessRole::kJob
                                                                    : atp::ProcessRole::kLauncher);
#if ATP_HAVE_PROMPT_METHODS
  atp::prompt::RegisterPromptMethods();
#endif
  int executor_code = atp::MaybeRunExecutor(argc, argv);
  if (executor_code >= 0) return executor_code;
  return atp::RunSweepCommand(argc, argv);
}
