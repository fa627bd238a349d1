// CoCoOp (± ATPrompt) against the released classes (trainers/cocoop_atp.py, and trainers/cocoop.py
// for vanilla): the meta-net's shift of the class context for given image features, and the
// per-image logits (tests/prompt/fixtures/official/README.md).
#include "worker/prompt/cocoop_model.h"

#include <gtest/gtest.h>

#include "tests/prompt/official_parity.h"

namespace atp::prompt {
namespace {

using namespace testing;  // NOLINT: the parity helpers

TEST(CocoopModelParityTest, MetaNetShiftAndLogitsMatchTheOfficialClasses) {
  ATP_REQUIRE_TOKENIZER(tok);
  clip::Clip clip = ParityClip();
  ASSERT_TRUE(clip);
  int compared = 0;
  for (const Json& meta : OfficialIndex()) {
    OfficialCase c = LoadOfficialCase(meta);
    if (c.method() != "cocoop") continue;
    for (Compat compat : {Compat::kOfficial, Compat::kPaper}) {
      if (compat == Compat::kPaper && !c.PaperAgrees(/*with_deep_prompts=*/false)) continue;
      const std::string label = c.name() + "/" + CompatName(compat);
      auto model = OfficialModel<CocoopModel>(c, compat, clip, tok);
      ASSERT_TRUE(model) << label;
      torch::NoGradGuard no_grad;
      const torch::Tensor features = c.at("out.image_features");
      // The official PromptLearner.forward adds meta_net(normalised feature) to every ctx row.
      const torch::Tensor shift = model->meta_net()->forward(features / features.norm(2, -1, true));
      ExpectClose(label + " meta-net shift", shift, c.at("out.meta_net_shift"));
      ExpectClose(label + " logits", model->Logits(features), c.at("out.logits"));
      ++compared;
    }
  }
  EXPECT_EQ(compared, 6 + 6 - 2);
}

}  // namespace
}  // namespace atp::prompt
