#include "tools/tables_command.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <variant>

#include "common/atomic_file.h"
#include "coordinator/store/store_reader.h"
#include "tools/command_line.h"
#include "tools/reporting/paper_tables.h"

namespace atp {
namespace {

struct Flags {
  std::string db, format = "md", svg;
  bool paper = false;
  TableOptions table;
};

// The flags, or the exit code when the command ends here (--help, a usage error).
std::variant<Flags, int> ParseFlags(int argc, char** argv) {
  Flags f;
  std::string names;
  for (const auto& n : PaperTableNames()) names += (names.empty() ? "" : ", ") + n;
  auto app = MakeCommand("atp tables",
                         "atp tables --db RESULTS.db --table NAME [--sweep ID] [--where KEY=VALUE ...]\n"
                         "           [--format md|latex|csv] [--paper] [--svg FILE]",
                         "Regenerates one of the paper's tables (or Figure 5) from a results database.");
  app->footer("NAME: " + names);
  app->add_option("--db", f.db, "the results database (read-only)")->type_name("RESULTS.db")->required();
  app->add_option("--table", f.table.name, "which table")->type_name("NAME")->required();
  AddSweepIdFlag(app.get(), &f.table.sweep_id, "every sweep in the database");
  AddRepeatableFlag(app.get(), "--where", "KEY=VALUE", "keep jobs whose KEY has this VALUE (repeatable)",
                    [&f](const std::string& text) {
                      Result<ResultFilter> filter = ParseResultFilter(text);
                      if (!filter.ok()) throw CLI::ValidationError(filter.status().message());
                      f.table.filters.push_back(*filter);
                    });
  app->add_option("--format", f.format, "output format (default md)")
      ->type_name("md|latex|csv")
      ->check(CLI::IsMember({"md", "latex", "csv"}));
  app->add_flag("--paper", f.paper, "the published figure and our difference beside each cell");
  app->add_option("--svg", f.svg, "also write the soft-token-length plot")->type_name("FILE");
  if (auto code = ParseCommandLine(app.get(), argc, argv)) return *code;
  return f;
}

}  // namespace

int RunTablesCommand(int argc, char** argv) {
  auto parsed = ParseFlags(argc, argv);
  if (auto* code = std::get_if<int>(&parsed)) return *code;
  Flags* flags = &std::get<Flags>(parsed);
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
