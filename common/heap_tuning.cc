#include "common/heap_tuning.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace atp {
namespace {

constexpr long kTrimThresholdBytes = 2L << 30;

std::string& Decision() {
  static std::string decision;
  return decision;
}

bool Set(const char* name) {
  const char* value = std::getenv(name);
  return value && *value;
}

}  // namespace

std::string TuneHeapForTensors() {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  const char* choice = std::getenv("ATP_MALLOC");
  std::string decision;
  if (choice && std::strcmp(choice, "system") == 0) {
    decision = "the system's defaults (ATP_MALLOC=system)";
  } else if ((tunables && std::strstr(tunables, "glibc.malloc.")) || Set("MALLOC_MMAP_MAX_") ||
             Set("MALLOC_TRIM_THRESHOLD_") || Set("MALLOC_MMAP_THRESHOLD_")) {
    decision = "the user's malloc settings";
  } else if (mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, static_cast<int>(kTrimThresholdBytes - 1)) == 1) {
    decision = "large blocks kept in the heap (trim above 2 GiB)";
  } else {
    decision = "the system's defaults (mallopt refused)";
  }
  Decision() = decision;
  return decision;
}

std::string HeapTuning() { return Decision(); }

}  // namespace atp
