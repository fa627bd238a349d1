// The catalog of job methods and their parameters, known to the coordinator without
// linking any training code: sweep validation checks method names, parameter names and
// types here, and errors list the valid choices. Immutable after static initialisation;
// thread-safe to read.
#pragma once

#include <string>
#include <vector>

#include "common/json.h"
#include "common/status.h"

namespace atp {

enum class ParamType { kInt, kFloat, kBool, kString, kStringList };
const char* ParamTypeName(ParamType t);

struct ParamInfo {
  std::string name;
  ParamType type;
  Json default_value;                 // null: required
  std::string help;
  std::vector<std::string> choices;   // for kString: the allowed values (empty: any)
};

struct MethodInfo {
  std::string name;
  std::string help;
  bool needs_dataset = false;
  std::vector<ParamInfo> params;      // besides the common ones: dataset, seed
};

const std::vector<MethodInfo>& AllMethods();
const MethodInfo* FindMethod(const std::string& name);
std::string MethodNamesList();  // "coop, sleep, ..." for error messages

// Parameters every method accepts.
const std::vector<ParamInfo>& CommonParams();

// Checks that `value` has `param`'s type (ints are accepted for floats) and choice set.
// On failure returns InvalidArgument naming the parameter.
Status CheckParamValue(const ParamInfo& param, const Json& value);

// Returns `params` completed with defaults, or an error naming the first unknown parameter
// (listing the valid ones), the first wrongly typed value, or a missing required parameter.
Result<Json> ResolveMethodParams(const MethodInfo& method, const Json& params);

}  // namespace atp
