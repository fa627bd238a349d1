#include "worker/data/dataset.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "common/json.h"

namespace atp::data {
namespace {

const std::string kPhotoOf = "a photo of a {}.";

std::vector<DatasetLayout> MakeLayouts() {
  auto L = [](std::string name, std::string official, std::string folder, std::string image_dir,
              std::string split_file, SplitSource source, int classes, std::string tmpl,
              bool test_only = false) {
    DatasetLayout l;
    l.name = std::move(name);
    l.official_name = std::move(official);
    l.folder = std::move(folder);
    l.image_dir = std::move(image_dir);
    l.split_file = std::move(split_file);
    l.source = source;
    l.num_classes = classes;
    l.prompt_template = tmpl;
    l.official_code_template = tmpl;
    l.test_only = test_only;
    return l;
  };
  using S = SplitSource;
  std::vector<DatasetLayout> v = {
      L("imagenet", "ImageNet", "imagenet", "images", "classnames.txt", S::kImageNet, 1000, kPhotoOf),
      L("caltech101", "Caltech101", "caltech-101", "101_ObjectCategories",
        "split_zhou_Caltech101.json", S::kSplitJson, 100, kPhotoOf),
      L("oxford_pets", "OxfordPets", "oxford_pets", "images", "split_zhou_OxfordPets.json",
        S::kSplitJson, 37, "a photo of a {}, a type of pet."),
      L("stanford_cars", "StanfordCars", "stanford_cars", "", "split_zhou_StanfordCars.json",
        S::kSplitJson, 196, kPhotoOf),
      L("oxford_flowers", "OxfordFlowers", "oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json",
        S::kSplitJson, 102, "a photo of a {}, a type of flower."),
      L("food101", "Food101", "food-101", "images", "split_zhou_Food101.json", S::kSplitJson, 101,
        "a photo of {}, a type of food."),
      L("fgvc_aircraft", "FGVCAircraft", "fgvc_aircraft", "images", "variants.txt",
        S::kFgvcAircraft, 100, "a photo of a {}, a type of aircraft."),
      L("sun397", "SUN397", "sun397", "SUN397", "split_zhou_SUN397.json", S::kSplitJson, 397, kPhotoOf),
      L("dtd", "DescribableTextures", "dtd", "images", "split_zhou_DescribableTextures.json",
        S::kSplitJson, 47, "{} texture."),
      L("eurosat", "EuroSAT", "eurosat", "2750", "split_zhou_EuroSAT.json", S::kSplitJson, 10,
        "a centered satellite photo of {}."),
      L("ucf101", "UCF101", "ucf101", "UCF-101-midframes", "split_zhou_UCF101.json", S::kSplitJson,
        101, "a photo of a person doing {}."),
      // The released code reads ImageNetV2's class folders from the dataset folder itself.
      L("imagenetv2", "ImageNetV2", "imagenetv2", "", "classnames.txt", S::kImageNetV2, 1000,
        kPhotoOf, true),
      L("imagenet_sketch", "ImageNetSketch", "imagenet-sketch", "sketch", "classnames.txt",
        S::kImageNetFolders, 1000, kPhotoOf, true),
      L("imagenet_a", "ImageNetA", "imagenet-adversarial", "imagenet-a", "classnames.txt",
        S::kImageNetFolders, 200, kPhotoOf, true),
      L("imagenet_r", "ImageNetR", "imagenet-rendition", "imagenet-r", "classnames.txt",
        S::kImageNetFolders, 200, kPhotoOf, true),
      // Classes span clothing, shoes and bags, so no "a type of ..." suffix fits all of them.
      L("fashion_mnist", "FashionMNIST", "fashion_mnist", "images", "split_zhou_FashionMNIST.json",
        S::kSplitJson, 10, kPhotoOf),
  };
  for (auto& l : v) {
    if (l.name == "oxford_flowers") l.official_code_template = "a photo of a {}";
  }
  return v;
}

std::string Strip(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

// Python's str.split(" "): every single space separates (empty pieces kept).
std::vector<std::string> SplitSpace(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t p = s.find(' ', start);
    if (p == std::string::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, p - start));
    start = p + 1;
  }
}

std::string JoinWords(const std::vector<std::string>& w, size_t from) {
  std::string out;
  for (size_t i = from; i < w.size(); ++i) {
    if (i > from) out += ' ';
    out += w[i];
  }
  return out;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Directory entries in readdir order, as Python's os.listdir returns them (the official
// ImageNet reader keeps this order, so the draw on ImageNet depends on it).
Result<std::vector<std::string>> ListDirectory(const std::string& path, bool skip_hidden) {
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return NotFound(path + ": cannot list directory (" + std::strerror(errno) + ")");
  std::vector<std::string> names;
  while (dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (skip_hidden && name[0] == '.') continue;
    names.push_back(name);
  }
  closedir(dir);
  return names;
}

Result<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot open (" + std::strerror(errno) + ")");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::string Prefix(const DatasetLayout& l) {
  return l.image_dir.empty() ? l.folder : l.folder + "/" + l.image_dir;
}

class Reader {
 public:
  Reader(std::string root, const DatasetLayout& layout, std::vector<std::string>* problems)
      : root_(std::move(root)), layout_(layout), problems_(problems) {}

  Result<DatasetSplits> Read() {
    DatasetSplits s;
    s.name = layout_.name;
    s.root = root_;
    s.split_file = layout_.folder + "/" + layout_.split_file;
    if (!IsDirectory(JoinRoot(root_, layout_.folder))) {
      return NotFound(JoinRoot(root_, layout_.folder) + ": dataset folder of '" + layout_.name +
                      "' not found under the data root " + root_ +
                      " (expected the CoOp/ATPrompt DATA layout; see docs/data.md)");
    }
    switch (layout_.source) {
      case SplitSource::kSplitJson: ATP_RETURN_IF_ERROR(ReadSplitJson(&s)); break;
      case SplitSource::kImageNet: ATP_RETURN_IF_ERROR(ReadImageNet(&s)); break;
      case SplitSource::kFgvcAircraft: ATP_RETURN_IF_ERROR(ReadFgvc(&s)); break;
      case SplitSource::kImageNetV2: ATP_RETURN_IF_ERROR(ReadImageNetV2(&s)); break;
      case SplitSource::kImageNetFolders: ATP_RETURN_IF_ERROR(ReadImageNetFolders(&s)); break;
    }
    for (auto* list : {&s.train, &s.val, &s.test}) CheckNames(s.split_file, list);
    return s;
  }

 private:
  void Problem(std::string m) { problems_->push_back(std::move(m)); }

  // Far above any dataset's class count (ImageNet-21k has 21,841), and within an int.
  static constexpr int64_t kMaxLabel = 1000000;

  // Adds an item unless its path is unsafe; `where` says which file and entry it came from.
  void Add(std::vector<Datum>* list, const std::string& where, const std::string& rel_path,
           int label, const std::string& classname, const std::string& prefix) {
    Status st = CheckRelativePath(rel_path);
    if (!st.ok()) {
      Problem(where + ": " + st.message());
      return;
    }
    if (label < 0) {
      Problem(where + ": negative label " + std::to_string(label));
      return;
    }
    list->push_back(Datum{prefix + "/" + rel_path, label, classname});
  }

  // Dassl names a class from its items; a label carrying two names is ambiguous.
  void CheckNames(const std::string& file, std::vector<Datum>* list) {
    for (size_t i = 0; i < list->size(); ++i) {
      const Datum& d = (*list)[i];
      auto [it, inserted] = names_.emplace(d.label, d.classname);
      if (!inserted && it->second != d.classname) {
        Problem(file + ": " + d.path + ": label " + std::to_string(d.label) + " is named '" +
                d.classname + "' here but '" + it->second + "' elsewhere");
      }
    }
  }

  Status ReadSplitJson(DatasetSplits* s) {
    const std::string path = JoinRoot(root_, s->split_file);
    auto text = ReadTextFile(path);
    if (!text.ok()) {
      return NotFound(path + ": split file of '" + layout_.name +
                      "' is missing; use the published split_zhou_*.json (CoOp's DATASETS.md); "
                      "a regenerated split would change every few-shot draw");
    }
    Json j;
    try {
      j = Json::parse(*text);
    } catch (const std::exception& e) {
      return InvalidArgument(path + ": not valid JSON: " + e.what());
    }
    if (!j.is_object()) return InvalidArgument(path + ": expected an object with train/val/test");
    const std::string prefix = Prefix(layout_);
    const std::pair<const char*, std::vector<Datum>*> parts[] = {
        {"train", &s->train}, {"val", &s->val}, {"test", &s->test}};
    for (const auto& [key, list] : parts) {
      if (!j.contains(key) || !j[key].is_array()) {
        return InvalidArgument(path + ": key \"" + key + "\" missing or not a list");
      }
      const Json& arr = j[key];
      list->reserve(arr.size());
      for (size_t i = 0; i < arr.size(); ++i) {
        const std::string where = s->split_file + ": " + key + "[" + std::to_string(i) + "]";
        const Json& e = arr[i];
        if (!e.is_array() || e.size() != 3 || !e[0].is_string() || !e[1].is_number_integer() ||
            !e[2].is_string()) {
          Problem(where + ": expected [relative_path, integer_label, class_name], got " +
                  e.dump().substr(0, 120));
          continue;
        }
        // Read at full width first: get<int> would wrap 10^12 into a negative "label".
        const int64_t label = e[1].is_number_unsigned() && e[1].get<uint64_t>() > INT32_MAX ? INT64_MAX
                                                                                           : e[1].get<int64_t>();
        if (label > kMaxLabel) {
          Problem(where + ": label " + e[1].dump() + " is too large (at most " + std::to_string(kMaxLabel) + ")");
          continue;
        }
        Add(list, where, e[0].get<std::string>(), static_cast<int>(label), e[2].get<std::string>(), prefix);
      }
    }
    return Status::Ok();
  }

  // classnames.txt: "<wnid> <name words...>" (split at single spaces, as the official reader).
  Result<std::vector<std::pair<std::string, std::string>>> ReadClassnames() {
    const std::string path = JoinRoot(root_, layout_.folder + "/classnames.txt");
    auto text = ReadTextFile(path);
    if (!text.ok()) {
      return NotFound(path + ": classnames.txt of '" + layout_.name +
                      "' is missing (CoOp's DATASETS.md: one '<wnid> <class name>' per line)");
    }
    std::vector<std::pair<std::string, std::string>> out;
    for (const std::string& raw : Lines(*text)) {
      const std::string line = Strip(raw);
      if (line.empty()) continue;
      const auto words = SplitSpace(line);
      out.emplace_back(words[0], JoinWords(words, 1));
    }
    return out;
  }

  // One class folder's images in listing order (hidden files skipped, as listdir_nohidden).
  void ReadClassFolder(const std::string& rel_dir, int label, const std::string& classname,
                       std::vector<Datum>* list) {
    auto names = ListDirectory(JoinRoot(root_, rel_dir), /*skip_hidden=*/true);
    if (!names.ok()) {
      Problem(names.status().message());
      return;
    }
    for (const std::string& n : *names) list->push_back(Datum{rel_dir + "/" + n, label, classname});
  }

  Status ReadImageNet(DatasetSplits* s) {
    ATP_ASSIGN_OR_RETURN(auto classnames, ReadClassnames());
    std::map<std::string, std::string> by_wnid(classnames.begin(), classnames.end());
    const std::pair<const char*, std::vector<Datum>*> parts[] = {{"train", &s->train},
                                                                  {"val", &s->test}};
    for (const auto& [sub, list] : parts) {
      const std::string rel = layout_.folder + "/" + layout_.image_dir + "/" + sub;
      ATP_ASSIGN_OR_RETURN(auto entries, ListDirectory(JoinRoot(root_, rel), false));
      std::vector<std::string> folders;
      for (const auto& e : entries) {
        if (IsDirectory(JoinRoot(root_, rel + "/" + e))) folders.push_back(e);
      }
      std::sort(folders.begin(), folders.end());
      for (size_t label = 0; label < folders.size(); ++label) {
        auto it = by_wnid.find(folders[label]);
        if (it == by_wnid.end()) {
          Problem(rel + "/" + folders[label] + ": folder is not listed in " + layout_.folder +
                  "/classnames.txt");
          continue;
        }
        ReadClassFolder(rel + "/" + folders[label], static_cast<int>(label), it->second, list);
      }
    }
    // The official code evaluates on ImageNet's val images and uses them as val too.
    s->val = s->test;
    return Status::Ok();
  }

  Status ReadImageNetV2(DatasetSplits* s) {
    ATP_ASSIGN_OR_RETURN(auto classnames, ReadClassnames());
    if (classnames.size() < 1000) {
      return InvalidArgument(JoinRoot(root_, layout_.folder + "/classnames.txt") + ": has " +
                             std::to_string(classnames.size()) + " classes, ImageNetV2 needs 1000");
    }
    const std::string base = Prefix(layout_);
    for (int label = 0; label < 1000; ++label) {
      const std::string rel = base + "/" + std::to_string(label);
      ReadClassFolder(rel, label, classnames[label].second, &s->test);
    }
    s->train = s->test;
    return Status::Ok();
  }

  Status ReadImageNetFolders(DatasetSplits* s) {
    ATP_ASSIGN_OR_RETURN(auto classnames, ReadClassnames());
    std::map<std::string, std::string> by_wnid(classnames.begin(), classnames.end());
    const std::string base = Prefix(layout_);
    ATP_ASSIGN_OR_RETURN(auto entries, ListDirectory(JoinRoot(root_, base), true));
    std::sort(entries.begin(), entries.end());
    std::vector<std::string> folders;
    for (const auto& e : entries) {
      if (e == "README.txt") continue;  // shipped with ImageNet-A and -R; ignored officially
      if (!IsDirectory(JoinRoot(root_, base + "/" + e))) {
        Problem(base + "/" + e + ": unexpected file among the class folders");
        continue;
      }
      folders.push_back(e);
    }
    for (size_t label = 0; label < folders.size(); ++label) {
      auto it = by_wnid.find(folders[label]);
      if (it == by_wnid.end()) {
        Problem(base + "/" + folders[label] + ": folder is not listed in " + layout_.folder +
                "/classnames.txt");
        continue;
      }
      ReadClassFolder(base + "/" + folders[label], static_cast<int>(label), it->second, &s->test);
    }
    s->train = s->test;
    return Status::Ok();
  }

  Status ReadFgvc(DatasetSplits* s) {
    const std::string vpath = JoinRoot(root_, layout_.folder + "/variants.txt");
    auto vtext = ReadTextFile(vpath);
    if (!vtext.ok()) return NotFound(vpath + ": FGVCAircraft's variants.txt is missing");
    std::map<std::string, int> label_of;
    int next = 0;
    for (const std::string& raw : Lines(*vtext)) {
      const std::string name = Strip(raw);
      if (name.empty()) continue;
      label_of[name] = next++;  // a repeated line keeps the last index, as the official dict does
    }
    const std::string prefix = Prefix(layout_);
    const std::pair<const char*, std::vector<Datum>*> parts[] = {
        {"images_variant_train.txt", &s->train},
        {"images_variant_val.txt", &s->val},
        {"images_variant_test.txt", &s->test}};
    for (const auto& [file, list] : parts) {
      const std::string rel = layout_.folder + "/" + file;
      auto text = ReadTextFile(JoinRoot(root_, rel));
      if (!text.ok()) return NotFound(JoinRoot(root_, rel) + ": FGVCAircraft split file is missing");
      const auto lines = Lines(*text);
      for (size_t i = 0; i < lines.size(); ++i) {
        const std::string line = Strip(lines[i]);
        if (line.empty()) continue;
        const auto words = SplitSpace(line);
        const std::string where = rel + ":" + std::to_string(i + 1);
        const std::string classname = JoinWords(words, 1);
        auto it = label_of.find(classname);
        if (it == label_of.end()) {
          Problem(where + ": variant '" + classname + "' is not in " + layout_.folder + "/variants.txt");
          continue;
        }
        Add(list, where, words[0] + ".jpg", it->second, classname, prefix);
      }
    }
    s->split_file = layout_.folder + "/images_variant_{train,val,test}.txt";
    return Status::Ok();
  }

  std::string root_;
  const DatasetLayout& layout_;
  std::vector<std::string>* problems_;
  std::map<int, std::string> names_;
};

}  // namespace

const std::vector<DatasetLayout>& AllLayouts() {
  static const std::vector<DatasetLayout> kLayouts = MakeLayouts();
  return kLayouts;
}

const DatasetLayout* FindLayout(const std::string& name) {
  for (const auto& l : AllLayouts()) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

Status CheckRelativePath(const std::string& path) {
  if (path.empty()) return InvalidArgument("empty image path");
  if (path.find('\0') != std::string::npos) return InvalidArgument("image path contains a NUL byte");
  if (path[0] == '/') {
    return InvalidArgument("absolute image path '" + path +
                           "' is not allowed: split paths are relative to the image folder and "
                           "may not leave the data root");
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (path.compare(start, end - start, "..") == 0 && end - start == 2) {
      return InvalidArgument("image path '" + path +
                             "' contains '..': split paths may not leave the data root");
    }
    start = end + 1;
  }
  return Status::Ok();
}

std::string JoinRoot(const std::string& root, const std::string& relative) {
  if (root.empty()) return relative;
  if (root.back() == '/') return root + relative;
  return root + "/" + relative;
}

Result<DatasetSplits> ReadDatasetCollecting(const std::string& root, const std::string& name,
                                            std::vector<std::string>* problems) {
  const DatasetLayout* layout = FindLayout(name);
  if (layout == nullptr) {
    std::string names;
    for (const auto& l : AllLayouts()) names += (names.empty() ? "" : ", ") + l.name;
    return InvalidArgument("unknown dataset '" + name + "'; known: " + names);
  }
  Reader reader(root, *layout, problems);
  return reader.Read();
}

Result<DatasetSplits> ReadDataset(const std::string& root, const std::string& name) {
  std::vector<std::string> problems;
  ATP_ASSIGN_OR_RETURN(DatasetSplits s, ReadDatasetCollecting(root, name, &problems));
  if (!problems.empty()) {
    std::string m = std::to_string(problems.size()) + " bad entr" +
                    (problems.size() == 1 ? "y" : "ies") + " in the split of '" + name +
                    "' (run `atp data check` for the full list):";
    for (size_t i = 0; i < problems.size() && i < 10; ++i) m += "\n  " + problems[i];
    return InvalidArgument(m);
  }
  return s;
}

std::vector<std::string> ClassNamesByLabel(const std::vector<Datum>& items) {
  int max_label = -1;
  for (const auto& d : items) max_label = std::max(max_label, d.label);
  std::vector<std::string> names(static_cast<size_t>(max_label + 1));
  for (const auto& d : items) names[d.label] = d.classname;
  return names;
}

std::string FillTemplate(const std::string& prompt_template, const std::string& classname) {
  std::string name = classname;
  std::replace(name.begin(), name.end(), '_', ' ');
  std::string out = prompt_template;
  const size_t p = out.find("{}");
  if (p != std::string::npos) out.replace(p, 2, name);
  return out;
}

const std::vector<std::pair<std::string, std::string>>& EuroSatClassNames() {
  static const std::vector<std::pair<std::string, std::string>> kNames = {
      {"AnnualCrop", "Annual Crop Land"},
      {"Forest", "Forest"},
      {"HerbaceousVegetation", "Herbaceous Vegetation Land"},
      {"Highway", "Highway or Road"},
      {"Industrial", "Industrial Buildings"},
      {"Pasture", "Pasture Land"},
      {"PermanentCrop", "Permanent Crop Land"},
      {"Residential", "Residential Buildings"},
      {"River", "River"},
      {"SeaLake", "Sea or Lake"},
  };
  return kNames;
}

std::vector<Datum> EveryNth(const std::vector<Datum>& items, int limit) {
  if (limit <= 0 || static_cast<int>(items.size()) <= limit) return items;
  std::vector<Datum> out;
  const double stride = static_cast<double>(items.size()) / limit;
  for (int i = 0; i < limit; ++i) out.push_back(items[static_cast<size_t>(i * stride)]);
  return out;
}

}  // namespace atp::data
