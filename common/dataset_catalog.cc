#include "common/dataset_catalog.h"

namespace atp {

const std::vector<DatasetInfo>& AllDatasets() {
  static const std::vector<DatasetInfo> kDatasets = {
      {"imagenet", "ImageNet"},
      {"caltech101", "Caltech101"},
      {"oxford_pets", "OxfordPets"},
      {"stanford_cars", "StanfordCars"},
      {"oxford_flowers", "Flowers102"},
      {"food101", "Food101"},
      {"fgvc_aircraft", "FGVCAircraft"},
      {"sun397", "SUN397"},
      {"dtd", "DTD"},
      {"eurosat", "EuroSAT"},
      {"ucf101", "UCF101"},
      {"imagenetv2", "ImageNet-V2", true},
      {"imagenet_sketch", "ImageNet-Sketch", true},
      {"imagenet_a", "ImageNet-A", true},
      {"imagenet_r", "ImageNet-R", true},
      {"fashion_mnist", "Fashion-MNIST"},
  };
  return kDatasets;
}

const DatasetInfo* FindDataset(const std::string& name) {
  for (const auto& d : AllDatasets()) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

std::string DatasetNamesList() {
  std::string out;
  for (const auto& d : AllDatasets()) {
    if (!out.empty()) out += ", ";
    out += d.name;
  }
  return out;
}

}  // namespace atp
