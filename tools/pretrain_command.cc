#include "tools/pretrain_command.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/flag_value.h"
#include "common/progress_bar.h"
#include "tools/command_line.h"
#include "worker/pretrain/captions.h"
#include "worker/pretrain/tiny_clip_report.h"
#include "worker/pretrain/tiny_clip_trainer.h"

namespace atp {
namespace {

constexpr const char* kDescription =
    "Trains the demo's tiny CLIP from scratch on Fashion-MNIST (the train split of\n"
    "DIR/fashion_mnist, as `atp data import-fashion-mnist --out DIR` writes it): learns a BPE\n"
    "vocabulary from the class captions, trains a small ViT CLIP contrastively on image/caption\n"
    "pairs, and measures zero-shot accuracy on the test split with \"a photo of a {}.\".\n"
    "Writes into the --out folder:\n"
    "  tiny_clip.pt            the weights, a state dict with OpenAI's key names (torch.load and\n"
    "                          atp's CLIP loader read it)\n"
    "  tiny_clip_vocab.txt.gz  the BPE merges, in the format of OpenAI's bpe_simple_vocab_16e6\n"
    "  tiny_clip.json          options, losses, zero-shot accuracy (overall and per class), times\n"
    "When these exist and were made with the same options, nothing is retrained.";

int Fail(const Status& status) {
  std::fprintf(stderr, "atp pretrain: %s\n", status.message().c_str());
  return 1;
}

std::string Duration(double seconds) {
  const long s = std::lround(seconds);
  char buf[32];
  if (s >= 60) {
    std::snprintf(buf, sizeof(buf), "%ldm %02lds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%lds", s);
  }
  return buf;
}

// The option names whose values differ, for the message when outputs are replaced.
std::string Differences(const Json& have, const Json& want) {
  std::string out;
  for (const auto& [key, value] : want.items()) {
    if (!have.contains(key) || have[key] != value) {
      out += (out.empty() ? "" : ", ") + key + " " + (have.contains(key) ? have[key].dump() : "unset") + " -> " +
             value.dump();
    }
  }
  return out;
}

void PrintReport(const pretrain::TinyClipReport& r) {
  std::printf("zero-shot accuracy on the test split (\"a photo of a {}.\"), %s view: %.2f%% of %lld images\n",
              r.options.view.c_str(), 100.0 * r.zero_shot_accuracy, static_cast<long long>(r.test_images));
  for (const auto& c : r.per_class) {
    std::printf("  %-12s %6.2f%%  (%lld/%lld)\n", c.classname.c_str(), 100.0 * c.accuracy(),
                static_cast<long long>(c.correct), static_cast<long long>(c.total));
  }
  if (r.options.view != "plain") {
    // What the prompt learners start from: the dataset as imported, which pretraining never saw.
    std::printf("zero-shot accuracy on the dataset's own images (never seen in pretraining): %.2f%%\n",
                100.0 * r.dataset_zero_shot_accuracy);
  }
}

}  // namespace

int RunPretrainCommand(int argc, char** argv) {
  pretrain::TinyClipOptions options;
  std::string data_root_flag, out_dir;
  bool force = false;
  auto app = MakeCommand(
      "atp pretrain",
      "atp pretrain --data-root DIR --out DIR [--epochs N] [--seed S] [--view V] [--threads T] [--force]\n"
      "             [--vision-width W] [--vision-layers L] [--text-width W] [--text-layers L] [--embed-dim E]",
      kDescription);
  app->add_option("--data-root", data_root_flag, "the data root holding fashion_mnist/")->type_name("DIR")->required();
  app->add_option("--out", out_dir, "where the three files go (created if missing)")->type_name("DIR")->required();
  AddIntFlag(app.get(), "--epochs", "N", "passes over the train split (default " + std::to_string(options.epochs) + ")",
             &options.epochs, 1, 1000);
  AddIntFlag(app.get(), "--seed", "S",
             "seeds initialisation, batch order, captions and shifts (default " + std::to_string(options.seed) + ")",
             &options.seed, 0);
  app->add_option("--view", options.view,
                  "how the pretraining images differ from the dataset's own: plain,\nfaded, negative or red (default " +
                      options.view + "; docs/pretrain.md)")
      ->type_name("V");
  AddIntFlag(app.get(), "--threads", "T", "CPU threads (default: every core of this process's share)", &options.threads,
             0, 1024);
  app->add_flag("--force", force, "retrain even when matching outputs exist");
  const std::string per_class = "use only the first N images of each class (quick runs; default all)";
  AddIntFlag(app.get(), "--max-train-per-class", "N", per_class, &options.max_train_per_class, 0, 1000000);
  AddIntFlag(app.get(), "--max-test-per-class", "N", per_class, &options.max_test_per_class, 0, 1000000);
  // The model's size: a wider CLIP than the default serves as the teacher of the PromptKD demo.
  AddIntFlag(app.get(), "--vision-width", "W",
             "image tower width, a multiple of 64 (default " + std::to_string(options.vision_width) + ")",
             &options.vision_width, 64, 4096);
  AddIntFlag(app.get(), "--vision-layers", "L", "image tower blocks (default " + std::to_string(options.vision_layers) + ")",
             &options.vision_layers, 1, 64);
  AddIntFlag(app.get(), "--text-width", "W",
             "text tower width, a multiple of 64 (default " + std::to_string(options.text_width) + ")",
             &options.text_width, 64, 4096);
  AddIntFlag(app.get(), "--text-layers", "L", "text tower blocks (default " + std::to_string(options.text_layers) + ")",
             &options.text_layers, 1, 64);
  AddIntFlag(app.get(), "--embed-dim", "E", "joint embedding width (default " + std::to_string(options.embed_dim) + ")",
             &options.embed_dim, 1, 4096);
  if (auto code = ParseCommandLine(app.get(), argc, argv)) return *code;
  std::error_code ec;
  // The report records the absolute root, so a run from another folder is recognised.
  options.data_root = std::filesystem::absolute(data_root_flag, ec).lexically_normal().string();
  if (ec) options.data_root = data_root_flag;
  if (Status s = options.Validate(); !s.ok()) return ReportUsageError(*app, s.message());

  const std::string split = options.data_root + "/fashion_mnist/split_zhou_FashionMNIST.json";
  if (!std::filesystem::is_regular_file(split, ec)) {
    std::fprintf(stderr,
                 "atp pretrain: no Fashion-MNIST under %s (%s is missing). Import it first:\n"
                 "  atp data import-fashion-mnist --out %s\n"
                 "(it reads Debian's dataset-fashion-mnist package from /usr/share/datasets/fashion-mnist)\n",
                 options.data_root.c_str(), split.c_str(), data_root_flag.c_str());
    return 1;
  }

  const pretrain::TinyClipPaths paths = pretrain::TinyClipPathsIn(out_dir);
  if (std::filesystem::exists(paths.report, ec)) {
    auto existing = pretrain::ReadTinyClipReport(paths.report);
    const bool files = std::filesystem::is_regular_file(paths.checkpoint, ec) &&
                       std::filesystem::is_regular_file(paths.vocabulary, ec);
    const bool same_captions = existing.ok() && existing->corpus_sha256 == pretrain::FashionMnistCorpusSha256();
    if (existing.ok() && files && same_captions && existing->options.ToJson() == options.ToJson() && !force) {
      std::printf("atp pretrain: %s is up to date (same options; trained in %s); use --force to retrain\n",
                  paths.checkpoint.c_str(), Duration(existing->total_seconds).c_str());
      PrintReport(*existing);
      return 0;
    }
    if (!existing.ok()) {
      std::printf("note: replacing %s, which cannot be read (%s)\n", paths.report.c_str(),
                  existing.status().message().c_str());
    } else if (existing->options.ToJson() != options.ToJson()) {
      std::printf("note: replacing the run in %s, made with other options (%s)\n", out_dir.c_str(),
                  Differences(existing->options.ToJson(), options.ToJson()).c_str());
    } else if (!same_captions) {
      std::printf("note: replacing the run in %s, made from other captions (this atp's caption corpus changed)\n",
                  out_dir.c_str());
    } else if (!files) {
      std::printf("note: %s lacks its checkpoint or vocabulary; retraining\n", out_dir.c_str());
    }
  }

  std::printf("atp pretrain: tiny CLIP on %s, %d epoch%s, seed %llu, %s view -> %s\n", options.data_root.c_str(),
              options.epochs, options.epochs == 1 ? "" : "s", static_cast<unsigned long long>(options.seed),
              options.view.c_str(), out_dir.c_str());
  std::fflush(stdout);
  ProgressBarOptions bar_options;
  bar_options.label = "pretrain";
  bar_options.unit = "steps";
  bar_options.terminal = IsTerminal(stdout);
  ProgressBar bar(bar_options, stdout);
  auto on_step = [&bar](int64_t step, int64_t total, double loss) {
    bar.SetTotal(total);
    char detail[48];
    std::snprintf(detail, sizeof detail, "loss %.3f", loss);
    bar.Update(step, detail);
  };
  auto progress = [&bar](const pretrain::EpochProgress& p) {
    char line[160];
    std::snprintf(line, sizeof line, "epoch %d/%d: loss %.4f, %.0f images/s, %s elapsed, ETA %s", p.epoch, p.epochs,
                  p.mean_loss, p.images_per_second, Duration(p.elapsed_seconds).c_str(), Duration(p.eta_seconds).c_str());
    bar.Message(line);
  };
  auto report = pretrain::PretrainTinyClip(options, out_dir, progress, on_step);
  bar.Finish();
  if (!report.ok()) return Fail(report.status());
  std::printf("model: %s; vocabulary %d ids (%d merges); %lld train images, %d threads\n", report->model.c_str(),
              report->vocab_size, report->num_merges, static_cast<long long>(report->train_images),
              report->threads_used);
  PrintReport(*report);
  std::printf("wall time %s (prepare %s, train %s, evaluate %s)\nwrote %s, %s, %s\n",
              Duration(report->total_seconds).c_str(), Duration(report->prepare_seconds).c_str(),
              Duration(report->train_seconds).c_str(), Duration(report->eval_seconds).c_str(),
              paths.checkpoint.c_str(), paths.vocabulary.c_str(), paths.report.c_str());
  return 0;
}

}  // namespace atp
