// MethodConfig: a job's parameters read into the typed settings a method run needs. The job
// spec already holds the effective value of every hyper-parameter (the catalog and the
// recipes resolve them at expansion, common/method_recipes.h); this adds only what depends
// on the run itself: the attributes an upstream search chose, and where the data, backbone,
// vocabulary and feature cache are. A parameter missing from the spec is an error, never a
// default. Every field is written into the job's outputs. No libtorch. Pure functions of
// their inputs plus the environment variables named below.
#pragma once

#include <string>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "worker/prompt/prompt_layout.h"

namespace atp::prompt {

struct MethodConfig {
  std::string method;          // zsclip | coop | cocoop | maple | dept | promptsrc | attribute_search | promptkd
  std::string dataset;
  int64_t seed = 1;
  std::string protocol = "base2novel";  // | cross_dataset | domain_generalization
  std::string source_dataset;           // cross-dataset / DG: the dataset trained on
  int shots = 16;

  bool atprompt = false;
  PromptDesign design;         // n_ctx, attributes, attribute_ctx, class position, compat, ctx_init
  std::string attribute_source;  // "explicit" | "search:<job key>" | "paper"

  int epochs = 0;
  int batch_size = 0;
  int test_batch_size = 100;
  double lr = 0;
  double warmup_lr = 1e-5;
  int warmup_epochs = 1;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  int max_steps_per_epoch = 0;  // 0 = the whole epoch (tests and smoke runs cap it)
  bool augment = true;  // false: training images get the test transform (no crop, no flip)

  int maple_depth = 9;          // prompt depth J (MaPLe; PromptKD's student vision prompts)
  double dept_weight = 0.7;     // DePT linear-probe loss weight w

  // PromptSRC (IVLP prompts; n_ctx above is N_CTX_TEXT).
  int vision_n_ctx = 4;         // N_CTX_VISION
  int text_depth = 9;           // PROMPT_DEPTH_TEXT
  int vision_depth = 9;         // PROMPT_DEPTH_VISION
  double text_loss_weight = 25;   // TEXT_LOSS_WEIGHT
  double image_loss_weight = 10;  // IMAGE_LOSS_WEIGHT
  double gpa_mean = 15;         // GPA_MEAN
  double gpa_std = 1;           // GPA_STD
  // PromptKD (docs/methods.md, "PromptKD"): the student's loss and where its teacher comes from.
  double kd_weight = 1000;
  double kd_temperature = 1;
  std::string teacher_checkpoint;  // "" = the upstream teacher job's checkpoint
  std::string teacher_method;      // the teacher's training method (promptsrc | maple)
  std::string teacher_backbone;    // a published teacher checkpoint's CLIP
  int teacher_n_ctx = 4;           // a published teacher checkpoint's prompt layout
  int teacher_depth = 9;

  // Attribute search.
  std::vector<std::string> bases;
  int max_group_size = 0;       // 0 = all sizes
  double alpha_lr = 0.02;

  std::string precision = "auto";  // auto | fp32 | bf16 | fp16 (ResolvePrecision decides auto)
  std::string data_root;
  std::string backbone;         // checkpoint path
  std::string vocab;            // BPE vocabulary path ("" = OpenAI's, found the usual way)
  bool use_feature_cache = true;
  std::string feature_cache_dir;
  double feature_cache_gb = 20;
  int threads = 0;

  bool eval_only = false;
  std::string checkpoint;       // eval_only: the prompt checkpoint (or the upstream job's)
  // eval_only: "detect" | "job" | "unchecked" (docs/methods.md, "Published checkpoints").
  std::string checkpoint_class_names = "detect";

  Json ToJson() const;          // every field, for the job's outputs and logs
};

// Reads a job's parameters (resolved at expansion: ResolveMethodParams) and its upstream
// outputs ([{key, stage, method, outputs}], see JobContext::upstream) into a MethodConfig.
// Errors name the parameter: one missing (a job written by an older atp), an unknown dataset,
// attribute counts the method cannot take, a missing backbone or data root.
Result<MethodConfig> ResolveMethodConfig(const std::string& method, const Json& params, const Json& upstream);

// The inverse of MethodConfig::ToJson: the settings a job ran with, as its outputs record
// them (a teacher job's `config`, a checkpoint's meta). Errors name the missing field.
Result<MethodConfig> MethodConfigFromJson(const Json& config);

// Where a backbone name points: an existing path as is; "ViT-B/16" and friends in
// $ATP_CLIP_DIR (file names as OpenAI publishes them, e.g. ViT-B-16.pt).
Result<std::string> ResolveBackbonePath(const std::string& backbone);

// $ATP_DATA_ROOT, else "data" (relative to the working directory).
std::string DefaultDataRoot();

}  // namespace atp::prompt
