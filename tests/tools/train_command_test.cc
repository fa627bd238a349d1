// `atp eval` of checkpoints in the published format against the official predictions
// (tests/tools/fixtures/published_checkpoints/README.md): each case is a Dassl-format
// model.pth.tar-5 written with torch.save by the released ATPrompt classes for the parity CLIP,
// a small OxfordPets-layout data root whose test images are labelled with the class the
// official model predicts for them (the base model for base classes, the new model for new
// ones, every class predicted three times), and the official logits. atp evaluates the
// checkpoint as a user would; an accuracy of 1 on both class sets means every one of its
// predictions is the official one.
#include "tools/train_command.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <set>
#include <fstream>
#include <string>
#include <vector>

#include "common/json.h"
#include "tests/prompt/official_parity.h"
#include "tests/support/status_matchers.h"
#include "worker/clip/tokenizer.h"
#include "worker/data/image.h"
#include "worker/data/transforms.h"
#include "worker/train/training_checkpoint.h"

namespace atp {
namespace {

namespace fs = std::filesystem;

std::string FixtureDir() { return std::string(ATP_TOOLS_FIXTURE_DIR) + "/published_checkpoints"; }

std::string TomlList(const std::vector<std::string>& words) {
  std::string out = "[";
  for (size_t i = 0; i < words.size(); ++i) out += (i ? ", \"" : "\"") + words[i] + "\"";
  return out + "]";
}

class PublishedCheckpointEvalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto vocab = clip::ResolveVocabPath("");
    if (!vocab.ok()) GTEST_SKIP() << "CLIP vocabulary not found (" << vocab.status().message() << ")";
    // The parity CLIP as a state-dict file `atp` loads like any backbone.
    c10::Dict<std::string, at::Tensor> dict;
    for (const auto& [key, value] : prompt::testing::ParityClipState()) dict.insert(key, value.to(torch::kHalf));
    ASSERT_TRUE(dict.contains("token_embedding.weight")) << "parity CLIP incomplete";
    std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
    backbone_ = dir_.File("parity_clip.pt");
    std::ofstream(backbone_, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

  // Runs `atp eval` on case `c` in `compat` mode and returns its metrics.
  Json Eval(const Json& c, const std::string& compat) {
    const std::string name = c["name"].get<std::string>();
    const std::string work = dir_.File(name + "_" + compat);
    fs::create_directories(work);
    // A private copy of the data root: nothing under the source tree is written.
    const std::string data = work + "/data";
    if (!fs::exists(data)) fs::copy(FixtureDir() + "/" + name + "/data", data, fs::copy_options::recursive);
    const std::string job = work + "/job.toml";
    std::ofstream toml(job);
    toml << "method = \"" << c["method"].get<std::string>() << "\"\n[params]\n"
         << "dataset = \"oxford_pets\"\n"
         << "data_root = \"" << data << "\"\n"
         << "backbone = \"" << backbone_ << "\"\n"
         << "feature_cache = \"" << work << "/cache\"\n"
         << "compat = \"" << compat << "\"\n"
         << "precision = \"fp32\"\n"
         << "atprompt = true\n"
         << "attributes = " << TomlList(c["attributes"].get<std::vector<std::string>>()) << "\n"
         << "n_ctx = " << c["n_ctx"].get<int>() << "\n"
         << "attribute_ctx = " << c["attribute_ctx"].get<int>() << "\n"
         << "shots = 1\nseed = 1\nthreads = 1\n";
    if (c["method"] == "maple") toml << "depth = " << c["depth"].get<int>() << "\n";
    toml.close();
    const std::string checkpoint = FixtureDir() + "/" + c["checkpoint"].get<std::string>();
    const std::string metrics = work + "/metrics.json";
    std::vector<std::string> args = {"eval", job, "--checkpoint", checkpoint, "--workdir", work + "/job", "--out", metrics};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    const int rc = RunEvalCommand(static_cast<int>(argv.size()), argv.data());
    EXPECT_EQ(rc, 0) << name << " " << compat;
    std::ifstream in(metrics);
    if (!in) {
      ADD_FAILURE() << name << " " << compat << ": no metrics at " << metrics;
      return Json::object();
    }
    return Json::parse(in)["metrics"];
  }

  atp::testing::TempDir dir_;
  std::string backbone_;
};

TEST_F(PublishedCheckpointEvalTest, GivesTheOfficialPredictionsInEveryCompatModeThatReproducesThem) {
  std::ifstream in(FixtureDir() + "/expected.json");
  ASSERT_TRUE(in) << "missing " << FixtureDir() << "/expected.json";
  const Json expected = Json::parse(in);
  int runs = 0;
  for (const Json& c : expected["cases"]) {
    // The labels are the official predictions: both class sets hold every class.
    std::set<int> base_predictions, new_predictions;
    for (const Json& image : c["images"]) {
      (image["subset"] == "base" ? base_predictions : new_predictions).insert(image["official_prediction"].get<int>());
    }
    ASSERT_EQ(base_predictions.size(), 2u);
    ASSERT_EQ(new_predictions.size(), 2u);
    for (const Json& compat : c["compat_modes"]) {
      SCOPED_TRACE(c["name"].get<std::string>() + " compat " + compat.get<std::string>());
      const Json metrics = Eval(c, compat.get<std::string>());
      ASSERT_TRUE(metrics.contains("base_accuracy")) << metrics.dump();
      // Accuracy against the official predictions, in percent: 100 = all 6 + 6 agree.
      EXPECT_DOUBLE_EQ(metrics["base_accuracy"].get<double>(), 100.0) << metrics.dump();
      EXPECT_DOUBLE_EQ(metrics["new_accuracy"].get<double>(), 100.0) << metrics.dump();
      ++runs;
    }
  }
  EXPECT_EQ(runs, 5);
}

// The same checkpoints through the reader `atp eval` uses (ImportPromptStateDict: fp16 tensors,
// token buffers dropped) and the model's own loading, on the same images decoded and
// transformed as a job does: the logits against the official ones, class set by class set.
TEST_F(PublishedCheckpointEvalTest, ImportedCheckpointsGiveTheOfficialLogits) {
  std::ifstream in(FixtureDir() + "/expected.json");
  ASSERT_TRUE(in);
  const Json expected = Json::parse(in);
  std::string why;
  auto tokenizer = prompt::testing::RealTokenizer(&why);
  ASSERT_TRUE(tokenizer) << why;
  clip::Clip clip = prompt::testing::ParityClip();
  ASSERT_TRUE(clip);
  const std::vector<std::string> names = {"abyssinian", "american_pit_bull_terrier", "great_pyrenees",
                                          "yorkshire_terrier"};
  int compared = 0;
  for (const Json& c : expected["cases"]) {
    auto state = train::ImportPromptStateDict(FixtureDir() + "/" + c["checkpoint"].get<std::string>());
    ASSERT_OK(state);
    for (const Json& compat_name : c["compat_modes"]) {
      const prompt::Compat compat = *prompt::ParseCompat(compat_name.get<std::string>());
      for (const std::string subset : {"base", "new"}) {
        const std::string label = c["name"].get<std::string>() + "/" + compat_name.get<std::string>() + " " + subset;
        prompt::MethodConfig config;
        config.method = c["method"].get<std::string>();
        config.atprompt = true;
        config.design.n_ctx = c["n_ctx"].get<int>();
        config.design.attributes = c["attributes"].get<std::vector<std::string>>();
        config.design.attribute_ctx.assign(config.design.attributes.size(), c["attribute_ctx"].get<int>());
        config.design.compat = compat;
        if (config.method == "maple") config.maple_depth = c["depth"].get<int>();
        const std::vector<std::string> classes(names.begin() + (subset == "base" ? 0 : 2),
                                               names.begin() + (subset == "base" ? 2 : 4));
        torch::manual_seed(0);
        auto model = prompt::MakePromptModel(config, clip.ptr(), tokenizer, classes);
        ASSERT_OK(model);
        ASSERT_OK((*model)->LoadStateDict(*state)) << label;
        std::vector<torch::Tensor> pixels;
        std::vector<torch::Tensor> official;
        for (const Json& image : c["images"]) {
          if (image["subset"] != subset) continue;
          auto decoded = data::DecodeImageFile(FixtureDir() + "/" + c["name"].get<std::string>() +
                                               "/data/oxford_pets/images/" + image["image"].get<std::string>());
          ASSERT_OK(decoded);
          pixels.push_back(data::ClipTestTransform(*decoded, 16));
          official.push_back(torch::tensor(image["official_logits"].get<std::vector<float>>()));
        }
        torch::NoGradGuard no_grad;
        torch::Tensor input = torch::stack(pixels);
        if ((*model)->TakesImageFeatures()) input = clip->EncodeImage(input);
        (*model)->BeginEvaluation();
        const torch::Tensor logits = (*model)->Logits(input);
        (*model)->EndEvaluation();
        prompt::testing::ExpectClose(label + " logits", logits, torch::stack(official));
        EXPECT_TRUE(logits.argmax(1).equal(torch::stack(official).argmax(1))) << label;
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 10);
}

}  // namespace
}  // namespace atp
