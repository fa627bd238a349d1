#include "tools/tables_command.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/atomic_file.h"
#include "common/flag_value.h"
#include "coordinator/store/store_reader.h"
#include "tools/reporting/paper_tables.h"

namespace atp {
namespace {

std::string Usage() {
  std::string names;
  for (const auto& n : PaperTableNames()) names += (names.empty() ? "" : ", ") + n;
  return "usage: atp tables --db RESULTS.db --table NAME [--sweep ID] [--where KEY=VALUE ...]\n"
         "                  [--format md|latex|csv] [--paper] [--svg FILE]\n"
         "  NAME: " + names + "\n"
         "  --paper: the published figure and our difference beside each cell.\n"
         "  --svg FILE: also write the soft-token-length plot.";
}

struct Flags {
  std::string db, format = "md", svg;
  bool paper = false;
  TableOptions table;
};

Result<Flags> ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--db" && has_value) {
      f.db = argv[++i];
    } else if (arg == "--table" && has_value) {
      f.table.name = argv[++i];
    } else if (arg == "--sweep" && has_value) {
      Result<int64_t> id = ParseIntFlag("--sweep", argv[++i], 1);
      if (!id.ok()) return InvalidArgument(id.status().message() + " (a sweep id; see `atp status`)");
      f.table.sweep_id = *id;
    } else if (arg == "--where" && has_value) {
      ATP_ASSIGN_OR_RETURN(ResultFilter filter, ParseResultFilter(argv[++i]));
      f.table.filters.push_back(filter);
    } else if (arg == "--format" && has_value) {
      f.format = argv[++i];
      if (f.format != "md" && f.format != "latex" && f.format != "csv")
        return InvalidArgument("unknown format '" + f.format + "': use md, latex or csv");
    } else if (arg == "--paper") {
      f.paper = true;
    } else if (arg == "--svg" && has_value) {
      f.svg = argv[++i];
    } else {
      return InvalidArgument("unknown or incomplete option '" + arg + "'");
    }
  }
  if (f.db.empty()) return InvalidArgument("--db RESULTS.db is required");
  if (f.table.name.empty()) return InvalidArgument("--table NAME is required");
  return f;
}

}  // namespace

int RunTablesCommand(int argc, char** argv) {
  if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::printf("%s\n", Usage().c_str());
    return 0;
  }
  auto flags = ParseFlags(argc, argv);
  if (!flags.ok()) {
    std::fprintf(stderr, "atp tables: %s\n%s\n", flags.status().message().c_str(), Usage().c_str());
    return 2;
  }
  auto reader = StoreReader::Open(flags->db);
  if (!reader.ok()) {
    std::fprintf(stderr, "atp tables: %s\n", reader.status().message().c_str());
    return 2;
  }
  auto table = BuildPaperTable((*reader)->handle(), flags->table);
  if (!table.ok()) {
    std::fprintf(stderr, "atp tables: %s\n", table.status().message().c_str());
    return 2;
  }
  std::string svg;
  if (!flags->svg.empty()) {
    // Checked before printing, so a wrong --svg leaves no half-finished output behind.
    auto drawn = SoftTokenLengthSvg(*table, flags->paper);
    if (!drawn.ok()) {
      std::fprintf(stderr, "atp tables: %s\n", drawn.status().message().c_str());
      return 2;
    }
    svg = std::move(drawn).value();
  }
  auto text = FormatPaperTable(*table, flags->format, flags->paper);
  if (!text.ok()) {
    std::fprintf(stderr, "atp tables: %s\n", text.status().message().c_str());
    return 2;
  }
  std::fputs(text->c_str(), stdout);
  if (!svg.empty()) {
    Status written = WriteFileAtomically(flags->svg, svg);
    if (!written.ok()) {
      std::fprintf(stderr, "atp tables: cannot write the plot: %s\n", written.message().c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace atp
