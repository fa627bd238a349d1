#!/usr/bin/env bash
# Configures and builds atp into build/ (override with ATP_BUILD_DIR). Extra CMake flags may
# be passed, e.g. -DCMAKE_PREFIX_PATH=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
# ATP_BUILD_TARGETS="atp atp-sweep" builds only those targets (the demo needs no tests).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${ATP_BUILD_DIR:-$ROOT/build}
mkdir -p "$BUILD"
# A new build tree uses Ninja: it compiles a target's units while the libraries it links are
# still being built, where Make waits for each library in turn (an existing tree keeps the
# generator it was made with).
generator=()
if [ ! -f "$BUILD/CMakeCache.txt" ] && command -v ninja > /dev/null; then generator=(-G Ninja); fi
cmake -S "$ROOT" -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" > "$BUILD/configure.log" 2>&1 ||
  { cat "$BUILD/configure.log"; exit 1; }
targets=()
for target in ${ATP_BUILD_TARGETS:-}; do targets+=(--target "$target"); done
cmake --build "$BUILD" -j "$(nproc)" "${targets[@]}"
