// `atp status --db R [--sweep ID] [--json]` summarises a sweep during or after a run, and
// `atp serve --db R [--http [HOST:]PORT]` serves the status page for a database read-only.
#pragma once

#include <string>

#include "coordinator/status_server.h"

namespace atp {

int RunStatusCommand(int argc, char** argv);

// The status server's API over a results database: /summary, /sweeps, /jobs, /metrics and
// /tables?table=NAME. It opens its own read-only connection on first use, on the server thread.
StatusHandler MakeDatabaseStatusHandler(const std::string& db_path);
int RunServeCommand(int argc, char** argv);

}  // namespace atp
