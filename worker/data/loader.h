// DataLoader: decodes and transforms a list of images on a pool of threads and hands out
// batches (images [B, 3, R, R] float32, labels [B] int64) in a fixed order. The epoch order
// (a permutation drawn from CounterRandom keyed by (seed, epoch) when shuffling) and each
// sample's augmentation (keyed by (seed, epoch, index in the item list)) do not depend on the
// thread count or on timing, so a run is reproducible on any machine. At most
// `prefetch_batches` batches are in flight, which bounds memory. One consumer thread calls
// StartEpoch/Next; the object owns its worker threads.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <ATen/core/Tensor.h>

#include "common/status.h"
#include "worker/data/dataset.h"

namespace atp::data {

struct LoaderOptions {
  int resolution = 224;
  int batch_size = 32;
  // true: shuffled order and TrainAugment; false: list order and ClipTestTransform.
  bool train = false;
  // The official train loader drops the last partial batch when there are at least
  // batch_size images (OfficialDropLast); test loaders keep it.
  bool drop_last = false;
  uint64_t seed = 1;
  // train: item i gets the augmentation draw of sample i + augment_index_offset, so a slice
  // of a longer list (one rank's share) gets exactly that list's views.
  int64_t augment_index_offset = 0;
  int threads = 0;           // 0 = all cores
  int prefetch_batches = 4;  // batches decoded ahead of the consumer
};

// Dassl's rule: drop_last = (number of training images >= batch size).
inline bool OfficialDropLast(int64_t num_items, int batch_size) { return num_items >= batch_size; }

struct Batch {
  int64_t index = 0;                // batch number within the epoch
  at::Tensor images;                // [B, 3, R, R] float32
  at::Tensor labels;                // [B] int64
  std::vector<int64_t> item_indices;  // positions in the loader's item list
};

class DataLoader {
 public:
  // Paths of `items` are relative to `root`.
  DataLoader(std::string root, std::vector<Datum> items, LoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t size() const { return static_cast<int64_t>(items_.size()); }
  int64_t BatchesPerEpoch() const;

  // The order of item indices for an epoch (a pure function of seed and epoch).
  std::vector<int64_t> EpochOrder(int64_t epoch) const;

  // Starts (or restarts) an epoch; abandons batches of an unfinished one.
  void StartEpoch(int64_t epoch);
  // The next batch in order: true and *batch set; false at the end of the epoch; an error
  // (naming the image) if a sample could not be decoded, after which the epoch is over.
  Result<bool> Next(Batch* batch);

 private:
  struct Slot {
    at::Tensor images;
    std::vector<int64_t> labels;
    std::vector<int64_t> item_indices;
    int64_t done = 0;
    Status error;
  };

  void Stop();
  void WorkerLoop();
  int64_t BatchSize(int64_t batch) const;

  const std::string root_;
  const std::vector<Datum> items_;
  const LoaderOptions options_;

  std::mutex mu_;
  std::condition_variable work_cv_;   // workers wait for the window to move
  std::condition_variable ready_cv_;  // the consumer waits for its batch
  std::vector<std::thread> workers_;
  std::vector<int64_t> order_;
  std::map<int64_t, Slot> slots_;
  int64_t epoch_ = 0;
  int64_t num_batches_ = 0;
  int64_t used_items_ = 0;    // items of the epoch that make it into batches
  int64_t next_position_ = 0; // next position in order_ a worker takes
  int64_t next_batch_ = 0;    // next batch the consumer returns
  bool stopping_ = false;
  bool started_ = false;
};

}  // namespace atp::data
