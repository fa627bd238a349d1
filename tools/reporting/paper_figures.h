// The published figures of the ATPrompt paper (ICCV 2025) as project data: every number of
// its result tables, the soft-token-length plot and the attribute-search weights. `atp tables
// --paper` prints them beside ours. (The attributes it searched per dataset are in
// common/paper_attributes.h: attribute-search jobs use them too.)
// Immutable after first use; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace atp {

struct PaperFigure {
  const char* table;    // "base2novel", "cross_dataset", "domain_generalization", "fig5_soft_prompt_length",
                        // "t5_class_token_position", "t7_attribute_order", "t8_attribute_source", ...
  const char* method;   // as printed ("CoOp", "MaPLe"); ablations add the variant ("CoOp:len4")
  bool atprompt;        // the +ATPrompt row
  const char* dataset;  // dataset name as in the catalog, or "average"
  const char* metric;   // "base", "novel", "hm", "acc", "softmax_alpha"
  double value;         // percent, as printed (weights as fractions)
  const char* notes;    // how the figure is computed, or where the paper is inconsistent
};

const std::vector<PaperFigure>& PaperFigures();

// The figure of (table, method, atprompt, dataset, metric), if the paper prints one.
std::optional<double> FindPaperFigure(const std::string& table, const std::string& method, bool atprompt,
                                      const std::string& dataset, const std::string& metric);

// The paper's spelling of a catalog method ("coop" -> "CoOp"); the name itself if unknown.
std::string PaperMethodName(const std::string& catalog_name);

}  // namespace atp
