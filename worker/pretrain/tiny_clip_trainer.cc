#include "worker/pretrain/tiny_clip_trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "worker/clip/transformer.h"
#include "worker/data/dataset.h"
#include "worker/data/image.h"
#include "worker/data/transforms.h"
#include "worker/pretrain/clip_state_dict_writer.h"
#include "worker/pretrain/contrastive_loss.h"
#include "worker/clip/cpu_threads.h"

namespace atp::pretrain {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The first `max_per_class` items of each class in split order (all when 0).
std::vector<data::Datum> FirstPerClass(const std::vector<data::Datum>& items, int max_per_class) {
  if (max_per_class == 0) return items;
  std::map<int, int> taken;
  std::vector<data::Datum> out;
  for (const auto& d : items) {
    if (taken[d.label]++ < max_per_class) out.push_back(d);
  }
  return out;
}

// Decodes every image and applies CLIP's test resize and centre crop at `resolution`:
// uint8 [N, 3, R, R]. The work is split over `threads` threads; the first error wins.
Result<torch::Tensor> DecodeImages(const std::string& root, const std::vector<data::Datum>& items, int resolution,
                                   int threads) {
  const int64_t n = static_cast<int64_t>(items.size()), r = resolution, plane = r * r;
  torch::Tensor out = torch::empty({n, 3, r, r}, torch::kUInt8);
  uint8_t* base = out.data_ptr<uint8_t>();
  std::atomic<int64_t> next{0};
  std::mutex mu;
  Status first_error;
  auto work = [&] {
    for (int64_t i = next++; i < n; i = next++) {
      auto image = data::DecodeImageFile(data::JoinRoot(root, items[static_cast<size_t>(i)].path));
      if (!image.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = image.status();
        next = n;
        return;
      }
      const data::Image square = data::ClipTestImage(*image, resolution);
      uint8_t* dst = base + i * 3 * plane;
      for (int64_t p = 0; p < plane; ++p) {
        for (int c = 0; c < 3; ++c) dst[c * plane + p] = square.rgb[static_cast<size_t>(p * 3 + c)];
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (!first_error.ok()) return first_error;
  return out;
}

// Draws uniformly from [0, n): one engine call, so the stream depends only on the seed.
int64_t Draw(std::mt19937_64* rng, int64_t n) { return static_cast<int64_t>((*rng)() % static_cast<uint64_t>(n)); }

std::vector<int64_t> Shuffled(int64_t n, std::mt19937_64* rng) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  // Fisher-Yates written out: std::shuffle's algorithm differs between standard libraries.
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(Draw(rng, i + 1))]);
  return order;
}

}  // namespace

clip::ClipOptions TinyClipModelOptions(const TinyClipOptions& o, int vocab_size) {
  clip::ClipOptions c;
  c.vision.input_resolution(o.resolution)
      .patch_size(o.patch_size)
      .width(o.vision_width)
      .layers(o.vision_layers)
      .heads(o.vision_width / 64)
      .output_dim(o.embed_dim);
  c.text.context_length(o.context_length)
      .vocab_size(vocab_size)
      .width(o.text_width)
      .layers(o.text_layers)
      .heads(o.text_width / 64)
      .embed_dim(o.embed_dim);
  return c;
}

void InitializeClipParameters(clip::ClipImpl& m, at::Generator& g) {
  torch::NoGradGuard no_grad;
  std::set<const void*> done;
  auto normal = [&](torch::Tensor t, double std) {
    t.normal_(0.0, std, g);
    done.insert(t.unsafeGetTensorImpl());
  };
  auto uniform = [&](torch::Tensor t, double bound) {
    t.uniform_(-bound, bound, g);
    done.insert(t.unsafeGetTensorImpl());
  };
  auto fill = [&](torch::Tensor t, double value) {
    t.fill_(value);
    done.insert(t.unsafeGetTensorImpl());
  };
  auto layer_norm = [&](torch::nn::LayerNorm& ln) {
    fill(ln->weight, 1.0);
    fill(ln->bias, 0.0);
  };
  auto blocks = [](clip::Transformer& t) {
    std::vector<clip::ResidualAttentionBlockImpl*> out;
    for (size_t i = 0; i < t->resblocks->size(); ++i) out.push_back(t->resblocks[i]->as<clip::ResidualAttentionBlock>());
    return out;
  };

  // Image tower: OpenAI's VisionTransformer draws its embeddings and projection with std
  // width^-0.5 and leaves the rest to PyTorch's defaults (Conv2d/Linear: kaiming_uniform with
  // a = sqrt(5), i.e. bound 1/sqrt(fan_in); MultiheadAttention: xavier_uniform in_proj, zero
  // biases); initialize_parameters does not touch it.
  clip::VisionTransformerImpl& v = *m.visual;
  const double vw = static_cast<double>(v.options.width());
  const double patch = static_cast<double>(v.options.patch_size());
  uniform(v.conv1->weight, 1.0 / std::sqrt(3.0 * patch * patch));
  normal(v.class_embedding, 1.0 / std::sqrt(vw));
  normal(v.positional_embedding, 1.0 / std::sqrt(vw));
  normal(v.proj, 1.0 / std::sqrt(vw));
  layer_norm(v.ln_pre);
  layer_norm(v.ln_post);
  for (auto* b : blocks(v.transformer)) {
    uniform(b->attn->in_proj_weight, std::sqrt(6.0 / (vw + 3.0 * vw)));
    fill(b->attn->in_proj_bias, 0.0);
    uniform(b->attn->out_proj->weight, 1.0 / std::sqrt(vw));
    fill(b->attn->out_proj->bias, 0.0);
    uniform(b->mlp->c_fc->weight, 1.0 / std::sqrt(vw));
    uniform(b->mlp->c_fc->bias, 1.0 / std::sqrt(vw));
    uniform(b->mlp->c_proj->weight, 1.0 / std::sqrt(4.0 * vw));
    uniform(b->mlp->c_proj->bias, 1.0 / std::sqrt(4.0 * vw));
    layer_norm(b->ln_1);
    layer_norm(b->ln_2);
  }

  // Text tower: CLIP.initialize_parameters. Biases keep PyTorch's defaults (zero in attention,
  // uniform 1/sqrt(fan_in) in the MLP), as there.
  const double tw = static_cast<double>(m.options.text.width());
  const double tl = static_cast<double>(m.options.text.layers());
  const double attn_std = 1.0 / std::sqrt(tw);
  const double proj_std = attn_std / std::sqrt(2.0 * tl);
  const double fc_std = 1.0 / std::sqrt(2.0 * tw);
  normal(m.token_embedding->weight, 0.02);
  normal(m.positional_embedding, 0.01);
  for (auto* b : blocks(m.transformer)) {
    normal(b->attn->in_proj_weight, attn_std);
    fill(b->attn->in_proj_bias, 0.0);
    normal(b->attn->out_proj->weight, proj_std);
    fill(b->attn->out_proj->bias, 0.0);
    normal(b->mlp->c_fc->weight, fc_std);
    uniform(b->mlp->c_fc->bias, 1.0 / std::sqrt(tw));
    normal(b->mlp->c_proj->weight, proj_std);
    uniform(b->mlp->c_proj->bias, 1.0 / std::sqrt(4.0 * tw));
    layer_norm(b->ln_1);
    layer_norm(b->ln_2);
  }
  layer_norm(m.ln_final);
  normal(m.text_projection, attn_std);
  fill(m.logit_scale, std::log(1.0 / 0.07));

  for (const auto& p : m.named_parameters(/*recurse=*/true)) {
    TORCH_CHECK(done.count(p.value().unsafeGetTensorImpl()) == 1, "InitializeClipParameters has no rule for ", p.key());
  }
}

Result<std::unique_ptr<TinyClipTrainer>> TinyClipTrainer::Create(const TinyClipOptions& options) {
  ATP_RETURN_IF_ERROR(options.Validate());
  const auto start = Clock::now();
  std::unique_ptr<TinyClipTrainer> t(new TinyClipTrainer());
  t->created_ = start;
  t->options_ = options;
  t->report_.options = options;
  const int threads = ResolveCpuThreads(options.threads);
  t->report_.threads_used = threads;

  auto splits = data::ReadDataset(options.data_root, "fashion_mnist");
  if (!splits.ok()) {
    return FailedPrecondition("no usable Fashion-MNIST under " + options.data_root + " (" +
                              splits.status().message() + "); import it first with: atp data import-fashion-mnist --out " +
                              options.data_root);
  }
  const std::vector<ClassCaptions>& captions = FashionMnistCaptions();
  const std::vector<std::string> names = data::ClassNamesByLabel(splits->train);
  for (size_t c = 0; c < captions.size(); ++c) {
    if (c >= names.size() || names[c] != captions[c].classname) {
      return InvalidArgument(splits->split_file + ": class " + std::to_string(c) + " is '" +
                             (c < names.size() ? names[c] : std::string()) + "', expected Fashion-MNIST's '" +
                             captions[c].classname + "'; re-import with atp data import-fashion-mnist");
    }
    t->class_names_.push_back(captions[c].classname);
  }

  // Vocabulary, then every caption as ids.
  BpeTrainerOptions bpe;
  bpe.max_merges = options.max_merges;
  ATP_ASSIGN_OR_RETURN(t->merges_, LearnBpeMerges(VocabularyCorpus(captions), bpe));
  ATP_ASSIGN_OR_RETURN(t->tokenizer_, clip::ClipTokenizer::Parse(FormatBpeMerges(t->merges_), "the learned vocabulary"));
  t->report_.corpus_sha256 = FashionMnistCorpusSha256();
  t->report_.vocab_size = t->tokenizer_->vocab_size();
  t->report_.num_merges = t->tokenizer_->num_merges();
  std::vector<std::vector<int>> rows;
  size_t longest = 0;
  for (const auto& c : captions) {
    t->caption_offset_.push_back(static_cast<int64_t>(rows.size()));
    t->caption_count_.push_back(static_cast<int64_t>(c.captions.size()));
    for (const std::string& text : c.captions) {
      auto ids = t->tokenizer_->Tokenize(text, clip::OverlongPolicy::kError, options.context_length);
      if (!ids.ok()) return ids.status().WithContext("caption \"" + text + "\"");
      const auto eot = std::find(ids->begin(), ids->end(), t->tokenizer_->end_of_text());
      longest = std::max(longest, static_cast<size_t>(eot - ids->begin()) + 1);
      rows.push_back(std::move(ids).value());
    }
  }
  t->caption_ids_ = torch::zeros({static_cast<int64_t>(rows.size()), static_cast<int64_t>(longest)}, torch::kLong);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t j = 0; j < longest; ++j) t->caption_ids_[static_cast<int64_t>(i)][static_cast<int64_t>(j)] = rows[i][j];
  }

  // Images: decoded once; every epoch reuses them.
  const std::vector<data::Datum> train = FirstPerClass(splits->train, options.max_train_per_class);
  const std::vector<data::Datum> test = FirstPerClass(splits->test, options.max_test_per_class);
  if (train.empty() || test.empty()) {
    return FailedPrecondition(splits->split_file + " has no train or no test images; re-import Fashion-MNIST");
  }
  ATP_ASSIGN_OR_RETURN(t->train_pixels_, DecodeImages(options.data_root, train, options.resolution, threads));
  ATP_ASSIGN_OR_RETURN(t->test_pixels_, DecodeImages(options.data_root, test, options.resolution, threads));
  for (const auto& d : train) t->train_labels_.push_back(d.label);
  for (const auto& d : test) t->test_labels_.push_back(d.label);
  t->report_.train_images = static_cast<int64_t>(train.size());
  t->report_.test_images = static_cast<int64_t>(test.size());

  const clip::ClipOptions model_options = TinyClipModelOptions(options, t->tokenizer_->vocab_size());
  t->report_.model = model_options.ToString();
  t->model_ = clip::Clip(model_options);
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  InitializeClipParameters(*t->model_, generator);
  t->report_.prepare_seconds = SecondsSince(start);
  return t;
}

torch::Tensor TinyClipTrainer::Normalize(const torch::Tensor& pixels_u8) const {
  // torchvision's ToTensor + Normalize in float32, as data::NormalizeInto computes it.
  torch::Tensor mean = torch::tensor({data::kClipMean[0], data::kClipMean[1], data::kClipMean[2]}).view({1, 3, 1, 1});
  torch::Tensor std = torch::tensor({data::kClipStd[0], data::kClipStd[1], data::kClipStd[2]}).view({1, 3, 1, 1});
  return (pixels_u8.to(torch::kFloat32) / 255.0f - mean) / std;
}

torch::Tensor TinyClipTrainer::InView(const torch::Tensor& pixels_u8) const {
  if (options_.view == "plain") return pixels_u8;
  torch::Tensor out = pixels_u8.contiguous().clone();
  const int64_t n = out.size(0), plane = out.size(2) * out.size(3);
  uint8_t* values = out.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    for (int c = 0; c < 3; ++c) ApplyPretrainView(options_.view, c, values + (i * 3 + c) * plane, plane);
  }
  return out;
}

torch::Tensor TinyClipTrainer::Augment(const torch::Tensor& pixels_u8, std::mt19937_64* rng) const {
  // A shift of up to 2 pixels each way, filled with black (Fashion-MNIST's background). No
  // flips: the dataset's shoes all point the same way, and the test images are not flipped.
  constexpr int64_t kPad = 2;
  const int64_t r = options_.resolution;
  torch::Tensor padded = at::constant_pad_nd(pixels_u8, {kPad, kPad, kPad, kPad}, 0);
  torch::Tensor out = torch::empty_like(pixels_u8);
  for (int64_t i = 0; i < pixels_u8.size(0); ++i) {
    const int64_t dy = Draw(rng, 2 * kPad + 1), dx = Draw(rng, 2 * kPad + 1);
    out[i].copy_(padded[i].narrow(1, dy, r).narrow(2, dx, r));
  }
  return out;
}

Status TinyClipTrainer::Train(const ProgressFn& progress, const StepFn& on_step) {
  const auto start = Clock::now();
  SetCpuThreads(report_.threads_used);
  clip::ClipImpl& m = *model_;
  m.train();
  // Weight decay on matrices only: not on gains, biases or logit_scale (as open_clip does).
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : m.named_parameters(/*recurse=*/true)) {
    p.value().set_requires_grad(true);
    const std::string& k = p.key();
    const bool exempt = p.value().dim() < 2 || k.find("bias") != std::string::npos || k.find("ln_") != std::string::npos ||
                        k == "logit_scale";
    (exempt ? no_decay : decay).push_back(p.value());
  }
  auto adamw = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(options_.learning_rate).betas({0.9, 0.98}).eps(1e-6).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, adamw(options_.weight_decay));
  groups.emplace_back(no_decay, adamw(0.0));
  torch::optim::AdamW optimizer(groups, torch::optim::AdamWOptions(options_.learning_rate));

  const int64_t n = train_pixels_.size(0);
  const int64_t batch = std::min<int64_t>(options_.batch_size, n);
  const int64_t steps_per_epoch = n / batch;  // the last partial batch is dropped
  const int64_t total_steps = steps_per_epoch * options_.epochs;
  const int64_t warmup = std::min<int64_t>(options_.warmup_steps, total_steps / 4);
  const double max_logit_scale = std::log(100.0);
  std::mt19937_64 rng(options_.seed * 0x9E3779B97F4A7C15ULL + 1);
  int64_t step = 0;
  report_.epoch_losses.clear();
  for (int epoch = 1; epoch <= options_.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    const std::vector<int64_t> order = Shuffled(n, &rng);
    double loss_sum = 0.0;
    for (int64_t s = 0; s < steps_per_epoch; ++s, ++step) {
      // Warmup, then cosine decay to zero.
      const double lr = step < warmup ? options_.learning_rate * static_cast<double>(step + 1) / static_cast<double>(warmup)
                                      : 0.5 * options_.learning_rate *
                                            (1.0 + std::cos(M_PI * static_cast<double>(step - warmup) /
                                                            static_cast<double>(std::max<int64_t>(1, total_steps - warmup))));
      for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);

      std::vector<int64_t> index(order.begin() + s * batch, order.begin() + (s + 1) * batch);
      std::vector<int64_t> labels;
      // One caption per image, drawn from its class; the batch's distinct captions are encoded once.
      std::map<int64_t, int64_t> text_slot;  // caption row -> column of the logits
      std::vector<int64_t> text_rows, text_classes;
      for (int64_t i : index) {
        const int64_t label = train_labels_[static_cast<size_t>(i)];
        labels.push_back(label);
        const int64_t row = caption_offset_[static_cast<size_t>(label)] + Draw(&rng, caption_count_[static_cast<size_t>(label)]);
        if (text_slot.emplace(row, static_cast<int64_t>(text_rows.size())).second) {
          text_rows.push_back(row);
          text_classes.push_back(label);
        }
      }
      // Shifted first, then seen in the pretraining view: the filled border is background there too.
      torch::Tensor pixels = Normalize(InView(Augment(train_pixels_.index_select(0, torch::tensor(index)), &rng)));
      torch::Tensor ids = caption_ids_.index_select(0, torch::tensor(text_rows));
      torch::Tensor logits = m.Logits(m.EncodeImage(pixels), m.EncodeText(ids));
      torch::Tensor loss = MultiPositiveClipLoss(logits, torch::tensor(labels), torch::tensor(text_classes));
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      {
        torch::NoGradGuard no_grad;
        m.logit_scale.clamp_(0.0, max_logit_scale);  // CLIP clips the scale at 100
      }
      const double value = loss.item<double>();
      if (!std::isfinite(value)) {
        return Internal("the contrastive loss became " + std::to_string(value) + " at step " + std::to_string(step + 1) +
                        "; lower the learning rate");
      }
      loss_sum += value;
      if (on_step) on_step(step + 1, total_steps, value);
    }
    report_.epoch_losses.push_back(loss_sum / static_cast<double>(std::max<int64_t>(1, steps_per_epoch)));
    if (progress) {
      const double epoch_seconds = SecondsSince(epoch_start);
      EpochProgress p;
      p.epoch = epoch;
      p.epochs = options_.epochs;
      p.mean_loss = report_.epoch_losses.back();
      p.images_per_second = static_cast<double>(steps_per_epoch * batch) / std::max(1e-9, epoch_seconds);
      p.elapsed_seconds = SecondsSince(start);
      p.eta_seconds = epoch_seconds * (options_.epochs - epoch);
      progress(p);
    }
  }
  report_.steps = step;
  m.eval();
  for (auto& p : m.parameters()) p.set_requires_grad(false);
  report_.train_seconds = SecondsSince(start);
  return Status::Ok();
}

torch::Tensor TinyClipTrainer::TestPixels(int64_t count) const {
  return Normalize(InView(test_pixels_.narrow(0, 0, std::min<int64_t>(count, test_pixels_.size(0)))));
}

torch::Tensor TinyClipTrainer::ZeroShotTokenIds() const {
  const int64_t classes = static_cast<int64_t>(class_names_.size());
  torch::Tensor ids = torch::zeros({classes, options_.context_length}, torch::kLong);
  for (int64_t c = 0; c < classes; ++c) {
    // The captions were tokenised at Create, and the zero-shot prompt is one of them.
    auto row = tokenizer_->Tokenize(ZeroShotPrompt(class_names_[static_cast<size_t>(c)]), clip::OverlongPolicy::kError,
                                    options_.context_length);
    TORCH_CHECK(row.ok(), row.status().message());
    for (int64_t j = 0; j < options_.context_length; ++j) ids[c][j] = (*row)[static_cast<size_t>(j)];
  }
  return ids;
}

Status TinyClipTrainer::Evaluate() {
  const auto start = Clock::now();
  SetCpuThreads(report_.threads_used);
  torch::NoGradGuard no_grad;
  clip::ClipImpl& m = *model_;
  m.eval();
  const torch::Tensor text = m.EncodeText(ZeroShotTokenIds());
  const int64_t classes = text.size(0), n = test_pixels_.size(0);
  // In the pretraining view (what the model learned) and as the dataset has them (what the
  // prompt learners start from).
  for (const bool in_view : {true, false}) {
    if (!in_view && options_.view == "plain") {
      report_.dataset_zero_shot_accuracy = report_.zero_shot_accuracy;
      break;
    }
    std::vector<ClassAccuracy> per_class(static_cast<size_t>(classes));
    for (int64_t c = 0; c < classes; ++c) per_class[static_cast<size_t>(c)].classname = class_names_[static_cast<size_t>(c)];
    int64_t correct = 0;
    constexpr int64_t kChunk = 500;
    for (int64_t begin = 0; begin < n; begin += kChunk) {
      const int64_t len = std::min(kChunk, n - begin);
      torch::Tensor pixels = test_pixels_.narrow(0, begin, len);
      if (in_view) pixels = InView(pixels);
      torch::Tensor predicted = m.Logits(m.EncodeImage(Normalize(pixels)), text).argmax(1);
      auto acc = predicted.accessor<int64_t, 1>();
      for (int64_t i = 0; i < len; ++i) {
        const int64_t label = test_labels_[static_cast<size_t>(begin + i)];
        ClassAccuracy& c = per_class[static_cast<size_t>(label)];
        ++c.total;
        if (acc[i] == label) {
          ++c.correct;
          ++correct;
        }
      }
    }
    const double accuracy = static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(1, n));
    if (in_view) {
      report_.per_class = per_class;
      report_.zero_shot_accuracy = accuracy;
    } else {
      report_.dataset_zero_shot_accuracy = accuracy;
    }
  }
  report_.eval_seconds = SecondsSince(start);
  return Status::Ok();
}

Status TinyClipTrainer::Save(const std::string& out_dir) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return IoError("cannot create output folder " + out_dir + ": " + ec.message());
  const TinyClipPaths paths = TinyClipPathsIn(out_dir);
  report_.total_seconds = SecondsSince(created_);
  ATP_RETURN_IF_ERROR(WriteBpeVocabulary(paths.vocabulary, merges_));
  ATP_RETURN_IF_ERROR(SaveClipStateDict(*model_, paths.checkpoint));
  // The report goes last: its presence says the other two files are complete.
  return WriteTinyClipReport(report_, paths.report);
}

Result<TinyClipReport> PretrainTinyClip(const TinyClipOptions& options, const std::string& out_dir,
                                        const ProgressFn& progress, const StepFn& on_step) {
  ATP_ASSIGN_OR_RETURN(std::unique_ptr<TinyClipTrainer> trainer, TinyClipTrainer::Create(options));
  try {
    ATP_RETURN_IF_ERROR(trainer->Train(progress, on_step));
    ATP_RETURN_IF_ERROR(trainer->Evaluate());
  } catch (const std::exception& e) {
    return Internal(std::string("tiny CLIP pretraining failed: ") + e.what());
  }
  ATP_RETURN_IF_ERROR(trainer->Save(out_dir));
  return trainer->report();
}

}  // namespace atp::pretrain
