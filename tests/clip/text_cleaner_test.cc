#include "tests/support/status_matchers.h"
#include "worker/clip/text_cleaner.h"

#include <gtest/gtest.h>

namespace atp::clip {
namespace {

std::string Clean(const std::string& s) { return EncodeUtf8(CleanClipText(DecodeUtf8(s).value())); }
std::string Unescape(const std::string& s) { return EncodeUtf8(HtmlUnescape(DecodeUtf8(s).value())); }
std::string Ftfy(const std::string& s) { return EncodeUtf8(FtfyFixText(DecodeUtf8(s).value())); }

TEST(ClipTextCleanerTest, Utf8RoundTripAndStrictness) {
  const std::string s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
  auto d = DecodeUtf8(s);
  ASSERT_OK(d);
  EXPECT_EQ(d->size(), 4u);
  EXPECT_EQ(EncodeUtf8(*d), s);
  EXPECT_FALSE(DecodeUtf8("\xC0\x80").ok());          // overlong NUL
  EXPECT_FALSE(DecodeUtf8("\xED\xA0\x80").ok());      // surrogate
  EXPECT_FALSE(DecodeUtf8("\xE2\x82").ok());          // cut short
}

TEST(ClipTextCleanerTest, HtmlUnescapeFollowsPython) {
  EXPECT_EQ(Unescape("R&amp;D"), "R&D");
  EXPECT_EQ(Unescape("&amp;amp;"), "&amp;");
  EXPECT_EQ(Unescape("&#233;t&#xE9;"), "été");
  EXPECT_EQ(Unescape("&#128;"), "€");          // Windows-1252 fallback
  EXPECT_EQ(Unescape("&#0;"), "\xEF\xBF\xBD");  // U+FFFD
  EXPECT_EQ(Unescape("&#1;x"), "x");            // invalid code point: dropped
  EXPECT_EQ(Unescape("&copy 2024"), "© 2024");  // legacy name without ';'
  EXPECT_EQ(Unescape("&notit;"), "¬it;");       // longest prefix that is a name
  EXPECT_EQ(Unescape("&bogus; & &#x;"), "&bogus; & &#x;");
}

TEST(ClipTextCleanerTest, FtfyFixesQuotesLigaturesWidthAndControls) {
  EXPECT_EQ(Ftfy("\xE2\x80\x9Cquoted\xE2\x80\x9D it\xE2\x80\x99s"), "\"quoted\" it's");
  EXPECT_EQ(Ftfy("\xEF\xAC\x81nance"), "finance");
  EXPECT_EQ(Ftfy("\xEF\xBC\xA1\xEF\xBC\x91"), "A1");  // fullwidth A, 1
  EXPECT_EQ(Ftfy("\x1B[31mred\x1B[0m"), "red");
  EXPECT_EQ(Ftfy("bell\x07" "del\x7F"), "belldel");
  EXPECT_EQ(Ftfy("cafe\xCC\x81"), "caf\xC3\xA9");  // NFC
  EXPECT_EQ(Ftfy("a\r\nb\rc"), "a\nb\nc");
  // ftfy unescapes ';'-terminated entities, repeating until nothing changes, but not once
  // the text contains '<'.
  EXPECT_EQ(Ftfy("&amp;amp;"), "&");
  EXPECT_EQ(Ftfy("<b>&amp;</b>"), "<b>&amp;</b>");
  EXPECT_EQ(Ftfy("&EACUTE;"), "É");
}

TEST(ClipTextCleanerTest, CleanCollapsesWhitespaceAndLowercasesLikePython) {
  EXPECT_EQ(Clean("  Hello,\t\n  WORLD  "), "hello, world");
  EXPECT_EQ(Clean("\xCE\x9F\xCE\x94\xCE\xA5\xCE\xA3\xCE\xA3\xCE\x95\xCE\xA5\xCE\xA3"), "οδυσσευς");  // final sigma
  EXPECT_EQ(Clean("\xC4\xB0"), "i\xCC\x87");  // İ lowercases to i + combining dot
  EXPECT_EQ(Clean("&amp;amp;amp;"), "&");
  EXPECT_EQ(Clean("a\xC2\xA0\xE2\x80\x89" "b"), "a b");
}

TEST(ClipTextCleanerTest, CharacterClasses) {
  EXPECT_TRUE(IsLetter(U'é'));
  EXPECT_TRUE(IsLetter(U'語'));
  EXPECT_FALSE(IsLetter(U'1'));
  EXPECT_TRUE(IsNumber(U'½'));
  EXPECT_TRUE(IsNumber(U'\u0661'));
  EXPECT_TRUE(IsRegexSpace(0x3000));
  EXPECT_FALSE(IsRegexSpace(0x1C));
  EXPECT_TRUE(IsPythonSpace(0x1C));
  EXPECT_FALSE(IsRegexSpace(0x200B));
}

}  // namespace
}  // namespace atp::clip
