#include "coordinator/sweep/sweep.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "common/dataset_catalog.h"
#include "common/method_catalog.h"
#include "common/toml_json.h"
#include "common/toml_type_name.h"

// The sweep format is documented for users in docs/sweep_format.md. In short: global axes
// and per-stage axes span a cartesian product of points per stage; each point becomes a job
// whose parameters are resolved through the method catalog; [[override]] adjusts parameters
// of matching points, [[exclude]] drops points, [[include]] adds them; depends_on links a
// job to the upstream jobs that agree with it on the `match` keys.
//
// Parsing runs in two phases: first the whole file is read into the plain structs below and
// validated (so every mistake is reported with its line before any job exists), then the
// stages are expanded in dependency order.

namespace atp {
namespace {

// ---------------------------------------------------------------------------------------
// The validated sweep, before expansion.

struct Axis {
  std::string name;
  std::vector<Json> values;
  int line = 0;
};

// `key = value` or `key = [any, of, these]` in [[override]].when and [[exclude]].
struct Condition {
  std::string key;
  std::vector<Json> any_of;
};

struct Dependency {
  std::string stage;
  std::vector<std::string> match;
  int line = 0;
};

struct Stage {
  int number = 0;  // 1-based position in the file
  int line = 0;
  std::string name;
  std::vector<const MethodInfo*> methods;
  // As written: `over` (absent: every global axis the stage's methods take) and the
  // stage's own axes. ResolveStageAxes combines them with the global axes into `axes`.
  std::optional<std::vector<std::string>> over;
  int over_line = 0;
  std::vector<Axis> local_axes;
  std::vector<Axis> axes;        // global axes the stage spans, then its own axes
  Json params = Json::object();  // [params] then the stage's params; each goes to the methods taking it
  std::vector<Dependency> depends_on;
  int ranks = 1;
  double hang_timeout_s = kDefaultHangTimeoutSeconds;
  double expected_seconds = 0;
  RetryPolicy retry;
};

struct Override {
  int number = 0;
  int line = 0;
  std::vector<std::string> stages;  // empty: every stage
  std::vector<Condition> when;      // empty: every job
  Json set = Json::object();
  std::optional<int> ranks;
  std::optional<double> hang_timeout_s;
  std::optional<double> expected_seconds;
  int64_t jobs_changed = 0;
};

struct Exclude {
  int number = 0;
  int line = 0;
  std::vector<std::string> stages;  // empty: every stage
  std::vector<Condition> conditions;
  int64_t points_dropped = 0;
};

struct Include {
  int number = 0;
  int line = 0;
  std::string stage;
  std::vector<Axis> axes;  // in the stage's axis order, "method" first
};

// ---------------------------------------------------------------------------------------
// Small helpers.

int LineOf(const toml::node& node) { return static_cast<int>(node.source().begin.line); }
int LineOf(const toml::key& key) { return static_cast<int>(key.source().begin.line); }


// toml++ keeps a table's keys sorted; axes are expanded (and unknown keys reported) in the
// order the user wrote them, so entries are put back in file order.
std::vector<std::pair<const toml::key*, const toml::node*>> InFileOrder(const toml::table& table) {
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (auto&& [key, node] : table) entries.emplace_back(&key, &node);
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const toml::source_position& pa = a.first->source().begin;
    const toml::source_position& pb = b.first->source().begin;
    return pa.line != pb.line ? pa.line < pb.line : pa.column < pb.column;
  });
  return entries;
}

std::string Join(const std::vector<std::string>& items, const char* separator = ", ") {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

const ParamInfo* FindParamInfo(const MethodInfo& method, const std::string& name) {
  for (const auto* list : {&CommonParams(), &method.params}) {
    for (const auto& param : *list) {
      if (param.name == name) return &param;
    }
  }
  return nullptr;
}

bool Takes(const MethodInfo& method, const std::string& name) { return FindParamInfo(method, name) != nullptr; }

bool AnyTakes(const std::vector<const MethodInfo*>& methods, const std::string& name) {
  for (const auto* method : methods) {
    if (Takes(*method, name)) return true;
  }
  return false;
}

// Checks one parameter value for one method: the name (the catalog's message lists the valid
// ones), the type, the choices, and for `dataset` that the dataset exists.
Status CheckParam(const MethodInfo& method, const std::string& name, const Json& value) {
  const ParamInfo* info = FindParamInfo(method, name);
  if (info == nullptr) {
    Json single = Json::object();
    single[name] = value;
    return ResolveMethodParams(method, single).status();
  }
  ATP_RETURN_IF_ERROR(CheckParamValue(*info, value));
  if (name == "dataset" && FindDataset(value.get<std::string>()) == nullptr) {
    return InvalidArgument("unknown dataset " + value.dump() + "; known datasets: " + DatasetNamesList());
  }
  return Status::Ok();
}

// Checks a value for every method in `methods` that takes `name`; at least one must.
Status CheckParamForMethods(const std::vector<const MethodInfo*>& methods, const std::string& name, const Json& value) {
  bool taken = false;
  for (const auto* method : methods) {
    if (!Takes(*method, name)) continue;
    taken = true;
    ATP_RETURN_IF_ERROR(CheckParam(*method, name, value));
  }
  if (!taken) return CheckParam(*methods.front(), name, value);  // the catalog's "unknown parameter"
  return Status::Ok();
}

// A value as it reads in messages and the dry run: strings unquoted unless empty.
std::string ValueText(const Json& value) {
  if (value.is_string() && !value.get_ref<const std::string&>().empty()) return value.get<std::string>();
  return value.dump();
}

bool ConditionsHold(const std::vector<Condition>& conditions, const std::string& method, const Json& params) {
  for (const auto& condition : conditions) {
    const Json* actual = nullptr;
    Json method_value;
    if (condition.key == "method") {
      method_value = method;
      actual = &method_value;
    } else {
      auto it = params.find(condition.key);
      if (it == params.end()) return false;
      actual = &*it;
    }
    if (std::find(condition.any_of.begin(), condition.any_of.end(), *actual) == condition.any_of.end()) return false;
  }
  return true;
}

bool AppliesToStage(const std::vector<std::string>& stages, const std::string& stage) {
  return stages.empty() || std::find(stages.begin(), stages.end(), stage) != stages.end();
}

// The values of `keys` in a job, as one hashable string (used to match dependencies).
std::string MatchSignature(const JobSpec& job, const std::vector<std::string>& keys) {
  std::string signature;
  for (const auto& key : keys) {
    if (key == "method") {
      signature += Json(job.method).dump();
    } else {
      auto it = job.params.find(key);
      signature += (it == job.params.end()) ? "null" : it->dump();
    }
    signature += '\x1f';
  }
  return signature;
}

std::string DescribeMatch(const JobSpec& job, const std::vector<std::string>& keys) {
  std::vector<std::string> parts;
  for (const auto& key : keys) {
    if (key == "method") {
      parts.push_back("method=" + job.method);
    } else {
      auto it = job.params.find(key);
      parts.push_back(key + "=" + (it == job.params.end() ? std::string("(unset)") : ValueText(*it)));
    }
  }
  return Join(parts, " ");
}

// ---------------------------------------------------------------------------------------
// Phase 1: reading and validating the TOML document.

class SweepReader {
 public:
  SweepReader(std::string_view text, std::string source, const RecipeBook& recipes)
      : text_(text), source_(std::move(source)), recipes_(recipes) {}

  Result<Sweep> Read();

 private:
  // "<file>:<line>: <key path>: <what>" as an InvalidArgument status.
  Status Fail(int line, const std::string& path, const std::string& what) const {
    return InvalidArgument(source_ + ":" + std::to_string(line) + ": " + path + ": " + what);
  }
  std::string At(int line) const { return source_ + ":" + std::to_string(line); }

  Status CheckKeys(const toml::table& table, const std::string& path, const std::vector<std::string>& valid) const;
  Result<std::string> ReadString(const toml::node& node, const std::string& path) const;
  Result<std::vector<std::string>> ReadStringList(const toml::node& node, const std::string& path) const;
  Result<double> ReadNumber(const toml::node& node, const std::string& path, double minimum, bool strict) const;
  Result<int> ReadRanks(const toml::node& node, const std::string& path) const;
  Result<Axis> ReadAxis(const std::string& name, int line, const toml::node& node, const std::string& path,
                        bool allow_single_value) const;
  Status ReadRetry(const toml::node& node, const std::string& path, RetryPolicy* policy) const;
  Result<std::vector<Condition>> ReadConditions(const toml::table& table, const std::string& path,
                                                const std::vector<std::string>& skip_keys) const;

  Status ReadHeader(const toml::table& root);
  Status ReadStages(const toml::table& root);
  Status ReadStage(const toml::table& table, int number);
  Status ReadGlobalAxesAndParams(const toml::table& root);
  Status ResolveStageAxes();
  Status CheckDependencies();
  Status OrderStages();
  Status ReadRules(const toml::table& root);
  Status ReadInclude(const toml::table& table, int number);

  Status Expand();

  std::string StagePath(const Stage& stage) const {
    return stage.name.empty() ? "stage #" + std::to_string(stage.number) : "stage \"" + stage.name + "\"";
  }
  Stage* FindStage(const std::string& name) {
    for (auto& stage : stages_) {
      if (stage.name == name) return &stage;
    }
    return nullptr;
  }
  std::string StageNames() const {
    std::vector<std::string> names;
    for (const auto& stage : stages_) names.push_back(stage.name);
    return Join(names);
  }
  // Every method used by some stage, once, in file order.
  std::vector<const MethodInfo*> AllStageMethods() const {
    std::vector<const MethodInfo*> methods;
    for (const auto& stage : stages_) {
      for (const auto* method : stage.methods) {
        if (std::find(methods.begin(), methods.end(), method) == methods.end()) methods.push_back(method);
      }
    }
    return methods;
  }

  std::string_view text_;
  std::string source_;
  const RecipeBook& recipes_;
  Sweep sweep_;
  RetryPolicy global_retry_;
  std::vector<Axis> global_axes_;
  Json global_params_ = Json::object();
  std::vector<Stage> stages_;  // in file order until OrderStages, then in dependency order
  std::vector<Override> overrides_;
  std::vector<Exclude> excludes_;
  std::vector<Include> includes_;
};

Status SweepReader::CheckKeys(const toml::table& table, const std::string& path,
                              const std::vector<std::string>& valid) const {
  for (const auto& [key, node] : InFileOrder(table)) {
    if (std::find(valid.begin(), valid.end(), key->str()) != valid.end()) continue;
    std::string where = path.empty() ? std::string(key->str()) : path + "." + std::string(key->str());
    return Fail(LineOf(*key), where, "unknown key '" + std::string(key->str()) + "'; valid keys here: " + Join(valid));
  }
  return Status::Ok();
}

Result<std::string> SweepReader::ReadString(const toml::node& node, const std::string& path) const {
  if (!node.is_string()) return Fail(LineOf(node), path, std::string("must be a string, got ") + TomlTypeName(node));
  return std::string(node.as_string()->get());
}

Result<std::vector<std::string>> SweepReader::ReadStringList(const toml::node& node, const std::string& path) const {
  if (node.is_string()) return std::vector<std::string>{node.as_string()->get()};
  if (!node.is_array()) {
    return Fail(LineOf(node), path, std::string("must be a string or a list of strings, got ") + TomlTypeName(node));
  }
  std::vector<std::string> out;
  for (const auto& element : *node.as_array()) {
    if (!element.is_string()) {
      return Fail(LineOf(element), path, std::string("list entries must be strings, got ") + TomlTypeName(element));
    }
    out.push_back(element.as_string()->get());
  }
  return out;
}

Result<double> SweepReader::ReadNumber(const toml::node& node, const std::string& path, double minimum,
                                       bool strict) const {
  double value = 0;
  if (node.is_integer()) {
    value = static_cast<double>(node.as_integer()->get());
  } else if (node.is_floating_point()) {
    value = node.as_floating_point()->get();
  } else {
    return Fail(LineOf(node), path, std::string("must be a number of seconds, got ") + TomlTypeName(node));
  }
  if (!std::isfinite(value)) {
    return Fail(LineOf(node), path, "must be a finite number of seconds, got " + std::string(std::isnan(value) ? "nan" : "inf"));
  }
  if (strict ? !(value > minimum) : !(value >= minimum)) {
    return Fail(LineOf(node), path,
                "must be " + std::string(strict ? "> " : ">= ") + Json(minimum).dump() + ", got " + Json(value).dump());
  }
  return value;
}

Result<int> SweepReader::ReadRanks(const toml::node& node, const std::string& path) const {
  if (!node.is_integer()) {
    return Fail(LineOf(node), path,
                std::string("must be an integer number of ranks (GPUs), got ") + TomlTypeName(node));
  }
  int64_t ranks = node.as_integer()->get();
  if (ranks < 1 || ranks > kMaxRanksPerJob) {
    return Fail(LineOf(node), path,
                "must be from 1 to " + std::to_string(kMaxRanksPerJob) +
                    " (ranks per job, one per GPU, all on one node), got " + std::to_string(ranks));
  }
  return static_cast<int>(ranks);
}

Result<Axis> SweepReader::ReadAxis(const std::string& name, int line, const toml::node& node, const std::string& path,
                                   bool allow_single_value) const {
  Axis axis;
  axis.name = name;
  axis.line = line;
  if (!node.is_array()) {
    if (!allow_single_value) {
      return Fail(
          axis.line, path,
          "an axis is a list of values, e.g. " + axis.name + " = [1, 2]; a single fixed value belongs in params");
    }
    ATP_ASSIGN_OR_RETURN(Json value, TomlToJson(node, source_, path));
    axis.values.push_back(std::move(value));
    return axis;
  }
  if (node.as_array()->empty()) {
    return Fail(axis.line, path,
                "the axis '" + axis.name + "' has no values, so the sweep would have no jobs; list at least one");
  }
  for (const auto& element : *node.as_array()) {
    ATP_ASSIGN_OR_RETURN(Json value, TomlToJson(element, source_, path));
    if (std::find(axis.values.begin(), axis.values.end(), value) != axis.values.end()) {
      return Fail(LineOf(element), path, "the value " + value.dump() + " is listed twice; remove one");
    }
    axis.values.push_back(std::move(value));
  }
  return axis;
}

Status SweepReader::ReadRetry(const toml::node& node, const std::string& path, RetryPolicy* policy) const {
  const toml::table* table = node.as_table();
  if (table == nullptr) return Fail(LineOf(node), path, std::string("must be a table, got ") + TomlTypeName(node));
  std::vector<std::string> valid = {"max_attempts", "max_lost"};
  for (int i = 0; i < kFailureClassCount; ++i) valid.push_back(FailureClassName(static_cast<FailureClass>(i)));
  ATP_RETURN_IF_ERROR(CheckKeys(*table, path, valid));
  for (auto&& [key, value] : *table) {
    std::string name(key.str());
    std::string key_path = path + "." + name;
    if (name == "max_attempts" || name == "max_lost") {
      const int64_t minimum = name == "max_attempts" ? 1 : 0;
      const int64_t maximum = 1000000;  // stored as int; far beyond any useful retry budget
      if (!value.is_integer() || value.as_integer()->get() < minimum || value.as_integer()->get() > maximum) {
        return Fail(LineOf(value), key_path,
                    "must be an integer from " + std::to_string(minimum) + " to " + std::to_string(maximum) +
                        (value.is_integer() ? ", got " + std::to_string(value.as_integer()->get()) : ""));
      }
      (name == "max_attempts" ? policy->max_attempts : policy->max_lost) = static_cast<int>(value.as_integer()->get());
      continue;
    }
    RetryRule& rule = policy->rule(*ParseFailureClass(name));
    const toml::table* rule_table = value.as_table();
    if (rule_table == nullptr) {
      return Fail(LineOf(value), key_path,
                  "must be a table such as " + name + " = { retry = true, counts_attempt = false }");
    }
    ATP_RETURN_IF_ERROR(CheckKeys(*rule_table, key_path, {"retry", "counts_attempt"}));
    for (auto&& [rule_key, flag] : *rule_table) {
      if (!flag.is_boolean()) {
        return Fail(LineOf(flag), key_path + "." + std::string(rule_key.str()),
                    std::string("must be true or false, got ") + TomlTypeName(flag));
      }
      (rule_key.str() == "retry" ? rule.retry : rule.counts_attempt) = flag.as_boolean()->get();
    }
  }
  return Status::Ok();
}

Result<std::vector<Condition>> SweepReader::ReadConditions(const toml::table& table, const std::string& path,
                                                           const std::vector<std::string>& skip_keys) const {
  const std::vector<const MethodInfo*> methods = AllStageMethods();
  std::vector<Condition> conditions;
  for (auto&& [key, node] : table) {
    std::string name(key.str());
    if (std::find(skip_keys.begin(), skip_keys.end(), name) != skip_keys.end()) continue;
    std::string key_path = path + "." + name;
    Condition condition;
    condition.key = name;
    std::vector<const toml::node*> values;
    if (const toml::array* list = node.as_array()) {
      if (list->empty()) return Fail(LineOf(node), key_path, "an empty list matches nothing; list the values to match");
      for (const auto& element : *list) values.push_back(&element);
    } else {
      values.push_back(&node);
    }
    if (name != "method" && !AnyTakes(methods, name)) {
      std::set<std::string> valid = {"method"};
      for (const auto* method : methods) {
        for (const auto* list : {&CommonParams(), &method->params}) {
          for (const auto& param : *list) valid.insert(param.name);
        }
      }
      return Fail(LineOf(key), key_path,
                  "'" + name + "' is no axis or parameter of this sweep's methods; valid keys: " +
                      Join(std::vector<std::string>(valid.begin(), valid.end())));
    }
    for (const toml::node* value_node : values) {
      ATP_ASSIGN_OR_RETURN(Json value, TomlToJson(*value_node, source_, key_path));
      if (name == "method") {
        if (!value.is_string() || FindMethod(value.get<std::string>()) == nullptr) {
          return Fail(LineOf(*value_node), key_path,
                      "unknown method " + value.dump() + "; known methods: " + MethodNamesList());
        }
      } else {
        Status checked = CheckParamForMethods(methods, name, value);
        if (!checked.ok()) return Fail(LineOf(*value_node), key_path, checked.message());
      }
      condition.any_of.push_back(std::move(value));
    }
    conditions.push_back(std::move(condition));
  }
  return conditions;
}

Status SweepReader::ReadHeader(const toml::table& root) {
  ATP_RETURN_IF_ERROR(
      CheckKeys(root, "", {"sweep", "params", "axes", "retry", "stage", "override", "exclude", "include"}));
  const toml::node* header_node = root.get("sweep");
  if (header_node == nullptr || !header_node->is_table()) {
    return Fail(header_node ? LineOf(*header_node) : 1, "sweep",
                "the file needs a [sweep] table with name = \"...\" and code_version = \"...\"");
  }
  const toml::table& header = *header_node->as_table();
  ATP_RETURN_IF_ERROR(CheckKeys(header, "sweep", {"name", "code_version", "description"}));
  const toml::node* name = header.get("name");
  if (name == nullptr) return Fail(LineOf(header), "sweep.name", "missing; add name = \"my-sweep\" to [sweep]");
  ATP_ASSIGN_OR_RETURN(sweep_.name, ReadString(*name, "sweep.name"));
  if (sweep_.name.empty()) return Fail(LineOf(*name), "sweep.name", "must not be empty");
  const toml::node* version = header.get("code_version");
  if (version == nullptr) {
    return Fail(
        LineOf(header), "sweep.code_version",
        "missing; add code_version = \"1\" to [sweep] (bump it when a code change should re-run finished jobs)");
  }
  if (!version->is_string()) {
    return Fail(LineOf(*version), "sweep.code_version",
                std::string("must be a string such as \"1\", got ") + TomlTypeName(*version));
  }
  sweep_.code_version = version->as_string()->get();
  if (const toml::node* description = header.get("description")) {
    ATP_RETURN_IF_ERROR(ReadString(*description, "sweep.description").status());
  }
  if (const toml::node* retry = root.get("retry")) ATP_RETURN_IF_ERROR(ReadRetry(*retry, "retry", &global_retry_));
  return Status::Ok();
}

Status SweepReader::ReadStages(const toml::table& root) {
  const toml::node* stages_node = root.get("stage");
  if (stages_node == nullptr) {
    return Fail(1, "stage", "the sweep has no [[stage]]; add at least one with name = \"...\" and method = \"...\"");
  }
  const toml::array* list = stages_node->as_array();
  if (list == nullptr || !list->is_array_of_tables()) {
    return Fail(LineOf(*stages_node), "stage", "stages are written as [[stage]] tables");
  }
  int number = 0;
  for (const auto& element : *list) ATP_RETURN_IF_ERROR(ReadStage(*element.as_table(), ++number));
  return Status::Ok();
}

Status SweepReader::ReadStage(const toml::table& table, int number) {
  Stage stage;
  stage.number = number;
  stage.line = LineOf(table);
  stage.retry = global_retry_;
  std::string path = StagePath(stage);
  const toml::node* name = table.get("name");
  if (name == nullptr) return Fail(stage.line, path + ".name", "missing; every stage needs a name");
  ATP_ASSIGN_OR_RETURN(stage.name, ReadString(*name, path + ".name"));
  bool name_ok = !stage.name.empty();
  for (char c : stage.name) name_ok = name_ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
  if (!name_ok) {
    return Fail(LineOf(*name), path + ".name",
                "stage names use letters, digits, '_' and '-', got \"" + stage.name + "\"");
  }
  if (FindStage(stage.name) != nullptr) {
    return Fail(LineOf(*name), path + ".name",
                "a stage named \"" + stage.name + "\" is already defined at " + At(FindStage(stage.name)->line) +
                    "; stage names must be unique");
  }
  path = StagePath(stage);
  const std::vector<std::string> stage_keys = {
      "name", "method", "over", "axes", "params", "depends_on", "ranks", "hang_timeout_s", "expected_seconds", "retry"};
  ATP_RETURN_IF_ERROR(CheckKeys(table, path, stage_keys));
  // In TOML, keys below a [stage.axes] or [stage.params] header belong to that sub-table;
  // a stage key there is almost certainly meant for the stage.
  auto misplaced_stage_key = [&](const toml::key& key, const char* table_name) -> Status {
    if (std::find(stage_keys.begin(), stage_keys.end(), key.str()) == stage_keys.end()) return Status::Ok();
    return Fail(LineOf(key), path + "." + table_name + "." + std::string(key.str()),
                "'" + std::string(key.str()) + "' is a key of the stage, not " +
                    (std::string(table_name) == "axes" ? "an axis" : "a parameter") + "; move it above the [stage." +
                    table_name + "] header");
  };

  const toml::node* method = table.get("method");
  if (method == nullptr) {
    return Fail(stage.line, path + ".method", "missing; set method = \"...\" (one of: " + MethodNamesList() + ")");
  }
  ATP_ASSIGN_OR_RETURN(std::vector<std::string> method_names, ReadStringList(*method, path + ".method"));
  if (method_names.empty()) return Fail(LineOf(*method), path + ".method", "lists no method");
  for (const auto& method_name : method_names) {
    const MethodInfo* info = FindMethod(method_name);
    if (info == nullptr) {
      return Fail(LineOf(*method), path + ".method",
                  "unknown method \"" + method_name + "\"; known methods: " + MethodNamesList());
    }
    if (std::find(stage.methods.begin(), stage.methods.end(), info) != stage.methods.end()) {
      return Fail(LineOf(*method), path + ".method", "method \"" + method_name + "\" is listed twice");
    }
    stage.methods.push_back(info);
  }

  if (const toml::node* over_node = table.get("over")) {
    if (!over_node->is_array()) {
      return Fail(LineOf(*over_node), path + ".over", "must be a list of global axis names, e.g. over = [\"dataset\"]");
    }
    ATP_ASSIGN_OR_RETURN(stage.over, ReadStringList(*over_node, path + ".over"));
    stage.over_line = LineOf(*over_node);
  }
  if (const toml::node* axes = table.get("axes")) {
    if (!axes->is_table()) {
      return Fail(LineOf(*axes), path + ".axes",
                  "must be a table of lists, e.g. [stage.axes] with seconds = [1, 2]; global axes the stage spans are "
                  "chosen with over = [...]");
    }
    for (const auto& [key, node] : InFileOrder(*axes->as_table())) {
      std::string axis_path = path + ".axes." + std::string(key->str());
      if (key->str() == "method") {
        return Fail(LineOf(*key), axis_path,
                    "an axis over methods is written method = [...] in the stage itself (above [stage.axes])");
      }
      ATP_RETURN_IF_ERROR(misplaced_stage_key(*key, "axes"));
      ATP_ASSIGN_OR_RETURN(Axis axis, ReadAxis(std::string(key->str()), LineOf(*key), *node, axis_path, false));
      if (!AnyTakes(stage.methods, axis.name)) {
        return Fail(axis.line, axis_path, CheckParam(*stage.methods.front(), axis.name, axis.values.front()).message());
      }
      stage.local_axes.push_back(std::move(axis));
    }
  }
  if (const toml::node* params = table.get("params")) {
    if (!params->is_table()) {
      return Fail(LineOf(*params), path + ".params", "must be a table, e.g. params = { seconds = 2 }");
    }
    for (auto&& [key, node] : *params->as_table()) {
      std::string param_path = path + ".params." + std::string(key.str());
      ATP_RETURN_IF_ERROR(misplaced_stage_key(key, "params"));
      ATP_ASSIGN_OR_RETURN(Json value, TomlToJson(node, source_, param_path));
      Status checked = CheckParamForMethods(stage.methods, std::string(key.str()), value);
      if (!checked.ok()) return Fail(LineOf(key), param_path, checked.message());
      stage.params[std::string(key.str())] = std::move(value);
    }
  }
  if (const toml::node* depends_on = table.get("depends_on")) {
    const toml::array* list = depends_on->as_array();
    if (list == nullptr || !list->is_array_of_tables()) {
      return Fail(LineOf(*depends_on), path + ".depends_on",
                  "must be a list of tables, e.g. depends_on = [{ stage = \"search\", match = [\"dataset\"] }]");
    }
    for (const auto& element : *list) {
      const toml::table& entry = *element.as_table();
      std::string entry_path = path + ".depends_on";
      ATP_RETURN_IF_ERROR(CheckKeys(entry, entry_path, {"stage", "match"}));
      Dependency dependency;
      dependency.line = LineOf(entry);
      const toml::node* upstream = entry.get("stage");
      if (upstream == nullptr) return Fail(dependency.line, entry_path + ".stage", "missing; name the upstream stage");
      ATP_ASSIGN_OR_RETURN(dependency.stage, ReadString(*upstream, entry_path + ".stage"));
      const toml::node* match = entry.get("match");
      if (match == nullptr) {
        return Fail(dependency.line, entry_path + ".match",
                    "missing; list the keys an upstream job must share, e.g. match = [\"dataset\"], or match = [] "
                    "to depend on every job of stage \"" +
                        dependency.stage + "\"");
      }
      if (!match->is_array()) return Fail(LineOf(*match), entry_path + ".match", "must be a list of key names");
      ATP_ASSIGN_OR_RETURN(dependency.match, ReadStringList(*match, entry_path + ".match"));
      stage.depends_on.push_back(std::move(dependency));
    }
  }
  if (const toml::node* ranks = table.get("ranks")) {
    ATP_ASSIGN_OR_RETURN(stage.ranks, ReadRanks(*ranks, path + ".ranks"));
  }
  if (const toml::node* hang = table.get("hang_timeout_s")) {
    ATP_ASSIGN_OR_RETURN(stage.hang_timeout_s, ReadNumber(*hang, path + ".hang_timeout_s", 0, true));
  }
  if (const toml::node* expected = table.get("expected_seconds")) {
    ATP_ASSIGN_OR_RETURN(stage.expected_seconds, ReadNumber(*expected, path + ".expected_seconds", 0, false));
  }
  if (const toml::node* retry = table.get("retry")) {
    ATP_RETURN_IF_ERROR(ReadRetry(*retry, path + ".retry", &stage.retry));
  }

  stages_.push_back(std::move(stage));
  return Status::Ok();
}

Status SweepReader::ReadGlobalAxesAndParams(const toml::table& root) {
  const std::vector<const MethodInfo*> methods = AllStageMethods();
  if (const toml::node* axes = root.get("axes")) {
    if (!axes->is_table()) return Fail(LineOf(*axes), "axes", "must be a table of lists, e.g. [axes] seed = [1, 2, 3]");
    for (const auto& [key, node] : InFileOrder(*axes->as_table())) {
      std::string path = "axes." + std::string(key->str());
      if (key->str() == "method") {
        return Fail(LineOf(*key), path, "methods are chosen per stage: write method = [\"a\", \"b\"] in the [[stage]]");
      }
      ATP_ASSIGN_OR_RETURN(Axis axis, ReadAxis(std::string(key->str()), LineOf(*key), *node, path, false));
      if (!AnyTakes(methods, axis.name)) {
        return Fail(axis.line, path,
                    CheckParam(*methods.front(), axis.name, axis.values.front()).message() +
                        " (no stage's method takes '" + axis.name + "')");
      }
      global_axes_.push_back(std::move(axis));
    }
  }
  if (const toml::node* params = root.get("params")) {
    if (!params->is_table()) return Fail(LineOf(*params), "params", "must be a table, e.g. [params] seconds = 2");
    for (auto&& [key, node] : *params->as_table()) {
      std::string name(key.str());
      ATP_ASSIGN_OR_RETURN(Json value, TomlToJson(node, source_, "params." + name));
      Status checked = CheckParamForMethods(methods, name, value);
      if (!checked.ok()) {
        return Fail(LineOf(key), "params." + name,
                    checked.message() + (AnyTakes(methods, name) ? "" : " (no stage's method takes '" + name + "')"));
      }
      global_params_[name] = std::move(value);
    }
  }
  return Status::Ok();
}

Status SweepReader::ResolveStageAxes() {
  std::set<std::string> spanned_somewhere;
  for (Stage& stage : stages_) {
    const std::string path = StagePath(stage);
    auto is_local = [&](const std::string& name) {
      return std::any_of(stage.local_axes.begin(), stage.local_axes.end(),
                         [&](const Axis& a) { return a.name == name; });
    };
    for (const auto& name : stage.over.value_or(std::vector<std::string>())) {
      auto global =
          std::find_if(global_axes_.begin(), global_axes_.end(), [&](const Axis& a) { return a.name == name; });
      if (global == global_axes_.end()) {
        std::vector<std::string> global_names;
        for (const auto& axis : global_axes_) global_names.push_back(axis.name);
        return Fail(stage.over_line, path + ".over",
                    "'" + name + "' is not a global axis; global axes: " +
                        (global_names.empty() ? std::string("(none)") : Join(global_names)) +
                        " (a stage's own axes go in [stage.axes])");
      }
      if (!AnyTakes(stage.methods, name)) {
        return Fail(stage.over_line, path + ".over",
                    "the stage's methods do not take '" + name + "'; " +
                        CheckParam(*stage.methods.front(), name, global->values.front()).message());
      }
    }
    // Global axes in their declared order (the ones named by `over`, or by default every one
    // the stage's methods take), then the stage's own axes; a stage axis replaces a global
    // axis of the same name.
    for (const auto& axis : global_axes_) {
      bool spanned = stage.over ? std::count(stage.over->begin(), stage.over->end(), axis.name) > 0
                                : AnyTakes(stage.methods, axis.name);
      if (spanned) spanned_somewhere.insert(axis.name);
      if (spanned && !is_local(axis.name)) stage.axes.push_back(axis);
    }
    for (const auto& axis : stage.local_axes) stage.axes.push_back(axis);
    for (const auto& axis : stage.axes) {
      for (const auto& value : axis.values) {
        Status checked = CheckParamForMethods(stage.methods, axis.name, value);
        if (!checked.ok()) {
          return Fail(axis.line, is_local(axis.name) ? path + ".axes." + axis.name : "axes." + axis.name,
                      checked.message() + " (in " + path + ")");
        }
      }
    }
    Json params = Json::object();
    for (auto& [name, value] : global_params_.items()) {
      if (AnyTakes(stage.methods, name)) params[name] = value;
    }
    for (auto& [name, value] : stage.params.items()) params[name] = value;
    stage.params = std::move(params);
  }
  for (const auto& axis : global_axes_) {
    if (!spanned_somewhere.count(axis.name)) {
      sweep_.warnings.push_back(At(axis.line) + ": global axis '" + axis.name +
                                "' is spanned by no stage (see `over`)");
    }
  }
  return Status::Ok();
}

Status SweepReader::CheckDependencies() {
  for (const auto& stage : stages_) {
    const std::string path = StagePath(stage) + ".depends_on";
    for (const auto& dependency : stage.depends_on) {
      const Stage* upstream = FindStage(dependency.stage);
      if (upstream == nullptr) {
        return Fail(dependency.line, path + ".stage",
                    "unknown stage \"" + dependency.stage + "\"; stages: " + StageNames());
      }
      for (const auto& key : dependency.match) {
        if (key == "method") continue;
        for (const Stage* side : {&stage, upstream}) {
          if (AnyTakes(side->methods, key)) continue;
          return Fail(dependency.line, path + ".match",
                      "'" + key + "' is no parameter of stage \"" + side->name + "\" (methods: " + Join([&] {
                        std::vector<std::string> names;
                        for (const auto* m : side->methods) names.push_back(m->name);
                        return names;
                      }()) +
                          "); match keys are `method` or parameters both stages' jobs have, such as dataset or seed");
        }
      }
    }
  }
  return Status::Ok();
}

Status SweepReader::OrderStages() {
  // Depth-first search for a cycle, so the error can name it ("a -> b -> a").
  enum class Mark { kNew, kOnPath, kDone };
  std::vector<Mark> marks(stages_.size(), Mark::kNew);
  std::vector<size_t> path;
  auto index_of = [&](const std::string& name) {
    return static_cast<size_t>(
        std::find_if(stages_.begin(), stages_.end(), [&](const Stage& s) { return s.name == name; }) - stages_.begin());
  };
  std::function<Status(size_t)> visit = [&](size_t s) -> Status {
    marks[s] = Mark::kOnPath;
    path.push_back(s);
    for (const auto& dependency : stages_[s].depends_on) {
      size_t next = index_of(dependency.stage);
      if (marks[next] == Mark::kOnPath) {
        std::vector<std::string> cycle;
        for (auto it = std::find(path.begin(), path.end(), next); it != path.end(); ++it) {
          cycle.push_back(stages_[*it].name);
        }
        cycle.push_back(stages_[next].name);
        return Fail(dependency.line, StagePath(stages_[s]) + ".depends_on",
                    "dependency cycle " + Join(cycle, " -> ") +
                        " (each stage depends on the next); remove one of these depends_on entries");
      }
      if (marks[next] == Mark::kNew) ATP_RETURN_IF_ERROR(visit(next));
    }
    path.pop_back();
    marks[s] = Mark::kDone;
    return Status::Ok();
  };
  for (size_t s = 0; s < stages_.size(); ++s) {
    if (marks[s] == Mark::kNew) ATP_RETURN_IF_ERROR(visit(s));
  }
  // Dependency order, otherwise file order: repeatedly take the first stage whose upstream
  // stages are all placed.
  std::vector<Stage> ordered;
  std::vector<bool> placed(stages_.size(), false);
  while (ordered.size() < stages_.size()) {
    for (size_t s = 0; s < stages_.size(); ++s) {
      if (placed[s]) continue;
      bool ready = std::all_of(stages_[s].depends_on.begin(), stages_[s].depends_on.end(),
                               [&](const Dependency& d) { return placed[index_of(d.stage)]; });
      if (!ready) continue;
      placed[s] = true;
      ordered.push_back(stages_[s]);
      break;
    }
  }
  stages_ = std::move(ordered);
  return Status::Ok();
}

Status SweepReader::ReadRules(const toml::table& root) {
  auto read_stage_filter = [&](const toml::table& table, const std::string& path,
                               std::vector<std::string>* stages) -> Status {
    const toml::node* node = table.get("stage");
    if (node == nullptr) return Status::Ok();
    ATP_ASSIGN_OR_RETURN(*stages, ReadStringList(*node, path + ".stage"));
    for (const auto& name : *stages) {
      if (FindStage(name) == nullptr) {
        return Fail(LineOf(*node), path + ".stage", "unknown stage \"" + name + "\"; stages: " + StageNames());
      }
    }
    return Status::Ok();
  };
  auto tables_of = [&](const char* key, std::vector<const toml::table*>* out) -> Status {
    const toml::node* node = root.get(key);
    if (node == nullptr) return Status::Ok();
    const toml::array* list = node->as_array();
    if (list == nullptr || !list->is_array_of_tables()) {
      return Fail(LineOf(*node), key, std::string("write these as [[") + key + "]] tables");
    }
    for (const auto& element : *list) out->push_back(element.as_table());
    return Status::Ok();
  };
  const std::vector<const MethodInfo*> methods = AllStageMethods();

  std::vector<const toml::table*> tables;
  ATP_RETURN_IF_ERROR(tables_of("override", &tables));
  for (const toml::table* table : tables) {
    Override rule;
    rule.number = static_cast<int>(overrides_.size()) + 1;
    rule.line = LineOf(*table);
    std::string path = "override #" + std::to_string(rule.number);
    ATP_RETURN_IF_ERROR(
        CheckKeys(*table, path, {"when", "set", "stage", "ranks", "hang_timeout_s", "expected_seconds"}));
    ATP_RETURN_IF_ERROR(read_stage_filter(*table, path, &rule.stages));
    if (const toml::node* when = table->get("when")) {
      if (!when->is_table()) {
        return Fail(LineOf(*when), path + ".when", "must be a table, e.g. when = { dataset = \"dtd\" }");
      }
      ATP_ASSIGN_OR_RETURN(rule.when, ReadConditions(*when->as_table(), path + ".when", {}));
    }
    if (const toml::node* set = table->get("set")) {
      if (!set->is_table()) return Fail(LineOf(*set), path + ".set", "must be a table, e.g. set = { seconds = 5 }");
      for (auto&& [key, node] : *set->as_table()) {
        std::string name(key.str());
        ATP_ASSIGN_OR_RETURN(Json value, TomlToJson(node, source_, path + ".set." + name));
        Status checked = CheckParamForMethods(methods, name, value);
        if (!checked.ok()) return Fail(LineOf(key), path + ".set." + name, checked.message());
        rule.set[name] = std::move(value);
      }
    }
    if (const toml::node* ranks = table->get("ranks")) {
      ATP_ASSIGN_OR_RETURN(rule.ranks, ReadRanks(*ranks, path + ".ranks"));
    }
    if (const toml::node* hang = table->get("hang_timeout_s")) {
      ATP_ASSIGN_OR_RETURN(rule.hang_timeout_s, ReadNumber(*hang, path + ".hang_timeout_s", 0, true));
    }
    if (const toml::node* expected = table->get("expected_seconds")) {
      ATP_ASSIGN_OR_RETURN(rule.expected_seconds, ReadNumber(*expected, path + ".expected_seconds", 0, false));
    }
    if (rule.set.empty() && !rule.ranks && !rule.hang_timeout_s && !rule.expected_seconds) {
      return Fail(rule.line, path,
                  "changes nothing; give set = { ... } and/or ranks, hang_timeout_s, expected_seconds");
    }
    overrides_.push_back(std::move(rule));
  }

  tables.clear();
  ATP_RETURN_IF_ERROR(tables_of("exclude", &tables));
  for (const toml::table* table : tables) {
    Exclude rule;
    rule.number = static_cast<int>(excludes_.size()) + 1;
    rule.line = LineOf(*table);
    std::string path = "exclude #" + std::to_string(rule.number);
    ATP_RETURN_IF_ERROR(read_stage_filter(*table, path, &rule.stages));
    ATP_ASSIGN_OR_RETURN(rule.conditions, ReadConditions(*table, path, {"stage"}));
    if (rule.conditions.empty()) {
      return Fail(rule.line, path,
                  "names no axis or parameter, so it would drop every point; add e.g. dataset = \"eurosat\"");
    }
    excludes_.push_back(std::move(rule));
  }

  tables.clear();
  ATP_RETURN_IF_ERROR(tables_of("include", &tables));
  int number = 0;
  for (const toml::table* table : tables) ATP_RETURN_IF_ERROR(ReadInclude(*table, ++number));
  return Status::Ok();
}

Status SweepReader::ReadInclude(const toml::table& table, int number) {
  Include include;
  include.number = number;
  include.line = LineOf(table);
  const std::string path = "include #" + std::to_string(number);
  const toml::node* stage_node = table.get("stage");
  if (stage_node == nullptr) return Fail(include.line, path + ".stage", "missing; name the stage the points belong to");
  ATP_ASSIGN_OR_RETURN(include.stage, ReadString(*stage_node, path + ".stage"));
  const Stage* stage = FindStage(include.stage);
  if (stage == nullptr) {
    return Fail(LineOf(*stage_node), path + ".stage",
                "unknown stage \"" + include.stage + "\"; stages: " + StageNames());
  }
  std::vector<std::string> axis_names = {"method"};
  for (const auto& axis : stage->axes) axis_names.push_back(axis.name);
  std::vector<std::string> valid_keys = axis_names;
  valid_keys.insert(valid_keys.begin(), "stage");
  ATP_RETURN_IF_ERROR(CheckKeys(table, path, valid_keys));

  for (const auto& axis_name : axis_names) {
    const toml::node* node = table.get(axis_name);
    if (node == nullptr) {
      if (axis_name == "method" && stage->methods.size() == 1) {
        include.axes.push_back(Axis{"method", {Json(stage->methods.front()->name)}, include.line});
        continue;
      }
      return Fail(include.line, path,
                  "gives no value for '" + axis_name + "'; an include assigns every axis of stage \"" + stage->name +
                      "\": " + Join(axis_names) + (stage->methods.size() == 1 ? " (method may be left out)" : ""));
    }
    ATP_ASSIGN_OR_RETURN(Axis axis, ReadAxis(axis_name, LineOf(*node), *node, path + "." + axis_name, true));
    for (const auto& value : axis.values) {
      if (axis_name == "method") {
        bool in_stage =
            value.is_string() && std::any_of(stage->methods.begin(), stage->methods.end(),
                                             [&](const MethodInfo* m) { return m->name == value.get<std::string>(); });
        if (!in_stage) {
          return Fail(axis.line, path + ".method", value.dump() + " is not a method of stage \"" + stage->name + "\"");
        }
        continue;
      }
      Status checked = CheckParamForMethods(stage->methods, axis_name, value);
      if (!checked.ok()) return Fail(axis.line, path + "." + axis_name, checked.message());
    }
    include.axes.push_back(std::move(axis));
  }
  includes_.push_back(std::move(include));
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------
// Phase 2: expansion.

// Turns the points of one stage into jobs: resolves parameters, applies the rules, links
// upstream jobs and merges points whose job keys coincide.
class StageExpander {
 public:
  StageExpander(const std::string& source, const std::string& code_version, const RecipeBook& recipes,
                const Stage& stage, StageInfo& info, std::vector<Override>& overrides, std::vector<Exclude>& excludes,
                std::vector<JobSpec>& jobs, std::vector<std::string>& job_keys,
                std::unordered_set<std::string>& known_keys,
                const std::unordered_map<std::string, std::pair<size_t, size_t>>& stage_ranges,
                int64_t* points_left)
      : source_(source),
        points_left_(points_left),
        code_version_(code_version),
        recipes_(recipes),
        stage_(stage),
        info_(info),
        jobs_(jobs),
        job_keys_(job_keys),
        known_keys_(known_keys) {
    for (auto& rule : overrides) {
      if (AppliesToStage(rule.stages, stage.name)) overrides_.push_back(&rule);
    }
    for (auto& rule : excludes) {
      if (AppliesToStage(rule.stages, stage.name)) excludes_.push_back(&rule);
    }
    for (const auto* method : stage.methods) {
      Json base = Json::object();
      for (auto& [name, value] : stage.params.items()) {
        if (Takes(*method, name)) base[name] = value;
      }
      base_params_.push_back(std::move(base));
    }
    // For each dependency: upstream jobs indexed by their values of the match keys.
    for (const auto& dependency : stage.depends_on) {
      auto& index = upstream_index_.emplace_back();
      auto [begin, end] = stage_ranges.at(dependency.stage);
      for (size_t i = begin; i < end; ++i) {
        index[MatchSignature(jobs_[i], dependency.match)].push_back(job_keys_[i]);
      }
    }
  }

  // Adds the jobs of the points in the cartesian product of `axes` (axes[0] is "method").
  Status AddProduct(const std::vector<Axis>& axes, bool apply_excludes, int include_line) {
    std::vector<std::vector<bool>> takes(stage_.methods.size(), std::vector<bool>(axes.size(), false));
    std::vector<size_t> method_index(axes[0].values.size());
    for (size_t v = 0; v < axes[0].values.size(); ++v) {
      for (size_t m = 0; m < stage_.methods.size(); ++m) {
        if (stage_.methods[m]->name == axes[0].values[v].get<std::string>()) method_index[v] = m;
      }
    }
    for (size_t m = 0; m < stage_.methods.size(); ++m) {
      for (size_t a = 1; a < axes.size(); ++a) takes[m][a] = Takes(*stage_.methods[m], axes[a].name);
    }
    // Checked before anything is allocated: the product of a few long axes overflows 64 bits.
    uint64_t points = 1;
    bool overflow = false;
    std::vector<std::string> factors;
    for (const auto& axis : axes) {
      overflow |= __builtin_mul_overflow(points, static_cast<uint64_t>(axis.values.size()), &points);
      factors.push_back(axis.name + " " + std::to_string(axis.values.size()));
    }
    if (overflow || points > static_cast<uint64_t>(*points_left_)) {
      const int line = include_line > 0 ? include_line : stage_.line;
      return InvalidArgument(source_ + ":" + std::to_string(line) + ": stage \"" + stage_.name + "\" expands to " +
                             (overflow ? std::string("more than 2^64") : std::to_string(points)) + " points (" +
                             Join(factors, " x ") + "), over the limit of " + std::to_string(kMaxSweepPoints) +
                             " points per sweep" +
                             (static_cast<uint64_t>(*points_left_) < static_cast<uint64_t>(kMaxSweepPoints)
                                  ? " (" + std::to_string(kMaxSweepPoints - *points_left_) + " used by earlier stages)"
                                  : std::string()) +
                             "; use fewer axis values or split the study into several sweep files");
    }
    *points_left_ -= static_cast<int64_t>(points);
    if (jobs_.capacity() < jobs_.size() + points) {  // grows geometrically, as push_back would
      jobs_.reserve(std::max(jobs_.size() + points, 2 * jobs_.capacity()));
      job_keys_.reserve(jobs_.capacity());
    }
    std::vector<size_t> odometer(axes.size(), 0);
    while (true) {
      size_t m = method_index[odometer[0]];
      Json raw = base_params_[m];
      for (size_t a = 1; a < axes.size(); ++a) {
        if (takes[m][a]) raw[axes[a].name] = axes[a].values[odometer[a]];
      }
      ATP_RETURN_IF_ERROR(AddPoint(*stage_.methods[m], std::move(raw), apply_excludes, include_line));
      size_t a = axes.size();
      while (a > 0) {
        --a;
        if (++odometer[a] < axes[a].values.size()) break;
        odometer[a] = 0;
        if (a == 0) return Status::Ok();
      }
    }
  }

 private:
  Status AddPoint(const MethodInfo& method, Json raw, bool apply_excludes, int include_line) {
    const int line = include_line > 0 ? include_line : stage_.line;
    auto described = [&](const Json& params) {
      std::vector<std::string> parts = {"method=" + method.name};
      for (auto& [name, value] : params.items()) parts.push_back(name + "=" + ValueText(value));
      return Join(parts, " ");
    };
    Result<Json> resolved = ResolveMethodParams(method, raw, recipes_);
    if (!resolved.ok()) {
      return InvalidArgument(source_ + ":" + std::to_string(line) + ": stage \"" + stage_.name + "\", job {" +
                             described(raw) + "}: " + resolved.status().message());
    }
    if (apply_excludes) {
      for (Exclude* rule : excludes_) {
        if (!ConditionsHold(rule->conditions, method.name, *resolved)) continue;
        ++rule->points_dropped;
        ++info_.excluded_points;
        return Status::Ok();
      }
    }
    JobSpec job;
    job.stage = stage_.name;
    job.method = method.name;
    job.code_version = code_version_;
    job.ranks = stage_.ranks;
    job.retry = stage_.retry;
    job.hang_timeout_s = stage_.hang_timeout_s;
    job.expected_seconds = stage_.expected_seconds;
    // Every rule sees the point as it was before any override (rules do not chain); later
    // rules win when two set the same parameter. What a rule sets joins the point's own
    // values and the whole is resolved again, so the recipe follows (an override that turns
    // atprompt on gets the +ATPrompt recipe).
    std::optional<Json> overridden_params;  // a copy is made only when an override sets something
    const Override* last_setter = nullptr;
    for (Override* rule : overrides_) {
      if (!ConditionsHold(rule->when, method.name, *resolved)) continue;
      ++rule->jobs_changed;
      for (auto& [name, value] : rule->set.items()) {
        if (!Takes(method, name)) continue;
        if (!overridden_params) overridden_params = raw;
        (*overridden_params)[name] = value;
        last_setter = rule;
      }
      if (rule->ranks) job.ranks = *rule->ranks;
      if (rule->hang_timeout_s) job.hang_timeout_s = *rule->hang_timeout_s;
      if (rule->expected_seconds) job.expected_seconds = *rule->expected_seconds;
    }
    if (overridden_params) {
      Result<Json> overridden = ResolveMethodParams(method, *overridden_params, recipes_);
      if (!overridden.ok()) {
        return InvalidArgument(source_ + ":" + std::to_string(last_setter->line) + ": override #" +
                               std::to_string(last_setter->number) + " on stage \"" + stage_.name + "\", job {" +
                               described(*overridden_params) + "}: " + overridden.status().message());
      }
      job.params = std::move(overridden).value();
    } else {
      job.params = std::move(resolved).value();
    }

    for (size_t d = 0; d < stage_.depends_on.size(); ++d) {
      const Dependency& dependency = stage_.depends_on[d];
      auto found = upstream_index_[d].find(MatchSignature(job, dependency.match));
      if (found == upstream_index_[d].end()) {
        return InvalidArgument(source_ + ":" + std::to_string(dependency.line) + ": stage \"" + stage_.name +
                               "\".depends_on: the job with " + DescribeMatch(job, dependency.match) +
                               " matches no job of stage \"" + dependency.stage + "\" on [" + Join(dependency.match) +
                               "]; add these values to stage \"" + dependency.stage +
                               "\", match on fewer keys, or exclude this point");
      }
      job.upstream.insert(job.upstream.end(), found->second.begin(), found->second.end());
    }
    std::sort(job.upstream.begin(), job.upstream.end());
    job.upstream.erase(std::unique(job.upstream.begin(), job.upstream.end()), job.upstream.end());
    bool search_upstream = false;
    const bool needs_attributes = job.params.value("atprompt", false) && job.params.contains("attributes") &&
                                  job.params["attributes"].empty();
    for (const auto& key : needs_attributes ? job.upstream : std::vector<std::string>{}) {
      auto it = std::find(job_keys_.begin(), job_keys_.end(), key);
      if (it != job_keys_.end() && jobs_[static_cast<size_t>(it - job_keys_.begin())].method == "attribute_search") {
        search_upstream = true;
      }
    }
    if (Status attributes = ResolvePaperAttributes(&job.params, search_upstream); !attributes.ok()) {
      return InvalidArgument(source_ + ":" + std::to_string(line) + ": stage \"" + stage_.name + "\", job {" +
                             described(job.params) + "}: " + attributes.message());
    }

    std::string key = job.Key();
    if (!known_keys_.insert(key).second) {
      ++info_.merged_points;
      return Status::Ok();
    }
    jobs_.push_back(std::move(job));
    job_keys_.push_back(std::move(key));
    return Status::Ok();
  }

  const std::string& source_;
  int64_t* points_left_;  // of kMaxSweepPoints, shared by the sweep's stages
  const std::string& code_version_;
  const RecipeBook& recipes_;
  const Stage& stage_;
  StageInfo& info_;
  std::vector<JobSpec>& jobs_;
  std::vector<std::string>& job_keys_;  // job_keys_[i] == jobs_[i].Key()
  std::unordered_set<std::string>& known_keys_;
  std::vector<Override*> overrides_;
  std::vector<Exclude*> excludes_;
  std::vector<Json> base_params_;  // per method of the stage: the stage's parameters it takes
  std::vector<std::unordered_map<std::string, std::vector<std::string>>> upstream_index_;
};

Status SweepReader::Expand() {
  std::vector<std::string> job_keys;
  std::unordered_set<std::string> known_keys;
  std::unordered_map<std::string, std::pair<size_t, size_t>> stage_ranges;  // stage -> [begin, end) in jobs
  int64_t points_left = kMaxSweepPoints;
  for (auto& stage : stages_) {
    StageInfo info;
    info.name = stage.name;
    std::vector<std::string> method_names;
    for (const auto* method : stage.methods) method_names.push_back(method->name);
    info.method_summary = Join(method_names);
    for (const auto& dependency : stage.depends_on) {
      if (std::find(info.depends_on.begin(), info.depends_on.end(), dependency.stage) == info.depends_on.end()) {
        info.depends_on.push_back(dependency.stage);
      }
    }
    const size_t begin = sweep_.jobs.size();
    StageExpander expander(source_, sweep_.code_version, recipes_, stage, info, overrides_, excludes_, sweep_.jobs,
                           job_keys, known_keys, stage_ranges, &points_left);
    std::vector<Axis> axes;
    axes.push_back(Axis{"method", {}, stage.line});
    for (const auto& name : method_names) axes[0].values.push_back(name);
    axes.insert(axes.end(), stage.axes.begin(), stage.axes.end());
    ATP_RETURN_IF_ERROR(expander.AddProduct(axes, /*apply_excludes=*/true, 0));
    for (const auto& include : includes_) {
      if (include.stage == stage.name) ATP_RETURN_IF_ERROR(expander.AddProduct(include.axes, false, include.line));
    }
    stage_ranges[stage.name] = {begin, sweep_.jobs.size()};
    if (sweep_.jobs.size() == begin) {
      sweep_.warnings.push_back(At(stage.line) + ": stage \"" + stage.name +
                                "\" has no jobs (every point was excluded)");
    }
    sweep_.stages.push_back(std::move(info));
  }
  for (const auto& rule : overrides_) {
    if (rule.jobs_changed == 0) {
      sweep_.warnings.push_back(At(rule.line) + ": override #" + std::to_string(rule.number) + " matches no job");
    }
  }
  for (const auto& rule : excludes_) {
    if (rule.points_dropped == 0) {
      sweep_.warnings.push_back(At(rule.line) + ": exclude #" + std::to_string(rule.number) + " matches no point");
    }
  }
  return Status::Ok();
}

Result<Sweep> SweepReader::Read() {
  sweep_.source_path = source_;
  sweep_.source_text = std::string(text_);
  toml::table root;
  try {
    root = toml::parse(text_, source_);
  } catch (const toml::parse_error& error) {
    return InvalidArgument(source_ + ":" + std::to_string(error.source().begin.line) + ":" +
                           std::to_string(error.source().begin.column) +
                           ": TOML syntax error: " + std::string(error.description()));
  }
  ATP_RETURN_IF_ERROR(ReadHeader(root));
  ATP_RETURN_IF_ERROR(ReadStages(root));
  ATP_RETURN_IF_ERROR(ReadGlobalAxesAndParams(root));
  ATP_RETURN_IF_ERROR(ResolveStageAxes());
  ATP_RETURN_IF_ERROR(CheckDependencies());
  ATP_RETURN_IF_ERROR(OrderStages());
  ATP_RETURN_IF_ERROR(ReadRules(root));
  ATP_RETURN_IF_ERROR(Expand());
  return std::move(sweep_);
}

}  // namespace

std::vector<std::pair<std::string, int64_t>> Sweep::CountsByStage() const {
  std::vector<std::pair<std::string, int64_t>> counts;
  std::unordered_map<std::string, size_t> position;
  for (const auto& stage : stages) {
    position[stage.name] = counts.size();
    counts.emplace_back(stage.name, 0);
  }
  for (const auto& job : jobs) {
    auto it = position.find(job.stage);
    if (it == position.end()) {
      position[job.stage] = counts.size();
      counts.emplace_back(job.stage, 1);
    } else {
      ++counts[it->second].second;
    }
  }
  return counts;
}

Result<Sweep> LoadSweepFile(const std::string& path, const RecipeBook& recipes) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return NotFound("cannot open sweep file '" + path + "': " + std::strerror(errno));
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return IoError("cannot read sweep file '" + path + "': " + std::strerror(errno));
  return ParseSweep(text.str(), path, recipes);
}

Result<Sweep> ParseSweep(std::string_view toml_text, const std::string& source_name, const RecipeBook& recipes) {
  return SweepReader(toml_text, source_name.empty() ? "<string>" : source_name, recipes).Read();
}

std::string FormatDryRun(const Sweep& sweep) {
  constexpr size_t kShortKey = 12;
  constexpr size_t kUpstreamShown = 3;
  // Per stage: which parameters differ between its jobs (those are printed per job; the
  // others once per stage).
  struct StageView {
    const Json* first_params = nullptr;
    std::set<std::string> differing;  // every parameter whose value is not the same in all jobs
    std::set<std::string> varying;    // those of them printed in per-job columns
    std::map<std::string, size_t> column_width;  // of "name=value", so the columns line up
  };
  std::map<std::string, StageView> views;
  size_t stage_width = 5, method_width = 6;
  for (const auto& job : sweep.jobs) {
    stage_width = std::max(stage_width, job.stage.size());
    method_width = std::max(method_width, job.method.size());
    StageView& view = views[job.stage];
    if (view.first_params == nullptr) {
      view.first_params = &job.params;
      continue;
    }
    for (auto& [name, value] : job.params.items()) {
      auto it = view.first_params->find(name);
      if (it == view.first_params->end() || *it != value) view.differing.insert(name);
    }
    for (auto& [name, value] : view.first_params->items()) {
      if (!job.params.contains(name)) view.differing.insert(name);
    }
  }
  for (auto& [stage, view] : views) view.varying = view.differing;
  auto pad = [](const std::string& text, size_t width) {
    return text.size() >= width ? text : text + std::string(width - text.size(), ' ');
  };
  auto param_text = [](const Json& params, const std::string& name) {
    auto it = params.find(name);
    return name + "=" + (it == params.end() ? std::string("(unset)") : ValueText(*it));
  };
  // The effective training recipe is printed for every job that has one, varying or not.
  const std::vector<std::pair<std::string, std::string>> kRecipeColumns = {
      {"epochs", "epochs"}, {"n_ctx", "n_ctx"}, {"lr", "lr"}, {"batch_size", "batch"}, {"ctx_init", "init"}};
  auto recipe_text = [](const Json& params, const std::string& name, const std::string& label) -> std::string {
    auto it = params.find(name);
    if (it == params.end()) return "";
    if (name == "ctx_init") {
      const std::string phrase = it->get<std::string>();
      return label + "=" + (phrase.empty() ? std::string("random") : "\"" + phrase + "\"");
    }
    return label + "=" + ValueText(*it);
  };
  std::map<std::string, size_t> recipe_width;
  for (const auto& job : sweep.jobs) {
    StageView& view = views[job.stage];
    for (const auto& [name, label] : kRecipeColumns) {
      view.varying.erase(name);
      recipe_width[name] = std::max(recipe_width[name], recipe_text(job.params, name, label).size());
    }
    for (const auto& name : view.varying) {
      size_t& width = view.column_width[name];
      width = std::max(width, param_text(job.params, name).size());
    }
  }

  std::string out;
  for (const auto& job : sweep.jobs) {
    const StageView& view = views[job.stage];
    out += job.Key().substr(0, kShortKey) + "  " + pad(job.stage, stage_width) + "  " + pad(job.method, method_width) +
           "  ranks=" + std::to_string(job.ranks);
    for (const auto& [name, label] : kRecipeColumns) {
      if (recipe_width[name] > 0) out += "  " + pad(recipe_text(job.params, name, label), recipe_width[name]);
    }
    for (const auto& name : view.varying) out += "  " + pad(param_text(job.params, name), view.column_width.at(name));
    if (job.upstream.empty()) {
      while (!out.empty() && out.back() == ' ') out.pop_back();
    } else {
      out += "  <-";
      for (size_t i = 0; i < job.upstream.size() && i < kUpstreamShown; ++i) {
        out += " " + job.upstream[i].substr(0, kShortKey);
      }
      if (job.upstream.size() > kUpstreamShown) {
        out += " (+" + std::to_string(job.upstream.size() - kUpstreamShown) + " more)";
      }
    }
    out += "\n";
  }

  out += "\n" + pad("stage", stage_width) + "  " + pad("jobs", 8) + "  excluded  merged  depends on\n";
  int64_t total = 0;
  auto counts = sweep.CountsByStage();
  for (const auto& [name, count] : counts) {
    total += count;
    const StageInfo* info = nullptr;
    for (const auto& stage : sweep.stages) {
      if (stage.name == name) info = &stage;
    }
    std::string count_text = std::to_string(count);
    out += pad(name, stage_width) + "  " + pad(count_text, 8) + "  " +
           pad(std::to_string(info ? info->excluded_points : 0), 8) + "  " +
           pad(std::to_string(info ? info->merged_points : 0), 6) + "  " +
           (info && !info->depends_on.empty() ? Join(info->depends_on) : std::string("-")) + "\n";
    auto view = views.find(name);
    if (view != views.end() && view->second.first_params != nullptr) {
      std::vector<std::string> fixed;
      for (auto& [param, value] : view->second.first_params->items()) {
        // A recipe column that differs (CoOp's 16 tokens beside DePT's 4) is not fixed either.
        if (!view->second.differing.count(param)) fixed.push_back(param + "=" + ValueText(value));
      }
      if (!fixed.empty()) out += pad("", stage_width) + "  fixed: " + Join(fixed, " ") + "\n";
    }
  }
  out += pad("total", stage_width) + "  " + std::to_string(total) + " jobs\n";
  for (const auto& warning : sweep.warnings) out += "warning: " + warning + "\n";
  return out;
}

}  // namespace atp
