#include "worker/prompt/method_config.h"

#include <cstdlib>
#include <filesystem>
#include <map>

#include "common/attribute_bases.h"
#include "common/dataset_catalog.h"

namespace atp::prompt {
namespace {

// The official per-dataset recipe of the +ATPrompt runs (spec 4.7, docs/ATPrompt.md):
// epochs and soft-token length per method, and DePT's loss weight.
struct AtpromptRecipe {
  int coop_epochs, coop_nctx;
  int cocoop_epochs, cocoop_nctx;
  int maple_epochs, maple_nctx;
  int dept_epochs, dept_nctx;
  double dept_weight;
};

const std::map<std::string, AtpromptRecipe>& AtpromptRecipes() {
  static const std::map<std::string, AtpromptRecipe> kRecipes = {
      {"imagenet", {10, 2, 10, 2, 5, 4, 10, 2, 0.7}},
      {"caltech101", {100, 2, 10, 2, 10, 4, 10, 4, 0.6}},
      {"oxford_pets", {100, 2, 10, 2, 10, 4, 10, 2, 0.7}},
      {"stanford_cars", {100, 2, 10, 6, 5, 4, 10, 2, 0.6}},
      {"oxford_flowers", {100, 2, 10, 6, 10, 4, 10, 4, 0.7}},
      {"food101", {100, 2, 10, 2, 5, 4, 10, 4, 0.7}},
      {"fgvc_aircraft", {100, 2, 10, 2, 5, 2, 10, 4, 0.7}},
      {"sun397", {100, 2, 10, 2, 5, 4, 10, 4, 0.7}},
      {"dtd", {100, 4, 10, 2, 5, 4, 10, 4, 0.6}},
      {"eurosat", {100, 2, 10, 6, 10, 4, 10, 4, 0.7}},
      {"ucf101", {100, 2, 10, 4, 5, 2, 10, 4, 0.5}},
  };
  return kRecipes;
}

// The scripts' defaults for a dataset the docs do not list.
constexpr AtpromptRecipe kScriptDefaults = {100, 2, 10, 2, 5, 2, 10, 2, 0.7};

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

template <typename T>
T ParamOr(const Json& params, const char* key, T fallback) {
  return params.contains(key) && !params[key].is_null() ? params[key].get<T>() : fallback;
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
              {"checkpoint", checkpoint}};
}

Result<MethodConfig> ResolveMethodConfig(const std::string& method, const Json& params, const Json& upstream) {
  MethodConfig c;
  c.method = method;
  c.dataset = ParamOr<std::string>(params, "dataset", "");
  if (c.dataset.empty()) return InvalidArgument("method '" + method + "' needs a dataset");
  if (!FindDataset(c.dataset)) {
    return InvalidArgument("unknown dataset '" + c.dataset + "'; valid datasets: " + DatasetNamesList());
  }
  c.seed = ParamOr<int64_t>(params, "seed", 1);
  c.protocol = ParamOr<std::string>(params, "protocol", "base2novel");
  c.source_dataset = ParamOr<std::string>(params, "source_dataset", "");
  c.shots = ParamOr<int>(params, "shots", 16);
  c.atprompt = ParamOr<bool>(params, "atprompt", false);
  ATP_ASSIGN_OR_RETURN(c.design.compat, ParseCompat(ParamOr<std::string>(params, "compat", "paper")));
  ATP_ASSIGN_OR_RETURN(c.design.class_position,
                       ParseClassPosition(ParamOr<std::string>(params, "class_position", "end")));
  c.max_steps_per_epoch = ParamOr<int>(params, "max_steps_per_epoch", 0);
  c.augment = ParamOr<bool>(params, "augment", true);
  c.eval_only = ParamOr<bool>(params, "eval_only", false);
  c.checkpoint = ParamOr<std::string>(params, "checkpoint", "");
  c.data_root = ParamOr<std::string>(params, "data_root", "");
  if (c.data_root.empty()) c.data_root = DefaultDataRoot();
  c.backbone = ParamOr<std::string>(params, "backbone", "ViT-B/16");
  c.vocab = ParamOr<std::string>(params, "vocab", "");
  c.use_feature_cache = ParamOr<bool>(params, "use_feature_cache", true);
  c.feature_cache_dir = ParamOr<std::string>(params, "feature_cache", "");
  c.feature_cache_gb = ParamOr<double>(params, "feature_cache_gb", 20.0);
  c.threads = ParamOr<int>(params, "threads", 0);
  if (c.protocol != "base2novel" && c.source_dataset.empty()) c.source_dataset = "imagenet";
  const bool cross = c.protocol != "base2novel";
  // The dataset the prompt is trained on decides the recipe.
  const std::string recipe_dataset = cross ? c.source_dataset : c.dataset;
  auto recipe_it = AtpromptRecipes().find(recipe_dataset);
  const AtpromptRecipe recipe = recipe_it == AtpromptRecipes().end() ? kScriptDefaults : recipe_it->second;

  int n_ctx = 0, epochs = 0, batch = 0;
  double lr = 0;
  if (method == "coop") {
    batch = 32, lr = 0.002;
    if (c.atprompt) n_ctx = cross ? 4 : recipe.coop_nctx, epochs = cross ? 10 : recipe.coop_epochs;
    else n_ctx = 16, epochs = cross ? 10 : 200;
  } else if (method == "cocoop") {
    batch = 1, lr = 0.002;
    if (c.atprompt) n_ctx = cross ? 4 : recipe.cocoop_nctx, epochs = cross ? 5 : recipe.cocoop_epochs;
    else n_ctx = 4, epochs = 10, c.design.ctx_init = ParamOr<std::string>(params, "ctx_init", "a photo of a");
  } else if (method == "maple") {
    batch = 4, lr = cross ? 0.0026 : 0.0035;
    c.maple_depth = cross ? 3 : 9;
    c.test_batch_size = cross ? 100 : 200;
    if (c.atprompt) n_ctx = cross ? 4 : recipe.maple_nctx, epochs = cross ? 2 : recipe.maple_epochs;
    else n_ctx = 2, epochs = cross ? 2 : 5, c.design.ctx_init = ParamOr<std::string>(params, "ctx_init", "a photo of a");
    if (params.contains("depth") && params["depth"].get<int>() > 0) c.maple_depth = params["depth"].get<int>();
  } else if (method == "dept") {
    batch = 4, lr = 0.0035;
    if (c.atprompt) n_ctx = recipe.dept_nctx, epochs = recipe.dept_epochs, c.dept_weight = recipe.dept_weight;
    else n_ctx = 4, epochs = 20, c.dept_weight = 0.7;
    if (params.contains("weight") && params["weight"].get<double>() > 0) c.dept_weight = params["weight"].get<double>();
  } else if (method == "attribute_search") {
    batch = 32, lr = 0.002, n_ctx = 4;
    epochs = c.design.compat == Compat::kOfficial ? 40 : 10;
    c.alpha_lr = ParamOr<double>(params, "alpha_lr", 0.02);
    c.max_group_size = ParamOr<int>(params, "max_group_size", 0);
    std::vector<std::string> bases = StringList(params.value("bases", Json::array()));
    if (bases.empty()) {
      ATP_ASSIGN_OR_RETURN(bases, ResolveAttributeBases(ParamOr<std::string>(params, "bases_file", ""), c.dataset));
    }
    c.bases = bases;
  } else if (method == "zsclip") {
    epochs = 0, batch = 0;
  } else {
    return InvalidArgument("unknown prompt method '" + method + "'");
  }
  c.batch_size = ParamOr<int>(params, "batch_size", 0) > 0 ? params["batch_size"].get<int>() : batch;
  c.lr = ParamOr<double>(params, "lr", 0.0) > 0 ? params["lr"].get<double>() : lr;
  c.epochs = ParamOr<int>(params, "epochs", 0) > 0 ? params["epochs"].get<int>() : epochs;
  c.design.n_ctx = ParamOr<int>(params, "n_ctx", 0) > 0 ? params["n_ctx"].get<int>() : n_ctx;
  if (method == "cocoop" && !c.atprompt && !c.design.ctx_init.empty()) {
    // "a photo of a" fixes n = 4 whatever n_ctx says (spec 3.4); n_ctx applies with ctx_init "".
    c.design.n_ctx = 4;
  }
  const int attribute_ctx = ParamOr<int>(params, "attribute_ctx", 0);

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
      // Cross-dataset: the paper anchors every target to the source's attributes; the
      // released code uses each target's own (spec 9, item 10).
      const std::string words_of =
          cross && c.design.compat == Compat::kPaper ? c.source_dataset : c.dataset;
      ATP_ASSIGN_OR_RETURN(attributes, PaperSearchedAttributeWords(words_of));
      c.attribute_source = "paper:" + words_of;
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
    if (attribute_ctx > 0) c.design.attribute_ctx.assign(attributes.size(), attribute_ctx);
  }
  if (method != "zsclip" && method != "attribute_search" && c.design.n_ctx < 1) {
    return InvalidArgument("n_ctx must be at least 1");
  }
  if (c.epochs < 0 || c.batch_size < 0 || c.lr < 0) return InvalidArgument("epochs, batch_size and lr must be >= 0");
  return c;
}

}  // namespace atp::prompt
