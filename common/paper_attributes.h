// The attribute bases of the ATPrompt paper (ICCV 2025) as project data: for each of its
// datasets, the five candidate attributes it proposed and those its search selected, as printed.
// Attribute-search jobs start from them (common/attribute_bases.h) and `atp tables --paper`
// prints them. Immutable after first use; thread-safe.
#pragma once

#include <vector>

namespace atp {

// The attributes the paper's search picked for each dataset, from the five candidates it
// proposed ("color, shape"), as printed.
struct PaperSearchedAttributes {
  const char* dataset;
  const char* candidates;
  const char* searched;
};

const std::vector<PaperSearchedAttributes>& PaperAttributes();

}  // namespace atp
