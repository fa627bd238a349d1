#include "worker/data/fashion_mnist.h"

#include <sys/stat.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

#include "common/atomic_file.h"
#include "common/json.h"
#include "worker/data/image.h"
#include "worker/data/python_random.h"

namespace atp::data {
namespace {

// Folder names: the class name with '/' (not allowed in a file name) and ' ' made '_'.
std::string FolderName(const std::string& classname) {
  std::string f = classname;
  for (char& c : f) {
    if (c == '/' || c == ' ') c = '_';
  }
  return f;
}

struct Item {
  std::string path;  // relative to the image folder
  int label;
};

}  // namespace

const std::vector<std::string>& FashionMnistClassNames() {
  static const std::vector<std::string> kNames = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                                  "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                                  "Bag",         "Ankle boot"};
  return kNames;
}

Result<IdxArray> ReadIdxGz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return NotFound(path + ": cannot open (is dataset-fashion-mnist installed?)");
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) bytes.insert(bytes.end(), buf, buf + n);
  int errnum = 0;
  const char* msg = gzerror(f, &errnum);
  const std::string err = msg ? msg : "";
  gzclose(f);
  if (n < 0 || (errnum != Z_OK && errnum != Z_STREAM_END)) {
    return IoError(path + ": gzip error: " + err);
  }
  // idx: 0x00 0x00 <type 0x08 = uint8> <ndims>, then ndims big-endian uint32 sizes.
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] == 0) {
    return InvalidArgument(path + ": not an idx file of unsigned bytes");
  }
  IdxArray a;
  const int ndims = bytes[3];
  size_t pos = 4, count = 1;
  if (bytes.size() < pos + 4 * static_cast<size_t>(ndims)) return InvalidArgument(path + ": truncated idx header");
  for (int d = 0; d < ndims; ++d, pos += 4) {
    const int v = (bytes[pos] << 24) | (bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) | bytes[pos + 3];
    a.dims.push_back(v);
    count *= static_cast<size_t>(v);
  }
  if (bytes.size() - pos != count) {
    return InvalidArgument(path + ": idx payload has " + std::to_string(bytes.size() - pos) +
                           " bytes, header says " + std::to_string(count));
  }
  a.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(pos), bytes.end());
  return a;
}

Result<FashionMnistImportSummary> ImportFashionMnist(const FashionMnistImportOptions& options) {
  namespace fs = std::filesystem;
  if (options.out_root.empty()) return InvalidArgument("import-fashion-mnist: --out is required");
  const auto& names = FashionMnistClassNames();
  const std::string folder = options.out_root + "/fashion_mnist";
  const std::string image_dir = folder + "/images";
  std::error_code ec;
  for (const auto& n : names) {
    fs::create_directories(image_dir + "/" + FolderName(n), ec);
    if (ec) return IoError(image_dir + "/" + FolderName(n) + ": cannot create: " + ec.message());
  }

  // Both parts are read first, so that the number of images to write is known for progress.
  struct Part {
    std::string prefix, source;
    IdxArray images, labels;
  };
  std::vector<Part> sources;
  int64_t to_write = 0;
  for (const char* part : {"train", "t10k"}) {
    Part p;
    p.source = options.source_dir + "/" + part;
    p.prefix = std::string(part) == "train" ? "train" : "test";
    ATP_ASSIGN_OR_RETURN(p.images, ReadIdxGz(p.source + "-images-idx3-ubyte.gz"));
    ATP_ASSIGN_OR_RETURN(p.labels, ReadIdxGz(p.source + "-labels-idx1-ubyte.gz"));
    if (p.images.dims.size() != 3 || p.labels.dims.size() != 1 || p.images.dims[0] != p.labels.dims[0]) {
      return InvalidArgument(p.source + "-*-idx: image and label files do not match");
    }
    std::vector<int> per_class(names.size(), 0);
    for (int i = 0; i < p.images.dims[0]; ++i) {
      const int label = p.labels.data[i];
      if (label >= static_cast<int>(names.size())) {
        return InvalidArgument(p.source + "-labels-idx1-ubyte.gz: label " + std::to_string(label) + " at index " +
                               std::to_string(i) + " is not a Fashion-MNIST class");
      }
      if (options.max_per_class == 0 || per_class[label]++ < options.max_per_class) ++to_write;
    }
    sources.push_back(std::move(p));
  }

  std::map<std::string, std::vector<Item>> parts;
  int64_t written = 0;
  for (const Part& p : sources) {
    const int rows = p.images.dims[1], cols = p.images.dims[2];
    std::vector<int> per_class(names.size(), 0);
    auto& items = parts[p.prefix];
    for (int i = 0; i < p.images.dims[0]; ++i) {
      const int label = p.labels.data[i];
      if (options.max_per_class > 0 && per_class[label] >= options.max_per_class) continue;
      ++per_class[label];
      char file[64];
      snprintf(file, sizeof(file), "%s_%05d.png", p.prefix.c_str(), i);
      const std::string rel = FolderName(names[label]) + "/" + file;
      ATP_RETURN_IF_ERROR(WritePngFile(image_dir + "/" + rel, cols, rows, 1,
                                       p.images.data.data() + static_cast<size_t>(i) * rows * cols));
      items.push_back(Item{rel, label});
      if (options.progress) options.progress(++written, to_write);
    }
  }

  // CoOp's split_trainval(trainval, p_val=0.2): per label (first-appearance order) shuffle
  // the indices, the first round(n * 0.2) go to val.
  PythonRandom rng(1);
  const auto& trainval = parts["train"];
  std::vector<int> order;
  std::map<int, std::vector<int>> tracker;
  for (size_t i = 0; i < trainval.size(); ++i) {
    if (tracker.find(trainval[i].label) == tracker.end()) order.push_back(trainval[i].label);
    tracker[trainval[i].label].push_back(static_cast<int>(i));
  }
  std::vector<Item> train, val;
  for (int label : order) {
    auto& idxs = tracker[label];
    const auto n_val = static_cast<size_t>(std::nearbyint(idxs.size() * 0.2));
    rng.Shuffle(&idxs);
    for (size_t n = 0; n < idxs.size(); ++n) (n < n_val ? val : train).push_back(trainval[idxs[n]]);
  }

  auto to_json = [&](const std::vector<Item>& items) {
    Json arr = Json::array();
    for (const auto& it : items) arr.push_back(Json::array({it.path, it.label, names[it.label]}));
    return arr;
  };
  Json split = Json::object();
  split["train"] = to_json(train);
  split["val"] = to_json(val);
  split["test"] = to_json(parts["test"]);
  FashionMnistImportSummary summary;
  summary.split_file = folder + "/split_zhou_FashionMNIST.json";
  // Written last, so a root with a split file always has all its images.
  ATP_RETURN_IF_ERROR(WriteFileAtomically(summary.split_file, split.dump() + "\n"));
  summary.train = static_cast<int64_t>(train.size());
  summary.val = static_cast<int64_t>(val.size());
  summary.test = static_cast<int64_t>(parts["test"].size());
  return summary;
}

}  // namespace atp::data
