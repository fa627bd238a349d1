#include "worker/prompt/precision.h"

#include <gtest/gtest.h>

#include <ATen/autocast_mode.h>

#include "worker/prompt/prompt_model.h"

namespace atp::prompt {
namespace {

TEST(PrecisionTest, AutoIsFp32OnTheCpuAndFollowsCompatOnCuda) {
  EXPECT_EQ(*ResolvePrecision("auto", Compat::kPaper, torch::kCPU), Precision::kFp32);
  EXPECT_EQ(*ResolvePrecision("auto", Compat::kOfficial, torch::kCPU), Precision::kFp32);
  const torch::Device gpu(torch::kCUDA, 0);  // ResolvePrecision only reads the device type
  EXPECT_EQ(*ResolvePrecision("auto", Compat::kOfficial, gpu), Precision::kFp16);
  EXPECT_EQ(*ResolvePrecision("auto", Compat::kPaper, gpu), Precision::kBf16);
  EXPECT_EQ(*ResolvePrecision("bf16", Compat::kPaper, torch::kCPU), Precision::kBf16);
  EXPECT_EQ(*ResolvePrecision("fp16", Compat::kPaper, gpu), Precision::kFp16);
}

TEST(PrecisionTest, Fp16OnTheCpuIsRefusedWithAReason) {
  Result<Precision> p = ResolvePrecision("fp16", Compat::kOfficial, torch::kCPU);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("CUDA"), std::string::npos) << p.status().message();
  EXPECT_FALSE(ResolvePrecision("fp8", Compat::kPaper, torch::kCPU).ok());
}

TEST(PrecisionTest, Bf16ScopeTurnsCpuAutocastOnAndRestoresIt) {
  ASSERT_FALSE(at::autocast::is_cpu_enabled());
  {
    PrecisionScope scope(Precision::kBf16, torch::kCPU);
    EXPECT_TRUE(at::autocast::is_cpu_enabled());
    torch::Tensor a = torch::randn({4, 8});
    EXPECT_EQ(a.matmul(torch::randn({8, 3})).scalar_type(), torch::kBFloat16);
    {
      FullPrecisionScope fp32;
      EXPECT_FALSE(at::autocast::is_cpu_enabled());
    }
    EXPECT_TRUE(at::autocast::is_cpu_enabled());
  }
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
  PrecisionScope none(Precision::kFp32, torch::kCPU);
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
}

// Regression: the cosine logits ran inside autocast, so under bf16 they were bf16 (about 0.2
// resolution at CLIP's logit scale) and an argmax or a loss could change.
TEST(PrecisionTest, CosineLogitsAndLossAreFp32UnderBf16Autocast) {
  torch::manual_seed(3);
  const torch::Tensor image = torch::randn({6, 32});
  const torch::Tensor text = torch::randn({5, 32});
  const torch::Tensor scale = torch::tensor(std::log(100.0));
  const torch::Tensor labels = torch::tensor({0, 1, 2, 3, 4, 0}, torch::kLong);
  const torch::Tensor reference = CosineLogits(image, text, scale);
  const torch::Tensor reference_loss = ShardCrossEntropy(reference, labels, 6);
  PrecisionScope bf16(Precision::kBf16, torch::kCPU);
  const torch::Tensor logits = CosineLogits(image, text, scale);
  EXPECT_EQ(logits.scalar_type(), torch::kFloat32);
  EXPECT_LT((logits - reference).abs().max().item<double>(), 1e-5);
  const torch::Tensor loss = ShardCrossEntropy(logits, labels, 6);
  EXPECT_EQ(loss.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(loss.item<double>(), reference_loss.item<double>(), 1e-6);
  // bf16 features (what a bf16 forward pass hands over) still give fp32 logits.
  EXPECT_EQ(CosineLogits(image.to(torch::kBFloat16), text.to(torch::kBFloat16), scale).scalar_type(),
            torch::kFloat32);
}

}  // namespace
}  // namespace atp::prompt
