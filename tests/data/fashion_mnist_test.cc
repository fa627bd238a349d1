// The Fashion-MNIST importer on Debian's dataset-fashion-mnist package (skipped when the
// package is not installed), and the idx reader's bad-input cases.
#include "worker/data/fashion_mnist.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/data/test_util.h"
#include "tests/support/status_matchers.h"
#include "worker/data/data_check.h"
#include "worker/data/dataset.h"
#include "worker/data/fewshot.h"

namespace atp::data {
namespace {

bool PackageInstalled() {
  struct stat st;
  return stat((std::string(kFashionMnistDebianDir) + "/train-images-idx3-ubyte.gz").c_str(), &st) == 0;
}

#define SKIP_WITHOUT_PACKAGE()                                                              \
  if (!PackageInstalled())                                                                  \
  GTEST_SKIP() << "Debian package dataset-fashion-mnist is not installed ("                 \
               << kFashionMnistDebianDir << " missing); apt-get install dataset-fashion-mnist"

class FashionMnistTest : public ::testing::Test {
 protected:
  Result<FashionMnistImportSummary> Import(const std::string& root, int per_class) {
    FashionMnistImportOptions o;
    o.out_root = root;
    o.max_per_class = per_class;
    return ImportFashionMnist(o);
  }
  testing::TempDir dir_;
};

TEST_F(FashionMnistTest, ImportWritesTheDataLayoutWithAReproducibleValSplit) {
  SKIP_WITHOUT_PACKAGE();
  auto summary = Import(dir_.path(), 10);
  ASSERT_OK(summary);
  EXPECT_EQ(summary->val, 20);    // round(10 * 0.2) per class
  EXPECT_EQ(summary->train, 80);
  EXPECT_EQ(summary->test, 100);

  auto s = ReadDataset(dir_.path(), "fashion_mnist");
  ASSERT_OK(s);
  const auto names = ClassNamesByLabel(s->train);
  EXPECT_EQ(names, FashionMnistClassNames());
  EXPECT_EQ(names[0], "T-shirt/top");
  EXPECT_EQ(s->test[0].path.rfind("fashion_mnist/images/", 0), 0u);

  CheckOptions c;
  c.root = dir_.path();
  c.dataset = "fashion_mnist";
  auto report = CheckDataset(c);
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok()) << report->problems.front();
  EXPECT_EQ(report->images_checked, 200);

  // The pixels are the idx file's bytes (gray replicated to RGB).
  auto idx = ReadIdxGz(std::string(kFashionMnistDebianDir) + "/t10k-images-idx3-ubyte.gz");
  ASSERT_OK(idx);
  auto first = DecodeImageFile(JoinRoot(dir_.path(), s->test[0].path));
  ASSERT_OK(first);
  ASSERT_EQ(first->width, 28);
  EXPECT_EQ(s->test[0].path.find("test_00000.png") != std::string::npos, true);
  for (int i = 0; i < 28 * 28; ++i) ASSERT_EQ(first->rgb[3 * i + 1], idx->data[i]) << i;

  // A second import writes the same split.
  testing::TempDir again;
  ASSERT_OK(Import(again.path(), 10));
  EXPECT_EQ(testing::ReadBytes(summary->split_file),
            testing::ReadBytes(again / "fashion_mnist/split_zhou_FashionMNIST.json"));

  ProtocolOptions o;
  o.shots = 2;
  o.seed = 1;
  o.subset = ClassSubset::kBase;
  auto p = ApplyProtocol(*s, o);
  ASSERT_OK(p);
  EXPECT_EQ(p->splits.train.size(), 10u);  // 5 base classes x 2 shots
  EXPECT_EQ(p->splits.test.size(), 50u);
}

TEST_F(FashionMnistTest, MissingSourceAndBadIdxFilesAreReported) {
  FashionMnistImportOptions o;
  o.source_dir = dir_ / "nowhere";
  o.out_root = dir_ / "out";
  auto r = ImportFashionMnist(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nowhere/train-images-idx3-ubyte.gz"), std::string::npos);

  testing::WriteText(dir_ / "bad.gz", "definitely not idx");  // gzread passes plain files through
  auto bad = ReadIdxGz(dir_ / "bad.gz");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("bad.gz: not an idx file"), std::string::npos);

  testing::WriteText(dir_ / "short.gz", std::string("\0\0\x08\x01\0\0\0\x05\x01\x02", 10));
  auto short_idx = ReadIdxGz(dir_ / "short.gz");
  ASSERT_FALSE(short_idx.ok());
  EXPECT_NE(short_idx.status().message().find("payload has 2 bytes, header says 5"), std::string::npos);
}

}  // namespace
}  // namespace atp::data
