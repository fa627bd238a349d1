#include "coordinator/scheduler.h"

#include <algorithm>

namespace atp {

Scheduler::Scheduler(const std::vector<WorkerRank>& workers) {
  for (const auto& w : workers) {
    Node& node = nodes_[w.node];
    node.idle.push_back(w.rank);
    node.live += 1;
    node_of_rank_[w.rank] = w.node;
  }
  for (auto& [name, node] : nodes_) std::sort(node.idle.begin(), node.idle.end());
}

void Scheduler::AddJob(const SchedulerJob& job, JobState state) {
  JobNode node;
  node.ranks = std::max(1, job.ranks);
  node.expected = std::max(0.0, job.expected_seconds);
  node.order = static_cast<int64_t>(insertion_order_.size());
  node.state = state == JobState::kRunning ? JobState::kPending : state;
  for (int64_t up : job.upstream) {
    auto it = jobs_.find(up);
    if (it == jobs_.end()) continue;  // upstream outside this sweep's job set: already satisfied
    it->second.downstream.push_back(job.id);
    if (it->second.state != JobState::kDone) node.unfinished_upstream += 1;
  }
  jobs_.emplace(job.id, std::move(node));
  insertion_order_.push_back(job.id);
}

void Scheduler::Finalize() {
  // Priorities from the bottom of the DAG up (insertion order is topological).
  for (auto it = insertion_order_.rbegin(); it != insertion_order_.rend(); ++it) {
    JobNode& job = jobs_[*it];
    double below = 0;
    for (int64_t down : job.downstream) below = std::max(below, jobs_[down].priority);
    job.priority = job.expected + below;
  }
  for (int64_t id : insertion_order_) {
    JobNode& job = jobs_[id];
    if (job.state == JobState::kFailed || job.state == JobState::kBlocked) {
      std::vector<int64_t> blocked;
      for (int64_t down : job.downstream) Block(down, &blocked);
      for (int64_t b : blocked) blocked_at_start_.push_back(BlockedBy{b, id});
    }
  }
  for (int64_t id : insertion_order_) {
    JobNode& job = jobs_[id];
    if (job.state != JobState::kPending) continue;
    if (job.unfinished_upstream == 0) MakeReady(id); else waiting_ += 1;
  }
  finalized_ = true;
}

void Scheduler::MakeReady(int64_t job_id) {
  JobNode& job = jobs_[job_id];
  if (job.ranks > MaxLiveNodeSize()) {
    unschedulable_.push_back(job_id);
    return;
  }
  ready_by_ranks_[job.ranks].push(ReadyEntry{job.priority, job.order, job_id});
  ready_count_ += 1;
}

void Scheduler::Block(int64_t job_id, std::vector<int64_t>* newly_blocked) {
  std::vector<int64_t> stack = {job_id};
  while (!stack.empty()) {
    int64_t id = stack.back();
    stack.pop_back();
    JobNode& job = jobs_[id];
    if (job.state != JobState::kPending) continue;
    job.state = JobState::kBlocked;
    if (finalized_ && job.unfinished_upstream > 0) waiting_ -= 1;
    newly_blocked->push_back(id);
    for (int64_t down : job.downstream) stack.push_back(down);
  }
}

int Scheduler::MaxLiveNodeSize() const {
  int best = 0;
  for (const auto& [name, node] : nodes_) best = std::max(best, node.live);
  return best;
}

std::vector<Assignment> Scheduler::Schedule() {
  std::vector<Assignment> out;
  while (ready_count_ > 0) {
    // The most urgent job overall, whatever its size.
    const ReadyEntry* top = nullptr;
    for (auto& [k, heap] : ready_by_ranks_) {
      if (!heap.empty() && (!top || *top < heap.top())) top = &heap.top();
    }
    const int top_ranks = top ? jobs_[top->job_id].ranks : 0;
    int most_idle = 0;
    Node* closest = nullptr;  // the node to hold for the most urgent job: one that can ever fit it
    for (auto& [name, node] : nodes_) {
      int idle = static_cast<int>(node.idle.size());
      if (idle > most_idle) most_idle = idle;
      if (node.live < top_ranks) continue;
      if (!closest || idle > static_cast<int>(closest->idle.size())) closest = &node;
    }
    if (most_idle == 0) break;
    // Reserve the node closest to fitting the most urgent job when it does not fit anywhere.
    Node* reserved = (top && top_ranks > most_idle) ? closest : nullptr;

    int usable = 0;
    for (auto& [name, node] : nodes_) {
      if (&node != reserved) usable = std::max(usable, static_cast<int>(node.idle.size()));
    }
    std::priority_queue<ReadyEntry>* chosen = nullptr;
    for (auto& [k, heap] : ready_by_ranks_) {
      if (k > usable) break;
      if (!heap.empty() && (!chosen || chosen->top() < heap.top())) chosen = &heap;
    }
    if (!chosen) break;
    int64_t job_id = chosen->top().job_id;
    chosen->pop();
    ready_count_ -= 1;
    JobNode& job = jobs_[job_id];
    // Best fit: the node with the fewest idle ranks that still holds the job.
    Node* target = nullptr;
    for (auto& [name, node] : nodes_) {
      if (&node == reserved || static_cast<int>(node.idle.size()) < job.ranks) continue;
      if (!target || node.idle.size() < target->idle.size()) target = &node;
    }
    Assignment a;
    a.job_id = job_id;
    a.ranks.assign(target->idle.begin(), target->idle.begin() + job.ranks);
    target->idle.erase(target->idle.begin(), target->idle.begin() + job.ranks);
    for (int r : a.ranks) job_on_rank_[r] = job_id;
    job.assigned = a.ranks;
    job.state = JobState::kRunning;
    running_ += 1;
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<Assignment> Scheduler::Prefetch(const std::function<bool(int64_t)>& short_enough) {
  std::vector<Assignment> out;
  auto singles = ready_by_ranks_.find(1);
  if (singles == ready_by_ranks_.end()) return out;
  for (const auto& [k, heap] : ready_by_ranks_) {
    if (k > 1 && !heap.empty()) return out;
  }
  for (const auto& [rank, running_job] : job_on_rank_) {
    if (singles->second.empty()) break;
    if (!node_of_rank_.count(rank)) continue;  // lost: its attempt is about to end
    if (queued_on_rank_.count(rank) || jobs_[running_job].ranks != 1 || !short_enough(running_job)) continue;
    int64_t job_id = singles->second.top().job_id;
    singles->second.pop();
    ready_count_ -= 1;
    JobNode& job = jobs_[job_id];
    job.assigned = {rank};
    job.state = JobState::kRunning;
    running_ += 1;
    queued_on_rank_[rank] = job_id;
    out.push_back(Assignment{job_id, {rank}});
  }
  return out;
}

std::vector<int64_t> Scheduler::QueuedOnRank(int rank) const {
  auto it = queued_on_rank_.find(rank);
  if (it == queued_on_rank_.end()) return {};
  return {it->second};
}

void Scheduler::FreeRanks(int64_t job_id, JobNode& job) {
  for (int r : job.assigned) {
    auto queued = queued_on_rank_.find(r);
    if (queued != queued_on_rank_.end()) {
      if (queued->second != job_id) {
        // The running job ended: the queued one is now running; the rank stays busy.
        job_on_rank_[r] = queued->second;
        queued_on_rank_.erase(queued);
        continue;
      }
      queued_on_rank_.erase(queued);  // the queued job itself ended before it started
      continue;
    }
    job_on_rank_.erase(r);
    auto node_it = node_of_rank_.find(r);
    if (node_it == node_of_rank_.end()) continue;  // a lost rank is forgotten
    Node& node = nodes_[node_it->second];
    node.idle.insert(std::upper_bound(node.idle.begin(), node.idle.end(), r), r);
  }
  job.assigned.clear();
}

void Scheduler::OnAttemptEnded(int64_t job_id, Outcome outcome, std::vector<int64_t>* newly_blocked) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  JobNode& job = it->second;
  if (job.state == JobState::kRunning) {
    running_ -= 1;
    FreeRanks(job_id, job);
  }
  switch (outcome) {
    case Outcome::kDone:
      job.state = JobState::kDone;
      for (int64_t down : job.downstream) {
        JobNode& d = jobs_[down];
        if (d.state != JobState::kPending) continue;
        if (--d.unfinished_upstream == 0) {
          waiting_ -= 1;
          MakeReady(down);
        }
      }
      break;
    case Outcome::kFailed:
      job.state = JobState::kFailed;
      for (int64_t down : job.downstream) Block(down, newly_blocked);
      break;
    case Outcome::kRetry:
      job.state = JobState::kPending;
      MakeReady(job_id);
      break;
  }
}

int64_t Scheduler::OnRankLost(int rank) {
  auto node_it = node_of_rank_.find(rank);
  if (node_it == node_of_rank_.end()) return 0;
  Node& node = nodes_[node_it->second];
  node.idle.erase(std::remove(node.idle.begin(), node.idle.end(), rank), node.idle.end());
  node.live -= 1;
  node_of_rank_.erase(node_it);
  auto job_it = job_on_rank_.find(rank);
  int64_t job = job_it == job_on_rank_.end() ? 0 : job_it->second;
  // Ready jobs that no longer fit any node can never run now.
  const int largest = MaxLiveNodeSize();
  for (auto it = ready_by_ranks_.upper_bound(largest); it != ready_by_ranks_.end(); ++it) {
    while (!it->second.empty()) {
      unschedulable_.push_back(it->second.top().job_id);
      it->second.pop();
      ready_count_ -= 1;
    }
  }
  return job;
}

std::vector<Scheduler::BlockedBy> Scheduler::TakeBlockedAtStart() {
  std::vector<BlockedBy> out;
  out.swap(blocked_at_start_);
  return out;
}

std::vector<int64_t> Scheduler::TakeUnschedulable() {
  std::vector<int64_t> out;
  out.swap(unschedulable_);
  return out;
}

int Scheduler::live_ranks() const {
  int n = 0;
  for (const auto& [name, node] : nodes_) n += node.live;
  return n;
}

int Scheduler::busy_ranks() const { return static_cast<int>(job_on_rank_.size()); }

}  // namespace atp
