#include "worker/data/augment_random.h"

namespace atp::data {
namespace {
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
constexpr uint64_t kKeyA = 0xD1B54A32D192ED03ULL;  // odd multipliers that spread the key words
constexpr uint64_t kKeyB = 0xABA0D0F1A2C3E4B5ULL;
}  // namespace

uint64_t CounterRandom::Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

CounterRandom::CounterRandom(uint64_t seed, RandomDomain domain, uint64_t a, uint64_t b) {
  uint64_t s = Mix64(seed ^ (kGolden * (static_cast<uint64_t>(domain) + 1)));
  s = Mix64(s ^ (a * kKeyA));
  s = Mix64(s ^ (b * kKeyB));
  state_ = s;
}

uint64_t CounterRandom::NextU64() {
  ++counter_;
  return Mix64(state_ + counter_ * kGolden);
}

double CounterRandom::NextDouble() {
  return static_cast<double>(NextU64() >> 11) * 0x1.0p-53;
}

uint64_t CounterRandom::Below(uint64_t n) {
  // Reject the top partial block so every residue is equally likely.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = NextU64();
  } while (x >= limit);
  return x % n;
}

}  // namespace atp::data
