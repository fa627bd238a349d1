// The official data protocols on top of a full split (docs/reference.md §6.3-6.5): Dassl's
// few-shot draw with CPython's `random` (train with K shots, then val with min(K, 4), on one
// stream seeded with the run's seed), then base/new class subsampling with label renumbering.
// Test-only datasets (the ImageNet variants) are returned whole, as the official code does.
// Free functions; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "worker/data/dataset.h"
#include "worker/data/python_random.h"

namespace atp::data {

enum class ClassSubset { kAll, kBase, kNew };

Result<ClassSubset> ParseClassSubset(const std::string& text);  // "all" | "base" | "new"
const char* ClassSubsetName(ClassSubset subset);

// Dassl's generate_fewshot_dataset for one list: items grouped by label in order of first
// appearance, each group of at least `shots` items replaced by random.sample(group, shots),
// smaller groups kept whole; groups concatenated. shots < 1 returns the list unchanged.
std::vector<Datum> GenerateFewShot(const std::vector<Datum>& items, int shots, PythonRandom* rng);

// Groups (label, size) that have fewer than `shots` items, in first-appearance order.
std::vector<std::pair<int, int>> ShortClasses(const std::vector<Datum>& items, int shots);

// OxfordPets.subsample_classes: labels present in lists[0], sorted; base = first ceil(n/2),
// new = the rest; items of other classes dropped from every list; labels renumbered 0..m-1.
void SubsampleClasses(ClassSubset subset, const std::vector<std::vector<Datum>*>& lists);

struct ProtocolOptions {
  int shots = 16;                 // < 1: no draw
  int64_t seed = 1;
  ClassSubset subset = ClassSubset::kAll;
  // The official code keeps a class with fewer images than shots whole (fewer shots). atp
  // refuses such a split unless this is set, so that a run never trains on less data than
  // asked without saying so; when set, `notes` names each short class.
  bool allow_fewer_shots = false;
};

struct ProtocolSplits {
  DatasetSplits splits;
  std::vector<std::string> notes;  // what was done that the user should know about
};

// read split -> few-shot draw (train, then val with min(shots, 4); ImageNet: train only, val
// = test) -> class subsampling (train, val, test). Test-only datasets: unchanged.
Result<ProtocolSplits> ApplyProtocol(DatasetSplits full, const ProtocolOptions& options);

}  // namespace atp::data
