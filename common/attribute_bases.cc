#include "common/attribute_bases.h"


#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "common/atomic_file.h"
#include "common/dataset_catalog.h"
// The paper's table of bases and searched attributes is kept in one place; this file only reads it.
#include "common/paper_attributes.h"
#include "common/toml_type_name.h"

namespace atp {
namespace {

// Fashion-MNIST is not in the paper. These are atp's own bases for its clothing classes (what
// tells a shirt from a coat or a sandal from a boot), and "searched" is what the demo's search
// uses when it runs no search of its own.
const std::vector<std::string> kFashionMnistBases = {"shape", "length", "sleeve", "texture", "fit"};
const std::vector<std::string> kFashionMnistSearched = {"shape", "length"};

const std::array<const char*, 3> kValidSources = {"paper", "manual", "llm"};

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::vector<std::string> SplitCommaList(const char* text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const size_t b = item.find_first_not_of(' ');
    const size_t e = item.find_last_not_of(' ');
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

std::string JoinList(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : ", ") + w;
  return out;
}

// ImageNet-V2/-Sketch/-A/-R are evaluated with the prompts learned on ImageNet, so the official
// train.py gives them ImageNet's attributes.
std::string PaperDatasetFor(const std::string& dataset) {
  const DatasetInfo* info = FindDataset(dataset);
  if (info != nullptr && info->test_only && dataset.rfind("imagenet", 0) == 0) return "imagenet";
  return dataset;
}

Result<std::vector<std::string>> PaperColumn(const std::string& dataset, bool searched) {
  if (dataset == "fashion_mnist") return searched ? kFashionMnistSearched : kFashionMnistBases;
  const std::string paper_name = PaperDatasetFor(dataset);
  for (const auto& row : PaperAttributes()) {
    if (paper_name == row.dataset) return SplitCommaList(searched ? row.searched : row.candidates);
  }
  std::string known;
  for (const auto& row : PaperAttributes()) known += std::string(known.empty() ? "" : ", ") + row.dataset;
  return NotFound("the paper has no attribute bases for dataset " + Quote(dataset) +
                  " (it has them for " + known +
                  ", the ImageNet variants and atp's fashion_mnist); write a bases file with "
                  "`atp attributes suggest --dataset " + dataset + "`");
}

bool IsBareKey(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_')) {
      return false;
    }
  }
  return true;
}


// Every entry of one file, by dataset, structurally checked (types, known keys) but with the
// words not validated: a write must keep other datasets' entries whatever they hold.
struct ParsedFile {
  std::map<std::string, AttributeBasesEntry> entries;
  std::map<std::string, int> bases_lines;  // dataset -> line of its bases key
};

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      return NotFound("attribute bases file " + Quote(path) +
                      " does not exist (write one with `atp attributes suggest --out " + path + "`)");
    }
    return IoError("cannot read attribute bases file " + Quote(path) + ": " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Result<ParsedFile> ParseText(const std::string& text, const std::string& path) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& error) {
    return InvalidArgument(path + ":" + std::to_string(error.source().begin.line) + ":" +
                           std::to_string(error.source().begin.column) +
                           ": TOML syntax error: " + std::string(error.description()));
  }
  ParsedFile parsed;
  for (const auto& [key, node] : root) {
    const std::string dataset(key.str());
    const std::string at = path + ":" + std::to_string(key.source().begin.line) + ": ";
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      return InvalidArgument(at + "key " + Quote(dataset) + " is " + TomlTypeName(node) +
                             "; every top-level entry must be a dataset's table, e.g. [" + dataset +
                             "] with bases = [...]");
    }
    AttributeBasesEntry entry;
    bool has_bases = false;
    int bases_line = 0;
    for (const auto& [field_key, field] : *table) {
      const std::string field_name(field_key.str());
      const std::string field_at = path + ":" + std::to_string(field_key.source().begin.line) + ": key " +
                                   Quote(dataset + "." + field_name) + ": ";
      if (field_name == "bases") {
        const toml::array* list = field.as_array();
        if (list == nullptr) {
          return InvalidArgument(field_at + "expected a list of five words, got " + TomlTypeName(field));
        }
        for (size_t i = 0; i < list->size(); ++i) {
          const auto* word = (*list)[i].as_string();
          if (word == nullptr) {
            return InvalidArgument(field_at + "entry " + std::to_string(i + 1) + " is " +
                                   TomlTypeName((*list)[i]) + ", expected a word in quotes");
          }
          entry.bases.push_back(word->get());
        }
        has_bases = true;
        bases_line = static_cast<int>(field_key.source().begin.line);
      } else if (field_name == "source" || field_name == "model" || field_name == "created") {
        const auto* value = field.as_string();
        if (value == nullptr) {
          return InvalidArgument(field_at + "expected a string, got " + TomlTypeName(field));
        }
        if (field_name == "source") {
          const bool known = std::any_of(kValidSources.begin(), kValidSources.end(),
                                         [&](const char* s) { return value->get() == s; });
          if (!known) {
            return InvalidArgument(field_at + Quote(value->get()) + " is not a source; use \"paper\", \"manual\" or \"llm\"");
          }
          entry.provenance.source = value->get();
        } else if (field_name == "model") {
          entry.provenance.model = value->get();
        } else {
          entry.provenance.created = value->get();
        }
      } else {
        return InvalidArgument(field_at + "unknown key; a dataset's table has bases, source, model and created");
      }
    }
    if (!has_bases) {
      return InvalidArgument(path + ":" + std::to_string(node.source().begin.line) + ": table " +
                             Quote(dataset) + " has no key 'bases' (the list of five attribute words)");
    }
    parsed.bases_lines[dataset] = bases_line;
    parsed.entries[dataset] = std::move(entry);
  }
  return parsed;
}

std::string TomlString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string Render(const ParsedFile& file) {
  std::string out =
      "# Attribute bases per dataset: the five candidate words ATPrompt's attribute search\n"
      "# chooses from. Written by `atp attributes`; see docs/attributes.md.\n";
  for (const auto& [dataset, entry] : file.entries) {
    out += "\n[" + dataset + "]\nbases = [";
    for (size_t i = 0; i < entry.bases.size(); ++i) out += (i ? ", " : "") + TomlString(entry.bases[i]);
    out += "]\n";
    const auto& p = entry.provenance;
    if (!p.source.empty()) out += "source = " + TomlString(p.source) + "\n";
    if (!p.model.empty()) out += "model = " + TomlString(p.model) + "\n";
    if (!p.created.empty()) out += "created = " + TomlString(p.created) + "\n";
  }
  return out;
}


}  // namespace

Status ValidateAttributeWords(const std::vector<std::string>& words) {
  if (words.size() != 5) {
    return InvalidArgument("expected exactly five attributes, got " + std::to_string(words.size()) +
                           (words.empty() ? "" : ": " + JoinList(words)));
  }
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    const std::string which = "attribute " + std::to_string(i + 1) + " (" + Quote(w) + ")";
    if (w.empty()) return InvalidArgument(which + " is empty");
    for (char c : w) {
      if (c >= 'a' && c <= 'z') continue;
      std::string why;
      if (c == ' ') {
        why = "is more than one word";
      } else if (c >= 'A' && c <= 'Z') {
        why = "has an uppercase letter";
      } else if (std::isprint(static_cast<unsigned char>(c))) {
        why = std::string("has the character ") + Quote(std::string(1, c));
      } else {
        char byte[8];
        std::snprintf(byte, sizeof(byte), "0x%02x", static_cast<unsigned char>(c));
        why = std::string("has the byte ") + byte;
      }
      return InvalidArgument(which + " " + why + "; each attribute must be one lowercase word of letters a-z");
    }
    for (size_t j = 0; j < i; ++j) {
      if (words[j] == w) {
        return InvalidArgument(which + " repeats attribute " + std::to_string(j + 1) +
                               "; the five attributes must be different");
      }
    }
  }
  return Status::Ok();
}

Result<AttributeBasesEntry> ReadAttributeBasesEntry(const std::string& path, const std::string& dataset) {
  ATP_ASSIGN_OR_RETURN(const std::string text, ReadWholeFile(path));
  ATP_ASSIGN_OR_RETURN(ParsedFile parsed, ParseText(text, path));
  auto it = parsed.entries.find(dataset);
  if (it == parsed.entries.end()) {
    std::string have;
    for (const auto& [name, entry] : parsed.entries) have += (have.empty() ? "" : ", ") + name;
    return NotFound("attribute bases file " + Quote(path) + " has no entry [" + dataset + "]" +
                    (have.empty() ? std::string(" (it has none)") : " (it has " + have + ")") +
                    "; add one with `atp attributes suggest --dataset " + dataset + " --out " + path + "`");
  }
  Status valid = ValidateAttributeWords(it->second.bases);
  if (!valid.ok()) {
    return InvalidArgument(path + ":" + std::to_string(parsed.bases_lines[dataset]) + ": key " +
                           Quote(dataset + ".bases") + ": " + valid.message());
  }
  return std::move(it->second);
}

Result<std::vector<std::string>> ReadAttributeBases(const std::string& path, const std::string& dataset) {
  ATP_ASSIGN_OR_RETURN(AttributeBasesEntry entry, ReadAttributeBasesEntry(path, dataset));
  return std::move(entry.bases);
}

Status WriteAttributeBases(const std::string& path, const std::string& dataset,
                           const std::vector<std::string>& bases, const AttributeBasesProvenance& provenance) {
  if (!IsBareKey(dataset)) {
    return InvalidArgument("dataset name " + Quote(dataset) + " must be lowercase letters, digits and '_'");
  }
  Status valid = ValidateAttributeWords(bases);
  if (!valid.ok()) return valid.WithContext("not writing bases for " + dataset);
  if (!provenance.source.empty() &&
      std::none_of(kValidSources.begin(), kValidSources.end(),
                   [&](const char* s) { return provenance.source == s; })) {
    return InvalidArgument("source " + Quote(provenance.source) + " is not \"paper\", \"manual\" or \"llm\"");
  }
  ParsedFile file;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    ATP_ASSIGN_OR_RETURN(const std::string text, ReadWholeFile(path));
    auto parsed = ParseText(text, path);
    if (!parsed.ok()) {
      return parsed.status().WithContext("not rewriting " + Quote(path) +
                                         " because it cannot be read back (fix it or choose another --out)");
    }
    file = std::move(parsed).value();
  }
  file.entries[dataset] = AttributeBasesEntry{bases, provenance};
  return WriteFileAtomically(path, Render(file));
}

Result<std::vector<std::string>> PaperAttributeBases(const std::string& dataset) {
  return PaperColumn(dataset, /*searched=*/false);
}

Result<std::vector<std::string>> PaperSearchedAttributeWords(const std::string& dataset) {
  return PaperColumn(dataset, /*searched=*/true);
}

Result<std::vector<std::string>> ResolveAttributeBases(const std::string& bases_file, const std::string& dataset) {
  if (bases_file.empty()) return PaperAttributeBases(dataset);
  return ReadAttributeBases(bases_file, dataset);
}

}  // namespace atp
