#include "common/clock.h"

#include <chrono>

namespace atp {
namespace {
class SteadyClock : public Clock {
 public:
  double Now() const override {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
};
}  // namespace

Clock* RealClock() {
  static SteadyClock clock;
  return &clock;
}

double WallTimeSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace atp
