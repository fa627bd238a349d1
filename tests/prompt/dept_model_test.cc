#include "worker/prompt/dept_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "tests/prompt/official_parity.h"
#include "tests/prompt/prompt_test_util.h"
#include "tests/support/status_matchers.h"
#include "worker/data/dataset.h"
#include "worker/data/loader.h"
#include "worker/prompt/method_config.h"

namespace atp::prompt {
namespace {

namespace F = torch::nn::functional;
using testing::RealTokenizer;

MethodConfig DeptConfig(std::vector<std::string> attributes = {}, Compat compat = Compat::kPaper) {
  MethodConfig config;
  config.method = "dept";
  config.dataset = "fashion_mnist";
  config.protocol = "base2novel";
  config.design.n_ctx = 4;
  config.design.compat = compat;
  config.atprompt = !attributes.empty();
  config.design.attributes = std::move(attributes);
  config.dept_weight = 0.7;
  return config;
}

const std::vector<std::string> kBase = {"T-shirt/top", "Trouser", "Pullover", "Dress"};
const std::vector<std::string> kNew = {"Coat", "Sandal", "Shirt"};

class DeptModelTest : public ::testing::Test {
 protected:
  void SetUp() override { clip_ = testing::TinyClip(); }

  std::unique_ptr<DeptModel> Make(const MethodConfig& config, const std::vector<std::string>& classes = kBase) {
    std::string why;
    auto tokenizer = RealTokenizer(&why);
    if (!tokenizer) return nullptr;
    auto made = MakeDeptModel(config, clip_, tokenizer, classes);
    EXPECT_OK(made);
    if (!made.ok()) return nullptr;
    return std::unique_ptr<DeptModel>(dynamic_cast<DeptModel*>(made.value().release()));
  }

  // Frozen image features of Fashion-MNIST test images of the base classes (random features
  // without the dataset): what the trainer hands DePT.
  void Features(int64_t count, torch::Tensor* features, torch::Tensor* labels) {
    std::string why;
    std::string root = testing::FashionMnistRoot(&why);
    if (!root.empty()) {
      auto splits = data::ReadDataset(root, "fashion_mnist");
      if (splits.ok()) {
        std::vector<data::Datum> items;
        for (const auto& d : splits->test) {
          if (d.label < 4) items.push_back(d);
          if (static_cast<int64_t>(items.size()) == count) break;
        }
        data::LoaderOptions options;
        options.resolution = 32;
        options.batch_size = static_cast<int>(items.size());
        options.threads = 2;
        data::DataLoader loader(root, items, options);
        loader.StartEpoch(0);
        data::Batch batch;
        auto next = loader.Next(&batch);
        if (next.ok() && *next) {
          torch::NoGradGuard no_grad;
          *features = clip_->EncodeImage(batch.images);
          *labels = batch.labels;
          return;
        }
      }
    }
    std::cout << "[ note     ] Fashion-MNIST unavailable (" << why << "); random features\n";
    torch::manual_seed(5);
    *features = torch::randn({count, 32});
    *labels = torch::arange(count) % 4;
  }

  // A head that is not at its initial state, so that FiLM and the head matter in the checks.
  static void Perturb(DeptModel& model) {
    torch::NoGradGuard no_grad;
    torch::manual_seed(21);
    for (const auto& [name, tensor] : model.TrainableParameters()) tensor.add_(0.1 * torch::randn_like(tensor));
  }

  clip::Clip clip_{nullptr};
};

TEST_F(DeptModelTest, TrainableParametersAreTheSpecList) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  auto names_of = [](const NamedTensors& tensors) {
    std::set<std::string> names;
    for (const auto& [name, tensor] : tensors) names.insert(name);
    return names;
  };
  auto vanilla = Make(DeptConfig());
  ASSERT_TRUE(vanilla);
  const std::set<std::string> dept = {"prompt_learner.ctx",     "film_lp_img.scale",        "film_lp_img.bias",
                                      "film_lp_text.scale",     "film_lp_text.bias",        "linear_probe_proj.weight",
                                      "linear_probe_proj.bias"};
  EXPECT_EQ(names_of(vanilla->TrainableParameters()), dept);
  EXPECT_EQ(names_of(vanilla->StateDict()), dept);
  auto heads = vanilla->heads();
  EXPECT_TRUE(heads->film_lp_img->scale.equal(torch::ones({32})));
  EXPECT_TRUE(heads->film_lp_text->bias.equal(torch::zeros({32})));
  EXPECT_EQ(heads->linear_probe_proj->weight.sizes(), (std::vector<int64_t>{4, 32}));

  auto atp = Make(DeptConfig({"color", "shape"}, Compat::kOfficial));
  ASSERT_TRUE(atp);
  std::set<std::string> trainable = dept;
  trainable.insert({"prompt_learner.ctx_att1", "prompt_learner.ctx_att2"});
  EXPECT_EQ(names_of(atp->TrainableParameters()), trainable);
  trainable.insert("prompt_learner.ctx_att3");  // created, never trained (official)
  EXPECT_EQ(names_of(atp->StateDict()), trainable);
}

TEST_F(DeptModelTest, DrawsInTheOfficialOrder) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  torch::manual_seed(13);
  auto model = Make(DeptConfig({"color", "shape"}, Compat::kOfficial));
  ASSERT_TRUE(model);
  // dept_atp.py: ctx; ctx_att1..3; linear_probe_proj (FiLM draws nothing).
  torch::manual_seed(13);
  torch::Tensor ctx = torch::empty({4, 64}).normal_(0, 0.02);
  std::vector<torch::Tensor> att;
  for (int k = 0; k < 3; ++k) att.push_back(torch::empty({4, 64}).normal_(0, 0.01));
  torch::nn::Linear head(32, 4);
  EXPECT_TRUE(model->learner()->ctx.equal(ctx));
  for (int k = 0; k < 3; ++k) EXPECT_TRUE(model->learner()->ctx_att[k].equal(att[k])) << k;
  EXPECT_TRUE(model->heads()->linear_probe_proj->weight.equal(head->weight));
  EXPECT_TRUE(model->heads()->linear_probe_proj->bias.equal(head->bias));
}

TEST_F(DeptModelTest, LossIsTheWeightedSumOfSimilarityAndLinearProbeCrossEntropies) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  auto model = Make(DeptConfig({"color"}));
  ASSERT_TRUE(model);
  Perturb(*model);
  torch::Tensor features, labels;
  Features(8, &features, &labels);
  torch::Tensor loss = model->TrainLoss(features, labels, features.size(0));

  // dept.py by hand: unnormalised t and v; FiLM; head over [t'[y]; v'] with labels twice.
  torch::NoGradGuard no_grad;
  auto heads = model->heads();
  torch::Tensor t = model->TextFeatures();
  torch::Tensor sim = clip_->logit_scale.exp() * F::normalize(features, F::NormalizeFuncOptions().dim(-1))
                                                     .matmul(F::normalize(t, F::NormalizeFuncOptions().dim(-1)).t());
  torch::Tensor t_film = heads->film_lp_text->scale * t + heads->film_lp_text->bias;
  torch::Tensor v_film = heads->film_lp_img->scale * features + heads->film_lp_img->bias;
  torch::Tensor all = torch::cat({t_film.index_select(0, labels), v_film});
  torch::Tensor lp = all.matmul(heads->linear_probe_proj->weight.t()) + heads->linear_probe_proj->bias;
  const double w = 0.7;
  const double expected = (1 - w) * F::cross_entropy(sim, labels).item<double>() +
                          w * F::cross_entropy(lp, torch::cat({labels, labels})).item<double>();
  EXPECT_NEAR(loss.item<double>(), expected, 1e-5);
}

TEST_F(DeptModelTest, ShardLossesAndGradientsSumToTheFullBatch) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  auto model = Make(DeptConfig({"color", "shape"}));
  ASSERT_TRUE(model);
  Perturb(*model);
  torch::Tensor features, labels;
  Features(6, &features, &labels);
  auto gradients = [&model](const torch::Tensor& loss) {
    for (const auto& [name, tensor] : model->TrainableParameters()) {
      if (tensor.grad().defined()) tensor.mutable_grad().zero_();
    }
    loss.backward();
    std::vector<torch::Tensor> out;
    for (const auto& [name, tensor] : model->TrainableParameters()) out.push_back(tensor.grad().clone());
    return out;
  };
  torch::Tensor full = model->TrainLoss(features, labels, 6);
  auto full_grads = gradients(full);
  torch::Tensor a = model->TrainLoss(features.narrow(0, 0, 4), labels.narrow(0, 0, 4), 6);
  auto a_grads = gradients(a);
  torch::Tensor b = model->TrainLoss(features.narrow(0, 4, 2), labels.narrow(0, 4, 2), 6);
  auto b_grads = gradients(b);
  torch::Tensor empty = model->TrainLoss(features.narrow(0, 0, 0), labels.narrow(0, 0, 0), 6);
  auto empty_grads = gradients(empty);
  EXPECT_NEAR((a + b + empty).item<double>(), full.item<double>(), 1e-5);
  ASSERT_EQ(full_grads.size(), a_grads.size());
  for (size_t i = 0; i < full_grads.size(); ++i) {
    EXPECT_TRUE(torch::allclose(a_grads[i] + b_grads[i] + empty_grads[i], full_grads[i], 1e-4, 1e-6)) << i;
    EXPECT_EQ(empty_grads[i].abs().sum().item<double>(), 0) << i;
  }
}

TEST_F(DeptModelTest, EvaluationFusesTheHeadOnlyOnTrainingClasses) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  auto model = Make(DeptConfig());
  ASSERT_TRUE(model);
  Perturb(*model);
  torch::Tensor features, labels;
  Features(5, &features, &labels);
  torch::NoGradGuard no_grad;
  const double w = model->weight();
  auto heads = model->heads();
  torch::Tensor head = heads->linear_probe_proj(heads->film_lp_img(features));

  // Base classes: (1 − w)·sim + w·head(FiLM_img(v)).
  model->SetClasses(kBase, /*training_classes=*/true);
  model->BeginEvaluation();
  torch::Tensor sim = CosineLogits(features, model->TextFeatures(), clip_->logit_scale);
  EXPECT_TRUE(model->fused());
  EXPECT_TRUE(torch::allclose(model->Logits(features), (1 - w) * sim + w * head, 1e-5, 1e-6));
  model->EndEvaluation();

  // New classes: the prompt's similarity logits only.
  model->SetClasses(kNew, /*training_classes=*/false);
  model->BeginEvaluation();
  EXPECT_FALSE(model->fused());
  torch::Tensor new_sim = CosineLogits(features, model->TextFeatures(), clip_->logit_scale);
  EXPECT_TRUE(torch::allclose(model->Logits(features), new_sim, 1e-6, 1e-7));
  model->EndEvaluation();

  // An in-order subset of the training classes (ImageNet-A/R against the ImageNet head):
  // the head's rows are picked by name.
  model->SetClasses({"Trouser", "Dress"}, /*training_classes=*/true);
  EXPECT_TRUE(model->fused());
  torch::Tensor subset_sim = CosineLogits(features, model->TextFeatures(), clip_->logit_scale);
  torch::Tensor subset_head = head.index_select(1, torch::tensor({1, 3}, torch::kLong));
  EXPECT_TRUE(torch::allclose(model->Logits(features), (1 - w) * subset_sim + w * subset_head, 1e-5, 1e-6));

  // Names the head does not know: similarity only, and the notes say so.
  model->SetClasses({"Dress", "Coat"}, /*training_classes=*/true);
  EXPECT_FALSE(model->fused());
  bool noted = false;
  for (const auto& note : model->Notes()) noted = noted || note.find("'Coat'") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST_F(DeptModelTest, SgdStepsLowerTheLoss) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  auto model = Make(DeptConfig({"color", "shape"}));
  ASSERT_TRUE(model);
  torch::Tensor features, labels;
  Features(16, &features, &labels);
  std::vector<torch::Tensor> params;
  for (const auto& [name, tensor] : model->TrainableParameters()) params.push_back(tensor);
  torch::optim::SGD sgd(params, torch::optim::SGDOptions(0.05).momentum(0.9));
  const double first = model->TrainLoss(features, labels, features.size(0)).item<double>();
  for (int step = 0; step < 10; ++step) {
    sgd.zero_grad();
    torch::Tensor loss = model->TrainLoss(features, labels, features.size(0));
    loss.backward();
    sgd.step();
  }
  const double last = model->TrainLoss(features, labels, features.size(0)).item<double>();
  EXPECT_TRUE(std::isfinite(last));
  EXPECT_LT(last, first);
}

TEST_F(DeptModelTest, StateDictRoundTripsAndIgnoresFrozenOfficialKeys) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  torch::manual_seed(1);
  auto source = Make(DeptConfig({"color", "shape"}, Compat::kOfficial));
  ASSERT_TRUE(source);
  Perturb(*source);
  torch::manual_seed(2);
  auto target = Make(DeptConfig({"color", "shape"}, Compat::kOfficial));
  ASSERT_TRUE(target);
  std::map<std::string, torch::Tensor> state;
  for (const auto& [name, tensor] : source->StateDict()) state[name] = tensor.detach().clone();
  state["prompt_learner.token_suffix"] = torch::zeros({4, 60, 64});
  state["image_encoder.proj"] = torch::zeros({64, 32});
  state["text_encoder.ln_final.weight"] = torch::zeros({64});
  state["logit_scale"] = torch::zeros({});
  Status loaded = target->LoadStateDict(state);
  ASSERT_OK(loaded);
  torch::Tensor features, labels;
  Features(4, &features, &labels);
  target->SetClasses(kBase, true);
  source->SetClasses(kBase, true);
  EXPECT_TRUE(torch::allclose(source->Logits(features), target->Logits(features)));

  auto bad = state;
  bad["linear_probe_proj.weight"] = torch::zeros({10, 32});
  bad.erase("film_lp_text.scale");
  Status rejected = target->LoadStateDict(bad);
  ASSERT_FALSE(rejected.ok());
  EXPECT_NE(rejected.message().find("linear_probe_proj.weight has shape"), std::string::npos) << rejected.message();
  EXPECT_NE(rejected.message().find("missing key film_lp_text.scale"), std::string::npos);
}

TEST_F(DeptModelTest, WithoutAHeadTheCheckpointHeadIsIgnoredAndTrainingRefused) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  auto with_head = Make(DeptConfig());
  ASSERT_TRUE(with_head);
  // Official: no head unless training on base classes or on all ImageNet classes.
  MethodConfig config = DeptConfig();
  config.protocol = "cross_dataset";
  config.source_dataset = "caltech101";
  auto headless = Make(config);
  ASSERT_TRUE(headless);
  EXPECT_FALSE(headless->heads()->has_linear_probe());
  EXPECT_FALSE(headless->fused());
  std::map<std::string, torch::Tensor> state;
  for (const auto& [name, tensor] : with_head->StateDict()) state[name] = tensor.detach().clone();
  Status loaded = headless->LoadStateDict(state);
  EXPECT_OK(loaded);
  torch::Tensor features, labels;
  Features(4, &features, &labels);
  EXPECT_THROW(headless->TrainLoss(features, labels, 4), c10::Error);

  config.source_dataset = "imagenet";  // cross-dataset / DG source: ImageNet, all classes
  auto imagenet = Make(config);
  ASSERT_TRUE(imagenet);
  EXPECT_TRUE(imagenet->heads()->has_linear_probe());
}

// DePT against the released classes (trainers/dept_atp.py on the CoOp_ATP learner): the
// training loss (0.3 similarity CE + 0.7 linear-probe CE over text and image rows), the
// gradient of every learned tensor, the fused logits on the training (base) classes and the
// similarity-only logits on other classes (tests/prompt/fixtures/official/README.md).
TEST(DeptModelParityTest, LossGradientsAndFusedLogitsMatchTheOfficialClasses) {
  ATP_REQUIRE_TOKENIZER(tok);
  clip::Clip clip = testing::ParityClip();
  ASSERT_TRUE(clip);
  int compared = 0;
  for (const char* name : {"dept_train_vanilla", "dept_train_two_attributes"}) {
    testing::OfficialCase c = testing::LoadOfficialCaseNamed(name);
    const torch::Tensor features = c.at("out.image_features");
    const auto names = c.class_names();
    for (Compat compat : {Compat::kOfficial, Compat::kPaper}) {
      if (compat == Compat::kPaper && !c.PaperAgrees(/*with_deep_prompts=*/false)) continue;  // '_' kept by dept_atp.py
      const std::string label = c.name() + "/" + CompatName(compat);
      auto model = testing::OfficialModel<DeptModel>(c, compat, clip, tok);
      ASSERT_TRUE(model) << label;
      model->SetClasses(names, /*training_classes=*/true);
      ASSERT_TRUE(model->fused());
      model->BeginEvaluation();
      testing::ExpectClose(label + " fused base logits", model->Logits(features), c.at("out.base_logits"));
      model->EndEvaluation();
      model->SetClasses(names, /*training_classes=*/false);
      ASSERT_FALSE(model->fused());
      model->BeginEvaluation();
      testing::ExpectClose(label + " new-class logits", model->Logits(features), c.at("out.new_logits"));
      model->EndEvaluation();
      model->SetClasses(names, /*training_classes=*/true);
      testing::ExpectOfficialLossAndGradients(label, *model, features, c);
      ++compared;
    }
  }
  EXPECT_EQ(compared, 3);
}

}  // namespace
}  // namespace atp::prompt
