#include "worker/prompt/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>

#include "worker/data/augment_random.h"
#include "worker/data/image.h"
#include "worker/data/loader.h"
#include "worker/data/transforms.h"
#include "worker/job_failure.h"
#include "worker/prompt/method_config.h"
#include "worker/train/gradient_sync.h"
#include "worker/train/lr_schedule.h"
#include "worker/train/training_checkpoint.h"

namespace atp::prompt {

TrainerOptions TrainerOptionsFor(const MethodConfig& config, int resolution, int threads, torch::Device device,
                                 Precision precision) {
  TrainerOptions options;
  options.epochs = config.epochs;
  options.batch_size = std::max(1, config.batch_size);
  options.lr = config.lr;
  options.warmup_epochs = config.warmup_epochs;
  options.warmup_lr = config.warmup_lr;
  options.momentum = config.momentum;
  options.weight_decay = config.weight_decay;
  options.seed = static_cast<uint64_t>(config.seed);
  options.max_steps_per_epoch = config.max_steps_per_epoch;
  options.augment = config.augment;
  options.test_batch_size = config.test_batch_size;
  options.data_root = config.data_root;
  options.resolution = resolution;
  options.threads = threads;
  options.device = device;
  options.precision = precision;
  return options;
}

namespace {

// Where a model's TrainingState() lives among a checkpoint's extra tensors.
constexpr char kModelStatePrefix[] = "model.";

// Rows [begin, end) of a batch of `size` that rank `rank` of `ranks` takes.
std::pair<int64_t, int64_t> ShardOf(int64_t size, int rank, int ranks) {
  return {size * rank / ranks, size * (rank + 1) / ranks};
}

torch::Tensor LabelsOf(const std::vector<data::Datum>& items) {
  std::vector<int64_t> labels;
  labels.reserve(items.size());
  for (const auto& d : items) labels.push_back(d.label);
  return torch::tensor(labels, torch::kLong);
}

}  // namespace

std::vector<int64_t> TrainingOrder(int64_t num_items, uint64_t seed, int64_t epoch) {
  // The same Fisher-Yates over the same stream as DataLoader::EpochOrder, so a pixel model
  // (through the loader) and a feature model see one order.
  std::vector<int64_t> order(static_cast<size_t>(num_items));
  std::iota(order.begin(), order.end(), 0);
  data::CounterRandom rng(seed, data::RandomDomain::kEpochPermutation, static_cast<uint64_t>(epoch), 0);
  for (int64_t i = num_items - 1; i > 0; --i) {
    std::swap(order[static_cast<size_t>(i)], order[rng.Below(static_cast<uint64_t>(i + 1))]);
  }
  return order;
}

Trainer::Trainer(PromptModel* model, ImageInputs* inputs, TrainerOptions options, TrainerHooks hooks)
    : model_(model), inputs_(inputs), options_(std::move(options)), hooks_(std::move(hooks)) {}

Result<torch::Tensor> Trainer::TrainInputs(const std::vector<data::Datum>& items, int64_t epoch,
                                           const std::vector<int64_t>& positions) {
  // Pixel models: decode and augment the shard's images with the (seed, epoch, item) stream.
  std::vector<torch::Tensor> images;
  for (int64_t index : positions) {
    const auto& item = items[static_cast<size_t>(index)];
    ATP_ASSIGN_OR_RETURN(data::Image image, data::DecodeImageFile(data::JoinRoot(options_.data_root, item.path)));
    images.push_back(options_.augment ? data::TrainAugment(image, options_.resolution, options_.seed, epoch, index)
                                      : data::ClipTestTransform(image, options_.resolution));
  }
  return torch::stack(images).to(options_.device);
}

Result<TrainSummary> Trainer::Train(const std::vector<data::Datum>& items) {
  const auto started = std::chrono::steady_clock::now();
  const int rank = hooks_.sync ? hooks_.sync->rank() : 0;
  const int ranks = hooks_.sync ? hooks_.sync->size() : 1;
  const int64_t num_items = static_cast<int64_t>(items.size());
  if (num_items == 0) return InvalidArgument("no training images");
  const int64_t batch = std::min<int64_t>(options_.batch_size, num_items);
  // Dassl drops the last partial batch whenever there is at least one full batch.
  int64_t steps = data::OfficialDropLast(num_items, options_.batch_size) ? num_items / options_.batch_size
                                                                          : (num_items + batch - 1) / batch;
  if (options_.max_steps_per_epoch > 0) steps = std::min<int64_t>(steps, options_.max_steps_per_epoch);
  const torch::Tensor labels = LabelsOf(items).to(options_.device);

  NamedTensors named = model_->TrainableParameters();
  std::vector<torch::Tensor> parameters;
  for (auto& [name, tensor] : named) {
    tensor.set_requires_grad(true);
    parameters.push_back(tensor);
  }
  torch::optim::SGD sgd(parameters, torch::optim::SGDOptions(options_.lr)
                                        .momentum(options_.momentum)
                                        .weight_decay(options_.weight_decay));

  TrainSummary summary;
  int64_t start_epoch = 0;
  if (!hooks_.resume_checkpoint.empty()) {
    // A checkpoint that cannot be read or does not fit this model is the attempt's problem,
    // not the user's: the next attempt starts afresh (UnusableCheckpoint).
    Result<train::TrainingCheckpoint> loaded = train::LoadTrainingCheckpoint(hooks_.resume_checkpoint);
    if (!loaded.ok()) throw UnusableCheckpoint(loaded.status().message());
    train::TrainingCheckpoint& checkpoint = *loaded;
    Status fits = model_->LoadStateDict(checkpoint.state_dict);
    if (!fits.ok()) throw UnusableCheckpoint(hooks_.resume_checkpoint + ": " + fits.message());
    for (size_t i = 0; i < named.size(); ++i) {
      auto it = checkpoint.momentum.find(named[i].first);
      if (it == checkpoint.momentum.end()) continue;  // no step taken yet for this tensor
      auto state = std::make_unique<torch::optim::SGDParamState>();
      state->momentum_buffer(it->second.clone());
      sgd.state()[c10::guts::to_string(parameters[i].unsafeGetTensorImpl())] = std::move(state);
    }
    std::map<std::string, torch::Tensor> model_state;
    for (const auto& [name, tensor] : checkpoint.rng_state) {
      if (name.rfind(kModelStatePrefix, 0) == 0) model_state[name.substr(std::strlen(kModelStatePrefix))] = tensor;
    }
    Status state_fits = model_->LoadTrainingState(model_state);
    if (!state_fits.ok()) throw UnusableCheckpoint(hooks_.resume_checkpoint + ": " + state_fits.message());
    start_epoch = checkpoint.epoch;
    summary.resumed_from_epoch = start_epoch;
    if (hooks_.resume_selection) {
      const Json meta = Json::parse(checkpoint.meta_json, nullptr, /*allow_exceptions=*/false);
      if (meta.is_object() && meta.contains("selection")) {
        Status restored = hooks_.resume_selection(meta["selection"]);
        if (!restored.ok()) throw UnusableCheckpoint(hooks_.resume_checkpoint + ": " + restored.message());
      }
    }
  }

  const int64_t total_steps = steps * options_.epochs;
  double epoch_loss = 0;
  for (int64_t epoch = start_epoch; epoch < options_.epochs; ++epoch) {
    const double lr = train::CosineWarmupLr(epoch, options_.epochs, options_.lr, options_.warmup_epochs,
                                            options_.warmup_lr);
    for (auto& group : sgd.param_groups()) static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);

    const std::vector<int64_t> order = TrainingOrder(num_items, options_.seed, epoch);
    torch::Tensor features;
    // Feature models train on them; pixel models that regularise against the frozen tower
    // (PromptSRC) read the same views' features beside the pixels.
    if (model_->TakesImageFeatures() || model_->UsesFrozenImageFeatures()) {
      ATP_ASSIGN_OR_RETURN(features, inputs_->TrainFeatures(items, epoch));
    }
    epoch_loss = 0;
    for (int64_t step = 0; step < steps; ++step) {
      if (hooks_.stop_requested && hooks_.stop_requested()) {
        throw JobFailure(FailureClass::kPreempted,
                         "stopped in epoch " + std::to_string(epoch + 1) + "; resumes from the checkpoint of epoch " +
                             std::to_string(epoch));
      }
      const int64_t begin = step * batch;
      const int64_t size = std::min<int64_t>(batch, num_items - begin);
      auto [shard_begin, shard_end] = ShardOf(size, rank, ranks);
      std::vector<int64_t> positions(order.begin() + begin + shard_begin, order.begin() + begin + shard_end);

      sgd.zero_grad();
      torch::Tensor loss_value = torch::zeros({1}, torch::kFloat64);
      if (!positions.empty()) {
        torch::Tensor index = torch::tensor(positions, torch::kLong).to(options_.device);
        torch::Tensor input;
        if (model_->TakesImageFeatures()) {
          input = features.index_select(0, index);
        } else {
          ATP_ASSIGN_OR_RETURN(input, TrainInputs(items, epoch, positions));
          if (model_->UsesFrozenImageFeatures()) model_->SetFrozenImageFeatures(features.index_select(0, index));
        }
        torch::Tensor loss;
        {
          PrecisionScope mixed(options_.precision, options_.device);
          loss = model_->TrainLoss(input, labels.index_select(0, index), size);
        }
        loss.backward();
        loss_value[0] = loss.item<double>();
      }
      // One collective per step: every gradient plus the loss.
      std::vector<torch::Tensor> reduce;
      for (auto& p : parameters) {
        if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
        reduce.push_back(p.grad());
      }
      reduce.push_back(loss_value);
      if (hooks_.sync && ranks > 1) ATP_RETURN_IF_ERROR(hooks_.sync->AllreduceSum(reduce));
      const double loss = reduce.back().item<double>();
      if (!std::isfinite(loss)) {
        throw JobFailure(FailureClass::kDiverged, "loss is " + std::string(std::isnan(loss) ? "NaN" : "infinite") +
                                                      " at epoch " + std::to_string(epoch + 1) + ", step " +
                                                      std::to_string(step + 1));
      }
      sgd.step();
      epoch_loss += loss;
      ++summary.steps;
      if (hooks_.on_step) {
        TrainProgress progress;
        progress.epoch = epoch;
        progress.epochs = options_.epochs;
        progress.step = step + 1;
        progress.steps = steps;
        progress.global_step = epoch * steps + step + 1;
        progress.total_steps = total_steps;
        progress.loss = loss;
        progress.lr = lr;
        hooks_.on_step(progress);
      }
    }
    model_->EndTrainingEpoch(epoch, options_.epochs);
    epoch_loss /= static_cast<double>(std::max<int64_t>(1, steps));
    if (summary.epochs_run == 0) summary.first_loss = epoch_loss;
    ++summary.epochs_run;
    ATP_RETURN_IF_ERROR(SyncRankLocalBuffers());
    Json selection;
    if (hooks_.after_epoch) {
      ATP_ASSIGN_OR_RETURN(selection, hooks_.after_epoch(epoch + 1));
    }

    if (hooks_.is_leader && !hooks_.workdir.empty()) {
      train::TrainingCheckpoint checkpoint;
      for (auto& [name, tensor] : model_->StateDict()) checkpoint.state_dict[name] = tensor.detach().clone();
      for (size_t i = 0; i < named.size(); ++i) {
        checkpoint.param_order.push_back(named[i].first);
        auto it = sgd.state().find(c10::guts::to_string(parameters[i].unsafeGetTensorImpl()));
        if (it == sgd.state().end()) continue;
        auto& state = static_cast<torch::optim::SGDParamState&>(*it->second);
        if (state.momentum_buffer().defined()) checkpoint.momentum[named[i].first] = state.momentum_buffer().clone();
      }
      for (auto& [name, tensor] : model_->TrainingState()) {
        checkpoint.rng_state[kModelStatePrefix + name] = tensor.detach().to(torch::kCPU).clone();
      }
      checkpoint.epoch = epoch + 1;
      checkpoint.sgd.momentum = options_.momentum;
      checkpoint.sgd.weight_decay = options_.weight_decay;
      checkpoint.schedule.base_lr = options_.lr;
      checkpoint.schedule.max_epoch = options_.epochs;
      checkpoint.schedule.warmup_epochs = options_.warmup_epochs;
      checkpoint.schedule.warmup_lr = options_.warmup_lr;
      Json meta = hooks_.checkpoint_meta;
      if (!selection.is_null()) meta["selection"] = selection;
      checkpoint.meta_json = meta.dump();
      const std::string path = hooks_.workdir + "/checkpoint.pth";
      ATP_RETURN_IF_ERROR(train::SaveTrainingCheckpoint(path, checkpoint));
      summary.checkpoint = path;
      if (hooks_.on_checkpoint) hooks_.on_checkpoint(path);
    }
  }
  for (auto& p : parameters) p.set_requires_grad(false);
  summary.final_loss = epoch_loss;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return summary;
}

Status Trainer::SyncRankLocalBuffers() {
  const int ranks = hooks_.sync ? hooks_.sync->size() : 1;
  NamedTensors buffers = model_->RankLocalBuffers();
  if (ranks <= 1 || buffers.empty()) return Status::Ok();
  // Rank 0's values everywhere: every other rank adds zeros to the sum.
  torch::NoGradGuard no_grad;
  const bool first = hooks_.sync->rank() == 0;
  std::vector<torch::Tensor> sums;
  for (auto& [name, tensor] : buffers) {
    torch::Tensor value = tensor.to(torch::kFloat64);
    sums.push_back(first ? value : torch::zeros_like(value));
  }
  ATP_RETURN_IF_ERROR(hooks_.sync->AllreduceSum(sums));
  for (size_t i = 0; i < buffers.size(); ++i) buffers[i].second.copy_(sums[i].to(buffers[i].second.dtype()));
  return Status::Ok();
}

Result<double> Trainer::Evaluate(const std::vector<data::Datum>& items) {
  const int rank = hooks_.sync ? hooks_.sync->rank() : 0;
  const int ranks = hooks_.sync ? hooks_.sync->size() : 1;
  const int64_t num_items = static_cast<int64_t>(items.size());
  if (num_items == 0) return InvalidArgument("no test images");
  auto [begin, end] = ShardOf(num_items, rank, ranks);
  const torch::Tensor labels = LabelsOf(items).to(options_.device);
  torch::NoGradGuard no_grad;
  PrecisionScope mixed(options_.precision, options_.device);
  int64_t correct = 0;
  model_->BeginEvaluation();
  const int64_t chunk = std::max(1, options_.test_batch_size);
  if (model_->TakesImageFeatures()) {
    ATP_ASSIGN_OR_RETURN(torch::Tensor features, inputs_->TestFeatures(items));
    for (int64_t i = begin; i < end; i += chunk) {
      const int64_t j = std::min(end, i + chunk);
      torch::Tensor predicted = model_->Logits(features.slice(0, i, j)).argmax(1);
      correct += predicted.eq(labels.slice(0, i, j)).sum().item<int64_t>();
      if (hooks_.on_eval_progress) hooks_.on_eval_progress(j - begin, end - begin);
    }
  } else {
    std::vector<data::Datum> mine(items.begin() + begin, items.begin() + end);
    if (!mine.empty()) {
      data::LoaderOptions loader_options;
      loader_options.resolution = options_.resolution;
      loader_options.batch_size = static_cast<int>(chunk);
      loader_options.threads = options_.threads;
      data::DataLoader loader(options_.data_root, mine, loader_options);
      loader.StartEpoch(0);
      data::Batch b;
      while (true) {
        ATP_ASSIGN_OR_RETURN(bool more, loader.Next(&b));
        if (!more) break;
        torch::Tensor predicted = model_->Logits(b.images.to(options_.device)).argmax(1);
        correct += predicted.eq(b.labels.to(options_.device)).sum().item<int64_t>();
        if (hooks_.on_eval_progress) {
          hooks_.on_eval_progress(std::min<int64_t>((b.index + 1) * chunk, end - begin), end - begin);
        }
      }
    }
  }
  model_->EndEvaluation();
  std::vector<torch::Tensor> counts = {torch::tensor({static_cast<double>(correct)}, torch::kFloat64)};
  if (hooks_.sync && ranks > 1) ATP_RETURN_IF_ERROR(hooks_.sync->AllreduceSum(counts));
  return 100.0 * counts[0].item<double>() / static_cast<double>(num_items);
}

}  // namespace atp::prompt
