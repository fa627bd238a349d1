// `atp data` command lines: usage errors, split printing, check exit codes, import.
#include "tools/data_command.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/data/test_util.h"
#include "worker/data/fashion_mnist.h"

namespace atp {
namespace {

using data::testing::Entry;

class DataCommandTest : public ::testing::Test {
 protected:
  int Run(std::vector<std::string> args, std::string* out = nullptr) {
    args.insert(args.begin(), "data");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    ::testing::internal::CaptureStdout();
    const int rc = RunDataCommand(static_cast<int>(argv.size()), argv.data());
    const std::string captured = ::testing::internal::GetCapturedStdout();
    if (out) *out = captured;
    return rc;
  }
  void WriteDtd() {
    std::vector<Entry> train, val, test;
    for (int c = 0; c < 2; ++c) {
      for (int i = 0; i < 5; ++i) {
        const std::string rel = "cls" + std::to_string(c) + "/" + std::to_string(i) + ".jpg";
        data::testing::WritePatternJpeg(dir_ / ("dtd/images/" + rel), 20, 20, i);
        (i < 3 ? train : i < 4 ? val : test).push_back(Entry{rel, c, "cls_" + std::to_string(c)});
      }
    }
    data::testing::WriteSplitJson(dir_ / "dtd/split_zhou_DescribableTextures.json", train, val, test);
  }
  data::testing::TempDir dir_;
};

TEST_F(DataCommandTest, UsageErrorsExitWithTwo) {
  EXPECT_EQ(Run({}), 2);
  EXPECT_EQ(Run({"frobnicate"}), 2);
  EXPECT_EQ(Run({"split", "--root", dir_.path()}), 2);
  EXPECT_EQ(Run({"split", "--root", "r", "--dataset", "dtd", "--shots", "x", "--seed", "1"}), 2);
  EXPECT_EQ(Run({"split", "--root", "r", "--dataset", "dtd", "--shots", "1", "--seed", "-1"}), 2);
  EXPECT_EQ(Run({"split", "--root", "r", "--dataset", "dtd", "--shots", "1", "--seed", "1",
                 "--classes", "novel"}), 2);
  EXPECT_EQ(Run({"check", "--root"}), 2);
  EXPECT_EQ(Run({"--help"}), 0);
}

TEST_F(DataCommandTest, SplitRefusesShortClassesUnlessAllowed) {
  WriteDtd();
  // Each class has one val image, fewer than min(2, 4) val shots.
  const std::vector<std::string> args = {"split", "--root", dir_.path(), "--dataset", "dtd",
                                         "--shots", "2", "--seed", "1"};
  std::string out;
  EXPECT_EQ(Run(args, &out), 1);
  EXPECT_TRUE(out.empty());
  auto allowed = args;
  allowed.push_back("--allow-fewer-shots");
  ASSERT_EQ(Run(allowed, &out), 0);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 6);  // 2 classes x (2 train + 1 val)
}

TEST_F(DataCommandTest, SplitOutputFormat) {
  WriteDtd();
  std::string out;
  ASSERT_EQ(Run({"split", "--root", dir_.path(), "--dataset", "dtd", "--shots", "1", "--seed", "2",
                 "--classes", "new"}, &out), 0);
  // One train and one val line, label renumbered to 0, path relative to the root.
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2);
  EXPECT_EQ(out.rfind("train\tdtd/images/cls1/", 0), 0u) << out;
  EXPECT_NE(out.find("\t0\tcls_1\nval\tdtd/images/cls1/3.jpg\t0\tcls_1\n"), std::string::npos) << out;
}

TEST_F(DataCommandTest, ImageNetSplitPrintsTrainOnlyBecauseValIsTheTestSplit) {
  data::testing::WriteText(dir_ / "imagenet/classnames.txt", "n01 tench\nn02 goldfish\n");
  for (const char* f : {"train/n01/a.JPEG", "train/n01/b.JPEG", "train/n02/c.JPEG",
                        "train/n02/d.JPEG", "val/n01/e.JPEG", "val/n02/f.JPEG"}) {
    data::testing::WriteText(dir_ / (std::string("imagenet/images/") + f), "x");
  }
  std::string out;
  ASSERT_EQ(Run({"split", "--root", dir_.path(), "--dataset", "imagenet", "--shots", "1", "--seed",
                 "1"}, &out), 0);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
  EXPECT_EQ(out.find("val\t"), std::string::npos) << out;
  EXPECT_NE(out.find("\t1\tgoldfish\n"), std::string::npos) << out;
}

TEST_F(DataCommandTest, CheckExitsNonZeroOnProblems) {
  WriteDtd();
  std::string out;
  // 2 classes where DTD has 47: reported as a class-count mismatch.
  EXPECT_EQ(Run({"check", "--root", dir_.path(), "--dataset", "dtd"}, &out), 1);
  EXPECT_NE(out.find("PROBLEM dtd/split_zhou_DescribableTextures.json: train has 2 classes, dtd has 47"),
            std::string::npos) << out;
  EXPECT_NE(out.find("10 image files decoded"), std::string::npos) << out;
}

TEST_F(DataCommandTest, ImportThenCheckAndSplitFashionMnist) {
  if (access((std::string(data::kFashionMnistDebianDir) + "/train-images-idx3-ubyte.gz").c_str(), R_OK) != 0) {
    GTEST_SKIP() << "Debian package dataset-fashion-mnist is not installed";
  }
  std::string out;
  ASSERT_EQ(Run({"import-fashion-mnist", "--out", dir_.path(), "--max-per-class", "5"}, &out), 0);
  EXPECT_NE(out.find("fashion_mnist: 40 train, 10 val, 50 test images"), std::string::npos) << out;
  EXPECT_EQ(Run({"check", "--root", dir_.path(), "--dataset", "fashion_mnist"}, &out), 0) << out;
  ASSERT_EQ(Run({"split", "--root", dir_.path(), "--dataset", "fashion_mnist", "--shots", "1",
                 "--seed", "1"}, &out), 0);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 20);
  EXPECT_NE(out.find("\tT-shirt/top\n"), std::string::npos);
}

}  // namespace
}  // namespace atp
