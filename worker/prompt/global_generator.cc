#include "worker/prompt/global_generator.h"

namespace atp::prompt {

std::mutex& GlobalGeneratorMutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace atp::prompt
