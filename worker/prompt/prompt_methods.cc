#include "worker/prompt/prompt_methods.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "common/blas_runtime.h"
#include "common/heap_tuning.h"
#include "common/progress_bar.h"
#include "worker/clip/clip_checkpoint.h"
#include "worker/clip/cpu_threads.h"
#include "worker/clip/tokenizer.h"
#include "worker/data/dataset.h"
#include "worker/data/fewshot.h"
#include "worker/job_context.h"
#include "worker/job_failure.h"
#include "worker/method_registry.h"
#include "worker/prompt/attribute_search.h"
#include "worker/prompt/checkpoint_class_names.h"
#include "worker/prompt/cocoop_model.h"
#include "worker/prompt/coop_model.h"
#include "worker/prompt/dept_model.h"
#include "worker/prompt/global_generator.h"
#include "worker/prompt/image_inputs.h"
#include "worker/prompt/maple_model.h"
#include "worker/prompt/promptsrc_model.h"
#include "worker/prompt/method_config.h"
#include "worker/prompt/promptkd_method.h"
#include "worker/prompt/trainer.h"
#include "worker/prompt/zsclip_model.h"
#include "worker/train/feature_cache.h"
#include "worker/train/gradient_sync.h"
#include "worker/train/training_checkpoint.h"

namespace atp::prompt {
namespace {

// A job's datasets as read, by name: training and the base-class test read the same split
// file as the new-class test, and parsing it again (Fashion-MNIST's is 2.7 MB of JSON) took
// a tenth of a second of the demo's 1.9 s job.
using ReadDatasets = std::map<std::string, data::DatasetSplits>;

Result<data::ProtocolSplits> Splits(const MethodConfig& config, const std::string& dataset, data::ClassSubset subset,
                                    int shots, ReadDatasets* read) {
  auto found = read->find(dataset);
  if (found == read->end()) {
    ATP_ASSIGN_OR_RETURN(data::DatasetSplits splits, data::ReadDataset(config.data_root, dataset));
    found = read->emplace(dataset, std::move(splits)).first;
  }
  data::DatasetSplits full = found->second;
  data::ProtocolOptions options;
  options.shots = shots;
  options.seed = config.seed;
  options.subset = subset;
  return data::ApplyProtocol(std::move(full), options);
}

}  // namespace

Result<std::unique_ptr<PromptModel>> MakePromptModel(const MethodConfig& config, std::shared_ptr<clip::ClipImpl> clip,
                                                     std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                                                     const std::vector<std::string>& class_names) {
  clip::Clip model(clip);
  try {
    if (config.method == "coop") return std::unique_ptr<PromptModel>(new CoopModel(config, model, tokenizer, class_names));
    if (config.method == "cocoop") return std::unique_ptr<PromptModel>(new CocoopModel(config, model, tokenizer, class_names));
    if (config.method == "zsclip") return std::unique_ptr<PromptModel>(new ZsclipModel(config, model, tokenizer, class_names));
    if (config.method == "maple") return MakeMapleModel(config, model, tokenizer, class_names);
    if (config.method == "dept") return MakeDeptModel(config, model, tokenizer, class_names);
    if (config.method == "promptsrc") return MakePromptSrcModel(config, model, tokenizer, class_names);
  } catch (const std::invalid_argument& e) {
    return InvalidArgument(std::string(config.method) + ": " + e.what());
  }
  return InvalidArgument("no prompt model for method '" + config.method + "'");
}

MethodResult RunPromptMethod(JobContext& context) {
  const auto started = std::chrono::steady_clock::now();
  const JobSpec& spec = context.spec();
  MethodConfig config = OrFail(ResolveMethodConfig(spec.method, spec.params, context.upstream()));
  // The job's explicit setting, else this node's cores shared by its worker ranks (narrowed
  // below for a narrow CLIP once it is loaded).
  const int share = ResolveCpuThreads(config.threads);
  int threads = share;
  SetCpuThreads(threads);
  torch::manual_seed(static_cast<uint64_t>(config.seed));

  auto vocab_path = OrFail(clip::ResolveVocabPath(config.vocab));
  auto tokenizer = OrFail(clip::ClipTokenizer::Load(vocab_path));
  const std::string backbone_path = OrFail(ResolveBackbonePath(config.backbone));
  clip::Clip clip = [&] {
    // Building the model draws its (then overwritten) initial weights from the global generator.
    std::lock_guard<std::mutex> lock(GlobalGeneratorMutex());
    return OrFail(clip::LoadClip(backbone_path));
  }();
  const std::string device_name = spec.params.value("device", "auto");
  torch::Device device = torch::kCPU;
  if (device_name == "cuda" || (device_name == "auto" && torch::cuda::is_available())) {
    if (!torch::cuda::is_available()) throw JobFailure(FailureClass::kUserError, "device = \"cuda\" but no CUDA device");
    // One GPU per worker rank: the worker says which (the ranks of a multi-rank job share a
    // node and get distinct slots); CUDA_VISIBLE_DEVICES narrows the choice.
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(
                                             context.device_slot() % static_cast<int>(torch::cuda::device_count())));
    clip->to(device);
  }
  if (config.threads <= 0 && device.is_cpu()) {
    threads = ComputeThreadsForWidth(
        std::max(clip->options.vision.width(), clip->options.text.width()), threads);
    SetCpuThreads(threads);
  }
  const int resolution = static_cast<int>(clip->options.vision.input_resolution());
  const Precision precision =
      OrFail(ResolvePrecision(config.precision, config.design.compat, device), FailureClass::kUserError);
  config.precision = PrecisionName(precision);  // the job's outputs record what ran

  std::unique_ptr<train::FeatureCache> cache;
  std::string backbone_digest = backbone_path;
  if (config.use_feature_cache) {
    std::string dir = config.feature_cache_dir.empty() ? train::DefaultFeatureCacheDir() : config.feature_cache_dir;
    cache = std::make_unique<train::FeatureCache>(dir, static_cast<int64_t>(config.feature_cache_gb * (1LL << 30)));
    backbone_digest = OrFail(train::FileDigest(backbone_path, dir), FailureClass::kError);
  }
  train::GradientSyncOptions sync_options;
  sync_options.rank = context.group_rank();
  sync_options.size = context.group_size();
  sync_options.allreduce_doubles = [&context](std::vector<double>* data) { return context.AllreduceSum(data); };
  sync_options.cuda_tensors = device.is_cuda();
  std::unique_ptr<train::GradientSync> sync = OrFail(train::MakeGradientSync(sync_options), FailureClass::kError);

  std::fprintf(stderr, "[atp] %s on %s (%s), seed %lld, %d threads, backbone %s (%s), gradient sync %s, BLAS %s\n",
               config.method.c_str(), config.dataset.c_str(), config.protocol.c_str(),
               static_cast<long long>(config.seed), threads, backbone_path.c_str(), clip->options.ToString().c_str(),
               sync->name().c_str(), CurrentBlasRuntime().Summary().c_str());

  if (config.method == "promptkd") {
    return RunPromptkd(context, std::move(config), clip, device, precision, threads, sync.get());
  }

  // What is trained on and what is evaluated (docs/reference.md §6.5).
  const bool cross = config.protocol != "base2novel";
  const std::string train_dataset = cross ? config.source_dataset : config.dataset;
  const data::ClassSubset train_subset = cross ? data::ClassSubset::kAll : data::ClassSubset::kBase;
  ReadDatasets read_datasets;
  data::ProtocolSplits train_splits = OrFail(Splits(config, train_dataset, train_subset, config.shots, &read_datasets));
  for (const auto& note : train_splits.notes) std::fprintf(stderr, "[atp] data: %s\n", note.c_str());
  const std::vector<std::string> train_classes = data::ClassNamesByLabel(train_splits.splits.train);

  // Evaluation of a checkpoint: the class-name form its trainer used ('_' kept or not), read
  // from its token buffers, holds for every class evaluated (base and new alike).
  std::string eval_checkpoint;
  ClassNameForm class_name_form;
  if (config.eval_only) {
    eval_checkpoint = config.checkpoint;
    for (const auto& up : context.upstream()) {
      if (eval_checkpoint.empty() && up.contains("outputs")) eval_checkpoint = up["outputs"].value("checkpoint", "");
    }
    if (eval_checkpoint.empty()) {
      throw JobFailure(FailureClass::kUserError,
                       "eval_only needs a trained prompt: set `checkpoint` or depend on a training job");
    }
    const train::PromptTokenBuffers buffers = OrFail(train::ReadPromptTokenBuffers(eval_checkpoint));
    class_name_form = OrFail(DecideClassNameForm(buffers, config.design, train_classes, *tokenizer,
                                                 clip->token_embedding->weight, config.checkpoint_class_names));
    config.design.keep_underscores = class_name_form.keep_underscores;
    std::fprintf(stderr, "[atp] %s\n", class_name_form.note.c_str());
  }

  ImageInputsOptions input_options;
  input_options.data_root = config.data_root;
  input_options.dataset = train_dataset;
  input_options.resolution = resolution;
  input_options.seed = static_cast<uint64_t>(config.seed);
  input_options.threads = share;  // image decoding keeps every core of the share
  input_options.backbone_digest = backbone_digest;
  input_options.augment = config.augment;
  ImageInputs inputs(clip, input_options, cache.get(), sync.get());
  std::unique_ptr<ProgressBar> phase_bar;
  int64_t phase_done = 0;
  auto report_progress = [&](int64_t done, int64_t total) {
    context.ReportProgress(done, total);
    if (!phase_bar || done < phase_done) {
      ProgressBarOptions o;
      o.label = "[atp] images";
      o.unit = "images";
      o.total = total;
      o.terminal = IsTerminal(stderr);
      o.transient = true;
      if (phase_bar) phase_bar->Finish();
      phase_bar = std::make_unique<ProgressBar>(o, stderr);
    }
    phase_done = done;
    phase_bar->Update(done);
    if (done >= total) {
      phase_bar->Finish();
      phase_bar.reset();
    }
  };
  inputs.on_progress = report_progress;

  TrainerHooks hooks;
  hooks.workdir = context.workdir();
  hooks.resume_checkpoint = context.resume_checkpoint();
  hooks.is_leader = context.is_leader();
  hooks.sync = sync.get();
  hooks.stop_requested = [&context] { return context.stop_requested(); };
  hooks.on_checkpoint = [&context](const std::string& path) { context.ReportCheckpoint(path); };
  hooks.on_eval_progress = report_progress;
  hooks.checkpoint_meta = Json{{"method", config.method}, {"job", spec.Key()}, {"config", config.ToJson()}};
  // Training steps as one bar; every feature extraction and evaluation pass as a transient
  // bar of its own (a new one whenever the count starts over). On stderr: the terminal for
  // `atp train`, the job's log under atp-sweep (plain lines every 10 s there).
  ProgressBarOptions train_bar_options;
  train_bar_options.label = "[atp] train";
  train_bar_options.unit = "steps";
  train_bar_options.terminal = IsTerminal(stderr);
  ProgressBar train_bar(train_bar_options, stderr);
  int64_t steps_before = -1;  // steps done by an earlier attempt (resume): not this run's work
  hooks.on_step = [&](const TrainProgress& p) {
    context.ReportProgress(p.global_step, p.total_steps);
    if (steps_before < 0) steps_before = p.global_step - 1;
    train_bar.SetTotal(p.total_steps - steps_before);
    char detail[160];
    std::snprintf(detail, sizeof detail, "epoch %lld/%lld step %lld/%lld loss %.4f lr %.3g",
                  static_cast<long long>(p.epoch + 1), static_cast<long long>(p.epochs),
                  static_cast<long long>(p.step), static_cast<long long>(p.steps), p.loss, p.lr);
    train_bar.Update(p.global_step - steps_before, detail);
    if (p.global_step == p.total_steps) train_bar.Finish();
  };
  MethodResult result;
  result.outputs["config"] = config.ToJson();
  // Where the job's time went: its thread count (libtorch's own pool may be smaller, see
  // OpenMpLoadedSpinning), the BLAS kernel it ran on and how the heap served its tensors.
  result.outputs["compute"] = Json{{"threads", threads},
                                   {"libtorch_threads", CpuThreads()},
                                   {"blas", CurrentBlasRuntime().ToJson()},
                                   {"heap", HeapTuning()}};

  if (config.method == "attribute_search") {
    SearchResult search = OrFail(RunAttributeSearch(config, clip, tokenizer, train_classes, train_splits.splits.train,
                                                    train_splits.splits.val, &inputs, hooks));
    Json weights = Json::object();
    for (const auto& [words, weight] : search.weights) {
      std::string name;
      for (const auto& w : words) name += (name.empty() ? "" : ", ") + w;
      weights[name] = weight;
    }
    result.outputs["attributes"] = search.attributes;
    result.outputs["weights"] = weights;
    double best = 0;
    for (const auto& [words, weight] : search.weights) best = std::max(best, weight);
    result.metrics["best_weight"] = best;
    result.metrics["final_loss"] = search.final_loss;
    result.metrics["epochs"] = static_cast<double>(search.epochs_run);
    std::string chosen;
    for (const auto& w : search.attributes) chosen += (chosen.empty() ? "" : ", ") + w;
    std::fprintf(stderr, "[atp] searched attributes: %s (weight %.3f)\n", chosen.c_str(), best);
    return result;
  }

  std::unique_ptr<PromptModel> model;
  {
    // The initial prompts come from the global torch generator, seeded here.
    std::lock_guard<std::mutex> lock(GlobalGeneratorMutex());
    torch::manual_seed(static_cast<uint64_t>(config.seed));
    model = OrFail(MakePromptModel(config, clip.ptr(), tokenizer, train_classes));
  }
  for (const auto& note : model->Notes()) std::fprintf(stderr, "[atp] model: %s\n", note.c_str());

  const TrainerOptions trainer_options = TrainerOptionsFor(config, resolution, share, device, precision);
  Trainer trainer(model.get(), &inputs, trainer_options, hooks);

  if (config.eval_only) {
    auto state = OrFail(train::ImportPromptStateDict(eval_checkpoint));
    OrFail(model->LoadStateDict(state));
    result.outputs["checkpoint"] = eval_checkpoint;
    result.outputs["class_names"] = Json{{"underscores", class_name_form.keep_underscores},
                                         {"decided_by", class_name_form.decided_by},
                                         {"note", class_name_form.note}};
    std::fprintf(stderr, "[atp] evaluating %s\n", eval_checkpoint.c_str());
  } else if (config.method != "zsclip" && config.epochs > 0) {
    TrainSummary summary = OrFail(trainer.Train(train_splits.splits.train), FailureClass::kError);
    result.metrics["train_loss"] = summary.final_loss;
    if (summary.epochs_run > 0) result.metrics["first_epoch_loss"] = summary.first_loss;
    result.metrics["train_seconds"] = summary.seconds;
    result.metrics["train_steps"] = static_cast<double>(summary.steps);
    result.metrics["resumed_from_epoch"] = static_cast<double>(summary.resumed_from_epoch);
    if (!summary.checkpoint.empty()) result.outputs["checkpoint"] = summary.checkpoint;
  }

  auto evaluate = [&](const std::string& dataset, data::ClassSubset subset, bool training_classes) -> double {
    // No few-shot draw: evaluation reads the whole test split of the classes.
    data::ProtocolSplits splits = OrFail(Splits(config, dataset, subset, /*shots=*/0, &read_datasets));
    std::vector<data::Datum> test = data::EveryNth(splits.splits.test, spec.params.value("max_test_images", 0));
    model->SetClasses(data::ClassNamesByLabel(splits.splits.test), training_classes);
    if (auto* zs = dynamic_cast<ZsclipModel*>(model.get())) {
      OrFail(zs->SetDataset(dataset));
      model->SetClasses(data::ClassNamesByLabel(splits.splits.test), training_classes);
    }
    ImageInputsOptions eval_options = input_options;
    eval_options.dataset = dataset;
    ImageInputs eval_inputs(clip, eval_options, cache.get(), sync.get());
    eval_inputs.on_progress = report_progress;
    Trainer evaluator(model.get(), &eval_inputs, trainer_options, hooks);
    double accuracy = OrFail(evaluator.Evaluate(test), FailureClass::kError);
    std::fprintf(stderr, "[atp] %s %s: accuracy %.2f%% on %zu images\n", dataset.c_str(),
                 data::ClassSubsetName(subset), accuracy, test.size());
    return accuracy;
  };

  if (!cross) {
    result.metrics["base_accuracy"] = evaluate(config.dataset, data::ClassSubset::kBase, true);
    result.metrics["new_accuracy"] = evaluate(config.dataset, data::ClassSubset::kNew, false);
  } else {
    // DePT fuses its head on the source's classes and, as the official code, on the ImageNet
    // variants (domain generalisation), whose classes are ImageNet's or a subset of them.
    const bool training_classes =
        config.dataset == config.source_dataset || config.protocol == "domain_generalization";
    result.metrics["accuracy"] = evaluate(config.dataset, data::ClassSubset::kAll, training_classes);
  }
  result.metrics["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (cache) {
    auto stats = cache->stats();
    result.metrics["feature_cache_hits"] = static_cast<double>(stats.hits);
    result.metrics["feature_cache_misses"] = static_cast<double>(stats.misses);
  }
  return result;
}

void RegisterPromptMethods() {
  static const bool registered = [] {
    for (const char* name : {"zsclip", "coop", "cocoop", "maple", "dept", "promptsrc", "attribute_search", "promptkd"}) {
      RegisterMethod(name, RunPromptMethod);
    }
    return true;
  }();
  (void)registered;
}

}  // namespace atp::prompt
