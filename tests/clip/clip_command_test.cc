// `atp clip tokenize` and `atp clip encode` (tools/clip_command.cc), run in-process.
#include "tools/clip_command.h"

#include <gtest/gtest.h>
#include <torch/serialize.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "tests/clip/clip_test_util.h"
#include "tests/clip/hash_weights.h"
#include "tests/support/status_matchers.h"
#include "worker/clip/npy.h"

namespace atp {
namespace {

using clip::testing::FixturePath;
using clip::testing::TempDir;

int RunClip(std::vector<std::string> args, const std::string& stdin_text = "", std::string* out = nullptr,
        std::string* err = nullptr) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  std::istringstream in(stdin_text);
  std::ostringstream captured_out;
  std::streambuf* old_in = std::cin.rdbuf(in.rdbuf());
  std::streambuf* old_out = std::cout.rdbuf(captured_out.rdbuf());
  ::testing::internal::CaptureStderr();
  int rc = RunClipCommand(static_cast<int>(argv.size()), argv.data());
  std::fflush(stdout);
  std::string e = ::testing::internal::GetCapturedStderr();
  std::cin.rdbuf(old_in);
  std::cout.rdbuf(old_out);
  if (out) *out = captured_out.str();
  if (err) *err = e;
  return rc;
}

TEST(ClipCommandTest, EncodeWritesImageFeaturesFromPreprocessedPixels) {
  TempDir dir;
  std::string out;
  int rc = RunClip({"clip", "encode", "--checkpoint", FixturePath("tiny_state_dict.pt"), "--images",
                FixturePath("tiny_images.npy"), "--out", dir.File("out")},
               "", &out);
  ASSERT_EQ(rc, 0);
  auto got = clip::ReadNpy(dir.File("out/image_features.npy"));
  auto want = clip::ReadNpy(FixturePath("tiny_image_features.npy"));
  ASSERT_OK(got);
  EXPECT_EQ(got->shape, want->shape);
  std::vector<float> g = got->ToFloat32(), w = want->ToFloat32();
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], w[i], 1e-5);
  EXPECT_NE(out.find("logit_scale 2.66"), std::string::npos) << out;
}

TEST(ClipCommandTest, EncodeRejectsPixelsOfTheWrongShape) {
  TempDir dir;
  std::string err;
  EXPECT_EQ(RunClip({"clip", "encode", "--checkpoint", FixturePath("tiny_state_dict.pt"), "--images",
                 FixturePath("tiny_text_ids.npy"), "--out", dir.File("out")},
                "", nullptr, &err),
            1);
  EXPECT_NE(err.find("has shape [3, 77]; this checkpoint needs [N, 3, 16, 16]"), std::string::npos) << err;
  EXPECT_EQ(RunClip({"clip", "encode", "--out", dir.File("out")}, "", nullptr, &err), 2);
  EXPECT_NE(err.find("--checkpoint and --out are required"), std::string::npos) << err;
}

#if ATP_CLIP_IMAGE_FILES
TEST(ClipCommandTest, EncodeDecodesAndPreprocessesImageFilesLikeClip) {
  TempDir dir;
  ASSERT_EQ(RunClip({"clip", "encode", "--checkpoint", FixturePath("tiny_state_dict.pt"), "--images",
                     FixturePath("image_37x29.jpg"), FixturePath("image_20x45.jpg"), FixturePath("image_64x64.png"),
                     "--out", dir.File("out")}),
            0);
  auto got = clip::ReadNpy(dir.File("out/image_features.npy"));
  auto want = clip::ReadNpy(FixturePath("tiny_image_files_features.npy"));
  ASSERT_OK(got);
  ASSERT_EQ(got->shape, want->shape);
  std::vector<float> g = got->ToFloat32(), w = want->ToFloat32();
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], w[i], 1e-4) << i;
}
#endif

class ClipCommandWithVocabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!clip::testing::RealTokenizer(&why)) GTEST_SKIP() << "CLIP vocabulary not available, skipping: " << why;
    vocab_ = *clip::ResolveVocabPath("");
  }
  std::string vocab_;
};

TEST_F(ClipCommandWithVocabTest, TokenizePrintsSeventySevenIdsPerLine) {
  std::string out;
  ASSERT_EQ(RunClip({"clip", "tokenize", "--vocab", vocab_}, "a photo of a dog.\nX\n", &out), 0);
  std::istringstream lines(out);
  std::string first, second;
  std::getline(lines, first);
  std::getline(lines, second);
  EXPECT_EQ(first.rfind("49406 320 1125 539 320 1929 269 49407 0 0", 0), 0u) << first;
  std::istringstream ids(second);
  int count = 0, id;
  while (ids >> id) ++count;
  EXPECT_EQ(count, 77);
}

TEST_F(ClipCommandWithVocabTest, OverlongLineIsAnErrorNamingItsNumberUnlessTruncating) {
  std::string longline;
  for (int i = 0; i < 80; ++i) longline += "a ";
  std::string out, err;
  EXPECT_EQ(RunClip({"clip", "tokenize", "--vocab", vocab_}, "short\n" + longline + "\n", &out, &err), 1);
  EXPECT_NE(err.find("stdin line 2"), std::string::npos) << err;
  ASSERT_EQ(RunClip({"clip", "tokenize", "--vocab", vocab_, "--truncate"}, "short\n" + longline + "\n", &out), 0);
  EXPECT_NE(out.find(" 320 49407\n"), std::string::npos);
}

TEST_F(ClipCommandWithVocabTest, EncodeTextsNamesTheOverlongLine) {
  // A small model with the real vocabulary size, so tokenized text fits it.
  clip::ClipOptions o = clip::testing::TinyOptions();
  o.text.vocab_size(49408);
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [k, v] : clip::testing::HashStateDict(o)) dict.insert(k, v);
  std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  TempDir dir;
  dir.Write("model.pt", std::string(bytes.begin(), bytes.end()));
  std::string longline;
  for (int i = 0; i < 80; ++i) longline += "a ";
  dir.Write("texts.txt", "a photo of a dog.\n" + longline + "\n");
  std::string err;
  EXPECT_EQ(RunClip({"clip", "encode", "--checkpoint", dir.File("model.pt"), "--vocab", vocab_, "--texts",
                 dir.File("texts.txt"), "--out", dir.File("out")},
                "", nullptr, &err),
            1);
  EXPECT_NE(err.find(dir.File("texts.txt") + " line 2"), std::string::npos) << err;
  ASSERT_EQ(RunClip({"clip", "encode", "--checkpoint", dir.File("model.pt"), "--vocab", vocab_, "--texts",
                 dir.File("texts.txt"), "--truncate", "--out", dir.File("out")}),
            0);
  auto features = clip::ReadNpy(dir.File("out/text_features.npy"));
  ASSERT_OK(features);
  EXPECT_EQ(features->shape, (std::vector<int64_t>{2, 32}));
}

}  // namespace
}  // namespace atp
