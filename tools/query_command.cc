#include "tools/query_command.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <variant>

#include "coordinator/store/store_reader.h"
#include "tools/command_line.h"
#include "tools/reporting/results_query.h"

namespace atp {
namespace {

const char* const kUsage =
    "atp query --db RESULTS.db [--sweep ID] [--where KEY=VALUE ...] [--group-by K1,K2]\n"
    "          [--metric NAME] [--format table|csv|json]";

struct Flags {
  std::string db;
  std::string format = "table";
  QueryOptions query;
};

// The flags, or the exit code when the command ends here (--help, a usage error).
std::variant<Flags, int> ParseFlags(int argc, char** argv) {
  Flags f;
  auto app = MakeCommand("atp query", kUsage, "Filters the results of a sweep and aggregates metrics over seeds.");
  app->footer(
      "KEY: stage, method, dataset, seed, state, or a job parameter (n_ctx, atprompt, ...).\n"
      "Without --group-by, jobs are grouped by configuration (every parameter but the seed).");
  app->add_option("--db", f.db, "the results database (read-only)")->type_name("RESULTS.db")->required();
  AddSweepIdFlag(app.get(), &f.query.sweep_id, "every sweep in the database");
  AddRepeatableFlag(app.get(), "--where", "KEY=VALUE", "keep jobs whose KEY has this VALUE (repeatable)",
                    [&f](const std::string& text) {
                      Result<ResultFilter> filter = ParseResultFilter(text);
                      if (!filter.ok()) throw CLI::ValidationError(filter.status().message());
                      f.query.filters.push_back(*filter);
                    });
  app->add_option_function<std::string>(
         "--group-by",
         [&f](const std::string& list) {
           f.query.group_by.clear();
           size_t start = 0;
           while (start <= list.size()) {
             const size_t comma = std::min(list.find(',', start), list.size());
             const std::string key = list.substr(start, comma - start);
             if (Status checked = CheckResultKey(key); !checked.ok()) throw CLI::ValidationError(checked.message());
             f.query.group_by.push_back(key);
             start = comma + 1;
           }
         },
         "group by these keys instead of by configuration")
      ->type_name("K1,K2");
  app->add_option("--metric", f.query.metric, "the metric to aggregate")->type_name("NAME");
  app->add_option("--format", f.format, "output format (default table)")
      ->type_name("table|csv|json")
      ->check(CLI::IsMember({"table", "csv", "json"}));
  if (auto code = ParseCommandLine(app.get(), argc, argv)) return *code;
  return f;
}

}  // namespace

int RunQueryCommand(int argc, char** argv) {
  auto parsed = ParseFlags(argc, argv);
  if (auto* code = std::get_if<int>(&parsed)) return *code;
  Flags* flags = &std::get<Flags>(parsed);
  auto reader = StoreReader::Open(flags->db);
  if (!reader.ok()) {
    std::fprintf(stderr, "atp query: %s\n", reader.status().message().c_str());
    return 2;
  }
  auto result = RunResultsQuery((*reader)->handle(), flags->query);
  if (!result.ok()) {
    std::fprintf(stderr, "atp query: %s\n", result.status().message().c_str());
    return 2;
  }
  auto text = FormatQueryResult(*result, flags->format);
  if (!text.ok()) {
    std::fprintf(stderr, "atp query: %s\n", text.status().message().c_str());
    return 2;
  }
  std::fputs(text->c_str(), stdout);
  return 0;
}

}  // namespace atp
