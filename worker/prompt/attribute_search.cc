#include "worker/prompt/attribute_search.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>

#include "worker/clip/tokenizer.h"
#include "worker/data/loader.h"
#include "worker/data/python_random.h"
#include "worker/job_failure.h"
#include "worker/prompt/global_generator.h"
#include "worker/prompt/prompt_learner.h"
#include "worker/prompt/prompt_model.h"
#include "worker/train/gradient_sync.h"
#include "worker/train/lr_schedule.h"
#include "worker/train/training_checkpoint.h"

namespace atp::prompt {

namespace {

// The official α optimiser (attributecompute.py): Adam(betas (0.5, 0.999), eps 1e-8, no decay).
constexpr double kAdamBeta1 = 0.5;
constexpr double kAdamBeta2 = 0.999;
constexpr double kAdamEps = 1e-8;

// Checkpoint keys. The prompts use the official module's names (ParameterLists ctx_list and
// att_ctx_list), so a checkpoint reads like the released trainer's state dict; α, which the
// official code never saves, and its Adam state live next to them.
constexpr const char* kAlphaKey = "att_weight";
constexpr const char* kAdamExpAvgKey = "att_weight_adam.exp_avg";
constexpr const char* kAdamExpAvgSqKey = "att_weight_adam.exp_avg_sq";
constexpr const char* kAdamStepKey = "att_weight_adam.step";
constexpr const char* kMethodName = "attribute_search";
// Where a checkpoint written mid-epoch (preemption) continues in that epoch's batch order.
constexpr const char* kNextStepKey = "train_order.next_step";

std::string CtxKey(size_t k) { return "ctx_list." + std::to_string(k); }
std::string AttKey(size_t k, size_t j) { return "att_ctx_list." + std::to_string(k) + "." + std::to_string(j); }

// Appends every r-subset of indices [0, n) to `out` in itertools.combinations order.
void Combinations(int n, int r, std::vector<std::vector<int>>* out) {
  std::vector<int> index(static_cast<size_t>(r));
  for (int i = 0; i < r; ++i) index[static_cast<size_t>(i)] = i;
  while (true) {
    out->push_back(index);
    int i = r - 1;
    while (i >= 0 && index[static_cast<size_t>(i)] == i + n - r) --i;
    if (i < 0) return;
    ++index[static_cast<size_t>(i)];
    for (int j = i + 1; j < r; ++j) index[static_cast<size_t>(j)] = index[static_cast<size_t>(j - 1)] + 1;
  }
}

std::string Describe(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

Status Validate(const MethodConfig& config, const std::vector<std::string>& class_names,
                const std::vector<data::Datum>& train, const std::vector<data::Datum>& val) {
  if (config.bases.empty()) return InvalidArgument("attribute_search: no attribute bases given (parameter 'bases')");
  std::set<std::string> seen;
  for (const auto& base : config.bases) {
    if (base.empty() || base.find_first_not_of(' ') == std::string::npos) {
      return InvalidArgument("attribute_search: an attribute base is empty (parameter 'bases')");
    }
    if (!seen.insert(base).second) {
      return InvalidArgument("attribute_search: attribute base '" + base + "' is listed twice (parameter 'bases')");
    }
  }
  if (config.epochs < 1) return InvalidArgument("attribute_search: epochs is " + std::to_string(config.epochs) + "; it must be at least 1");
  if (config.batch_size < 1) {
    return InvalidArgument("attribute_search: batch_size is " + std::to_string(config.batch_size) + "; it must be at least 1");
  }
  if (config.design.compat == Compat::kOfficial && config.test_batch_size < 1) {
    return InvalidArgument("attribute_search: test_batch_size is " + std::to_string(config.test_batch_size) +
                           "; the official α batch needs at least 1");
  }
  if (!(config.alpha_lr >= 0) || !std::isfinite(config.alpha_lr)) {
    return InvalidArgument("attribute_search: alpha_lr is " + Describe(config.alpha_lr) + "; it must be finite and >= 0");
  }
  if (class_names.empty()) return InvalidArgument("attribute_search: no classes to search on");
  if (train.empty()) return InvalidArgument("attribute_search: the training split is empty");
  if (val.empty()) {
    return InvalidArgument("attribute_search: the validation split is empty; the α step needs validation images");
  }
  const int classes = static_cast<int>(class_names.size());
  for (const auto* items : {&train, &val}) {
    for (const auto& item : *items) {
      if (item.label < 0 || item.label >= classes) {
        return InvalidArgument("attribute_search: item '" + item.path + "' has label " + std::to_string(item.label) +
                               ", outside the " + std::to_string(classes) + " classes searched on");
      }
    }
  }
  return Status::Ok();
}

torch::Tensor Labels(const std::vector<data::Datum>& items) {
  std::vector<int64_t> labels;
  labels.reserve(items.size());
  for (const auto& item : items) labels.push_back(item.label);
  return torch::tensor(labels, torch::kLong);
}

// This rank's part [begin, end) of a batch of `batch` rows split over `ranks` ranks.
std::pair<int64_t, int64_t> RankSlice(int64_t batch, int rank, int ranks) {
  return {batch * rank / ranks, batch * (rank + 1) / ranks};
}

// PyTorch's SGD step (momentum, dampening 0, L2 weight decay, no Nesterov): the buffer starts
// as the first decayed gradient.
void SgdStep(torch::Tensor& param, const torch::Tensor& grad, torch::Tensor& buffer, double lr, double momentum,
             double weight_decay) {
  torch::Tensor d = weight_decay != 0 ? grad.add(param, weight_decay) : grad;
  if (momentum != 0) {
    if (!buffer.defined()) {
      buffer = d.clone().detach();
    } else {
      buffer.mul_(momentum).add_(d);
    }
    d = buffer;
  }
  param.add_(d, -lr);
}

// PyTorch's Adam step (no AMSGrad, no weight decay), in its order of operations.
void AdamStep(torch::Tensor& param, const torch::Tensor& grad, torch::Tensor& exp_avg, torch::Tensor& exp_avg_sq,
              int64_t step, double lr) {
  exp_avg.mul_(kAdamBeta1).add_(grad, 1 - kAdamBeta1);
  exp_avg_sq.mul_(kAdamBeta2).addcmul_(grad, grad, 1 - kAdamBeta2);
  const double bias_correction1 = 1 - std::pow(kAdamBeta1, static_cast<double>(step));
  const double bias_correction2 = 1 - std::pow(kAdamBeta2, static_cast<double>(step));
  torch::Tensor denom = (exp_avg_sq.sqrt() / std::sqrt(bias_correction2)).add_(kAdamEps);
  param.addcdiv_(exp_avg, denom, -lr / bias_correction1);
}

class AttributeSearch {
 public:
  AttributeSearch(const MethodConfig& config, clip::Clip clip, std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                  const std::vector<std::string>& class_names, const std::vector<data::Datum>& train,
                  const std::vector<data::Datum>& val, ImageInputs* inputs, const TrainerHooks& hooks)
      : config_(config),
        clip_(std::move(clip)),
        tokenizer_(std::move(tokenizer)),
        class_names_(class_names),
        train_(train),
        val_(val),
        inputs_(inputs),
        hooks_(hooks) {}

  Result<SearchResult> Run() {
    ATP_RETURN_IF_ERROR(Validate(config_, class_names_, train_, val_));
    pool_ = CandidatePool(config_.bases, config_.design.compat, config_.max_group_size, config_.seed);
    if (pool_.empty()) {
      return InvalidArgument("attribute_search: max_group_size " + std::to_string(config_.max_group_size) +
                             " leaves no candidate: compat \"official\" searches only groups of 3 or more bases; "
                             "raise max_group_size or use compat \"paper\"");
    }
    ATP_RETURN_IF_ERROR(Build());
    ATP_RETURN_IF_ERROR(PrepareData());
    if (!hooks_.resume_checkpoint.empty()) ATP_RETURN_IF_ERROR(Resume(hooks_.resume_checkpoint));
    ATP_RETURN_IF_ERROR(Train());
    return Summarise();
  }

 private:
  // α first, then each group's ctx and attribute tensors in pool order: the official draws.
  Status Build() {
    device_ = clip_->text_projection.device();
    std::lock_guard<std::mutex> lock(GlobalGeneratorMutex());
    torch::manual_seed(static_cast<uint64_t>(config_.seed));
    alpha_ = torch::rand({static_cast<int64_t>(pool_.size())}, torch::kFloat32);
    for (const auto& group : pool_) {
      PromptLearnerOptions options;
      // The official search always puts the class last and starts from random context.
      options.design.n_ctx = config_.design.n_ctx;
      options.design.attributes = group;
      options.design.compat = config_.design.compat;
      options.attribute_tensors = static_cast<int>(group.size());
      try {
        learners_.emplace_back(options, clip_, tokenizer_, class_names_);
      } catch (const std::exception& e) {
        return InvalidArgument("attribute_search: group " + GroupName(group) + ": " + e.what());
      }
      for (const auto& note : learners_.back()->layout().notes) notes_.push_back(GroupName(group) + ": " + note);
    }
    alpha_ = alpha_.to(device_).set_requires_grad(true);
    adam_exp_avg_ = torch::zeros_like(alpha_).detach();
    adam_exp_avg_sq_ = torch::zeros_like(alpha_).detach();
    for (size_t k = 0; k < learners_.size(); ++k) {
      params_.push_back({CtxKey(k), learners_[k]->ctx});
      for (size_t j = 0; j < pool_[k].size(); ++j) params_.push_back({AttKey(k, j), learners_[k]->ctx_att[j]});
    }
    return Status::Ok();
  }

  Status PrepareData() {
    sync_ = hooks_.sync;
    rank_ = sync_ ? sync_->rank() : 0;
    ranks_ = sync_ ? sync_->size() : 1;
    const int64_t n = static_cast<int64_t>(train_.size());
    const int64_t batch = config_.batch_size;
    // Dassl's train loader drops the last partial batch when there is at least one full one.
    steps_ = data::OfficialDropLast(n, config_.batch_size) ? n / batch : 1;
    if (config_.max_steps_per_epoch > 0) steps_ = std::min<int64_t>(steps_, config_.max_steps_per_epoch);
    train_labels_ = Labels(train_);

    // Only the validation images the α steps will see are embedded.
    std::vector<data::Datum> used_val = val_;
    if (config_.design.compat == Compat::kOfficial) {
      used_val.resize(std::min(val_.size(), static_cast<size_t>(config_.test_batch_size)));
      notes_.push_back("α batch: the first " + std::to_string(used_val.size()) +
                       " validation images at every step (official)");
    } else {
      notes_.push_back("α batches: the " + std::to_string(val_.size()) + " validation images in order, " +
                       std::to_string(std::min<int64_t>(batch, static_cast<int64_t>(val_.size()))) +
                       " per step, wrapping around (paper)");
    }
    ATP_ASSIGN_OR_RETURN(val_features_, inputs_->TestFeatures(used_val));
    val_features_ = val_features_.to(device_, torch::kFloat32);
    val_labels_ = Labels(used_val).to(device_);
    return Status::Ok();
  }

  // The α batch of global step g, as rows of val_features_.
  std::vector<int64_t> ValBatch(int64_t global_step) const {
    const int64_t m = val_features_.size(0);
    std::vector<int64_t> rows;
    if (config_.design.compat == Compat::kOfficial) {
      for (int64_t i = 0; i < m; ++i) rows.push_back(i);
      return rows;
    }
    const int64_t batch = std::min<int64_t>(config_.batch_size, m);
    const int64_t start = (global_step * batch) % m;
    for (int64_t i = 0; i < batch; ++i) rows.push_back((start + i) % m);
    return rows;
  }

  // Text features [K, C, E] of every group's prompts in ONE pass through the text tower: the
  // tower stops at the longest prompt's end-of-text token, so shorter groups only cost padding.
  torch::Tensor EncodeAll() {
    std::vector<torch::Tensor> embeddings;
    std::vector<torch::Tensor> eots;
    int64_t length = 0;
    for (auto& learner : learners_) {
      embeddings.push_back(learner->Embeddings());
      eots.push_back(learner->eot().to(device_));
      length = std::max(length, embeddings.back().size(1));
    }
    for (auto& e : embeddings) {
      if (e.size(1) < length) e = torch::constant_pad_nd(e, {0, 0, 0, length - e.size(1)});
    }
    torch::Tensor features = clip_->EncodeTextEmbeddings(torch::cat(embeddings, 0), torch::cat(eots, 0));
    return features.view({static_cast<int64_t>(learners_.size()), static_cast<int64_t>(class_names_.size()), -1});
  }

  Status Sum(std::vector<torch::Tensor>& tensors) {
    if (!sync_ || ranks_ == 1) return Status::Ok();
    return sync_->AllreduceSum(tensors);
  }

  [[noreturn]] void Diverged(const char* which, int64_t epoch, int64_t step, double loss) {
    throw JobFailure(FailureClass::kDiverged,
                     std::string("attribute search diverged: ") + which + " loss is " + Describe(loss) + " at epoch " +
                         std::to_string(epoch + 1) + "/" + std::to_string(config_.epochs) + ", step " +
                         std::to_string(step + 1) + "/" + std::to_string(steps_) +
                         "; lower lr / alpha_lr or check the features");
  }

  Status Train() {
    for (int64_t epoch = start_epoch_; epoch < config_.epochs; ++epoch) {
      const double lr = train::CosineWarmupLr(epoch, config_.epochs, config_.lr, config_.warmup_epochs, config_.warmup_lr);
      ATP_ASSIGN_OR_RETURN(torch::Tensor features, inputs_->TrainFeatures(train_, epoch));
      features = features.to(device_, torch::kFloat32);
      const std::vector<int64_t> order = TrainingOrder(static_cast<int64_t>(train_.size()), config_.seed, epoch);
      const int64_t first_step = epoch == start_epoch_ ? start_step_ : 0;
      if (first_step == 0) epoch_loss_sum_ = 0;
      for (int64_t step = first_step; step < steps_; ++step) {
        if (hooks_.stop_requested && hooks_.stop_requested()) {
          ATP_RETURN_IF_ERROR(WriteCheckpoint(epoch, step));
          throw JobFailure(FailureClass::kPreempted, "attribute search preempted at epoch " + std::to_string(epoch + 1) +
                                                         ", step " + std::to_string(step + 1) +
                                                         "; its checkpoint resumes it");
        }
        ATP_RETURN_IF_ERROR(Step(epoch, step, lr, order, features));
      }
      epochs_run_++;
      final_loss_ = epoch_loss_sum_ / static_cast<double>(steps_);
      ATP_RETURN_IF_ERROR(WriteCheckpoint(epoch + 1, 0));
    }
    return Status::Ok();
  }

  Status Step(int64_t epoch, int64_t step, double lr, const std::vector<int64_t>& order,
              const torch::Tensor& features) {
    const int64_t global_step = epoch * steps_ + step;
    const int64_t batch = std::min<int64_t>(config_.batch_size, static_cast<int64_t>(order.size()));
    const auto [begin, end] = RankSlice(batch, rank_, ranks_);
    std::vector<int64_t> rows(order.begin() + step * batch + begin, order.begin() + step * batch + end);
    torch::Tensor index = torch::tensor(rows, torch::kLong);
    torch::Tensor x = features.index_select(0, index.to(device_));
    torch::Tensor y = train_labels_.index_select(0, index).to(device_);

    // (1) Prompt step on the training batch. α's gradient from this pass is discarded by the
    // official code, so α enters as a constant here.
    for (auto& [name, p] : params_) p.mutable_grad() = torch::Tensor();
    torch::Tensor logits = MixtureLogits(x, EncodeAll(), torch::softmax(alpha_.detach(), 0), clip_->logit_scale);
    torch::Tensor loss = ShardCrossEntropy(logits, y, batch);
    loss.backward();
    std::vector<torch::Tensor> reduce;
    for (auto& [name, p] : params_) reduce.push_back(p.grad().defined() ? p.grad() : torch::zeros_like(p));
    torch::Tensor stats = torch::stack({loss.detach().to(torch::kFloat64),
                                        logits.detach().argmax(1).eq(y).sum().to(torch::kFloat64)});
    reduce.push_back(stats);
    ATP_RETURN_IF_ERROR(Sum(reduce));
    stats = reduce.back().cpu();
    const double train_loss = stats[0].item<double>();
    if (!std::isfinite(train_loss)) Diverged("the prompt-step", epoch, step, train_loss);
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < params_.size(); ++i) {
        SgdStep(params_[i].second, reduce[i], momentum_[params_[i].first], lr, config_.momentum, config_.weight_decay);
      }
    }
    for (auto& [name, p] : params_) p.mutable_grad() = torch::Tensor();

    // (2) α step on a validation batch with the updated prompts; only α needs a gradient, so
    // the text tower runs without autograd.
    torch::Tensor texts;
    {
      torch::NoGradGuard no_grad;
      texts = EncodeAll();
    }
    const std::vector<int64_t> val_rows = ValBatch(global_step);
    const int64_t val_batch = static_cast<int64_t>(val_rows.size());
    const auto [val_begin, val_end] = RankSlice(val_batch, rank_, ranks_);
    torch::Tensor val_index =
        torch::tensor(std::vector<int64_t>(val_rows.begin() + val_begin, val_rows.begin() + val_end), torch::kLong)
            .to(device_);
    alpha_.mutable_grad() = torch::Tensor();
    torch::Tensor val_logits = MixtureLogits(val_features_.index_select(0, val_index), texts,
                                             torch::softmax(alpha_, 0), clip_->logit_scale);
    torch::Tensor val_loss = ShardCrossEntropy(val_logits, val_labels_.index_select(0, val_index), val_batch);
    val_loss.backward();
    std::vector<torch::Tensor> alpha_reduce = {
        alpha_.grad().defined() ? alpha_.grad() : torch::zeros_like(alpha_),
        val_loss.detach().to(torch::kFloat64).reshape({1})};
    ATP_RETURN_IF_ERROR(Sum(alpha_reduce));
    const double alpha_loss = alpha_reduce[1].cpu().item<double>();
    if (!std::isfinite(alpha_loss)) Diverged("the α-step (validation)", epoch, step, alpha_loss);
    {
      torch::NoGradGuard no_grad;
      ++adam_step_;
      AdamStep(alpha_, alpha_reduce[0], adam_exp_avg_, adam_exp_avg_sq_, adam_step_, config_.alpha_lr);
    }
    alpha_.mutable_grad() = torch::Tensor();

    epoch_loss_sum_ += train_loss;
    ++steps_run_;
    if (hooks_.on_step) {
      TrainProgress progress;
      progress.epoch = epoch;
      progress.epochs = config_.epochs;
      progress.step = step + 1;  // 1-based, as the trainer reports it
      progress.steps = steps_;
      progress.global_step = global_step + 1;
      progress.total_steps = config_.epochs * steps_;
      progress.loss = train_loss;
      progress.accuracy = 100.0 * stats[1].item<double>() / static_cast<double>(batch);
      progress.lr = lr;
      hooks_.on_step(progress);
    }
    return Status::Ok();
  }

  // ---- Checkpoints -------------------------------------------------------------------------

  Json PoolJson() const {
    Json pool = Json::array();
    for (const auto& group : pool_) pool.push_back(group);
    return pool;
  }

  // The state after `next_epoch` epochs and `next_step` steps of the next one (mid-epoch on
  // preemption): prompts, momentum, α and its Adam state, and where the epoch stands.
  Status WriteCheckpoint(int64_t next_epoch, int64_t next_step) {
    if (!hooks_.is_leader || hooks_.workdir.empty()) return Status::Ok();
    train::TrainingCheckpoint checkpoint;
    for (const auto& [name, tensor] : params_) {
      checkpoint.state_dict[name] = tensor.detach().cpu().clone();
      checkpoint.param_order.push_back(name);
      auto it = momentum_.find(name);
      if (it != momentum_.end() && it->second.defined()) checkpoint.momentum[name] = it->second.cpu().clone();
    }
    checkpoint.state_dict[kAlphaKey] = alpha_.detach().cpu().clone();
    checkpoint.state_dict[kAdamExpAvgKey] = adam_exp_avg_.cpu().clone();
    checkpoint.state_dict[kAdamExpAvgSqKey] = adam_exp_avg_sq_.cpu().clone();
    checkpoint.state_dict[kAdamStepKey] = torch::tensor({adam_step_}, torch::kLong);
    checkpoint.epoch = next_epoch;
    checkpoint.rng_state[kNextStepKey] = torch::tensor({next_step}, torch::kLong);
    checkpoint.sgd.momentum = config_.momentum;
    checkpoint.sgd.weight_decay = config_.weight_decay;
    checkpoint.schedule.base_lr = config_.lr;
    checkpoint.schedule.max_epoch = config_.epochs;
    checkpoint.schedule.warmup_epochs = config_.warmup_epochs;
    checkpoint.schedule.warmup_lr = config_.warmup_lr;
    Json meta = hooks_.checkpoint_meta.is_object() ? hooks_.checkpoint_meta : Json::object();
    // The loss sum of a half-done epoch travels as JSON: nlohmann writes doubles so that they
    // read back bit for bit, which keeps final_loss of a resumed run exact.
    meta[kMethodName] = Json{{"pool", PoolJson()},
                             {"steps_per_epoch", steps_},
                             {"epoch_loss_sum", next_step > 0 ? epoch_loss_sum_ : 0.0},
                             {"final_loss", final_loss_}};
    checkpoint.meta_json = meta.dump();
    const std::string path = hooks_.workdir + "/checkpoint.pth";
    ATP_RETURN_IF_ERROR(train::SaveTrainingCheckpoint(path, checkpoint));
    if (hooks_.on_checkpoint) hooks_.on_checkpoint(path);
    return Status::Ok();
  }

  Status Resume(const std::string& path) {
    ATP_ASSIGN_OR_RETURN(train::TrainingCheckpoint checkpoint, train::LoadTrainingCheckpoint(path));
    const std::string where = "attribute_search: checkpoint " + path;
    Json meta = Json::parse(checkpoint.meta_json, nullptr, /*allow_exceptions=*/false);
    if (!meta.is_object() || !meta.contains(kMethodName)) {
      return InvalidArgument(where + " was not written by an attribute search");
    }
    const Json& state = meta[kMethodName];
    if (!state.contains("pool") || state["pool"] != PoolJson()) {
      return InvalidArgument(where + " searched another candidate pool (" +
                             (state.contains("pool") ? state["pool"].dump() : std::string("none")) +
                             "); the bases, compat, max_group_size and seed must match the interrupted run");
    }
    auto tensor = [&](const std::string& name, const torch::Tensor& like) -> Result<torch::Tensor> {
      auto it = checkpoint.state_dict.find(name);
      if (it == checkpoint.state_dict.end()) return InvalidArgument(where + " has no tensor '" + name + "'");
      if (it->second.sizes() != like.sizes()) {
        std::ostringstream message;
        message << where << ": tensor '" << name << "' has shape " << it->second.sizes() << ", the search expects "
                << like.sizes();
        return InvalidArgument(message.str());
      }
      return it->second.to(like.device(), like.scalar_type());
    };
    torch::NoGradGuard no_grad;
    for (auto& [name, param] : params_) {
      ATP_ASSIGN_OR_RETURN(torch::Tensor value, tensor(name, param));
      param.copy_(value);
      auto it = checkpoint.momentum.find(name);
      if (it != checkpoint.momentum.end()) momentum_[name] = it->second.to(param.device(), param.scalar_type()).clone();
    }
    ATP_ASSIGN_OR_RETURN(torch::Tensor alpha, tensor(kAlphaKey, alpha_));
    alpha_.copy_(alpha);
    ATP_ASSIGN_OR_RETURN(adam_exp_avg_, tensor(kAdamExpAvgKey, adam_exp_avg_));
    ATP_ASSIGN_OR_RETURN(adam_exp_avg_sq_, tensor(kAdamExpAvgSqKey, adam_exp_avg_sq_));
    adam_exp_avg_ = adam_exp_avg_.clone();
    adam_exp_avg_sq_ = adam_exp_avg_sq_.clone();
    auto step = checkpoint.state_dict.find(kAdamStepKey);
    if (step == checkpoint.state_dict.end()) return InvalidArgument(where + " has no tensor '" + kAdamStepKey + "'");
    adam_step_ = step->second.item<int64_t>();

    start_epoch_ = checkpoint.epoch;
    auto next = checkpoint.rng_state.find(kNextStepKey);
    start_step_ = next == checkpoint.rng_state.end() ? 0 : next->second.item<int64_t>();
    if (start_step_ > 0 && state.value("steps_per_epoch", int64_t{0}) != steps_) {
      return InvalidArgument(where + " stopped mid-epoch with " + std::to_string(state.value("steps_per_epoch", 0)) +
                             " steps per epoch; this run has " + std::to_string(steps_) +
                             ": batch_size and max_steps_per_epoch must match the interrupted run");
    }
    epoch_loss_sum_ = state.value("epoch_loss_sum", 0.0);
    final_loss_ = state.value("final_loss", 0.0);  // reported again when the run had finished
    return Status::Ok();
  }

  SearchResult Summarise() {
    SearchResult result;
    torch::Tensor weights = torch::softmax(alpha_.detach().to(torch::kFloat64), 0).cpu();
    int64_t best = 0;
    for (int64_t k = 0; k < weights.size(0); ++k) {
      const double w = weights[k].item<double>();
      result.weights.push_back({pool_[static_cast<size_t>(k)], w});
      if (w > result.weights[static_cast<size_t>(best)].second) best = k;
    }
    result.attributes = pool_[static_cast<size_t>(best)];
    result.epochs_run = epochs_run_;
    result.resumed_from_epoch = start_epoch_;
    result.steps = steps_run_;
    result.final_loss = final_loss_;
    result.notes = notes_;
    return result;
  }

  const MethodConfig& config_;
  clip::Clip clip_;
  std::shared_ptr<const clip::ClipTokenizer> tokenizer_;
  const std::vector<std::string>& class_names_;
  const std::vector<data::Datum>& train_;
  const std::vector<data::Datum>& val_;
  ImageInputs* inputs_;
  const TrainerHooks& hooks_;

  torch::Device device_ = torch::kCPU;
  train::GradientSync* sync_ = nullptr;
  int rank_ = 0;
  int ranks_ = 1;

  std::vector<std::vector<std::string>> pool_;
  std::vector<PromptLearner> learners_;
  std::vector<std::pair<std::string, torch::Tensor>> params_;  // checkpoint key, tensor
  std::map<std::string, torch::Tensor> momentum_;
  torch::Tensor alpha_;
  torch::Tensor adam_exp_avg_;
  torch::Tensor adam_exp_avg_sq_;
  int64_t adam_step_ = 0;

  int64_t steps_ = 0;  // per epoch
  torch::Tensor train_labels_;
  torch::Tensor val_features_;
  torch::Tensor val_labels_;

  int64_t start_epoch_ = 0;
  int64_t start_step_ = 0;
  int64_t epochs_run_ = 0;
  int64_t steps_run_ = 0;
  double epoch_loss_sum_ = 0;
  double final_loss_ = 0;
  std::vector<std::string> notes_;
};

}  // namespace

std::vector<std::vector<std::string>> CandidatePool(const std::vector<std::string>& bases, Compat compat,
                                                    int max_group_size, int64_t seed) {
  const int n = static_cast<int>(bases.size());
  // The released trainer keeps only groups of more than two bases (`if r > 2`).
  const int smallest = compat == Compat::kOfficial ? 3 : 1;
  const int largest = max_group_size > 0 ? std::min(n, max_group_size) : n;
  std::vector<std::vector<int>> subsets;
  for (int r = smallest; r <= largest; ++r) Combinations(n, r, &subsets);
  std::vector<std::vector<std::string>> pool;
  pool.reserve(subsets.size());
  for (const auto& subset : subsets) {
    std::vector<std::string> group;
    for (int i : subset) group.push_back(bases[static_cast<size_t>(i)]);
    pool.push_back(std::move(group));
  }
  if (compat == Compat::kOfficial) {
    data::PythonRandom rng(seed);
    rng.Shuffle(&pool);
  }
  return pool;
}

std::string GroupName(const std::vector<std::string>& group) {
  std::string out = "(";
  for (size_t i = 0; i < group.size(); ++i) out += (i ? ", " : "") + group[i];
  return out + ")";
}

torch::Tensor MixtureLogits(const torch::Tensor& image_features, const torch::Tensor& texts,
                            const torch::Tensor& weights, const torch::Tensor& logit_scale) {
  // fp32 throughout, as the official search runs (docs/reference.md §5.2: p = softmax(α) in fp32).
  torch::Tensor image = image_features.to(torch::kFloat32);
  torch::Tensor text = texts.to(torch::kFloat32);
  image = image / image.norm(2, -1, true);
  text = text / text.norm(2, -1, true);
  // Σ_k w_k · s · v·t_kᵀ = s · v·(Σ_k w_k t_k)ᵀ: one [C, E] matrix instead of K logit matrices.
  torch::Tensor mixed = (weights.to(torch::kFloat32).view({-1, 1, 1}) * text).sum(0);
  return logit_scale.exp().to(torch::kFloat32) * image.matmul(mixed.t());
}

Result<SearchResult> RunAttributeSearch(const MethodConfig& config, clip::Clip clip,
                                        std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                                        const std::vector<std::string>& class_names,
                                        const std::vector<data::Datum>& train, const std::vector<data::Datum>& val,
                                        ImageInputs* inputs, const TrainerHooks& hooks) {
  if (!inputs) return InvalidArgument("attribute_search: no image inputs");
  if (!tokenizer) return InvalidArgument("attribute_search: no tokenizer");
  AttributeSearch search(config, std::move(clip), std::move(tokenizer), class_names, train, val, inputs, hooks);
  return search.Run();
}

}  // namespace atp::prompt
