// bench_clip: the exact speed-ups of the CLIP towers, measured side by side on ViT-B/16-sized
// weights: the text encoder (forward+backward through a soft prompt) stopping after the last
// end token versus all 77 positions, and the frozen image encoder with and without autograd.
// Usage: atp_bench_clip [TEXT_BATCH=32] [IMAGE_BATCH=4] [REPEATS=3]
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "tests/clip/hash_weights.h"

using namespace atp::clip;

template <typename F>
double TimeIt(int reps, F f) {
  f();  // warm-up
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
}

int main(int argc, char** argv) {
  int text_batch = argc > 1 ? std::atoi(argv[1]) : 32;
  int image_batch = argc > 2 ? std::atoi(argv[2]) : 4;
  int reps = argc > 3 ? std::atoi(argv[3]) : 3;
  auto model = ClipFromStateDict(testing::HashStateDict(testing::VitB16Options()), "hash");
  if (!model.ok()) return 1;
  Clip clip = *model;
  // "X X X X {class}." prompts: end token at position 8..16.
  torch::Tensor ids = torch::zeros({text_batch, 77}, torch::kLong);
  for (int i = 0; i < text_batch; ++i) {
    int eot = 8 + i % 9;
    ids[i].narrow(0, 1, eot - 1).copy_(torch::randint(300, 40000, {eot - 1}));
    ids[i][0] = 49406;
    ids[i][eot] = 49407;
  }
  torch::Tensor base = clip->text()->Embed(ids).detach();
  torch::Tensor ctx = torch::randn({4, 512}, torch::requires_grad()) * 0.02;
  ctx = ctx.detach().requires_grad_(true);
  torch::Tensor eot = EotPositions(ids);
  auto text_step = [&](bool stop) {
    return [&, stop] {
      torch::Tensor emb = torch::cat({base.narrow(1, 0, 1), ctx.unsqueeze(0).expand({text_batch, 4, 512}),
                                      base.narrow(1, 5, 72)}, 1);
      clip->EncodeTextEmbeddings(emb, eot, {}, stop).sum().backward();
    };
  };
  double t_stop = TimeIt(reps, text_step(true)), t_full = TimeIt(reps, text_step(false));
  std::printf("text encoder fwd+bwd, %d prompts: up to last EOT (17 positions) %.3f s, all 77 %.3f s, ratio %.2fx\n",
              text_batch, t_stop, t_full, t_full / t_stop);
  torch::Tensor pixels = torch::randn({image_batch, 3, 224, 224});
  double t_nograd = TimeIt(reps, [&] { clip->EncodeImage(pixels); });
  torch::Tensor pixels_grad = pixels.clone().requires_grad_(true);
  double t_grad = TimeIt(reps, [&] { clip->EncodeImage(pixels_grad); });
  std::printf("image encoder forward, %d images: without autograd %.3f s, with autograd %.3f s, ratio %.2fx\n",
              image_batch, t_nograd, t_grad, t_grad / t_nograd);
  return 0;
}
