#include "worker/data/fewshot.h"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

namespace atp::data {
namespace {

// Dassl's split_dataset_by_label: a dict keyed by label, in order of first appearance.
std::vector<std::vector<const Datum*>> GroupByLabel(const std::vector<Datum>& items) {
  std::vector<std::vector<const Datum*>> groups;
  std::unordered_map<int, size_t> index;
  for (const Datum& d : items) {
    auto [it, inserted] = index.emplace(d.label, groups.size());
    if (inserted) groups.emplace_back();
    groups[it->second].push_back(&d);
  }
  return groups;
}

}  // namespace

Result<ClassSubset> ParseClassSubset(const std::string& text) {
  if (text == "all") return ClassSubset::kAll;
  if (text == "base") return ClassSubset::kBase;
  if (text == "new") return ClassSubset::kNew;
  return InvalidArgument("class subset '" + text + "' is not one of all, base, new");
}

const char* ClassSubsetName(ClassSubset subset) {
  switch (subset) {
    case ClassSubset::kAll: return "all";
    case ClassSubset::kBase: return "base";
    case ClassSubset::kNew: return "new";
  }
  return "?";
}

std::vector<Datum> GenerateFewShot(const std::vector<Datum>& items, int shots, PythonRandom* rng) {
  if (shots < 1) return items;
  std::vector<Datum> out;
  for (const auto& group : GroupByLabel(items)) {
    const auto n = static_cast<int64_t>(group.size());
    if (n >= shots) {
      for (int64_t j : rng->SampleIndices(n, shots)) out.push_back(*group[j]);
    } else {
      for (const Datum* d : group) out.push_back(*d);
    }
  }
  return out;
}

std::vector<std::pair<int, int>> ShortClasses(const std::vector<Datum>& items, int shots) {
  std::vector<std::pair<int, int>> out;
  if (shots < 1) return out;
  for (const auto& group : GroupByLabel(items)) {
    if (static_cast<int>(group.size()) < shots) {
      out.emplace_back(group.front()->label, static_cast<int>(group.size()));
    }
  }
  return out;
}

void SubsampleClasses(ClassSubset subset, const std::vector<std::vector<Datum>*>& lists) {
  if (subset == ClassSubset::kAll || lists.empty()) return;
  std::set<int> present;
  for (const Datum& d : *lists[0]) present.insert(d.label);
  const std::vector<int> labels(present.begin(), present.end());
  const size_t m = (labels.size() + 1) / 2;  // ceil(n / 2)
  std::vector<int> selected = subset == ClassSubset::kBase
                                  ? std::vector<int>(labels.begin(), labels.begin() + m)
                                  : std::vector<int>(labels.begin() + m, labels.end());
  std::map<int, int> relabel;
  for (size_t i = 0; i < selected.size(); ++i) relabel[selected[i]] = static_cast<int>(i);
  for (std::vector<Datum>* list : lists) {
    std::vector<Datum> kept;
    for (Datum& d : *list) {
      auto it = relabel.find(d.label);
      if (it == relabel.end()) continue;
      d.label = it->second;
      kept.push_back(std::move(d));
    }
    *list = std::move(kept);
  }
}

Result<ProtocolSplits> ApplyProtocol(DatasetSplits full, const ProtocolOptions& options) {
  const DatasetLayout* layout = FindLayout(full.name);
  if (layout == nullptr) return InvalidArgument("unknown dataset '" + full.name + "'");
  ProtocolSplits out;
  if (layout->test_only) {
    out.splits = std::move(full);
    if (options.subset != ClassSubset::kAll) {
      out.notes.push_back(layout->name + " is an evaluation-only dataset: every class is kept "
                          "(the class subset is ignored there, as in the official code)");
    }
    return out;
  }
  const bool imagenet = layout->source == SplitSource::kImageNet;
  if (options.shots >= 1) {
    // Check both lists before drawing so the message lists every short class at once.
    std::vector<std::string> short_msgs;
    const std::pair<const char*, std::pair<const std::vector<Datum>*, int>> parts[] = {
        {"train", {&full.train, options.shots}},
        {"val", {&full.val, std::min(options.shots, 4)}}};
    const auto names = ClassNamesByLabel(full.train);
    for (const auto& [what, list_shots] : parts) {
      if (imagenet && std::string(what) == "val") continue;
      for (const auto& [label, size] : ShortClasses(*list_shots.first, list_shots.second)) {
        const std::string name = label < static_cast<int>(names.size()) ? names[label] : "";
        short_msgs.push_back(full.split_file + ": " + what + " class " + std::to_string(label) +
                             " ('" + name + "') has " + std::to_string(size) + " image" +
                             (size == 1 ? "" : "s") + ", fewer than the " +
                             std::to_string(list_shots.second) + " shots asked");
      }
    }
    if (!short_msgs.empty() && !options.allow_fewer_shots) {
      std::string m = "few-shot draw refused for '" + full.name + "':";
      for (const auto& s : short_msgs) m += "\n  " + s;
      m += "\n  (the official code would use all of these images; pass --allow-fewer-shots "
           "to do the same, or lower --shots)";
      return FailedPrecondition(m);
    }
    for (auto& s : short_msgs) out.notes.push_back(s + "; all of them are used");
    // The official code loads these caches instead of drawing (and ImageNet's item list from
    // preprocessed.pkl); atp cannot read pickles, so say where the two could disagree.
    const std::string cache = layout->folder + "/split_fewshot/shot_" +
                              std::to_string(options.shots) + "-seed_" +
                              std::to_string(options.seed) + ".pkl";
    if (access(JoinRoot(full.root, cache).c_str(), F_OK) == 0) {
      out.notes.push_back(cache + " exists: the official code would load that cached draw; atp "
                          "draws afresh, which equals it only if it was made from the current split");
    }
    const std::string pkl = layout->folder + "/preprocessed.pkl";
    if (imagenet && access(JoinRoot(full.root, pkl).c_str(), F_OK) == 0) {
      out.notes.push_back(pkl + " exists: the official code takes ImageNet's image order from it; "
                          "atp lists the folders, which gives the same order only on the file "
                          "system the pickle was made on");
    }
    PythonRandom rng(options.seed);
    full.train = GenerateFewShot(full.train, options.shots, &rng);
    if (!imagenet) full.val = GenerateFewShot(full.val, std::min(options.shots, 4), &rng);
  }
  if (imagenet) {
    // The official ImageNet reader subsamples (train, test) and uses test as val.
    SubsampleClasses(options.subset, {&full.train, &full.test});
    full.val = full.test;
  } else {
    SubsampleClasses(options.subset, {&full.train, &full.val, &full.test});
  }
  out.splits = std::move(full);
  return out;
}

}  // namespace atp::data
