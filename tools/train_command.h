// `atp train JOB.toml` and `atp eval JOB.toml`: run one job of a prompt method here, without
// mpirun or a results database — the same code a sweep's worker runs, with a progress line on
// the terminal, a checkpoint per epoch in the job directory (rerunning resumes), and the
// metrics written as JSON. argv[0] is "train" / "eval". Exit codes: 0 done, 1 the job
// failed, 2 usage or job-file error, 3 stopped by a signal (checkpoint written).
#pragma once

namespace atp {

int RunTrainCommand(int argc, char** argv);
int RunEvalCommand(int argc, char** argv);

}  // namespace atp
