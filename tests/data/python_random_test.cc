// PythonRandom against numbers produced by CPython's random module (fixtures/fewshot_python.json
// "rng": seeds 0..3, 42, 2**32, a two-word seed and 2**64-1).
#include "worker/data/python_random.h"

#include <gtest/gtest.h>

#include "tests/data/test_util.h"

namespace atp::data {
namespace {

uint64_t ParseSeed(const Json& s) { return std::stoull(s.get<std::string>()); }

class PythonRandomTest : public ::testing::Test {
 protected:
  Json fixture_ = testing::LoadFixture("fewshot_python.json");
};

TEST_F(PythonRandomTest, MatchesCPythonForEverySeedAndCall) {
  ASSERT_GE(fixture_["rng"].size(), 8u);
  for (const Json& c : fixture_["rng"]) {
    SCOPED_TRACE("seed " + c["seed"].get<std::string>());
    PythonRandom r = PythonRandom::FromUnsigned(ParseSeed(c["seed"]));
    for (const Json& v : c["getrandbits32"]) EXPECT_EQ(r.GetRandBits(32), v.get<uint64_t>());
    EXPECT_EQ(r.GetRandBits(40), std::stoull(c["getrandbits40"].get<std::string>()));
    for (const Json& v : c["getrandbits7"]) EXPECT_EQ(r.GetRandBits(7), v.get<uint64_t>());
    for (const Json& nv : c["randbelow"]) {
      EXPECT_EQ(r.RandBelow(nv[0].get<uint64_t>()), nv[1].get<uint64_t>()) << "n=" << nv[0];
    }
    for (const Json& s : c["sample"]) {
      const auto got = r.SampleIndices(s[0].get<int64_t>(), s[1].get<int64_t>());
      EXPECT_EQ(got, s[2].get<std::vector<int64_t>>()) << "n=" << s[0] << " k=" << s[1];
    }
    std::vector<int> x(12);
    for (int i = 0; i < 12; ++i) x[i] = i;
    r.Shuffle(&x);
    EXPECT_EQ(x, c["shuffle12"].get<std::vector<int>>());
  }
}

TEST_F(PythonRandomTest, NegativeSeedUsesItsAbsoluteValue) {
  PythonRandom a(-7), b(7);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.NextUint32(), b.NextUint32());
  PythonRandom lowest(INT64_MIN);
  PythonRandom same = PythonRandom::FromUnsigned(uint64_t{1} << 63);
  EXPECT_EQ(lowest.NextUint32(), same.NextUint32());
}

TEST_F(PythonRandomTest, RejectsImpossibleRequests) {
  PythonRandom r(1);
  EXPECT_THROW(r.RandBelow(0), std::invalid_argument);
  EXPECT_THROW(r.SampleIndices(3, 4), std::invalid_argument);
  EXPECT_THROW(r.GetRandBits(65), std::invalid_argument);
  EXPECT_EQ(r.GetRandBits(0), 0u);
}

}  // namespace
}  // namespace atp::data
