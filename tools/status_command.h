// `atp status --db R [--sweep ID] [--json]` summarises a sweep during or after a run, and
// `atp serve --db R [--http [HOST:]PORT]` serves the status page for a database read-only.
#pragma once

namespace atp {

int RunStatusCommand(int argc, char** argv);
int RunServeCommand(int argc, char** argv);

}  // namespace atp
