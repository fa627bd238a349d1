// Attribute bases: the five candidate attribute words per dataset that ATPrompt's attribute
// search chooses from, taken from the paper or from an attribute-bases TOML file that
// `atp attributes suggest` writes. Free functions; thread-safe (file writes are atomic, but two
// writers of one file race: the last rename wins).
//
// File format (one table per dataset, see docs/attributes.md):
//   [fashion_mnist]
//   bases = ["shape", "length", "sleeve", "texture", "fit"]
//   source = "llm"                    # "paper", "manual" or "llm"
//   model = "gpt-4o"                  # who answered, for "llm"
//   created = "2026-11-29T04:50:00Z"
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace atp {

// How the bases of one dataset were obtained; every field is optional in the file.
struct AttributeBasesProvenance {
  std::string source;   // "paper", "manual" or "llm" ("" = not recorded)
  std::string model;    // the language model that proposed them (source "llm")
  std::string created;  // when, ISO 8601 UTC ("2026-11-29T04:50:00Z")
};

struct AttributeBasesEntry {
  std::vector<std::string> bases;
  AttributeBasesProvenance provenance;
};

// Exactly five distinct words, each one lowercase word of letters a-z (no spaces, digits or
// hyphens: every base becomes a word of the prompt template and a name in the search's
// results). The error names the offending entry by position and value.
Status ValidateAttributeWords(const std::vector<std::string>& words);

// The bases of `dataset` in the file at `path`, validated. Errors name the file, the line and
// the key ("bases.toml:3: key 'caltech101.bases': ..."); a dataset the file lacks is NotFound
// and lists the datasets it has.
Result<std::vector<std::string>> ReadAttributeBases(const std::string& path, const std::string& dataset);
// As ReadAttributeBases, with the recorded provenance.
Result<AttributeBasesEntry> ReadAttributeBasesEntry(const std::string& path, const std::string& dataset);

// Sets the entry of `dataset` in the file at `path` (created if missing), keeping every other
// dataset's entry. The bases are validated first, and an existing file that cannot be parsed is
// left alone (error), so a typo elsewhere is never silently dropped. The file is rewritten in a
// canonical form (datasets sorted, comments not kept) through a temporary file and a rename, so
// a reader never sees half of it.
Status WriteAttributeBases(const std::string& path, const std::string& dataset,
                           const std::vector<std::string>& bases, const AttributeBasesProvenance& provenance);

// The five bases the paper proposed for `dataset` (from PaperAttributes(), the paper's table).
// The ImageNet variants use ImageNet's, as the official code does. Fashion-MNIST, which the
// paper does not use, gets atp's own defaults. NotFound for any other dataset.
Result<std::vector<std::string>> PaperAttributeBases(const std::string& dataset);
// The attributes the paper's search selected from those bases (one to three of them), with the
// same dataset rules as PaperAttributeBases. (Not named PaperSearchedAttributes: that is the
// row type of common/paper_attributes.h, and a function of the same name would hide it.)
Result<std::vector<std::string>> PaperSearchedAttributeWords(const std::string& dataset);

// What an attribute-search job uses: the paper's bases when `bases_file` is empty, else the
// file's entry for `dataset`.
Result<std::vector<std::string>> ResolveAttributeBases(const std::string& bases_file, const std::string& dataset);

}  // namespace atp
