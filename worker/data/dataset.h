// Dataset readers for the CoOp/ATPrompt DATA layout: where each dataset lives under the data
// root, how its split is read (split_zhou_*.json, ImageNet's classnames.txt + folder scan,
// FGVCAircraft's text files, the ImageNet variants' folders), its class names and its
// hand-written prompt template. Every image path is kept relative to the data root and is
// checked never to leave it. Free functions over immutable tables; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace atp::data {

struct Datum {
  std::string path;       // relative to the data root, '/'-separated (e.g. "dtd/images/x.jpg")
  int label = 0;
  std::string classname;  // as the dataset stores it (underscores kept)
};

enum class SplitSource {
  kSplitJson,      // {folder}/split_zhou_<Name>.json
  kImageNet,       // classnames.txt + images/{train,val}/<wnid>/ scans
  kFgvcAircraft,   // variants.txt + images_variant_{train,val,test}.txt
  kImageNetV2,     // classnames.txt + <label>/ folders 0..999
  kImageNetFolders,// classnames.txt + <wnid>/ folders (Sketch, -A, -R); test only
};

struct DatasetLayout {
  std::string name;          // atp's name (common/dataset_catalog.h)
  std::string official_name; // DATASET.NAME in the official configs
  std::string folder;        // under the data root
  std::string image_dir;     // under folder ("" = folder itself)
  std::string split_file;    // under folder: the JSON, or the file naming the classes
  SplitSource source = SplitSource::kSplitJson;
  int num_classes = 0;
  // ZS-CLIP's template (docs/reference.md §3.1, '{}' = class name with '_' -> ' ').
  std::string prompt_template;
  // The template in the released zsclip.py where it differs (Flowers: "a photo of a {}").
  std::string official_code_template;
  bool test_only = false;    // ImageNet variants: no few-shot draw, no class subsampling
};

struct DatasetSplits {
  std::string name;
  std::string root;
  std::string split_file;    // relative to root: where the split came from (for messages)
  std::vector<Datum> train;
  std::vector<Datum> val;
  std::vector<Datum> test;
};

const std::vector<DatasetLayout>& AllLayouts();
const DatasetLayout* FindLayout(const std::string& name);

// Reads the full split (before any few-shot draw). Fails on the first unreadable source file
// and on bad entries (paths escaping the root, negative labels, a label with two names),
// listing up to ten of them with their file and position.
Result<DatasetSplits> ReadDataset(const std::string& root, const std::string& name);

// As ReadDataset, but records each bad entry in `problems` and skips it, so a check can
// report every problem at once. Fails only when the split cannot be read at all.
Result<DatasetSplits> ReadDatasetCollecting(const std::string& root, const std::string& name,
                                            std::vector<std::string>* problems);

// Whether a path taken from a split file is safe to join to a directory under the root:
// relative, non-empty, no ".." component, no NUL. Returns the reason when it is not.
Status CheckRelativePath(const std::string& path);

// root + "/" + relative.
std::string JoinRoot(const std::string& root, const std::string& relative);

// Class names indexed by label, from the items' stored names (labels 0..max); labels that
// no item carries get "".
std::vector<std::string> ClassNamesByLabel(const std::vector<Datum>& items);

// At most `limit` of `items`, spread evenly over them (a stride, not a prefix: test lists are
// grouped by class); all of them when `limit` <= 0 or there are no more than `limit`.
std::vector<Datum> EveryNth(const std::vector<Datum>& items, int limit);

// "a photo of a {}." with '{}' replaced by `classname` with '_' -> ' '.
std::string FillTemplate(const std::string& prompt_template, const std::string& classname);

// EuroSAT's renamed classes (folder name -> prompt name), as the official split uses them.
const std::vector<std::pair<std::string, std::string>>& EuroSatClassNames();

}  // namespace atp::data
