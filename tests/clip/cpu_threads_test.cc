#include "worker/clip/cpu_threads.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include "common/blas_runtime.h"

namespace atp {
namespace {

TEST(CpuThreadsTest, AnExplicitCountWinsAndTheDefaultIsTheCoresOfTheShare) {
  EXPECT_EQ(ResolveCpuThreads(3), 3);
  EXPECT_EQ(ResolveCpuThreads(0), AvailableCores() / WorkerRanksOnThisNode());
}

TEST(CpuThreadsTest, RanksOnANodeSplitItsCoresAndTheCoordinatorTakesNone) {
  const char* saved = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "3", 1);  // coordinator + 2 workers
  EXPECT_EQ(WorkerRanksOnThisNode(), 2);
  EXPECT_EQ(ResolveCpuThreads(0), std::max(1, AvailableCores() / 2));
  setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "1", 1);
  EXPECT_EQ(WorkerRanksOnThisNode(), 1);
  if (saved) setenv("OMPI_COMM_WORLD_LOCAL_SIZE", saved, 1);
  else unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
}

TEST(CpuThreadsTest, NarrowTowersRunOnOneThreadAndWideOnesOnTheShare) {
  EXPECT_EQ(ComputeThreadsForWidth(128, 2), 1);  // the demo's tiny CLIP
  EXPECT_EQ(ComputeThreadsForWidth(kWidestUnsplitTower, 8), 1);
  EXPECT_EQ(ComputeThreadsForWidth(512, 2), 2);  // ViT-B text tower
  EXPECT_EQ(ComputeThreadsForWidth(768, 16), 16);
  EXPECT_EQ(ComputeThreadsForWidth(1024, 1), 1);
}

// Regression: libtorch's intra-op threads were set without the BLAS's, so a job at 2 threads
// ran libtorch's 2 OpenMP threads beside OpenBLAS's own 2 (3x slower than at 1).
TEST(CpuThreadsTest, SetsLibtorchAndTheBlasTogether) {
  const int before = at::get_num_threads();
  SetCpuThreads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
  if (BlasThreads() == 0) GTEST_SKIP() << "the loaded BLAS is not OpenBLAS: no thread count to read back";
  EXPECT_EQ(BlasThreads(), 1);
  SetCpuThreads(2);
  EXPECT_EQ(at::get_num_threads(), 2);
  EXPECT_EQ(BlasThreads(), 2);
  SetCpuThreads(before);
}

}  // namespace
}  // namespace atp
