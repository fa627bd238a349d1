#include "worker/prompt/method_config.h"

#include <cstdlib>
#include <filesystem>
#include <map>

#include "common/attribute_bases.h"
#include "common/dataset_catalog.h"

namespace atp::prompt {
namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

// Jobs carry the effective value of every parameter (resolved at expansion); a missing one
// means the job was written by an older atp, whose specs left recipe values to the worker.
Status Missing(const std::string& method, const char* key) {
  return InvalidArgument("job of method '" + method + "' has no parameter '" + key +
                         "': it was written before recipes were resolved at sweep expansion; submit its sweep "
                         "again (docs/schema.md)");
}

template <typename T>
Status Read(const Json& params, const std::string& method, const char* key, T* out) {
  if (!params.contains(key) || params[key].is_null()) return Missing(method, key);
  try {
    *out = params[key].get<T>();
  } catch (const std::exception&) {
    return InvalidArgument("job parameter '" + std::string(key) + "' has the wrong type: " + params[key].dump());
  }
  return Status::Ok();
}

std::vector<std::string> StringList(const Json& value) {
  std::vector<std::string> out;
  if (value.is_array()) {
    for (const auto& v : value) out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

std::string DefaultDataRoot() {
  std::string root = Env("ATP_DATA_ROOT");
  return root.empty() ? "data" : root;
}

Result<std::string> ResolveBackbonePath(const std::string& backbone) {
  namespace fs = std::filesystem;
  if (backbone.empty()) return InvalidArgument("parameter 'backbone' is empty");
  if (fs::exists(backbone)) return backbone;
  std::string file = backbone;
  for (char& c : file) {
    if (c == '/') c = '-';
  }
  if (file.size() < 3 || file.substr(file.size() - 3) != ".pt") file += ".pt";
  std::string dir = Env("ATP_CLIP_DIR");
  std::vector<std::string> tried = {backbone};
  if (!dir.empty()) {
    std::string candidate = dir + "/" + file;
    if (fs::exists(candidate)) return candidate;
    tried.push_back(candidate);
  }
  std::string list;
  for (const auto& t : tried) list += "\n  " + t;
  return NotFound("backbone '" + backbone + "' not found; tried:" + list +
                  (dir.empty() ? "\nset ATP_CLIP_DIR to the directory holding OpenAI's checkpoints (e.g. ViT-B-16.pt), "
                                 "or give a path"
                               : ""));
}

Json MethodConfig::ToJson() const {
  Json attributes = Json::array();
  for (const auto& a : design.attributes) attributes.push_back(a);
  return Json{{"method", method},
              {"dataset", dataset},
              {"seed", seed},
              {"protocol", protocol},
              {"source_dataset", source_dataset},
              {"shots", shots},
              {"atprompt", atprompt},
              {"n_ctx", design.n_ctx},
              {"attributes", attributes},
              {"attribute_ctx", design.attribute_ctx.empty() ? design.n_ctx : design.attribute_ctx.front()},
              {"attribute_source", attribute_source},
              {"class_position", ClassPositionName(design.class_position)},
              {"compat", CompatName(design.compat)},
              {"ctx_init", design.ctx_init},
              {"class_name_underscores", design.keep_underscores},
              {"epochs", epochs},
              {"batch_size", batch_size},
              {"test_batch_size", test_batch_size},
              {"lr", lr},
              {"warmup_lr", warmup_lr},
              {"warmup_epochs", warmup_epochs},
              {"momentum", momentum},
              {"weight_decay", weight_decay},
              {"max_steps_per_epoch", max_steps_per_epoch},
              {"augment", augment},
              {"maple_depth", maple_depth},
              {"dept_weight", dept_weight},
              {"vision_n_ctx", vision_n_ctx},
              {"text_depth", text_depth},
              {"vision_depth", vision_depth},
              {"text_loss_weight", text_loss_weight},
              {"image_loss_weight", image_loss_weight},
              {"gpa_mean", gpa_mean},
              {"gpa_std", gpa_std},
              {"kd_weight", kd_weight},
              {"kd_temperature", kd_temperature},
              {"teacher_checkpoint", teacher_checkpoint},
              {"teacher_method", teacher_method},
              {"teacher_backbone", teacher_backbone},
              {"teacher_n_ctx", teacher_n_ctx},
              {"teacher_depth", teacher_depth},
              {"bases", bases},
              {"max_group_size", max_group_size},
              {"alpha_lr", alpha_lr},
              {"precision", precision},
              {"data_root", data_root},
              {"backbone", backbone},
              {"vocab", vocab},
              {"use_feature_cache", use_feature_cache},
              {"feature_cache", feature_cache_dir},
              {"eval_only", eval_only},
              {"checkpoint", checkpoint},
              {"checkpoint_class_names", checkpoint_class_names}};
}

Result<MethodConfig> MethodConfigFromJson(const Json& j) {
  MethodConfig c;
  const std::string who = "recorded job settings";
  std::string compat, position;
  ATP_RETURN_IF_ERROR(Read(j, who, "method", &c.method));
  ATP_RETURN_IF_ERROR(Read(j, who, "dataset", &c.dataset));
  ATP_RETURN_IF_ERROR(Read(j, who, "seed", &c.seed));
  ATP_RETURN_IF_ERROR(Read(j, who, "protocol", &c.protocol));
  ATP_RETURN_IF_ERROR(Read(j, who, "source_dataset", &c.source_dataset));
  ATP_RETURN_IF_ERROR(Read(j, who, "shots", &c.shots));
  ATP_RETURN_IF_ERROR(Read(j, who, "atprompt", &c.atprompt));
  ATP_RETURN_IF_ERROR(Read(j, who, "n_ctx", &c.design.n_ctx));
  c.design.attributes = StringList(j.value("attributes", Json::array()));
  int attribute_ctx = 0;
  ATP_RETURN_IF_ERROR(Read(j, who, "attribute_ctx", &attribute_ctx));
  c.design.attribute_ctx.assign(c.design.attributes.size(), attribute_ctx);
  c.attribute_source = j.value("attribute_source", "");
  ATP_RETURN_IF_ERROR(Read(j, who, "class_position", &position));
  ATP_ASSIGN_OR_RETURN(c.design.class_position, ParseClassPosition(position));
  ATP_RETURN_IF_ERROR(Read(j, who, "compat", &compat));
  ATP_ASSIGN_OR_RETURN(c.design.compat, ParseCompat(compat));
  ATP_RETURN_IF_ERROR(Read(j, who, "ctx_init", &c.design.ctx_init));
  ATP_RETURN_IF_ERROR(Read(j, who, "class_name_underscores", &c.design.keep_underscores));
  ATP_RETURN_IF_ERROR(Read(j, who, "maple_depth", &c.maple_depth));
  ATP_RETURN_IF_ERROR(Read(j, who, "dept_weight", &c.dept_weight));
  c.vision_n_ctx = j.value("vision_n_ctx", c.vision_n_ctx);
  c.text_depth = j.value("text_depth", c.text_depth);
  c.vision_depth = j.value("vision_depth", c.vision_depth);
  ATP_RETURN_IF_ERROR(Read(j, who, "precision", &c.precision));
  ATP_RETURN_IF_ERROR(Read(j, who, "backbone", &c.backbone));
  ATP_RETURN_IF_ERROR(Read(j, who, "vocab", &c.vocab));
  c.data_root = j.value("data_root", "");
  c.epochs = j.value("epochs", 0);
  c.batch_size = j.value("batch_size", 0);
  c.lr = j.value("lr", 0.0);
  c.augment = j.value("augment", true);
  return c;
}

Result<MethodConfig> ResolveMethodConfig(const std::string& method, const Json& params, const Json& upstream) {
  MethodConfig c;
  c.method = method;
  if (method != "zsclip" && method != "coop" && method != "cocoop" && method != "maple" && method != "dept" &&
      method != "promptsrc" && method != "attribute_search" && method != "promptkd") {
    return InvalidArgument("unknown prompt method '" + method + "'");
  }
  ATP_RETURN_IF_ERROR(Read(params, method, "dataset", &c.dataset));
  if (c.dataset.empty()) return InvalidArgument("method '" + method + "' needs a dataset");
  if (!FindDataset(c.dataset)) {
    return InvalidArgument("unknown dataset '" + c.dataset + "'; valid datasets: " + DatasetNamesList());
  }
  std::string compat, precision;
  ATP_RETURN_IF_ERROR(Read(params, method, "seed", &c.seed));
  ATP_RETURN_IF_ERROR(Read(params, method, "protocol", &c.protocol));
  ATP_RETURN_IF_ERROR(Read(params, method, "source_dataset", &c.source_dataset));
  ATP_RETURN_IF_ERROR(Read(params, method, "shots", &c.shots));
  ATP_RETURN_IF_ERROR(Read(params, method, "compat", &compat));
  ATP_ASSIGN_OR_RETURN(c.design.compat, ParseCompat(compat));
  ATP_RETURN_IF_ERROR(Read(params, method, "precision", &c.precision));
  if (c.precision != "auto" && c.precision != "fp32" && c.precision != "bf16" && c.precision != "fp16") {
    return InvalidArgument("precision is \"" + c.precision + "\"; valid values: auto, fp32, bf16, fp16");
  }
  ATP_RETURN_IF_ERROR(Read(params, method, "test_batch_size", &c.test_batch_size));
  ATP_RETURN_IF_ERROR(Read(params, method, "data_root", &c.data_root));
  if (c.data_root.empty()) c.data_root = DefaultDataRoot();
  ATP_RETURN_IF_ERROR(Read(params, method, "backbone", &c.backbone));
  ATP_RETURN_IF_ERROR(Read(params, method, "vocab", &c.vocab));
  ATP_RETURN_IF_ERROR(Read(params, method, "use_feature_cache", &c.use_feature_cache));
  ATP_RETURN_IF_ERROR(Read(params, method, "feature_cache", &c.feature_cache_dir));
  ATP_RETURN_IF_ERROR(Read(params, method, "feature_cache_gb", &c.feature_cache_gb));
  ATP_RETURN_IF_ERROR(Read(params, method, "threads", &c.threads));
  if (c.protocol != "base2novel" && c.source_dataset.empty()) {
    return InvalidArgument("a " + c.protocol + " job needs its source_dataset");
  }
  if (method == "zsclip") return c;

  ATP_RETURN_IF_ERROR(Read(params, method, "epochs", &c.epochs));
  ATP_RETURN_IF_ERROR(Read(params, method, "batch_size", &c.batch_size));
  ATP_RETURN_IF_ERROR(Read(params, method, "lr", &c.lr));
  ATP_RETURN_IF_ERROR(Read(params, method, "warmup_epochs", &c.warmup_epochs));
  ATP_RETURN_IF_ERROR(Read(params, method, "warmup_lr", &c.warmup_lr));
  ATP_RETURN_IF_ERROR(Read(params, method, "momentum", &c.momentum));
  ATP_RETURN_IF_ERROR(Read(params, method, "weight_decay", &c.weight_decay));
  ATP_RETURN_IF_ERROR(Read(params, method, "n_ctx", &c.design.n_ctx));
  ATP_RETURN_IF_ERROR(Read(params, method, "max_steps_per_epoch", &c.max_steps_per_epoch));
  ATP_RETURN_IF_ERROR(Read(params, method, "augment", &c.augment));
  if (method == "promptkd") {
    // The student has no text prompt; +ATPrompt lives in its teacher (docs/methods.md).
    ATP_RETURN_IF_ERROR(Read(params, method, "atprompt", &c.atprompt));
    ATP_RETURN_IF_ERROR(Read(params, method, "depth", &c.maple_depth));
    ATP_RETURN_IF_ERROR(Read(params, method, "kd_weight", &c.kd_weight));
    ATP_RETURN_IF_ERROR(Read(params, method, "temperature", &c.kd_temperature));
    ATP_RETURN_IF_ERROR(Read(params, method, "teacher_checkpoint", &c.teacher_checkpoint));
    ATP_RETURN_IF_ERROR(Read(params, method, "teacher_method", &c.teacher_method));
    ATP_RETURN_IF_ERROR(Read(params, method, "teacher_backbone", &c.teacher_backbone));
    ATP_RETURN_IF_ERROR(Read(params, method, "teacher_n_ctx", &c.teacher_n_ctx));
    ATP_RETURN_IF_ERROR(Read(params, method, "teacher_depth", &c.teacher_depth));
    if (c.design.n_ctx < 1 || c.maple_depth < 1) return InvalidArgument("PromptKD: n_ctx and depth must be at least 1");
    if (!(c.kd_temperature > 0)) return InvalidArgument("PromptKD: temperature must be above 0");
    if (c.protocol != "base2novel") {
      return InvalidArgument("PromptKD runs the transductive base-to-novel protocol only (protocol = \"base2novel\")");
    }
    if (c.epochs < 1 || c.batch_size < 1 || !(c.lr > 0)) {
      return InvalidArgument("epochs and batch_size must be at least 1 and lr above 0");
    }
    return c;
  }
  if (method == "attribute_search") {
    ATP_RETURN_IF_ERROR(Read(params, method, "alpha_lr", &c.alpha_lr));
    ATP_RETURN_IF_ERROR(Read(params, method, "max_group_size", &c.max_group_size));
    std::string bases_file;
    ATP_RETURN_IF_ERROR(Read(params, method, "bases_file", &bases_file));
    std::vector<std::string> bases = StringList(params.value("bases", Json::array()));
    if (bases.empty()) {
      ATP_ASSIGN_OR_RETURN(bases, ResolveAttributeBases(bases_file, c.dataset));
    }
    c.bases = bases;
  } else {
    std::string position;
    ATP_RETURN_IF_ERROR(Read(params, method, "atprompt", &c.atprompt));
    ATP_RETURN_IF_ERROR(Read(params, method, "class_position", &position));
    ATP_ASSIGN_OR_RETURN(c.design.class_position, ParseClassPosition(position));
    ATP_RETURN_IF_ERROR(Read(params, method, "ctx_init", &c.design.ctx_init));
    ATP_RETURN_IF_ERROR(Read(params, method, "class_name_underscores", &c.design.keep_underscores));
    ATP_RETURN_IF_ERROR(Read(params, method, "eval_only", &c.eval_only));
    ATP_RETURN_IF_ERROR(Read(params, method, "checkpoint", &c.checkpoint));
    // Absent from jobs that are not eval_only (and from specs written before it existed).
    if (params.contains("checkpoint_class_names")) {
      ATP_RETURN_IF_ERROR(Read(params, method, "checkpoint_class_names", &c.checkpoint_class_names));
    }
    if (method == "maple") ATP_RETURN_IF_ERROR(Read(params, method, "depth", &c.maple_depth));
    if (method == "dept") ATP_RETURN_IF_ERROR(Read(params, method, "weight", &c.dept_weight));
    if (method == "promptsrc") {
      ATP_RETURN_IF_ERROR(Read(params, method, "vision_n_ctx", &c.vision_n_ctx));
      ATP_RETURN_IF_ERROR(Read(params, method, "text_depth", &c.text_depth));
      ATP_RETURN_IF_ERROR(Read(params, method, "vision_depth", &c.vision_depth));
      ATP_RETURN_IF_ERROR(Read(params, method, "text_loss_weight", &c.text_loss_weight));
      ATP_RETURN_IF_ERROR(Read(params, method, "image_loss_weight", &c.image_loss_weight));
      ATP_RETURN_IF_ERROR(Read(params, method, "gpa_mean", &c.gpa_mean));
      ATP_RETURN_IF_ERROR(Read(params, method, "gpa_std", &c.gpa_std));
      if (c.text_depth < 1) return InvalidArgument("promptsrc: text_depth must be at least 1 (PROMPT_DEPTH_TEXT)");
      if (!(c.gpa_std > 0)) return InvalidArgument("promptsrc: gpa_std must be above 0");
    }
  }
  int attribute_ctx = 0;
  if (method != "attribute_search") ATP_RETURN_IF_ERROR(Read(params, method, "attribute_ctx", &attribute_ctx));

  if (c.atprompt) {
    std::vector<std::string> attributes = StringList(params.value("attributes", Json::array()));
    if (!attributes.empty()) {
      c.attribute_source = "explicit";
    } else {
      for (const auto& up : upstream) {
        if (up.value("method", "") == "attribute_search" && up.contains("outputs") &&
            up["outputs"].contains("attributes")) {
          attributes = StringList(up["outputs"]["attributes"]);
          c.attribute_source = "search:" + up.value("key", "");
          break;
        }
      }
    }
    if (attributes.empty()) {
      // Expansion fills the paper's attributes unless a search runs upstream
      // (ResolvePaperAttributes); that search must then have written its choice.
      return InvalidArgument("+ATPrompt job names no attributes and no attribute search upstream gave any");
    }
    for (const auto& word : attributes) {
      if (word.empty() || word.find(' ') != std::string::npos) {
        return InvalidArgument("attribute '" + word + "' must be one non-empty word");
      }
    }
    if (c.design.compat == Compat::kOfficial && attributes.size() > 3) {
      return InvalidArgument("compat = \"official\" takes 1 to 3 attributes (ATT_NUM), got " +
                             std::to_string(attributes.size()));
    }
    c.design.attributes = attributes;
    c.design.attribute_ctx.assign(attributes.size(), attribute_ctx);
  }
  if (method != "zsclip" && method != "attribute_search" && c.design.n_ctx < 1) {
    return InvalidArgument("n_ctx must be at least 1");
  }
  if (c.epochs < 1 || c.batch_size < 1 || !(c.lr > 0)) {
    return InvalidArgument("epochs and batch_size must be at least 1 and lr above 0");
  }
  return c;
}

}  // namespace atp::prompt
