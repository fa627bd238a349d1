// PythonRandom: CPython's `random.Random` (Mersenne Twister MT19937), reproduced exactly for
// the calls the official few-shot draw makes: seed(int), getrandbits(k), _randbelow(n),
// sample(population, k) and shuffle(x). Given the same seed it returns the same numbers as
// CPython 3.x, so atp picks the same few-shot images as the official code.
// Not thread-safe (one generator, one owner), like the Python object.
#pragma once

#include <cstdint>
#include <vector>

namespace atp::data {

class PythonRandom {
 public:
  // random.seed(n) for an int n: init_by_array over the 32-bit words of |n| (least
  // significant first; n = 0 gives the single word 0).
  explicit PythonRandom(int64_t seed);
  static PythonRandom FromUnsigned(uint64_t magnitude);

  // The next 32-bit MT19937 output (genrand_uint32).
  uint32_t NextUint32();
  // random.getrandbits(k) for 0 <= k <= 64 (k = 0 returns 0 and draws nothing; above 32
  // bits the words are concatenated least significant first, as CPython does).
  uint64_t GetRandBits(int k);
  // random._randbelow(n) for n >= 1: k = bit_length(n); getrandbits(k) until < n.
  uint64_t RandBelow(uint64_t n);
  // The indices random.sample(range(n), k) returns, in order (0 <= k <= n). Uses CPython's
  // two algorithms: a shrinking pool when n <= setsize, else rejection against a set, with
  // setsize = 21 (+ 4 ** ceil(log(3k, 4)) when k > 5).
  std::vector<int64_t> SampleIndices(int64_t n, int64_t k);
  // random.shuffle(x) applied to x.
  template <typename T>
  void Shuffle(std::vector<T>* x) {
    for (int64_t i = static_cast<int64_t>(x->size()) - 1; i > 0; --i) {
      const auto j = static_cast<int64_t>(RandBelow(static_cast<uint64_t>(i + 1)));
      std::swap((*x)[i], (*x)[j]);
    }
  }

 private:
  PythonRandom() = default;
  void InitGenrand(uint32_t s);
  void InitByArray(const std::vector<uint32_t>& key);

  static constexpr int kN = 624;
  uint32_t mt_[kN];
  int mti_ = kN + 1;
};

}  // namespace atp::data
