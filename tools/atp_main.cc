// atp: the user's command line. Subcommands dispatch to one function each; `atp-sweep` runs
// sweeps. The binary is also a job executor when started with --atp-executor.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/blas_runtime.h"
#include "common/heap_tuning.h"
#include "common/build_info.h"
#include "tools/query_command.h"
#include "tools/status_command.h"
#include "tools/tables_command.h"
#include "tools/sweep_command.h"
#include "worker/executor.h"
#if ATP_HAVE_CLIP_COMMAND
#include "tools/clip_command.h"
#endif
#if ATP_HAVE_DATA_COMMAND
#include "tools/data_command.h"
#endif
#if ATP_HAVE_TRAIN_COMMAND
#include "tools/train_command.h"
#endif
#if ATP_HAVE_PRETRAIN_COMMAND
#include "tools/pretrain_command.h"
#endif
#if ATP_HAVE_ATTRIBUTES_COMMAND
#include "tools/attributes_command.h"
#endif
#if ATP_HAVE_PROMPT_METHODS
#include "worker/prompt/prompt_methods.h"
#endif

namespace {

struct Subcommand {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
};

const Subcommand kSubcommands[] = {
    {"sweep", "run a sweep (same as atp-sweep)", atp::RunSweepCommand},
    {"status", "summarise a sweep in a results database", atp::RunStatusCommand},
    {"serve", "serve a results database's status page read-only", atp::RunServeCommand},
    {"query", "filter results and aggregate metrics over seeds", atp::RunQueryCommand},
    {"tables", "regenerate the paper's tables (and Figure 5) from a results database", atp::RunTablesCommand},
#if ATP_HAVE_CLIP_COMMAND
    {"clip", "tokenize text and encode images/texts with a CLIP checkpoint", atp::RunClipCommand},
#endif
#if ATP_HAVE_DATA_COMMAND
    {"data", "check data roots, print few-shot splits, import Fashion-MNIST", atp::RunDataCommand},
#endif
#if ATP_HAVE_TRAIN_COMMAND
    {"train", "run one training job (JOB.toml) here, without mpirun", atp::RunTrainCommand},
    {"eval", "evaluate a trained prompt checkpoint on a dataset", atp::RunEvalCommand},
#endif
#if ATP_HAVE_PRETRAIN_COMMAND
    {"pretrain", "train the demo's tiny CLIP (and its BPE vocabulary) on Fashion-MNIST", atp::RunPretrainCommand},
#endif
#if ATP_HAVE_ATTRIBUTES_COMMAND
    {"attributes", "list the paper's attribute bases, or ask a language model for new ones", atp::RunAttributesCommand},
#endif
};

// Commands whose process multiplies matrices run on the BLAS kernel and thread settings
// PrepareComputeProcess chooses (`version` too, to show them); the others only pass them on.
// A job (train, eval, a sweep's executor) does not restart for the thread settings.
atp::ProcessRole ProcessRoleOf(int argc, char** argv) {
  if (atp::IsExecutorCommandLine(argc, argv)) return atp::ProcessRole::kJob;
  if (argc < 2) return atp::ProcessRole::kLauncher;
  for (const char* name : {"train", "eval"}) {
    if (std::strcmp(argv[1], name) == 0) return atp::ProcessRole::kJob;
  }
  for (const char* name : {"pretrain", "clip", "version", "--version"}) {
    if (std::strcmp(argv[1], name) == 0) return atp::ProcessRole::kCompute;
  }
  return atp::ProcessRole::kLauncher;
}

// The same layout as every command's --help (tools/command_line.h).
void PrintUsage(std::FILE* out) {
  std::fprintf(out, "usage: atp COMMAND [options]\n\natp %s (%s): prompt-learning experiments on CLIP, run as sweeps\n\n"
               "commands:\n", ATP_VERSION, ATP_GIT_COMMIT);
  for (const auto& c : kSubcommands) std::fprintf(out, "  %-10s  %s\n", c.name, c.summary);
  std::fprintf(out, "  %-10s  %s\n", "version", "print the version");
  std::fprintf(out, "\n`atp COMMAND --help` describes a command.\n");
}

}  // namespace

int main(int argc, char** argv) {
  // First of all: it may re-execute the process with another environment.
  const atp::ProcessRole role = ProcessRoleOf(argc, argv);
  atp::PrepareComputeProcess(argc, argv, role);
#if ATP_HAVE_PROMPT_METHODS
  atp::prompt::RegisterPromptMethods();
#endif
  int executor_code = atp::MaybeRunExecutor(argc, argv);
  if (executor_code >= 0) return executor_code;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    PrintUsage(stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "version") || !std::strcmp(argv[1], "--version")) {
    std::printf("atp %s (%s)\nBLAS: %s; start-up check %s\nHeap: %s\n", ATP_VERSION, ATP_GIT_COMMIT,
                atp::CurrentBlasRuntime().Summary().c_str(), atp::CurrentBlasRuntime().check.c_str(),
                atp::HeapTuning().c_str());
    return 0;
  }
  for (const auto& c : kSubcommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    const int code = c.run(argc - 1, argv + 1);
    if (role == atp::ProcessRole::kJob) {
      // A job has written and closed its outputs by now. Leave as the executors do, without
      // the static destructors of the ~300 libraries libtorch loads (60 ms of a 1.9 s job).
      std::fflush(nullptr);
      std::_Exit(code);
    }
    return code;
  }
  std::fprintf(stderr, "atp: unknown command '%s'\n\n", argv[1]);
  PrintUsage(stderr);
  return 2;
}
