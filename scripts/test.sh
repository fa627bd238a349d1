#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every suite (unit, MPI under
# mpirun, and the end-to-end system tests) through CTest.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${ATP_BUILD_DIR:-$ROOT/build}
bash "$ROOT/scripts/install_deps.sh"
bash "$ROOT/scripts/build.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$BUILD"
ctest --output-on-failure --timeout 1200 "$@"
