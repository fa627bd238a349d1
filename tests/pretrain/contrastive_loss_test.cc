#include "worker/pretrain/contrastive_loss.h"

#include <gtest/gtest.h>

#include <cmath>

namespace atp::pretrain {
namespace {

// The loss written out with loops, as a second implementation.
double ReferenceLoss(const torch::Tensor& logits, const std::vector<int64_t>& img, const std::vector<int64_t>& txt) {
  auto l = logits.accessor<float, 2>();
  const size_t n = img.size(), m = txt.size();
  double i2t = 0.0, t2i = 0.0;
  for (size_t i = 0; i < n; ++i) {
    double z = 0.0, pos = 0.0, k = 0.0;
    for (size_t j = 0; j < m; ++j) z += std::exp(l[i][j]);
    for (size_t j = 0; j < m; ++j) {
      if (txt[j] == img[i]) {
        pos += l[i][j] - std::log(z);
        k += 1;
      }
    }
    i2t -= pos / k;
  }
  for (size_t j = 0; j < m; ++j) {
    double z = 0.0, pos = 0.0, k = 0.0;
    for (size_t i = 0; i < n; ++i) z += std::exp(l[i][j]);
    for (size_t i = 0; i < n; ++i) {
      if (txt[j] == img[i]) {
        pos += l[i][j] - std::log(z);
        k += 1;
      }
    }
    t2i -= pos / k;
  }
  return (i2t / n + t2i / m) / 2;
}

TEST(MultiPositiveClipLossTest, IsClipsLossWhenEveryClassHasOnePair) {
  torch::manual_seed(3);
  torch::Tensor logits = torch::randn({5, 5}) * 4;
  torch::Tensor classes = torch::arange(5);
  torch::Tensor clip = (torch::nn::functional::cross_entropy(logits, classes) +
                        torch::nn::functional::cross_entropy(logits.t(), classes)) / 2;
  EXPECT_NEAR(MultiPositiveClipLoss(logits, classes, classes).item<float>(), clip.item<float>(), 1e-5);
}

TEST(MultiPositiveClipLossTest, CountsEveryPairOfTheSameClassAsPositive) {
  torch::manual_seed(4);
  torch::Tensor logits = torch::randn({6, 4}) * 3;
  const std::vector<int64_t> img = {0, 0, 1, 2, 2, 2}, txt = {0, 1, 2, 0};
  const float got = MultiPositiveClipLoss(logits, torch::tensor(img), torch::tensor(txt)).item<float>();
  EXPECT_NEAR(got, ReferenceLoss(logits, img, txt), 1e-4);
}

TEST(MultiPositiveClipLossTest, ClassmatesAreNotPushedApart) {
  // Two images and two captions of one class, all equally similar: the loss is at its minimum
  // (log 2 per direction), where plain InfoNCE would still push the cross pairs apart.
  torch::Tensor logits = torch::full({2, 2}, 5.0f);
  const float loss = MultiPositiveClipLoss(logits, torch::tensor({0, 0}), torch::tensor({0, 0})).item<float>();
  EXPECT_NEAR(loss, std::log(2.0), 1e-6);
  torch::Tensor grad_logits = torch::full({2, 2}, 5.0f).requires_grad_(true);
  MultiPositiveClipLoss(grad_logits, torch::tensor({0, 0}), torch::tensor({0, 0})).backward();
  EXPECT_LT(grad_logits.grad().abs().max().item<float>(), 1e-6);
}

TEST(MultiPositiveClipLossTest, RejectsAClassWithoutAPartner) {
  torch::Tensor logits = torch::zeros({2, 2});
  EXPECT_THROW(MultiPositiveClipLoss(logits, torch::tensor({0, 1}), torch::tensor({0, 0})), c10::Error);
  EXPECT_THROW(MultiPositiveClipLoss(logits, torch::tensor({0, 1, 2}), torch::tensor({0, 1})), c10::Error);
}

}  // namespace
}  // namespace atp::pretrain
