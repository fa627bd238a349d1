#include "common/method_catalog.h"

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
  };
}

// Parameters of a prompt-learning method (CoOp, CoCoOp, MaPLe, DePT). 0 means "the official
// value for this method and dataset" (spec 4.5, 4.7); the value used is recorded in the
// job's outputs.
std::vector<ParamInfo> PromptParams() {
  std::vector<ParamInfo> params = {
      {"atprompt", ParamType::kBool, false, "anchor the soft tokens to attribute words (ATPrompt)", {}},
      {"attributes", ParamType::kStringList, Json::array(),
       "ATPrompt attribute words; [] = the upstream attribute search's, else the paper's for the dataset", {}},
      {"n_ctx", ParamType::kInt, 0, "class soft tokens; 0 = official per dataset", {}},
      {"attribute_ctx", ParamType::kInt, 0, "soft tokens per attribute; 0 = n_ctx", {}},
      {"class_position", ParamType::kString, "end", "where the class name sits in the prompt",
       {"end", "middle", "front"}},
      {"epochs", ParamType::kInt, 0, "training epochs; 0 = official per dataset", {}},
      {"batch_size", ParamType::kInt, 0, "training batch; 0 = official (config)", {}},
      {"lr", ParamType::kFloat, 0.0, "base learning rate; 0 = official (config)", {}},
      {"max_steps_per_epoch", ParamType::kInt, 0, "cap on steps per epoch (smoke runs); 0 = full epochs", {}},
      {"augment", ParamType::kBool, true,
       "training images: CLIP's random resized crop and flip (official); false: the test transform, for images "
       "so small that a crop loses the object (Fashion-MNIST)", {}},
      {"eval_only", ParamType::kBool, false,
       "evaluate the upstream job's trained prompt (or `checkpoint`) instead of training", {}},
      {"checkpoint", ParamType::kString, "",
       "eval_only: a prompt checkpoint (atp's, or a published model.pth.tar-N)", {}},
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
       WithExtra(PromptParams(),
                 {{"ctx_init", ParamType::kString, "a photo of a",
                   "vanilla CoCoOp: the phrase whose tokens initialise the context (\"\" = random)", {}}})},
      {"maple", "MaPLe: deep coupled text and vision prompts (± ATPrompt, deep version)", true,
       WithExtra(PromptParams(),
                 {{"depth", ParamType::kInt, 0, "prompt depth J; 0 = official (9; 3 cross-dataset)", {}},
                  {"ctx_init", ParamType::kString, "a photo of a",
                   "vanilla MaPLe: the phrase whose first n_ctx tokens initialise the context", {}}})},
      {"dept", "DePT: CoOp prompts plus a FiLM linear-probe head (± ATPrompt)", true,
       WithExtra(PromptParams(),
                 {{"weight", ParamType::kFloat, 0.0, "linear-probe loss weight w; 0 = official per dataset", {}}})},
      {"attribute_search", "ATPrompt's differentiable search for the dataset's attribute words", true,
       WithExtra(EnvironmentParams(),
                 {{"bases", ParamType::kStringList, Json::array(),
                   "the attribute bases; [] = `bases_file`, else the paper's five for the dataset", {}},
                  {"bases_file", ParamType::kString, "", "attribute bases written by `atp attributes suggest`", {}},
                  {"max_group_size", ParamType::kInt, 0, "largest combination searched; 0 = all", {}},
                  {"n_ctx", ParamType::kInt, 4, "soft tokens per block", {}},
                  {"epochs", ParamType::kInt, 0, "search epochs; 0 = 10 (paper) or 40 (official)", {}},
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
  return Status::Ok();
}

namespace {
const ParamInfo* FindParam(const std::vector<ParamInfo>& params, const std::string& name) {
  for (const auto& p : params) {
    if (p.name == name) return &p;
  }
  return nullptr;
}
}  // namespace

Result<Json> ResolveMethodParams(const MethodInfo& method, const Json& params) {
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
  for (const auto* list : {&CommonParams(), &method.params}) {
    for (const auto& p : *list) {
      if (resolved.contains(p.name)) continue;
      if (p.default_value.is_null()) {
        return InvalidArgument("method '" + method.name + "' needs parameter '" + p.name + "' (" + p.help + ")");
      }
      resolved[p.name] = p.default_value;
    }
  }
  if (method.needs_dataset && resolved.value("dataset", "").empty()) {
    return InvalidArgument("method '" + method.name + "' needs a dataset");
  }
  return resolved;
}

}  // namespace atp
