// PromptKD against the released classes (tests/prompt/fixtures/official/promptkd/, README
// there): the projector in both BatchNorm modes, the student's logits against the teacher's
// text features, and one step of PromptKD.forward_backward: the KD loss and its gradients.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/prompt/official_parity.h"
#include "worker/prompt/kd_teacher.h"
#include "worker/prompt/promptkd_method.h"
#include "worker/prompt/promptkd_model.h"

namespace atp::prompt {
namespace {

using testing::ExpectClose;
using testing::OfficialCase;

std::vector<Json> PromptkdIndex() {
  std::ifstream in(testing::OfficialFixtureDir() + "/promptkd/index.json");
  EXPECT_TRUE(in) << "missing promptkd/index.json";
  if (!in) return {};
  return Json::parse(in)["cases"].get<std::vector<Json>>();
}

OfficialCase Load(const Json& meta) {
  OfficialCase c;
  c.meta = meta;
  auto tensors = clip::ReadClipStateDict(testing::OfficialFixtureDir() + "/promptkd/" + meta["file"].get<std::string>());
  EXPECT_OK(tensors);
  if (tensors.ok()) c.tensors = *tensors;
  return c;
}

class PromptkdParityTest : public ::testing::TestWithParam<Json> {};

TEST_P(PromptkdParityTest, MatchesTheReleasedStudentLossAndGradients) {
  const OfficialCase c = Load(GetParam());
  const std::string name = c.name();
  const torch::Tensor text = c.at("in.teacher_text");
  clip::Clip student = testing::ParityClip();
  ASSERT_TRUE(student);
  // The teacher's image tower plays no part here: the fixture gives its logits.
  auto teacher = std::make_shared<KdTeacher>(
      "fixture", student, c.class_names(), [text] { return text; },
      [](const torch::Tensor&) -> torch::Tensor { throw std::logic_error("not used"); }, nullptr);
  const double temperature = c.meta["temperature"].get<double>(), weight = c.meta["kd_weight"].get<double>();
  auto made = MakePromptkdModel(student, teacher, c.meta["vision_ctx"].get<int>(), c.meta["vision_depth"].get<int>(),
                                weight, temperature);
  ASSERT_OK(made);
  PromptkdModel& model = **made;
  ASSERT_OK(model.LoadStateDict(c.Part("state.")));
  std::map<std::string, torch::Tensor> state;
  for (auto& [key, tensor] : model.StateDict()) state[key] = tensor.clone();

  PromptkdProjector projector = model.projector();
  {
    torch::NoGradGuard no_grad;
    projector->eval();
    ExpectClose(name + " projector (eval)", projector->forward(c.at("in.features")), c.at("out.projector_eval"));
    projector->train();
    ExpectClose(name + " projector (train)", projector->forward(c.at("in.features")), c.at("out.projector_train"));
    ExpectClose(name + " projector running_mean", projector->conv1[1]->as<torch::nn::BatchNorm2d>()->running_mean,
                c.at("out.projector_running_mean"));
    ExpectClose(name + " projector running_var", projector->conv1[1]->as<torch::nn::BatchNorm2d>()->running_var,
                c.at("out.projector_running_var"));
  }
  ASSERT_OK(model.LoadStateDict(state));
  const torch::Tensor images = c.at("in.images");
  model.SetClasses(c.class_names(), false);
  ExpectClose(name + " student logits (eval)", model.Logits(images), c.at("out.eval_logits"));
  {
    torch::NoGradGuard no_grad;
    projector->train();
    ExpectClose(name + " student logits (train)", model.AllClassLogits(images), c.at("out.train_logits"));
  }
  ASSERT_OK(model.LoadStateDict(state));
  for (auto& [key, tensor] : model.TrainableParameters()) tensor.set_requires_grad(true);
  projector->train();
  torch::Tensor loss = PromptkdLoss(model.AllClassLogits(images), c.at("in.teacher_logits"), temperature, weight,
                                    images.size(0));
  loss.backward();
  ExpectClose(name + " KD loss", loss.detach().reshape({1}), c.at("out.loss").to(torch::kFloat));
  // Gradients are compared on the scale of the case's largest gradient (the loss is weighted
  // by up to 1000 at logit scale 100): the first convolution's bias feeds BatchNorm, which
  // removes it, so its true gradient is 0 and both sides hold rounding noise of that scale.
  double largest = 0;
  for (const auto& [key, tensor] : c.tensors) {
    if (key.rfind("grad.", 0) == 0) largest = std::max(largest, tensor.abs().max().item<double>());
  }
  int gradients = 0;
  for (auto& [key, tensor] : model.TrainableParameters()) {
    ASSERT_TRUE(c.has("grad." + key)) << key;
    const torch::Tensor official = c.at("grad." + key);
    ExpectClose(name + " grad " + key, tensor.grad(), official,
                testing::kParityTolerance * std::max(1.0, largest) / std::max(1.0, official.abs().max().item<double>()));
    ++gradients;
  }
  EXPECT_EQ(gradients, static_cast<int>(model.TrainableParameters().size()));
}

INSTANTIATE_TEST_SUITE_P(Official, PromptkdParityTest, ::testing::ValuesIn(PromptkdIndex()),
                         [](const ::testing::TestParamInfo<Json>& info) {
                           return info.param["name"].get<std::string>();
                         });

// A published teacher checkpoint: written by the released PromptSRC trainer (Dassl's
// save_checkpoint layout), read here as PromptKD reads it; the released PromptKD teacher's text
// features of all five classes and its logits are the reference.
class PromptkdTeacherImportTest : public ::testing::Test {
 protected:
  static std::string Fixture(const std::string& file) { return testing::OfficialFixtureDir() + "/promptkd/" + file; }
  static MethodConfig Student(const std::string& checkpoint, int teacher_depth) {
    MethodConfig student;
    student.method = "promptkd";
    student.dataset = "fashion_mnist";
    student.teacher_checkpoint = checkpoint;
    student.teacher_method = "promptsrc";
    student.teacher_backbone = "parity_clip.pt";
    student.teacher_n_ctx = 4;
    student.teacher_depth = teacher_depth;
    return student;
  }
  static const std::vector<std::string>& Classes() {
    static const std::vector<std::string> kClasses = {"t-shirt", "trouser", "pullover", "dress", "coat"};
    return kClasses;
  }
};

TEST_F(PromptkdTeacherImportTest, TextFeaturesAndLogitsMatchTheReleasedTeacher) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  auto source = ResolveTeacherSource(Student(Fixture("teacher_depth3.pth.tar"), 3), Json::array());
  ASSERT_OK(source);
  EXPECT_EQ(source->origin, "published checkpoint");
  auto teacher = BuildKdTeacher(*source, testing::ParityClip(), tokenizer, Classes());
  ASSERT_OK(teacher);
  auto official = clip::ReadClipStateDict(Fixture("promptkd_teacher_import.pt"));
  ASSERT_OK(official);
  ExpectClose("teacher text features (imported)", (*teacher)->text_features(), official->at("out.text_features"));
  ExpectClose("teacher logits (imported)", (*teacher)->Logits(official->at("in.images")), official->at("out.logits"));
}

TEST_F(PromptkdTeacherImportTest, RefusesACheckpointOfAnotherDepthNamingTheFileAndKey) {
  ATP_REQUIRE_TOKENIZER(tokenizer);
  // Depth 2 written, depth 3 configured: the released strict=False would leave the third
  // block's prompts at their random initial values.
  auto shallow = ResolveTeacherSource(Student(Fixture("teacher_depth2.pth.tar"), 3), Json::array());
  ASSERT_OK(shallow);
  auto refused = BuildKdTeacher(*shallow, testing::ParityClip(), tokenizer, Classes());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("teacher_depth2.pth.tar"), std::string::npos) << refused.status().message();
  EXPECT_NE(refused.status().message().find("resblocks.2.VPT_shallow"), std::string::npos) << refused.status().message();
  // And the other way: depth 3 written, depth 2 configured.
  auto deep = ResolveTeacherSource(Student(Fixture("teacher_depth3.pth.tar"), 2), Json::array());
  ASSERT_OK(deep);
  auto refused_deep = BuildKdTeacher(*deep, testing::ParityClip(), tokenizer, Classes());
  ASSERT_FALSE(refused_deep.ok());
  EXPECT_NE(refused_deep.status().message().find("resblocks.2.VPT_shallow"), std::string::npos)
      << refused_deep.status().message();
}

TEST_F(PromptkdTeacherImportTest, AnAtpromptStudentRefusesAPublishedTeacher) {
  MethodConfig student = Student(Fixture("teacher_depth3.pth.tar"), 3);
  student.atprompt = true;
  auto source = ResolveTeacherSource(student, Json::array());
  ASSERT_FALSE(source.ok());
  EXPECT_NE(source.status().message().find("teacher_depth3.pth.tar"), std::string::npos);
}

}  // namespace
}  // namespace atp::prompt
