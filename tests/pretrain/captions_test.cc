#include "worker/pretrain/captions.h"

#include <gtest/gtest.h>

#include <set>

#include "worker/data/dataset.h"
#include "worker/data/fashion_mnist.h"

namespace atp::pretrain {
namespace {

bool HasWord(const std::string& sentence, const std::string& word) {
  const std::string padded = " " + sentence + " ";
  for (const char* after : {" ", ".", ","}) {
    if (padded.find(" " + word + after) != std::string::npos) return true;
  }
  return false;
}

// The evaluation template is held out of the captions, so that the zero-shot prompt leaves a
// learned prompt room to beat it (the demo's base-class gain depends on it).
TEST(CaptionsTest, OneListPerClassInLabelOrderWithoutTheZeroShotPrompt) {
  const auto& captions = FashionMnistCaptions();
  const auto& names = data::FashionMnistClassNames();
  ASSERT_EQ(captions.size(), names.size());
  for (size_t c = 0; c < names.size(); ++c) {
    EXPECT_EQ(captions[c].classname, names[c]);
    ASSERT_FALSE(captions[c].captions.empty());
    EXPECT_EQ(captions[c].captions.size(), captions[0].captions.size());
    std::set<std::string> distinct(captions[c].captions.begin(), captions[c].captions.end());
    EXPECT_EQ(distinct.size(), captions[c].captions.size()) << names[c];
    for (const auto& text : captions[c].captions) {
      EXPECT_EQ(text.back(), '.') << text;
      EXPECT_NE(text.find(names[c]), std::string::npos) << text;
      EXPECT_NE(text, ZeroShotPrompt(names[c]));
      EXPECT_EQ(text.find("a photo of a " + names[c]), std::string::npos) << text;
    }
  }
}

TEST(CaptionsTest, ZeroShotPromptIsTheDatasetTemplate) {
  EXPECT_EQ(ZeroShotPrompt("Ankle boot"), "a photo of a Ankle boot.");
  EXPECT_EQ(ZeroShotPrompt("T-shirt/top"), "a photo of a T-shirt/top.");
  EXPECT_EQ(ZeroShotPrompt("a_b"), "a photo of a a b.");
  EXPECT_EQ(data::FindLayout("fashion_mnist")->prompt_template, "a photo of a {}.");
}

TEST(CaptionsTest, EveryAttributeWordDescribesEveryClass) {
  EXPECT_EQ(FashionMnistAttributeWords(), (std::vector<std::string>{"shape", "length", "sleeve", "texture", "fit"}));
  for (const auto& c : FashionMnistCaptions()) {
    for (const auto& word : FashionMnistAttributeWords()) {
      bool found = false;
      for (const auto& text : c.captions) found = found || HasWord(text, word);
      EXPECT_TRUE(found) << c.classname << " has no caption with '" << word << "'";
    }
  }
}

TEST(CaptionsTest, CorpusHoldsCaptionsAndThePromptLearnersPlaceholders) {
  const auto corpus = VocabularyCorpus(FashionMnistCaptions());
  size_t captions = 0;
  for (const auto& c : FashionMnistCaptions()) captions += c.captions.size();
  EXPECT_GT(corpus.size(), captions);
  EXPECT_EQ(corpus[0], FashionMnistCaptions()[0].captions[0]);
  bool atprompt_line = false;
  for (const auto& line : corpus) {
    atprompt_line = atprompt_line || line == "X X shape X X length X X sleeve X X texture X X fit X X Sandal.";
  }
  EXPECT_TRUE(atprompt_line);
  EXPECT_EQ(VocabularyCorpus(FashionMnistCaptions()), corpus);
  EXPECT_EQ(FashionMnistCorpusSha256().size(), 64u);
  EXPECT_EQ(FashionMnistCorpusSha256(), FashionMnistCorpusSha256());
}

TEST(CaptionsTest, ArticlesAgreeWithTheNextWord) {
  // "a photo of a {}" keeps its "a" whatever the class: it is the zero-shot template.
  for (const auto& c : FashionMnistCaptions()) {
    for (std::string text : c.captions) {
      const std::string photo = "photo of a " + c.classname;
      if (const size_t p = text.find(photo); p != std::string::npos) text.erase(p, photo.size());
      for (const char* wrong : {" a open", " a ankle", " a Ankle", "a open", " a a", " an s", " an l"}) {
        EXPECT_EQ((" " + text).find(wrong), std::string::npos) << text;
      }
    }
  }
}

}  // namespace
}  // namespace atp::pretrain
