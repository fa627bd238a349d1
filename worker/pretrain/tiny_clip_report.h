// The record of one tiny-CLIP pretraining run: the options that determine the weights (what
// `atp pretrain` compares to decide whether a finished run can be reused), the figures it
// measured, and where its three output files live. Plain values with JSON conversion; no
// libtorch. Thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/status.h"

namespace atp::pretrain {

struct TinyClipOptions {
  std::string data_root;  // holds fashion_mnist/ as `atp data import-fashion-mnist` writes it
  int epochs = 2;
  uint64_t seed = 1;
  int threads = 0;  // 0 = every core of the process's share (ResolveCpuThreads); not part of the identity of a run
  int batch_size = 256;
  double learning_rate = 2e-3;
  double weight_decay = 0.1;
  int warmup_steps = 50;
  // 0 = every image of the split; otherwise the first N of each class (tests, quick runs).
  int max_train_per_class = 0;
  int max_test_per_class = 0;
  int max_merges = 1000;  // BPE merges at most; the corpus usually runs out of pairs first
  // The model. Heads are width / 64, as CLIP's checkpoint loader infers them.
  int resolution = 32;
  int patch_size = 8;
  int vision_width = 128;
  int vision_layers = 3;
  int text_width = 128;
  int text_layers = 3;
  int context_length = 77;
  int embed_dim = 128;
  // How the pretraining images differ from the dataset's own (PretrainViewNames()): the tiny
  // CLIP's world, which the downstream task (the dataset as imported) then differs from.
  std::string view = "plain";

  // Everything but `threads` (float reductions may differ with the thread count, but the run
  // is the same run).
  Json ToJson() const;
  static Result<TinyClipOptions> FromJson(const Json& json);
  // Widths multiples of 64, patch dividing the resolution, positive counts; says which flag.
  Status Validate() const;
};

// The pretraining views, each a map of a pixel's 8-bit RGB values (ApplyPretrainView):
//   plain     the images as imported (grey garments on black)
//   negative  255 - v: dark garments on white, as a photographic negative
//   faded     64 + v / 2: low contrast on grey
//   red       (v, 0, 0): red garments on black
const std::vector<std::string>& PretrainViewNames();
// Maps `count` values of one colour channel (0 = R, 1 = G, 2 = B) in place.
void ApplyPretrainView(const std::string& view, int channel, uint8_t* values, int64_t count);

struct ClassAccuracy {
  std::string classname;
  int64_t correct = 0;
  int64_t total = 0;
  double accuracy() const { return total > 0 ? static_cast<double>(correct) / static_cast<double>(total) : 0.0; }
};

struct TinyClipReport {
  TinyClipOptions options;
  int threads_used = 0;
  int vocab_size = 0;
  int num_merges = 0;
  int64_t train_images = 0;
  int64_t test_images = 0;
  int64_t steps = 0;
  std::vector<double> epoch_losses;   // mean loss of each epoch
  double zero_shot_accuracy = 0.0;    // on the test split in the pretraining view, "a photo of a {}."
  std::vector<ClassAccuracy> per_class;
  // The same on the dataset's own test images (equal to the above for the plain view): what a
  // prompt learner starts from.
  double dataset_zero_shot_accuracy = 0.0;
  double prepare_seconds = 0.0;       // vocabulary, decoding, model
  double train_seconds = 0.0;
  double eval_seconds = 0.0;
  double total_seconds = 0.0;
  std::string model;                  // ClipOptions::ToString()
  std::string corpus_sha256;          // FashionMnistCorpusSha256() of the captions used

  Json ToJson() const;
  static Result<TinyClipReport> FromJson(const Json& json, const std::string& source);
};

// The three files a run writes into its output folder.
struct TinyClipPaths {
  std::string checkpoint;  // tiny_clip.pt: torch.save-compatible state dict
  std::string vocabulary;  // tiny_clip_vocab.txt.gz: BPE merges, ClipTokenizer::Load format
  std::string report;      // tiny_clip.json: TinyClipReport
};
TinyClipPaths TinyClipPathsIn(const std::string& out_dir);

// Reads a report; errors name the file.
Result<TinyClipReport> ReadTinyClipReport(const std::string& path);
// Writes it through a temporary file and a rename.
Status WriteTinyClipReport(const TinyClipReport& report, const std::string& path);

}  // namespace atp::pretrain
