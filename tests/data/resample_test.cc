// PIL-compatible bicubic resampling: exact equality with Pillow's Image.resize(BICUBIC) on
// fixture patterns (fixtures/pil_expected.json "resize"), downscale, upscale and one-axis.
#include "worker/data/resample.h"

#include <gtest/gtest.h>

#include "tests/data/test_util.h"

namespace atp::data {
namespace {

class ResampleTest : public ::testing::Test {
 protected:
  Json expected_ = testing::LoadFixture("pil_expected.json");
};

TEST_F(ResampleTest, BicubicIsBitExactWithPillow) {
  ASSERT_GE(expected_["resize"].size(), 9u);
  for (const Json& c : expected_["resize"]) {
    const Image src = testing::Pattern(c["src"][0], c["src"][1], c["src"][2]);
    const int w = c["size"][0], h = c["size"][1];
    SCOPED_TRACE(std::to_string(src.width) + "x" + std::to_string(src.height) + " -> " +
                 std::to_string(w) + "x" + std::to_string(h));
    const Image out = ResizeBicubic(src, w, h);
    ASSERT_EQ(out.width, w);
    ASSERT_EQ(out.height, h);
    if (c.contains("rgb")) {
      EXPECT_EQ(out.rgb, c["rgb"].get<std::vector<uint8_t>>());
    } else {
      EXPECT_EQ(testing::Md5Hex(out.rgb), c["md5"].get<std::string>());
    }
  }
}

TEST_F(ResampleTest, SameSizeIsACopy) {
  const Image src = testing::Pattern(9, 7, 0);
  EXPECT_EQ(ResizeBicubic(src, 9, 7).rgb, src.rgb);
}

TEST_F(ResampleTest, CropAndFlip) {
  const Image src = testing::Pattern(9, 7, 0);
  Image c = Crop(src, 2, 3, 4, 2);
  ASSERT_EQ(c.width, 4);
  EXPECT_EQ(c.rgb[0], src.rgb[(3 * 9 + 2) * 3]);
  Image f = c;
  FlipHorizontal(&f);
  EXPECT_EQ(f.rgb[0], c.rgb[3 * 3]);
  FlipHorizontal(&f);
  EXPECT_EQ(f.rgb, c.rgb);
  EXPECT_THROW(Crop(src, 6, 0, 4, 1), std::invalid_argument);
  EXPECT_THROW(ResizeBicubic(src, 0, 3), std::invalid_argument);
}

}  // namespace
}  // namespace atp::data
