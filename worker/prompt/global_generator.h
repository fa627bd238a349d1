// The lock on torch's global CPU generator. Prompt initialisation seeds that generator and
// then draws (the official order of draws), and module constructors draw from it too (a CLIP
// being loaded initialises its parameters before the checkpoint overwrites them). A worker
// runs one job per process, but a process may hold several jobs at once (the ranks of a job
// as threads, in tests): whatever seeds or draws during a job's set-up holds this lock, so
// that one job's draws never interleave with another's.
#pragma once

#include <mutex>

namespace atp::prompt {

std::mutex& GlobalGeneratorMutex();

}  // namespace atp::prompt
