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

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
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

  struct EvalRun {
    int rc = -1;
    Json output;     // the metrics file: metrics, outputs
    std::string log; // what atp eval wrote to stderr
  };

  // Runs `atp eval` on case `c` in `compat` mode, with `extra` TOML lines in [params] and
  // `rename` applied to the class names of the data root's split (a class-name mismatch).
  EvalRun RunEval(const Json& c, const std::string& compat, const std::string& extra = "",
                  const std::map<std::string, std::string>& rename = {}) {
    const std::string name = c["name"].get<std::string>();
    const std::string work = dir_.File(name + "_" + compat + "_" + std::to_string(++runs_));
    fs::create_directories(work);
    // A private copy of the data root: nothing under the source tree is written.
    const std::string data = work + "/data";
    fs::copy(FixtureDir() + "/" + name + "/data", data, fs::copy_options::recursive);
    if (!rename.empty()) {
      const std::string split_path = data + "/oxford_pets/split_zhou_OxfordPets.json";
      std::ifstream split_in(split_path);
      Json split = Json::parse(split_in);
      split_in.close();
      for (auto& [part, items] : split.items()) {
        for (auto& item : items) {
          auto it = rename.find(item[2].get<std::string>());
          if (it != rename.end()) item[2] = it->second;
        }
      }
      std::ofstream(split_path) << split.dump();
    }
    const auto attributes = c["attributes"].get<std::vector<std::string>>();
    const std::string job = work + "/job.toml";
    std::ofstream toml(job);
    toml << "method = \"" << c["method"].get<std::string>() << "\"\n[params]\n"
         << "dataset = \"oxford_pets\"\n"
         << "data_root = \"" << data << "\"\n"
         << "backbone = \"" << backbone_ << "\"\n"
         << "feature_cache = \"" << work << "/cache\"\n"
         << "compat = \"" << compat << "\"\n"
         << "precision = \"fp32\"\n"
         << "n_ctx = " << c["n_ctx"].get<int>() << "\n"
         << "shots = 1\nseed = 1\nthreads = 1\n";
    if (attributes.empty()) {
      toml << "atprompt = false\nctx_init = \"\"\n";
    } else {
      toml << "atprompt = true\n"
           << "attributes = " << TomlList(attributes) << "\n"
           << "attribute_ctx = " << c["attribute_ctx"].get<int>() << "\n";
    }
    if (c["method"] == "maple") toml << "depth = " << c["depth"].get<int>() << "\n";
    toml << extra;
    toml.close();
    const std::string checkpoint = FixtureDir() + "/" + c["checkpoint"].get<std::string>();
    const std::string metrics = work + "/metrics.json";
    std::vector<std::string> args = {"eval", job, "--checkpoint", checkpoint, "--workdir", work + "/job", "--out", metrics};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    EvalRun run;
    ::testing::internal::CaptureStderr();
    run.rc = RunEvalCommand(static_cast<int>(argv.size()), argv.data());
    run.log = ::testing::internal::GetCapturedStderr();
    std::ifstream in(metrics);
    if (in) run.output = Json::parse(in);
    return run;
  }

  // Runs `atp eval` on case `c` in `compat` mode and returns its metrics.
  Json Eval(const Json& c, const std::string& compat) {
    EvalRun run = RunEval(c, compat);
    EXPECT_EQ(run.rc, 0) << c["name"].get<std::string>() << " " << compat << "\n" << run.log;
    if (!run.output.contains("metrics")) {
      ADD_FAILURE() << c["name"].get<std::string>() << " " << compat << ": no metrics\n" << run.log;
      return Json::object();
    }
    // The form the checkpoint was made with, detected from its buffers (a base class has '_'):
    // the trainer's for the vanilla cases, replaced for every +ATPrompt trainer.
    const Json& outputs = run.output["outputs"];
    EXPECT_EQ(outputs["config"]["class_name_underscores"], c.value("class_name_underscores", false)) << run.log;
    EXPECT_EQ(outputs["class_names"]["decided_by"], "checkpoint") << outputs.dump();
    std::printf("[class names] %s, compat %s: %s\n", c["name"].get<std::string>().c_str(), compat.c_str(),
                outputs["class_names"].value("note", "").c_str());
    return run.output["metrics"];
  }

  static Json Expected() {
    std::ifstream in(FixtureDir() + "/expected.json");
    EXPECT_TRUE(in) << "missing " << FixtureDir() << "/expected.json";
    return in ? Json::parse(in) : Json::object();
  }

  static Json Case(const std::string& name) {
    const Json expected = Expected();
    for (const Json& c : expected["cases"]) {
      if (c["name"] == name) return c;
    }
    ADD_FAILURE() << "no case " << name << " in expected.json";
    return Json::object();
  }

  int runs_ = 0;
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
  EXPECT_EQ(runs, 9);
}

// Regression: vanilla CoOp checkpoints come from two official trainers that differ in class
// names (trainers/coop_atp.py with ATPrompt off keeps '_', trainers/coop.py replaces it), and
// `atp eval` used the recipe's form whatever made the checkpoint. Evaluated in the wrong form,
// they give other predictions; the eval above gives the official ones in both compat modes
// because the form is read from the checkpoint.
TEST_F(PublishedCheckpointEvalTest, TheWrongClassNameFormChangesThePredictions) {
  int differing = 0;
  for (const char* name : {"coop_vanilla_underscores_kept", "coop_vanilla_underscores_replaced"}) {
    const Json c = Case(name);
    if (c.empty()) continue;
    const bool wrong = !c["class_name_underscores"].get<bool>();
    EvalRun run = RunEval(c, "official",
                          std::string("class_name_underscores = ") + (wrong ? "true" : "false") +
                              "\ncheckpoint_class_names = \"unchecked\"\n");
    ASSERT_EQ(run.rc, 0) << run.log;
    EXPECT_EQ(run.output["outputs"]["class_names"]["decided_by"], "job");
    const Json& m = run.output["metrics"];
    if (m["base_accuracy"].get<double>() < 100.0 || m["new_accuracy"].get<double>() < 100.0) ++differing;
  }
  EXPECT_EQ(differing, 2) << "a checkpoint whose predictions do not depend on the class-name form tests nothing";
}

TEST_F(PublishedCheckpointEvalTest, AClassNameFormSetByTheJobMustBeTheCheckpoints) {
  const Json c = Case("coop_vanilla_underscores_replaced");
  ASSERT_FALSE(c.empty());
  EvalRun run = RunEval(c, "official", "class_name_underscores = true\n");
  EXPECT_NE(run.rc, 0);
  std::printf("[class names] refused: %s", run.log.c_str());
  EXPECT_NE(run.log.find("replaced"), std::string::npos) << run.log;
  EXPECT_NE(run.log.find("class_name_underscores = true"), std::string::npos) << run.log;
  EXPECT_NE(run.log.find("model.pth.tar-5"), std::string::npos) << run.log;
  // Set to what the checkpoint holds, it is confirmed.
  EvalRun agreeing = RunEval(c, "official", "class_name_underscores = false\n");
  ASSERT_EQ(agreeing.rc, 0) << agreeing.log;
  EXPECT_DOUBLE_EQ(agreeing.output["metrics"]["base_accuracy"].get<double>(), 100.0);
}

TEST_F(PublishedCheckpointEvalTest, ACheckpointOfOtherClassesIsRefusedUnlessUnchecked) {
  const Json c = Case("coop_vanilla_underscores_kept");
  ASSERT_FALSE(c.empty());
  const std::map<std::string, std::string> rename = {{"american_pit_bull_terrier", "staffordshire_bull_terrier"}};
  EvalRun run = RunEval(c, "paper", "", rename);
  EXPECT_NE(run.rc, 0);
  std::printf("[class names] refused: %s", run.log.c_str());
  EXPECT_FALSE(run.output.contains("metrics"));
  for (const char* part : {"prompt_learner/model.pth.tar-5", "match neither", "token_suffix",
                           "'staffordshire_bull_terrier'", "checkpoint_class_names = \"unchecked\""}) {
    EXPECT_NE(run.log.find(part), std::string::npos) << part << " not in:\n" << run.log;
  }
  EvalRun forced = RunEval(c, "paper", "checkpoint_class_names = \"unchecked\"\n", rename);
  ASSERT_EQ(forced.rc, 0) << forced.log;
  EXPECT_EQ(forced.output["outputs"]["class_names"]["decided_by"], "job");
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
        config.design.n_ctx = c["n_ctx"].get<int>();
        config.atprompt = !c["attributes"].empty();
        config.design.keep_underscores = c.value("class_name_underscores", false);
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
  EXPECT_EQ(compared, 18);
}

}  // namespace
}  // namespace atp
