// Clock: where the coordinator and the worker read time, so that scheduling, heartbeats and
// watchdogs are tested without waiting (FakeClock). RealClock is thread-safe; a FakeClock is
// advanced by the one test thread that owns it and may be read from any thread.
#pragma once

#include <atomic>

namespace atp {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual double Now() const = 0;  // seconds, monotonic
};

// The process-wide steady clock.
Clock* RealClock();

// Seconds since the Unix epoch (for timestamps stored in the database).
double WallTimeSeconds();

class FakeClock : public Clock {
 public:
  double Now() const override { return now_.load(); }
  void Advance(double seconds) { now_.store(now_.load() + seconds); }  // by one thread at a time

 private:
  std::atomic<double> now_{1000.0};
};

}  // namespace atp
