#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the embedded default sweep under
# mpirun, then prints its status. Each step is skipped when already done; rerunning resumes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${ATP_BUILD_DIR:-$ROOT/build}
RUNS=${ATP_RUNS_DIR:-$ROOT/runs}
bash "$ROOT/scripts/install_deps.sh"
bash "$ROOT/scripts/build.sh"
mkdir -p "$RUNS"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
RANKS=${ATP_RANKS:-4}
echo "== mpirun -np $RANKS atp-sweep experiments/sleep.toml --db $RUNS/sleep.db"
mpirun --oversubscribe -np "$RANKS" "$BUILD/tools/atp-sweep" "$ROOT/experiments/sleep.toml" --db "$RUNS/sleep.db"
echo
"$BUILD/tools/atp" status --db "$RUNS/sleep.db"
