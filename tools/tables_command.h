// `atp tables --db R --table NAME [--sweep S] [--where key=value ...] [--format md|latex|csv]
// [--paper] [--svg FILE]`: print one of the paper's tables regenerated from the results
// database (tools/reporting/paper_tables.h). Exit 0 on success, 2 on bad input or an unreadable
// database.
#pragma once

namespace atp {

int RunTablesCommand(int argc, char** argv);

}  // namespace atp
