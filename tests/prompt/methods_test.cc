// Every prompt method, ± ATPrompt, run as a job on a tiny random CLIP and real Fashion-MNIST
// images: training lowers the loss, evaluation runs, a resumed job equals an uninterrupted
// one, two ranks equal one, and a warm feature cache changes nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "common/method_catalog.h"
#include "tests/prompt/prompt_test_util.h"
#include "tests/prompt/thread_allreduce.h"
#include "tests/support/status_matchers.h"
#include "worker/job_context.h"
#include "worker/job_failure.h"
#include "worker/prompt/method_config.h"
#include "worker/prompt/prompt_methods.h"
#include "worker/prompt/prompt_model.h"
#include "worker/train/training_checkpoint.h"

namespace atp::prompt {
namespace {

using testing::TempDir;
using testing::ThreadAllreduce;

class MethodsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    tokenizer_ = testing::RealTokenizer(&why);
    if (!tokenizer_) GTEST_SKIP() << "CLIP vocabulary not found (" << why << ")";
    root_ = testing::FashionMnistRoot(&why);
    if (root_.empty()) GTEST_SKIP() << "Fashion-MNIST not available: " << why;
    backbone_ = dir_.File("tiny_clip.pt");
    testing::SaveClip(testing::TinyClip(), backbone_);
    RegisterPromptMethods();
  }

  Json Params(const std::string& method, bool atprompt) {
    Json p = {{"dataset", "fashion_mnist"},
              {"seed", 1},
              {"data_root", root_},
              {"backbone", backbone_},
              {"shots", 8},
              {"epochs", 3},
              {"batch_size", 8},
              {"lr", 0.01},
              {"threads", 2},
              {"max_test_images", 60},
              {"feature_cache", dir_.File("cache")},
              {"atprompt", atprompt}};
    if (atprompt) p["attributes"] = {"shape", "length"};
    // Vanilla CoOp and CoCoOp keep the recipe's "a photo of a" (4 tokens); the others take 2.
    const bool phrase_sets_length = !atprompt && (method == "coop" || method == "cocoop");
    if (!phrase_sets_length) p["n_ctx"] = 2;
    if (method == "maple") p["depth"] = 2;
    if (method == "promptsrc") p["text_depth"] = 2, p["vision_depth"] = 2, p["vision_n_ctx"] = 2;
    if (method == "cocoop") p["batch_size"] = 2, p["max_steps_per_epoch"] = 4;
    return p;
  }

  // Runs one job as rank `rank` of `size`; `stop_after_epochs` > 0 preempts it then.
  MethodResult Run(const std::string& method, const Json& params, const std::string& workdir,
                   const std::string& resume = "", int rank = 0, int size = 1,
                   std::function<Status(std::vector<double>*)> allreduce = {}) {
    JobSpec spec;
    spec.stage = "train";
    spec.method = method;
    spec.params = Resolved(method, params);
    JobContext::Channel channel;
    channel.allreduce = allreduce;
    JobContext context(spec, 1, Json::array(), workdir, resume, rank, size, channel, &stop_);
    return RunPromptMethod(context);
  }

  // What sweep expansion gives the worker: the parameters completed with the recipe.
  static Json Resolved(const std::string& method, const Json& params) {
    Result<Json> resolved = ResolveMethodParams(*FindMethod(method), params);
    EXPECT_OK(resolved);
    return resolved.ok() ? *resolved : params;
  }

  train::TensorMap Checkpoint(const std::string& workdir) {
    auto checkpoint = train::LoadTrainingCheckpoint(workdir + "/checkpoint.pth");
    EXPECT_OK(checkpoint);
    return checkpoint.ok() ? checkpoint->state_dict : train::TensorMap{};
  }

  TempDir dir_;
  std::shared_ptr<const clip::ClipTokenizer> tokenizer_;
  std::string root_, backbone_;
  std::atomic<bool> stop_{false};
};

TEST_F(MethodsTest, EveryMethodWithAndWithoutAtpromptTrainsAndEvaluates) {
  for (const char* method : {"coop", "cocoop", "maple", "dept", "promptsrc"}) {
    for (bool atprompt : {false, true}) {
      SCOPED_TRACE(std::string(method) + (atprompt ? " + ATPrompt" : ""));
      MethodResult result = Run(method, Params(method, atprompt), dir_.File(std::string(method) + std::to_string(atprompt)));
      ASSERT_TRUE(result.metrics.count("base_accuracy"));
      ASSERT_TRUE(result.metrics.count("new_accuracy"));
      // Each accuracy is a percentage of the 60 test images of its split (max_test_images):
      // a whole number of correct images, in [0, 100].
      for (const char* split : {"base_accuracy", "new_accuracy"}) {
        const double accuracy = result.metrics[split];
        EXPECT_GE(accuracy, 0) << split;
        EXPECT_LE(accuracy, 100) << split;
        const double correct = accuracy * 60 / 100;
        EXPECT_NEAR(correct, std::round(correct), 1e-6) << split << " = " << accuracy << " is not k/60";
      }
      EXPECT_TRUE(std::isfinite(result.metrics["train_loss"]));
      EXPECT_EQ(result.outputs["config"]["atprompt"], atprompt);
      if (atprompt) {
        EXPECT_EQ(result.outputs["config"]["attributes"], Json({"shape", "length"}));
      }
    }
  }
  MethodResult zs = Run("zsclip", Json{{"dataset", "fashion_mnist"}, {"data_root", root_}, {"backbone", backbone_},
                                       {"max_test_images", 60}, {"feature_cache", dir_.File("cache")}},
                        dir_.File("zs"));
  EXPECT_TRUE(zs.metrics.count("base_accuracy"));
}

TEST_F(MethodsTest, TrainingLowersTheLossOfEveryMethod) {
  for (const char* method : {"coop", "cocoop", "maple", "dept", "promptsrc"}) {
    for (bool atprompt : {false, true}) {
      SCOPED_TRACE(std::string(method) + (atprompt ? " + ATPrompt" : ""));
      Json p = Params(method, atprompt);
      // Epoch 1 runs at the warm-up lr, so its mean loss is the untrained model's; every
      // epoch sees the same 40 images (new augmentations).
      p["epochs"] = 6;
      p["lr"] = 0.05;
      if (std::string(method) == "cocoop") p["batch_size"] = 4, p["max_steps_per_epoch"] = 0;
      MethodResult run = Run(method, p, dir_.File(std::string("loss") + method + std::to_string(atprompt)));
      EXPECT_LT(run.metrics["train_loss"], run.metrics["first_epoch_loss"]);
    }
  }
}

TEST_F(MethodsTest, PrecisionIsHonouredAndRecorded) {
  Json p = Params("coop", true);
  p["epochs"] = 2;
  MethodResult fp32 = Run("coop", p, dir_.File("fp32"));
  EXPECT_EQ(fp32.outputs["config"]["precision"], "fp32");  // auto on the CPU
  p["precision"] = "bf16";
  MethodResult bf16 = Run("coop", p, dir_.File("bf16"));
  EXPECT_EQ(bf16.outputs["config"]["precision"], "bf16");
  EXPECT_TRUE(std::isfinite(bf16.metrics["train_loss"]));
  // bf16 forward passes move the loss, but not beyond what bf16 rounding explains.
  EXPECT_NE(bf16.metrics["train_loss"], fp32.metrics["train_loss"]);
  EXPECT_NEAR(bf16.metrics["train_loss"], fp32.metrics["train_loss"], 0.1 * fp32.metrics["train_loss"]);
  p["precision"] = "fp16";
  try {
    Run("coop", p, dir_.File("fp16"));
    ADD_FAILURE() << "fp16 on the CPU ran";
  } catch (const JobFailure& e) {
    EXPECT_EQ(e.failure_class(), FailureClass::kUserError);
    EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
  }
}

TEST_F(MethodsTest, ResumedJobEqualsUninterruptedJob) {
  Json p = Params("coop", true);
  p["epochs"] = 4;
  Run("coop", p, dir_.File("whole"));
  // Stop during epoch 3: the checkpoint of epoch 2 is what the next attempt resumes from.
  stop_ = false;
  JobSpec spec;
  spec.stage = "train";
  spec.method = "coop";
  spec.params = Resolved("coop", p);
  std::atomic<int> steps{0};
  EXPECT_THROW(
      {
        JobContext::Channel channel;
        channel.send_event = [&](const Json& event) {
          if (event.value("event", "") == "checkpoint" && ++steps == 2) stop_ = true;
        };
        JobContext context(spec, 1, Json::array(), dir_.File("split"), "", 0, 1, channel, &stop_);
        RunPromptMethod(context);
      },
      JobFailure);
  stop_ = false;
  MethodResult resumed = Run("coop", p, dir_.File("split"), dir_.File("split") + "/checkpoint.pth");
  EXPECT_EQ(resumed.metrics["resumed_from_epoch"], 2);
  auto whole = Checkpoint(dir_.File("whole"));
  auto split = Checkpoint(dir_.File("split"));
  ASSERT_FALSE(whole.empty());
  for (const auto& [name, tensor] : whole) {
    ASSERT_TRUE(split.count(name)) << name;
    EXPECT_TRUE(torch::equal(tensor, split[name])) << name;
  }
}

TEST_F(MethodsTest, ResumedPromptSrcKeepsItsPromptAggregation) {
  // PromptSRC's GPA sums every epoch's prompts; a resumed run must continue that sum from the
  // checkpoint, not restart it (the aggregate would then miss the epochs before the resume).
  Json p = Params("promptsrc", true);
  p["epochs"] = 4;
  p["gpa_mean"] = 2.5;  // weight spread over all four epochs
  p["gpa_std"] = 1.0;
  Run("promptsrc", p, dir_.File("gpa_whole"));
  stop_ = false;
  JobSpec spec;
  spec.stage = "train";
  spec.method = "promptsrc";
  spec.params = Resolved("promptsrc", p);
  std::atomic<int> checkpoints{0};
  EXPECT_THROW(
      {
        JobContext::Channel channel;
        channel.send_event = [&](const Json& event) {
          if (event.value("event", "") == "checkpoint" && ++checkpoints == 2) stop_ = true;
        };
        JobContext context(spec, 1, Json::array(), dir_.File("gpa_split"), "", 0, 1, channel, &stop_);
        RunPromptMethod(context);
      },
      JobFailure);
  stop_ = false;
  MethodResult resumed =
      Run("promptsrc", p, dir_.File("gpa_split"), dir_.File("gpa_split") + "/checkpoint.pth");
  EXPECT_EQ(resumed.metrics["resumed_from_epoch"], 2);
  auto whole = Checkpoint(dir_.File("gpa_whole"));
  auto split = Checkpoint(dir_.File("gpa_split"));
  ASSERT_FALSE(whole.empty());
  for (const auto& [name, tensor] : whole) {
    ASSERT_TRUE(split.count(name)) << name;
    EXPECT_TRUE(torch::equal(tensor, split[name])) << name;
  }
}

TEST_F(MethodsTest, TwoRanksMatchOneRank) {
  for (const char* method : {"coop", "dept", "promptsrc"}) {
    SCOPED_TRACE(method);
    Json p = Params(method, true);
    MethodResult single = Run(method, p, dir_.File(std::string("one") + method));
    // A cold cache of their own: the ranks split the image tower's work between them.
    p["feature_cache"] = dir_.File(std::string("cache_two_ranks_") + method);
    ThreadAllreduce allreduce(2);
    auto reduce = [&](std::vector<double>* d) { return allreduce.Sum(d); };
    MethodResult results[2];
    std::thread second([&] { results[1] = Run(method, p, dir_.File(std::string("two1") + method), "", 1, 2, reduce); });
    results[0] = Run(method, p, dir_.File(std::string("two0") + method), "", 0, 2, reduce);
    second.join();
    auto one = Checkpoint(dir_.File(std::string("one") + method));
    auto two = Checkpoint(dir_.File(std::string("two0") + method));
    for (const auto& [name, tensor] : one) {
      ASSERT_TRUE(two.count(name)) << name;
      EXPECT_TRUE(torch::allclose(tensor, two[name], 1e-4, 1e-5))
          << name << ": max |1 rank - 2 ranks| = " << (tensor - two[name]).abs().max().item<double>()
          << ", max |1 rank| = " << tensor.abs().max().item<double>() << "; train_loss "
          << single.metrics["train_loss"] << " (1 rank), " << results[0].metrics["train_loss"] << " (2 ranks)";
    }
    EXPECT_EQ(results[0].metrics["base_accuracy"], results[1].metrics["base_accuracy"]);
  }
}

TEST_F(MethodsTest, WarmFeatureCacheGivesBitIdenticalResults) {
  Json p = Params("coop", true);
  p["feature_cache"] = dir_.File("fresh_cache");
  MethodResult cold = Run("coop", p, dir_.File("cold"));
  MethodResult warm = Run("coop", p, dir_.File("warm"));
  EXPECT_EQ(cold.metrics["feature_cache_hits"], 0);
  EXPECT_GT(warm.metrics["feature_cache_hits"], 0);
  EXPECT_EQ(warm.metrics["feature_cache_misses"], 0);
  EXPECT_EQ(cold.metrics["train_loss"], warm.metrics["train_loss"]);
  EXPECT_EQ(cold.metrics["base_accuracy"], warm.metrics["base_accuracy"]);
  auto a = Checkpoint(dir_.File("cold"));
  auto b = Checkpoint(dir_.File("warm"));
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b[name])) << name;
}

TEST_F(MethodsTest, DivergingLossStopsTheJobWithEpochAndStep) {
  Json p = Params("coop", false);
  p["lr"] = 1e30;
  p["epochs"] = 4;
  try {
    Run("coop", p, dir_.File("nan"));
    FAIL() << "expected a diverged job";
  } catch (const JobFailure& e) {
    EXPECT_EQ(e.failure_class(), FailureClass::kDiverged);
    EXPECT_NE(std::string(e.what()).find("epoch"), std::string::npos) << e.what();
  }
}

TEST_F(MethodsTest, EvalOnlyLoadsTheTrainedPrompt) {
  Json p = Params("coop", true);
  MethodResult trained = Run("coop", p, dir_.File("train"));
  Json e = p;
  e["eval_only"] = true;
  e["checkpoint"] = trained.outputs["checkpoint"];
  MethodResult evaluated = Run("coop", e, dir_.File("eval"));
  EXPECT_EQ(evaluated.metrics["base_accuracy"], trained.metrics["base_accuracy"]);
  EXPECT_EQ(evaluated.metrics["new_accuracy"], trained.metrics["new_accuracy"]);
}

TEST_F(MethodsTest, BadParametersAreUserErrors) {
  Json p = Params("coop", true);
  p["dataset"] = "mnist";
  try {
    Run("coop", p, dir_.File("bad"));
    FAIL();
  } catch (const JobFailure& e) {
    EXPECT_EQ(e.failure_class(), FailureClass::kUserError);
    EXPECT_NE(std::string(e.what()).find("fashion_mnist"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace atp::prompt
