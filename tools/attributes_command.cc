#include "tools/attributes_command.h"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/attribute_bases.h"
#include "common/dataset_catalog.h"
#include "common/flag_value.h"
#include "common/json.h"
#include "tools/chat_client.h"
#include "tools/command_line.h"
#include "worker/data/dataset.h"

namespace atp {
namespace {

constexpr int kDefaultMaxClasses = 64;
constexpr int kDefaultRetries = 2;
constexpr double kDefaultTemperature = 0.7;
constexpr size_t kQuotedAnswerLimit = 2000;

int Fail(const Status& status) {
  std::fprintf(stderr, "atp attributes: %s\n", status.message().c_str());
  return 1;
}

std::string Join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : ", ") + w;
  return out;
}

// ---- list -------------------------------------------------------------------------------

int RunList(const CLI::App& command, const std::string& dataset) {
  std::vector<std::string> datasets;
  if (!dataset.empty()) {
    if (FindDataset(dataset) == nullptr) {
      return ReportUsageError(command, "unknown dataset '" + dataset + "'; known: " + DatasetNamesList());
    }
    datasets.push_back(dataset);
  } else {
    for (const auto& d : AllDatasets()) datasets.push_back(d.name);
  }
  std::printf("%-16s %-56s %s\n", "dataset", "bases (the five candidates)", "selected by the paper's search");
  for (const auto& name : datasets) {
    auto bases = PaperAttributeBases(name);
    auto searched = PaperSearchedAttributeWords(name);
    if (!bases.ok() || !searched.ok()) {
      std::printf("%-16s (none in the paper; make some with `atp attributes suggest`)\n", name.c_str());
      continue;
    }
    const DatasetInfo* info = FindDataset(name);
    std::string note;
    if (name == "fashion_mnist") note = "   (atp's defaults; not in the paper)";
    else if (info != nullptr && info->test_only) note = "   (ImageNet's, as the official code uses)";
    std::printf("%-16s %-56s %s%s\n", name.c_str(), Join(*bases).c_str(), Join(*searched).c_str(), note.c_str());
  }
  return 0;
}

// ---- suggest ----------------------------------------------------------------------------

// The class names of a dataset by label, read from its split under the data root. The
// evaluation-only ImageNet variants have only a test split.
Result<std::vector<std::string>> ClassNamesFromDataRoot(const std::string& root, const std::string& dataset) {
  ATP_ASSIGN_OR_RETURN(data::DatasetSplits splits, data::ReadDataset(root, dataset));
  std::vector<std::string> by_label = data::ClassNamesByLabel(splits.train);
  if (by_label.empty()) by_label = data::ClassNamesByLabel(splits.test);
  std::vector<std::string> names;
  for (auto& n : by_label) {
    if (!n.empty()) names.push_back(std::move(n));
  }
  if (names.empty()) return NotFound("no class names in " + root + "/" + splits.split_file);
  return names;
}

// One class name per line; blank lines and lines starting with '#' are skipped.
Result<std::vector<std::string>> ClassNamesFromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("cannot read class list '" + path + "': " + std::strerror(errno));
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    const size_t b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#') continue;
    const size_t e = line.find_last_not_of(" \t\r");
    names.push_back(line.substr(b, e - b + 1));
  }
  if (names.empty()) return InvalidArgument("class list '" + path + "' names no classes (one name per line)");
  return names;
}

// '_' -> ' ' as every trainer does before a name enters a prompt; repeats dropped, order kept.
std::vector<std::string> PromptNames(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (std::string n : names) {
    for (char& c : n) {
      if (c == '_') c = ' ';
    }
    if (seen.insert(n).second) out.push_back(n);
  }
  return out;
}

// At most `limit` names spread evenly over the label order (name i*C/N for i < N), so the
// question covers the whole dataset and the same data gives the same question. The official
// gpt_query.py used a hand-picked subset of about this size.
std::vector<std::string> EvenSubset(const std::vector<std::string>& names, size_t limit) {
  if (names.size() <= limit) return names;
  std::vector<std::string> out;
  for (size_t i = 0; i < limit; ++i) out.push_back(names[i * names.size() / limit]);
  return out;
}

// A Python list literal of the names, as str(list) prints it: the official prompt pastes
// the list itself into the text.
std::string PythonList(const std::vector<std::string>& names) {
  std::string out = "[";
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& s = names[i];
    const char quote = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
    out += (i ? ", " : "");
    out += quote;
    for (unsigned char c : s) {
      if (c == '\\' || c == static_cast<unsigned char>(quote)) {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\t') {
        out += "\\t";
      } else if (c < 0x20 || c == 0x7f) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\x%02x", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
    }
    out += quote;
  }
  return out + "]";
}

// Call 1 of gpt_query.py, word for word.
std::string DescriptionPrompt(const std::vector<std::string>& names) {
  return "Let's think step by step. Please give me a detailed description of the following categories in "
         "one sentence (including shape, color, characteristics, habits, functions, etc.): " +
         PythonList(names);
}

// Call 2 of gpt_query.py, with our own format instructions in place of LangChain's Pydantic
// ones (same field, same constraints).
std::string SummaryPrompt(const std::string& descriptions) {
  return "Given these visual descriptions: " + descriptions +
         ". Please summarize five general and independent attributes in one noun,\n"
         "\n"
         "Format: answer with one JSON object and nothing else. It has exactly one key, "
         "\"COMMON_ATTRIBUTES\": a list of five strings, the characteristics the categories have in "
         "common. Each string MUST be one single lowercase English word (letters a-z only: no spaces, "
         "hyphens, digits or punctuation), and the five words must all be different. The form is:\n"
         "{\"COMMON_ATTRIBUTES\": [\"<word 1>\", \"<word 2>\", \"<word 3>\", \"<word 4>\", \"<word 5>\"]}";
}

std::string CorrectionPrompt(const std::string& problem) {
  return "That answer cannot be used: " + problem +
         ". Answer again with only the JSON object {\"COMMON_ATTRIBUTES\": [five different words]}, "
         "each word one single lowercase English noun of letters a-z, and no other text.";
}

// The five words of an answer to SummaryPrompt. Models often wrap JSON in ```json fences or
// add a sentence around it, so the object is taken from inside a fence if there is one, and
// from the first '{' to the last '}'. Words are trimmed and lowercased, then validated.
Result<std::vector<std::string>> ParseAttributeAnswer(const std::string& answer) {
  std::string text = answer;
  const size_t fence = text.find("```");
  if (fence != std::string::npos) {
    const size_t body = text.find('\n', fence);
    const size_t close = body == std::string::npos ? std::string::npos : text.find("```", body);
    if (close != std::string::npos) text = text.substr(body + 1, close - body - 1);
  }
  const size_t open = text.find('{');
  const size_t close = text.rfind('}');
  if (open == std::string::npos || close == std::string::npos || close < open) {
    return InvalidArgument("it contains no JSON object");
  }
  const Json json = Json::parse(text.substr(open, close - open + 1), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return InvalidArgument("its JSON object does not parse");
  const Json* list = nullptr;
  for (auto it = json.begin(); it != json.end(); ++it) {
    std::string key = it.key();
    for (char& c : key) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (key == "COMMON_ATTRIBUTES") list = &it.value();
  }
  if (list == nullptr) return InvalidArgument("its JSON object has no key \"COMMON_ATTRIBUTES\"");
  if (!list->is_array()) return InvalidArgument("\"COMMON_ATTRIBUTES\" is not a list of strings");
  std::vector<std::string> words;
  for (size_t i = 0; i < list->size(); ++i) {
    if (!(*list)[i].is_string()) {
      return InvalidArgument("entry " + std::to_string(i + 1) + " of \"COMMON_ATTRIBUTES\" is not a string");
    }
    std::string w = (*list)[i].get<std::string>();
    const size_t b = w.find_first_not_of(" \t\r\n");
    const size_t e = w.find_last_not_of(" \t\r\n");
    w = b == std::string::npos ? "" : w.substr(b, e - b + 1);
    for (char& c : w) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    words.push_back(w);
  }
  ATP_RETURN_IF_ERROR(ValidateAttributeWords(words));
  return words;
}

std::string UtcNow() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string QuoteAnswer(const std::string& answer) {
  if (answer.size() <= kQuotedAnswerLimit) return "\"" + answer + "\"";
  return "\"" + answer.substr(0, kQuotedAnswerLimit) + "\" ... (" + std::to_string(answer.size()) + " characters)";
}

std::string FormatNumber(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

struct SuggestFlags {
  std::string dataset, data_root, classes_file, out_path = "attribute_bases.toml";
  int64_t max_classes = kDefaultMaxClasses;
  int64_t retries = kDefaultRetries;
  double temperature = kDefaultTemperature;
};

int RunSuggest(const CLI::App& command, const SuggestFlags& f) {
  const std::string& dataset = f.dataset;
  if (FindDataset(dataset) == nullptr) {
    return ReportUsageError(command, "unknown dataset '" + dataset + "'; known: " + DatasetNamesList());
  }
  if (f.data_root.empty() == f.classes_file.empty()) {
    return ReportUsageError(command, "suggest needs exactly one of --data-root DIR and --classes FILE");
  }
  const int64_t max_classes = f.max_classes;
  const int64_t retries = f.retries;
  const double temperature = f.temperature;
  const std::string& out_path = f.out_path;

  auto endpoint = ChatEndpoint::FromEnvironment();
  if (!endpoint.ok()) return Fail(endpoint.status());

  auto raw_names = !f.data_root.empty() ? ClassNamesFromDataRoot(f.data_root, dataset)
                                        : ClassNamesFromFile(f.classes_file);
  if (!raw_names.ok()) return Fail(raw_names.status());
  const std::vector<std::string> all_names = PromptNames(*raw_names);
  const std::vector<std::string> names = EvenSubset(all_names, static_cast<size_t>(max_classes));
  if (names.size() < all_names.size()) {
    std::fprintf(stderr, "%s: naming %zu of its %zu classes, spread evenly by label (--max-classes)\n",
                 dataset.c_str(), names.size(), all_names.size());
  }

  std::fprintf(stderr, "%s: asking %s to describe %zu classes (call 1 of 2)\n", dataset.c_str(),
               endpoint->Describe().c_str(), names.size());
  auto descriptions = ChatComplete(*endpoint, {{"user", DescriptionPrompt(names)}}, temperature);
  if (!descriptions.ok()) return Fail(descriptions.status().WithContext("call 1 (class descriptions)"));

  std::fprintf(stderr, "%s: asking for five common attributes (call 2 of 2)\n", dataset.c_str());
  std::vector<ChatMessage> conversation = {{"user", SummaryPrompt(*descriptions)}};
  std::vector<std::string> words;
  for (int64_t attempt = 0;; ++attempt) {
    auto answer = ChatComplete(*endpoint, conversation, temperature);
    if (!answer.ok()) return Fail(answer.status().WithContext("call 2 (attribute summary)"));
    auto parsed = ParseAttributeAnswer(*answer);
    if (parsed.ok()) {
      words = std::move(parsed).value();
      break;
    }
    if (attempt >= retries) {
      return Fail(InvalidArgument(
          "the model's answer to call 2 was unusable " +
          (retries == 0 ? std::string("and --retries is 0") : "after " + std::to_string(retries) + " retries") +
          ": " + parsed.status().message() + "; its last answer was " + QuoteAnswer(*answer) +
          ". Nothing was written; run again, raise --retries, or write the bases yourself (docs/attributes.md)"));
    }
    std::fprintf(stderr, "%s: unusable answer (%s); asking again (retry %lld of %lld)\n", dataset.c_str(),
                 parsed.status().message().c_str(), static_cast<long long>(attempt + 1),
                 static_cast<long long>(retries));
    conversation.push_back({"assistant", *answer});
    conversation.push_back({"user", CorrectionPrompt(parsed.status().message())});
  }

  AttributeBasesProvenance provenance;
  provenance.source = "llm";
  provenance.model = endpoint->model;
  provenance.created = UtcNow();
  Status written = WriteAttributeBases(out_path, dataset, words, provenance);
  if (!written.ok()) return Fail(written);
  std::error_code ec;
  std::string shown = std::filesystem::absolute(out_path, ec).lexically_normal().string();
  if (ec) shown = out_path;
  std::printf("%s: %s\n", dataset.c_str(), Join(words).c_str());
  std::printf("wrote [%s] to %s (source llm, model %s, %s)\n", dataset.c_str(), shown.c_str(),
              provenance.model.c_str(), provenance.created.c_str());
  std::printf("to search over these bases, set on the attribute_search stage:\n  bases_file = \"%s\"\n",
              shown.c_str());
  return 0;
}

}  // namespace

int RunAttributesCommand(int argc, char** argv) {
  auto app = MakeCommand("atp attributes", "atp attributes COMMAND [options]",
                         "Lists the paper's attribute bases, or asks a language model for new ones.");
  app->require_subcommand(1);
  std::string list_dataset;
  CLI::App* list = AddSubcommand(app.get(), "list", "print the paper's attribute bases per dataset",
                                 "atp attributes list [--dataset D]",
                                 "Prints the paper's five attribute bases per dataset and the ones its search selected.");
  list->add_option("--dataset", list_dataset, "only this dataset")->type_name("D");

  SuggestFlags suggest_flags;
  CLI::App* suggest = AddSubcommand(
      app.get(), "suggest", "ask a language model for five attribute bases of a dataset's classes",
      "atp attributes suggest --dataset D (--data-root DIR | --classes FILE) [--out FILE]\n"
      "                       [--max-classes N] [--retries N] [--temperature T]",
      "Asks a language model for five attribute bases of D's classes (from the dataset under\n"
      "DIR, or FILE with one class name per line), as the paper's gpt_query.py does, and\n"
      "writes them to FILE's [D] entry.");
  suggest->footer(
      "The endpoint comes from ATP_LLM_BASE_URL (or OPENAI_BASE_URL, default\n"
      "https://api.openai.com/v1), ATP_LLM_MODEL (default gpt-4o), ATP_LLM_API_KEY (or\n"
      "OPENAI_API_KEY) and ATP_LLM_TIMEOUT_S; see docs/attributes.md");
  suggest->add_option("--dataset", suggest_flags.dataset, "the dataset")->type_name("D")->required();
  suggest->add_option("--data-root", suggest_flags.data_root, "read the class names from the dataset under DIR")
      ->type_name("DIR");
  suggest->add_option("--classes", suggest_flags.classes_file, "read the class names from FILE, one per line")
      ->type_name("FILE");
  suggest->add_option("--out", suggest_flags.out_path, "where the bases go (default ./attribute_bases.toml)")
      ->type_name("FILE");
  AddIntFlag(suggest, "--max-classes", "N",
             "classes named in the question (default " + std::to_string(kDefaultMaxClasses) +
                 ", spread evenly by label)",
             &suggest_flags.max_classes, 1);
  AddIntFlag(suggest, "--retries", "N",
             "how often to ask again after an unusable answer (default " + std::to_string(kDefaultRetries) + ")",
             &suggest_flags.retries, 0, 20);
  AddNumberFlag(suggest, "--temperature", "T",
                "sampling temperature, from 0 to 2 (default " + FormatNumber(kDefaultTemperature) + ")",
                &suggest_flags.temperature, 0, /*minimum_allowed=*/true, 2);
  if (auto code = ParseCommandLine(app.get(), argc, argv)) return *code;
  if (list->parsed()) return RunList(*list, list_dataset);
  return RunSuggest(*suggest, suggest_flags);
}

}  // namespace atp
