// PaperTable: the paper's tables regenerated from the results database (`atp tables`):
// base-to-novel (Table 1), cross-dataset (Table 2), domain generalization (Table 4), the
// attribute search, and the ablations (soft-token length, Figure 5; class-token position,
// Table 5; attribute order, Table 7; manual versus searched attributes, Table 8), and what
// ATPrompt changes seed by seed (atprompt-paired). Every cell carries the seeds behind it,
// their spread and, optionally, the published figure. Built through a
// caller's read-only connection; not thread-safe. docs/results.md describes each table.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "tools/reporting/results_query.h"

namespace atp {

struct TableCell {
  std::optional<double> value;   // ours, absent when no done job contributes: never filled in
  int64_t seeds = 0;             // seeds behind the value (the fewest of its parts for a derived value)
  std::optional<double> spread;  // sample standard deviation over those seeds (2 seeds or more)
  std::optional<double> ci_low, ci_high;  // a 95% interval of the value (paired differences)
  bool is_difference = false;    // a difference: printed with its sign
  std::optional<double> paper;   // the published figure, when the paper prints one
  std::string text;              // text cells (searched attributes and weights) instead of a value
  std::string paper_text;
  bool is_text = false;
};

struct TableRow {
  std::vector<std::string> labels;        // one per PaperTable::label_columns
  std::vector<TableCell> cells;           // one per PaperTable::value_columns
  std::map<std::string, int64_t> not_done;  // jobs of the row not done, by state ("failed" -> 2)
};

struct PaperTable {
  std::string name;                        // "base2novel", ...
  std::string title;                       // "Table 1: base-to-novel generalization"
  std::vector<std::string> label_columns;  // "dataset", "method", ...
  std::vector<std::string> value_columns;  // "Base", "Novel", "HM", ...
  std::vector<TableRow> rows;
  std::vector<std::string> notes;          // how the figures are computed
  Json ToJson() const;                     // for the status server and scripts
};

struct TableOptions {
  std::string name;                        // one of PaperTableNames() or an alias ("table1")
  std::optional<int64_t> sweep_id;         // default: every job in the database
  std::vector<ResultFilter> filters;       // as for `atp query --where`
};

// The table names `atp tables --table` accepts, in the paper's order.
const std::vector<std::string>& PaperTableNames();

// InvalidArgument for an unknown table (the message lists the names); NotFound for an
// unknown sweep.
Result<PaperTable> BuildPaperTable(sqlite3* db, const TableOptions& options);

// "md", "latex" or "csv"; with `paper`, each value column is followed by the published figure
// and our difference from it. InvalidArgument for another format.
Result<std::string> FormatPaperTable(const PaperTable& table, const std::string& format, bool paper);

// The soft-token-length table as an SVG line plot (accuracy against soft-token length; Base,
// Novel and HM; the paper's figures dashed when `paper`). InvalidArgument for other tables.
Result<std::string> SoftTokenLengthSvg(const PaperTable& table, bool paper);

}  // namespace atp
