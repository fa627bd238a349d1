#include "common/method_catalog.h"

#include <cmath>
#include <map>
#include <sstream>

#include "common/attribute_bases.h"

namespace atp {

const char* ParamTypeName(ParamType t) {
  switch (t) {
    case ParamType::kInt: return "integer";
    case ParamType::kFloat: return "float";
    case ParamType::kBool: return "boolean";
    case ParamType::kString: return "string";
    case ParamType::kStringList: return "list of strings";
  }
  return "?";
}

const std::vector<ParamInfo>& CommonParams() {
  static const std::vector<ParamInfo> kCommon = {
      {"dataset", ParamType::kString, "", "dataset name (see `atp data`)", {}},
      {"seed", ParamType::kInt, 1, "random seed of the run", {}},
  };
  return kCommon;
}

namespace {

// Where a job finds its data, weights and cache, and how it runs; shared by every CLIP method.
std::vector<ParamInfo> EnvironmentParams() {
  return {
      {"data_root", ParamType::kString, "", "data root (CoOp DATA layout); \"\" = $ATP_DATA_ROOT, else ./data", {}},
      {"backbone", ParamType::kString, "ViT-B/16",
       "CLIP checkpoint: a path, or an OpenAI model name looked up in $ATP_CLIP_DIR", {}},
      {"vocab", ParamType::kString, "", "BPE vocabulary file; \"\" = OpenAI's (../shared/clip or $ATP_CLIP_VOCAB)", {}},
      {"protocol", ParamType::kString, "base2novel", "evaluation protocol",
       {"base2novel", "cross_dataset", "domain_generalization"}},
      {"source_dataset", ParamType::kString, "",
       "cross-dataset / domain generalization: the dataset the prompt was trained on", {}},
      {"shots", ParamType::kInt, 16, "training images per class", {}},
      {"compat", ParamType::kString, "paper",
       "\"paper\": the method as the paper describes it; \"official\": the released code's behaviour "
       "(docs/methods.md lists each difference)",
       {"paper", "official"}},
      {"use_feature_cache", ParamType::kBool, true, "reuse frozen image-tower features across jobs", {}},
      {"feature_cache", ParamType::kString, "",
       "feature cache directory; \"\" = $ATP_FEATURE_CACHE, else ~/.cache/atp/features", {}},
      {"feature_cache_gb", ParamType::kFloat, 20.0, "size bound of the feature cache", {}},
      {"threads", ParamType::kInt, 0, "intra-op threads of the job; 0 = all cores of the rank's share", {}},
      {"device", ParamType::kString, "auto", "where the model runs: a CUDA GPU when one is present (auto)",
       {"auto", "cpu", "cuda"}},
      {"max_test_images", ParamType::kInt, 0, "evaluate on the first N test images per split; 0 = all", {}},
      {"precision", ParamType::kString, "auto",
       "arithmetic of the forward passes: fp32; bf16 (autocast); fp16 (CLIP and prompts in half, as the "
       "official trainers; CUDA only). auto = fp32 on the CPU; on CUDA fp16 with compat = \"official\", "
       "else bf16. Logits, softmax and loss are always fp32",
       {"auto", "fp32", "bf16", "fp16"}},
      {"test_batch_size", ParamType::kInt, 100, "evaluation batch", {}},
  };
}

// A parameter whose value, when left out, is the job's recipe (common/method_recipes.h).
ParamInfo Recipe(std::string name, ParamType type, std::string help) {
  ParamInfo info{std::move(name), type, Json(), std::move(help), {}};
  info.from_recipe = true;
  return info;
}

// eval_only: how the class-name form (class_name_underscores) is reconciled with the token
// buffers a published checkpoint saves (docs/methods.md). Absent from jobs that are not
// eval_only and, when it would say "detect", from eval_only jobs too: no key carries it then.
ParamInfo CheckpointClassNamesParam() {
  ParamInfo info{"checkpoint_class_names", ParamType::kString, Json(),
                 "eval_only: \"detect\" = the '_' form whose prompts match the checkpoint's token buffers; \"job\" "
                 "= class_name_underscores, which the buffers must confirm; \"unchecked\" = class_name_underscores, "
                 "buffers not compared (other class names or CLIP). Default: \"job\" when class_name_underscores "
                 "is set, else \"detect\"",
                 {"detect", "job", "unchecked"}};
  info.optional = true;
  return info;
}

// Parameters of a prompt-learning method (CoOp, CoCoOp, MaPLe, DePT). Those left out take the
// recipe of the method, dataset, protocol and compat mode (docs/recipes.md), at expansion.
std::vector<ParamInfo> PromptParams() {
  std::vector<ParamInfo> params = {
      {"atprompt", ParamType::kBool, false, "anchor the soft tokens to attribute words (ATPrompt)", {}},
      {"attributes", ParamType::kStringList, Json::array(),
       "ATPrompt attribute words; [] = the upstream attribute search's, else the paper's for the dataset", {}},
      Recipe("n_ctx", ParamType::kInt, "class soft tokens (default: the recipe's)"),
      Recipe("attribute_ctx", ParamType::kInt, "soft tokens per attribute (default: the recipe's, else n_ctx)"),
      {"class_position", ParamType::kString, "end", "where the class name sits in the prompt",
       {"end", "middle", "front"}},
      Recipe("ctx_init", ParamType::kString,
             "a phrase whose token embeddings initialise the class context (\"\" = N(0, 0.02)); CoOp and CoCoOp "
             "then take one soft token per word, MaPLe its first n_ctx tokens (default: the recipe's)"),
      Recipe("class_name_underscores", ParamType::kBool,
             "keep '_' in class names, as the official CoOp_ATP trainer's vanilla prompts do (default: the recipe's)"),
      Recipe("epochs", ParamType::kInt, "training epochs (default: the recipe's)"),
      Recipe("batch_size", ParamType::kInt, "training batch (default: the recipe's)"),
      Recipe("lr", ParamType::kFloat, "base learning rate of SGD (default: the recipe's)"),
      Recipe("warmup_epochs", ParamType::kInt, "constant warm-up epochs (default: the recipe's)"),
      Recipe("warmup_lr", ParamType::kFloat, "learning rate of the warm-up epochs (default: the recipe's)"),
      Recipe("momentum", ParamType::kFloat, "SGD momentum (default: the recipe's)"),
      Recipe("weight_decay", ParamType::kFloat, "SGD weight decay (default: the recipe's)"),
      {"max_steps_per_epoch", ParamType::kInt, 0, "cap on steps per epoch (smoke runs); 0 = full epochs", {}},
      {"augment", ParamType::kBool, true,
       "training images: CLIP's random resized crop and flip (official); false: the test transform, for images "
       "so small that a crop loses the object (Fashion-MNIST)", {}},
      {"eval_only", ParamType::kBool, false,
       "evaluate the upstream job's trained prompt (or `checkpoint`) instead of training", {}},
      {"checkpoint", ParamType::kString, "",
       "eval_only: a prompt checkpoint (atp's, or a published model.pth.tar-N)", {}},
      CheckpointClassNamesParam(),
  };
  for (auto& p : EnvironmentParams()) params.push_back(p);
  return params;
}

// PromptKD's student (docs/methods.md, "PromptKD"): its teacher comes from an upstream job
// (the teacher stage) or from `teacher_checkpoint`; it trains on every unlabeled train image.
std::vector<ParamInfo> PromptkdParams() {
  std::vector<ParamInfo> params = {
      {"atprompt", ParamType::kBool, false,
       "the teacher was trained with ATPrompt (PromptSRC+ATPrompt); the student itself has no text prompt", {}},
      Recipe("n_ctx", ParamType::kInt, "the student's vision prompt tokens (default: the recipe's: 4)"),
      Recipe("depth", ParamType::kInt, "the student's vision prompt depth J (default: the recipe's: 9)"),
      Recipe("kd_weight", ParamType::kFloat, "weight of the distillation loss (default: the recipe's: 1000, 200 on "
                                             "FGVCAircraft, Flowers102, DTD)"),
      Recipe("temperature", ParamType::kFloat, "distillation temperature T (default: the recipe's: 1)"),
      Recipe("epochs", ParamType::kInt, "training epochs (default: the recipe's)"),
      Recipe("batch_size", ParamType::kInt, "training batch (default: the recipe's)"),
      Recipe("lr", ParamType::kFloat, "base learning rate of SGD (default: the recipe's)"),
      Recipe("warmup_epochs", ParamType::kInt, "constant warm-up epochs (default: the recipe's)"),
      Recipe("warmup_lr", ParamType::kFloat, "learning rate of the warm-up epochs (default: the recipe's)"),
      Recipe("momentum", ParamType::kFloat, "SGD momentum (default: the recipe's)"),
      Recipe("weight_decay", ParamType::kFloat, "SGD weight decay (default: the recipe's)"),
      {"teacher_checkpoint", ParamType::kString, "",
       "the teacher: \"\" = the upstream teacher job's checkpoint; else a checkpoint of atp's, or a published "
       "teacher_model/<Dataset>/VLPromptLearner/model-best.pth.tar", {}},
      Recipe("teacher_method", ParamType::kString, "how the teacher was trained (default: the recipe's: promptsrc)"),
      Recipe("teacher_backbone", ParamType::kString,
             "a published teacher checkpoint's CLIP (default: the recipe's: ViT-L/14); atp's checkpoints record theirs"),
      Recipe("teacher_n_ctx", ParamType::kInt, "a published teacher's prompt tokens per tower (default: 4)"),
      Recipe("teacher_depth", ParamType::kInt, "a published teacher's prompt depth (default: 9)"),
      {"max_steps_per_epoch", ParamType::kInt, 0, "cap on steps per epoch (smoke runs); 0 = full epochs", {}},
      {"augment", ParamType::kBool, true,
       "training images: CLIP's random resized crop and flip (official); false: the test transform", {}},
  };
  for (auto& p : EnvironmentParams()) params.push_back(p);
  return params;
}

std::vector<ParamInfo> WithExtra(std::vector<ParamInfo> params, const std::vector<ParamInfo>& extra) {
  params.insert(params.end(), extra.begin(), extra.end());
  return params;
}

}  // namespace

const std::vector<MethodInfo>& AllMethods() {
  static const std::vector<MethodInfo> kMethods = {
      {"sleep",
       "waits `seconds` in `steps` progress steps and reports metrics; checkpoints every step. "
       "Used to dry-run an allocation and to test fault handling (`fail`).",
       false,
       {
           {"seconds", ParamType::kFloat, 1.0, "total time to wait", {}},
           {"steps", ParamType::kInt, 10, "progress steps (one checkpoint each)", {}},
           {"value", ParamType::kFloat, 0.0, "reported as the metric `value`", {}},
           {"fail", ParamType::kString, "", "inject a failure",
            {"", "throw", "segfault", "abort", "oom_kill", "bad_alloc", "nan", "hang", "user_error", "exit"}},
           {"fail_attempts", ParamType::kInt, 1000000, "inject the failure only on attempts <= this", {}},
           {"fail_at_step", ParamType::kInt, 0, "step at which the failure is injected", {}},
       }},
      {"zsclip", "zero-shot CLIP with the dataset's hand-written template (no training)", true,
       EnvironmentParams()},
      {"coop", "CoOp: learned class context (± ATPrompt attribute context)", true, PromptParams()},
      {"cocoop", "CoCoOp: class context shifted by a meta-net of the image feature (± ATPrompt)", true,
       PromptParams()},
      {"maple", "MaPLe: deep coupled text and vision prompts (± ATPrompt, deep version)", true,
       WithExtra(PromptParams(),
                 {Recipe("depth", ParamType::kInt, "prompt depth J (default: the recipe's: 9; 3 cross-dataset)")})},
      {"dept", "DePT: CoOp prompts plus a FiLM linear-probe head (± ATPrompt)", true,
       WithExtra(PromptParams(),
                 {Recipe("weight", ParamType::kFloat, "linear-probe loss weight w (default: the recipe's)")})},
      {"promptsrc",
       "PromptSRC: independent deep text and vision prompts (IVLP) with self-regularisation against the frozen "
       "CLIP and Gaussian prompt aggregation (± ATPrompt, deep version)",
       true,
       WithExtra(PromptParams(),
                 {Recipe("vision_n_ctx", ParamType::kInt, "vision prompt tokens per block (default: the recipe's: 4)"),
                  Recipe("text_depth", ParamType::kInt,
                         "text prompt depth: blocks 0..depth-1 carry prompts (default: the recipe's: 9; 3 cross-dataset)"),
                  Recipe("vision_depth", ParamType::kInt,
                         "vision prompt depth (default: the recipe's: 9; 3 cross-dataset)"),
                  Recipe("text_loss_weight", ParamType::kFloat,
                         "weight of the L1 loss to the frozen text features (default: the recipe's: 25)"),
                  Recipe("image_loss_weight", ParamType::kFloat,
                         "weight of the L1 loss to the frozen image features (default: the recipe's: 10)"),
                  Recipe("gpa_mean", ParamType::kFloat,
                         "Gaussian prompt aggregation: mean epoch (1-based) (default: the recipe's)"),
                  Recipe("gpa_std", ParamType::kFloat,
                         "Gaussian prompt aggregation: standard deviation in epochs (default: the recipe's)")})},
      {"promptkd",
       "PromptKD: a vision-prompted student distilled from a prompted teacher on every unlabeled train image "
       "(± ATPrompt in the teacher)",
       true, PromptkdParams()},
      {"attribute_search", "ATPrompt's differentiable search for the dataset's attribute words", true,
       WithExtra(EnvironmentParams(),
                 {{"bases", ParamType::kStringList, Json::array(),
                   "the attribute bases; [] = `bases_file`, else the paper's five for the dataset", {}},
                  {"bases_file", ParamType::kString, "", "attribute bases written by `atp attributes suggest`", {}},
                  {"max_group_size", ParamType::kInt, 0, "largest combination searched; 0 = all", {}},
                  {"n_ctx", ParamType::kInt, 4, "soft tokens per block", {}},
                  Recipe("epochs", ParamType::kInt, "search epochs (default: 10 in paper mode, 40 official)"),
                  {"warmup_epochs", ParamType::kInt, 1, "constant warm-up epochs", {}},
                  {"warmup_lr", ParamType::kFloat, 1e-5, "learning rate of the warm-up epochs", {}},
                  {"momentum", ParamType::kFloat, 0.9, "SGD momentum", {}},
                  {"weight_decay", ParamType::kFloat, 5e-4, "SGD weight decay", {}},
                  {"batch_size", ParamType::kInt, 32, "training batch", {}},
                  {"lr", ParamType::kFloat, 0.002, "prompt learning rate (SGD)", {}},
                  {"alpha_lr", ParamType::kFloat, 0.02, "combination-weight learning rate (Adam)", {}},
                  {"augment", ParamType::kBool, true,
                   "training images: random resized crop and flip; false: the test transform", {}},
                  {"max_steps_per_epoch", ParamType::kInt, 0, "cap on steps per epoch; 0 = full epochs", {}}})},
  };
  return kMethods;
}

const MethodInfo* FindMethod(const std::string& name) {
  for (const auto& m : AllMethods()) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

std::string MethodNamesList() {
  std::string out;
  for (const auto& m : AllMethods()) {
    if (!out.empty()) out += ", ";
    out += m.name;
  }
  return out;
}

namespace {

// The lowest value of each numeric parameter, by name (a name means the same in every method).
// Kept apart from the parameter lists: a value outside its range is refused before any job
// runs, not found out by a job that divides by it or sleeps forever.
struct NumericFloor {
  double minimum;
  bool inclusive;  // false: the value must be strictly above `minimum`
};

const NumericFloor* FloorOf(const std::string& name) {
  static const std::map<std::string, NumericFloor> kFloors = {
      {"seconds", {0, true}},          {"steps", {1, true}},           {"fail_attempts", {0, true}},
      {"fail_at_step", {0, true}},     {"shots", {1, true}},           {"feature_cache_gb", {0, false}},
      {"threads", {0, true}},          {"max_test_images", {0, true}}, {"n_ctx", {0, true}},
      {"attribute_ctx", {0, true}},    {"epochs", {0, true}},          {"batch_size", {0, true}},
      {"lr", {0, true}},               {"max_steps_per_epoch", {0, true}}, {"depth", {0, true}},
      {"weight", {0, true}},           {"max_group_size", {0, true}},  {"alpha_lr", {0, true}},
      {"vision_n_ctx", {0, true}},     {"text_depth", {1, true}},      {"vision_depth", {0, true}},
      {"text_loss_weight", {0, true}}, {"image_loss_weight", {0, true}}, {"gpa_std", {0, false}},
      {"kd_weight", {0, true}},        {"temperature", {0, false}},    {"teacher_n_ctx", {1, true}},
      {"teacher_depth", {1, true}},
  };
  auto it = kFloors.find(name);
  return it == kFloors.end() ? nullptr : &it->second;
}

// Numbers must be finite (JSON has no inf or nan: they would be stored as null) and at or
// above their parameter's floor.
Status CheckNumberInRange(const ParamInfo& param, const Json& value) {
  if (!value.is_number()) return Status::Ok();
  const double number = value.get<double>();
  if (!std::isfinite(number)) {
    return InvalidArgument("parameter '" + param.name + "' must be a finite number, got " +
                           (std::isnan(number) ? std::string("nan") : std::string(number > 0 ? "inf" : "-inf")));
  }
  const NumericFloor* floor = FloorOf(param.name);
  if (floor == nullptr) return Status::Ok();
  const bool ok = floor->inclusive ? number >= floor->minimum : number > floor->minimum;
  if (ok) return Status::Ok();
  return InvalidArgument("parameter '" + param.name + "' must be " + (floor->inclusive ? ">= " : "> ") +
                         Json(floor->minimum).dump() + ", got " + value.dump());
}

}  // namespace

Status CheckParamValue(const ParamInfo& param, const Json& value) {
  bool ok = false;
  switch (param.type) {
    case ParamType::kInt: ok = value.is_number_integer(); break;
    case ParamType::kFloat: ok = value.is_number(); break;
    case ParamType::kBool: ok = value.is_boolean(); break;
    case ParamType::kString: ok = value.is_string(); break;
    case ParamType::kStringList:
      ok = value.is_array();
      for (const auto& v : value) ok = ok && v.is_string();
      break;
  }
  if (!ok) {
    const char* article = param.type == ParamType::kInt ? "an " : "a ";
    return InvalidArgument("parameter '" + param.name + "' must be " + article + ParamTypeName(param.type) +
                           ", got " + value.dump());
  }
  if (param.type == ParamType::kString && !param.choices.empty()) {
    std::string s = value.get<std::string>();
    std::string list;
    for (const auto& c : param.choices) {
      if (c == s) return Status::Ok();
      if (!list.empty()) list += ", ";
      list += "\"" + c + "\"";
    }
    return InvalidArgument("parameter '" + param.name + "' is \"" + s + "\"; valid values: " + list);
  }
  return CheckNumberInRange(param, value);
}

namespace {
const ParamInfo* FindParam(const std::vector<ParamInfo>& params, const std::string& name) {
  for (const auto& p : params) {
    if (p.name == name) return &p;
  }
  return nullptr;
}
}  // namespace

namespace {

int WordCount(const std::string& phrase) {
  std::istringstream words(phrase);
  std::string word;
  int n = 0;
  while (words >> word) ++n;
  return n;
}

// Values a method cannot run with, named with the parameter; 0 was "the official value" in
// sweeps written before recipes were resolved at expansion, hence the hint.
Status CheckRecipeValues(const MethodInfo& method, const Json& resolved) {
  for (const char* name : {"n_ctx", "attribute_ctx", "epochs", "batch_size", "depth", "warmup_epochs"}) {
    if (!resolved.contains(name)) continue;
    const long long value = resolved[name].get<long long>();
    const long long minimum = std::string(name) == "warmup_epochs" ? 0 : 1;
    if (value < minimum) {
      return InvalidArgument("parameter '" + std::string(name) + "' of method '" + method.name + "' is " +
                             std::to_string(value) + "; it must be at least " + std::to_string(minimum) +
                             " (leave it out for the recipe's value)");
    }
  }
  for (const char* name : {"lr", "weight_decay", "momentum", "warmup_lr", "weight"}) {
    if (resolved.contains(name) && !(resolved[name].get<double>() >= 0)) {
      return InvalidArgument("parameter '" + std::string(name) + "' of method '" + method.name +
                             "' must be >= 0, got " + resolved[name].dump());
    }
  }
  if (resolved.contains("lr") && !(resolved["lr"].get<double>() > 0)) {
    return InvalidArgument("parameter 'lr' of method '" + method.name +
                           "' must be > 0 (leave it out for the recipe's value)");
  }
  return Status::Ok();
}

}  // namespace

Result<Json> ResolveMethodParams(const MethodInfo& method, const Json& params, const RecipeBook& recipes) {
  if (!params.is_object()) return InvalidArgument("parameters of method '" + method.name + "' must be a table");
  Json resolved = Json::object();
  for (auto& [name, value] : params.items()) {
    const ParamInfo* p = FindParam(method.params, name);
    if (!p) p = FindParam(CommonParams(), name);
    if (!p) {
      std::string valid;
      for (const auto* list : {&CommonParams(), &method.params}) {
        for (const auto& q : *list) valid += (valid.empty() ? "" : ", ") + q.name;
      }
      return InvalidArgument("unknown parameter '" + name + "' for method '" + method.name +
                             "'; valid parameters: " + valid);
    }
    ATP_RETURN_IF_ERROR(CheckParamValue(*p, value));
    resolved[name] = (p->type == ParamType::kFloat) ? Json(value.get<double>()) : value;
  }
  bool has_recipe_params = false;
  for (const auto* list : {&CommonParams(), &method.params}) {
    for (const auto& p : *list) {
      if (p.from_recipe) has_recipe_params = true;
      if (resolved.contains(p.name) || p.from_recipe || p.optional) continue;
      if (p.default_value.is_null()) {
        return InvalidArgument("method '" + method.name + "' needs parameter '" + p.name + "' (" + p.help + ")");
      }
      resolved[p.name] = p.default_value;
    }
  }
  if (method.needs_dataset && resolved.value("dataset", "").empty()) {
    return InvalidArgument("method '" + method.name + "' needs a dataset");
  }
  // Cross-dataset and domain generalisation train on ImageNet unless told otherwise.
  if (resolved.contains("source_dataset") && resolved.value("protocol", "base2novel") != "base2novel" &&
      resolved["source_dataset"].get<std::string>().empty()) {
    resolved["source_dataset"] = "imagenet";
  }
  if (!has_recipe_params) return resolved;

  RecipeKey key;
  key.method = method.name;
  key.atprompt = resolved.value("atprompt", false);
  key.protocol = resolved.value("protocol", "base2novel");
  key.compat = resolved.value("compat", "paper");
  key.training_dataset = TrainingDataset(resolved);
  const Json recipe = recipes.ValuesFor(key);
  std::vector<const ParamInfo*> derived;  // recipe parameters the recipe leaves to a rule below
  for (const auto& p : method.params) {
    if (!p.from_recipe || resolved.contains(p.name)) continue;
    auto it = recipe.find(p.name);
    if (it == recipe.end()) {
      derived.push_back(&p);
      continue;
    }
    resolved[p.name] = (p.type == ParamType::kFloat) ? Json(it->get<double>()) : *it;
  }
  for (const ParamInfo* p : derived) {
    if (p->name == "attribute_ctx" && resolved.contains("n_ctx")) {
      resolved["attribute_ctx"] = resolved["n_ctx"];  // ATPrompt's scripts set N_ATT = N_CTX
      continue;
    }
    return Internal("no recipe gives parameter '" + p->name + "' of method '" + method.name + "' (dataset '" +
                    key.training_dataset + "', protocol '" + key.protocol + "', compat '" + key.compat + "')");
  }
  // CoOp and CoCoOp take one soft token per word of ctx_init (vanilla; ATPrompt's class
  // context is always drawn).
  if ((method.name == "coop" || method.name == "cocoop") && !key.atprompt &&
      !resolved.value("ctx_init", "").empty()) {
    const int words = WordCount(resolved["ctx_init"].get<std::string>());
    if (params.contains("n_ctx") && params["n_ctx"].get<int>() != words) {
      return InvalidArgument("method '" + method.name + "': n_ctx = " + params["n_ctx"].dump() + " but ctx_init \"" +
                             resolved["ctx_init"].get<std::string>() + "\" sets " + std::to_string(words) +
                             " soft tokens, one per word; set ctx_init = \"\" for " + params["n_ctx"].dump() +
                             " randomly initialised tokens");
    }
    resolved["n_ctx"] = words;
  }
  ATP_RETURN_IF_ERROR(CheckRecipeValues(method, resolved));
  if (FindParam(method.params, "checkpoint_class_names")) {
    if (!resolved.value("eval_only", false)) {
      if (resolved.contains("checkpoint_class_names")) {
        return InvalidArgument("method '" + method.name + "': checkpoint_class_names applies to eval_only jobs only");
      }
    } else if (!resolved.contains("checkpoint_class_names") && params.contains("class_name_underscores")) {
      // A form the user chose is checked against the checkpoint, never silently replaced.
      // Left out otherwise: absent means "detect", so eval jobs written before keep their keys.
      resolved["checkpoint_class_names"] = "job";
    }
  }
  return resolved;
}

Status ResolvePaperAttributes(Json* params, bool has_search_upstream) {
  if (!params->value("atprompt", false) || has_search_upstream) return Status::Ok();
  if (!params->contains("attributes") || !(*params)["attributes"].empty()) return Status::Ok();
  const bool transfer = params->value("protocol", "base2novel") != "base2novel";
  const std::string words_of =
      transfer && params->value("compat", "paper") == "paper" ? params->value("source_dataset", "")
                                                              : params->value("dataset", "");
  Result<std::vector<std::string>> words = PaperSearchedAttributeWords(words_of);
  if (!words.ok()) {
    return InvalidArgument("+ATPrompt job on '" + params->value("dataset", "") +
                           "' names no attributes and has no attribute search upstream, and the paper gives none "
                           "for '" + words_of + "': set `attributes` or add a search stage (" +
                           words.status().message() + ")");
  }
  Json list = Json::array();
  for (const auto& w : *words) list.push_back(w);
  (*params)["attributes"] = list;
  return Status::Ok();
}

}  // namespace atp
