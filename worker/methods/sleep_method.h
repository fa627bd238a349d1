// The built-in `sleep` method: waits `seconds` in `steps` steps, reporting progress and
// writing a checkpoint after each step, and returns the metric `value`. It exercises every
// path a training job takes (progress, checkpoints, resume, preemption, group collectives,
// upstream outputs) without a GPU, so users can dry-run an allocation with it, and it can
// inject each kind of failure (`fail`) for fault-tolerance tests.
#pragma once

#include "worker/job_context.h"

namespace atp {

MethodResult RunSleepMethod(JobContext& context);

}  // namespace atp
