// RunMethodCatching: the one place where a method's exceptions become its job's outcome, for
// the executor (jobs of a sweep) and for `atp train` / `atp eval` alike. JobFailure keeps its
// class; UnusableCheckpoint also asks for the checkpoint to be discarded; std::bad_alloc and
// out-of-memory messages (host or CUDA) are "oom"; any other exception is "error"; a failure
// whose message says the disk is full is marked no_space_left (class "error"), which stops a
// sweep rather than spending every job's retries. Stateless; thread-safe as the method is.
#pragma once

#include <string>

#include "common/messages.h"
#include "worker/job_context.h"
#include "worker/method_registry.h"

namespace atp {

// Runs `method` (null: the method is not built into this binary, a user error) on `context`.
// The outcome has ok, metrics and outputs, or failure_class and message; the ids are unset.
FinishedMessage RunMethodCatching(const MethodFunction* method, const std::string& method_name, JobContext& context);

// Whether an error message says that memory ran out (host or device).
bool LooksLikeOutOfMemory(const std::string& message);
// Whether an error message says that the disk or the quota is full.
bool LooksLikeNoSpaceLeft(const std::string& message);

}  // namespace atp
