// The executor: the process in which jobs actually run, isolated from the worker rank that
// started it. A worker rank spawns one executor (its own binary with --atp-executor FD),
// sends it jobs over a FrameChannel, and relays progress, checkpoints, collectives and
// results. If a job crashes, hangs or is killed, only the executor dies: the MPI rank and
// every other job survive. The executor dies with its worker (PR_SET_PDEATHSIG).
#pragma once

namespace atp {

// Command-line flag that turns an atp binary into an executor.
constexpr const char* kExecutorFlag = "--atp-executor";

// Whether argv asks for executor mode (the process will run jobs).
bool IsExecutorCommandLine(int argc, char** argv);

// If argv asks for executor mode, runs the executor loop and returns its exit code;
// returns -1 otherwise. Call first thing in main(), before MPI is initialised.
int MaybeRunExecutor(int argc, char** argv);

}  // namespace atp
