// FeatureCache: a content-addressed directory of float32 feature tensors shared by every job
// (and every node) that can see the directory, plus the memoised checkpoint digest that names
// a backbone in its keys. Entries are immutable files published by rename(), so readers never
// see a partial entry. Thread-safe; safe across processes and NFS-style shared file systems.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include <ATen/core/Tensor.h>

#include "common/status.h"

namespace atp::train {

// Bump when the code that computes a cached kind of feature changes its values (a transform
// fix, a different tower output): every old entry then stops matching and ages out by LRU.
inline constexpr int kFeatureKeyVersion = 1;

// Everything a cached feature tensor depends on. Two keys with the same Digest() must name
// bit-identical tensors (up to GEMM kernel non-determinism across machines).
struct FeatureKey {
  std::string backbone;       // FileDigest of the checkpoint (or any id of frozen weights)
  std::string dataset;        // atp dataset name
  std::string items;          // digest of the item list: paths and their order
  int64_t num_items = 0;      // rows, for Describe(); implied by `items`
  std::string preprocessing;  // "test R=224" or "train R=224 seed=1 epoch=3"
  std::string kind = "image"; // which tensor: "image" = unnormalised CLIP image-tower output
  int version = kFeatureKeyVersion;

  // Lower-case hex SHA-256 of the canonical JSON of the fields: the entry's file name.
  std::string Digest() const;
  // Pretty JSON of the fields (stored beside the entry as <digest>.json for inspection).
  std::string Describe() const;
};

class FeatureCache {
 public:
  struct Stats {
    int64_t hits = 0;
    int64_t misses = 0;        // absent, corrupt or unreadable entries
    int64_t corrupt = 0;       // of the misses: entries that failed validation and were deleted
    int64_t puts = 0;
    int64_t evictions = 0;     // entries this object deleted to respect max_bytes
    int64_t bytes_read = 0;    // entry bytes of hits
    int64_t bytes_written = 0; // entry bytes of puts
    int64_t errors = 0;        // I/O failures GetOrCompute survived by computing
    std::string last_error;    // the latest of those failures, or of the corrupt entries
  };

  // `dir` need not exist (it is created by the first Put). max_bytes <= 0: no bound.
  FeatureCache(std::string dir, int64_t max_bytes);
  FeatureCache(const FeatureCache&) = delete;
  FeatureCache& operator=(const FeatureCache&) = delete;

  const std::string& dir() const { return dir_; }
  int64_t max_bytes() const { return max_bytes_; }

  // The entry, or nullopt when absent. A truncated or corrupt entry is deleted and reported
  // as absent. A hit refreshes the entry's mtime (its LRU age). Errors: I/O other than
  // "not there" (permissions, EIO).
  Result<std::optional<at::Tensor>> Get(const FeatureKey& key);

  // Publishes a float32 tensor (any layout, CPU or not) under the key, then evicts
  // least-recently-used entries while the directory holds more than max_bytes (never the
  // entry just written). Concurrent Puts of one key all succeed; the last rename wins.
  Status Put(const FeatureKey& key, const at::Tensor& features);

  // Get, else compute + Put. Returns exactly the float32 CPU contiguous values that were
  // stored, so a cold call equals a later warm call bit for bit. Only an error of `compute`
  // fails the call: cache I/O failures are counted in stats() and the value is computed.
  Result<at::Tensor> GetOrCompute(const FeatureKey& key,
                                  const std::function<Result<at::Tensor>()>& compute);

  Stats stats() const;

  // Entry and description paths of a key (dir/ab/cdef….feat, dir/ab/cdef….json).
  std::string EntryPath(const FeatureKey& key) const;
  std::string DescriptionPath(const FeatureKey& key) const;

  // Sum of entry and description file sizes now in the directory (a scan).
  Result<int64_t> TotalBytes() const;

 private:
  Status EvictOverBound(const std::string& keep_path);
  void RecordError(const Status& status);

  const std::string dir_;
  const int64_t max_bytes_;
  std::atomic<int64_t> hits_{0}, misses_{0}, corrupt_{0}, puts_{0}, evictions_{0};
  std::atomic<int64_t> bytes_read_{0}, bytes_written_{0}, errors_{0};
  mutable std::mutex error_mu_;
  std::string last_error_;
};

// SHA-256 (hex) of a file's bytes, memoised under cache_dir/file_digests/ by (absolute path,
// size, mtime, ctime, inode), so a large checkpoint is hashed once per change. An empty
// cache_dir disables the memo. A memo that cannot be written only costs a re-hash next time.
Result<std::string> FileDigest(const std::string& path, const std::string& cache_dir);

// The default cache directory: $ATP_FEATURE_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/atp/features
// (the method parameter `feature_cache` overrides it).
std::string DefaultFeatureCacheDir();

// The default size bound in GiB (method parameter `feature_cache_gb`).
inline constexpr double kDefaultFeatureCacheGb = 20.0;

}  // namespace atp::train
