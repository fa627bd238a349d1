#include "common/in_process_communicator.h"
#include "tests/support/status_matchers.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace atp {
namespace {

class InProcessCommunicatorTest : public ::testing::Test {
 protected:
  // Runs `body(rank)` on one thread per rank (ranks as threads, as the worker loop uses them).
  static void RunRanks(int n, const std::function<void(int)>& body) {
    std::vector<std::thread> threads;
    for (int rank = 0; rank < n; ++rank) threads.emplace_back(body, rank);
    for (auto& t : threads) t.join();
  }
};

TEST_F(InProcessCommunicatorTest, ReportsRankSizeAndNodes) {
  InProcessHub hub(3, {"node-a", "node-b"});
  auto c0 = hub.Connect(0);
  auto c2 = hub.Connect(2);
  EXPECT_EQ(c0->rank(), 0);
  EXPECT_EQ(c2->rank(), 2);
  EXPECT_EQ(c0->size(), 3);
  EXPECT_EQ(c0->node_name(), "node-a");
  EXPECT_EQ(hub.Connect(1)->node_name(), "node-b");
  EXPECT_EQ(c2->node_name(), "localhost");  // unnamed ranks default to localhost
}

TEST_F(InProcessCommunicatorTest, SendsBetweenThreadsInOrder) {
  InProcessHub hub(2);
  constexpr int kMessages = 200;
  std::vector<Envelope> received;
  RunRanks(2, [&](int rank) {
    auto comm = hub.Connect(rank);
    if (rank == 0) {
      for (int i = 0; i < kMessages; ++i) ASSERT_OK(comm->Send(1, 5, "message " + std::to_string(i)));
      return;
    }
    while (static_cast<int>(received.size()) < kMessages) {
      auto envelope = comm->Receive(10.0);
      ASSERT_OK(envelope);
      ASSERT_TRUE(envelope->has_value()) << "no message within 10 s after " << received.size();
      received.push_back(**envelope);
    }
  });
  ASSERT_EQ(static_cast<int>(received.size()), kMessages);
  for (int i = 0; i < kMessages; ++i) {
    EXPECT_EQ(received[i].source, 0);
    EXPECT_EQ(received[i].tag, 5);
    EXPECT_EQ(received[i].payload, "message " + std::to_string(i));
  }
}

TEST_F(InProcessCommunicatorTest, CarriesBinaryPayloads) {
  InProcessHub hub(2);
  auto c0 = hub.Connect(0);
  auto c1 = hub.Connect(1);
  const std::string payload("a\0b\xff", 4);
  ASSERT_OK(c1->Send(0, 9, payload));
  auto envelope = c0->Receive(0);
  ASSERT_OK(envelope);
  ASSERT_TRUE(envelope->has_value());
  EXPECT_EQ((*envelope)->source, 1);
  EXPECT_EQ((*envelope)->payload, payload);
}

TEST_F(InProcessCommunicatorTest, ReceiveTimesOutWithNothing) {
  InProcessHub hub(2);
  auto comm = hub.Connect(0);
  auto waited = comm->Receive(0.05);
  ASSERT_OK(waited);
  EXPECT_FALSE(waited->has_value());
  auto looked = comm->Receive(0);
  ASSERT_OK(looked);
  EXPECT_FALSE(looked->has_value());
}

TEST_F(InProcessCommunicatorTest, ReceiveWakesForAMessageSentWhileWaiting) {
  InProcessHub hub(2);
  std::optional<Envelope> got;
  RunRanks(2, [&](int rank) {
    auto comm = hub.Connect(rank);
    if (rank == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      ASSERT_OK(comm->Send(0, 1, "late"));
      return;
    }
    auto envelope = comm->Receive(30.0);
    ASSERT_OK(envelope);
    got = *envelope;
  });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->payload, "late");
}

TEST_F(InProcessCommunicatorTest, SendToRankOutOfRangeIsInvalidArgument) {
  InProcessHub hub(2);
  auto comm = hub.Connect(0);
  EXPECT_EQ(comm->Send(2, 1, "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(comm->Send(-1, 1, "x").code(), StatusCode::kInvalidArgument);
}

TEST_F(InProcessCommunicatorTest, CreateGroupRejectsNonMembers) {
  InProcessHub hub(4);
  auto comm = hub.Connect(0);
  auto group = comm->CreateGroup({1, 2, 3}, 1);
  EXPECT_FALSE(group.ok());
  EXPECT_EQ(group.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(InProcessCommunicatorTest, GroupAllreducesRepeatedlyAcrossFourThreads) {
  constexpr int kRanks = 4;
  constexpr int kRounds = 100;
  InProcessHub hub(kRanks);
  std::atomic<int> wrong{0};
  RunRanks(kRanks, [&](int rank) {
    auto comm = hub.Connect(rank);
    auto created = comm->CreateGroup({0, 1, 2, 3}, 17);
    ASSERT_OK(created);
    std::unique_ptr<GroupCommunicator> group = std::move(created).value();
    EXPECT_EQ(group->rank(), rank);
    EXPECT_EQ(group->size(), kRanks);
    for (int round = 0; round < kRounds; ++round) {
      // Every rank contributes (rank + 1) * (round + 1) and its index; the sums are known.
      std::vector<float> floats = {static_cast<float>((rank + 1) * (round + 1)), static_cast<float>(rank), 0.5f};
      std::vector<double> doubles = {static_cast<double>(rank) * round, 0.25};
      if (!group->AllreduceSum(floats.data(), floats.size()).ok()) wrong++;
      if (!group->AllreduceSum(doubles.data(), doubles.size()).ok()) wrong++;
      if (floats[0] != 10.0f * (round + 1) || floats[1] != 6.0f || floats[2] != 2.0f) wrong++;
      if (doubles[0] != 6.0 * round || doubles[1] != 1.0) wrong++;
    }
  });
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(InProcessCommunicatorTest, GroupBroadcastsFromItsRoot) {
  constexpr int kRanks = 4;
  InProcessHub hub(kRanks);
  std::vector<std::string> seen(kRanks);
  std::vector<std::string> seen_again(kRanks);
  RunRanks(kRanks, [&](int rank) {
    auto comm = hub.Connect(rank);
    auto created = comm->CreateGroup({0, 1, 2, 3}, 3);
    ASSERT_OK(created);
    std::unique_ptr<GroupCommunicator> group = std::move(created).value();
    std::string bytes = "from rank " + std::to_string(rank);
    ASSERT_OK(group->Broadcast(&bytes, 2));
    seen[rank] = bytes;
    std::string again = rank == 0 ? std::string(1000, 'z') : std::string();
    ASSERT_OK(group->Broadcast(&again, 0));
    seen_again[rank] = again;
  });
  for (int rank = 0; rank < kRanks; ++rank) {
    EXPECT_EQ(seen[rank], "from rank 2") << rank;
    EXPECT_EQ(seen_again[rank], std::string(1000, 'z')) << rank;
  }
}

TEST_F(InProcessCommunicatorTest, SubgroupsUseTheirOwnGroupRanks) {
  // Ranks 1..3 of four form a job group while rank 0 (the coordinator) stays outside.
  InProcessHub hub(4);
  std::vector<int> group_ranks(4, -1);
  std::vector<double> sums(4, 0);
  RunRanks(4, [&](int rank) {
    if (rank == 0) return;
    auto comm = hub.Connect(rank);
    auto created = comm->CreateGroup({1, 2, 3}, 8);
    ASSERT_OK(created);
    std::unique_ptr<GroupCommunicator> group = std::move(created).value();
    group_ranks[rank] = group->rank();
    EXPECT_EQ(group->size(), 3);
    double value = rank;
    ASSERT_OK(group->AllreduceSum(&value, 1));
    sums[rank] = value;
  });
  EXPECT_EQ(group_ranks, (std::vector<int>{-1, 0, 1, 2}));
  EXPECT_EQ(sums, (std::vector<double>{0, 6, 6, 6}));
}

TEST_F(InProcessCommunicatorTest, ConcurrentGroupsWithDifferentTagsDoNotMix) {
  // Two two-rank jobs run side by side: {0,1} and {2,3}, each with its own tag.
  InProcessHub hub(4);
  std::vector<double> sums(4, 0);
  RunRanks(4, [&](int rank) {
    auto comm = hub.Connect(rank);
    std::vector<int> members = rank < 2 ? std::vector<int>{0, 1} : std::vector<int>{2, 3};
    auto created = comm->CreateGroup(members, rank < 2 ? 1 : 2);
    ASSERT_OK(created);
    std::unique_ptr<GroupCommunicator> group = std::move(created).value();
    for (int round = 0; round < 50; ++round) {
      double value = rank * 10;
      ASSERT_OK(group->AllreduceSum(&value, 1));
      sums[rank] = value;
    }
  });
  EXPECT_EQ(sums, (std::vector<double>{10, 10, 50, 50}));
}

}  // namespace
}  // namespace atp
