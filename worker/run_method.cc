#include "worker/run_method.h"

#include <errno.h>

#include <cstring>
#include <exception>
#include <new>

#include "worker/job_failure.h"

namespace atp {

bool LooksLikeOutOfMemory(const std::string& message) {
  for (const char* needle : {"out of memory", "CUDA out of memory", "std::bad_alloc", "Cannot allocate memory"}) {
    if (message.find(needle) != std::string::npos) return true;
  }
  return false;
}

bool LooksLikeNoSpaceLeft(const std::string& message) {
  return message.find(std::strerror(ENOSPC)) != std::string::npos ||  // "No space left on device"
         message.find(std::strerror(EDQUOT)) != std::string::npos;    // "Disk quota exceeded"
}

FinishedMessage RunMethodCatching(const MethodFunction* method, const std::string& method_name, JobContext& context) {
  FinishedMessage outcome;
  try {
    if (!method) throw JobFailure(FailureClass::kUserError, "method '" + method_name + "' is not built into this atp");
    MethodResult result = (*method)(context);
    outcome.ok = true;
    outcome.metrics = std::move(result.metrics);
    outcome.outputs = std::move(result.outputs);
    return outcome;
  } catch (const UnusableCheckpoint& e) {
    outcome = FinishedMessage::Failure(e.failure_class(), e.what());
    outcome.discard_checkpoint = true;
  } catch (const JobFailure& e) {
    outcome = FinishedMessage::Failure(e.failure_class(), e.what());
  } catch (const std::bad_alloc&) {
    outcome = FinishedMessage::Failure(FailureClass::kOutOfMemory, "out of memory (std::bad_alloc)");
  } catch (const std::exception& e) {
    const FailureClass failure_class =
        LooksLikeOutOfMemory(e.what()) ? FailureClass::kOutOfMemory : FailureClass::kError;
    outcome = FinishedMessage::Failure(failure_class, e.what());
  } catch (...) {
    outcome = FinishedMessage::Failure(FailureClass::kError, "unknown exception");
  }
  // A full disk is no fault of the job: a sweep's coordinator stops the run instead of
  // spending every job's retries on it (see Coordinator::EndAttempt).
  if (LooksLikeNoSpaceLeft(outcome.message)) {
    outcome.no_space_left = true;
    outcome.failure_class = FailureClass::kError;
  }
  return outcome;
}

}  // namespace atp
