#include "tools/clip_command.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common/flag_value.h"
#include "common/progress_bar.h"
#include "tools/command_line.h"
#include "worker/clip/clip_checkpoint.h"
#include "worker/clip/npy.h"
#include "worker/clip/tokenizer.h"
#if ATP_CLIP_IMAGE_FILES
#include "worker/data/image.h"
#include "worker/data/transforms.h"
#endif

namespace atp {
namespace {

using clip::ClipTokenizer;
using clip::OverlongPolicy;

int Fail(const std::string& message, int code = 1) {
  std::fprintf(stderr, "atp clip: %s\n", message.c_str());
  return code;
}

Result<std::shared_ptr<const ClipTokenizer>> LoadTokenizer(const std::string& vocab) {
  ATP_ASSIGN_OR_RETURN(std::string path, clip::ResolveVocabPath(vocab));
  return ClipTokenizer::Load(path);
}

// Tokenizes lines; an over-long line is an error naming its 1-based number in `what`.
Result<torch::Tensor> TokenizeLines(const ClipTokenizer& tok, const std::vector<std::string>& lines,
                                    OverlongPolicy policy, const std::string& what) {
  torch::Tensor ids = torch::zeros({static_cast<int64_t>(lines.size()), clip::kContextLength}, torch::kLong);
  for (size_t i = 0; i < lines.size(); ++i) {
    auto r = tok.Tokenize(lines[i], policy);
    if (!r.ok()) return r.status().WithContext(what + " line " + std::to_string(i + 1));
    for (int j = 0; j < clip::kContextLength; ++j) ids[static_cast<int64_t>(i)][j] = (*r)[static_cast<size_t>(j)];
  }
  return ids;
}

std::string StripNewline(std::string line) {
  if (!line.empty() && line.back() == '\n') line.pop_back();
  return line;
}

struct TokenizeFlags {
  std::string vocab;
  bool truncate = false;
};

int RunTokenize(const TokenizeFlags& flags) {
  const std::string& vocab = flags.vocab;
  const OverlongPolicy policy = flags.truncate ? OverlongPolicy::kTruncate : OverlongPolicy::kError;
  auto tok = LoadTokenizer(vocab);
  if (!tok.ok()) return Fail(tok.status().message());
  std::string line;
  int64_t number = 0;
  while (std::getline(std::cin, line)) {
    ++number;
    auto ids = (*tok)->Tokenize(line, policy);
    if (!ids.ok()) {
      std::cout.flush();
      return Fail("stdin line " + std::to_string(number) + ": " + ids.status().message() +
                  (policy == OverlongPolicy::kError ? " (--truncate keeps the first 77 tokens)" : ""));
    }
    std::string out;
    for (size_t j = 0; j < ids->size(); ++j) out += (j ? " " : "") + std::to_string((*ids)[j]);
    std::cout << out << '\n';
  }
  return 0;
}

Result<torch::Tensor> LoadPixelsNpy(const std::string& path, int64_t resolution) {
  ATP_ASSIGN_OR_RETURN(clip::NpyArray a, clip::ReadNpy(path));
  if (a.dtype == clip::NpyDtype::kUint8) {
    return InvalidArgument(path + " holds uint8 values; --images X.npy expects preprocessed float pixels "
                           "(CLIP mean/std normalised), or pass the image files themselves");
  }
  if (a.shape.size() != 4 || a.shape[1] != 3 || a.shape[2] != resolution || a.shape[3] != resolution) {
    std::string s;
    for (int64_t d : a.shape) s += (s.empty() ? "" : ", ") + std::to_string(d);
    return InvalidArgument(path + " has shape [" + s + "]; this checkpoint needs [N, 3, " + std::to_string(resolution) +
                           ", " + std::to_string(resolution) + "]");
  }
  std::vector<float> v = a.ToFloat32();
  return torch::from_blob(v.data(), a.shape, torch::kFloat32).clone();
}

Result<torch::Tensor> LoadImageFiles(const std::vector<std::string>& paths, int64_t resolution) {
#if ATP_CLIP_IMAGE_FILES
  std::vector<torch::Tensor> images;
  for (const std::string& p : paths) {
    ATP_ASSIGN_OR_RETURN(data::Image image, data::DecodeImageFile(p));
    images.push_back(data::ClipTestTransform(image, static_cast<int>(resolution)));
  }
  return torch::stack(images);
#else
  return FailedPrecondition("this atp was built without image decoding (worker/data); pass preprocessed pixels as "
                            "--images X.npy [N, 3, " + std::to_string(resolution) + ", " + std::to_string(resolution) +
                            "] instead of " + paths.front());
#endif
}

Status WriteFeatures(const std::string& path, const torch::Tensor& features) {
  torch::Tensor f = features.to(torch::kFloat32).contiguous();
  return clip::WriteNpyFloat32(path, f.sizes().vec(), f.data_ptr<float>());
}

// Progress on stderr (stdout says what was written): a bar on a terminal, a line per 10 s and
// the final one in a log.
ProgressBarOptions EncodeBarOptions(const std::string& label, const std::string& unit, int64_t total) {
  ProgressBarOptions o;
  o.label = label;
  o.unit = unit;
  o.total = total;
  o.terminal = IsTerminal(stderr);
  return o;
}

struct EncodeFlags {
  std::string checkpoint, vocab, texts_path, out_dir;
  std::vector<std::string> images;
  bool truncate = false;
  int64_t batch = 32;
};

int RunEncode(const CLI::App& command, const EncodeFlags& flags) {
  const std::string& checkpoint = flags.checkpoint;
  const std::string& vocab = flags.vocab;
  const std::string& texts_path = flags.texts_path;
  const std::string& out_dir = flags.out_dir;
  const std::vector<std::string>& images = flags.images;
  const OverlongPolicy policy = flags.truncate ? OverlongPolicy::kTruncate : OverlongPolicy::kError;
  const int64_t batch = flags.batch;
  if (checkpoint.empty() || out_dir.empty()) return ReportUsageError(command, "--checkpoint and --out are required");
  if (images.empty() && texts_path.empty()) {
    return ReportUsageError(command, "nothing to encode: pass --images and/or --texts");
  }

  auto model = clip::LoadClip(checkpoint);
  if (!model.ok()) return Fail(model.status().message());
  torch::NoGradGuard no_grad;
  const int64_t resolution = (*model)->options.vision.input_resolution();
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return Fail("cannot create " + out_dir + ": " + ec.message());

  if (!images.empty()) {
    const bool npy = images.size() == 1 && images[0].size() >= 4 && images[0].compare(images[0].size() - 4, 4, ".npy") == 0;
    auto pixels = npy ? LoadPixelsNpy(images[0], resolution) : LoadImageFiles(images, resolution);
    if (!pixels.ok()) return Fail(pixels.status().message());
    std::vector<torch::Tensor> parts;
    ProgressBar bar(EncodeBarOptions("encode images", "images", pixels->size(0)), stderr);
    for (int64_t s = 0; s < pixels->size(0); s += batch) {
      parts.push_back((*model)->EncodeImage(pixels->narrow(0, s, std::min(batch, pixels->size(0) - s))));
      bar.Update(std::min(s + batch, pixels->size(0)));
    }
    bar.Finish();
    torch::Tensor features = parts.empty() ? torch::zeros({0, (*model)->options.embed_dim()}) : torch::cat(parts);
    Status st = WriteFeatures(out_dir + "/image_features.npy", features);
    if (!st.ok()) return Fail(st.message());
    std::cout << "image_features " << features.size(0) << " x " << features.size(1) << " -> " << out_dir
              << "/image_features.npy\n";
  }
  if (!texts_path.empty()) {
    auto tok = LoadTokenizer(vocab);
    if (!tok.ok()) return Fail(tok.status().message());
    if ((*model)->options.text.vocab_size() != (*tok)->vocab_size()) {
      return Fail(checkpoint + " has a vocabulary of " + std::to_string((*model)->options.text.vocab_size()) +
                  " tokens but the tokenizer has " + std::to_string((*tok)->vocab_size()) +
                  "; this checkpoint cannot encode tokenized text");
    }
    std::ifstream in(texts_path);
    if (!in) return Fail("cannot open " + texts_path);
    std::vector<std::string> lines;
    std::string line;
    while (std::getline(in, line)) lines.push_back(StripNewline(line));
    auto ids = TokenizeLines(**tok, lines, policy, texts_path);
    if (!ids.ok()) return Fail(ids.status().message());
    std::vector<torch::Tensor> parts;
    ProgressBar bar(EncodeBarOptions("encode texts", "texts", ids->size(0)), stderr);
    for (int64_t s = 0; s < ids->size(0); s += batch) {
      parts.push_back((*model)->EncodeText(ids->narrow(0, s, std::min(batch, ids->size(0) - s))));
      bar.Update(std::min(s + batch, ids->size(0)));
    }
    bar.Finish();
    torch::Tensor features = parts.empty() ? torch::zeros({0, (*model)->options.embed_dim()}) : torch::cat(parts);
    Status st = WriteFeatures(out_dir + "/text_features.npy", features);
    if (!st.ok()) return Fail(st.message());
    std::cout << "text_features " << features.size(0) << " x " << features.size(1) << " -> " << out_dir
              << "/text_features.npy\n";
  }
  const double log_scale = (*model)->logit_scale.item<double>();
  char line[96];
  std::snprintf(line, sizeof(line), "logit_scale %.6f (exp %.4f)\n", log_scale, std::exp(log_scale));
  std::cout << line;
  return 0;
}

}  // namespace

int RunClipCommand(int argc, char** argv) {
  auto app = MakeCommand("atp clip", "atp clip COMMAND [options]",
                         "Tokenizes text and encodes images and texts with a CLIP checkpoint.");
  app->require_subcommand(1);
  const std::string vocab_help = "the BPE vocabulary (default $ATP_CLIP_VOCAB or ../shared/clip/)";
  const std::string truncate_help = "keep the first 77 tokens of an over-long text (default: an error)";

  TokenizeFlags tokenize_flags;
  CLI::App* tokenize = AddSubcommand(
      app.get(), "tokenize", "print the 77 token ids of each line on stdin",
      "atp clip tokenize [--vocab V] [--truncate]",
      "Reads lines on stdin; prints each line's 77 token ids (space separated, zero padded).");
  tokenize->add_option("--vocab", tokenize_flags.vocab, vocab_help)->type_name("V");
  tokenize->add_flag("--truncate", tokenize_flags.truncate, truncate_help);

  EncodeFlags encode_flags;
  CLI::App* encode = AddSubcommand(
      app.get(), "encode", "write the image and text features of a CLIP checkpoint",
      "atp clip encode --checkpoint C [--vocab V] [--images X.npy | --images a.jpg b.png ...]\n"
      "                [--texts T.txt] [--truncate] [--batch-size N] --out DIR",
      "Writes DIR/image_features.npy and DIR/text_features.npy (float32, unnormalised)\n"
      "and prints logit_scale. X.npy holds preprocessed pixels [N, 3, R, R]; T.txt one text\n"
      "per line.");
  encode->add_option("--checkpoint", encode_flags.checkpoint, "the CLIP checkpoint (required)")->type_name("C");
  encode->add_option("--vocab", encode_flags.vocab, vocab_help)->type_name("V");
  encode->add_option("--images", encode_flags.images, "preprocessed pixels (one .npy) or image files")
      ->type_name("X.npy|FILE ...");
  encode->add_option("--texts", encode_flags.texts_path, "one text per line")->type_name("T.txt");
  encode->add_flag("--truncate", encode_flags.truncate, truncate_help);
  AddIntFlag(encode, "--batch-size", "N",
             "images or texts per forward pass (default " + std::to_string(encode_flags.batch) + ")",
             &encode_flags.batch, 1, 1 << 20);
  encode->add_option("--out", encode_flags.out_dir, "where the .npy files go (required)")->type_name("DIR");
  if (auto code = ParseCommandLine(app.get(), argc, argv)) return *code;
  try {
    if (tokenize->parsed()) return RunTokenize(tokenize_flags);
    return RunEncode(*encode, encode_flags);
  } catch (const c10::Error& e) {
    return Fail(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Fail(e.what());
  }
}

}  // namespace atp
