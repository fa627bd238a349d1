#include "worker/train/gradient_sync.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/json.h"
#include "tests/support/status_matchers.h"

namespace atp::train {
namespace {

// An in-process stand-in for the worker's group allreduce: ranks are threads; each call
// blocks until every rank has contributed, then all receive the sum (added in rank order).
// The buffers travel through JSON as they do between a job process and its worker, so a
// value the real transport could not carry (NaN, Inf) is caught here.
class FakeGroup {
 public:
  explicit FakeGroup(int size) : size_(size), calls_(size, 0), lengths_(size) {}

  AllreduceDoubles ForRank(int rank) {
    return [this, rank](std::vector<double>* data) { return Allreduce(rank, data); };
  }
  int calls(int rank) const { return calls_[rank]; }
  const std::vector<size_t>& lengths(int rank) const { return lengths_[rank]; }
  bool saw_non_finite() const { return saw_non_finite_; }

 private:
  Status Allreduce(int rank, std::vector<double>* data) {
    std::unique_lock<std::mutex> lock(mutex_);
    ++calls_[rank];
    lengths_[rank].push_back(data->size());
    for (double v : *data) saw_non_finite_ |= !std::isfinite(v);
    const Json sent = *data;  // what the executor puts on the pipe
    if (contributions_.empty()) contributions_.resize(size_);
    contributions_[rank] = Json::parse(sent.dump()).get<std::vector<double>>();
    const int generation = generation_;
    if (++arrived_ == size_) {
      sum_.assign(contributions_[0].size(), 0.0);
      for (int r = 0; r < size_; ++r) {
        if (contributions_[r].size() != sum_.size()) {
          error_ = true;
          continue;
        }
        for (size_t i = 0; i < sum_.size(); ++i) sum_[i] += contributions_[r][i];
      }
      arrived_ = 0;
      contributions_.clear();
      ++generation_;
      changed_.notify_all();
    } else {
      changed_.wait(lock, [&] { return generation_ != generation; });
    }
    if (error_) return Internal("fake allreduce: ranks sent different lengths");
    *data = Json::parse(Json(sum_).dump()).get<std::vector<double>>();
    return Status::Ok();
  }

  const int size_;
  std::mutex mutex_;
  std::condition_variable changed_;
  int arrived_ = 0;
  int generation_ = 0;
  bool error_ = false;
  bool saw_non_finite_ = false;
  std::vector<std::vector<double>> contributions_;
  std::vector<double> sum_;
  std::vector<int> calls_;
  std::vector<std::vector<size_t>> lengths_;
};

// Runs body(rank) on `size` threads and waits for all.
void RunRanks(int size, const std::function<void(int)>& body) {
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) threads.emplace_back(body, r);
  for (auto& t : threads) t.join();
}

// Per-rank gradients of several dtypes and layouts: random values (so sums round), a
// transposed (non-contiguous) view, a 0-dim scalar and an empty tensor.
std::vector<at::Tensor> MakeGrads(int rank) {
  auto gen = at::detail::createCPUGenerator(1234 + rank);
  std::vector<at::Tensor> g;
  g.push_back(at::randn({4, 8}, gen, at::kFloat));
  g.push_back(at::randn({3, 5}, gen, at::kFloat).to(at::kHalf));
  g.push_back(at::randn({2, 3, 2}, gen, at::kFloat).to(at::kBFloat16));
  g.push_back(at::randn({7}, gen, at::kDouble));
  g.push_back(at::randn({5, 6}, gen, at::kFloat).t());  // strides (1, 6)
  g.push_back(at::randn({}, gen, at::kFloat));
  g.push_back(at::empty({0, 3}, at::kFloat));
  return g;
}

class GradientSyncTest : public ::testing::Test {
 protected:
  // Every rank's result after a relay AllreduceSum over `size` thread ranks.
  std::vector<std::vector<at::Tensor>> RelaySum(int size, FakeGroup& group) {
    std::vector<std::vector<at::Tensor>> grads(size);
    for (int r = 0; r < size; ++r) grads[r] = MakeGrads(r);
    std::vector<Status> statuses(size);
    RunRanks(size, [&](int r) {
      RelayGradientSync sync(group.ForRank(r), r, size);
      statuses[r] = sync.AllreduceSum(grads[r]);
    });
    for (int r = 0; r < size; ++r) EXPECT_OK(statuses[r]);
    return grads;
  }
};

TEST_F(GradientSyncTest, RelayOfTwoRanksGivesTheCorrectlyRoundedSumInEachDtype) {
  FakeGroup group(2);
  auto before0 = MakeGrads(0), before1 = MakeGrads(1);
  auto after = RelaySum(2, group);
  for (size_t i = 0; i < before0.size(); ++i) {
    // One rounding from the exact double sum: what adding the two values in their own dtype
    // gives (CPU float/half/bfloat16 additions are correctly rounded).
    const at::Tensor expected = (before0[i].to(at::kDouble) + before1[i].to(at::kDouble)).to(before0[i].scalar_type());
    const at::Tensor native = before0[i] + before1[i];
    for (int r = 0; r < 2; ++r) {
      const at::Tensor& t = after[r][i];
      EXPECT_EQ(t.scalar_type(), before0[i].scalar_type()) << i;
      EXPECT_EQ(t.sizes(), before0[i].sizes()) << i;
      EXPECT_EQ(t.strides(), before0[i].strides()) << i;
      EXPECT_TRUE(at::equal(t, expected)) << "tensor " << i << " rank " << r;
      if (t.scalar_type() == at::kFloat) {
        EXPECT_TRUE(at::equal(t, native)) << "tensor " << i;
      }
    }
  }
}

TEST_F(GradientSyncTest, RelayOfThreeRanksGivesTheSameExactSumsOnEveryRank) {
  FakeGroup group(3);
  std::vector<std::vector<at::Tensor>> before(3);
  for (int r = 0; r < 3; ++r) before[r] = MakeGrads(r);
  auto after = RelaySum(3, group);
  for (size_t i = 0; i < before[0].size(); ++i) {
    const at::Tensor exact = before[0][i].to(at::kDouble) + before[1][i].to(at::kDouble) + before[2][i].to(at::kDouble);
    for (int r = 0; r < 3; ++r) {
      EXPECT_TRUE(at::equal(after[r][i], exact.to(before[0][i].scalar_type()))) << "tensor " << i << " rank " << r;
      EXPECT_TRUE(at::equal(after[r][i], after[0][i])) << "ranks differ: tensor " << i;
    }
  }
}

TEST_F(GradientSyncTest, RelaySendsOneBufferPerCall) {
  FakeGroup group(2);
  int64_t numel = 0;
  for (const auto& t : MakeGrads(0)) numel += t.numel();
  RunRanks(2, [&](int r) {
    RelayGradientSync sync(group.ForRank(r), r, 2);
    for (int step = 0; step < 3; ++step) {
      auto grads = MakeGrads(r);
      ASSERT_OK(sync.AllreduceSum(grads));
    }
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(group.calls(r), 3);
    for (size_t len : group.lengths(r)) EXPECT_EQ(len, static_cast<size_t>(numel) + 1);  // + the non-finite count
  }
}

TEST_F(GradientSyncTest, RelayPoisonsEveryRankWhenAnyRankHasANonFiniteGradient) {
  FakeGroup group(3);
  std::vector<std::vector<at::Tensor>> grads(3);
  for (int r = 0; r < 3; ++r) grads[r] = {at::ones({2, 2}), at::ones({3}, at::kHalf)};
  grads[1][0][0][1] = std::numeric_limits<float>::quiet_NaN();
  grads[2][1][2] = std::numeric_limits<float>::infinity();
  RunRanks(3, [&](int r) {
    RelayGradientSync sync(group.ForRank(r), r, 3);
    EXPECT_OK(sync.AllreduceSum(grads[r]));
  });
  EXPECT_FALSE(group.saw_non_finite()) << "NaN/Inf reached the JSON transport";
  for (int r = 0; r < 3; ++r) {
    for (const auto& t : grads[r]) EXPECT_TRUE(at::isnan(t).all().item<bool>()) << "rank " << r;
  }
}

TEST_F(GradientSyncTest, AverageDividesTheSumBySize) {
  FakeGroup group(2);
  std::vector<std::vector<at::Tensor>> grads = {{at::full({3}, 1.0)}, {at::full({3}, 4.0)}};
  RunRanks(2, [&](int r) {
    RelayGradientSync sync(group.ForRank(r), r, 2);
    EXPECT_OK(AverageGradients(sync, grads[r]));
  });
  EXPECT_TRUE(at::equal(grads[0][0], at::full({3}, 2.5)));
  EXPECT_TRUE(at::equal(grads[1][0], at::full({3}, 2.5)));
}

TEST_F(GradientSyncTest, LocalLeavesTensorsAsTheyAre) {
  LocalGradientSync sync;
  auto grads = MakeGrads(0);
  auto copy = MakeGrads(0);
  ASSERT_OK(sync.AllreduceSum(grads));
  ASSERT_OK(AverageGradients(sync, grads));
  for (size_t i = 0; i < grads.size(); ++i) EXPECT_TRUE(at::equal(grads[i], copy[i]));
  EXPECT_EQ(sync.rank(), 0);
  EXPECT_EQ(sync.size(), 1);
  EXPECT_EQ(sync.name(), "local");
}

TEST_F(GradientSyncTest, UndefinedAndIntegerTensorsAreRejectedByEveryStrategy) {
  LocalGradientSync local;
  RelayGradientSync relay([](std::vector<double>*) { return Status::Ok(); }, 0, 2);
  for (GradientSync* sync : {static_cast<GradientSync*>(&local), static_cast<GradientSync*>(&relay)}) {
    std::vector<at::Tensor> undefined = {at::ones({2}), at::Tensor()};
    Status s = sync->AllreduceSum(undefined);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << sync->name();
    EXPECT_NE(s.message().find("tensor 1 is undefined"), std::string::npos) << s.message();
    std::vector<at::Tensor> ints = {at::ones({2}, at::kLong)};
    EXPECT_EQ(sync->AllreduceSum(ints).code(), StatusCode::kInvalidArgument) << sync->name();
  }
}

TEST_F(GradientSyncTest, RelayReportsTransportFailuresAndLengthMismatches) {
  std::vector<at::Tensor> grads = {at::ones({2})};
  RelayGradientSync failing([](std::vector<double>*) { return Unavailable("worker went away"); }, 1, 2);
  Status s = failing.AllreduceSum(grads);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("rank 1"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("worker went away"), std::string::npos) << s.message();

  RelayGradientSync shrinking([](std::vector<double>* d) { d->pop_back(); return Status::Ok(); }, 0, 2);
  EXPECT_EQ(shrinking.AllreduceSum(grads).code(), StatusCode::kInternal);
}

TEST_F(GradientSyncTest, MakeGradientSyncChoosesTheStrategyInOnePlace) {
  auto local = MakeGradientSync({0, 1, nullptr, false});
  ASSERT_OK(local);
  EXPECT_EQ((*local)->name(), "local");

  FakeGroup group(2);
  auto relay = MakeGradientSync({1, 2, group.ForRank(1), false});
  ASSERT_OK(relay);
  EXPECT_EQ((*relay)->name(), "relay");
  EXPECT_EQ((*relay)->rank(), 1);
  EXPECT_EQ((*relay)->size(), 2);

  if (!NcclGradientSyncAvailable()) {
    // CUDA gradients without NCCL still sum, through the relay (via host memory).
    auto cuda = MakeGradientSync({0, 2, group.ForRank(0), true});
    ASSERT_OK(cuda);
    EXPECT_EQ((*cuda)->name(), "relay");
  }

  EXPECT_EQ(MakeGradientSync({0, 2, nullptr, false}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeGradientSync({2, 2, group.ForRank(0), false}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeGradientSync({0, 0, nullptr, false}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace atp::train
