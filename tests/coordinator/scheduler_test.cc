#include "coordinator/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace atp {
namespace {

class SchedulerTest : public ::testing::Test {
 protected:
  // Worker ranks numbered from 1 (rank 0 is the coordinator), node after node.
  static std::vector<WorkerRank> Nodes(const std::vector<std::pair<std::string, int>>& nodes) {
    std::vector<WorkerRank> workers;
    int rank = 1;
    for (const auto& [name, count] : nodes) {
      for (int i = 0; i < count; ++i) workers.push_back(WorkerRank{rank++, name});
    }
    return workers;
  }

  static SchedulerJob Job(int64_t id, double seconds, std::vector<int64_t> upstream = {}, int ranks = 1) {
    SchedulerJob job;
    job.id = id;
    job.expected_seconds = seconds;
    job.upstream = std::move(upstream);
    job.ranks = ranks;
    return job;
  }

  static std::vector<int64_t> Ids(const std::vector<Assignment>& assignments) {
    std::vector<int64_t> ids;
    for (const auto& a : assignments) ids.push_back(a.job_id);
    return ids;
  }

  static const Assignment* Find(const std::vector<Assignment>& assignments, int64_t job_id) {
    for (const auto& a : assignments) {
      if (a.job_id == job_id) return &a;
    }
    return nullptr;
  }

  static std::vector<int64_t> Sorted(std::vector<int64_t> ids) {
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  void Done(Scheduler& s, int64_t id) {
    std::vector<int64_t> blocked;
    s.OnAttemptEnded(id, Scheduler::Outcome::kDone, &blocked);
    EXPECT_TRUE(blocked.empty());
  }
};

TEST_F(SchedulerTest, DownstreamIsNotReadyBeforeUpstreamIsDone) {
  Scheduler s(Nodes({{"a", 4}}));
  s.AddJob(Job(1, 1), JobState::kPending);
  s.AddJob(Job(2, 1, {1}), JobState::kPending);
  s.Finalize();
  EXPECT_EQ(s.ready(), 1);
  EXPECT_EQ(s.waiting(), 1);

  // Idle ranks are left idle rather than start job 2 early.
  EXPECT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{1}));
  EXPECT_TRUE(s.Schedule().empty());

  Done(s, 1);
  EXPECT_EQ(s.waiting(), 0);
  EXPECT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{2}));
}

TEST_F(SchedulerTest, JobWithTwoUpstreamsWaitsForBoth) {
  Scheduler s(Nodes({{"a", 4}}));
  s.AddJob(Job(1, 1), JobState::kPending);
  s.AddJob(Job(2, 1), JobState::kPending);
  s.AddJob(Job(3, 1, {1, 2}), JobState::kPending);
  s.Finalize();
  EXPECT_EQ(Sorted(Ids(s.Schedule())), (std::vector<int64_t>{1, 2}));
  Done(s, 1);
  EXPECT_TRUE(s.Schedule().empty());
  Done(s, 2);
  EXPECT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{3}));
}

TEST_F(SchedulerTest, BlocksDownstreamOfFailedJob) {
  // 1 -> 2 -> 3, 1 -> 4, and a diamond below 2: 2 -> 5, 4 -> 5. Job 6 is independent.
  Scheduler s(Nodes({{"a", 1}}));
  s.AddJob(Job(1, 10), JobState::kPending);
  s.AddJob(Job(2, 1, {1}), JobState::kPending);
  s.AddJob(Job(3, 1, {2}), JobState::kPending);
  s.AddJob(Job(4, 1, {1}), JobState::kPending);
  s.AddJob(Job(5, 1, {2, 4}), JobState::kPending);
  s.AddJob(Job(6, 1), JobState::kPending);
  s.Finalize();
  ASSERT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{1}));

  std::vector<int64_t> blocked;
  s.OnAttemptEnded(1, Scheduler::Outcome::kFailed, &blocked);
  // Every job below the failed one, each reported once.
  EXPECT_EQ(Sorted(blocked), (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(s.waiting(), 0);
  EXPECT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{6}));
  Done(s, 6);
  EXPECT_FALSE(s.HasWork());
}

TEST_F(SchedulerTest, JobBelowAFailedAndADoneUpstreamStaysBlocked) {
  Scheduler s(Nodes({{"a", 2}}));
  s.AddJob(Job(1, 1), JobState::kPending);
  s.AddJob(Job(2, 1), JobState::kPending);
  s.AddJob(Job(3, 1, {1, 2}), JobState::kPending);
  s.Finalize();
  ASSERT_EQ(s.Schedule().size(), 2u);
  std::vector<int64_t> blocked;
  s.OnAttemptEnded(1, Scheduler::Outcome::kFailed, &blocked);
  EXPECT_EQ(blocked, (std::vector<int64_t>{3}));
  Done(s, 2);  // the other upstream finishing must not revive the blocked job
  EXPECT_TRUE(s.Schedule().empty());
  EXPECT_FALSE(s.HasWork());
}

TEST_F(SchedulerTest, RetryMakesTheJobReadyAgain) {
  Scheduler s(Nodes({{"a", 1}}));
  s.AddJob(Job(1, 1), JobState::kPending);
  s.AddJob(Job(2, 1, {1}), JobState::kPending);
  s.Finalize();
  ASSERT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{1}));
  std::vector<int64_t> blocked;
  s.OnAttemptEnded(1, Scheduler::Outcome::kRetry, &blocked);
  EXPECT_TRUE(blocked.empty());
  EXPECT_EQ(s.ready(), 1);
  EXPECT_EQ(s.running(), 0);
  EXPECT_EQ(s.waiting(), 1);  // the dependent still waits
  EXPECT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{1}));
  Done(s, 1);
  EXPECT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{2}));
}

TEST_F(SchedulerTest, RunsHeadOfLongerChainBeforeLongerIndependentJob) {
  // Chain 2 -> 3 is 3 + 3 = 6 s in total; job 1 alone is 5 s. Job 1 is added first, so
  // only the critical-path priority can put job 2 ahead of it.
  Scheduler s(Nodes({{"a", 1}}));
  s.AddJob(Job(1, 5), JobState::kPending);
  s.AddJob(Job(2, 3), JobState::kPending);
  s.AddJob(Job(3, 3, {2}), JobState::kPending);
  s.Finalize();
  EXPECT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{2}));
  Done(s, 2);
  // Now 3 (3 s) and 1 (5 s) are both ready and independent: the longer goes first.
  EXPECT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{1}));
  Done(s, 1);
  EXPECT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{3}));
}

TEST_F(SchedulerTest, RunsLongestIndependentJobFirst) {
  Scheduler s(Nodes({{"a", 1}}));
  const std::map<int64_t, double> seconds = {{1, 1}, {2, 7}, {3, 3}, {4, 5}, {5, 2}};
  for (const auto& [id, sec] : seconds) s.AddJob(Job(id, sec), JobState::kPending);
  s.Finalize();
  std::vector<int64_t> order;
  while (s.HasWork()) {
    auto assigned = s.Schedule();
    ASSERT_EQ(assigned.size(), 1u);
    order.push_back(assigned[0].job_id);
    Done(s, assigned[0].job_id);
  }
  EXPECT_EQ(order, (std::vector<int64_t>{2, 4, 3, 5, 1}));
}

TEST_F(SchedulerTest, EqualPrioritiesRunInInsertionOrder) {
  Scheduler s(Nodes({{"a", 1}}));
  for (int64_t id : {5, 3, 9}) s.AddJob(Job(id, 2), JobState::kPending);
  s.Finalize();
  std::vector<int64_t> order;
  while (s.HasWork()) {
    auto assigned = s.Schedule();
    ASSERT_EQ(assigned.size(), 1u);
    order.push_back(assigned[0].job_id);
    Done(s, assigned[0].job_id);
  }
  EXPECT_EQ(order, (std::vector<int64_t>{5, 3, 9}));
}

TEST_F(SchedulerTest, PlacesJobsOnThePartlyUsedNodeFirst) {
  // a: ranks 1-4, b: ranks 5-7. X (1 rank) goes to the node with the fewest idle ranks
  // that fit (b); Y (2 ranks) then fills b, which leaves a whole for Z (3 ranks).
  Scheduler s(Nodes({{"a", 4}, {"b", 3}}));
  s.AddJob(Job(1, 10, {}, 1), JobState::kPending);  // X
  s.AddJob(Job(2, 5, {}, 2), JobState::kPending);   // Y
  s.AddJob(Job(3, 4, {}, 3), JobState::kPending);   // Z
  s.Finalize();
  auto assigned = s.Schedule();
  ASSERT_EQ(assigned.size(), 3u);
  ASSERT_NE(Find(assigned, 1), nullptr);
  ASSERT_NE(Find(assigned, 2), nullptr);
  ASSERT_NE(Find(assigned, 3), nullptr);
  EXPECT_EQ(Find(assigned, 1)->ranks, (std::vector<int>{5}));
  EXPECT_EQ(Find(assigned, 2)->ranks, (std::vector<int>{6, 7}));
  EXPECT_EQ(Find(assigned, 3)->ranks, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(s.busy_ranks(), 6);
}

TEST_F(SchedulerTest, NeverSplitsAMultiRankJobAcrossNodes) {
  // Four one-rank jobs fill a (1, 2) and b (3, 4); then one rank frees on each node.
  Scheduler s(Nodes({{"a", 2}, {"b", 2}}));
  for (int64_t id = 1; id <= 4; ++id) s.AddJob(Job(id, 10), JobState::kPending);
  s.AddJob(Job(5, 1, {}, 2), JobState::kPending);
  s.Finalize();
  auto first = s.Schedule();
  ASSERT_EQ(first.size(), 4u);
  std::map<int, int64_t> job_on_rank;
  for (const auto& a : first) job_on_rank[a.ranks.at(0)] = a.job_id;
  ASSERT_EQ(job_on_rank.size(), 4u);

  Done(s, job_on_rank[1]);
  Done(s, job_on_rank[3]);
  // Two idle ranks, but on different nodes: the two-rank job must wait.
  EXPECT_TRUE(s.Schedule().empty());
  Done(s, job_on_rank[2]);
  auto second = s.Schedule();
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].job_id, 5);
  EXPECT_EQ(second[0].ranks, (std::vector<int>{1, 2}));
}

TEST_F(SchedulerTest, ReservesNodeSoMultiRankJobIsNotStarved) {
  // One node of two ranks, both busy with P1 and P2. The two-rank job L is the most
  // urgent ready job; a stream of one-rank jobs must not take each rank as it frees.
  Scheduler s(Nodes({{"a", 2}}));
  s.AddJob(Job(1, 100), JobState::kPending);        // P1
  s.AddJob(Job(2, 99), JobState::kPending);         // P2
  s.AddJob(Job(3, 50, {}, 2), JobState::kPending);  // L
  for (int64_t id = 10; id < 30; ++id) s.AddJob(Job(id, 1), JobState::kPending);
  s.Finalize();
  ASSERT_EQ(Sorted(Ids(s.Schedule())), (std::vector<int64_t>{1, 2}));

  Done(s, 1);
  EXPECT_TRUE(s.Schedule().empty()) << "a small job took the rank reserved for the two-rank job";
  Done(s, 2);
  auto assigned = s.Schedule();
  ASSERT_EQ(Ids(assigned), (std::vector<int64_t>{3}));
  EXPECT_EQ(assigned[0].ranks, (std::vector<int>{1, 2}));
}

TEST_F(SchedulerTest, SmallJobsBackfillOtherNodesWhileOneIsReserved) {
  // a (ranks 1-3) is held for the three-rank job L once it is the node closest to fitting
  // it; b (ranks 4, 5) keeps taking small jobs meanwhile.
  Scheduler s(Nodes({{"a", 3}, {"b", 2}}));
  for (int64_t id = 1; id <= 5; ++id) s.AddJob(Job(id, 101 - id), JobState::kPending);  // P1..P5
  s.AddJob(Job(6, 50, {}, 3), JobState::kPending);  // L
  for (int64_t id = 10; id < 20; ++id) s.AddJob(Job(id, 1), JobState::kPending);
  s.Finalize();
  auto first = s.Schedule();
  ASSERT_EQ(first.size(), 5u);
  std::map<int, int64_t> job_on_rank;
  for (const auto& a : first) job_on_rank[a.ranks.at(0)] = a.job_id;
  ASSERT_EQ(job_on_rank.size(), 5u);

  Done(s, job_on_rank[1]);
  Done(s, job_on_rank[2]);
  EXPECT_TRUE(s.Schedule().empty()) << "a small job took a rank held for the three-rank job";

  Done(s, job_on_rank[4]);  // b frees a rank: a small job backfills it
  auto backfill = s.Schedule();
  ASSERT_EQ(backfill.size(), 1u);
  EXPECT_GE(backfill[0].job_id, 10);
  EXPECT_EQ(backfill[0].ranks, (std::vector<int>{4}));

  Done(s, job_on_rank[3]);
  auto assigned = s.Schedule();
  ASSERT_EQ(assigned.size(), 1u);
  EXPECT_EQ(assigned[0].job_id, 6);
  EXPECT_EQ(assigned[0].ranks, (std::vector<int>{1, 2, 3}));
}

TEST_F(SchedulerTest, ReservationSkipsNodesTooSmallForTheJob) {
  // Node a has one rank and can never hold the two-rank job L; only b (ranks 2, 3) can.
  // When one rank is idle on each node, b must be the one held for L (a may backfill),
  // otherwise small jobs keep landing on b and L starves.
  Scheduler s(Nodes({{"a", 1}, {"b", 2}}));
  s.AddJob(Job(1, 100), JobState::kPending);        // P1
  s.AddJob(Job(2, 99), JobState::kPending);         // P2
  s.AddJob(Job(3, 50, {}, 2), JobState::kPending);  // L
  for (int64_t id = 10; id < 20; ++id) s.AddJob(Job(id, 1), JobState::kPending);
  s.Finalize();
  auto first = s.Schedule();
  ASSERT_EQ(first.size(), 2u);
  std::map<int64_t, int> rank_of_job;
  for (const auto& a : first) rank_of_job[a.job_id] = a.ranks.at(0);
  ASSERT_EQ(rank_of_job[1], 1);  // best fit: P1 on the one-rank node
  ASSERT_EQ(rank_of_job[2], 2);

  Done(s, 1);  // a idle, b has one idle rank
  auto backfill = s.Schedule();
  for (const auto& a : backfill) {
    EXPECT_EQ(a.ranks, (std::vector<int>{1})) << "job " << a.job_id << " took a rank of the node L needs";
  }
  Done(s, 2);  // b is now free unless a small job took rank 3
  auto assigned = s.Schedule();
  const Assignment* big = Find(assigned, 3);
  ASSERT_NE(big, nullptr) << "the two-rank job did not start once its node was free";
  EXPECT_EQ(big->ranks, (std::vector<int>{2, 3}));
}

TEST_F(SchedulerTest, ReportsJobsLargerThanAnyNodeAsUnschedulable) {
  Scheduler s(Nodes({{"a", 2}, {"b", 2}}));
  s.AddJob(Job(1, 5, {}, 3), JobState::kPending);  // needs 3 ranks on one node
  s.AddJob(Job(2, 1, {1}), JobState::kPending);
  s.AddJob(Job(3, 1), JobState::kPending);
  s.Finalize();
  EXPECT_EQ(s.TakeUnschedulable(), (std::vector<int64_t>{1}));
  EXPECT_TRUE(s.TakeUnschedulable().empty());  // taken once
  EXPECT_EQ(s.ready(), 1);
  EXPECT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{3}));

  // The caller fails it, which blocks its dependents.
  std::vector<int64_t> blocked;
  s.OnAttemptEnded(1, Scheduler::Outcome::kFailed, &blocked);
  EXPECT_EQ(blocked, (std::vector<int64_t>{2}));
  Done(s, 3);
  EXPECT_FALSE(s.HasWork());
}

TEST_F(SchedulerTest, DownstreamJobTooLargeBecomesUnschedulableWhenReady) {
  Scheduler s(Nodes({{"a", 2}}));
  s.AddJob(Job(1, 1), JobState::kPending);
  s.AddJob(Job(2, 1, {1}, 3), JobState::kPending);
  s.Finalize();
  EXPECT_TRUE(s.TakeUnschedulable().empty());
  ASSERT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{1}));
  Done(s, 1);
  EXPECT_EQ(s.TakeUnschedulable(), (std::vector<int64_t>{2}));
  EXPECT_EQ(s.ready(), 0);
  EXPECT_TRUE(s.Schedule().empty());
}

TEST_F(SchedulerTest, OnRankLostReturnsItsJobAndTakesNoMoreWork) {
  Scheduler s(Nodes({{"a", 2}}));
  s.AddJob(Job(1, 10), JobState::kPending);
  s.AddJob(Job(2, 5), JobState::kPending);
  s.Finalize();
  auto first = s.Schedule();
  ASSERT_EQ(first.size(), 2u);
  const int rank_of_1 = Find(first, 1)->ranks.at(0);
  const int rank_of_2 = Find(first, 2)->ranks.at(0);

  EXPECT_EQ(s.OnRankLost(rank_of_1), 1);
  EXPECT_EQ(s.live_ranks(), 1);
  std::vector<int64_t> blocked;
  s.OnAttemptEnded(1, Scheduler::Outcome::kRetry, &blocked);
  EXPECT_TRUE(s.Schedule().empty()) << "the lost rank was given a job";
  Done(s, 2);
  auto again = s.Schedule();
  ASSERT_EQ(Ids(again), (std::vector<int64_t>{1}));
  EXPECT_EQ(again[0].ranks, (std::vector<int>{rank_of_2}));
  EXPECT_EQ(s.busy_ranks(), 1);
}

TEST_F(SchedulerTest, OnRankLostOfIdleOrUnknownRankReturnsNoJob) {
  Scheduler s(Nodes({{"a", 3}}));
  for (int64_t id = 1; id <= 6; ++id) s.AddJob(Job(id, 1), JobState::kPending);
  s.Finalize();
  EXPECT_EQ(s.OnRankLost(3), 0);
  EXPECT_EQ(s.OnRankLost(3), 0);   // lost twice
  EXPECT_EQ(s.OnRankLost(42), 0);  // never a worker
  EXPECT_EQ(s.live_ranks(), 2);
  std::set<int> used;
  while (s.HasWork()) {
    auto assigned = s.Schedule();
    ASSERT_FALSE(assigned.empty());
    for (const auto& a : assigned) {
      used.insert(a.ranks.begin(), a.ranks.end());
      Done(s, a.job_id);
    }
  }
  EXPECT_EQ(used, (std::set<int>{1, 2}));
}

TEST_F(SchedulerTest, OnRankLostMakesJobsThatNoLongerFitUnschedulable) {
  Scheduler s(Nodes({{"a", 2}, {"b", 1}}));
  s.AddJob(Job(1, 100), JobState::kPending);
  s.AddJob(Job(2, 99), JobState::kPending);
  s.AddJob(Job(3, 98), JobState::kPending);
  s.AddJob(Job(4, 50, {}, 2), JobState::kPending);  // waits for a to be free
  s.Finalize();
  auto first = s.Schedule();
  ASSERT_EQ(first.size(), 3u);
  int64_t job_on_rank_2 = 0;
  for (const auto& a : first) {
    if (a.ranks.at(0) == 2) job_on_rank_2 = a.job_id;
  }
  EXPECT_EQ(s.OnRankLost(2), job_on_rank_2);
  // No node has two live ranks any more.
  EXPECT_EQ(s.TakeUnschedulable(), (std::vector<int64_t>{4}));
  EXPECT_EQ(s.ready(), 0);
}

TEST_F(SchedulerTest, CountsReadyRunningWaitingAndIdle) {
  Scheduler s(Nodes({{"a", 1}}));
  s.AddJob(Job(1, 5), JobState::kPending);
  s.AddJob(Job(2, 5, {1}), JobState::kPending);
  s.AddJob(Job(3, 1), JobState::kPending);
  s.Finalize();
  EXPECT_TRUE(s.HasWork());
  EXPECT_TRUE(s.Idle());
  EXPECT_EQ(s.ready(), 2);
  EXPECT_EQ(s.waiting(), 1);
  EXPECT_EQ(s.running(), 0);
  EXPECT_EQ(s.live_ranks(), 1);
  EXPECT_EQ(s.busy_ranks(), 0);

  ASSERT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{1}));
  EXPECT_FALSE(s.Idle());
  EXPECT_EQ(s.ready(), 1);
  EXPECT_EQ(s.running(), 1);
  EXPECT_EQ(s.busy_ranks(), 1);

  Done(s, 1);
  EXPECT_TRUE(s.Idle());
  EXPECT_EQ(s.ready(), 2);
  EXPECT_EQ(s.waiting(), 0);
  EXPECT_EQ(s.busy_ranks(), 0);

  for (int64_t expected : {2, 3}) {
    auto assigned = s.Schedule();
    ASSERT_EQ(Ids(assigned), (std::vector<int64_t>{expected}));
    EXPECT_TRUE(s.HasWork());
    Done(s, expected);
  }
  EXPECT_FALSE(s.HasWork());
  EXPECT_TRUE(s.Idle());
  EXPECT_EQ(s.ready(), 0);
  EXPECT_EQ(s.running(), 0);
}

TEST_F(SchedulerTest, NoWorkLeftOnceEverythingBelowAFailureIsBlocked) {
  Scheduler s(Nodes({{"a", 1}}));
  s.AddJob(Job(1, 1), JobState::kPending);
  s.AddJob(Job(2, 1, {1}), JobState::kPending);
  s.AddJob(Job(3, 1, {2}), JobState::kPending);
  s.Finalize();
  EXPECT_EQ(s.waiting(), 2);
  ASSERT_EQ(s.Schedule().size(), 1u);
  std::vector<int64_t> blocked;
  s.OnAttemptEnded(1, Scheduler::Outcome::kFailed, &blocked);
  EXPECT_EQ(s.waiting(), 0);
  EXPECT_FALSE(s.HasWork());
  EXPECT_TRUE(s.Idle());
}

TEST_F(SchedulerTest, DoneJobsGivenAtAddJobSatisfyDependents) {
  Scheduler s(Nodes({{"a", 2}}));
  s.AddJob(Job(1, 1), JobState::kDone);
  s.AddJob(Job(2, 1, {1}), JobState::kPending);
  s.AddJob(Job(3, 1, {2}), JobState::kPending);
  s.Finalize();
  EXPECT_EQ(s.ready(), 1);
  EXPECT_EQ(s.waiting(), 1);
  EXPECT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{2}));  // the done job is not run again
}

TEST_F(SchedulerTest, FailedJobsGivenAtAddJobBlockDependents) {
  Scheduler s(Nodes({{"a", 2}}));
  s.AddJob(Job(1, 1), JobState::kFailed);
  s.AddJob(Job(2, 1, {1}), JobState::kPending);
  s.AddJob(Job(3, 1, {2}), JobState::kPending);
  s.AddJob(Job(4, 1), JobState::kBlocked);
  s.AddJob(Job(5, 1, {4}), JobState::kPending);
  s.AddJob(Job(6, 1), JobState::kPending);
  s.Finalize();
  EXPECT_EQ(s.ready(), 1);
  EXPECT_EQ(s.waiting(), 0);
  EXPECT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{6}));
  Done(s, 6);
  EXPECT_FALSE(s.HasWork());
}

TEST_F(SchedulerTest, RecordedRunningJobIsScheduledAsPending) {
  Scheduler s(Nodes({{"a", 1}}));
  s.AddJob(Job(1, 1), JobState::kRunning);
  s.Finalize();
  EXPECT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{1}));
}

TEST_F(SchedulerTest, UpstreamOutsideTheJobSetIsSatisfied) {
  Scheduler s(Nodes({{"a", 1}}));
  s.AddJob(Job(7, 1, {3}), JobState::kPending);  // job 3 belongs to another sweep, long done
  s.Finalize();
  EXPECT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{7}));
}

// --- pipelining of short jobs (Prefetch) ---

bool AllShort(int64_t) { return true; }
bool NoneShort(int64_t) { return false; }

TEST_F(SchedulerTest, PrefetchQueuesTheNextJobBehindAShortRunningOne) {
  Scheduler s(Nodes({{"a", 1}}));
  for (int64_t id = 1; id <= 3; ++id) s.AddJob(Job(id, 0.1), JobState::kPending);
  s.Finalize();
  ASSERT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{1}));
  auto queued = s.Prefetch(AllShort);
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(queued[0].ranks, (std::vector<int>{1}));
  const int64_t second = queued[0].job_id;
  EXPECT_EQ(s.QueuedOnRank(1), (std::vector<int64_t>{second}));
  EXPECT_TRUE(s.Prefetch(AllShort).empty());  // at most one job queued per rank
  EXPECT_EQ(s.running(), 2);                   // queued jobs count as running

  // The running job ends: the queued one takes the rank over, which stays busy.
  Done(s, 1);
  EXPECT_TRUE(s.QueuedOnRank(1).empty());
  EXPECT_EQ(s.busy_ranks(), 1);
  EXPECT_EQ(s.running(), 1);
  EXPECT_TRUE(s.Schedule().empty());
  ASSERT_EQ(s.Prefetch(AllShort).size(), 1u);
  Done(s, second);
  Done(s, 3 + 2 - second);  // the remaining one of jobs 2 and 3
  EXPECT_FALSE(s.HasWork());
  EXPECT_EQ(s.busy_ranks(), 0);
}

TEST_F(SchedulerTest, PrefetchLeavesLongJobsAlone) {
  Scheduler s(Nodes({{"a", 1}}));
  s.AddJob(Job(1, 100), JobState::kPending);
  s.AddJob(Job(2, 100), JobState::kPending);
  s.Finalize();
  ASSERT_EQ(s.Schedule().size(), 1u);
  EXPECT_TRUE(s.Prefetch(NoneShort).empty());
  EXPECT_EQ(s.ready(), 1);
}

TEST_F(SchedulerTest, NoPrefetchWhileAMultiRankJobIsReady) {
  Scheduler s(Nodes({{"a", 2}}));
  s.AddJob(Job(1, 10), JobState::kPending);
  s.AddJob(Job(2, 9), JobState::kPending);
  s.AddJob(Job(3, 5, {}, 2), JobState::kPending);
  s.AddJob(Job(4, 0.1), JobState::kPending);
  s.Finalize();
  ASSERT_EQ(s.Schedule().size(), 2u);
  EXPECT_TRUE(s.Prefetch(AllShort).empty()) << "a one-rank job was queued on a rank the two-rank job needs";
}

TEST_F(SchedulerTest, QueuedJobEndingFirstLeavesTheRunningJobItsRank) {
  Scheduler s(Nodes({{"a", 1}}));
  s.AddJob(Job(1, 0.1), JobState::kPending);
  s.AddJob(Job(2, 0.1), JobState::kPending);
  s.Finalize();
  ASSERT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{1}));
  ASSERT_EQ(Ids(s.Prefetch(AllShort)), (std::vector<int64_t>{2}));
  std::vector<int64_t> blocked;
  s.OnAttemptEnded(2, Scheduler::Outcome::kRetry, &blocked);  // e.g. the worker refused it
  EXPECT_TRUE(s.QueuedOnRank(1).empty());
  EXPECT_EQ(s.busy_ranks(), 1);
  EXPECT_TRUE(s.Schedule().empty()) << "job 1 still holds the only rank";
  Done(s, 1);
  EXPECT_EQ(Ids(s.Schedule()), (std::vector<int64_t>{2}));
}

TEST_F(SchedulerTest, RankLostWithAQueuedJobReturnsBothToTheReadySet) {
  Scheduler s(Nodes({{"a", 2}}));
  for (int64_t id = 1; id <= 6; ++id) s.AddJob(Job(id, 0.1), JobState::kPending);
  s.Finalize();
  std::map<int, std::deque<int64_t>> on_rank;  // per rank: the running job, then the queued one
  for (const auto& a : s.Schedule()) on_rank[a.ranks.at(0)].push_back(a.job_id);
  for (const auto& a : s.Prefetch(AllShort)) on_rank[a.ranks.at(0)].push_back(a.job_id);
  ASSERT_EQ(on_rank[1].size(), 2u);
  ASSERT_EQ(s.QueuedOnRank(1), (std::vector<int64_t>{on_rank[1].back()}));

  // What the coordinator does: both the running and the queued job of the lost rank end.
  EXPECT_EQ(s.OnRankLost(1), on_rank[1].front());
  std::vector<int64_t> blocked;
  for (int64_t id : on_rank[1]) s.OnAttemptEnded(id, Scheduler::Outcome::kRetry, &blocked);
  on_rank.erase(1);
  EXPECT_EQ(s.busy_ranks(), 1);
  EXPECT_EQ(s.ready(), 4);  // the two never started plus the two that were on rank 1

  // Everything still runs to the end, on rank 2 alone.
  int finished = 0;
  std::set<int> used;
  for (int round = 0; round < 50 && s.HasWork(); ++round) {
    for (const auto& a : s.Schedule()) {
      used.insert(a.ranks.begin(), a.ranks.end());
      on_rank[a.ranks.at(0)].push_back(a.job_id);
    }
    for (const auto& a : s.Prefetch(AllShort)) {
      used.insert(a.ranks.begin(), a.ranks.end());
      on_rank[a.ranks.at(0)].push_back(a.job_id);
    }
    for (auto& [rank, jobs] : on_rank) {
      if (jobs.empty()) continue;
      Done(s, jobs.front());
      jobs.pop_front();
      finished += 1;
    }
  }
  EXPECT_FALSE(s.HasWork());
  EXPECT_EQ(finished, 6);
  EXPECT_EQ(used.count(1), 0u) << "the lost rank was given a job";
}

TEST_F(SchedulerTest, PrefetchNeverQueuesOnALostRank) {
  // Between OnRankLost and the end of the lost attempt, the rank still shows its job; it is
  // not live and must not receive a queued job.
  Scheduler s(Nodes({{"a", 2}}));
  for (int64_t id = 1; id <= 4; ++id) s.AddJob(Job(id, 0.1), JobState::kPending);
  s.Finalize();
  ASSERT_EQ(s.Schedule().size(), 2u);
  ASSERT_NE(s.OnRankLost(1), 0);
  for (const auto& a : s.Prefetch(AllShort)) {
    EXPECT_NE(a.ranks, (std::vector<int>{1})) << "job " << a.job_id << " queued on the lost rank";
  }
}

// --- simulations: fake time, an event loop, the scheduler deciding ---

struct SimulationResult {
  double makespan = 0;
  int finished = 0;
  bool double_booked = false;
  bool split_across_nodes = false;
};

// Runs every job to completion with durations `seconds` (the scheduler is told the same
// durations as hints) and returns when the last one finished.
SimulationResult Simulate(Scheduler& s, const std::map<int64_t, double>& seconds,
                          const std::map<int, std::string>& node_of_rank) {
  SimulationResult result;
  using Event = std::pair<double, int64_t>;  // (finish time, job)
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events;
  std::set<int> busy;
  std::map<int64_t, std::vector<int>> ranks_of;
  double now = 0;
  auto start = [&](const std::vector<Assignment>& assigned) {
    for (const auto& a : assigned) {
      for (int r : a.ranks) {
        if (!busy.insert(r).second) result.double_booked = true;
        if (node_of_rank.at(r) != node_of_rank.at(a.ranks.front())) result.split_across_nodes = true;
      }
      ranks_of[a.job_id] = a.ranks;
      events.push({now + seconds.at(a.job_id), a.job_id});
    }
  };
  start(s.Schedule());
  while (!events.empty()) {
    auto [time, id] = events.top();
    events.pop();
    now = time;
    for (int r : ranks_of[id]) busy.erase(r);
    std::vector<int64_t> blocked;
    s.OnAttemptEnded(id, Scheduler::Outcome::kDone, &blocked);
    result.finished += 1;
    start(s.Schedule());
  }
  result.makespan = now;
  return result;
}

TEST_F(SchedulerTest, SimulatedSweepFinishesNearTheLowerBound) {
  // A property of the schedule, not a timing: with 200 independent jobs of random length
  // on 7 ranks, longest-first list scheduling ends within 5% of the lower bound
  // max(longest job, total work / ranks).
  const auto workers = Nodes({{"a", 4}, {"b", 3}});
  std::map<int, std::string> node_of_rank;
  for (const auto& w : workers) node_of_rank[w.rank] = w.node;
  for (uint64_t seed : {1u, 2u, 3u, 4u, 5u}) {
    std::mt19937_64 random(seed);
    std::map<int64_t, double> seconds;
    double total = 0, longest = 0;
    for (int64_t id = 1; id <= 200; ++id) {
      // Mostly short jobs with a tail of long ones, as in a real sweep.
      double d = (random() % 10 == 0) ? 50.0 + static_cast<double>(random() % 15000) / 100.0
                                      : 1.0 + static_cast<double>(random() % 2000) / 100.0;
      seconds[id] = d;
      total += d;
      longest = std::max(longest, d);
    }
    Scheduler s(workers);
    for (const auto& [id, d] : seconds) s.AddJob(Job(id, d), JobState::kPending);
    s.Finalize();
    SimulationResult result = Simulate(s, seconds, node_of_rank);
    const double bound = std::max(longest, total / static_cast<double>(workers.size()));
    EXPECT_EQ(result.finished, 200) << "seed " << seed;
    EXPECT_FALSE(result.double_booked) << "seed " << seed;
    EXPECT_FALSE(s.HasWork()) << "seed " << seed;
    EXPECT_LE(result.makespan, 1.05 * bound) << "seed " << seed << ": makespan " << result.makespan
                                             << " s, lower bound " << bound << " s";
  }
}

TEST_F(SchedulerTest, SimulatedMixedSweepRunsEveryJobOnceOnOneNode) {
  // Jobs of 1, 2 and 3 ranks with dependencies on two nodes: every job runs exactly once,
  // no rank holds two jobs, and no job spans nodes.
  const auto workers = Nodes({{"a", 4}, {"b", 3}});
  std::map<int, std::string> node_of_rank;
  for (const auto& w : workers) node_of_rank[w.rank] = w.node;
  std::mt19937_64 random(7);
  std::map<int64_t, double> seconds;
  Scheduler s(workers);
  for (int64_t id = 1; id <= 150; ++id) {
    SchedulerJob job = Job(id, 1.0 + static_cast<double>(random() % 1000) / 100.0);
    job.ranks = 1 + static_cast<int>(random() % 3);
    if (id > 10 && random() % 3 == 0) job.upstream = {1 + static_cast<int64_t>(random() % (id - 1))};
    seconds[id] = job.expected_seconds;
    s.AddJob(job, JobState::kPending);
  }
  s.Finalize();
  SimulationResult result = Simulate(s, seconds, node_of_rank);
  EXPECT_EQ(result.finished, 150);
  EXPECT_FALSE(result.double_booked);
  EXPECT_FALSE(result.split_across_nodes);
  EXPECT_FALSE(s.HasWork());
  EXPECT_TRUE(s.TakeUnschedulable().empty());
}

}  // namespace
}  // namespace atp
