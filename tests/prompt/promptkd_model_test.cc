// The PromptKD student: the projector's official layout, the distillation loss, the deep
// vision prompts, class selection from the teacher's text features, state dicts, and where a
// teacher comes from.
#include "worker/prompt/promptkd_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "tests/prompt/prompt_test_util.h"
#include "tests/support/status_matchers.h"
#include "worker/prompt/kd_teacher.h"
#include "worker/prompt/method_config.h"
#include "worker/prompt/promptkd_method.h"

namespace atp::prompt {
namespace {

clip::Clip SizedTinyClip(int64_t width, int64_t layers, int64_t embed, uint64_t seed) {
  torch::manual_seed(seed);
  clip::ClipOptions o = testing::TinyClipOptions();
  o.vision.width(width).layers(layers).output_dim(embed);
  o.text.embed_dim(embed);
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

const std::vector<std::string> kClasses = {"t-shirt", "trouser", "pullover", "dress", "coat"};

// A teacher whose text features are fixed random vectors and whose image tower is a wider
// random CLIP: what the student needs of a teacher, without a tokenizer.
std::shared_ptr<KdTeacher> RandomTeacher(int64_t embed = 48) {
  clip::Clip teacher = SizedTinyClip(96, 3, embed, 11);
  torch::manual_seed(12);
  torch::Tensor text = torch::randn({static_cast<int64_t>(kClasses.size()), embed});
  return std::make_shared<KdTeacher>(
      "random", teacher, kClasses, [text] { return text; },
      [teacher](const torch::Tensor& pixels) mutable { return teacher->EncodeImage(pixels); }, nullptr);
}

std::unique_ptr<PromptkdModel> Student(std::shared_ptr<KdTeacher> teacher, int64_t depth = 2, double kd_weight = 1000) {
  torch::manual_seed(3);
  auto model = MakePromptkdModel(SizedTinyClip(64, 2, 32, 7), std::move(teacher), 4, depth, kd_weight, 1);
  EXPECT_OK(model);
  return model.ok() ? std::move(*model) : nullptr;
}

TEST(PromptkdProjectorTest, HasTheOfficialKeysAndShapes) {
  PromptkdProjector projector(PromptkdProjectorOptions(512, 768));
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : projector->named_parameters()) shapes[p.key()] = p.value().sizes().vec();
  for (const auto& b : projector->named_buffers()) shapes[b.key()] = b.value().sizes().vec();
  const std::map<std::string, std::vector<int64_t>> expected = {
      {"conv1.0.weight", {768, 512, 1, 1}}, {"conv1.0.bias", {768}},      {"conv1.1.weight", {768}},
      {"conv1.1.bias", {768}},              {"conv1.1.running_mean", {768}}, {"conv1.1.running_var", {768}},
      {"conv1.1.num_batches_tracked", {}},  {"conv1.3.weight", {768, 768, 1, 1}}, {"conv1.3.bias", {768}}};
  EXPECT_EQ(shapes, expected);
  EXPECT_EQ(projector->forward(torch::randn({3, 512})).sizes(), (std::vector<int64_t>{3, 768}));
}

TEST(PromptkdLossTest, IsKlOfTeacherToStudentSummedOverTheBatchTimesWeightOverNumel) {
  torch::manual_seed(1);
  torch::Tensor s = torch::randn({4, 5}) * 3, t = torch::randn({4, 5}) * 3;
  const double T = 2.0, weight = 1000;
  torch::Tensor reference = torch::kl_div(torch::log_softmax(s / T, 1), torch::softmax(t / T, 1),
                                          at::Reduction::Sum) * T * T / s.numel() * weight;
  EXPECT_NEAR(PromptkdLoss(s, t, T, weight, 4).item<double>(), reference.item<double>(), 1e-4);
  // Shards of a batch add up to the batch's loss.
  torch::Tensor halves = PromptkdLoss(s.slice(0, 0, 1), t.slice(0, 0, 1), T, weight, 4) +
                         PromptkdLoss(s.slice(0, 1, 4), t.slice(0, 1, 4), T, weight, 4);
  EXPECT_NEAR(halves.item<double>(), reference.item<double>(), 1e-4);
  // Zero when the student matches the teacher.
  EXPECT_NEAR(PromptkdLoss(t, t, T, weight, 4).item<double>(), 0, 1e-4);
}

TEST(PromptkdModelTest, TrainableTensorsCarryTheOfficialNames) {
  auto model = Student(RandomTeacher(), 2);
  ASSERT_NE(model, nullptr);
  std::set<std::string> names;
  for (const auto& [name, tensor] : model->StateDict()) names.insert(name);
  EXPECT_TRUE(names.count("image_encoder.VPT"));
  EXPECT_TRUE(names.count("image_encoder.transformer.resblocks.1.VPT_shallow"));
  EXPECT_FALSE(names.count("image_encoder.transformer.resblocks.2.VPT_shallow"));
  EXPECT_TRUE(names.count("VPT_image_trans.conv1.0.weight"));
  EXPECT_TRUE(names.count("VPT_image_trans.conv1.1.running_var"));
  for (const auto& [name, tensor] : model->TrainableParameters()) {
    EXPECT_NE(name.find("VPT"), std::string::npos) << name;  // official: names holding "VPT" train
    EXPECT_NE(name.find("running"), 0u);
  }
  EXPECT_EQ(model->projector()->options.out_dim(), 48);  // the teacher's embedding
}

TEST(PromptkdModelTest, EveryPromptLayerBelowTheDepthReachesTheFeatures) {
  auto model = Student(RandomTeacher(), 2);
  ASSERT_NE(model, nullptr);
  model->projector()->eval();
  torch::NoGradGuard no_grad;
  torch::manual_seed(5);
  torch::Tensor pixels = torch::randn({2, 3, 32, 32});
  torch::Tensor before = model->StudentFeatures(pixels);
  // Not a constant shift: LayerNorm removes those.
  model->vision_prompt(1).add_(torch::randn_like(model->vision_prompt(1)));
  torch::Tensor after = model->StudentFeatures(pixels);
  EXPECT_GT((after - before).abs().max().item<double>(), 1e-4);
}

TEST(PromptkdModelTest, ClassifiesAgainstTheTeachersTextFeaturesRowsByName) {
  auto model = Student(RandomTeacher());
  ASSERT_NE(model, nullptr);
  torch::manual_seed(5);
  torch::Tensor pixels = torch::randn({3, 3, 32, 32});
  model->SetClasses(kClasses, false);
  torch::Tensor all = model->Logits(pixels);
  model->SetClasses({"dress", "t-shirt"}, false);
  torch::Tensor some = model->Logits(pixels);
  ASSERT_EQ(some.size(1), 2);
  EXPECT_TRUE(torch::allclose(some.select(1, 0), all.select(1, 3)));
  EXPECT_TRUE(torch::allclose(some.select(1, 1), all.select(1, 0)));
  EXPECT_THROW(model->SetClasses({"sandal"}, false), std::invalid_argument);
}

TEST(PromptkdModelTest, LossIgnoresLabelsAndFallsUnderSgd) {
  auto model = Student(RandomTeacher(), 2, /*kd_weight=*/1);
  ASSERT_NE(model, nullptr);
  torch::manual_seed(5);
  torch::Tensor pixels = torch::randn({8, 3, 32, 32});
  torch::Tensor a = model->TrainLoss(pixels, torch::zeros({8}, torch::kLong), 8);
  torch::Tensor b = model->TrainLoss(pixels, torch::full({8}, -1, torch::kLong), 8);
  EXPECT_NEAR(a.item<double>(), b.item<double>(), 1e-6 * std::abs(a.item<double>()));
  std::vector<torch::Tensor> params;
  for (auto& [name, tensor] : model->TrainableParameters()) {
    tensor.set_requires_grad(true);
    params.push_back(tensor);
  }
  torch::optim::SGD sgd(params, torch::optim::SGDOptions(0.05).momentum(0.9));
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    sgd.zero_grad();
    torch::Tensor loss = model->TrainLoss(pixels, torch::Tensor(), 8);
    loss.backward();
    sgd.step();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  EXPECT_LT(last, 0.5 * first) << "first " << first << " last " << last;
}

TEST(PromptkdModelTest, RefusesACheckpointOfAnotherLayoutNamingTheKey) {
  auto model = Student(RandomTeacher(), 2);
  ASSERT_NE(model, nullptr);
  std::map<std::string, torch::Tensor> state;
  for (auto& [name, tensor] : model->StateDict()) state[name] = tensor.clone();
  ASSERT_OK(model->LoadStateDict(state));
  state["image_encoder.VPT"] = torch::zeros({2, 64});
  Status wrong = model->LoadStateDict(state);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.message().find("image_encoder.VPT"), std::string::npos) << wrong.message();
}

TEST(PromptkdModelTest, RefusesADepthBeyondTheStudentsLayersAndUnequalResolutions) {
  EXPECT_FALSE(MakePromptkdModel(SizedTinyClip(64, 2, 32, 7), RandomTeacher(), 4, 3, 1000, 1).ok());
  clip::ClipOptions o = testing::TinyClipOptions();
  o.vision.input_resolution(16);
  EXPECT_FALSE(MakePromptkdModel(clip::Clip(o), RandomTeacher(), 4, 1, 1000, 1).ok());
}

TEST(PromptkdTeacherSourceTest, ComesFromTheUpstreamJobAndMustAgreeOnAtprompt) {
  MethodConfig student;
  student.method = "promptkd";
  MethodConfig teacher;
  teacher.method = "maple";
  teacher.dataset = "fashion_mnist";
  teacher.backbone = "wide.pt";
  Json upstream = Json::array({Json{{"key", "abc"}, {"outputs", {{"checkpoint", "/x/checkpoint.pth"}, {"config", teacher.ToJson()}}}}});
  auto source = ResolveTeacherSource(student, upstream);
  ASSERT_OK(source);
  EXPECT_EQ(source->checkpoint, "/x/checkpoint.pth");
  EXPECT_EQ(source->config.backbone, "wide.pt");
  EXPECT_EQ(source->origin, "job abc");
  student.atprompt = true;
  EXPECT_FALSE(ResolveTeacherSource(student, upstream).ok());
  EXPECT_FALSE(ResolveTeacherSource(student, Json::array()).ok());
}

}  // namespace
}  // namespace atp::prompt
