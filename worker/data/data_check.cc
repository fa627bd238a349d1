#include "worker/data/data_check.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "worker/data/dataset.h"
#include "worker/data/image.h"

namespace atp::data {
namespace {

void CheckClasses(const DatasetLayout& layout, const DatasetSplits& s, CheckReport* report) {
  const std::pair<const char*, const std::vector<Datum>*> parts[] = {
      {"train", &s.train}, {"val", &s.val}, {"test", &s.test}};
  for (const auto& [what, list] : parts) {
    // Evaluation-only datasets have one list (train = test) and no val.
    if (layout.test_only && std::string(what) != "test") continue;
    if (list->empty()) {
      report->problems.push_back(s.split_file + ": the " + std::string(what) + " list is empty");
      continue;
    }
    std::set<int> labels;
    for (const Datum& d : *list) labels.insert(d.label);
    const int max_label = *labels.rbegin();
    if (static_cast<int>(labels.size()) != layout.num_classes) {
      report->problems.push_back(s.split_file + ": " + what + " has " +
                                 std::to_string(labels.size()) + " classes, " + layout.name +
                                 " has " + std::to_string(layout.num_classes));
    }
    if (max_label + 1 != static_cast<int>(labels.size())) {
      std::string missing;
      int shown = 0;
      for (int l = 0; l <= max_label && shown < 10; ++l) {
        if (!labels.count(l)) {
          missing += (shown ? ", " : "") + std::to_string(l);
          ++shown;
        }
      }
      report->problems.push_back(s.split_file + ": " + what +
                                 " labels are not dense 0.." + std::to_string(max_label) +
                                 "; no items for label(s) " + missing);
    }
  }
  report->classes = static_cast<int>(ClassNamesByLabel(s.train).size());
  if (layout.name == "eurosat") {
    // The official split names EuroSAT's classes with CoOp's renamed phrases; a split that
    // still holds the folder names would change every prompt.
    std::set<std::string> renamed;
    for (const auto& [folder, name] : EuroSatClassNames()) renamed.insert(name);
    for (const std::string& name : ClassNamesByLabel(s.train)) {
      if (!renamed.count(name)) {
        report->problems.push_back(s.split_file + ": class name '" + name +
                                   "' is not one of EuroSAT's renamed classes (e.g. AnnualCrop "
                                   "-> 'Annual Crop Land'); use the published split file");
      }
    }
  }
}

}  // namespace

Result<CheckReport> CheckDataset(const CheckOptions& options) {
  CheckReport report;
  const DatasetLayout* layout = FindLayout(options.dataset);
  ATP_ASSIGN_OR_RETURN(DatasetSplits s,
                       ReadDatasetCollecting(options.root, options.dataset, &report.problems));
  report.train = static_cast<int64_t>(s.train.size());
  report.val = static_cast<int64_t>(s.val.size());
  report.test = static_cast<int64_t>(s.test.size());
  CheckClasses(*layout, s, &report);

  std::set<std::string> unique;
  for (const auto* list : {&s.train, &s.val, &s.test}) {
    for (const Datum& d : *list) unique.insert(d.path);
  }
  const std::vector<std::string> paths(unique.begin(), unique.end());
  report.images_checked = static_cast<int64_t>(paths.size());
  int threads = options.threads > 0 ? options.threads
                                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = std::min<int>(threads, std::max<size_t>(1, paths.size()));
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> bad;  // (path, message), sorted later
  auto work = [&] {
    for (size_t i = next++; i < paths.size(); i = next++) {
      const std::string full = JoinRoot(options.root, paths[i]);
      std::string message;
      if (options.decode) {
        auto img = DecodeImageFile(full);
        if (!img.ok()) message = img.status().message();
      } else {
        struct stat st;
        if (stat(full.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
          message = full + ": missing image file";
        }
      }
      if (!message.empty()) {
        std::lock_guard<std::mutex> lock(mu);
        bad.emplace_back(paths[i], message);
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  std::sort(bad.begin(), bad.end());
  for (auto& [path, message] : bad) report.problems.push_back(message);
  return report;
}

}  // namespace atp::data
