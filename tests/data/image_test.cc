// Decoding against PIL's Image.open(...).convert("RGB") on fixture files (digests in
// fixtures/pil_expected.json), and every bad-input case naming the file.
#include "worker/data/image.h"

#include <gtest/gtest.h>

#include "tests/data/test_util.h"
#include "tests/support/status_matchers.h"

namespace atp::data {
namespace {

class ImageDecodeTest : public ::testing::Test {
 protected:
  Json expected_ = testing::LoadFixture("pil_expected.json");
  testing::TempDir dir_;
};

TEST_F(ImageDecodeTest, MatchesPilConvertRgbForEveryFixtureMode) {
  ASSERT_GE(expected_["decode"].size(), 8u);
  for (const auto& [name, want] : expected_["decode"].items()) {
    SCOPED_TRACE(name + " (PIL mode " + want["mode"].get<std::string>() + ")");
    auto img = DecodeImageFile(testing::FixturePath("images/" + name));
    ASSERT_OK(img);
    EXPECT_EQ(img->width, want["width"].get<int>());
    EXPECT_EQ(img->height, want["height"].get<int>());
    EXPECT_EQ(testing::Md5Hex(img->rgb), want["md5"].get<std::string>());
  }
}

TEST_F(ImageDecodeTest, PngRoundTripKeepsPixels) {
  const Image im = testing::Pattern(17, 5, 4);
  ASSERT_OK(WritePngFile(dir_ / "a.png", im.width, im.height, 3, im.rgb.data()));
  auto back = DecodeImageFile(dir_ / "a.png");
  ASSERT_OK(back);
  EXPECT_EQ(back->rgb, im.rgb);
  std::vector<uint8_t> gray = {0, 50, 100, 150, 200, 255};
  ASSERT_OK(WritePngFile(dir_ / "g.png", 3, 2, 1, gray.data()));
  auto g = DecodeImageFile(dir_ / "g.png");
  ASSERT_OK(g);
  EXPECT_EQ(g->rgb[3 * 4 + 0], 200);
  EXPECT_EQ(g->rgb[3 * 4 + 2], 200);
}

TEST_F(ImageDecodeTest, MissingFileIsNotFoundAndNamesIt) {
  auto r = DecodeImageFile(dir_ / "nope.jpg");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(dir_ / "nope.jpg"), std::string::npos);
}

TEST_F(ImageDecodeTest, TruncatedJpegIsAnError) {
  std::string bytes = testing::ReadBytes(testing::FixturePath("images/rgb_q90.jpg"));
  testing::WriteText(dir_ / "cut.jpg", bytes.substr(0, bytes.size() / 2));
  auto r = DecodeImageFile(dir_ / "cut.jpg");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(dir_ / "cut.jpg"), std::string::npos);
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status().message();
}

TEST_F(ImageDecodeTest, GarbageAfterJpegHeaderIsAnError) {
  std::string bytes = testing::ReadBytes(testing::FixturePath("images/rgb_q90.jpg"));
  for (size_t i = 20; i < bytes.size(); ++i) bytes[i] = static_cast<char>(0xA5 ^ i);
  testing::WriteText(dir_ / "bad.jpg", bytes);
  auto r = DecodeImageFile(dir_ / "bad.jpg");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bad.jpg: corrupt JPEG"), std::string::npos) << r.status().message();
}

TEST_F(ImageDecodeTest, TruncatedAndCorruptPngAreErrors) {
  std::string bytes = testing::ReadBytes(testing::FixturePath("images/rgba.png"));
  testing::WriteText(dir_ / "cut.png", bytes.substr(0, bytes.size() - 40));
  auto cut = DecodeImageFile(dir_ / "cut.png");
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find("cut.png: corrupt PNG"), std::string::npos) << cut.status().message();
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x5A;  // breaks the IDAT CRC
  testing::WriteText(dir_ / "crc.png", flipped);
  auto crc = DecodeImageFile(dir_ / "crc.png");
  ASSERT_FALSE(crc.ok());
  EXPECT_NE(crc.status().message().find("crc.png"), std::string::npos);
}

TEST_F(ImageDecodeTest, EmptyAndUnknownFormatsAreRejectedClearly) {
  testing::WriteText(dir_ / "empty.jpg", "");
  auto e = DecodeImageFile(dir_ / "empty.jpg");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("empty.jpg: empty file"), std::string::npos);
  testing::WriteText(dir_ / "pic.jpg", "GIF89a\x01\x00\x01\x00");
  auto g = DecodeImageFile(dir_ / "pic.jpg");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("pic.jpg: not a JPEG or PNG"), std::string::npos);
}

TEST_F(ImageDecodeTest, PngWithJpegExtensionIsDecodedByContent) {
  const Image im = testing::Pattern(6, 4, 1);
  ASSERT_OK(WritePngFile(dir_ / "really_png.JPEG", 6, 4, 3, im.rgb.data()));
  auto r = DecodeImageFile(dir_ / "really_png.JPEG");
  ASSERT_OK(r);
  EXPECT_EQ(r->rgb, im.rgb);
}

}  // namespace
}  // namespace atp::data
