#include "worker/prompt/checkpoint_class_names.h"

#include <torch/torch.h>

#include <map>
#include <set>

#include "worker/clip/tokenizer.h"

namespace atp::prompt {
namespace {

std::string FormName(bool keep_underscores) { return keep_underscores ? "'_' kept" : "'_' replaced by a space"; }

std::string ShapeText(const at::Tensor& t) {
  std::string out = "[";
  for (int64_t i = 0; i < t.dim(); ++i) out += (i ? ", " : "") + std::to_string(t.size(i));
  return out + "]";
}

// The official trainers embed the template "X.. [word X..] X.. name." and save its frozen rows
// as buffers: the run before the first learned token (token_prefix), the one between blocks of
// learned tokens (token_middle1..3, the attribute words), and the rest (token_suffix), at the
// offsets compat = "official" reproduces, whatever CLASS_TOKEN_POSITION says.
struct ExpectedBuffer {
  std::string name;
  std::vector<std::vector<int>> ids;  // per class, the token ids of its rows
};

Result<std::vector<ExpectedBuffer>> ExpectedBuffers(PromptDesign design, bool keep_underscores,
                                                    const std::vector<std::string>& class_names,
                                                    const clip::ClipTokenizer& tokenizer) {
  design.compat = Compat::kOfficial;
  design.class_position = ClassPosition::kEnd;
  design.keep_underscores = keep_underscores;
  ATP_ASSIGN_OR_RETURN(PromptLayout layout, BuildPromptLayout(design, class_names, tokenizer));
  std::vector<ExpectedBuffer> buffers;
  for (size_t c = 0; c < layout.classes.size(); ++c) {
    const ClassPrompt& prompt = layout.classes[c];
    std::vector<std::vector<int>> runs(1);
    for (const Slot& slot : prompt.slots) {
      if (slot.kind != SlotKind::kFixed) {
        if (!runs.back().empty()) runs.emplace_back();
        continue;
      }
      runs.back().push_back(prompt.template_ids[slot.source]);
    }
    if (runs.back().empty()) runs.pop_back();
    if (runs.size() < 2) return InvalidArgument("the job's prompts have no learned tokens to split buffers at");
    if (buffers.empty()) {
      for (size_t r = 0; r < runs.size(); ++r) {
        const std::string name = r == 0 ? "token_prefix"
                                 : r + 1 == runs.size() ? "token_suffix"
                                                        : "token_middle" + std::to_string(r);
        buffers.push_back(ExpectedBuffer{name, {}});
      }
    }
    if (runs.size() != buffers.size()) return Internal("class prompts split into different numbers of buffers");
    for (size_t r = 0; r < runs.size(); ++r) buffers[r].ids.push_back(std::move(runs[r]));
  }
  return buffers;
}

// "" when every buffer of the checkpoint holds the rows `form` gives, else where they first differ.
std::string Mismatch(const train::PromptTokenBuffers& checkpoint, const PromptDesign& design, bool keep_underscores,
                     const std::vector<std::string>& class_names, const clip::ClipTokenizer& tokenizer,
                     const at::Tensor& table) {
  Result<std::vector<ExpectedBuffer>> expected = ExpectedBuffers(design, keep_underscores, class_names, tokenizer);
  if (!expected.ok()) return "the job's prompts cannot be built: " + expected.status().message();
  std::set<std::string> saved, built;
  for (const auto& [name, tensor] : checkpoint.buffers) saved.insert(name);
  for (const auto& b : *expected) built.insert(b.name);
  if (saved != built) {
    auto list = [](const std::set<std::string>& names) {
      std::string out;
      for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
      return out;
    };
    return "it saves the buffers " + list(saved) + " but the job's prompts have " + list(built) +
           " (other attributes or soft-token counts?)";
  }
  for (const ExpectedBuffer& b : *expected) {
    const at::Tensor& stored = checkpoint.buffers.at(b.name);
    const int64_t classes = static_cast<int64_t>(b.ids.size());
    const int64_t rows = static_cast<int64_t>(b.ids.front().size());
    const int64_t width = table.size(1);
    if (stored.dim() != 3 || stored.size(0) != classes || stored.size(1) != rows || stored.size(2) != width) {
      return "buffer " + b.name + " is " + ShapeText(stored) + " but the job's " + std::to_string(classes) +
             " training classes give [" + std::to_string(classes) + ", " + std::to_string(rows) + ", " +
             std::to_string(width) + "] (other classes, soft-token counts or CLIP?)";
    }
    std::vector<int64_t> flat;
    for (const auto& ids : b.ids) flat.insert(flat.end(), ids.begin(), ids.end());
    // Rounded to the stored dtype first: the published buffers are fp16.
    at::Tensor built_rows = table.index_select(0, torch::tensor(flat, torch::kLong))
                                .view({classes, rows, width})
                                .to(stored.scalar_type())
                                .to(torch::kFloat);
    at::Tensor saved_rows = stored.to(torch::kFloat);
    at::Tensor differs = ((built_rows - saved_rows).abs() > 1e-6 + 2e-3 * saved_rows.abs()).any(2).any(1);
    for (int64_t c = 0; c < classes; ++c) {
      if (differs[c].item<bool>()) {
        return "buffer " + b.name + " differs first for class '" + class_names[static_cast<size_t>(c)] + "' (row " +
               std::to_string(c) + ")";
      }
    }
  }
  return "";
}

}  // namespace

Result<ClassNameForm> DecideClassNameForm(const train::PromptTokenBuffers& checkpoint, const PromptDesign& design,
                                          const std::vector<std::string>& class_names,
                                          const clip::ClipTokenizer& tokenizer, const at::Tensor& token_embedding,
                                          const std::string& mode) {
  if (mode != "detect" && mode != "job" && mode != "unchecked") {
    return InvalidArgument("checkpoint_class_names is \"" + mode + "\"; valid values: \"detect\", \"job\", \"unchecked\"");
  }
  const bool job_form = design.keep_underscores;
  ClassNameForm form{job_form, "job", ""};
  if (mode == "unchecked") {
    form.note = "class names with " + FormName(job_form) + " (class_name_underscores); checkpoint_class_names = "
                "\"unchecked\": the checkpoint's token buffers are not compared";
    return form;
  }
  if (checkpoint.buffers.empty()) {
    form.note = "class names with " + FormName(job_form) + " (class_name_underscores); " + checkpoint.file +
                " saves no token buffers to compare";
    return form;
  }
  torch::NoGradGuard no_grad;
  const at::Tensor table = token_embedding.detach().to(torch::kCPU, torch::kFloat);
  const std::string kept = Mismatch(checkpoint, design, true, class_names, tokenizer, table);
  const std::string replaced = Mismatch(checkpoint, design, false, class_names, tokenizer, table);
  if (kept.empty() && replaced.empty()) {
    form.note = "class names with " + FormName(job_form) + " (class_name_underscores); the checkpoint's token "
                "buffers match both forms (no training class tokenises differently)";
    return form;
  }
  if (!kept.empty() && !replaced.empty()) {
    return InvalidArgument(
        "checkpoint " + checkpoint.file + ": its token buffers match neither class-name form of this job's " +
        std::to_string(class_names.size()) + " training classes (other class names, another CLIP, or another "
        "template, attributes or soft-token count?). With '_' kept: " + kept + "; with '_' replaced: " + replaced +
        ". Set checkpoint_class_names = \"unchecked\" to evaluate it with class_name_underscores as set");
  }
  const bool detected = kept.empty();
  if (mode == "job" && detected != job_form) {
    return InvalidArgument("checkpoint " + checkpoint.file + " was trained with class names with " +
                           FormName(detected) + " (its token buffers match that form only; with " +
                           FormName(job_form) + ": " + (job_form ? kept : replaced) +
                           "), but the job sets class_name_underscores = " + (job_form ? "true" : "false") +
                           ". Leave class_name_underscores out to follow the checkpoint, or set "
                           "checkpoint_class_names = \"unchecked\" to evaluate as set");
  }
  form.keep_underscores = detected;
  form.decided_by = "checkpoint";
  form.note = "class names with " + FormName(detected) + ", as the token buffers of " + checkpoint.file + " show" +
              (detected != job_form ? std::string("; the job's class_name_underscores = ") +
                                          (job_form ? "true" : "false") + " does not apply to this checkpoint"
                                    : std::string());
  return form;
}

}  // namespace atp::prompt
