// Tests over real MPI, run as `mpirun --oversubscribe -np 4 atp_mpi_tests`: every rank runs
// every test (each test decides what its rank does), the ranks meet at a barrier after each
// test, and the process exits non-zero on every rank when a test failed on any rank.
#include <gtest/gtest.h>
#include <mpi.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/messages.h"
#include "common/mpi_communicator.h"
#include "coordinator/coordinator.h"
#include "coordinator/progress_reporter.h"
#include "coordinator/store/store.h"
#include "coordinator/sweep/sweep.h"
#include "tests/support/binary_dir.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "worker/worker.h"

namespace atp {
namespace {

Communicator* g_world = nullptr;

// Long enough for an oversubscribed machine; a message that has not come by then is lost.
constexpr double kReceiveTimeoutS = 30;

class MpiTest : public ::testing::Test {
 protected:
  Communicator& world() { return *g_world; }
  // Keeps the ranks in step: no test starts while another rank is still in the previous one.
  void TearDown() override { MPI_Barrier(MPI_COMM_WORLD); }
};

TEST_F(MpiTest, SendsAroundARing) {
  const int rank = world().rank();
  const int size = world().size();
  ASSERT_GE(size, 2);
  ASSERT_OK(world().Send((rank + 1) % size, 21, "ring from " + std::to_string(rank)));
  auto envelope = world().Receive(kReceiveTimeoutS);
  ASSERT_OK(envelope);
  ASSERT_TRUE(envelope->has_value()) << "rank " << rank << " got nothing from its left neighbour";
  const int left = (rank + size - 1) % size;
  EXPECT_EQ((*envelope)->source, left);
  EXPECT_EQ((*envelope)->tag, 21);
  EXPECT_EQ((*envelope)->payload, "ring from " + std::to_string(left));
}

TEST_F(MpiTest, KeepsOrderAndCarriesLargeAndBinaryPayloads) {
  // Rank 1 sends rank 0 a run of messages, a binary one and a 1 MiB one.
  constexpr int kMessages = 50;
  const std::string binary("\0\x01\xff\x7f", 4);
  const std::string large(1 << 20, 'x');
  if (world().rank() == 1) {
    for (int i = 0; i < kMessages; ++i) ASSERT_OK(world().Send(0, 3, std::to_string(i)));
    ASSERT_OK(world().Send(0, 4, binary));
    ASSERT_OK(world().Send(0, 5, large));
  } else if (world().rank() == 0) {
    for (int i = 0; i < kMessages; ++i) {
      auto envelope = world().Receive(kReceiveTimeoutS);
      ASSERT_OK(envelope);
      ASSERT_TRUE(envelope->has_value()) << "message " << i;
      EXPECT_EQ((*envelope)->payload, std::to_string(i));
    }
    auto b = world().Receive(kReceiveTimeoutS);
    ASSERT_OK(b);
    ASSERT_TRUE(b->has_value());
    EXPECT_EQ((*b)->tag, 4);
    EXPECT_EQ((*b)->payload, binary);
    auto l = world().Receive(kReceiveTimeoutS);
    ASSERT_OK(l);
    ASSERT_TRUE(l->has_value());
    EXPECT_EQ((*l)->tag, 5);
    EXPECT_EQ((*l)->payload.size(), large.size());
    EXPECT_TRUE((*l)->payload == large);
  }
}

TEST_F(MpiTest, ReceiveTimesOutWithNothing) {
  auto envelope = world().Receive(0.2);
  ASSERT_OK(envelope);
  EXPECT_FALSE(envelope->has_value());
  auto looked = world().Receive(0);
  ASSERT_OK(looked);
  EXPECT_FALSE(looked->has_value());
}

TEST_F(MpiTest, SendToAnInvalidRankReturnsAnErrorInsteadOfAborting) {
  // MPI_ERRORS_RETURN is set on the world communicator: an MPI error becomes a Status that
  // names the call, not an abort of the whole job.
  Status status = world().Send(world().size() + 5, 1, "nowhere");
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kInternal);
  EXPECT_NE(status.message().find("MPI_Send"), std::string::npos) << status.message();
}

TEST_F(MpiTest, GroupOfRanksOneToThreeReducesAndBroadcastsWithoutRankZero) {
  if (world().size() != 4) GTEST_SKIP() << "needs exactly 4 ranks (mpirun -np 4)";
  const int rank = world().rank();
  if (rank == 0) return;  // not a member: must not be needed by the group's collectives
  auto created = world().CreateGroup({1, 2, 3}, 5);
  ASSERT_OK(created);
  std::unique_ptr<GroupCommunicator> group = std::move(created).value();
  EXPECT_EQ(group->rank(), rank - 1);
  EXPECT_EQ(group->size(), 3);
  for (int round = 0; round < 20; ++round) {
    std::vector<float> floats = {static_cast<float>(rank), 1.5f, static_cast<float>(round)};
    ASSERT_OK(group->AllreduceSum(floats.data(), floats.size()));
    EXPECT_EQ(floats, (std::vector<float>{6.0f, 4.5f, 3.0f * round}));
    std::vector<double> doubles = {rank * 0.25, 1e12};
    ASSERT_OK(group->AllreduceSum(doubles.data(), doubles.size()));
    EXPECT_EQ(doubles, (std::vector<double>{1.5, 3e12}));
  }
  std::string bytes = "from world rank " + std::to_string(rank);
  ASSERT_OK(group->Broadcast(&bytes, 2));  // group rank 2 is world rank 3
  EXPECT_EQ(bytes, "from world rank 3");
  std::string large = group->rank() == 0 ? std::string(100000, 'q') : std::string("short");
  ASSERT_OK(group->Broadcast(&large, 0));
  EXPECT_EQ(large, std::string(100000, 'q'));
}

TEST_F(MpiTest, ConcurrentPairGroupsDoNotMix) {
  if (world().size() != 4) GTEST_SKIP() << "needs exactly 4 ranks (mpirun -np 4)";
  const int rank = world().rank();
  std::vector<int> members = rank < 2 ? std::vector<int>{0, 1} : std::vector<int>{2, 3};
  auto created = world().CreateGroup(members, rank < 2 ? 11 : 12);
  ASSERT_OK(created);
  std::unique_ptr<GroupCommunicator> group = std::move(created).value();
  double value = rank * 10;
  ASSERT_OK(group->AllreduceSum(&value, 1));
  EXPECT_EQ(value, rank < 2 ? 10.0 : 50.0);
}

// --- coordinator and workers end to end ---

constexpr const char* kSweepToml = R"(
[sweep]
name = "mpi-end-to-end"
code_version = "1"

[axes]
seed = [1, 2, 3, 4]

[[stage]]
name = "pairs"
method = "sleep"
params = { seconds = 0.2, steps = 2 }
ranks = 2

[[stage]]
name = "singles"
method = "sleep"
params = { seconds = 0.2, steps = 2, value = 0.5 }

[[stage]]
name = "summary"
method = "sleep"
over = []
params = { seconds = 0.1, steps = 1 }
depends_on = [{ stage = "singles", match = [] }]
)";

// Rank 0 when the test cannot run the coordinator: lets the workers return.
void ReleaseWorkers(Communicator& world) {
  std::string bytes = EncodeMessage(Message{MessageType::kShutdown, Json::object()});
  for (int rank = 1; rank < world.size(); ++rank) (void)world.Send(rank, kProtocolTag, bytes);
}

double Metric(Store& store, int64_t job_id, const std::string& name) {
  sqlite3_stmt* statement = nullptr;
  double value = -1;
  if (sqlite3_prepare_v2(store.handle(), "SELECT value FROM metrics WHERE job_id = ? AND name = ?", -1, &statement,
                         nullptr) != SQLITE_OK) {
    return value;
  }
  sqlite3_bind_int64(statement, 1, job_id);
  sqlite3_bind_text(statement, 2, name.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(statement) == SQLITE_ROW) value = sqlite3_column_double(statement, 0);
  sqlite3_finalize(statement);
  return value;
}

// Runs `toml` with rank 0 as the coordinator and every other rank as a worker. On rank 0,
// `check` then inspects the summary and the store. Every rank must call it.
void RunSweepOnAllRanks(Communicator& world, const char* toml,
                        const std::function<void(const RunSummary&, Store&)>& check) {
  // Every rank must take the same branch, or the others would wait forever.
  const std::string executor = testing::SweepExecutable();
  int usable = !executor.empty() && ::access(executor.c_str(), X_OK) == 0;
  MPI_Allreduce(MPI_IN_PLACE, &usable, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  // atp-sweep is a dependency of this binary: missing on any rank, the build is broken.
  ASSERT_TRUE(usable) << "'" << executor << "' is missing on some rank (build atp-sweep, or set ATP_BINARY_DIR)";

  if (world.rank() != 0) {
    WorkerOptions options;
    options.executor_binary = executor;
    options.heartbeat_interval_s = 0.5;
    Worker worker(&world, options, RealClock(), nullptr);
    Status status = worker.Run();
    EXPECT_OK(status) << "worker rank " << world.rank();
    return;
  }

  testing::TempDir temp_dir;  // removed after the store below is closed
  const std::string dir = temp_dir.path();
  auto sweep = ParseSweep(toml, "<mpi_test>");
  if (!sweep.ok()) {
    ReleaseWorkers(world);
    FAIL() << sweep.status().ToString();
  }
  auto store = Store::OpenWriter(dir + "/results.db");
  if (!store.ok()) {
    ReleaseWorkers(world);
    FAIL() << store.status().ToString();
  }
  ProgressReporter reporter(ProgressMode::kQuiet, stderr, RealClock(), 30);
  CoordinatorOptions options;
  options.jobs_dir = dir + "/jobs";
  options.startup_timeout_s = 60;
  options.heartbeat_timeout_s = 60;
  Coordinator coordinator(&world, store->get(), &reporter, options, RealClock(), nullptr);
  auto summary = coordinator.Run(*sweep);
  if (!summary.ok()) {
    ReleaseWorkers(world);
    FAIL() << summary.status().ToString();
  }
  check(*summary, **store);
  store->reset();
}

TEST_F(MpiTest, CoordinatorAndWorkersRunASweepToTheEnd) {
  RunSweepOnAllRanks(world(), kSweepToml, [](const RunSummary& summary, Store& store) {
    EXPECT_EQ(summary.total, 9);
    EXPECT_EQ(summary.done, 9);
    EXPECT_EQ(summary.failed, 0);
    EXPECT_EQ(summary.blocked, 0);
    EXPECT_EQ(summary.lost_ranks, 0);
    EXPECT_FALSE(summary.interrupted);
    auto jobs = store.LoadSweepJobs(summary.sweep_id);
    ASSERT_OK(jobs);
    ASSERT_EQ(jobs->size(), 9u);
    for (const auto& job : *jobs) {
      EXPECT_EQ(job.state, JobState::kDone) << job.spec.stage << " " << job.key << ": " << job.error;
      if (job.spec.stage == "pairs") {
        // Both ranks of the pair formed the job's group: 1 + 2.
        EXPECT_DOUBLE_EQ(Metric(store, job.id, "group_rank_sum"), 3.0) << job.key;
      }
      if (job.spec.stage == "summary") {
        // The four singles' outputs reached the job that depends on them.
        EXPECT_DOUBLE_EQ(Metric(store, job.id, "upstream_value_sum"), 2.0) << job.key;
      }
    }
  });
}

constexpr const char* kCrashingSweepToml = R"(
[sweep]
name = "mpi-crash"
code_version = "1"

[axes]
seed = [1, 2, 3]

[[stage]]
name = "flaky"
method = "sleep"
params = { seconds = 0.1, steps = 1, fail = "segfault", fail_attempts = 1 }
)";

TEST_F(MpiTest, JobThatSegfaultsLeavesItsRankAliveAndIsRetried) {
  // Each job crashes on its first attempt only: the executor dies, the MPI rank does not,
  // and the retry on a fresh executor succeeds.
  RunSweepOnAllRanks(world(), kCrashingSweepToml, [](const RunSummary& summary, Store& store) {
    EXPECT_EQ(summary.done, 3);
    EXPECT_EQ(summary.failed, 0);
    EXPECT_EQ(summary.lost_ranks, 0);
    auto jobs = store.LoadSweepJobs(summary.sweep_id);
    ASSERT_OK(jobs);
    for (const auto& job : *jobs) {
      EXPECT_EQ(job.state, JobState::kDone) << job.key << ": " << job.error;
      EXPECT_EQ(job.total_attempts, 2) << job.key;
    }
  });
}

// Prints a failing rank's failures (the default printer runs on rank 0 only).
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, result.file_name() ? result.file_name() : "?",
                 result.line_number(), result.summary());
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed()) {
      std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
    }
  }

 private:
  int rank_;
};

}  // namespace
}  // namespace atp

int main(int argc, char** argv) {
  auto scope = atp::MpiScope::Init(&argc, &argv);
  if (!scope.ok()) {
    std::fprintf(stderr, "atp_mpi_tests: %s\n", scope.status().ToString().c_str());
    return 2;
  }
  ::testing::InitGoogleTest(&argc, argv);
  auto world = atp::MakeMpiWorldCommunicator();
  atp::g_world = world.get();
  const int rank = world->rank();
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new atp::RankFailurePrinter(rank));
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  // A failure on any rank fails every rank, so mpirun and ctest see it whichever rank it was.
  int any_failed = failed;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && any_failed && !failed) std::fprintf(stderr, "atp_mpi_tests: a test failed on another rank (see above)\n");
  atp::g_world = nullptr;
  world.reset();
  scope->reset();  // MPI_Finalize
  return any_failed;
}
