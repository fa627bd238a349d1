// `atp query --db R [--sweep S] [--where key=value ...] [--group-by k1,k2] [--metric NAME]
// [--format table|csv|json]`: filter the results database and aggregate each metric over
// seeds (tools/reporting/results_query.h). Exit 0 on success, 2 on bad input or an unreadable
// database.
#pragma once

namespace atp {

int RunQueryCommand(int argc, char** argv);

}  // namespace atp
