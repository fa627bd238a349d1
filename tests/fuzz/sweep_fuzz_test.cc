// Bounded fuzzing of the sweep parser: the repository's sweep files, mutated by a seeded
// random mutator. Property: ParseSweep never throws or crashes; an error names the file; a
// sweep it accepts stays within the size limit and every job spec survives the JSON round
// trip the coordinator relies on when it stores and reloads jobs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/job_spec.h"
#include "coordinator/sweep/sweep.h"
#include "tests/fuzz/mutator.h"
#include "tests/support/status_matchers.h"

namespace atp {
namespace {

std::vector<std::string> SweepSeeds() {
  std::vector<std::string> seeds;
  for (const char* relative : {"experiments/sleep.toml", "experiments/demo.toml", "experiments/paper/search.toml",
                               "experiments/paper/ablations.toml", "tests/system/sweeps/faults.toml",
                               "tests/system/sweeps/grouped.toml", "tests/system/sweeps/long.toml"}) {
    std::ifstream in(std::string(ATP_SOURCE_DIR) + "/" + relative);
    std::stringstream text;
    text << in.rdbuf();
    if (!text.str().empty()) seeds.push_back(text.str());
  }
  return seeds;
}

const std::vector<std::string> kTomlTokens = {
    "[[stage]]\n", "[axes]\n", "[params]\n", "[retry]\n", "[[override]]\n", "[[exclude]]\n", "[[include]]\n",
    " = ", "\n", "\"", "[", "]", "{", "}", ",", "inf", "-inf", "nan", "0", "-1", "1e999", "9223372036854775807",
    "-9223372036854775808", "18446744073709551616", "ranks", "hang_timeout_s", "expected_seconds", "seconds",
    "steps", "seed", "depends_on", "match", "method", "sleep", "coop", "dataset", "\"eurosat\"", "max_attempts",
    "max_lost", "1979-05-27T07:32:00Z", "true", "'''", "\\u0000", "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"};

TEST(SweepFuzzTest, MutatedSweepFilesNeverCrashTheParser) {
  const std::vector<std::string> seeds = SweepSeeds();
  ASSERT_GE(seeds.size(), 5u) << "sweep seed files not found under " << ATP_SOURCE_DIR;
  const int iterations = fuzz::FuzzIterations(10000);
  fuzz::Mutator mutator(/*seed=*/18, kTomlTokens);
  int accepted = 0;
  for (int i = 0; i < iterations; ++i) {
    const std::string input = mutator.Mutate(seeds[mutator.Below(seeds.size())], 6, 64 * 1024);
    Result<Sweep> sweep = Status::Ok();
    try {
      sweep = ParseSweep(input, "fuzz.toml");
    } catch (const std::exception& e) {
      FAIL() << "iteration " << i << ": ParseSweep threw " << e.what() << "\n--- input ---\n" << input;
    }
    if (!sweep.ok()) {
      ASSERT_EQ(sweep.status().message().rfind("fuzz.toml", 0), 0u)
          << "iteration " << i << ": the error does not name the file: " << sweep.status().message();
      continue;
    }
    ++accepted;
    ASSERT_LE(static_cast<int64_t>(sweep->jobs.size()), kMaxSweepPoints) << "iteration " << i;
    for (const JobSpec& job : sweep->jobs) {
      Result<JobSpec> reloaded = JobSpec::FromJson(Json::parse(job.ToJson().dump()));
      ASSERT_OK(reloaded) << "iteration " << i << ": a job spec does not survive storage\n--- input ---\n"
                          << input;
      ASSERT_EQ(reloaded->Key(), job.Key()) << "iteration " << i;
    }
    (void)FormatDryRun(*sweep);
  }
  std::printf("sweep fuzz: %d iterations, %d accepted sweeps\n", iterations, accepted);
  EXPECT_GT(accepted, 0);  // the mutator must also reach the expansion, not only syntax errors
}

}  // namespace
}  // namespace atp
