// BLAS kernel selection at start-up: the `atp` binary run as a user runs it (`atp version`
// prints what its process computes on), with tests/support/blas_interposer.c preloaded to
// stand in for a kernel that miscomputes and for a CPU the library does not know.
#include "common/blas_runtime.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "tests/support/shell.h"

namespace atp {
namespace {

TEST(BlasKernelTest, InstructionSetLevelsOrderTheKernels) {
  EXPECT_EQ(KernelIsaLevel("Prescott"), 1);
  EXPECT_EQ(KernelIsaLevel("sandybridge"), 2);
  EXPECT_EQ(KernelIsaLevel("Haswell"), 3);
  EXPECT_EQ(KernelIsaLevel("Zen"), 3);
  EXPECT_EQ(KernelIsaLevel("SkylakeX"), 4);
  EXPECT_EQ(KernelIsaLevel("COOPERLAKE"), 4);
  EXPECT_EQ(KernelIsaLevel("NoSuchCore"), 0);
#if defined(__x86_64__)
  EXPECT_GE(KernelIsaLevel(BestKernelForThisCpu()), 1);
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512cd")) {
    EXPECT_EQ(BestKernelForThisCpu(), "SkylakeX");
  }
#endif
}

using AtpRun = testing::ShellRun;

class BlasStartupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("ATP_BINARY_DIR");
    atp_ = std::string(dir ? dir : ".") + "/tools/atp";
    if (!std::filesystem::exists(atp_)) GTEST_SKIP() << atp_ << " is not built (set ATP_BINARY_DIR)";
    AtpRun probe = Atp("");
    if (probe.output.find("BLAS: OpenBLAS") == std::string::npos) {
      GTEST_SKIP() << "atp does not run on OpenBLAS here (no libtorch, or another BLAS): " << probe.output;
    }
  }

  // `atp version` under `env` (VAR=value words), with no inherited choice.
  AtpRun Atp(const std::string& env) const { return Atp(env, "version"); }
  // `atp ARGS` the same way.
  AtpRun Atp(const std::string& env, const std::string& args) const {
    return testing::RunShell("env -u OPENBLAS_CORETYPE -u ATP_BLAS_CORETYPE -u ATP_BLAS_STATE " + env + " " + atp_ +
                             " " + args);
  }
  // The same with none of the thread settings in the environment, and libgomp printing what
  // it reads each time it loads (OMP_DISPLAY_ENV): one block per start of the process.
  AtpRun AtpShowingOpenMp(const std::string& env, const std::string& args) const {
    return Atp("-u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u OMP_NUM_THREADS -u OPENBLAS_NUM_THREADS "
               "OMP_DISPLAY_ENV=VERBOSE " + env,
               args);
  }
  static int Starts(const std::string& output) {
    int starts = 0;
    for (size_t at = output.find("OPENMP DISPLAY ENVIRONMENT BEGIN"); at != std::string::npos;
         at = output.find("OPENMP DISPLAY ENVIRONMENT BEGIN", at + 1)) {
      ++starts;
    }
    return starts;
  }

  static std::string Preload() { return std::string("LD_PRELOAD=") + ATP_TEST_BLAS_INTERPOSER; }

  std::string atp_;
};

TEST_F(BlasStartupTest, TheDefaultChoicePassesTheCheckOnTheBestInstructionSet) {
  AtpRun run = Atp("");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("start-up check passed"), std::string::npos) << run.output;
  // Whatever the library picks, the process runs a kernel of the CPU's best instruction set.
  const size_t at = run.output.find("kernel ");
  ASSERT_NE(at, std::string::npos) << run.output;
  const std::string kernel = run.output.substr(at + 7, run.output.find_first_of(" ,(", at + 7) - at - 7);
  EXPECT_EQ(KernelIsaLevel(kernel), KernelIsaLevel(BestKernelForThisCpu())) << run.output;
}

TEST_F(BlasStartupTest, AFallbackKernelOfTheLibraryIsReplacedByTheBestOne) {
  // The library reports Prescott (SSE3) by itself, as OpenBLAS 0.3.21 does on CPUs it does not know.
  AtpRun run = Atp(Preload() + " ATP_TEST_LIBRARY_KERNEL=Prescott");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("kernel " + BestKernelForThisCpu() + " (selected by atp; the library chose Prescott)"),
            std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("start-up check passed"), std::string::npos) << run.output;
}

TEST_F(BlasStartupTest, TheUsersChoiceIsTakenAndChecked) {
  AtpRun run = Atp("ATP_BLAS_CORETYPE=Sandybridge");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("kernel Sandybridge (set by ATP_BLAS_CORETYPE)"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("start-up check passed"), std::string::npos) << run.output;
}

TEST_F(BlasStartupTest, OffLeavesTheLibrarysChoiceEvenWhenItIsAFallback) {
  AtpRun run = Atp(Preload() + " ATP_TEST_LIBRARY_KERNEL=Prescott ATP_BLAS_CORETYPE=off");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("kernel Prescott (the library's choice; ATP_BLAS_CORETYPE=off)"), std::string::npos)
      << run.output;
}

TEST_F(BlasStartupTest, AKernelThatMiscomputesIsCaughtAndTheLibrarysChoiceTakesOver) {
  // The forced kernel returns a wrong product; the start-up check must see it and fall back.
  AtpRun run = Atp(Preload() + " ATP_BLAS_CORETYPE=Haswell ATP_TEST_CORRUPT_KERNEL=Haswell");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("BLAS kernel Haswell failed the start-up check (sgemm"), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("(the library's choice; Haswell failed the start-up check)"), std::string::npos)
      << run.output;
  EXPECT_EQ(run.output.find("kernel Haswell ("), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("start-up check passed"), std::string::npos) << run.output;
}

TEST_F(BlasStartupTest, AnAutomaticChoiceThatMiscomputesFallsBackToo) {
  const std::string best = BestKernelForThisCpu();
  AtpRun run = Atp(Preload() + " ATP_TEST_LIBRARY_KERNEL=Prescott ATP_TEST_CORRUPT_KERNEL=" + best);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("BLAS kernel " + best + " failed the start-up check"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("kernel Prescott (the library's choice; " + best + " failed the start-up check)"),
            std::string::npos)
      << run.output;
}

TEST_F(BlasStartupTest, ACoreNameTheLibraryDoesNotKnowIsRejected) {
  AtpRun run = Atp("ATP_BLAS_CORETYPE=NoSuchCore");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("OpenBLAS does not know the core name 'NoSuchCore'"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("NoSuchCore failed the start-up check)"), std::string::npos) << run.output;
}

TEST_F(BlasStartupTest, AComputeCommandRestartsOnceForItsThreadSettingsAndAJobDoesNot) {
  // `version` computes like pretrain and clip: it restarts so that libgomp loads passive
  // (GOMP_SPINCOUNT 0 after OMP_WAIT_POLICY=PASSIVE).
  AtpRun version = AtpShowingOpenMp("", "version");
  ASSERT_EQ(version.exit_code, 0) << version.output;
  EXPECT_EQ(Starts(version.output), 2) << version.output;
  EXPECT_NE(version.output.rfind("GOMP_SPINCOUNT = '0'"), std::string::npos) << version.output;
  // A job command starts once (its thread count is only known from its job).
  AtpRun train = AtpShowingOpenMp("", "train --help");
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_EQ(Starts(train.output), 1) << train.output;
  // Settings already in the environment (a sweep's executors inherit them): no restart at all.
  AtpRun preset = AtpShowingOpenMp("OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1", "version");
  ASSERT_EQ(preset.exit_code, 0) << preset.output;
  EXPECT_EQ(Starts(preset.output), 1) << preset.output;
}

TEST_F(BlasStartupTest, AJobStillRestartsToLeaveAFallbackKernel) {
  AtpRun train = AtpShowingOpenMp(Preload() + " ATP_TEST_LIBRARY_KERNEL=Prescott", "train --help");
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_EQ(Starts(train.output), 2) << train.output;
  EXPECT_NE(train.output.rfind("GOMP_SPINCOUNT = '0'"), std::string::npos) << train.output;
}

}  // namespace
}  // namespace atp
