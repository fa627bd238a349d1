#include "common/method_recipes.h"

#include <utility>

namespace atp {
namespace {

using Variant = RecipeMatch::Variant;
using Setting = RecipeMatch::Setting;

bool Matches(const RecipeMatch& m, const RecipeKey& key) {
  if (m.method != key.method) return false;
  if (m.variant == Variant::kVanilla && key.atprompt) return false;
  if (m.variant == Variant::kAtprompt && !key.atprompt) return false;
  const bool transfer = key.protocol != "base2novel";
  if (m.setting == Setting::kBase2Novel && transfer) return false;
  if (m.setting == Setting::kTransfer && !transfer) return false;
  if (!m.compat.empty() && m.compat != key.compat) return false;
  if (!m.dataset.empty() && m.dataset != key.training_dataset) return false;
  return true;
}

RecipeRule Rule(std::string method, Variant variant, Setting setting, std::string compat, std::string dataset,
                Json values, std::string source) {
  return RecipeRule{RecipeMatch{std::move(method), variant, setting, std::move(compat), std::move(dataset)},
                    std::move(values), std::move(source)};
}

// The per-dataset soft-token length and epochs of the +ATPrompt base-to-novel runs (ATPrompt's
// docs/ATPrompt.md table; DePT also its loss weight). The rows for datasets the table does not
// list come from the scripts' own values (the generic +ATPrompt rules below).
struct AtpromptRow {
  const char* dataset;
  int coop_epochs, coop_nctx;
  int cocoop_epochs, cocoop_nctx;
  int maple_epochs, maple_nctx;
  int dept_epochs, dept_nctx;
  double dept_weight;
};

constexpr AtpromptRow kAtpromptRows[] = {
    {"imagenet", 10, 2, 10, 2, 5, 4, 10, 2, 0.7},        {"caltech101", 100, 2, 10, 2, 10, 4, 10, 4, 0.6},
    {"oxford_pets", 100, 2, 10, 2, 10, 4, 10, 2, 0.7},   {"stanford_cars", 100, 2, 10, 6, 5, 4, 10, 2, 0.6},
    {"oxford_flowers", 100, 2, 10, 6, 10, 4, 10, 4, 0.7}, {"food101", 100, 2, 10, 2, 5, 4, 10, 4, 0.7},
    {"fgvc_aircraft", 100, 2, 10, 2, 5, 2, 10, 4, 0.7},  {"sun397", 100, 2, 10, 2, 5, 4, 10, 4, 0.7},
    {"dtd", 100, 4, 10, 2, 5, 4, 10, 4, 0.6},            {"eurosat", 100, 2, 10, 6, 10, 4, 10, 4, 0.7},
    {"ucf101", 100, 2, 10, 4, 5, 2, 10, 4, 0.5},
};

constexpr const char* kAtpDocs = "zhengli97/ATPrompt docs/ATPrompt.md (per-dataset table)";

std::vector<RecipeRule> BuildDefaultRules() {
  const std::string dassl =
      "Dassl defaults behind every configs/trainers/*/vit_b16*.yaml: SGD momentum 0.9, weight decay 5e-4, "
      "one constant warm-up epoch at 1e-5";
  std::vector<RecipeRule> rules;
  for (const char* method : {"coop", "cocoop", "maple", "dept", "promptsrc"}) {
    rules.push_back(Rule(method, Variant::kAny, Setting::kAny, "", "",
                         {{"warmup_epochs", 1}, {"warmup_lr", 1e-5}, {"momentum", 0.9}, {"weight_decay", 5e-4},
                          {"ctx_init", ""}, {"class_name_underscores", false}},
                         dassl));
  }

  // --- CoOp ---
  rules.push_back(Rule("coop", Variant::kVanilla, Setting::kBase2Novel, "paper", "",
                       {{"epochs", 200}, {"n_ctx", 4}, {"ctx_init", "a photo of a"}, {"batch_size", 32}, {"lr", 0.002}},
                       "KaiyangZhou/CoOp scripts/cocoop/base2new_train.sh with TRAINER=CoOp, "
                       "configs/trainers/CoOp/vit_b16_ctxv1.yaml (the CoCoOp paper's CoOp row)"));
  rules.push_back(Rule("coop", Variant::kVanilla, Setting::kBase2Novel, "paper", "imagenet", {{"epochs", 50}},
                       "KaiyangZhou/CoOp scripts/cocoop/base2new_train.sh with TRAINER=CoOp on ImageNet, "
                       "configs/trainers/CoOp/vit_b16_ep50_ctxv1.yaml"));
  rules.push_back(Rule("coop", Variant::kVanilla, Setting::kTransfer, "paper", "",
                       {{"epochs", 50}, {"n_ctx", 4}, {"ctx_init", "a photo of a"}, {"batch_size", 32}, {"lr", 0.002}},
                       "KaiyangZhou/CoOp scripts/cocoop/xd_train.sh with TRAINER=CoOp, "
                       "configs/trainers/CoOp/vit_b16_ep50_ctxv1.yaml"));
  // ATPrompt offers two routes to vanilla CoOp; the recipe follows its vanilla script whole:
  // TRAINER=CoOp runs trainers/coop.py, which replaces '_' in class names. The other route
  // (atprompt_base2new_train.sh with USE_ATPROMPT False, trainers/coop_atp.py: 2 tokens, 100
  // epochs, '_' kept) is reachable by setting its values (docs/recipes.md).
  rules.push_back(Rule("coop", Variant::kVanilla, Setting::kBase2Novel, "official", "",
                       {{"epochs", 200}, {"n_ctx", 16}, {"batch_size", 32}, {"lr", 0.002}, {"class_name_underscores", false}},
                       "zhengli97/ATPrompt scripts/coop/vanila_base2new_train.sh (TRAINER=CoOp: trainers/coop.py, "
                       "class names with '_' replaced; N_CTX 16, 200 epochs, configs/trainers/CoOp/vit_b16.yaml)"));
  rules.push_back(Rule("coop", Variant::kVanilla, Setting::kTransfer, "official", "",
                       {{"epochs", 10}, {"n_ctx", 4}, {"batch_size", 32}, {"lr", 0.002}, {"class_name_underscores", true}},
                       "zhengli97/ATPrompt scripts/coop/atprompt_xd_train.sh with USE_ATPROMPT False "
                       "(no vanilla CoOp cross-dataset script exists, so this is the only official route: "
                       "trainers/coop_atp.py, whose vanilla prompts keep '_' in class names)"));
  rules.push_back(Rule("coop", Variant::kAtprompt, Setting::kAny, "", "",
                       {{"epochs", 100}, {"n_ctx", 2}, {"batch_size", 32}, {"lr", 0.002}},
                       "zhengli97/ATPrompt scripts/coop/atprompt_base2new_train.sh, configs/trainers/CoOp/vit_b16.yaml"));
  rules.push_back(Rule("coop", Variant::kAtprompt, Setting::kTransfer, "", "", {{"epochs", 10}, {"n_ctx", 4}},
                       "zhengli97/ATPrompt scripts/coop/atprompt_xd_train.sh"));

  // --- CoCoOp ---
  rules.push_back(Rule("cocoop", Variant::kAny, Setting::kAny, "", "", {{"batch_size", 1}, {"lr", 0.002}, {"epochs", 10}},
                       "configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml (KaiyangZhou/CoOp, zhengli97/ATPrompt)"));
  rules.push_back(Rule("cocoop", Variant::kVanilla, Setting::kAny, "", "", {{"n_ctx", 4}, {"ctx_init", "a photo of a"}},
                       "KaiyangZhou/CoOp scripts/cocoop/base2new_train.sh and xd_train.sh, "
                       "configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml"));
  rules.push_back(Rule("cocoop", Variant::kVanilla, Setting::kTransfer, "official", "", {{"epochs", 5}},
                       "zhengli97/ATPrompt scripts/cocoop/vanilla_xd_train.sh (OPTIM.MAX_EPOCH 5)"));
  rules.push_back(Rule("cocoop", Variant::kAtprompt, Setting::kAny, "", "", {{"n_ctx", 2}},
                       "zhengli97/ATPrompt scripts/cocoop/atprompt_base2new_train.sh"));
  rules.push_back(Rule("cocoop", Variant::kAtprompt, Setting::kTransfer, "", "", {{"n_ctx", 4}, {"epochs", 5}},
                       "zhengli97/ATPrompt scripts/cocoop/atprompt_xd_train.sh, docs/ATPrompt.md"));

  // --- MaPLe ---
  rules.push_back(Rule("maple", Variant::kAny, Setting::kAny, "", "",
                       {{"batch_size", 4}, {"lr", 0.0035}, {"epochs", 5}, {"n_ctx", 2}, {"depth", 9}},
                       "muzairkhattak/multimodal-prompt-learning scripts/maple/base2new_train_maple.sh, "
                       "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml"));
  rules.push_back(Rule("maple", Variant::kAny, Setting::kTransfer, "", "", {{"lr", 0.0026}, {"epochs", 2}, {"depth", 3}},
                       "muzairkhattak/multimodal-prompt-learning scripts/maple/xd_train_maple.sh, "
                       "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets.yaml"));
  rules.push_back(Rule("maple", Variant::kVanilla, Setting::kAny, "", "", {{"ctx_init", "a photo of a"}},
                       "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx*.yaml (CTX_INIT)"));
  rules.push_back(Rule("maple", Variant::kAtprompt, Setting::kTransfer, "paper", "", {{"n_ctx", 4}},
                       "zhengli97/ATPrompt docs/ATPrompt.md (cross-dataset: 4 tokens, 2 epochs)"));
  rules.push_back(Rule("maple", Variant::kAtprompt, Setting::kTransfer, "official", "",
                       {{"epochs", 3}, {"attribute_ctx", 4}},
                       "zhengli97/ATPrompt scripts/maple/atprompt_xd_train.sh (EPO 3; N_ATT 4 while MAPLE.N_CTX "
                       "stays at the config's 2)"));

  // --- DePT ---
  rules.push_back(Rule("dept", Variant::kAny, Setting::kAny, "", "", {{"batch_size", 4}, {"lr", 0.0035}},
                       "configs/trainers/DePT/vit_b16_ep*_bs4_lr35.yaml"));
  rules.push_back(Rule("dept", Variant::kVanilla, Setting::kAny, "paper", "", {{"n_ctx", 16}, {"epochs", 10}, {"weight", 0.7}},
                       "Koorye/DePT configs.py `coop_dept` (ExtrasLinearProbeCoOp, "
                       "configs/trainers/ExtrasLinearProbeCoOp/vit_b16_ep10_bs4_lr35.yaml; N_CTX 16 and "
                       "LINEAR_PROBE.WEIGHT 0.7 from train.py)"));
  rules.push_back(Rule("dept", Variant::kVanilla, Setting::kAny, "official", "", {{"n_ctx", 4}, {"epochs", 20}, {"weight", 0.7}},
                       "zhengli97/ATPrompt scripts/dept/vanila_base2new_train.sh, configs/trainers/DePT/vit_b16_ep20_bs4_lr35.yaml"));
  rules.push_back(Rule("dept", Variant::kAtprompt, Setting::kAny, "", "", {{"n_ctx", 2}, {"epochs", 10}, {"weight", 0.7}},
                       "zhengli97/ATPrompt scripts/dept/atprompt_base2new_train.sh, configs/trainers/DePT/vit_b16_ep10_bs4_lr35.yaml"));

  // --- PromptSRC ---
  rules.push_back(Rule("promptsrc", Variant::kAny, Setting::kAny, "", "",
                       {{"batch_size", 4}, {"lr", 0.0025}, {"epochs", 20}, {"n_ctx", 4}, {"vision_n_ctx", 4},
                        {"text_depth", 9}, {"vision_depth", 9}, {"text_loss_weight", 25}, {"image_loss_weight", 10},
                        {"gpa_mean", 15}, {"gpa_std", 1}},
                       "muzairkhattak/PromptSRC scripts/promptsrc/base2new_train.sh, "
                       "configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml"));
  rules.push_back(Rule("promptsrc", Variant::kAny, Setting::kTransfer, "", "",
                       {{"text_depth", 3}, {"vision_depth", 3}, {"gpa_mean", 6}, {"gpa_std", 10}},
                       "muzairkhattak/PromptSRC scripts/promptsrc/xd_train.sh, "
                       "configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets.yaml (the script "
                       "names an ep5 file the repository does not hold; docs/recipes.md)"));
  rules.push_back(Rule("promptsrc", Variant::kVanilla, Setting::kAny, "", "", {{"ctx_init", "a photo of a"}},
                       "configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx*.yaml (CTX_INIT)"));
  rules.push_back(Rule("promptsrc", Variant::kVanilla, Setting::kBase2Novel, "official", "",
                       {{"epochs", 10}, {"ctx_init", ""}},
                       "zhengli97/ATPrompt 9a85a87 scripts/promptsrc/vanilla_base2new_train.sh (EPO swept over 5 and "
                       "10; its train.py sets CTX_INIT \"\", so the context is drawn at random)"));
  rules.push_back(Rule("promptsrc", Variant::kAtprompt, Setting::kBase2Novel, "", "",
                       {{"n_ctx", 4}, {"attribute_ctx", 4}, {"epochs", 10}},
                       "zhengli97/ATPrompt 9a85a87 scripts/promptsrc/atp_base2new_train.sh (NCTX 4, N_ATT1..3 = NCTX, "
                       "EPO swept over 5 and 10; trainers/promptsrc_atp.py draws ctx at random whatever CTX_INIT)"));

  // --- +ATPrompt per dataset ---
  for (const AtpromptRow& row : kAtpromptRows) {
    rules.push_back(Rule("coop", Variant::kAtprompt, Setting::kBase2Novel, "", row.dataset,
                         {{"epochs", row.coop_epochs}, {"n_ctx", row.coop_nctx}}, kAtpDocs));
    rules.push_back(Rule("cocoop", Variant::kAtprompt, Setting::kBase2Novel, "", row.dataset,
                         {{"epochs", row.cocoop_epochs}, {"n_ctx", row.cocoop_nctx}}, kAtpDocs));
    rules.push_back(Rule("maple", Variant::kAtprompt, Setting::kBase2Novel, "", row.dataset,
                         {{"epochs", row.maple_epochs}, {"n_ctx", row.maple_nctx}}, kAtpDocs));
    // DePT follows the table whatever the protocol (it has no transfer script).
    rules.push_back(Rule("dept", Variant::kAtprompt, Setting::kAny, "", row.dataset,
                         {{"epochs", row.dept_epochs}, {"n_ctx", row.dept_nctx}, {"weight", row.dept_weight}}, kAtpDocs));
  }

  // --- PromptKD (the student; its teacher is a promptsrc job or a published checkpoint) ---
  rules.push_back(Rule("promptkd", Variant::kAny, Setting::kAny, "", "",
                       {{"epochs", 20}, {"batch_size", 8}, {"lr", 0.005}, {"warmup_epochs", 1}, {"warmup_lr", 1e-5},
                        {"momentum", 0.9}, {"weight_decay", 5e-4}, {"n_ctx", 4}, {"depth", 9}, {"temperature", 1.0},
                        {"kd_weight", 1000.0}, {"teacher_method", "promptsrc"}, {"teacher_backbone", "ViT-L/14"},
                        {"teacher_n_ctx", 4}, {"teacher_depth", 9}},
                       "zhengli97/PromptKD scripts/promptkd/base2new_train.sh (KD_WEIGHT 1000, TEMPERATURE 1.0), "
                       "configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml, trainers/promptkd.py "
                       "(teacher: IVLP ViT-L/14, 4+4 tokens, depth 9)"));
  for (const char* dataset : {"fgvc_aircraft", "oxford_flowers", "dtd"}) {
    rules.push_back(Rule("promptkd", Variant::kAny, Setting::kAny, "", dataset, {{"kd_weight", 200.0}},
                         "zhengli97/PromptKD scripts/promptkd/base2new_train.sh (comment: KD_WEIGHT 200 on "
                         "fgvc_aircraft, oxford_flowers, dtd)"));
  }

  // --- attribute search ---
  rules.push_back(Rule("attribute_search", Variant::kAny, Setting::kAny, "paper", "", {{"epochs", 10}},
                       "the paper's search (10 epochs)"));
  rules.push_back(Rule("attribute_search", Variant::kAny, Setting::kAny, "official", "", {{"epochs", 40}},
                       "zhengli97/ATPrompt scripts/attribute_compute/main.sh (OPTIM.MAX_EPOCH 40)"));
  return rules;
}

}  // namespace

Json RecipeBook::ValuesFor(const RecipeKey& key) const {
  Json values = Json::object();
  for (const auto& rule : rules_) {
    if (!Matches(rule.match, key)) continue;
    for (auto& [name, value] : rule.values.items()) values[name] = value;
  }
  return values;
}

std::vector<std::string> RecipeBook::SourcesFor(const RecipeKey& key) const {
  std::vector<std::string> sources;
  for (const auto& rule : rules_) {
    if (Matches(rule.match, key)) sources.push_back(rule.source);
  }
  return sources;
}

const RecipeBook& DefaultRecipes() {
  static const RecipeBook kBook(BuildDefaultRules());
  return kBook;
}

std::string TrainingDataset(const Json& params) {
  const std::string protocol = params.value("protocol", "base2novel");
  if (protocol == "base2novel") return params.value("dataset", "");
  return params.value("source_dataset", "");
}

}  // namespace atp
