// Readers for every split source on small trees the tests write, path safety, class names
// and templates.
#include "worker/data/dataset.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/data/test_util.h"
#include "tests/support/status_matchers.h"
#include "worker/data/fewshot.h"

namespace atp::data {
namespace {

using testing::Entry;
namespace fs = std::filesystem;

class DatasetTest : public ::testing::Test {
 protected:
  void Touch(const std::string& rel) { testing::WriteText(dir_ / rel, "x"); }
  testing::TempDir dir_;
};

TEST_F(DatasetTest, SplitJsonPathsAreJoinedUnderTheImageFolder) {
  testing::WriteSplitJson(dir_ / "oxford_pets/split_zhou_OxfordPets.json",
                          {{"a_1.jpg", 0, "abyssinian"}, {"b_1.jpg", 1, "american_bulldog"}},
                          {{"a_2.jpg", 0, "abyssinian"}}, {{"b_2.jpg", 1, "american_bulldog"}});
  auto s = ReadDataset(dir_.path(), "oxford_pets");
  ASSERT_OK(s);
  ASSERT_EQ(s->train.size(), 2u);
  EXPECT_EQ(s->train[1].path, "oxford_pets/images/b_1.jpg");
  EXPECT_EQ(s->train[1].label, 1);
  EXPECT_EQ(s->train[1].classname, "american_bulldog");
  EXPECT_EQ(s->split_file, "oxford_pets/split_zhou_OxfordPets.json");

  // StanfordCars' paths are relative to the dataset folder itself.
  testing::WriteSplitJson(dir_ / "stanford_cars/split_zhou_StanfordCars.json",
                          {{"cars_train/00001.jpg", 0, "2012 Audi TTS Coupe"}}, {}, {});
  auto cars = ReadDataset(dir_.path(), "stanford_cars");
  ASSERT_OK(cars);
  EXPECT_EQ(cars->train[0].path, "stanford_cars/cars_train/00001.jpg");
}

TEST_F(DatasetTest, EntriesEscapingTheRootAreRejectedNamingFileAndEntry) {
  testing::WriteSplitJson(dir_ / "dtd/split_zhou_DescribableTextures.json",
                          {{"banded/ok.jpg", 0, "banded"}, {"../../etc/passwd", 0, "banded"}},
                          {{"/etc/passwd", 0, "banded"}}, {{"banded/x/../../../y.jpg", 0, "banded"}});
  auto s = ReadDataset(dir_.path(), "dtd");
  ASSERT_FALSE(s.ok());
  const std::string m = s.status().message();
  EXPECT_NE(m.find("3 bad entries"), std::string::npos) << m;
  EXPECT_NE(m.find("dtd/split_zhou_DescribableTextures.json: train[1]: image path '../../etc/passwd' contains '..'"), std::string::npos) << m;
  EXPECT_NE(m.find("dtd/split_zhou_DescribableTextures.json: val[0]: absolute image path '/etc/passwd'"), std::string::npos) << m;
  EXPECT_NE(m.find("test[0]"), std::string::npos) << m;

  std::vector<std::string> problems;
  auto collected = ReadDatasetCollecting(dir_.path(), "dtd", &problems);
  ASSERT_OK(collected);
  EXPECT_EQ(problems.size(), 3u);
  EXPECT_EQ(collected->train.size(), 1u);  // the bad entries are left out of the report's view
}

TEST_F(DatasetTest, CheckRelativePathRules) {
  EXPECT_OK(CheckRelativePath("a/b.jpg"));
  EXPECT_OK(CheckRelativePath("./a/..b.jpg"));
  EXPECT_OK(CheckRelativePath("a..b/c"));
  EXPECT_FALSE(CheckRelativePath("").ok());
  EXPECT_FALSE(CheckRelativePath("..").ok());
  EXPECT_FALSE(CheckRelativePath("a/..").ok());
  EXPECT_FALSE(CheckRelativePath("a/../b").ok());
  EXPECT_FALSE(CheckRelativePath("/a").ok());
  EXPECT_FALSE(CheckRelativePath(std::string("a\0b", 3)).ok());
}

TEST_F(DatasetTest, MalformedSplitFilesAreReportedWithTheirPath) {
  auto missing = ReadDataset(dir_.path(), "food101");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("dataset folder of 'food101'"), std::string::npos);

  testing::WriteText(dir_ / "food-101/split_zhou_Food101.json", "{\"train\": [");
  auto bad_json = ReadDataset(dir_.path(), "food101");
  ASSERT_FALSE(bad_json.ok());
  EXPECT_NE(bad_json.status().message().find("split_zhou_Food101.json: not valid JSON"), std::string::npos);

  testing::WriteText(dir_ / "food-101/split_zhou_Food101.json",
                     R"({"train": [["a.jpg", "zero", "apple_pie"], ["b.jpg", 0]], "val": [], "test": []})");
  auto bad_entry = ReadDataset(dir_.path(), "food101");
  ASSERT_FALSE(bad_entry.ok());
  EXPECT_NE(bad_entry.status().message().find("train[0]: expected [relative_path, integer_label, class_name]"), std::string::npos);
  EXPECT_NE(bad_entry.status().message().find("train[1]"), std::string::npos);

  testing::WriteText(dir_ / "food-101/split_zhou_Food101.json", R"({"train": [], "val": []})");
  auto no_test = ReadDataset(dir_.path(), "food101");
  ASSERT_FALSE(no_test.ok());
  EXPECT_NE(no_test.status().message().find("\"test\" missing"), std::string::npos);

  fs::remove(dir_ / "food-101/split_zhou_Food101.json");
  auto no_split = ReadDataset(dir_.path(), "food101");
  ASSERT_FALSE(no_split.ok());
  EXPECT_NE(no_split.status().message().find("split_zhou_Food101.json: split file of 'food101' is missing"), std::string::npos);

  EXPECT_FALSE(ReadDataset(dir_.path(), "mnist").ok());
}

// Regression: a label of 10^12 in a split file was read as an int and reported as
// "negative label -727379968".
TEST_F(DatasetTest, AHugeLabelIsReportedAsItIsWritten) {
  testing::WriteText(dir_ / "ucf101/split_zhou_UCF101.json",
                     R"({"train": [["A/1.jpg", 1000000000000, "Archery"], ["A/3.jpg", 18446744073709551615, "Archery"]],
                        "val": [["A/2.jpg", 0, "Archery"]], "test": []})");
  auto s = ReadDataset(dir_.path(), "ucf101");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("train[0]: label 1000000000000 is too large"), std::string::npos)
      << s.status().message();
  EXPECT_NE(s.status().message().find("train[1]: label 18446744073709551615 is too large"), std::string::npos)
      << s.status().message();
  EXPECT_EQ(s.status().message().find("negative"), std::string::npos) << s.status().message();
}

TEST_F(DatasetTest, NegativeLabelsAndLabelsWithTwoNamesAreRejected) {
  testing::WriteSplitJson(dir_ / "ucf101/split_zhou_UCF101.json",
                          {{"A/1.jpg", 0, "Apply_Eye_Makeup"}, {"B/1.jpg", -1, "Archery"}},
                          {{"A/2.jpg", 0, "Archery"}}, {});
  auto s = ReadDataset(dir_.path(), "ucf101");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("train[1]: negative label -1"), std::string::npos);
  EXPECT_NE(s.status().message().find("label 0 is named 'Archery' here but 'Apply_Eye_Makeup' elsewhere"), std::string::npos)
      << s.status().message();
}

TEST_F(DatasetTest, ImageNetLabelsFollowSortedFoldersAndValIsTest) {
  testing::WriteText(dir_ / "imagenet/classnames.txt",
                     "n01 tench\nn02 goldfish\nn03 great white shark\n");
  for (const char* f : {"train/n02/a.JPEG", "train/n02/b.JPEG", "train/n01/c.JPEG",
                        "train/n01/.hidden", "train/n03/d.JPEG", "val/n01/v1.JPEG",
                        "val/n03/v2.JPEG", "val/n02/v3.JPEG"}) {
    Touch(std::string("imagenet/images/") + f);
  }
  auto s = ReadDataset(dir_.path(), "imagenet");
  ASSERT_OK(s);
  ASSERT_EQ(s->train.size(), 4u);  // hidden file skipped
  EXPECT_EQ(s->train[0].label, 0);
  EXPECT_EQ(s->train[0].classname, "tench");
  EXPECT_EQ(s->train[0].path, "imagenet/images/train/n01/c.JPEG");
  EXPECT_EQ(s->train.back().classname, "great white shark");
  EXPECT_EQ(s->train.back().label, 2);
  ASSERT_EQ(s->test.size(), 3u);
  EXPECT_EQ(s->val.size(), 3u);
  EXPECT_EQ(s->test[1].path, "imagenet/images/val/n02/v3.JPEG");

  ProtocolOptions o;
  o.shots = 1;
  o.seed = 1;
  o.subset = ClassSubset::kNew;  // labels {0,1,2}: base {0,1}, new {2}
  auto p = ApplyProtocol(*s, o);
  ASSERT_OK(p);
  ASSERT_EQ(p->splits.train.size(), 1u);
  EXPECT_EQ(p->splits.train[0].classname, "great white shark");
  EXPECT_EQ(p->splits.train[0].label, 0);
  ASSERT_EQ(p->splits.test.size(), 1u);
  EXPECT_EQ(p->splits.val.size(), 1u);
}

TEST_F(DatasetTest, FgvcAircraftReadsVariantsAndSplitFiles) {
  testing::WriteText(dir_ / "fgvc_aircraft/variants.txt", "707-320\nA300B4\nF-16A/B\n");
  testing::WriteText(dir_ / "fgvc_aircraft/images_variant_train.txt",
                     "1025794 707-320\n1340192 F-16A/B\n\n");
  testing::WriteText(dir_ / "fgvc_aircraft/images_variant_val.txt", "0056978 A300B4\n");
  testing::WriteText(dir_ / "fgvc_aircraft/images_variant_test.txt", "0062781 Cessna 172\n");
  std::vector<std::string> problems;
  auto s = ReadDatasetCollecting(dir_.path(), "fgvc_aircraft", &problems);
  ASSERT_OK(s);
  ASSERT_EQ(s->train.size(), 2u);
  EXPECT_EQ(s->train[1].path, "fgvc_aircraft/images/1340192.jpg");
  EXPECT_EQ(s->train[1].label, 2);
  EXPECT_EQ(s->train[1].classname, "F-16A/B");
  EXPECT_EQ(s->val[0].label, 1);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("images_variant_test.txt:1: variant 'Cessna 172' is not in"), std::string::npos)
      << problems[0];
}

TEST_F(DatasetTest, ImageNetVariantsReadTheirFoldersAndAreTestOnly) {
  std::string names;
  for (int i = 0; i < 1000; ++i) names += "n" + std::to_string(10000 + i) + " class " + std::to_string(i) + "\n";
  testing::WriteText(dir_ / "imagenetv2/classnames.txt", names);
  for (int i = 0; i < 1000; ++i) fs::create_directories(dir_ / ("imagenetv2/" + std::to_string(i)));
  Touch("imagenetv2/7/a.jpeg");
  Touch("imagenetv2/999/b.jpeg");
  auto v2 = ReadDataset(dir_.path(), "imagenetv2");
  ASSERT_OK(v2);
  ASSERT_EQ(v2->test.size(), 2u);
  EXPECT_EQ(v2->test[0].path, "imagenetv2/7/a.jpeg");
  EXPECT_EQ(v2->test[0].label, 7);
  EXPECT_EQ(v2->test[0].classname, "class 7");
  EXPECT_EQ(v2->test[1].label, 999);

  testing::WriteText(dir_ / "imagenet-adversarial/classnames.txt", "n01 goldfish\nn05 jellyfish\nn09 snail\n");
  Touch("imagenet-adversarial/imagenet-a/README.txt");
  Touch("imagenet-adversarial/imagenet-a/n09/x.jpg");
  Touch("imagenet-adversarial/imagenet-a/n05/y.jpg");
  auto a = ReadDataset(dir_.path(), "imagenet_a");
  ASSERT_OK(a);
  ASSERT_EQ(a->test.size(), 2u);
  EXPECT_EQ(a->test[0].classname, "jellyfish");  // n05 sorts first among the folders present
  EXPECT_EQ(a->test[0].label, 0);
  EXPECT_EQ(a->test[1].label, 1);

  ProtocolOptions o;
  o.shots = 16;
  o.subset = ClassSubset::kBase;
  auto p = ApplyProtocol(*a, o);
  ASSERT_OK(p);
  EXPECT_EQ(p->splits.test.size(), 2u);  // no draw, no subsampling
  ASSERT_EQ(p->notes.size(), 1u);

  Touch("imagenet-sketch/classnames.txt");
  Touch("imagenet-sketch/sketch/n77/z.jpg");
  auto sketch = ReadDataset(dir_.path(), "imagenet_sketch");
  ASSERT_FALSE(sketch.ok());
  EXPECT_NE(sketch.status().message().find("imagenet-sketch/sketch/n77: folder is not listed in imagenet-sketch/classnames.txt"),
            std::string::npos)
      << sketch.status().message();
}

TEST_F(DatasetTest, EveryCatalogDatasetHasALayoutAndTemplate) {
  EXPECT_EQ(AllLayouts().size(), 16u);
  for (const auto& l : AllLayouts()) {
    EXPECT_NE(l.prompt_template.find("{}"), std::string::npos) << l.name;
    EXPECT_GT(l.num_classes, 0);
  }
  EXPECT_EQ(FillTemplate(FindLayout("oxford_pets")->prompt_template, "american_bulldog"),
            "a photo of a american bulldog, a type of pet.");
  EXPECT_EQ(FindLayout("dtd")->prompt_template, "{} texture.");
  EXPECT_EQ(FindLayout("eurosat")->prompt_template, "a centered satellite photo of {}.");
  EXPECT_EQ(FindLayout("oxford_flowers")->official_code_template, "a photo of a {}");
  EXPECT_EQ(FindLayout("oxford_flowers")->prompt_template, "a photo of a {}, a type of flower.");
  EXPECT_EQ(FindLayout("ucf101")->prompt_template, "a photo of a person doing {}.");
  EXPECT_EQ(FindLayout("imagenet_r")->num_classes, 200);
  EXPECT_TRUE(FindLayout("imagenet_sketch")->test_only);
  EXPECT_EQ(EuroSatClassNames().size(), 10u);
}

}  // namespace
}  // namespace atp::data
