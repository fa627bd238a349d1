// MethodRegistry: maps a method name from the catalog (common/method_catalog.h) to the code
// that runs it inside a job process. Built-in methods register themselves at start-up;
// lookups are read-only afterwards and thread-safe.
#pragma once

#include <functional>
#include <string>

#include "worker/job_context.h"

namespace atp {

using MethodFunction = std::function<MethodResult(JobContext&)>;

// Registers `fn` under `name`; returns true so it can initialise a static.
bool RegisterMethod(const std::string& name, MethodFunction fn);
const MethodFunction* FindMethodFunction(const std::string& name);

// Ensures the built-in methods linked into this binary are registered.
void RegisterBuiltinMethods();

}  // namespace atp
