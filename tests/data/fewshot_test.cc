// The few-shot draw and class subsampling against selections made by the official sampling
// code under CPython (fixtures/fewshot_python.json "fewshot": seeds 0, 1, 2, 3, a two-word
// seed and 2**64-1; shots 1, 2, 4, 8, 16), through the whole reader + protocol path.
#include "worker/data/fewshot.h"

#include <gtest/gtest.h>

#include "tests/data/test_util.h"
#include "tests/support/status_matchers.h"

namespace atp::data {
namespace {

using testing::Entry;

class FewShotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fixture_ = testing::LoadFixture("fewshot_python.json");
    auto entries = [](const Json& labels, const char* prefix) {
      std::vector<Entry> v;
      for (size_t i = 0; i < labels.size(); ++i) {
        const int l = labels[i].get<int>();
        char name[64];
        snprintf(name, sizeof(name), "c%d/%s_%04zu.jpg", l, prefix, i);
        v.push_back(Entry{name, l, "class_" + std::to_string(l)});
      }
      return v;
    };
    train_ = entries(fixture_["train_labels"], "train");
    val_ = entries(fixture_["val_labels"], "val");
    test_ = entries(fixture_["test_labels"], "test");
    testing::WriteSplitJson(dir_ / "dtd/split_zhou_DescribableTextures.json", train_, val_, test_);
  }

  DatasetSplits Full() {
    auto s = ReadDataset(dir_.path(), "dtd");
    EXPECT_OK(s);
    return *s;
  }

  // The fixture's indices as the paths the reader produces.
  std::vector<std::string> Paths(const std::vector<Entry>& list, const Json& indices) {
    std::vector<std::string> out;
    for (const Json& i : indices) {
      out.push_back("dtd/images/" + list[(i.is_array() ? i[0] : i).get<size_t>()].path);
    }
    return out;
  }
  static std::vector<std::string> Paths(const std::vector<Datum>& list) {
    std::vector<std::string> out;
    for (const auto& d : list) out.push_back(d.path);
    return out;
  }

  testing::TempDir dir_;
  Json fixture_;
  std::vector<Entry> train_, val_, test_;
};

TEST_F(FewShotTest, DrawMatchesOfficialCodeForEverySeedAndShotCount) {
  ASSERT_EQ(fixture_["fewshot"].size(), 30u);
  for (const Json& c : fixture_["fewshot"]) {
    const uint64_t seed = std::stoull(c["seed"].get<std::string>());
    const int shots = c["shots"].get<int>();
    SCOPED_TRACE("seed " + c["seed"].get<std::string>() + " shots " + std::to_string(shots));
    DatasetSplits full = Full();
    PythonRandom rng = PythonRandom::FromUnsigned(seed);
    const auto train = GenerateFewShot(full.train, shots, &rng);
    const auto val = GenerateFewShot(full.val, std::min(shots, 4), &rng);
    EXPECT_EQ(Paths(train), Paths(train_, c["train"]));
    EXPECT_EQ(Paths(val), Paths(val_, c["val"]));
  }
}

TEST_F(FewShotTest, BaseAndNewSubsamplingMatchOfficialCode) {
  int checked = 0;
  for (const Json& c : fixture_["fewshot"]) {
    if (!c.contains("base")) continue;
    for (const char* sub : {"base", "new"}) {
      SCOPED_TRACE(c["seed"].get<std::string>() + " " + std::to_string(c["shots"].get<int>()) + " " + sub);
      ProtocolOptions o;
      o.shots = c["shots"].get<int>();
      o.seed = std::stoll(c["seed"].get<std::string>());
      o.subset = *ParseClassSubset(sub);
      o.allow_fewer_shots = true;  // the lists hold classes smaller than the shots on purpose
      auto r = ApplyProtocol(Full(), o);
      ASSERT_OK(r);
      const Json& want = c[sub];
      const std::pair<const char*, const std::vector<Entry>*> parts[] = {
          {"train", &train_}, {"val", &val_}, {"test", &test_}};
      const std::vector<Datum>* got[] = {&r->splits.train, &r->splits.val, &r->splits.test};
      for (int p = 0; p < 3; ++p) {
        const Json& w = want[parts[p].first];
        EXPECT_EQ(Paths(*got[p]), Paths(*parts[p].second, w)) << parts[p].first;
        std::vector<int> labels, want_labels;
        for (const auto& d : *got[p]) labels.push_back(d.label);
        for (const Json& e : w) want_labels.push_back(e[1].get<int>());
        EXPECT_EQ(labels, want_labels) << parts[p].first;
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 8);
}

TEST_F(FewShotTest, ClassWithFewerImagesThanShotsIsRefusedByDefault) {
  ProtocolOptions o;
  o.shots = 16;
  o.seed = 1;
  auto r = ApplyProtocol(Full(), o);
  ASSERT_FALSE(r.ok());
  const std::string m = r.status().message();
  EXPECT_NE(m.find("dtd/split_zhou_DescribableTextures.json"), std::string::npos) << m;
  EXPECT_NE(m.find("train class 3 ('class_3') has 5 images, fewer than the 16 shots"), std::string::npos) << m;
  EXPECT_NE(m.find("val class 5 ('class_5') has 2 images, fewer than the 4 shots"), std::string::npos) << m;
  EXPECT_NE(m.find("--allow-fewer-shots"), std::string::npos);

  o.allow_fewer_shots = true;
  auto ok = ApplyProtocol(Full(), o);
  ASSERT_OK(ok);
  EXPECT_FALSE(ok->notes.empty());
}

TEST_F(FewShotTest, NotesAnOfficialFewShotCacheThatWouldBeUsedInstead) {
  testing::WriteText(dir_ / "dtd/split_fewshot/shot_2-seed_3.pkl", "pickle");
  ProtocolOptions o;
  o.shots = 2;
  o.seed = 3;
  o.allow_fewer_shots = true;
  auto r = ApplyProtocol(Full(), o);
  ASSERT_OK(r);
  bool noted = false;
  for (const auto& n : r->notes) noted |= n.find("dtd/split_fewshot/shot_2-seed_3.pkl exists") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST_F(FewShotTest, NoDrawWhenShotsBelowOne) {
  ProtocolOptions o;
  o.shots = 0;
  o.subset = ClassSubset::kAll;
  auto r = ApplyProtocol(Full(), o);
  ASSERT_OK(r);
  EXPECT_EQ(r->splits.train.size(), train_.size());
  EXPECT_EQ(r->splits.val.size(), val_.size());
}

TEST_F(FewShotTest, SubsampleSplitsSortedLabelsInHalvesAndRenumbers) {
  std::vector<Datum> a = {{"x", 4, "e"}, {"y", 0, "a"}, {"z", 2, "c"}, {"w", 6, "g"}, {"v", 2, "c"}};
  std::vector<Datum> b = {{"t", 6, "g"}, {"u", 0, "a"}, {"s", 5, "f"}};
  auto base_a = a, base_b = b;
  SubsampleClasses(ClassSubset::kBase, {&base_a, &base_b});  // labels {0,2,4,6}: base {0,2}
  ASSERT_EQ(base_a.size(), 3u);
  EXPECT_EQ(base_a[0].path, "y");
  EXPECT_EQ(base_a[0].label, 0);
  EXPECT_EQ(base_a[1].label, 1);
  ASSERT_EQ(base_b.size(), 1u);
  EXPECT_EQ(base_b[0].path, "u");
  SubsampleClasses(ClassSubset::kNew, {&a, &b});  // new {4,6} -> 0, 1; label 5 dropped
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].label, 0);
  EXPECT_EQ(a[1].label, 1);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].path, "t");
  EXPECT_EQ(b[0].label, 1);
}

TEST_F(FewShotTest, ParseClassSubsetRejectsUnknownNames) {
  EXPECT_FALSE(ParseClassSubset("novel").ok());
  EXPECT_EQ(*ParseClassSubset("new"), ClassSubset::kNew);
}

}  // namespace
}  // namespace atp::data
