#include "worker/pretrain/bpe_trainer.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>
#include <iterator>
#include <map>

#include "common/atomic_file.h"
#include "tests/pretrain/pretrain_test_util.h"
#include "tests/support/status_matchers.h"
#include "worker/clip/text_cleaner.h"
#include "worker/clip/tokenizer.h"
#include "worker/pretrain/captions.h"

namespace atp::pretrain {
namespace {

using testing::TempDir;

std::string ReadGzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return "";
  std::string out;
  char buf[4096];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  gzclose(f);
  return out;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Token strings back to text: byte symbols to bytes, "</w>" to a space (simple_tokenizer.decode).
std::string Decode(const clip::ClipTokenizer& tok, const std::vector<int>& ids) {
  std::map<std::string, char> byte_of;
  for (int b = 0; b < 256; ++b) byte_of[clip::ByteSymbol(static_cast<unsigned char>(b))] = static_cast<char>(b);
  std::string symbols;
  for (int id : ids) symbols += tok.Token(id);
  std::string out;
  for (size_t i = 0; i < symbols.size();) {
    if (symbols.compare(i, 4, "</w>") == 0) {
      out += ' ';
      i += 4;
      continue;
    }
    const unsigned char b = static_cast<unsigned char>(symbols[i]);
    const size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : 3;
    out += byte_of.at(symbols.substr(i, n));
    i += n;
  }
  return out;
}

TEST(BpeTrainerTest, MergesTheMostFrequentPairFirst) {
  auto merges = LearnBpeMerges({"low low low lower lowest"});
  ASSERT_OK(merges);
  ASSERT_GE(merges->size(), 2u);
  // l-o occurs in all five words; then lo + w</w> (three times) beats lo + w (twice).
  EXPECT_EQ((*merges)[0], BpeMerge("l", "o"));
  EXPECT_EQ((*merges)[1], BpeMerge("lo", "w</w>"));
}

TEST(BpeTrainerTest, BreaksTiesByByteOrderAndIsDeterministic) {
  auto merges = LearnBpeMerges({"cd ab", "ab cd"});
  ASSERT_OK(merges);
  ASSERT_EQ(merges->size(), 2u);
  EXPECT_EQ((*merges)[0], BpeMerge("a", "b</w>"));
  EXPECT_EQ((*merges)[1], BpeMerge("c", "d</w>"));
  EXPECT_EQ(*LearnBpeMerges({"ab cd", "cd ab"}), *merges);  // line order does not matter here
}

TEST(BpeTrainerTest, StopsWhenNoPairOccursTwiceOrAtTheCap) {
  EXPECT_TRUE(LearnBpeMerges({"abc"})->empty());
  BpeTrainerOptions o;
  o.max_merges = 1;
  EXPECT_EQ(LearnBpeMerges({"low low low lower lowest"}, o)->size(), 1u);
  o.max_merges = -1;
  EXPECT_EQ(LearnBpeMerges({"x"}, o).status().code(), StatusCode::kInvalidArgument);
}

TEST(BpeTrainerTest, CleansAndPreTokenisesLikeTheTokenizer) {
  // Upper case is folded and "," is its own piece, so "Dog," and "dog" are one word.
  auto merges = LearnBpeMerges({"Dog, dog"});
  ASSERT_OK(merges);
  ASSERT_EQ(merges->size(), 2u);
  EXPECT_EQ((*merges)[0], BpeMerge("d", "o"));
  EXPECT_EQ((*merges)[1], BpeMerge("do", "g</w>"));
  // Special tokens never go through BPE.
  EXPECT_TRUE(LearnBpeMerges({"<|endoftext|> <|endoftext|>"})->empty());
  // Bytes outside ASCII are spelled with their stand-in symbols.
  auto accented = LearnBpeMerges({"é é"});
  ASSERT_OK(accented);
  ASSERT_FALSE(accented->empty());
  EXPECT_EQ((*accented)[0].first, clip::ByteSymbol(0xC3));
}

TEST(BpeTrainerTest, InvalidUtf8NamesTheLine) {
  auto r = LearnBpeMerges({"fine", "caf\xE9"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("line 2"), std::string::npos) << r.status().message();
}

TEST(BpeTrainerTest, WritesOpenAisFormatDeterministically) {
  TempDir dir;
  const std::vector<BpeMerge> merges = {{"l", "o"}, {"lo", "w</w>"}};
  ASSERT_OK(WriteBpeVocabulary(dir.File("a.txt.gz"), merges));
  ASSERT_OK(WriteBpeVocabulary(dir.File("b.txt.gz"), merges));
  EXPECT_EQ(ReadGzip(dir.File("a.txt.gz")), "#version: 0.2\nl o\nlo w</w>\n");
  EXPECT_EQ(ReadBytes(dir.File("a.txt.gz")), ReadBytes(dir.File("b.txt.gz")));
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_FALSE(IsAtomicWriteTemp(entry.path().filename().string())) << entry.path();
  }
  EXPECT_EQ(WriteBpeVocabulary(dir.File("no/such/dir/v.gz"), merges).code(), StatusCode::kIoError);
}

class LearnedVocabularyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto merges = LearnBpeMerges(VocabularyCorpus(FashionMnistCaptions()));
    ASSERT_OK(merges);
    merges_ = *merges;
    ASSERT_OK(WriteBpeVocabulary(dir_.File("vocab.txt.gz"), merges_));
    auto tok = clip::ClipTokenizer::Load(dir_.File("vocab.txt.gz"));
    ASSERT_OK(tok);
    tok_ = *tok;
  }
  std::vector<int> Enc(const std::string& text) {
    auto r = tok_->Encode(text);
    EXPECT_OK(r);
    return r.ok() ? *r : std::vector<int>{};
  }
  TempDir dir_;
  std::vector<BpeMerge> merges_;
  std::shared_ptr<const clip::ClipTokenizer> tok_;
};

TEST_F(LearnedVocabularyTest, LoadsWithEveryMergeAndSpecialTokensLast) {
  EXPECT_GT(merges_.size(), 50u);
  EXPECT_LT(merges_.size(), 1000u);  // the captions run out of repeated pairs first
  EXPECT_EQ(tok_->num_merges(), static_cast<int>(merges_.size()));
  EXPECT_EQ(tok_->vocab_size(), 512 + static_cast<int>(merges_.size()) + 2);
  EXPECT_EQ(tok_->Token(tok_->start_of_text()), "<|startoftext|>");
  EXPECT_EQ(tok_->Token(tok_->end_of_text()), "<|endoftext|>");
  EXPECT_EQ(tok_->end_of_text(), tok_->vocab_size() - 1);
  auto ids = tok_->Tokenize("a photo of a sandal.", clip::OverlongPolicy::kError, 16);
  ASSERT_OK(ids);
  EXPECT_EQ((*ids)[0], tok_->start_of_text());
  EXPECT_EQ(*std::max_element(ids->begin(), ids->end()), tok_->end_of_text());
}

TEST_F(LearnedVocabularyTest, FrequentWordsAreSingleTokens) {
  std::vector<std::string> words = {"a", "photo", "of", "type", "with", "x", "."};
  for (const auto& w : FashionMnistAttributeWords()) words.push_back(w);
  for (const auto& c : FashionMnistCaptions()) {
    // Each piece of a class name ("t", "-", "shirt", "/", "top"; "ankle", "boot").
    for (const auto& piece : clip::ClipTokenizer::PreTokenize(clip::CleanClipText(clip::DecodeUtf8(c.classname).value()))) {
      words.push_back(clip::EncodeUtf8(piece));
    }
  }
  for (const auto& w : words) {
    const std::vector<int> ids = Enc(w);
    ASSERT_EQ(ids.size(), 1u) << "'" << w << "' is " << ids.size() << " tokens";
    EXPECT_EQ(tok_->Token(ids[0]), w + "</w>");
  }
  EXPECT_EQ(Enc("X X shape X X sandal.").size(), 7u);
}

TEST_F(LearnedVocabularyTest, TextRoundTripsThroughIds) {
  for (const std::string text : {"a photo of a T-shirt/top.", "an ankle boot with a snug fit.", "zebra 42!",
                                 "unseen wordings tokenise bytewise"}) {
    const std::u32string cleaned = clip::CleanClipText(clip::DecodeUtf8(text).value());
    std::string expected;
    for (const auto& piece : clip::ClipTokenizer::PreTokenize(cleaned)) expected += clip::EncodeUtf8(piece) + " ";
    EXPECT_EQ(Decode(*tok_, Enc(text)), expected) << text;
  }
}

}  // namespace
}  // namespace atp::pretrain
