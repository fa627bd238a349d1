// ThreadAllreduce: the sum allreduce of a job's ranks, played by threads of one test process,
// so that "k ranks equal 1 rank" tests run without mpirun. Each caller adds its buffer, waits
// for the others, then reads the total.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "common/status.h"

namespace atp::prompt::testing {

class ThreadAllreduce {
 public:
  explicit ThreadAllreduce(int ranks) : ranks_(ranks) {}

  Status Sum(std::vector<double>* values) {
    std::unique_lock<std::mutex> lock(mutex_);
    const int64_t round = round_;
    if (arrived_ == 0) total_.assign(values->size(), 0.0);
    if (total_.size() != values->size()) return Internal("ranks passed buffers of different lengths");
    for (size_t i = 0; i < values->size(); ++i) total_[i] += (*values)[i];
    if (++arrived_ == ranks_) {
      result_ = total_;
      arrived_ = 0;
      ++round_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return round_ != round; });
    }
    *values = result_;
    return Status::Ok();
  }

 private:
  int ranks_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int arrived_ = 0;
  int64_t round_ = 0;
  std::vector<double> total_;
  std::vector<double> result_;
};

}  // namespace atp::prompt::testing
