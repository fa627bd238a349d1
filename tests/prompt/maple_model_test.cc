#include "worker/prompt/maple_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "tests/prompt/official_parity.h"
#include "tests/prompt/prompt_test_util.h"
#include "tests/support/status_matchers.h"
#include "worker/data/dataset.h"
#include "worker/data/loader.h"
#include "worker/prompt/method_config.h"

namespace atp::prompt {
namespace {

using testing::RealTokenizer;

// TinyClip with more blocks and a vision width unlike the text width (64), so that depth
// J = 3 fits and the text → vision projection's shape is visible.
clip::Clip DeepTinyClip(int64_t layers = 3, int64_t vision_width = 96, uint64_t seed = 7) {
  torch::manual_seed(seed);
  clip::ClipOptions o = testing::TinyClipOptions();
  o.vision.layers(layers).width(vision_width);
  o.text.layers(layers);
  clip::Clip model(o);
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) {
    if (p.dim() >= 2) p.normal_(0, 0.05);
  }
  model->logit_scale.fill_(std::log(1 / 0.07));
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  model->eval();
  return model;
}

MethodConfig MapleConfig(int depth, std::vector<std::string> attributes = {}, Compat compat = Compat::kPaper) {
  MethodConfig config;
  config.method = "maple";
  config.maple_depth = depth;
  config.design.n_ctx = 2;
  config.design.compat = compat;
  config.atprompt = !attributes.empty();
  config.design.attributes = std::move(attributes);
  // The resolver sets the init phrase for vanilla MaPLe only (maple_atp.py disables it).
  if (!config.atprompt) config.design.ctx_init = "a photo of a";
  return config;
}

const std::vector<std::string> kClasses = {"dog", "golden retriever", "sea_lion"};

class MapleModelTest : public ::testing::Test {
 protected:
  // Builds the model or fails the test; null when the vocabulary is missing (test skipped).
  std::unique_ptr<MapleModel> Make(const MethodConfig& config, clip::Clip clip,
                                   const std::vector<std::string>& classes = kClasses) {
    std::string why;
    auto tokenizer = RealTokenizer(&why);
    if (!tokenizer) return nullptr;
    auto made = MakeMapleModel(config, clip, tokenizer, classes);
    EXPECT_OK(made);
    if (!made.ok()) return nullptr;
    return std::unique_ptr<MapleModel>(dynamic_cast<MapleModel*>(made.value().release()));
  }

  struct Seen {
    int64_t layer;
    torch::Tensor before, after;
  };

  // Runs the text tower and checks, block by block, that exactly `rows` ([C, n]) were
  // overwritten with compound_prompts_text[layer − 1] in blocks 1..J−1 and nothing else changed.
  void ExpectTextPromptsAt(MapleModel& model, const torch::Tensor& rows) {
    std::vector<Seen> seen;
    model.observer = [&seen](MapleModel::Tower tower, int64_t layer, const torch::Tensor& before,
                             const torch::Tensor& after) {
      if (tower == MapleModel::Tower::kText) seen.push_back({layer, before.detach().clone(), after.detach().clone()});
    };
    torch::NoGradGuard no_grad;
    model.TextFeatures();
    model.observer = nullptr;
    const int64_t layers = static_cast<int64_t>(seen.size());
    ASSERT_GT(layers, 0);
    const int64_t classes = rows.size(0), n = rows.size(1);
    // The encoder stops after the last EOT: the hook sees L' = max eot + 1 positions.
    EXPECT_EQ(seen[0].before.size(1), model.learner()->eot().max().item<int64_t>() + 1);
    for (const Seen& s : seen) {
      SCOPED_TRACE("text block " + std::to_string(s.layer));
      ASSERT_EQ(s.after.sizes(), s.before.sizes());
      if (s.layer < 1 || s.layer >= model.depth()) {
        EXPECT_TRUE(s.after.equal(s.before));
        continue;
      }
      torch::Tensor prompt = model.prompts()->compound_prompts_text[s.layer - 1].detach();
      torch::Tensor changed = torch::zeros({classes, s.before.size(1)}, torch::kBool);
      for (int64_t c = 0; c < classes; ++c) {
        for (int64_t j = 0; j < n; ++j) {
          const int64_t row = rows[c][j].item<int64_t>();
          EXPECT_TRUE(s.after[c][row].equal(prompt[j])) << "class " << c << " row " << row;
          EXPECT_FALSE(s.before[c][row].equal(prompt[j])) << "class " << c << " row " << row;
          changed[c][row] = true;
        }
      }
      torch::Tensor keep = changed.logical_not().unsqueeze(-1).expand_as(s.before);
      EXPECT_TRUE(s.after.masked_select(keep).equal(s.before.masked_select(keep)));
    }
  }
};

TEST_F(MapleModelTest, VanillaTextPromptsReplaceTheClassContextInBlocksOneToJMinusOne) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  auto model = Make(MapleConfig(3), DeepTinyClip(3));
  ASSERT_TRUE(model);
  // "a photo of a {class}.": the class context is "a photo", right after SOS.
  torch::Tensor expected = torch::tensor({1, 2}, torch::kLong).unsqueeze(0).expand({3, 2});
  EXPECT_TRUE(model->deep_text_rows().equal(expected));
  ExpectTextPromptsAt(*model, expected);
}

TEST_F(MapleModelTest, AtpromptPaperTextPromptsFollowWholeAttributeWords) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  // "playfulness" takes more than one BPE token; paper mode keeps it whole, so the class
  // context moves right and the deep prompts must follow it.
  auto model = Make(MapleConfig(3, {"color", "playfulness"}), DeepTinyClip(3));
  ASSERT_TRUE(model);
  const int64_t color = static_cast<int64_t>(tokenizer->Encode("color")->size());
  const int64_t playfulness = static_cast<int64_t>(tokenizer->Encode("playfulness")->size());
  ASSERT_GT(playfulness, 1);
  const int64_t start = 1 + (2 + color) + (2 + playfulness);
  torch::Tensor expected = torch::arange(start, start + 2, torch::kLong).unsqueeze(0).expand({3, 2});
  EXPECT_TRUE(model->deep_text_rows().equal(expected));
  EXPECT_TRUE(model->learner()->class_context_positions().equal(expected));
  ExpectTextPromptsAt(*model, expected);
}

TEST_F(MapleModelTest, AtpromptOfficialTextPromptsUseTheFixedOffset) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  // One-token words, a_k = n: the offset 1 + ATT_NUM·(n + 1) = 7 is the class context.
  auto model = Make(MapleConfig(3, {"color", "shape"}, Compat::kOfficial), DeepTinyClip(3));
  ASSERT_TRUE(model);
  torch::Tensor expected = torch::tensor({7, 8}, torch::kLong).unsqueeze(0).expand({3, 2});
  EXPECT_TRUE(model->deep_text_rows().equal(expected));
  EXPECT_TRUE(model->learner()->class_context_positions().equal(expected));
  ExpectTextPromptsAt(*model, expected);
}

TEST_F(MapleModelTest, AtpromptOfficialOffsetMissesTheClassContextWhenAttributeLengthsDiffer) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  // The cross-dataset scripts' case (docs/reference.md §3.5): N_ATT = 4 but MAPLE.N_CTX = 2.
  // The deep prompts overwrite rows 7-8 (inside the second attribute block), as the released
  // code does.
  MethodConfig config = MapleConfig(3, {"color", "shape"}, Compat::kOfficial);
  config.design.attribute_ctx = {4, 4};
  auto model = Make(config, DeepTinyClip(3));
  ASSERT_TRUE(model);
  torch::Tensor expected = torch::tensor({7, 8}, torch::kLong).unsqueeze(0).expand({3, 2});
  EXPECT_TRUE(model->deep_text_rows().equal(expected));
  EXPECT_TRUE(model->learner()->class_context_positions().equal(
      torch::tensor({11, 12}, torch::kLong).unsqueeze(0).expand({3, 2})));
  ExpectTextPromptsAt(*model, expected);
  bool warned = false;
  for (const auto& note : model->Notes()) warned = warned || note.find("misses the class context") != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST_F(MapleModelTest, VisionPromptsAreAppendedThenReplacedInBlocksOneToJMinusOne) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  // J = 2 on three blocks: block 1 gets new prompts, block 2 none.
  clip::Clip clip = DeepTinyClip(3);
  auto model = Make(MapleConfig(2), clip);
  ASSERT_TRUE(model);
  std::vector<std::tuple<int64_t, torch::Tensor, torch::Tensor>> seen;
  model->observer = [&seen](MapleModel::Tower tower, int64_t layer, const torch::Tensor& before,
                            const torch::Tensor& after) {
    if (tower == MapleModel::Tower::kVision) seen.emplace_back(layer, before.detach().clone(), after.detach().clone());
  };
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);
  torch::Tensor pixels = torch::randn({2, 3, 32, 32});
  model->ImageFeatures(pixels);
  ASSERT_EQ(seen.size(), 3u);
  const int64_t grid_tokens = 1 + 4 * 4, n = 2;
  // Block 0: the shared prompt proj(ctx) follows the grid tokens, through ln_pre.
  {
    const auto& [layer, before, after] = seen[0];
    EXPECT_EQ(layer, 0);
    ASSERT_EQ(before.sizes(), (std::vector<int64_t>{2, grid_tokens + n, 96}));
    EXPECT_TRUE(after.equal(before));
    torch::Tensor shared = clip->visual->ln_pre(model->prompts()->proj(model->learner()->ctx));
    for (int64_t i = 0; i < 2; ++i) EXPECT_TRUE(torch::allclose(before[i].narrow(0, grid_tokens, n), shared, 1e-5, 1e-6));
    // The grid tokens are the prompt-free tower's.
    torch::Tensor plain = clip->visual->ln_pre(clip->visual->EmbedPatches(pixels));
    EXPECT_TRUE(torch::allclose(before.narrow(1, 0, grid_tokens), plain, 1e-5, 1e-6));
  }
  // Block 1: the last n rows are replaced by compound_prompt_projections[0](compound_prompts_text[0]).
  {
    const auto& [layer, before, after] = seen[1];
    EXPECT_EQ(layer, 1);
    torch::Tensor deep = model->prompts()->VisionPrompt(0);
    for (int64_t i = 0; i < 2; ++i) {
      EXPECT_TRUE(after[i].narrow(0, grid_tokens, n).equal(deep));
      EXPECT_FALSE(before[i].narrow(0, grid_tokens, n).equal(deep));
    }
    EXPECT_TRUE(after.narrow(1, 0, grid_tokens).equal(before.narrow(1, 0, grid_tokens)));
  }
  // Block 2 (>= J): the prompt outputs propagate unchanged.
  {
    const auto& [layer, before, after] = seen[2];
    EXPECT_EQ(layer, 2);
    EXPECT_TRUE(after.equal(before));
  }
}

TEST_F(MapleModelTest, DepthBeyondTheLayerCountIsRejected) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  clip::Clip clip = testing::TinyClip();  // two blocks per tower
  for (int depth : {3, 0}) {
    auto made = MakeMapleModel(MapleConfig(depth), clip, tokenizer, kClasses);
    ASSERT_FALSE(made.ok()) << "J=" << depth;
    EXPECT_EQ(made.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(made.status().message().find("maple_depth J=" + std::to_string(depth)), std::string::npos)
        << made.status().message();
    EXPECT_NE(made.status().message().find("1 <= J <= 2"), std::string::npos) << made.status().message();
  }
  // The largest depth that fits: every block after the first gets deep prompts.
  auto fits = MakeMapleModel(MapleConfig(2), clip, tokenizer, kClasses);
  EXPECT_OK(fits);
}

TEST_F(MapleModelTest, TrainableParametersAreTheSpecList) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  auto names_of = [](const NamedTensors& tensors) {
    std::set<std::string> names;
    for (const auto& [name, tensor] : tensors) names.insert(name);
    return names;
  };
  auto vanilla = Make(MapleConfig(3), DeepTinyClip(3));
  ASSERT_TRUE(vanilla);
  const std::set<std::string> maple = {"prompt_learner.ctx",
                                       "prompt_learner.proj.weight",
                                       "prompt_learner.proj.bias",
                                       "prompt_learner.compound_prompts_text.0",
                                       "prompt_learner.compound_prompts_text.1",
                                       "prompt_learner.compound_prompt_projections.0.weight",
                                       "prompt_learner.compound_prompt_projections.0.bias",
                                       "prompt_learner.compound_prompt_projections.1.weight",
                                       "prompt_learner.compound_prompt_projections.1.bias"};
  EXPECT_EQ(names_of(vanilla->TrainableParameters()), maple);
  EXPECT_EQ(names_of(vanilla->StateDict()), maple);
  for (const auto& [name, tensor] : vanilla->TrainableParameters()) EXPECT_TRUE(tensor.requires_grad()) << name;

  // Shapes: text width 64 → vision width 96.
  auto prompts = vanilla->prompts();
  EXPECT_EQ(prompts->proj->weight.sizes(), (std::vector<int64_t>{96, 64}));
  EXPECT_EQ(prompts->compound_prompts_text[0].sizes(), (std::vector<int64_t>{2, 64}));
  // The projections are deep copies of one Linear: equal at the start, separate tensors.
  auto& p0 = prompts->compound_prompt_projections[0]->as<torch::nn::Linear>()->weight;
  auto& p1 = prompts->compound_prompt_projections[1]->as<torch::nn::Linear>()->weight;
  EXPECT_TRUE(p0.equal(p1));
  EXPECT_FALSE(p0.is_same(p1));
  // The vanilla ctx is initialised from "a photo".
  torch::Tensor init = vanilla->learner()->ctx.detach();
  auto ids = tokenizer->Encode("a photo");
  torch::Tensor embedded = DeepTinyClip(3)->token_embedding(torch::tensor({(*ids)[0], (*ids)[1]}, torch::kLong));
  EXPECT_TRUE(init.equal(embedded));

  // ATPrompt (official): the three ctx_att tensors exist, only the used ones train.
  auto atp = Make(MapleConfig(3, {"color", "shape"}, Compat::kOfficial), DeepTinyClip(3));
  ASSERT_TRUE(atp);
  std::set<std::string> trainable = maple;
  trainable.insert({"prompt_learner.ctx_att1", "prompt_learner.ctx_att2"});
  EXPECT_EQ(names_of(atp->TrainableParameters()), trainable);
  std::set<std::string> state = trainable;
  state.insert("prompt_learner.ctx_att3");
  EXPECT_EQ(names_of(atp->StateDict()), state);
  // No CLIP tensor is trainable.
  for (const auto& p : DeepTinyClip(3)->parameters()) EXPECT_FALSE(p.requires_grad());
}

TEST_F(MapleModelTest, DrawsInTheOfficialOrder) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  clip::Clip clip = DeepTinyClip(3);
  torch::manual_seed(11);
  auto model = Make(MapleConfig(3, {"color", "shape"}, Compat::kOfficial), clip);
  ASSERT_TRUE(model);
  // maple_atp.py: ctx; proj; compound_prompts_text; one Linear; ctx_att1..3.
  torch::manual_seed(11);
  torch::Tensor ctx = torch::empty({2, 64}).normal_(0, 0.02);
  torch::nn::Linear proj(64, 96);
  torch::Tensor text0 = torch::empty({2, 64}).normal_(0, 0.02);
  torch::Tensor text1 = torch::empty({2, 64}).normal_(0, 0.02);
  torch::nn::Linear single(64, 96);
  std::vector<torch::Tensor> att;
  for (int k = 0; k < 3; ++k) att.push_back(torch::empty({2, 64}).normal_(0, 0.01));
  torch::Tensor next = torch::rand({4});

  EXPECT_TRUE(model->learner()->ctx.equal(ctx));
  EXPECT_TRUE(model->prompts()->proj->weight.equal(proj->weight));
  EXPECT_TRUE(model->prompts()->proj->bias.equal(proj->bias));
  EXPECT_TRUE(model->prompts()->compound_prompts_text[0].equal(text0));
  EXPECT_TRUE(model->prompts()->compound_prompts_text[1].equal(text1));
  for (int i = 0; i < 2; ++i) {
    auto* linear = model->prompts()->compound_prompt_projections[i]->as<torch::nn::Linear>();
    EXPECT_TRUE(linear->weight.equal(single->weight)) << i;
    EXPECT_TRUE(linear->bias.equal(single->bias)) << i;
  }
  for (int k = 0; k < 3; ++k) EXPECT_TRUE(model->learner()->ctx_att[k].equal(att[k])) << k;

  // The stream continues where the official one would.
  torch::manual_seed(11);
  Make(MapleConfig(3, {"color", "shape"}, Compat::kOfficial), clip);
  EXPECT_TRUE(torch::rand({4}).equal(next));
}

// Fashion-MNIST test images at the tiny model's resolution, or random pixels without it
// (then the test says so on stdout).
void LoadImages(int64_t count, torch::Tensor* pixels, torch::Tensor* labels, std::vector<std::string>* classes) {
  std::string why;
  std::string root = testing::FashionMnistRoot(&why);
  if (!root.empty()) {
    auto splits = data::ReadDataset(root, "fashion_mnist");
    if (splits.ok()) {
      std::vector<data::Datum> items;
      for (const auto& d : splits->test) {
        if (d.label < 4) items.push_back(d);  // four classes keep the text side small
        if (static_cast<int64_t>(items.size()) == count) break;
      }
      *classes = data::ClassNamesByLabel(items);
      data::LoaderOptions options;
      options.resolution = 32;
      options.batch_size = static_cast<int>(items.size());
      options.threads = 2;
      data::DataLoader loader(root, items, options);
      loader.StartEpoch(0);
      data::Batch batch;
      auto next = loader.Next(&batch);
      if (next.ok() && *next) {
        *pixels = batch.images;
        *labels = batch.labels;
        return;
      }
    }
  }
  std::cout << "[ note     ] Fashion-MNIST unavailable (" << why << "); random pixels\n";
  torch::manual_seed(5);
  *pixels = torch::randn({count, 3, 32, 32});
  *labels = torch::arange(count) % 4;
  *classes = {"T-shirt/top", "Trouser", "Pullover", "Dress"};
}

TEST_F(MapleModelTest, SgdStepsLowerTheLoss) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  torch::Tensor pixels, labels;
  std::vector<std::string> classes;
  LoadImages(16, &pixels, &labels, &classes);
  ASSERT_EQ(classes.size(), 4u);
  auto model = Make(MapleConfig(3, {"color", "shape"}), DeepTinyClip(3), classes);
  ASSERT_TRUE(model);
  std::vector<torch::Tensor> params;
  for (const auto& [name, tensor] : model->TrainableParameters()) params.push_back(tensor);
  torch::optim::SGD sgd(params, torch::optim::SGDOptions(0.05).momentum(0.9));
  const double first = model->TrainLoss(pixels, labels, pixels.size(0)).item<double>();
  double last = first;
  for (int step = 0; step < 8; ++step) {
    sgd.zero_grad();
    torch::Tensor loss = model->TrainLoss(pixels, labels, pixels.size(0));
    loss.backward();
    sgd.step();
    last = loss.item<double>();
  }
  last = model->TrainLoss(pixels, labels, pixels.size(0)).item<double>();
  EXPECT_TRUE(std::isfinite(last));
  EXPECT_LT(last, first);
  // Every trainable tensor received a gradient, the vision-only ones included.
  for (const auto& [name, tensor] : model->TrainableParameters()) {
    ASSERT_TRUE(tensor.grad().defined()) << name;
    EXPECT_GT(tensor.grad().abs().sum().item<double>(), 0) << name;
  }
}

TEST_F(MapleModelTest, ShardLossesSumToTheFullBatchLoss) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  auto model = Make(MapleConfig(3), DeepTinyClip(3));
  ASSERT_TRUE(model);
  torch::manual_seed(9);
  torch::Tensor pixels = torch::randn({6, 3, 32, 32});
  torch::Tensor labels = torch::tensor({0, 1, 2, 2, 1, 0}, torch::kLong);
  torch::Tensor full = model->TrainLoss(pixels, labels, 6);
  torch::Tensor a = model->TrainLoss(pixels.narrow(0, 0, 4), labels.narrow(0, 0, 4), 6);
  torch::Tensor b = model->TrainLoss(pixels.narrow(0, 4, 2), labels.narrow(0, 4, 2), 6);
  EXPECT_NEAR((a + b).item<double>(), full.item<double>(), 1e-5);
  // The mean over the batch, as the official F.cross_entropy.
  torch::Tensor logits = CosineLogits(model->ImageFeatures(pixels), model->TextFeatures(), DeepTinyClip(3)->logit_scale);
  EXPECT_NEAR(full.item<double>(), torch::nn::functional::cross_entropy(logits, labels).item<double>(), 1e-5);
  // An empty shard contributes 0 and a defined zero gradient.
  torch::Tensor empty = model->TrainLoss(pixels.narrow(0, 0, 0), labels.narrow(0, 0, 0), 6);
  EXPECT_EQ(empty.item<double>(), 0);
  empty.backward();
  for (const auto& [name, tensor] : model->TrainableParameters()) {
    ASSERT_TRUE(tensor.grad().defined()) << name;
    EXPECT_EQ(tensor.grad().abs().sum().item<double>(), 0) << name;
  }
}

TEST_F(MapleModelTest, StateDictRoundTripsAndIgnoresFrozenOfficialKeys) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  clip::Clip clip = DeepTinyClip(3);
  torch::manual_seed(1);
  auto source = Make(MapleConfig(3, {"color", "shape"}, Compat::kOfficial), clip);
  torch::manual_seed(2);
  auto target = Make(MapleConfig(3, {"color", "shape"}, Compat::kOfficial), clip);
  ASSERT_TRUE(source && target);
  torch::manual_seed(4);
  torch::Tensor pixels = torch::randn({2, 3, 32, 32});
  std::map<std::string, torch::Tensor> state;
  for (const auto& [name, tensor] : source->StateDict()) state[name] = tensor.detach().clone();
  // What an official whole-model checkpoint also holds.
  state["prompt_learner.token_prefix"] = torch::zeros({3, 1, 64});
  state["prompt_learner.token_middle1"] = torch::zeros({3, 1, 64});
  state["image_encoder.conv1.weight"] = torch::zeros({96, 3, 8, 8});
  state["text_encoder.positional_embedding"] = torch::zeros({77, 64});
  state["logit_scale"] = torch::zeros({});
  Status loaded = target->LoadStateDict(state);
  ASSERT_OK(loaded);
  source->BeginEvaluation();
  target->BeginEvaluation();
  EXPECT_TRUE(torch::allclose(source->Logits(pixels), target->Logits(pixels)));

  auto bad = state;
  bad["prompt_learner.ctx"] = torch::zeros({4, 64});
  bad["prompt_learner.unknown"] = torch::zeros({1});
  bad.erase("prompt_learner.compound_prompts_text.1");
  Status rejected = target->LoadStateDict(bad);
  ASSERT_FALSE(rejected.ok());
  EXPECT_NE(rejected.message().find("prompt_learner.ctx has shape"), std::string::npos) << rejected.message();
  EXPECT_NE(rejected.message().find("unexpected key prompt_learner.unknown"), std::string::npos);
  EXPECT_NE(rejected.message().find("missing key prompt_learner.compound_prompts_text.1"), std::string::npos);
}

TEST_F(MapleModelTest, EvaluationOnOtherClassesKeepsTheLearnedTensors) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  auto model = Make(MapleConfig(2, {"color"}), DeepTinyClip(3));
  ASSERT_TRUE(model);
  torch::Tensor ctx = model->learner()->ctx.detach().clone();
  model->SetClasses({"cat", "hot air balloon"}, false);
  EXPECT_EQ(model->deep_text_rows().size(0), 2);
  ExpectTextPromptsAt(*model, model->learner()->class_context_positions());
  model->BeginEvaluation();
  torch::manual_seed(4);
  torch::Tensor logits = model->Logits(torch::randn({3, 3, 32, 32}));
  model->EndEvaluation();
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{3, 2}));
  EXPECT_TRUE(model->learner()->ctx.equal(ctx));
}

// MaPLe with J = 3 against the released classes (trainers/maple.py for vanilla,
// trainers/maple_atp.py with clip/model_atp.py for + ATPrompt): logits of a batch of pixels,
// the training loss and the gradient of every learned tensor. The third case is the official
// cross-dataset setting, N_ATT 4 while MAPLE.N_CTX stays 2, where the released blocks write
// the deep prompts at rows [1 + ATT_NUM·(N_CTX + 1), +N_CTX) rather than over the class
// context; compat = "paper" must differ from it there (tests/prompt/fixtures/official/README.md).
TEST(MapleModelParityTest, LogitsAndGradientsAtDepthThreeMatchTheOfficialClasses) {
  ATP_REQUIRE_TOKENIZER(tok);
  clip::Clip clip = testing::ParityClip();
  ASSERT_TRUE(clip);
  for (const char* name : {"maple_train_vanilla", "maple_train_two_attributes", "maple_train_cross_dataset"}) {
    testing::OfficialCase c = testing::LoadOfficialCaseNamed(name);
    const torch::Tensor pixels = c.at("in.images");
    for (Compat compat : {Compat::kOfficial, Compat::kPaper}) {
      const std::string label = c.name() + "/" + CompatName(compat);
      auto model = testing::OfficialModel<MapleModel>(c, compat, clip, tok);
      ASSERT_TRUE(model) << label;
      ASSERT_EQ(model->depth(), 3);
      model->BeginEvaluation();
      const torch::Tensor logits = model->Logits(pixels);
      model->EndEvaluation();
      if (compat == Compat::kPaper && !c.PaperAgrees(/*with_deep_prompts=*/true)) {
        EXPECT_GT(testing::MaxAbsDiff(logits, c.at("out.logits")), 1e-4)
            << label << ": paper mode should place the deep prompts over the class context";
        continue;
      }
      testing::ExpectClose(label + " logits", logits, c.at("out.logits"));
      testing::ExpectOfficialLossAndGradients(label, *model, pixels, c);
    }
  }
}

}  // namespace
}  // namespace atp::prompt
