// The `promptkd` job: builds the teacher (an upstream teacher job's checkpoint, or a
// published one), the student, trains on the transductive protocol with Dassl's best_val
// selection, and reports base accuracy at the selected epoch and novel accuracy there
// (docs/methods.md, "PromptKD"). Called by RunPromptMethod once the CLIP, device and
// gradient sync of the job are set up. One call per job.
#pragma once

#include <memory>
#include <string>

#include "common/json.h"
#include "common/status.h"
#include "worker/clip/clip_model.h"
#include "worker/prompt/method_config.h"
#include "worker/prompt/precision.h"

namespace atp {
class JobContext;
struct MethodResult;
}  // namespace atp

namespace atp::train {
class GradientSync;
}

namespace atp::clip {
class ClipTokenizer;
}

namespace atp::prompt {

class KdTeacher;

// Where the teacher of a PromptKD job comes from: its checkpoint file and the settings of the
// run that trained it (an upstream job's recorded config; an atp checkpoint's meta; else,
// for a published Dassl checkpoint, the official teacher layout from the teacher_* params).
struct TeacherSource {
  std::string checkpoint;
  MethodConfig config;
  std::string origin;  // "job <key>" | "atp checkpoint" | "published checkpoint"
};
Result<TeacherSource> ResolveTeacherSource(const MethodConfig& student, const Json& upstream);

// Builds the teacher for `class_names` on `device`: its CLIP, its tokenizer and its trained
// prompts. A checkpoint whose prompt layout does not fit the configured teacher is refused
// with an error naming the file and the key (the official loader's strict=False would load
// what fits and leave the rest at random).
// The same on a CLIP and tokenizer already loaded (CPU).
Result<std::unique_ptr<KdTeacher>> BuildKdTeacher(const TeacherSource& source, clip::Clip teacher_clip,
                                                  std::shared_ptr<const clip::ClipTokenizer> tokenizer,
                                                  const std::vector<std::string>& class_names);

Result<std::unique_ptr<KdTeacher>> LoadKdTeacher(const TeacherSource& source,
                                                 const std::vector<std::string>& class_names, torch::Device device);

MethodResult RunPromptkd(JobContext& context, MethodConfig config, clip::Clip student, torch::Device device,
                         Precision precision, int threads, train::GradientSync* sync);

}  // namespace atp::prompt
