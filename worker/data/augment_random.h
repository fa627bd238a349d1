// CounterRandom: a counter-based random stream for augmentation and epoch order. A stream is
// a pure function of its key (seed, domain, a, b), e.g. (seed, kAugmentDomain, epoch, sample
// index), so the crop and flip of a sample do not depend on thread count, batch size, the
// order samples are processed in or the method. Construction: SplitMix64's finaliser (mix64)
// folds the key into a 64-bit state, s = mix64(mix64(mix64(seed ^ G·(domain+1)) ^ a·G2) ^ b·G3);
// the i-th output (i = 1, 2, ...) is mix64(s + i·G), with G the SplitMix64 increment
// 0x9E3779B97F4A7C15. Cheap to construct; one object per thread; not thread-safe.
#pragma once

#include <cstdint>

namespace atp::data {

// Domains keep unrelated streams with the same (seed, a, b) independent.
enum class RandomDomain : uint64_t {
  kAugment = 1,           // (epoch, sample index): crop box and flip
  kEpochPermutation = 2,  // (epoch, 0): the shuffled order of an epoch
};

class CounterRandom {
 public:
  CounterRandom(uint64_t seed, RandomDomain domain, uint64_t a, uint64_t b);

  uint64_t NextU64();
  // Uniform in [0, 1) with 53 random bits.
  double NextDouble();
  // Uniform in [lo, hi).
  double Uniform(double lo, double hi) { return lo + (hi - lo) * NextDouble(); }
  // Uniform integer in [0, n), unbiased (rejection); n > 0.
  uint64_t Below(uint64_t n);

  static uint64_t Mix64(uint64_t z);

 private:
  uint64_t state_;
  uint64_t counter_ = 0;
};

}  // namespace atp::data
