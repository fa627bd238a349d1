#include "tools/query_command.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/flag_value.h"
#include "coordinator/store/store_reader.h"
#include "tools/reporting/results_query.h"

namespace atp {
namespace {

const char* const kUsage =
    "usage: atp query --db RESULTS.db [--sweep ID] [--where KEY=VALUE ...] [--group-by K1,K2]\n"
    "                 [--metric NAME] [--format table|csv|json]\n"
    "  KEY: stage, method, dataset, seed, state, or a job parameter (n_ctx, atprompt, ...).\n"
    "  Without --group-by, jobs are grouped by configuration (every parameter but the seed).";

struct Flags {
  std::string db;
  std::string format = "table";
  QueryOptions query;
};

Result<int64_t> ParseSweepId(const std::string& text) {
  Result<int64_t> id = ParseIntFlag("--sweep", text, 1);
  if (!id.ok()) return InvalidArgument(id.status().message() + " (a sweep id; see `atp status`)");
  return id;
}

Result<Flags> ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--db" && has_value) {
      f.db = argv[++i];
    } else if (arg == "--sweep" && has_value) {
      ATP_ASSIGN_OR_RETURN(f.query.sweep_id, ParseSweepId(argv[++i]));
    } else if (arg == "--where" && has_value) {
      ATP_ASSIGN_OR_RETURN(ResultFilter filter, ParseResultFilter(argv[++i]));
      f.query.filters.push_back(filter);
    } else if (arg == "--group-by" && has_value) {
      std::string list = argv[++i];
      size_t start = 0;
      while (start <= list.size()) {
        const size_t comma = std::min(list.find(',', start), list.size());
        const std::string key = list.substr(start, comma - start);
        ATP_RETURN_IF_ERROR(CheckResultKey(key));
        f.query.group_by.push_back(key);
        start = comma + 1;
      }
    } else if (arg == "--metric" && has_value) {
      f.query.metric = argv[++i];
    } else if (arg == "--format" && has_value) {
      f.format = argv[++i];
      if (f.format != "table" && f.format != "csv" && f.format != "json")
        return InvalidArgument("unknown format '" + f.format + "': use table, csv or json");
    } else {
      return InvalidArgument("unknown or incomplete option '" + arg + "'");
    }
  }
  if (f.db.empty()) return InvalidArgument("--db RESULTS.db is required");
  return f;
}

}  // namespace

int RunQueryCommand(int argc, char** argv) {
  if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::printf("%s\n", kUsage);
    return 0;
  }
  auto flags = ParseFlags(argc, argv);
  if (!flags.ok()) {
    std::fprintf(stderr, "atp query: %s\n%s\n", flags.status().message().c_str(), kUsage);
    return 2;
  }
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
