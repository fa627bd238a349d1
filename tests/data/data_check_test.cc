// `atp data check` logic on generated trees: a clean dataset passes; missing, corrupt and
// escaping entries and class-count problems are each reported naming the file.
#include "worker/data/data_check.h"

#include <gtest/gtest.h>

#include "tests/data/test_util.h"
#include "tests/support/status_matchers.h"
#include "worker/data/dataset.h"

namespace atp::data {
namespace {

using testing::Entry;

class DataCheckTest : public ::testing::Test {
 protected:
  // A EuroSAT-shaped tree: 10 classes, one image per class in each split.
  void WriteEuroSat(bool renamed_names) {
    std::vector<Entry> train, val, test;
    int label = 0;
    for (const auto& [folder, name] : EuroSatClassNames()) {
      const std::string n = renamed_names ? name : folder;
      for (auto* part : {&train, &val, &test}) {
        const std::string rel = folder + "/" + folder + "_" + std::to_string(part->size() + label) +
                                (part == &train ? "_tr" : part == &val ? "_va" : "_te") + ".jpg";
        testing::WritePatternJpeg(dir_ / ("eurosat/2750/" + rel), 24, 24, label);
        part->push_back(Entry{rel, label, n});
      }
      ++label;
    }
    train_ = train;
    testing::WriteSplitJson(dir_ / "eurosat/split_zhou_EuroSAT.json", train, val, test);
  }

  CheckReport Check(bool decode = true) {
    CheckOptions o;
    o.root = dir_.path();
    o.dataset = "eurosat";
    o.threads = 2;
    o.decode = decode;
    auto r = CheckDataset(o);
    EXPECT_OK(r);
    return *r;
  }

  static bool Has(const CheckReport& r, const std::string& text) {
    for (const auto& p : r.problems) {
      if (p.find(text) != std::string::npos) return true;
    }
    return false;
  }

  testing::TempDir dir_;
  std::vector<Entry> train_;
};

TEST_F(DataCheckTest, CleanDatasetHasNoProblems) {
  WriteEuroSat(true);
  const CheckReport r = Check();
  EXPECT_TRUE(r.ok()) << (r.problems.empty() ? "" : r.problems[0]);
  EXPECT_EQ(r.images_checked, 30);
  EXPECT_EQ(r.classes, 10);
}

TEST_F(DataCheckTest, ReportsMissingCorruptAndEscapingEntries) {
  WriteEuroSat(true);
  std::filesystem::remove(dir_ / ("eurosat/2750/" + train_[0].path));
  testing::WriteText(dir_ / ("eurosat/2750/" + train_[1].path), "\xFF\xD8\xFF\xE0garbage");
  // Rewrite the split with one entry escaping the root.
  Json j = Json::parse(testing::ReadBytes(dir_ / "eurosat/split_zhou_EuroSAT.json"));
  j["test"].push_back(Json::array({"../../../outside.jpg", 0, "Annual Crop Land"}));
  testing::WriteText(dir_ / "eurosat/split_zhou_EuroSAT.json", j.dump());

  const CheckReport r = Check();
  EXPECT_EQ(r.problems.size(), 3u);
  EXPECT_TRUE(Has(r, dir_ / ("eurosat/2750/" + train_[0].path) + ": cannot open image file"));
  EXPECT_TRUE(Has(r, dir_ / ("eurosat/2750/" + train_[1].path) + ": corrupt JPEG"));
  EXPECT_TRUE(Has(r, "eurosat/split_zhou_EuroSAT.json: test[10]: image path '../../../outside.jpg' contains '..'"));

  const CheckReport quick = Check(/*decode=*/false);
  EXPECT_TRUE(Has(quick, "missing image file"));
  EXPECT_FALSE(Has(quick, "corrupt"));
}

TEST_F(DataCheckTest, ReportsClassCountAndNameMismatches) {
  WriteEuroSat(false);
  Json j = Json::parse(testing::ReadBytes(dir_ / "eurosat/split_zhou_EuroSAT.json"));
  j["val"].erase(j["val"].begin() + 4);  // no val image of label 4
  testing::WriteText(dir_ / "eurosat/split_zhou_EuroSAT.json", j.dump());
  const CheckReport r = Check(false);
  EXPECT_TRUE(Has(r, "val has 9 classes, eurosat has 10"));
  EXPECT_TRUE(Has(r, "val labels are not dense 0..9; no items for label(s) 4"));
  EXPECT_TRUE(Has(r, "class name 'AnnualCrop' is not one of EuroSAT's renamed classes"));
}

TEST_F(DataCheckTest, EvaluationOnlyDatasetsHaveNoValList) {
  std::string names;
  for (int i = 0; i < 200; ++i) names += "n" + std::to_string(100 + i) + " class " + std::to_string(i) + "\n";
  testing::WriteText(dir_ / "imagenet-rendition/classnames.txt", names);
  for (int i = 0; i < 200; ++i) {
    testing::WritePatternJpeg(dir_ / ("imagenet-rendition/imagenet-r/n" + std::to_string(100 + i) + "/a.jpg"), 8, 8, i);
  }
  testing::WriteText(dir_ / "imagenet-rendition/imagenet-r/README.txt", "ignored");
  CheckOptions o;
  o.root = dir_.path();
  o.dataset = "imagenet_r";
  auto r = CheckDataset(o);
  ASSERT_OK(r);
  EXPECT_TRUE(r->ok()) << r->problems.front();
  EXPECT_EQ(r->images_checked, 200);
  EXPECT_EQ(r->classes, 200);
}

TEST_F(DataCheckTest, UnreadableSplitIsAnError) {
  CheckOptions o;
  o.root = dir_.path();
  o.dataset = "eurosat";
  EXPECT_FALSE(CheckDataset(o).ok());
}

}  // namespace
}  // namespace atp::data
