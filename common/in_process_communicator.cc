#include "common/in_process_communicator.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace atp {

// Shared by the members of one in-process group: a reduction buffer and a generation
// counter that makes the collective a barrier (members may call it repeatedly).
struct InProcessHub::GroupState {
  explicit GroupState(int n) : size(n) {}
  const int size;
  std::mutex mutex;
  std::condition_variable changed;
  int arrived = 0;
  int departed = 0;
  long long generation = 0;
  std::vector<double> sum;
  std::string broadcast;
};

class InProcessGroup : public GroupCommunicator {
 public:
  InProcessGroup(std::shared_ptr<InProcessHub::GroupState> state, int rank) : state_(std::move(state)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return state_->size; }

  Status AllreduceSum(float* data, size_t count) override {
    std::vector<double> buffer(data, data + count);
    ATP_RETURN_IF_ERROR(Collective(&buffer, nullptr, -1));
    for (size_t i = 0; i < count; ++i) data[i] = static_cast<float>(buffer[i]);
    return Status::Ok();
  }
  Status AllreduceSum(double* data, size_t count) override {
    std::vector<double> buffer(data, data + count);
    ATP_RETURN_IF_ERROR(Collective(&buffer, nullptr, -1));
    std::copy(buffer.begin(), buffer.end(), data);
    return Status::Ok();
  }
  Status Broadcast(std::string* bytes, int root) override { return Collective(nullptr, bytes, root); }

 private:
  // Two-phase barrier: every member adds its contribution, the last one to arrive
  // publishes the result, then everyone copies it out before the state is reset.
  Status Collective(std::vector<double>* values, std::string* bytes, int root) {
    auto& s = *state_;
    std::unique_lock<std::mutex> lock(s.mutex);
    s.changed.wait(lock, [&] { return s.departed == 0; });  // previous round fully drained
    long long my_generation = s.generation;
    if (values) {
      if (s.arrived == 0) s.sum.assign(values->size(), 0.0);
      if (s.sum.size() != values->size()) return InvalidArgument("allreduce: members passed different counts");
      for (size_t i = 0; i < values->size(); ++i) s.sum[i] += (*values)[i];
    }
    if (bytes && rank_ == root) s.broadcast = *bytes;
    if (++s.arrived == s.size) {
      ++s.generation;
      s.departed = s.size;
      s.changed.notify_all();
    } else {
      s.changed.wait(lock, [&] { return s.generation != my_generation; });
    }
    if (values) *values = s.sum;
    if (bytes) *bytes = s.broadcast;
    if (--s.departed == 0) {
      s.arrived = 0;
      s.changed.notify_all();
    }
    return Status::Ok();
  }

  std::shared_ptr<InProcessHub::GroupState> state_;
  int rank_;
};

class InProcessCommunicator : public Communicator {
 public:
  InProcessCommunicator(InProcessHub* hub, int rank) : hub_(hub), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return hub_->size_; }
  std::string node_name() const override { return hub_->node_names_[rank_]; }

  Status Send(int dest, int tag, std::string_view payload) override {
    if (dest < 0 || dest >= hub_->size_) return InvalidArgument("send to rank " + std::to_string(dest) + " out of range");
    auto& box = *hub_->mailboxes_[dest];
    {
      std::lock_guard<std::mutex> lock(box.mutex);
      box.messages.push_back(Envelope{rank_, tag, std::string(payload)});
    }
    box.ready.notify_one();
    return Status::Ok();
  }

  Result<std::optional<Envelope>> Receive(double timeout_s) override {
    auto& box = *hub_->mailboxes_[rank_];
    std::unique_lock<std::mutex> lock(box.mutex);
    if (box.messages.empty() && timeout_s > 0) {
      box.ready.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] { return !box.messages.empty(); });
    }
    if (box.messages.empty()) return std::optional<Envelope>();
    Envelope e = std::move(box.messages.front());
    box.messages.pop_front();
    return std::optional<Envelope>(std::move(e));
  }

  Result<std::unique_ptr<GroupCommunicator>> CreateGroup(const std::vector<int>& ranks, int group_tag) override {
    auto it = std::find(ranks.begin(), ranks.end(), rank_);
    if (it == ranks.end()) return InvalidArgument("CreateGroup: rank " + std::to_string(rank_) + " is not a member");
    std::shared_ptr<InProcessHub::GroupState> state;
    {
      std::lock_guard<std::mutex> lock(hub_->groups_mutex_);
      auto& slot = hub_->groups_[{group_tag, ranks}];
      if (!slot) slot = std::make_shared<InProcessHub::GroupState>(static_cast<int>(ranks.size()));
      state = slot;
    }
    return std::unique_ptr<GroupCommunicator>(
        new InProcessGroup(std::move(state), static_cast<int>(it - ranks.begin())));
  }

 private:
  InProcessHub* hub_;
  int rank_;
};

InProcessHub::InProcessHub(int size, std::vector<std::string> node_names)
    : size_(size), node_names_(std::move(node_names)) {
  node_names_.resize(size, "localhost");
  for (int i = 0; i < size; ++i) mailboxes_.push_back(std::make_unique<Mailbox>());
}

std::unique_ptr<Communicator> InProcessHub::Connect(int rank) {
  return std::make_unique<InProcessCommunicator>(this, rank);
}

}  // namespace atp
