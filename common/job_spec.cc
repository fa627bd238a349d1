#include "common/job_spec.h"

#include <algorithm>

#include "common/hash.h"

namespace atp {

std::string JobSpec::dataset() const {
  auto it = params.find("dataset");
  return (it != params.end() && it->is_string()) ? it->get<std::string>() : std::string();
}

long long JobSpec::seed() const {
  auto it = params.find("seed");
  return (it != params.end() && it->is_number_integer()) ? it->get<long long>() : -1;
}

Json JobSpec::IdentityJson() const {
  std::vector<std::string> sorted_upstream = upstream;
  std::sort(sorted_upstream.begin(), sorted_upstream.end());
  sorted_upstream.erase(std::unique(sorted_upstream.begin(), sorted_upstream.end()), sorted_upstream.end());
  // Built by assignment: an initializer list would copy every value once more.
  Json identity = Json::object();
  identity["stage"] = stage;
  identity["method"] = method;
  identity["params"] = params;
  identity["upstream"] = std::move(sorted_upstream);
  identity["code_version"] = code_version;
  return identity;
}

std::string JobSpec::Key() const { return Sha256Hex(IdentityJson().dump()); }

Json JobSpec::ToJson() const {
  Json json = IdentityJson();
  Json rules = Json::object();
  for (int i = 0; i < kFailureClassCount; ++i) {
    auto c = static_cast<FailureClass>(i);
    rules[FailureClassName(c)] = {{"retry", retry.rule(c).retry}, {"counts_attempt", retry.rule(c).counts_attempt}};
  }
  json["execution"] = {{"ranks", ranks},
                       {"max_attempts", retry.max_attempts},
                       {"max_lost", retry.max_lost},
                       {"retry_rules", rules},
                       {"hang_timeout_s", hang_timeout_s},
                       {"expected_seconds", expected_seconds}};
  return json;
}

Result<JobSpec> JobSpec::FromJson(const Json& json) {
  try {
    JobSpec spec;
    spec.stage = json.at("stage").get<std::string>();
    spec.method = json.at("method").get<std::string>();
    spec.params = json.at("params");
    if (!spec.params.is_object()) return InvalidArgument("job spec: 'params' must be an object, got " + spec.params.dump());
    spec.upstream = json.at("upstream").get<std::vector<std::string>>();
    spec.code_version = json.at("code_version").get<std::string>();
    if (auto it = json.find("execution"); it != json.end()) {
      const Json& e = *it;
      spec.ranks = e.value("ranks", 1);
      spec.retry.max_attempts = e.value("max_attempts", spec.retry.max_attempts);
      spec.retry.max_lost = e.value("max_lost", spec.retry.max_lost);
      spec.hang_timeout_s = e.value("hang_timeout_s", spec.hang_timeout_s);
      spec.expected_seconds = e.value("expected_seconds", 0.0);
      if (auto r = e.find("retry_rules"); r != e.end()) {
        for (auto& [name, rule] : r->items()) {
          auto c = ParseFailureClass(name);
          if (!c) return InvalidArgument("job spec: unknown failure class '" + name + "' in retry_rules");
          spec.retry.rule(*c).retry = rule.value("retry", true);
          spec.retry.rule(*c).counts_attempt = rule.value("counts_attempt", true);
        }
      }
    }
    return spec;
  } catch (const Json::exception& e) {
    return InvalidArgument(std::string("job spec JSON is malformed: ") + e.what());
  }
}

}  // namespace atp
