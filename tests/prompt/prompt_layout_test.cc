// PromptLayout, position by position, against the layouts the official trainers build
// (docs/reference.md §3.2-3.5), including the fixed-offset slicing of multi-token attribute words.
#include "worker/prompt/prompt_layout.h"

#include <gtest/gtest.h>

#include "tests/prompt/prompt_test_util.h"

namespace atp::prompt {
namespace {

std::string Describe(const PromptDesign& design, const std::string& name, const clip::ClipTokenizer& tok) {
  auto layout = BuildPromptLayout(design, {name}, tok);
  EXPECT_TRUE(layout.ok()) << layout.status().ToString();
  if (!layout.ok()) return "";
  return DescribeClassPrompt(layout->classes[0], tok);
}

PromptDesign Atp(std::vector<std::string> attributes, int n, Compat compat = Compat::kPaper) {
  PromptDesign d;
  d.n_ctx = n;
  d.attributes = std::move(attributes);
  d.compat = compat;
  return d;
}

TEST(PromptLayoutTest, VanillaCoopEndFrontMiddle) {
  ATP_REQUIRE_TOKENIZER(tok);
  PromptDesign d;
  d.n_ctx = 4;
  EXPECT_EQ(Describe(d, "golden_retriever", *tok), "SOS c c c c golden retriever . EOT");
  d.class_position = ClassPosition::kFront;
  EXPECT_EQ(Describe(d, "golden_retriever", *tok), "SOS golden retriever c c c c . EOT");
  d.class_position = ClassPosition::kMiddle;
  EXPECT_EQ(Describe(d, "golden_retriever", *tok), "SOS c c golden retriever c c . EOT");
}

TEST(PromptLayoutTest, AtpromptCaltechExampleFromThePaper) {
  ATP_REQUIRE_TOKENIZER(tok);
  // docs/reference.md §3.3: Caltech101, n = a = 2, (shape, size):
  // SOS a a shape a a size c c <class> . EOT.
  for (Compat compat : {Compat::kPaper, Compat::kOfficial}) {
    EXPECT_EQ(Describe(Atp({"shape", "size"}, 2, compat), "accordion", *tok),
              "SOS a a shape a a size c c accordion . EOT");
  }
  auto layout = BuildPromptLayout(Atp({"shape", "size"}, 2), {"accordion"}, *tok);
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(layout->classes[0].text, "X X shape X X size X X accordion.");
  EXPECT_EQ(layout->classes[0].eot, 11);
  EXPECT_EQ(layout->classes[0].class_context_positions, (std::vector<int>{7, 8}));
}

TEST(PromptLayoutTest, OfficialSlicingCutsMultiTokenAttributeWords) {
  ATP_REQUIRE_TOKENIZER(tok);
  ASSERT_EQ(tok->Encode("playfulness")->size(), 2u) << "the spec's example assumes play + fulness";
  // Paper: whole words.
  EXPECT_EQ(Describe(Atp({"playfulness", "energy"}, 2), "dog", *tok),
            "SOS a a play fulness a a energy c c dog . EOT");
  // Official (docs/reference.md §3.3): middle1 = "play"; middle2 = the last X of the second
  // soft block; the suffix starts one position early with a raw "X"; "fulness" and "energy"
  // never appear.
  auto layout = BuildPromptLayout(Atp({"playfulness", "energy"}, 2, Compat::kOfficial), {"dog"}, *tok);
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(DescribeClassPrompt(layout->classes[0], *tok), "SOS a a play a a x c c x dog . EOT");
  EXPECT_EQ(layout->classes[0].eot, 12);
  ASSERT_EQ(layout->notes.size(), 1u);
  EXPECT_NE(layout->notes[0].find("playfulness"), std::string::npos);
  // Both keep the total length: the EOT is where the template has it.
  auto paper = BuildPromptLayout(Atp({"playfulness", "energy"}, 2), {"dog"}, *tok);
  EXPECT_EQ(paper->classes[0].eot, 12);
}

TEST(PromptLayoutTest, AtpromptClassPositions) {
  ATP_REQUIRE_TOKENIZER(tok);
  PromptDesign d = Atp({"color", "shape"}, 2);
  d.class_position = ClassPosition::kMiddle;
  EXPECT_EQ(Describe(d, "dog", *tok), "SOS a a color c c dog a a shape . EOT");
  d.class_position = ClassPosition::kFront;
  EXPECT_EQ(Describe(d, "dog", *tok), "SOS c c dog a a color a a shape . EOT");
}

TEST(PromptLayoutTest, DifferentSoftLengthsPerAttribute) {
  ATP_REQUIRE_TOKENIZER(tok);
  PromptDesign d = Atp({"color", "shape", "size"}, 3);
  d.attribute_ctx = {1, 2, 3};
  EXPECT_EQ(Describe(d, "dog", *tok), "SOS a color a a shape a a a size c c c dog . EOT");
  auto layout = BuildPromptLayout(d, {"dog"}, *tok);
  const auto& slots = layout->classes[0].slots;
  EXPECT_EQ(slots[7].kind, SlotKind::kAttributeContext);
  EXPECT_EQ(slots[7].block, 2);
  EXPECT_EQ(slots[8].index, 2);
  EXPECT_EQ(slots[9].kind, SlotKind::kFixed);
}

TEST(PromptLayoutTest, CtxInitKeepsThePhraseInTheTemplate) {
  ATP_REQUIRE_TOKENIZER(tok);
  // Vanilla CoCoOp: n = 4 from "a photo of a"; MaPLe with n = 2 keeps "of a" as fixed tokens.
  PromptDesign d;
  d.n_ctx = 4;
  d.ctx_init = "a photo of a";
  auto layout = BuildPromptLayout(d, {"dog"}, *tok);
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(DescribeClassPrompt(layout->classes[0], *tok), "SOS c c c c dog . EOT");
  EXPECT_EQ(layout->classes[0].text, "a photo of a dog.");
  EXPECT_EQ(layout->classes[0].template_ids[2], tok->Encode("photo")->front());
  d.n_ctx = 2;
  EXPECT_EQ(Describe(d, "dog", *tok), "SOS c c of a dog . EOT");
}

TEST(PromptLayoutTest, UnderscoresAndLongPrompts) {
  ATP_REQUIRE_TOKENIZER(tok);
  PromptDesign d;
  d.n_ctx = 2;
  d.keep_underscores = true;
  EXPECT_EQ(Describe(d, "golden_retriever", *tok), "SOS c c golden _ retriever . EOT");
  d.keep_underscores = false;
  d.n_ctx = 73;  // SOS + 73 + "golden retriever" + "." + EOT = 78 > 77
  auto layout = BuildPromptLayout(d, {"golden_retriever"}, *tok);
  ASSERT_FALSE(layout.ok());
  EXPECT_NE(layout.status().message().find("golden_retriever"), std::string::npos) << layout.status().message();
  EXPECT_FALSE(BuildPromptLayout(Atp({""}, 2), {"dog"}, *tok).ok());
}

TEST(PromptLayoutTest, ParsesItsSwitches) {
  EXPECT_EQ(*ParseClassPosition("middle"), ClassPosition::kMiddle);
  EXPECT_EQ(*ParseCompat("official"), Compat::kOfficial);
  EXPECT_FALSE(ParseCompat("Official").ok());
  EXPECT_NE(ParseClassPosition("start").status().message().find("\"front\""), std::string::npos);
}

}  // namespace
}  // namespace atp::prompt
