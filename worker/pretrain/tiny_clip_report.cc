#include "worker/pretrain/tiny_clip_report.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/atomic_file.h"

namespace atp::pretrain {
namespace {

constexpr const char* kFormat = "atp-tiny-clip-1";

}  // namespace

const std::vector<std::string>& PretrainViewNames() {
  static const std::vector<std::string> kViews = {"plain", "negative", "faded", "red"};
  return kViews;
}

void ApplyPretrainView(const std::string& view, int channel, uint8_t* values, int64_t count) {
  if (view == "negative") {
    for (int64_t i = 0; i < count; ++i) values[i] = static_cast<uint8_t>(255 - values[i]);
  } else if (view == "faded") {
    for (int64_t i = 0; i < count; ++i) values[i] = static_cast<uint8_t>(64 + values[i] / 2);
  } else if (view == "red" && channel != 0) {
    std::fill(values, values + count, uint8_t{0});
  }
}

Json TinyClipOptions::ToJson() const {
  Json j;
  j["data_root"] = data_root;
  j["epochs"] = epochs;
  j["seed"] = seed;
  j["batch_size"] = batch_size;
  j["learning_rate"] = learning_rate;
  j["weight_decay"] = weight_decay;
  j["warmup_steps"] = warmup_steps;
  j["max_train_per_class"] = max_train_per_class;
  j["max_test_per_class"] = max_test_per_class;
  j["max_merges"] = max_merges;
  j["resolution"] = resolution;
  j["patch_size"] = patch_size;
  j["vision_width"] = vision_width;
  j["vision_layers"] = vision_layers;
  j["text_width"] = text_width;
  j["text_layers"] = text_layers;
  j["context_length"] = context_length;
  j["embed_dim"] = embed_dim;
  j["view"] = view;
  return j;
}

Result<TinyClipOptions> TinyClipOptions::FromJson(const Json& j) {
  TinyClipOptions o;
  try {
    o.data_root = j.at("data_root").get<std::string>();
    o.epochs = j.at("epochs").get<int>();
    o.seed = j.at("seed").get<uint64_t>();
    o.batch_size = j.at("batch_size").get<int>();
    o.learning_rate = j.at("learning_rate").get<double>();
    o.weight_decay = j.at("weight_decay").get<double>();
    o.warmup_steps = j.at("warmup_steps").get<int>();
    o.max_train_per_class = j.at("max_train_per_class").get<int>();
    o.max_test_per_class = j.at("max_test_per_class").get<int>();
    o.max_merges = j.at("max_merges").get<int>();
    o.resolution = j.at("resolution").get<int>();
    o.patch_size = j.at("patch_size").get<int>();
    o.vision_width = j.at("vision_width").get<int>();
    o.vision_layers = j.at("vision_layers").get<int>();
    o.text_width = j.at("text_width").get<int>();
    o.text_layers = j.at("text_layers").get<int>();
    o.context_length = j.at("context_length").get<int>();
    o.embed_dim = j.at("embed_dim").get<int>();
    o.view = j.value("view", std::string("plain"));  // runs made before views existed saw plain images
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("tiny CLIP options: ") + e.what());
  }
  return o;
}

Status TinyClipOptions::Validate() const {
  auto positive = [](const char* flag, int v) -> Status {
    if (v > 0) return Status::Ok();
    return InvalidArgument(std::string(flag) + " must be positive, got " + std::to_string(v));
  };
  ATP_RETURN_IF_ERROR(positive("epochs", epochs));
  ATP_RETURN_IF_ERROR(positive("batch_size", batch_size));
  ATP_RETURN_IF_ERROR(positive("resolution", resolution));
  ATP_RETURN_IF_ERROR(positive("patch_size", patch_size));
  ATP_RETURN_IF_ERROR(positive("vision_layers", vision_layers));
  ATP_RETURN_IF_ERROR(positive("text_layers", text_layers));
  ATP_RETURN_IF_ERROR(positive("context_length", context_length));
  ATP_RETURN_IF_ERROR(positive("embed_dim", embed_dim));
  if (batch_size < 2) return InvalidArgument("batch_size must be at least 2 for a contrastive loss");
  if (threads < 0) return InvalidArgument("threads must be >= 0 (0 = every core), got " + std::to_string(threads));
  if (max_train_per_class < 0 || max_test_per_class < 0) {
    return InvalidArgument("the per-class image limits must be >= 0 (0 = every image)");
  }
  const auto& views = PretrainViewNames();
  if (std::find(views.begin(), views.end(), view) == views.end()) {
    std::string names;
    for (const auto& v : views) names += (names.empty() ? "" : ", ") + v;
    return InvalidArgument("unknown view '" + view + "'; the views are " + names);
  }
  if (warmup_steps < 0) return InvalidArgument("warmup_steps must be >= 0");
  if (!(learning_rate > 0) || !(weight_decay >= 0)) {
    return InvalidArgument("learning_rate must be positive and weight_decay >= 0");
  }
  if (resolution % patch_size != 0) {
    return InvalidArgument("the patch size " + std::to_string(patch_size) + " does not divide the resolution " +
                           std::to_string(resolution));
  }
  // CLIP's loader infers heads as width / 64, so only such widths load back.
  for (auto [name, w] : {std::pair<const char*, int>{"vision_width", vision_width}, {"text_width", text_width}}) {
    if (w < 64 || w % 64 != 0) {
      return InvalidArgument(std::string(name) + " must be a positive multiple of 64 (heads are width / 64), got " +
                             std::to_string(w));
    }
  }
  return Status::Ok();
}

Json TinyClipReport::ToJson() const {
  Json j;
  j["format"] = kFormat;
  j["options"] = options.ToJson();
  j["threads"] = threads_used;
  j["model"] = model;
  j["corpus_sha256"] = corpus_sha256;
  j["vocab_size"] = vocab_size;
  j["merges"] = num_merges;
  j["train_images"] = train_images;
  j["test_images"] = test_images;
  j["steps"] = steps;
  j["epoch_losses"] = epoch_losses;
  j["zero_shot_accuracy"] = zero_shot_accuracy;
  j["zero_shot_template"] = "a photo of a {}.";
  j["dataset_zero_shot_accuracy"] = dataset_zero_shot_accuracy;
  Json classes = Json::array();
  for (const auto& c : per_class) {
    classes.push_back({{"class", c.classname}, {"correct", c.correct}, {"total", c.total}, {"accuracy", c.accuracy()}});
  }
  j["per_class"] = classes;
  j["seconds"] = {{"prepare", prepare_seconds}, {"train", train_seconds}, {"eval", eval_seconds}, {"total", total_seconds}};
  return j;
}

Result<TinyClipReport> TinyClipReport::FromJson(const Json& j, const std::string& source) {
  TinyClipReport r;
  try {
    if (j.at("format").get<std::string>() != kFormat) {
      return InvalidArgument(source + ": format " + j.at("format").dump() + ", expected \"" + kFormat + "\"");
    }
    auto options = TinyClipOptions::FromJson(j.at("options"));
    if (!options.ok()) return options.status().WithContext(source);
    r.options = *options;
    r.threads_used = j.at("threads").get<int>();
    r.model = j.at("model").get<std::string>();
    r.corpus_sha256 = j.at("corpus_sha256").get<std::string>();
    r.vocab_size = j.at("vocab_size").get<int>();
    r.num_merges = j.at("merges").get<int>();
    r.train_images = j.at("train_images").get<int64_t>();
    r.test_images = j.at("test_images").get<int64_t>();
    r.steps = j.at("steps").get<int64_t>();
    r.epoch_losses = j.at("epoch_losses").get<std::vector<double>>();
    r.zero_shot_accuracy = j.at("zero_shot_accuracy").get<double>();
    r.dataset_zero_shot_accuracy = j.value("dataset_zero_shot_accuracy", r.zero_shot_accuracy);
    for (const auto& c : j.at("per_class")) {
      r.per_class.push_back({c.at("class").get<std::string>(), c.at("correct").get<int64_t>(), c.at("total").get<int64_t>()});
    }
    const Json& s = j.at("seconds");
    r.prepare_seconds = s.at("prepare").get<double>();
    r.train_seconds = s.at("train").get<double>();
    r.eval_seconds = s.at("eval").get<double>();
    r.total_seconds = s.at("total").get<double>();
  } catch (const std::exception& e) {
    return InvalidArgument(source + ": not a tiny CLIP report: " + e.what());
  }
  return r;
}

TinyClipPaths TinyClipPathsIn(const std::string& out_dir) {
  const std::filesystem::path d(out_dir);
  return {(d / "tiny_clip.pt").string(), (d / "tiny_clip_vocab.txt.gz").string(), (d / "tiny_clip.json").string()};
}

Result<TinyClipReport> ReadTinyClipReport(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("cannot open " + path);
  Json j;
  try {
    j = Json::parse(in);
  } catch (const std::exception& e) {
    return InvalidArgument(path + ": not valid JSON: " + e.what());
  }
  return TinyClipReport::FromJson(j, path);
}

Status WriteTinyClipReport(const TinyClipReport& report, const std::string& path) {
  return WriteFileAtomically(path, report.ToJson().dump(2) + "\n");
}

}  // namespace atp::pretrain
