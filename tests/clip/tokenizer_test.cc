#include "worker/clip/tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>

#include "tests/clip/clip_test_util.h"
#include "tests/support/status_matchers.h"
#include "worker/clip/text_cleaner.h"

namespace atp::clip {
namespace {

using testing::FixturePath;
using testing::RealTokenizer;
using testing::TempDir;

std::vector<std::string> Pieces(const std::string& cleaned) {
  std::vector<std::string> out;
  for (const auto& p : ClipTokenizer::PreTokenize(DecodeUtf8(cleaned).value())) out.push_back(EncodeUtf8(p));
  return out;
}

TEST(ClipPreTokenizeTest, SplitsDigitsOneByOneAndPunctuationRuns) {
  EXPECT_EQ(Pieces("747-400"), (std::vector<std::string>{"7", "4", "7", "-", "4", "0", "0"}));
  EXPECT_EQ(Pieces("apply_eye"), (std::vector<std::string>{"apply", "_", "eye"}));
  EXPECT_EQ(Pieces("hello,   world!!"), (std::vector<std::string>{"hello", ",", "world", "!!"}));
}

TEST(ClipPreTokenizeTest, MatchesContractionsBeforeLetters) {
  EXPECT_EQ(Pieces("don't we'll i'm"), (std::vector<std::string>{"don", "'t", "we", "'ll", "i", "'m"}));
  // 's matches even when more letters follow, as the reference pattern has no boundary.
  EXPECT_EQ(Pieces("'sam"), (std::vector<std::string>{"'s", "am"}));
  EXPECT_EQ(Pieces("'x"), (std::vector<std::string>{"'", "x"}));
}

TEST(ClipPreTokenizeTest, SpecialTokensOnlyWhereAPieceStarts) {
  EXPECT_EQ(Pieces("a <|endoftext|> b"), (std::vector<std::string>{"a", "<|endoftext|>", "b"}));
  // A punctuation run starting earlier swallows the '<|'.
  EXPECT_EQ(Pieces("!!<|endoftext|>"), (std::vector<std::string>{"!!<|", "endoftext", "|>"}));
}

TEST(ClipPreTokenizeTest, UnicodeLettersAndNumbers) {
  EXPECT_EQ(Pieces("café ½x"), (std::vector<std::string>{"café", "½", "x"}));
  EXPECT_EQ(Pieces("日本語"), (std::vector<std::string>{"日本語"}));
  EXPECT_EQ(Pieces("a\xC2\xA0" "b"), (std::vector<std::string>{"a", "b"}));  // NBSP is \s
}

TEST(ClipVocabPathTest, ExplicitPathThatDoesNotExistIsNamed) {
  auto r = ResolveVocabPath("/nonexistent/vocab.txt.gz");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/vocab.txt.gz"), std::string::npos);
}

TEST(ClipVocabPathTest, EnvironmentVariableThenSharedFoldersAndErrorsListEveryPlaceTried) {
  TempDir dir;
  std::filesystem::create_directories(dir.File("shared/clip"));
  std::filesystem::create_directories(dir.File("repo/build"));
  dir.Write("v.txt.gz", "x");
  const char* old = std::getenv("ATP_CLIP_VOCAB");
  const std::string saved = old ? old : "";
  setenv("ATP_CLIP_VOCAB", dir.File("v.txt.gz").c_str(), 1);
  auto found = ResolveVocabPath("", {dir.File("repo")});
  ASSERT_OK(found);
  EXPECT_EQ(*found, dir.File("v.txt.gz"));

  setenv("ATP_CLIP_VOCAB", dir.File("missing.gz").c_str(), 1);
  auto r = ResolveVocabPath("", {dir.File("repo/build"), dir.File("repo")});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("missing.gz ($ATP_CLIP_VOCAB)"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(dir.File("repo/shared/clip/bpe_simple_vocab_16e6.txt.gz")), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find(dir.File("shared/clip/bpe_simple_vocab_16e6.txt.gz")), std::string::npos)
      << r.status().message();

  dir.Write("shared/clip/bpe_simple_vocab_16e6.txt.gz", "x");
  found = ResolveVocabPath("", {dir.File("repo/build"), dir.File("repo")});
  ASSERT_OK(found);
  EXPECT_EQ(*found, dir.File("shared/clip/bpe_simple_vocab_16e6.txt.gz"));
  if (old) setenv("ATP_CLIP_VOCAB", saved.c_str(), 1);
  else unsetenv("ATP_CLIP_VOCAB");
}

TEST(ClipTokenizerLoadTest, RejectsFilesThatAreNotTheVocabulary) {
  TempDir dir;
  dir.Write("bad.txt", "#version: 0.2\nabc\n");
  auto r = ClipTokenizer::Load(dir.File("bad.txt"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("line 2 is not a merge"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(dir.File("bad.txt")), std::string::npos);
  dir.Write("blank.txt", "#version: 0.2\na b\n\nc d\n");
  r = ClipTokenizer::Load(dir.File("blank.txt"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("line 3 is not a merge"), std::string::npos) << r.status().message();
  dir.Write("no_newline.txt", "#version: 0.2");
  EXPECT_EQ(ClipTokenizer::Load(dir.File("no_newline.txt")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ClipTokenizer::Load(dir.File("absent.gz")).status().code(), StatusCode::kNotFound);
}

TEST(ClipTokenizerLoadTest, ShortMergeListGivesASmallVocabularyWithSpecialTokensLast) {
  TempDir dir;
  dir.Write("short.txt", "#version: 0.2\na b</w>\nc d\n");
  auto r = ClipTokenizer::Load(dir.File("short.txt"));
  ASSERT_OK(r);
  const ClipTokenizer& tok = **r;
  EXPECT_EQ(tok.vocab_size(), 512 + 2 + 2);
  EXPECT_EQ(tok.num_merges(), 2);
  EXPECT_EQ(tok.start_of_text(), 514);
  EXPECT_EQ(tok.end_of_text(), 515);
  EXPECT_EQ(tok.Token(512), "ab</w>");
  EXPECT_EQ(tok.Token(513), "cd");
  EXPECT_EQ(tok.Token(515), "<|endoftext|>");
  EXPECT_EQ(tok.Encode("ab").value(), std::vector<int>{512});
  EXPECT_EQ(tok.Encode("<|startoftext|>").value(), std::vector<int>{514});
  EXPECT_EQ(tok.Tokenize("ab", OverlongPolicy::kError, 5).value(), (std::vector<int>{514, 512, 515, 0, 0}));
  auto cut = tok.Tokenize("ab ab ab", OverlongPolicy::kTruncate, 3);
  ASSERT_OK(cut);
  EXPECT_EQ(*cut, (std::vector<int>{514, 512, 515}));

  // A header and no merges: the byte symbols and the two special tokens.
  dir.Write("empty.txt", "#version: 0.2\n");
  r = ClipTokenizer::Load(dir.File("empty.txt"));
  ASSERT_OK(r);
  EXPECT_EQ((*r)->vocab_size(), 514);
  EXPECT_EQ((*r)->end_of_text(), 513);
}

TEST(ClipByteSymbolTest, InitialSymbolsSpellEveryByteAndMarkTheWordEnd) {
  EXPECT_EQ(ByteSymbol('a'), "a");
  EXPECT_EQ(ByteSymbol(' '), "\xC4\xA0");  // U+0120: spaces and controls move to 256+n
  EXPECT_EQ(InitialBpeSymbols("dog"), (std::vector<std::string>{"d", "o", "g</w>"}));
  EXPECT_EQ(InitialBpeSymbols("\xC3\xA9").size(), 2u);  // one symbol per byte of é
  EXPECT_TRUE(InitialBpeSymbols("").empty());
}

class ClipTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    tok_ = RealTokenizer(&why);
    if (!tok_) GTEST_SKIP() << "CLIP vocabulary not available, skipping: " << why;
  }
  std::vector<int> Enc(const std::string& s) {
    auto r = tok_->Encode(s);
    EXPECT_OK(r);
    return r.ok() ? *r : std::vector<int>{};
  }
  std::shared_ptr<const ClipTokenizer> tok_;
};

TEST_F(ClipTokenizerTest, KnownIds) {
  EXPECT_EQ(tok_->vocab_size(), kVocabSize);
  EXPECT_EQ(tok_->start_of_text(), kStartOfText);
  EXPECT_EQ(tok_->end_of_text(), kEndOfText);
  EXPECT_EQ(tok_->num_merges(), kMaxMerges);
  EXPECT_EQ(Enc("X"), std::vector<int>{343});
  EXPECT_EQ(tok_->Token(343), "x</w>");
  EXPECT_EQ(Enc("."), std::vector<int>{269});
  EXPECT_EQ(Enc("a photo of a"), (std::vector<int>{320, 1125, 539, 320}));
  EXPECT_EQ(Enc("_"), std::vector<int>{318});
  EXPECT_EQ(Enc("'s"), std::vector<int>{568});
  EXPECT_EQ(Enc("playfulness"), (std::vector<int>{1222, 10526}));
  EXPECT_EQ(Enc("technique"), (std::vector<int>{1782, 697, 2319}));
  EXPECT_EQ(Enc("<|endoftext|>"), std::vector<int>{kEndOfText});
  EXPECT_EQ(tok_->Token(kStartOfText), "<|startoftext|>");
}

TEST_F(ClipTokenizerTest, TokenizePadsWithZerosAfterStartAndEnd) {
  auto ids = tok_->Tokenize("a photo of a dog.");
  ASSERT_OK(ids);
  ASSERT_EQ(ids->size(), 77u);
  std::vector<int> head(ids->begin(), ids->begin() + 8);
  EXPECT_EQ(head, (std::vector<int>{kStartOfText, 320, 1125, 539, 320, 1929, 269, kEndOfText}));
  for (size_t i = 8; i < 77; ++i) EXPECT_EQ((*ids)[i], 0);
}

TEST_F(ClipTokenizerTest, OverlongTextIsAnErrorUnlessTruncationIsAsked) {
  std::string text;
  for (int i = 0; i < 80; ++i) text += "a ";
  auto err = tok_->Tokenize(text);
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(err.status().message().find("82 tokens"), std::string::npos) << err.status().message();
  auto ids = tok_->Tokenize(text, OverlongPolicy::kTruncate);
  ASSERT_OK(ids);
  EXPECT_EQ((*ids)[0], kStartOfText);
  EXPECT_EQ((*ids)[75], 320);
  EXPECT_EQ((*ids)[76], kEndOfText);
  // Exactly 77 with start and end fits.
  std::string fits;
  for (int i = 0; i < 75; ++i) fits += "a ";
  EXPECT_OK(tok_->Tokenize(fits));
}

TEST_F(ClipTokenizerTest, InvalidUtf8IsAnError) {
  EXPECT_FALSE(tok_->Encode("caf\xE9").ok());
}

// Ids produced by OpenAI's simple_tokenizer.py (with ftfy 6.3.1) on the real vocabulary:
// the class names of CLIP's prompt lists for Caltech101, DTD, EuroSAT, FGVCAircraft,
// Flowers102, Food101, OxfordPets, SUN397, StanfordCars, UCF101 and ImageNet, plus
// punctuation, digits, accents, HTML entities, emoji, control characters and long text.
TEST_F(ClipTokenizerTest, AgreesWithReferenceTokenizer) {
  std::ifstream in(FixturePath("tokenizer_reference.json"));
  ASSERT_TRUE(in) << "missing fixture tokenizer_reference.json";
  nlohmann::json cases = nlohmann::json::parse(in);
  int agree = 0, disagree = 0, truncations = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"].get<std::string>();
    const std::vector<int> want = c["ids"].get<std::vector<int>>();
    auto got = tok_->Encode(text);
    ASSERT_OK(got) << text;
    if (*got == want) {
      ++agree;
    } else {
      ++disagree;
      ADD_FAILURE() << "[" << c["source"].get<std::string>() << "] " << nlohmann::json(text).dump()
                    << " reference " << nlohmann::json(want).dump() << " atp " << nlohmann::json(*got).dump();
    }
    if (c["overlong"].get<bool>()) {
      ++truncations;
      EXPECT_FALSE(tok_->Tokenize(text).ok());
      auto t = tok_->Tokenize(text, OverlongPolicy::kTruncate);
      ASSERT_OK(t);
      EXPECT_EQ(*t, c["tokenized_truncated"].get<std::vector<int>>()) << text;
    }
  }
  std::cout << "tokenizer agreement: " << agree << " of " << cases.size() << " strings (" << truncations
            << " over-long)\n";
  EXPECT_EQ(disagree, 0);
  EXPECT_GE(agree, 2000);
}

}  // namespace
}  // namespace atp::clip
