#include "worker/data/loader.h"

#include <algorithm>
#include <numeric>

#include <ATen/ATen.h>

#include "worker/data/augment_random.h"
#include "worker/data/image.h"
#include "worker/data/transforms.h"

namespace atp::data {

DataLoader::DataLoader(std::string root, std::vector<Datum> items, LoaderOptions options)
    : root_(std::move(root)), items_(std::move(items)), options_(options) {
  if (options_.batch_size < 1) throw std::invalid_argument("DataLoader: batch_size must be >= 1");
  if (options_.resolution < 1) throw std::invalid_argument("DataLoader: resolution must be >= 1");
}

DataLoader::~DataLoader() { Stop(); }

int64_t DataLoader::BatchesPerEpoch() const {
  const int64_t n = size();
  const int64_t b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> DataLoader::EpochOrder(int64_t epoch) const {
  std::vector<int64_t> order(items_.size());
  std::iota(order.begin(), order.end(), 0);
  if (!options_.train) return order;
  CounterRandom rng(options_.seed, RandomDomain::kEpochPermutation, static_cast<uint64_t>(epoch), 0);
  for (int64_t i = static_cast<int64_t>(order.size()) - 1; i > 0; --i) {
    std::swap(order[i], order[rng.Below(static_cast<uint64_t>(i + 1))]);
  }
  return order;
}

int64_t DataLoader::BatchSize(int64_t batch) const {
  return std::min<int64_t>(options_.batch_size, used_items_ - batch * options_.batch_size);
}

void DataLoader::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  slots_.clear();
  stopping_ = false;
}

void DataLoader::StartEpoch(int64_t epoch) {
  Stop();
  std::vector<int64_t> order = EpochOrder(epoch);
  {
    std::lock_guard<std::mutex> lock(mu_);
    epoch_ = epoch;
    order_ = std::move(order);
    num_batches_ = BatchesPerEpoch();
    used_items_ = std::min<int64_t>(size(), num_batches_ * options_.batch_size);
    next_position_ = 0;
    next_batch_ = 0;
    started_ = true;
  }
  int threads = options_.threads > 0 ? options_.threads
                                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int t = 0; t < threads; ++t) workers_.emplace_back([this] { WorkerLoop(); });
}

void DataLoader::WorkerLoop() {
  const int r = options_.resolution;
  const int64_t sample_floats = 3LL * r * r;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    // Take the next position once its batch is inside the prefetch window.
    work_cv_.wait(lock, [&] {
      return stopping_ || next_position_ >= used_items_ ||
             next_position_ / options_.batch_size < next_batch_ + options_.prefetch_batches;
    });
    if (stopping_ || next_position_ >= used_items_) return;
    const int64_t pos = next_position_++;
    const int64_t batch = pos / options_.batch_size;
    const int64_t local = pos % options_.batch_size;
    Slot& slot = slots_[batch];
    if (!slot.images.defined()) {
      const int64_t b = BatchSize(batch);
      slot.images = at::empty({b, 3, r, r}, at::kFloat);
      slot.labels.assign(static_cast<size_t>(b), 0);
      slot.item_indices.assign(static_cast<size_t>(b), 0);
    }
    const int64_t item = order_[pos];
    const int64_t epoch = epoch_;
    float* out = slot.images.data_ptr<float>() + local * sample_floats;
    slot.labels[local] = items_[item].label;
    slot.item_indices[local] = item;
    lock.unlock();

    Status status;
    try {
      auto image = DecodeImageFile(JoinRoot(root_, items_[item].path));
      if (!image.ok()) {
        status = image.status();
      } else if (options_.train) {
        const AugmentParams p = DrawAugmentParams(image->width, image->height, options_.seed,
                                                  epoch, item + options_.augment_index_offset);
        NormalizeInto(TrainAugmentImage(*image, r, p), out);
      } else {
        NormalizeInto(ClipTestImage(*image, r), out);
      }
    } catch (const std::exception& e) {
      status = Internal(items_[item].path + ": transform failed: " + e.what());
    }

    lock.lock();
    // The slot stays in the map until the consumer takes it, and the consumer only takes it
    // once every sample is done, so the reference is still valid here.
    Slot& s = slots_[batch];
    if (!status.ok() && s.error.ok()) s.error = status;
    ++s.done;
    if (s.done == BatchSize(batch)) ready_cv_.notify_all();
  }
}

Result<bool> DataLoader::Next(Batch* batch) {
  if (!started_) return FailedPrecondition("DataLoader::Next called before StartEpoch");
  std::unique_lock<std::mutex> lock(mu_);
  if (next_batch_ >= num_batches_) return false;
  const int64_t want = next_batch_;
  ready_cv_.wait(lock, [&] {
    auto it = slots_.find(want);
    return it != slots_.end() && it->second.done == BatchSize(want);
  });
  Slot slot = std::move(slots_[want]);
  slots_.erase(want);
  ++next_batch_;
  if (!slot.error.ok()) {
    // Never hand out a batch with a missing image; end the epoch instead.
    next_batch_ = num_batches_;
    lock.unlock();
    Stop();
    return slot.error;
  }
  lock.unlock();
  work_cv_.notify_all();
  batch->index = want;
  batch->images = std::move(slot.images);
  batch->labels = at::tensor(slot.labels, at::kLong);
  batch->item_indices = std::move(slot.item_indices);
  return true;
}

}  // namespace atp::data
