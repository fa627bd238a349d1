#include "worker/pretrain/cpu_threads.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <thread>

namespace atp::pretrain {
namespace {

TEST(CpuThreadsTest, AnExplicitCountWinsAndTheDefaultStaysWithinTheCores) {
  EXPECT_EQ(ResolveCpuThreads(3), 3);
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int chosen = ResolveCpuThreads(0);
  EXPECT_GE(chosen, 1);
  EXPECT_LE(chosen, cores);
}

TEST(CpuThreadsTest, SetsLibtorchsIntraOpThreads) {
  const int before = at::get_num_threads();
  SetCpuThreads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
  SetCpuThreads(before);
}

}  // namespace
}  // namespace atp::pretrain
