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
