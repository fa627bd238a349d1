#include "worker/prompt/promptkd_method.h"

#include <chrono>
#include <cstdio>
#include <mutex>

#include "worker/clip/clip_checkpoint.h"
#include "worker/clip/tokenizer.h"
#include "worker/data/dataset.h"
#include "worker/data/transductive.h"
#include "worker/job_context.h"
#include "worker/job_failure.h"
#include "worker/prompt/global_generator.h"
#include "worker/prompt/image_inputs.h"
#include "worker/prompt/ivlp_model.h"
#include "worker/prompt/promptsrc_model.h"
#include "worker/prompt/kd_teacher.h"
#include "worker/prompt/prompt_methods.h"
#include "worker/prompt/prompt_model.h"
#include "worker/prompt/promptkd_model.h"
#include "worker/prompt/trainer.h"
#include "worker/train/gradient_sync.h"
#include "worker/train/training_checkpoint.h"

namespace atp::prompt {
namespace {

// The official teacher of trainers/promptkd.py (load_clip_to_cpu_teacher, VLPromptLearner):
// IVLP with "a photo of a" as text context, class names with '_' replaced.
MethodConfig PublishedTeacherConfig(const MethodConfig& student) {
  MethodConfig c;
  c.method = student.teacher_method;
  c.dataset = student.dataset;
  c.seed = student.seed;
  c.design.n_ctx = student.teacher_n_ctx;
  c.vision_n_ctx = student.teacher_n_ctx;
  c.text_depth = student.teacher_depth;
  c.vision_depth = student.teacher_depth;
  c.maple_depth = student.teacher_depth;
  c.design.ctx_init = "a photo of a";
  c.design.compat = Compat::kOfficial;
  c.design.keep_underscores = false;
  c.backbone = student.teacher_backbone;
  c.vocab = student.vocab;
  c.precision = student.precision;
  c.data_root = student.data_root;
  return c;
}

// A PromptSRC teacher at inference is its IVLP model (the self-regularising losses and the
// prompt aggregation shape training only): text and vision prompts of `n_ctx` tokens in
// `depth` blocks of each tower, as trainers/promptkd.py builds the teacher.
Result<std::unique_ptr<PromptModel>> MakeTeacherModel(const MethodConfig& c, clip::Clip clip,
                                                      std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                                                      const std::vector<std::string>& class_names) {
  if (c.method != "promptsrc") return MakePromptModel(c, clip.ptr(), tokenizer, class_names);
  ATP_ASSIGN_OR_RETURN(std::unique_ptr<IvlpModel> model,
                       MakeIvlpModel(PromptSrcSettingsFor(c).ivlp, clip, tokenizer, class_names));
  return std::unique_ptr<PromptModel>(std::move(model));
}

}  // namespace

Result<TeacherSource> ResolveTeacherSource(const MethodConfig& student, const Json& upstream) {
  TeacherSource source;
  if (student.teacher_checkpoint.empty()) {
    for (const auto& up : upstream) {
      if (!up.contains("outputs") || !up["outputs"].contains("checkpoint") || !up["outputs"].contains("config")) continue;
      source.checkpoint = up["outputs"]["checkpoint"].get<std::string>();
      ATP_ASSIGN_OR_RETURN(source.config, MethodConfigFromJson(up["outputs"]["config"]));
      source.origin = "job " + up.value("key", std::string("?"));
      break;
    }
    if (source.checkpoint.empty()) {
      return InvalidArgument("PromptKD needs a teacher: depend on a teacher job (a stage whose jobs write a "
                             "checkpoint) or set `teacher_checkpoint`");
    }
  } else {
    source.checkpoint = student.teacher_checkpoint;
    Result<train::TrainingCheckpoint> ours = train::LoadTrainingCheckpoint(source.checkpoint);
    const Json meta = ours.ok() ? Json::parse(ours->meta_json, nullptr, false) : Json();
    if (meta.is_object() && meta.contains("config")) {
      ATP_ASSIGN_OR_RETURN(source.config, MethodConfigFromJson(meta["config"]));
      source.origin = "atp checkpoint";
    } else {
      if (student.atprompt) {
        return InvalidArgument("teacher_checkpoint " + source.checkpoint +
                               " is not one of atp's (it records no settings), so it is read as a published "
                               "PromptSRC teacher; none was published with ATPrompt, so atprompt = true needs a "
                               "teacher trained by atp (a teacher stage, or its checkpoint.pth)");
      }
      source.config = PublishedTeacherConfig(student);
      source.origin = "published checkpoint";
    }
  }
  if (source.config.atprompt != student.atprompt) {
    return InvalidArgument("the PromptKD job has atprompt = " + std::string(student.atprompt ? "true" : "false") +
                           " but its teacher (" + source.origin + ", " + source.checkpoint + ") was trained " +
                           (source.config.atprompt ? "with" : "without") + " ATPrompt");
  }
  return source;
}

Result<std::unique_ptr<KdTeacher>> BuildKdTeacher(const TeacherSource& source, clip::Clip teacher_clip,
                                                  std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                                                  const std::vector<std::string>& class_names) {
  const MethodConfig& c = source.config;
  std::unique_ptr<PromptModel> model;
  {
    // The teacher's own initial prompts are overwritten by its checkpoint below.
    std::lock_guard<std::mutex> lock(GlobalGeneratorMutex());
    ATP_ASSIGN_OR_RETURN(model, MakeTeacherModel(c, teacher_clip, tokenizer, class_names));
  }
  Result<train::TensorMap> state = train::ImportPromptStateDict(source.checkpoint);
  Status fits = state.ok() ? model->LoadStateDict(*state) : state.status();
  if (!fits.ok()) {
    return InvalidArgument("teacher checkpoint " + source.checkpoint + " (" + source.origin +
                           ") does not fit the configured teacher (" + c.method + ", " + std::to_string(c.design.n_ctx) +
                           " tokens, depth " + std::to_string(c.method == "promptsrc" ? c.vision_depth : c.maple_depth) + ", backbone " + c.backbone +
                           "): " + fits.message());
  }
  return MakeKdTeacher(c.method, std::move(model), teacher_clip, class_names);
}

Result<std::unique_ptr<KdTeacher>> LoadKdTeacher(const TeacherSource& source,
                                                 const std::vector<std::string>& class_names, torch::Device device) {
  const MethodConfig& c = source.config;
  ATP_ASSIGN_OR_RETURN(std::string backbone, ResolveBackbonePath(c.backbone));
  ATP_ASSIGN_OR_RETURN(std::string vocab, clip::ResolveVocabPath(c.vocab));
  ATP_ASSIGN_OR_RETURN(auto tokenizer, clip::ClipTokenizer::Load(vocab));
  clip::Clip teacher_clip(nullptr);
  {
    std::lock_guard<std::mutex> lock(GlobalGeneratorMutex());
    ATP_ASSIGN_OR_RETURN(teacher_clip, clip::LoadClip(backbone));
  }
  // On the device before the model is built: its frozen token buffers come from the CLIP.
  teacher_clip->to(device);
  return BuildKdTeacher(source, teacher_clip, tokenizer, class_names);
}

MethodResult RunPromptkd(JobContext& context, MethodConfig config, clip::Clip student, torch::Device device,
                         Precision precision, int threads, train::GradientSync* sync) {
  const auto started = std::chrono::steady_clock::now();
  const JobSpec& spec = context.spec();
  data::TransductiveSplits splits =
      OrFail(data::MakeTransductiveSplits(OrFail(data::ReadDataset(config.data_root, config.dataset))));
  std::fprintf(stderr, "[atp] data: transductive: %zu unlabeled train images of %zu classes; %zu base and %zu novel test images\n",
               splits.unlabeled_train.size(), splits.class_names.size(), splits.base_test.size(),
               splits.novel_test.size());

  const TeacherSource source = OrFail(ResolveTeacherSource(config, context.upstream()));
  std::shared_ptr<KdTeacher> teacher = OrFail(LoadKdTeacher(source, splits.class_names, device));
  std::fprintf(stderr, "[atp] teacher: %s from %s (%s)\n", teacher->description().c_str(), source.checkpoint.c_str(),
               source.origin.c_str());

  std::unique_ptr<PromptkdModel> model;
  {
    std::lock_guard<std::mutex> lock(GlobalGeneratorMutex());
    torch::manual_seed(static_cast<uint64_t>(config.seed));
    model = OrFail(MakePromptkdModel(student, teacher, config.design.n_ctx, config.maple_depth, config.kd_weight,
                                     config.kd_temperature));
  }
  if (device.is_cuda()) {
    for (auto& [name, tensor] : model->StateDict()) tensor.set_data(tensor.to(device));
  }
  for (const auto& note : model->Notes()) std::fprintf(stderr, "[atp] model: %s\n", note.c_str());

  const int resolution = static_cast<int>(student->options.vision.input_resolution());
  ImageInputsOptions input_options;
  input_options.data_root = config.data_root;
  input_options.dataset = config.dataset;
  input_options.resolution = resolution;
  input_options.seed = static_cast<uint64_t>(config.seed);
  input_options.threads = threads;
  input_options.augment = config.augment;
  ImageInputs inputs(student, input_options, nullptr, sync);  // pixels only: no features to cache

  TrainerOptions options = TrainerOptionsFor(config, resolution, threads, device, precision);

  const int max_test = spec.params.value("max_test_images", 0);
  const std::vector<data::Datum> base_test = data::EveryNth(splits.base_test, max_test);
  const std::vector<data::Datum> novel_test = data::EveryNth(splits.novel_test, max_test);
  const std::vector<std::string> base_classes(splits.class_names.begin(), splits.class_names.begin() + splits.num_base);
  const std::vector<std::string> novel_classes(splits.class_names.begin() + splits.num_base, splits.class_names.end());

  TrainerHooks hooks;
  hooks.workdir = context.workdir();
  hooks.resume_checkpoint = context.resume_checkpoint();
  hooks.is_leader = context.is_leader();
  hooks.sync = sync;
  hooks.stop_requested = [&context] { return context.stop_requested(); };
  hooks.on_checkpoint = [&context](const std::string& path) { context.ReportCheckpoint(path); };
  hooks.on_eval_progress = [&context](int64_t done, int64_t total) { context.ReportProgress(done, total); };
  hooks.on_step = [&context](const TrainProgress& p) { context.ReportProgress(p.global_step, p.total_steps); };
  hooks.checkpoint_meta = Json{{"method", config.method}, {"job", spec.Key()}, {"config", config.ToJson()}};

  Trainer evaluator(model.get(), &inputs, options, hooks);
  auto evaluate = [&](const std::vector<data::Datum>& test, const std::vector<std::string>& classes) {
    model->SetClasses(classes, false);
    return evaluator.Evaluate(test);
  };

  // Dassl's best_val: the base-class test accuracy after each epoch; the best epoch's tensors
  // are kept (in memory on every rank, in best.pth for a resumed attempt).
  data::BestEpoch best;
  std::map<std::string, torch::Tensor> best_state;
  Json history = Json::array();
  const std::string best_path = context.workdir().empty() ? "" : context.workdir() + "/best.pth";
  auto snapshot = [&] {
    best_state.clear();
    for (auto& [name, tensor] : model->StateDict()) best_state[name] = tensor.detach().to(torch::kCPU).clone();
  };
  hooks.after_epoch = [&](int64_t epochs_done) -> Result<Json> {
    ATP_ASSIGN_OR_RETURN(double accuracy, evaluate(base_test, base_classes));
    history.push_back(accuracy);
    std::fprintf(stderr, "[atp] epoch %lld: base accuracy %.2f%%\n", static_cast<long long>(epochs_done), accuracy);
    if (best.Offer(epochs_done, accuracy)) {
      snapshot();
      if (context.is_leader() && !best_path.empty()) {
        train::TrainingCheckpoint checkpoint;
        checkpoint.state_dict = best_state;
        checkpoint.epoch = epochs_done;
        checkpoint.sgd.momentum = options.momentum;
        checkpoint.sgd.weight_decay = options.weight_decay;
        checkpoint.schedule.base_lr = options.lr;
        checkpoint.schedule.max_epoch = options.epochs;
        checkpoint.schedule.warmup_epochs = options.warmup_epochs;
        checkpoint.schedule.warmup_lr = options.warmup_lr;
        checkpoint.meta_json = Json{{"method", config.method}, {"job", spec.Key()}, {"config", config.ToJson()},
                                    {"selection", best.ToJson()}}.dump();
        ATP_RETURN_IF_ERROR(train::SaveTrainingCheckpoint(best_path, checkpoint));
      }
    }
    Json selection = best.ToJson();
    selection["history"] = history;
    return selection;
  };
  hooks.resume_selection = [&](const Json& selection) -> Status {
    ATP_ASSIGN_OR_RETURN(best, data::BestEpoch::FromJson(selection));
    history = selection.value("history", Json::array());
    if (best.epoch == 0) return Status::Ok();
    ATP_ASSIGN_OR_RETURN(train::TrainingCheckpoint kept, train::LoadTrainingCheckpoint(best_path));
    best_state = kept.state_dict;
    return Status::Ok();
  };

  MethodResult result;
  result.outputs["config"] = config.ToJson();
  result.outputs["teacher"] = Json{{"checkpoint", source.checkpoint}, {"origin", source.origin},
                                   {"method", source.config.method}, {"backbone", source.config.backbone},
                                   {"atprompt", source.config.atprompt}};
  Trainer trainer(model.get(), &inputs, options, hooks);
  TrainSummary summary = OrFail(trainer.Train(splits.unlabeled_train), FailureClass::kError);
  if (best.epoch == 0) throw JobFailure(FailureClass::kError, "no epoch was evaluated for model selection");
  // The selected epoch's tensors: novel accuracy is measured there (Dassl's after_train).
  {
    std::map<std::string, torch::Tensor> on_device;
    for (auto& [name, tensor] : best_state) on_device[name] = tensor.to(device);
    OrFail(model->LoadStateDict(on_device), FailureClass::kError);
  }
  const double novel = OrFail(evaluate(novel_test, novel_classes), FailureClass::kError);
  std::fprintf(stderr, "[atp] selected epoch %lld: base %.2f%%, novel %.2f%%\n", static_cast<long long>(best.epoch),
               best.accuracy, novel);

  result.metrics["base_accuracy"] = best.accuracy;
  result.metrics["new_accuracy"] = novel;
  result.metrics["selected_epoch"] = static_cast<double>(best.epoch);
  result.metrics["train_loss"] = summary.final_loss;
  if (summary.epochs_run > 0) result.metrics["first_epoch_loss"] = summary.first_loss;
  result.metrics["train_seconds"] = summary.seconds;
  result.metrics["train_steps"] = static_cast<double>(summary.steps);
  result.metrics["resumed_from_epoch"] = static_cast<double>(summary.resumed_from_epoch);
  result.outputs["base_accuracy_per_epoch"] = history;
  if (!best_path.empty() && context.is_leader()) result.outputs["checkpoint"] = best_path;
  result.metrics["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace atp::prompt
