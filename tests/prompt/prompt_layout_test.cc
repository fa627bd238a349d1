// PromptLayout, position by position, against the layouts the official trainers build
// (docs/reference.md §3.2-3.5), including the fixed-offset slicing of multi-token attribute words.
#include "worker/prompt/prompt_layout.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "common/json.h"

#include "tests/prompt/prompt_test_util.h"
#include "tests/support/status_matchers.h"

namespace atp::prompt {
namespace {

std::string Describe(const PromptDesign& design, const std::string& name, const clip::ClipTokenizer& tok) {
  auto layout = BuildPromptLayout(design, {name}, tok);
  EXPECT_OK(layout);
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
  ASSERT_OK(layout);
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
  ASSERT_OK(layout);
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
  ASSERT_OK(layout);
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

namespace atp::prompt {
namespace {

// Parity with the official CoOp_ATP prompt learner (ATPrompt trainers/coop_atp.py), with
// ATPrompt off and with 1, 2 and 3 attributes, one of them several BPE tokens long
// ("playfulness"). The fixture holds, per class, what the official learner puts at each
// position of the encoder input when token id i embeds as i and the learned rows as
// markers: a token id, -(1000 + r) for row r of ctx, -(2000 + 100 b + r) for row r of
// ctx_att{b+1} (tests/prompt/fixtures/README.md).
TEST(PromptLayoutParityTest, OfficialCoopAtpPromptsPositionByPosition) {
  ATP_REQUIRE_TOKENIZER(tok);
  std::ifstream in(std::string(ATP_PROMPT_FIXTURE_DIR) + "/coop_atp_prompts.json");
  ASSERT_TRUE(in) << "missing fixture coop_atp_prompts.json";
  const Json fixture = Json::parse(in);
  ASSERT_EQ(fixture["cases"].size(), 5u);
  for (const Json& c : fixture["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    PromptDesign design;
    design.compat = Compat::kOfficial;
    design.n_ctx = c["n_ctx"].get<int>();
    design.attributes = c["attributes"].get<std::vector<std::string>>();
    design.attribute_ctx.assign(design.attributes.size(), c["attribute_ctx"].get<int>());
    // trainers/coop_atp.py builds its vanilla prompts before replacing '_' (class_name_underscores
    // = true; the official vanilla CoOp recipe follows trainers/coop.py, which replaces it).
    design.keep_underscores = design.attributes.empty();
    const auto names = c["classnames"].get<std::vector<std::string>>();
    auto layout = BuildPromptLayout(design, names, *tok);
    ASSERT_OK(layout);
    int64_t largest_difference = 0;
    for (size_t k = 0; k < names.size(); ++k) {
      const ClassPrompt& prompt = layout->classes[k];
      const auto expected = c["markers"][k].get<std::vector<int64_t>>();
      const auto expected_ids = c["tokenized"][k].get<std::vector<int64_t>>();
      for (size_t p = 0; p < expected.size(); ++p) {
        const Slot& slot = prompt.slots[p];
        int64_t marker = 0;
        switch (slot.kind) {
          case SlotKind::kFixed: marker = prompt.template_ids[static_cast<size_t>(slot.source)]; break;
          case SlotKind::kClassContext: marker = -(1000 + slot.index); break;
          case SlotKind::kAttributeContext: marker = -(2000 + 100 * slot.block + slot.index); break;
        }
        largest_difference = std::max(largest_difference, std::abs(marker - expected[p]));
        EXPECT_EQ(marker, expected[p]) << names[k] << " position " << p;
        EXPECT_EQ(prompt.template_ids[p], expected_ids[p]) << names[k] << " token " << p;
      }
    }
    RecordProperty("largest_difference_" + c["name"].get<std::string>(), static_cast<int>(largest_difference));
  }
}

// Regression: vanilla CoOp under compat = "official" replaced '_' by spaces, unlike the
// official learner, so "great_pyrenees" had other tokens than the released code gives it.
TEST(PromptLayoutParityTest, OfficialVanillaCoopKeepsUnderscoresOnlyWhenAsked) {
  ATP_REQUIRE_TOKENIZER(tok);
  PromptDesign design;
  design.compat = Compat::kOfficial;
  design.n_ctx = 4;
  auto replaced = BuildPromptLayout(design, {"great_pyrenees"}, *tok);
  design.keep_underscores = true;
  auto kept = BuildPromptLayout(design, {"great_pyrenees"}, *tok);
  ASSERT_OK(replaced);
  ASSERT_OK(kept);
  EXPECT_NE(replaced->classes[0].template_ids, kept->classes[0].template_ids);
  // "great_pyrenees" is three tokens (great, _, pyrenees); "great pyrenees" two.
  EXPECT_EQ(kept->classes[0].eot, replaced->classes[0].eot + 1);
}

}  // namespace
}  // namespace atp::prompt
