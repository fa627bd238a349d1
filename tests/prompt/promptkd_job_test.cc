// PromptKD run as jobs on real Fashion-MNIST images: a MaPLe teacher job on a wider random
// CLIP, then students that read it as their upstream: the selection rule, resume, and the
// teacher's ATPrompt setting.
#include <gtest/gtest.h>

#include <algorithm>

#include "common/method_catalog.h"
#include "tests/prompt/prompt_test_util.h"
#include "tests/support/status_matchers.h"
#include "worker/job_context.h"
#include "worker/job_failure.h"
#include "worker/prompt/prompt_methods.h"
#include "worker/train/training_checkpoint.h"

namespace atp::prompt {
namespace {

using testing::TempDir;

class PromptkdJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!testing::RealTokenizer(&why)) GTEST_SKIP() << "CLIP vocabulary not found (" << why << ")";
    root_ = testing::FashionMnistRoot(&why);
    if (root_.empty()) GTEST_SKIP() << "Fashion-MNIST not available: " << why;
    student_backbone_ = dir_.File("student.pt");
    testing::SaveClip(testing::TinyClip(), student_backbone_);
    // The teacher: wider, with a larger embedding (the projector maps 32 -> 48).
    torch::manual_seed(21);
    clip::ClipOptions o = testing::TinyClipOptions();
    o.vision.width(128).heads(2).output_dim(48);
    o.text.embed_dim(48);
    clip::Clip wide(o);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : wide->parameters()) {
        if (p.dim() >= 2) p.normal_(0, 0.05);
      }
      wide->logit_scale.fill_(std::log(1 / 0.07));
    }
    teacher_backbone_ = dir_.File("teacher.pt");
    testing::SaveClip(wide, teacher_backbone_);
    RegisterPromptMethods();
  }

  Json Common() const {
    return {{"dataset", "fashion_mnist"}, {"data_root", root_}, {"threads", 2}, {"max_test_images", 60},
            {"feature_cache", dir_.File("cache")}};
  }

  // The teacher job: MaPLe on the wide CLIP (± ATPrompt); returns its upstream record.
  Json Teacher(bool atprompt) {
    Json p = Common();
    p.update({{"backbone", teacher_backbone_}, {"shots", 8}, {"epochs", 2}, {"batch_size", 8}, {"n_ctx", 2},
              {"depth", 2}, {"atprompt", atprompt}});
    if (atprompt) p["attributes"] = {"shape", "length"};
    const std::string workdir = dir_.File(atprompt ? "teacher_atp" : "teacher");
    MethodResult result = Run("maple", p, workdir, Json::array());
    return Json::array({Json{{"key", "teacher-key"}, {"stage", "teacher"}, {"method", "maple"}, {"outputs", result.outputs}}});
  }

  Json StudentParams(bool atprompt) const {
    Json p = Common();
    p.update({{"backbone", student_backbone_}, {"epochs", 3}, {"batch_size", 8}, {"max_steps_per_epoch", 6},
              {"depth", 2}, {"augment", false}, {"atprompt", atprompt}});
    return p;
  }

  MethodResult Run(const std::string& method, const Json& params, const std::string& workdir, const Json& upstream,
                   const std::string& resume = "", int rank = 0, int size = 1,
                   std::function<Status(std::vector<double>*)> allreduce = {},
                   std::function<void(const Json&)> on_event = {}) {
    JobSpec spec;
    spec.stage = method == "promptkd" ? "student" : "teacher";
    spec.method = method;
    Result<Json> resolved = ResolveMethodParams(*FindMethod(method), params);
    EXPECT_OK(resolved);
    spec.params = resolved.ok() ? *resolved : params;
    JobContext::Channel channel;
    channel.allreduce = allreduce;
    channel.send_event = on_event;
    JobContext context(spec, 1, upstream, workdir, resume, rank, size, channel, &stop_);
    return RunPromptMethod(context);
  }

  TempDir dir_;
  std::string root_, student_backbone_, teacher_backbone_;
  std::atomic<bool> stop_{false};
};

TEST_F(PromptkdJobTest, StudentIsSelectedOnBaseAccuracyAndMeasuredOnNovelThere) {
  const Json upstream = Teacher(false);
  MethodResult result = Run("promptkd", StudentParams(false), dir_.File("student"), upstream);
  const std::vector<double> history = result.outputs["base_accuracy_per_epoch"].get<std::vector<double>>();
  ASSERT_EQ(history.size(), 3u);
  const auto best = std::max_element(history.begin(), history.end());  // the first of equals
  EXPECT_EQ(result.metrics["selected_epoch"], static_cast<double>(best - history.begin() + 1));
  EXPECT_EQ(result.metrics["base_accuracy"], *best);
  EXPECT_TRUE(result.metrics.count("new_accuracy"));
  EXPECT_EQ(result.outputs["teacher"]["origin"], "job teacher-key");
  auto kept = train::LoadTrainingCheckpoint(result.outputs["checkpoint"].get<std::string>());
  ASSERT_OK(kept);
  EXPECT_EQ(kept->epoch, static_cast<int64_t>(result.metrics["selected_epoch"]));
  EXPECT_TRUE(kept->state_dict.count("VPT_image_trans.conv1.1.running_mean"));
}

TEST_F(PromptkdJobTest, ResumedStudentEqualsUninterruptedStudent) {
  const Json upstream = Teacher(false);
  MethodResult whole = Run("promptkd", StudentParams(false), dir_.File("whole"), upstream);
  int checkpoints = 0;
  EXPECT_THROW(Run("promptkd", StudentParams(false), dir_.File("split"), upstream, "", 0, 1, {},
                   [&](const Json& event) {
                     if (event.value("event", "") == "checkpoint" && ++checkpoints == 2) stop_ = true;
                   }),
               JobFailure);
  stop_ = false;
  MethodResult resumed = Run("promptkd", StudentParams(false), dir_.File("split"), upstream,
                             dir_.File("split") + "/checkpoint.pth");
  EXPECT_EQ(resumed.metrics["resumed_from_epoch"], 2);
  EXPECT_EQ(resumed.outputs["base_accuracy_per_epoch"], whole.outputs["base_accuracy_per_epoch"]);
  for (const char* metric : {"selected_epoch", "base_accuracy", "new_accuracy"}) {
    EXPECT_EQ(resumed.metrics[metric], whole.metrics[metric]) << metric;
  }
}

TEST_F(PromptkdJobTest, AStudentRefusesATeacherOfTheOtherAtpromptSetting) {
  const Json upstream = Teacher(false);
  try {
    Run("promptkd", StudentParams(true), dir_.File("mismatch"), upstream);
    ADD_FAILURE() << "the job ran";
  } catch (const JobFailure& failure) {
    EXPECT_NE(std::string(failure.what()).find("without ATPrompt"), std::string::npos) << failure.what();
  }
}

}  // namespace
}  // namespace atp::prompt
