// A seeded random mutator for bounded fuzz tests: deterministic for a given seed, so a failure
// reproduces with the seed and iteration printed by the test. Mutations are the classic ones
// (bit flips, random bytes, inserted, deleted and duplicated ranges, truncation) plus splicing
// in tokens of the format under test. Header-only; one Mutator per thread.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace atp::fuzz {

class Mutator {
 public:
  Mutator(uint64_t seed, std::vector<std::string> tokens) : rng_(seed), tokens_(std::move(tokens)) {}

  // One to `max_steps` mutations of `input`, never longer than `max_size` bytes.
  std::string Mutate(std::string input, int max_steps = 4, size_t max_size = 1 << 20) {
    const int steps = 1 + static_cast<int>(Below(static_cast<uint64_t>(max_steps)));
    for (int s = 0; s < steps; ++s) MutateOnce(&input);
    if (input.size() > max_size) input.resize(max_size);
    return input;
  }

  uint64_t Below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

 private:
  void MutateOnce(std::string* data) {
    const size_t size = data->size();
    switch (Below(8)) {
      case 0:  // flip a bit
        if (size) (*data)[Below(size)] ^= static_cast<char>(1u << Below(8));
        break;
      case 1:  // a random byte
        if (size) (*data)[Below(size)] = static_cast<char>(Below(256));
        break;
      case 2:  // insert random bytes
        data->insert(Below(size + 1), std::string(1 + Below(8), static_cast<char>(Below(256))));
        break;
      case 3:  // delete a range
        if (size) {
          const size_t at = Below(size);
          data->erase(at, 1 + Below(std::min<size_t>(size - at, 64)));
        }
        break;
      case 4:  // duplicate a range
        if (size) {
          const size_t at = Below(size);
          const std::string piece = data->substr(at, 1 + Below(std::min<size_t>(size - at, 64)));
          data->insert(Below(size + 1), piece);
        }
        break;
      case 5:  // truncate
        if (size) data->resize(Below(size));
        break;
      default:  // splice in a token of the format, replacing a few bytes
        if (!tokens_.empty()) {
          const std::string& token = tokens_[Below(tokens_.size())];
          const size_t at = Below(size + 1);
          data->replace(at, Below(std::min<size_t>(size - at, 4) + 1), token);
        }
        break;
    }
  }

  std::mt19937_64 rng_;
  std::vector<std::string> tokens_;
};

// Iterations for one fuzz test: `base`, scaled by ATP_FUZZ_SCALE (e.g. 10 for a longer run).
inline int FuzzIterations(int base) {
  const char* scale = std::getenv("ATP_FUZZ_SCALE");
  const double factor = scale ? std::atof(scale) : 1.0;
  return std::max(1, static_cast<int>(base * (factor > 0 ? factor : 1.0)));
}

}  // namespace atp::fuzz
