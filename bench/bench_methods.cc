// bench_methods: training steps per second of every prompt method, ± ATPrompt, on random
// CLIP weights of two sizes (tiny: the demo's scale; ViT-B/16), batch 32, 50 classes, fp32,
// measured side by side in one run:
//   cold = the frozen image tower runs on the batch's 32 images, then the method's step;
//   warm = the image features come from the feature cache (only the method's step runs).
// MaPLe puts prompts into the image tower, so it has only a cold figure. The grid figure is
// the speed-up of the cache for the six CoOp/CoCoOp/DePT ± ATPrompt jobs of one dataset and
// seed: without the cache each job runs the image tower on every batch; with it the tower
// runs once per (image, augmentation) for the whole grid and every job runs warm steps.
// Images are random pixels (decoding and augmentation, identical in both arms, are left
// out; bench_data measures them).
// Each figure times at least STEPS steps and at least 2 s.
// It also prints the BLAS and kernel the process runs on, the kernel's rate on a 2048^3 fp32
// GEMM through libtorch, and the image tower's achieved rate beside it (the distance to what
// the machine can do); --threads-sweep prints step and tower times at 1..cores threads.
// Usage: atp_bench_methods [SIZE=both|tiny|vitb16] [STEPS=3] [THREADS=0: the process's share]
//                          [--methods coop,dept+atprompt,...] [--threads-sweep]
// --methods keeps the named methods (a bare name keeps it with and without ATPrompt); the
// image tower is always measured. ATP_BLAS_CORETYPE and the rest of docs/compute.md apply.
#include <torch/torch.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "common/blas_runtime.h"
#include "common/heap_tuning.h"
#include "worker/clip/clip_model.h"
#include "worker/clip/cpu_threads.h"
#include "worker/clip/tokenizer.h"
#include "worker/prompt/method_config.h"
#include "worker/prompt/prompt_learner.h"
#include "worker/prompt/prompt_methods.h"
#include "worker/prompt/prompt_model.h"

using namespace atp;
using namespace atp::prompt;

namespace {

clip::ClipOptions Options(const std::string& size) {
  clip::ClipOptions o;
  if (size == "tiny") {
    o.vision.input_resolution(32).patch_size(8).width(128).layers(4).heads(2).output_dim(128);
    o.text.context_length(77).vocab_size(49408).width(128).layers(4).heads(2).embed_dim(128);
  } else {  // ViT-B/16
    o.vision.input_resolution(224).patch_size(16).width(768).layers(12).heads(12).output_dim(512);
    o.text.context_length(77).vocab_size(49408).width(512).layers(12).heads(8).embed_dim(512);
  }
  return o;
}

clip::Clip RandomClip(const clip::ClipOptions& options) {
  torch::manual_seed(0);
  clip::Clip model(options);
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) {
    if (p.dim() >= 2) p.normal_(0, 0.02);
    p.set_requires_grad(false);
  }
  model->logit_scale.fill_(std::log(100.0));
  model->eval();
  return model;
}

MethodConfig Config(const std::string& method, bool atprompt, int depth) {
  MethodConfig c;
  c.method = method;
  c.dataset = "caltech101";
  c.atprompt = atprompt;
  c.design.n_ctx = atprompt ? 2 : (method == "coop" ? 16 : method == "maple" ? 2 : 4);
  if (atprompt) c.design.attributes = {"shape", "size"};
  c.maple_depth = depth;
  c.dept_weight = 0.7;
  return c;
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Seconds per call of `step`, over at least `min_steps` calls and at least `min_seconds`: a
// tiny-model step takes milliseconds, and a handful of them measures only noise.
template <typename Step>
double SecondsPerStep(Step&& step, int min_steps, double min_seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  int done = 0;
  while (done < min_steps || Seconds(t0) < min_seconds) {
    step();
    ++done;
  }
  return Seconds(t0) / done;
}

constexpr double kMinSeconds = 2.0;

// Multiply-adds x 2 of one forward pass of the vision tower on `batch` images: per layer
// 24 T D^2 (QKV, output projection, 4x MLP) + 4 T^2 D (scores, weighted sum) for T tokens of
// width D, plus the patch embedding and the final projection.
double TowerFlops(const clip::ClipOptions& options, int batch) {
  const double r = options.vision.input_resolution(), p = options.vision.patch_size();
  const double d = options.vision.width(), layers = options.vision.layers(), out = options.vision.output_dim();
  const double patches = (r / p) * (r / p), t = patches + 1;
  const double per_layer = 24 * t * d * d + 4 * t * t * d;
  return batch * (2 * patches * 3 * p * p * d + layers * per_layer + 2 * d * out);
}

// GFLOP/s of a 2048^3 fp32 matrix product through libtorch (the BLAS's kernel at its best).
double GemmGflops(int steps) {
  torch::Tensor a = torch::randn({2048, 2048}), b = torch::randn({2048, 2048});
  (void)torch::mm(a, b);
  const double seconds = SecondsPerStep([&] { (void)torch::mm(a, b); }, steps, kMinSeconds);
  return 2.0 * 2048 * 2048 * 2048 / seconds / 1e9;
}

// "coop" keeps coop and coop+atprompt; "coop+atprompt" keeps only that one; empty keeps all.
bool Selected(const std::set<std::string>& filter, const std::string& method, bool atprompt) {
  if (filter.empty()) return true;
  return filter.count(method) || filter.count(method + (atprompt ? "+atprompt" : ""));
}

struct Row {
  std::string size, method;
  bool atprompt;
  double cold = 0, warm = 0;  // seconds per step
};

}  // namespace

int main(int argc, char** argv) {
  atp::PrepareComputeProcess(argc, argv, atp::ProcessRole::kCompute);
  std::vector<std::string> positional;
  std::set<std::string> filter;
  bool threads_sweep = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--threads-sweep") {
      threads_sweep = true;
    } else if (arg == "--methods" && i + 1 < argc) {
      std::string list = argv[++i];
      for (size_t start = 0; start <= list.size();) {
        size_t comma = list.find(',', start);
        if (comma == std::string::npos) comma = list.size();
        if (comma > start) filter.insert(list.substr(start, comma - start));
        start = comma + 1;
      }
    } else if (arg.rfind("--", 0) == 0) {
      std::fprintf(stderr, "atp_bench_methods: unknown flag %s\n"
                           "usage: atp_bench_methods [both|tiny|vitb16] [STEPS] [THREADS] [--methods LIST] "
                           "[--threads-sweep]\n", arg.c_str());
      return 2;
    } else {
      positional.push_back(arg);
    }
  }
  for (const std::string& name : filter) {
    std::string base = name.substr(0, name.find('+'));
    if ((base != "coop" && base != "cocoop" && base != "dept" && base != "maple") ||
        (name != base && name != base + "+atprompt")) {
      std::fprintf(stderr, "atp_bench_methods: --methods: unknown method '%s' (coop, cocoop, dept, maple, each "
                           "alone or with +atprompt)\n", name.c_str());
      return 2;
    }
  }
  const std::string which = positional.size() > 0 ? positional[0] : "both";
  const int steps = positional.size() > 1 ? std::atoi(positional[1].c_str()) : 3;
  const int threads = ResolveCpuThreads(positional.size() > 2 ? std::atoi(positional[2].c_str()) : 0);
  SetCpuThreads(threads);
  auto vocab = clip::ResolveVocabPath("");
  if (!vocab.ok()) {
    std::fprintf(stderr, "atp_bench_methods: %s\n", vocab.status().message().c_str());
    return 1;
  }
  auto tokenizer = clip::ClipTokenizer::Load(*vocab);
  if (!tokenizer.ok()) return 1;
  const int batch = 32, classes = 50;
  std::vector<std::string> names;
  const char* words[] = {"airplane", "bonsai", "camera", "dolphin", "elephant", "ferry", "guitar", "helicopter",
                         "ibis", "joshua tree", "kangaroo", "lamp", "mandolin", "nautilus", "octopus", "pagoda",
                         "pizza", "revolver", "rhino", "scissors", "snoopy", "stapler", "starfish", "sunflower",
                         "tick"};
  for (int i = 0; i < classes; ++i) names.push_back(std::string(words[i % 25]) + (i >= 25 ? " toy" : ""));

  std::printf("atp_bench_methods: batch %d, %d classes, fp32, %d threads, at least %d steps and %.0f s per figure\n",
              batch, classes, threads, steps, kMinSeconds);
  const BlasRuntime blas = CurrentBlasRuntime();
  const double gemm = GemmGflops(steps);
  std::printf("BLAS: %s; start-up check %s\nHeap: %s\nGEMM 2048^3 fp32 through libtorch: %.1f GFLOP/s\n",
              blas.Summary().c_str(), blas.check.c_str(), HeapTuning().c_str(), gemm);
  std::vector<Row> rows;
  for (const std::string size : {"tiny", "vitb16"}) {
    if (which != "both" && which != size) continue;
    clip::ClipOptions options = Options(size);
    clip::Clip model = RandomClip(options);
    const int r = static_cast<int>(options.vision.input_resolution());
    torch::Tensor pixels = torch::randn({batch, 3, r, r});
    torch::Tensor labels = torch::randint(0, classes, {batch}, torch::kLong);
    torch::Tensor features;
    {
      torch::NoGradGuard no_grad;
      features = model->EncodeImage(pixels);
    }
    // The image tower alone: the part a warm cache removes from every step.
    const double tower = SecondsPerStep(
        [&] {
          torch::NoGradGuard no_grad;
          (void)model->EncodeImage(pixels);
        },
        steps, kMinSeconds);
    const double tower_gflops = TowerFlops(options, batch) / tower / 1e9;
    std::printf("\n[%s] %s\n  image tower, 32 images: %.3f s, %.1f GFLOP/s = %.0f%% of the GEMM rate\n", size.c_str(),
                options.ToString().c_str(), tower, tower_gflops, 100.0 * tower_gflops / gemm);
    {
      // The text tower alone, forward and backward, on CoOp+ATPrompt's 50 prompts: every
      // position of every prompt, against the shared start token and context computed once
      // (SharedPrefix, worker/clip/text_encoder.h; the last block at the pooled rows only).
      PromptLearnerOptions learner_options;
      learner_options.design = Config("coop", true, 0).design;
      PromptLearner learner(learner_options, model, *tokenizer, names);
      learner->ctx.set_requires_grad(true);
      auto text_step = [&](bool shared) {
        learner->ctx.mutable_grad() = torch::Tensor();
        torch::Tensor text = shared ? learner->TextFeatures()
                                    : model->EncodeTextEmbeddings(learner->Embeddings(), learner->eot());
        text.sum().backward();
      };
      text_step(false);
      text_step(true);
      const double full = SecondsPerStep([&] { text_step(false); }, steps, kMinSeconds);
      const double shared = SecondsPerStep([&] { text_step(true); }, steps, kMinSeconds);
      std::printf("  text tower, %d CoOp+ATPrompt prompts, forward and backward: %.3f s every position, "
                  "%.3f s shared prefix once = %.2fx\n",
                  classes, full, shared, full / shared);
    }
    if (threads_sweep) {
      // One owner of the threads (SetCpuThreads): the default should be no slower than any count.
      MethodConfig config = Config("coop", true, 0);
      auto made = MakePromptModel(config, model.ptr(), *tokenizer, names);
      if (!made.ok()) return 1;
      PromptModel& m = **made;
      std::vector<torch::Tensor> params;
      for (auto& [name, t] : m.TrainableParameters()) {
        t.set_requires_grad(true);
        params.push_back(t);
      }
      torch::optim::SGD sgd(params, torch::optim::SGDOptions(0.002).momentum(0.9));
      auto cold_step = [&] {
        torch::Tensor input;
        {
          torch::NoGradGuard no_grad;
          input = model->EncodeImage(pixels);
        }
        sgd.zero_grad();
        m.TrainLoss(input, labels, batch).backward();
        sgd.step();
      };
      std::printf("  threads   CoOp+ATPrompt cold step (s)   image tower (s)   CPU s per step\n");
      for (int t = 1; t <= AvailableCores(); ++t) {
        SetCpuThreads(t);
        cold_step();
        int calls = 0;
        const std::clock_t cpu0 = std::clock();  // CPU time of every thread of the process
        const double step_s = SecondsPerStep(
            [&] {
              cold_step();
              ++calls;
            },
            steps, kMinSeconds);
        const double cpu_per_step = static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC / calls;
        const double tower_s = SecondsPerStep(
            [&] {
              torch::NoGradGuard no_grad;
              (void)model->EncodeImage(pixels);
            },
            steps, kMinSeconds);
        std::printf("  %7d%s %27.3f %17.3f %16.3f\n", t, t == threads ? "*" : " ", step_s, tower_s, cpu_per_step);
        std::fflush(stdout);
      }
      std::printf("  (* the default: this process's share of the cores)\n");
      SetCpuThreads(threads);
    }
    std::printf("  %-16s %12s %12s %9s\n", "method", "cold step/s", "warm step/s", "speed-up");
    for (const char* method : {"coop", "cocoop", "dept", "maple"}) {
      for (bool atprompt : {false, true}) {
        if (!Selected(filter, method, atprompt)) continue;
        MethodConfig config = Config(method, atprompt, size == "tiny" ? 3 : 9);
        auto made = MakePromptModel(config, model.ptr(), *tokenizer, names);
        if (!made.ok()) {
          std::fprintf(stderr, "%s: %s\n", method, made.status().message().c_str());
          return 1;
        }
        PromptModel& m = **made;
        std::vector<torch::Tensor> params;
        for (auto& [name, t] : m.TrainableParameters()) {
          t.set_requires_grad(true);
          params.push_back(t);
        }
        torch::optim::SGD sgd(params, torch::optim::SGDOptions(0.002).momentum(0.9).weight_decay(5e-4));
        auto step = [&](bool cold) {
          torch::Tensor input;
          if (!m.TakesImageFeatures()) {
            input = pixels;
          } else if (cold) {
            torch::NoGradGuard no_grad;
            input = model->EncodeImage(pixels);
          } else {
            input = features;
          }
          sgd.zero_grad();
          m.TrainLoss(input, labels, batch).backward();
          sgd.step();
        };
        Row row{size, method, atprompt};
        step(false);  // warm-up: allocations, first-touch
        row.cold = SecondsPerStep([&] { step(true); }, steps, kMinSeconds);
        if (m.TakesImageFeatures()) row.warm = SecondsPerStep([&] { step(false); }, steps, kMinSeconds);
        std::string label = std::string(method) + (atprompt ? "+atprompt" : "");
        if (row.warm > 0) {
          std::printf("  %-16s %12.3f %12.3f %8.2fx\n", label.c_str(), 1 / row.cold, 1 / row.warm, row.cold / row.warm);
        } else {
          std::printf("  %-16s %12.3f %12s %9s\n", label.c_str(), 1 / row.cold, "-", "-");
        }
        std::fflush(stdout);
        rows.push_back(row);
      }
    }
    // The grid: six jobs, the same steps each. Without the cache every job runs cold steps;
    // with it the image tower runs once per batch for all six and each job runs warm steps.
    double without = 0, with = tower;
    int grid_jobs = 0;
    for (const Row& row : rows) {
      if (row.size != size || row.method == "maple") continue;
      without += row.cold;
      with += row.warm;
      ++grid_jobs;
    }
    if (grid_jobs == 6) std::printf("  grid of 6 jobs (CoOp, CoCoOp, DePT ± ATPrompt), per batch position: %.3f s without the cache, "
                "%.3f s with it: %.2fx\n",
                without, with, without / with);
  }
  return 0;
}
