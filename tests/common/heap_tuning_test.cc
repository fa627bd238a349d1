// The heap settings of a computing process (common/heap_tuning.h): after tuning, a block
// larger than glibc's largest mmap threshold comes from the heap, so freeing it does not
// return its pages and the next tensor of that size does not fault them in again.
#include "common/heap_tuning.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace atp {
namespace {

// 64 MiB: above glibc's largest mmap threshold (32 MiB on 64-bit), so untuned glibc always
// maps it.
constexpr size_t kLargeBlock = size_t{64} << 20;

size_t MappedBytes() { return mallinfo2().hblkhd; }

TEST(HeapTuningTest, LargeBlocksComeFromTheHeapOnceTuned) {
  unsetenv("ATP_MALLOC");
  unsetenv("GLIBC_TUNABLES");
  unsetenv("MALLOC_MMAP_MAX_");
  unsetenv("MALLOC_TRIM_THRESHOLD_");
  unsetenv("MALLOC_MMAP_THRESHOLD_");
  EXPECT_EQ(TuneHeapForTensors(), "large blocks kept in the heap (trim above 2 GiB)");
  EXPECT_EQ(HeapTuning(), "large blocks kept in the heap (trim above 2 GiB)");
  const size_t mapped_before = MappedBytes();
  char* block = static_cast<char*>(std::malloc(kLargeBlock));
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, kLargeBlock);
  EXPECT_EQ(MappedBytes(), mapped_before) << "a 64 MiB block was mapped on its own";
  std::free(block);
  // Freed, it stays in the process (below the trim threshold) for the next block.
  EXPECT_GE(mallinfo2().fordblks, kLargeBlock);
}

TEST(HeapTuningTest, TheUsersMallocSettingsAndTheOptOutAreLeftAlone) {
  setenv("MALLOC_MMAP_MAX_", "65536", 1);
  EXPECT_EQ(TuneHeapForTensors(), "the user's malloc settings");
  unsetenv("MALLOC_MMAP_MAX_");
  setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1000", 1);
  EXPECT_EQ(TuneHeapForTensors(), "the user's malloc settings");
  unsetenv("GLIBC_TUNABLES");
  setenv("ATP_MALLOC", "system", 1);
  EXPECT_EQ(TuneHeapForTensors(), "the system's defaults (ATP_MALLOC=system)");
  EXPECT_EQ(HeapTuning(), "the system's defaults (ATP_MALLOC=system)");
  unsetenv("ATP_MALLOC");
}

}  // namespace
}  // namespace atp
