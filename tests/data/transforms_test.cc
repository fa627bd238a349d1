// The CLIP test transform against PIL + torchvision's geometry (fixtures/pil_expected.json
// "clip_test"), normalisation, RandomResizedCrop's rules and the keyed augmentation stream.
#include "worker/data/transforms.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <cmath>

#include "tests/data/test_util.h"
#include "worker/data/resample.h"

namespace atp::data {
namespace {

class TransformsTest : public ::testing::Test {
 protected:
  Json expected_ = testing::LoadFixture("pil_expected.json");
};

TEST_F(TransformsTest, ClipTestImageMatchesPilResizeAndCenterCrop) {
  ASSERT_EQ(expected_["clip_test"].size(), 3u);
  for (const Json& c : expected_["clip_test"]) {
    const Image src = testing::Pattern(c["src"][0], c["src"][1], c["src"][2]);
    const int r = c["resolution"];
    const Image out = ClipTestImage(src, r);
    ASSERT_EQ(out.width, r);
    ASSERT_EQ(out.height, r);
    EXPECT_EQ(testing::Md5Hex(out.rgb), c["md5"].get<std::string>()) << src.width << "x" << src.height;
  }
}

TEST_F(TransformsTest, ClipTestTransformNormalisesWithClipMeanAndStd) {
  const Image src = testing::Pattern(40, 30, 5);
  const at::Tensor t = ClipTestTransform(src, 16);
  ASSERT_EQ(t.sizes(), (at::IntArrayRef{3, 16, 16}));
  EXPECT_EQ(t.scalar_type(), at::kFloat);
  const Image square = ClipTestImage(src, 16);
  for (int c = 0; c < 3; ++c) {
    const float x = static_cast<float>(square.rgb[(5 * 16 + 7) * 3 + c]);
    const float want = (x / 255.0f - kClipMean[c]) / kClipStd[c];
    EXPECT_EQ(t[c][5][7].item<float>(), want);
  }
}

TEST_F(TransformsTest, ResizeAndCenterCropFollowTorchvisionRounding) {
  int w, h;
  ShortSideResize(500, 375, 224, &w, &h);
  EXPECT_EQ(w, 298);  // int(224 * 500 / 375) = int(298.67)
  EXPECT_EQ(h, 224);
  ShortSideResize(224, 225, 224, &w, &h);
  EXPECT_EQ(h, 225);
  // (225 - 224) / 2 = 0.5 rounds to 0, (227 - 224) / 2 = 1.5 rounds to 2 (half to even).
  EXPECT_EQ(CenterCropBox(224, 225, 224).top, 0);
  EXPECT_EQ(CenterCropBox(227, 224, 224).left, 2);
}

TEST_F(TransformsTest, RandomResizedCropStaysInsideAndCoversTheScaleRange) {
  double min_frac = 1.0, max_frac = 0.0;
  for (int i = 0; i < 2000; ++i) {
    CounterRandom rng(7, RandomDomain::kAugment, 0, static_cast<uint64_t>(i));
    const CropBox b = RandomResizedCropBox(320, 240, &rng);
    ASSERT_GT(b.width, 0);
    ASSERT_GT(b.height, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_GE(b.top, 0);
    ASSERT_LE(b.left + b.width, 320);
    ASSERT_LE(b.top + b.height, 240);
    const double frac = static_cast<double>(b.width) * b.height / (320.0 * 240.0);
    min_frac = std::min(min_frac, frac);
    max_frac = std::max(max_frac, frac);
  }
  EXPECT_LT(min_frac, 0.1);
  EXPECT_GT(min_frac, 0.07);
  EXPECT_GT(max_frac, 0.9);
}

TEST_F(TransformsTest, RandomResizedCropFallsBackToClampedCentralCrop) {
  // A 1000x10 strip: no try can fit, so the central crop with aspect clamped to 4/3.
  CounterRandom rng(1, RandomDomain::kAugment, 0, 0);
  const CropBox b = RandomResizedCropBox(1000, 10, &rng);
  EXPECT_EQ(b.height, 10);
  EXPECT_EQ(b.width, 13);
  EXPECT_EQ(b.top, 0);
  EXPECT_EQ(b.left, (1000 - 13) / 2);
  CounterRandom rng2(1, RandomDomain::kAugment, 0, 0);
  const CropBox tall = RandomResizedCropBox(10, 1000, &rng2);
  EXPECT_EQ(tall.width, 10);
  EXPECT_EQ(tall.height, 13);  // round(10 / 0.75) = 13
}

TEST_F(TransformsTest, AugmentationIsAPureFunctionOfSeedEpochAndIndex) {
  const Image src = testing::Pattern(120, 90, 2);
  const at::Tensor a = TrainAugment(src, 32, 5, 3, 17);
  const at::Tensor other = TrainAugment(src, 32, 5, 3, 18);
  const at::Tensor b = TrainAugment(src, 32, 5, 3, 17);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_FALSE(at::equal(a, other));
  EXPECT_FALSE(at::equal(a, TrainAugment(src, 32, 5, 4, 17)));
  EXPECT_FALSE(at::equal(a, TrainAugment(src, 32, 6, 3, 17)));
  EXPECT_EQ(a.sizes(), (at::IntArrayRef{3, 32, 32}));
}

TEST_F(TransformsTest, AugmentationIsCropThenBicubicResizeThenFlip) {
  const Image src = testing::Pattern(60, 45, 1);
  AugmentParams p;
  p.box = CropBox{5, 7, 30, 20};
  p.flip = true;
  Image want = ResizeBicubic(Crop(src, 7, 5, 20, 30), 24, 24);
  FlipHorizontal(&want);
  EXPECT_EQ(TrainAugmentImage(src, 24, p).rgb, want.rgb);
}

TEST_F(TransformsTest, FlipHappensAboutHalfTheTime) {
  int flips = 0;
  for (int i = 0; i < 4000; ++i) flips += DrawAugmentParams(200, 100, 11, 0, i).flip;
  EXPECT_NEAR(flips / 4000.0, 0.5, 0.03);
}

}  // namespace
}  // namespace atp::data
