// `atp-sweep SWEEP.toml --db results.db [options]`: expands a sweep and runs it, under mpirun
// (rank 0 coordinates, every other rank is a worker) or alone (the coordinator runs the jobs
// through one local worker). Exit codes: 0 every job done; 1 some jobs failed or are
// blocked; 2 bad input or a database problem; 3 interrupted by a signal (relaunch to resume).
#pragma once

namespace atp {

int RunSweepCommand(int argc, char** argv);

}  // namespace atp
