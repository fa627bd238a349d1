#!/usr/bin/env bash
# The main job: installs what is missing, builds, imports Fashion-MNIST, pretrains the tiny
# CLIP (on faded images: the dataset's own are a domain it never saw), runs the embedded
# default sweep (experiments/demo.toml) under mpirun, and prints its base-to-novel table and
# what ATPrompt changes seed by seed. Each step is skipped when already done; rerunning
# resumes the sweep.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${ATP_BUILD_DIR:-$ROOT/build}
RANKS=${ATP_RANKS:-4}
cd "$ROOT"   # the sweep's paths (data/, runs/) are relative to the repository root
started=$(date +%s)
bash scripts/install_deps.sh
ATP_BUILD_TARGETS="atp atp-sweep" bash scripts/build.sh   # the tests are built by scripts/test.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ATP="$BUILD/tools/atp"

if [ -f data/fashion_mnist/split_zhou_FashionMNIST.json ]; then
  echo "== data/fashion_mnist: already imported"
else
  echo "== atp data import-fashion-mnist --out data"
  "$ATP" data import-fashion-mnist --out data
fi
# One thread: float sums then run in one order whatever the machine's core count, so the
# tiny CLIP, and the README's table, come out the same on any machine with the same kernels.
PRETRAIN=(--data-root data --out runs/tiny_clip --view faded --max-train-per-class 1000 --threads 1)
echo "== atp pretrain ${PRETRAIN[*]}"
"$ATP" pretrain "${PRETRAIN[@]}"

echo "== mpirun -np $RANKS atp-sweep experiments/demo.toml --db runs/demo.db"
mpirun --oversubscribe -np "$RANKS" "$BUILD/tools/atp-sweep" experiments/demo.toml --db runs/demo.db
echo
"$ATP" status --db runs/demo.db
echo
"$ATP" tables --db runs/demo.db --sweep latest --table base2novel --where dataset=fashion_mnist
echo
# The closing summary: each +ATPrompt row against its baseline, paired seed by seed, with the
# 95% interval of the difference.
"$ATP" tables --db runs/demo.db --sweep latest --table atprompt-paired --where dataset=fashion_mnist
echo
echo "demo finished in $(( $(date +%s) - started )) s; results in runs/demo.db (atp query --db runs/demo.db)"
