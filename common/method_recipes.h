// MethodRecipes: the training recipe behind each published row — for a method, with or without
// ATPrompt, a protocol, the dataset a prompt is trained on and a compat mode, the values of the
// hyper-parameters a sweep leaves out (epochs, soft tokens, lr, batch, context initialisation,
// ...). Pure numbers and strings, no libtorch. ResolveMethodParams applies them once, at sweep
// expansion, so a job spec and its key hold the values that run. Every rule names the official
// script and config it reproduces (docs/recipes.md). Immutable once built; thread-safe to read.
#pragma once

#include <string>
#include <vector>

#include "common/json.h"
#include "common/status.h"

namespace atp {

// Which jobs a rule applies to. Empty strings and kAny match everything.
struct RecipeMatch {
  enum class Variant { kAny, kVanilla, kAtprompt };
  enum class Setting { kAny, kBase2Novel, kTransfer };  // transfer: cross-dataset and domain generalisation
  std::string method;                  // catalog method name (required)
  Variant variant = Variant::kAny;
  Setting setting = Setting::kAny;
  std::string compat;                  // "paper" | "official" | "" (both)
  std::string dataset;                 // the dataset the prompt is trained on; "" = any
};

struct RecipeRule {
  RecipeMatch match;
  Json values = Json::object();        // parameter name -> value
  std::string source;                  // the official script and config it reproduces
};

// What a job's recipe depends on, taken from its other (already resolved) parameters.
struct RecipeKey {
  std::string method;
  bool atprompt = false;
  std::string protocol = "base2novel";
  std::string compat = "paper";
  std::string training_dataset;        // base-to-novel: the dataset; otherwise the source dataset
};

class RecipeBook {
 public:
  explicit RecipeBook(std::vector<RecipeRule> rules) : rules_(std::move(rules)) {}

  // The values of every rule that matches, in order, later rules overriding earlier ones.
  Json ValuesFor(const RecipeKey& key) const;
  // The sources of those rules, in the same order (for the docs and `--dry-run --explain`).
  std::vector<std::string> SourcesFor(const RecipeKey& key) const;

  const std::vector<RecipeRule>& rules() const { return rules_; }
  std::vector<RecipeRule>& mutable_rules() { return rules_; }

 private:
  std::vector<RecipeRule> rules_;
};

// The recipes atp ships: paper mode reproduces the run behind each row of the paper's tables,
// official mode ATPrompt's released scripts (docs/recipes.md, row by row).
const RecipeBook& DefaultRecipes();

// The dataset a prompt is trained on: `dataset` for base-to-novel jobs, else `source_dataset`.
std::string TrainingDataset(const Json& params);

}  // namespace atp
