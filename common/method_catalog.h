// The catalog of job methods and their parameters, known to the coordinator without
// linking any training code: sweep validation checks method names, parameter names and
// types here, and errors list the valid choices; ResolveMethodParams completes a job's
// parameters with defaults and its recipe (common/method_recipes.h), once, at expansion.
// Immutable after static initialisation; thread-safe to read.
#pragma once

#include <string>
#include <vector>

#include "common/json.h"
#include "common/method_recipes.h"
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
  bool from_recipe = false;           // left out: the recipe's value for the job (default_value unused)
  bool optional = false;              // left out: absent from the job (so from its key); default_value unused
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

// Returns `params` completed with defaults and the job's recipe (every `from_recipe`
// parameter left out takes the recipe's value), or an error naming the first unknown
// parameter (listing the valid ones), the first wrongly typed value, a missing required
// parameter, or a value the method cannot take. The result holds the effective value of
// every parameter, so it is what a job key hashes and what the worker runs.
Result<Json> ResolveMethodParams(const MethodInfo& method, const Json& params,
                                 const RecipeBook& recipes = DefaultRecipes());

// +ATPrompt jobs that name no attributes and have no attribute-search job upstream take the
// attributes the paper's search chose (cross-dataset in paper mode: the source dataset's,
// as the paper anchors every target to them; official mode: each target's own, as the
// released evaluation does). Jobs with a search upstream keep [] and take its result.
Status ResolvePaperAttributes(Json* params, bool has_search_upstream);

}  // namespace atp
