#!/usr/bin/env bash
# atp beside the official ATPrompt trainer on this machine, measured side by side in one run
# (official first, then atp), with the load average at each measurement:
#  1. the demo-sized CoOp job (experiments/demo.toml's vanilla CoOp job: tiny CLIP, Fashion-MNIST
#     base-to-novel, seed 1, 16 shots, 30 epochs, batch 8, lr 0.002, 16 random context tokens,
#     no augmentation, 1 thread): the official train.py (train + base-class test) and its
#     --eval-only run on the new classes, against `atp train` cold (no feature cache) and warm
#     (feature cache filled), at 1 thread and at atp's default thread count;
#  2. one CoOp+ATPrompt training step at atp_bench_methods' settings (ViT-B/16 sizes, random
#     weights, batch 32, 50 classes, fp32): the official CustomCLIP of trainers/coop_atp.py at
#     torch's defaults, against `atp_bench_methods vitb16 --methods coop+atprompt`.
# Prints the times and the ratios official / atp. docs/compute.md says what differs between the
# two jobs. Nothing is written outside WORK (default: a new folder under /tmp).
#
# usage: bench/official/run.sh --atprompt DIR [--dassl DIR] [--yacs DIR] [--data-root DIR]
#            [--tiny-clip DIR] [--work DIR] [--seed N] [--steps N] [--only job|step|accuracy] [--build]
#            [--accuracy-seeds 1,2,3,...]
#   --atprompt   checkout of github.com/zhengli97/ATPrompt (train.py, trainers/, clip/, datasets/)
#   --dassl      Dassl.pytorch to import (default: the ATPrompt checkout's own Dassl.pytorch, which
#                its INSTALL.md installs; upstream KaiyangZhou/Dassl.pytorch lacks test(is_final))
#   --yacs       checkout of github.com/rbgirshick/yacs, when python3 cannot import yacs (Debian
#                does not package it)
#   --data-root  where `atp data import-fashion-mnist` wrote fashion_mnist/ (default: ./data)
#   --tiny-clip  where `atp pretrain` wrote tiny_clip.pt and its vocabulary (default: ./runs/tiny_clip)
#   --steps      timed official steps after one warm-up step, and atp_bench_methods' STEPS (default 2)
#   --accuracy-seeds  also run the job (official: both runs; atp: cold, 1 thread) for each of these
#                seeds and print the base and new accuracies side by side with their means
#   --build      build atp and atp_bench_methods first (default: only when missing), through
#                scripts/build.sh into $ATP_BUILD_DIR (default ./build)
# The official code runs on Debian's python3 (/usr/bin/python3, or $ATP_OFFICIAL_PYTHON) with
# Debian's packages; the script installs the missing ones when run as root, else names them.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/bench/official"
BUILD=${ATP_BUILD_DIR:-$ROOT/build}
PY=${ATP_OFFICIAL_PYTHON:-/usr/bin/python3}

usage() { sed -n '/^# usage:/,/^# The official/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-2}"; }
die() { echo "run.sh: $*" >&2; exit 1; }

ATPROMPT="" DASSL="" YACS="" DATA_ROOT="$ROOT/data" TINY_CLIP="$ROOT/runs/tiny_clip" WORK="" SEED=1 STEPS=2
ONLY="" BUILD_FIRST=0 ACCURACY_SEEDS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --atprompt) ATPROMPT=$2; shift 2 ;;
    --dassl) DASSL=$2; shift 2 ;;
    --yacs) YACS=$2; shift 2 ;;
    --data-root) DATA_ROOT=$2; shift 2 ;;
    --tiny-clip) TINY_CLIP=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --build) BUILD_FIRST=1; shift ;;
    --accuracy-seeds) ACCURACY_SEEDS=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -n "$ATPROMPT" ] || { echo "run.sh: --atprompt DIR is required" >&2; usage; }
case "$ONLY" in ""|job|step|accuracy) ;; *) die "--only: 'job', 'step' or 'accuracy', not '$ONLY'" ;; esac
[ "$ONLY" != accuracy ] || [ -n "$ACCURACY_SEEDS" ] || die "--only accuracy needs --accuracy-seeds"
for n in $SEED $STEPS ${ACCURACY_SEEDS//,/ }; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "seeds and steps are positive integers, not '$n'"
done
abspath() { (cd "$1" && pwd) || die "$2 $1: no such folder"; }
ATPROMPT=$(abspath "$ATPROMPT" --atprompt)
[ -f "$ATPROMPT/train.py" ] && [ -f "$ATPROMPT/trainers/coop_atp.py" ] ||
  die "--atprompt $ATPROMPT: not a checkout of zhengli97/ATPrompt (no train.py / trainers/coop_atp.py)"
DASSL=$(abspath "${DASSL:-$ATPROMPT/Dassl.pytorch}" --dassl)
[ -z "$YACS" ] || YACS=$(abspath "$YACS" --yacs)
DATA_ROOT=$(abspath "$DATA_ROOT" --data-root)
TINY_CLIP=$(abspath "$TINY_CLIP" --tiny-clip)
BACKBONE="$TINY_CLIP/tiny_clip.pt" VOCAB="$TINY_CLIP/tiny_clip_vocab.txt.gz"
[ -f "$DATA_ROOT/fashion_mnist/split_zhou_FashionMNIST.json" ] ||
  die "$DATA_ROOT/fashion_mnist: not imported; run scripts/demo.sh once, or atp data import-fashion-mnist --out $DATA_ROOT"
[ -f "$BACKBONE" ] && [ -f "$VOCAB" ] ||
  die "$TINY_CLIP: no tiny_clip.pt / tiny_clip_vocab.txt.gz; run scripts/demo.sh once (it runs atp pretrain)"
WORK=${WORK:-$(mktemp -d /tmp/atp-official-bench.XXXXXX)}
mkdir -p "$WORK"
WORK=$(abspath "$WORK" --work)

# -- Debian's packages for the official code ------------------------------------------------
[ -x "$PY" ] || die "$PY not found (Debian's python3 with python3-torch; set ATP_OFFICIAL_PYTHON)"
missing=()
for pair in torch:python3-torch torchvision:python3-torchvision PIL:python3-pil sklearn:python3-sklearn \
            tabulate:python3-tabulate tqdm:python3-tqdm scipy:python3-scipy regex:python3-regex \
            pandas:python3-pandas; do
  "$PY" -c "import ${pair%%:*}" 2>/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    echo "== apt-get install ${missing[*]}"
    # An out-of-date package list makes the first try fail; then refresh it once.
    { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" ||
      { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; }
    } > "$WORK/apt.log" 2>&1 || { tail -20 "$WORK/apt.log"; die "apt-get install failed (log: $WORK/apt.log)"; }
  else
    die "the official code needs Debian packages that are missing: sudo apt-get install ${missing[*]}"
  fi
fi

# -- atp's binaries ----------------------------------------------------------------------------
ATP="$BUILD/tools/atp" BENCH="$BUILD/bench/atp_bench_methods"
if [ "$BUILD_FIRST" = 1 ] || [ ! -x "$ATP" ] || [ ! -x "$BENCH" ]; then
  echo "== building atp and atp_bench_methods in $BUILD"
  ATP_BUILD_DIR="$BUILD" ATP_BUILD_TARGETS="atp atp_bench_methods" bash "$ROOT/scripts/build.sh"
fi

LAUNCH=("$PY" "$HERE/launch.py" --atprompt "$ATPROMPT" --dassl "$DASSL" --work "$WORK"
        --backbone "$BACKBONE" --vocab "$VOCAB")
[ -z "$YACS" ] || LAUNCH+=(--yacs "$YACS")
echo "== set-up check (official code: $ATPROMPT, Dassl: $DASSL; work: $WORK)"
"${LAUNCH[@]}" check 2> "$WORK/check.err" | grep -v '^build model vit' && grep '^\[official\]' "$WORK/check.err" ||
  { cat "$WORK/check.err" >&2; die "the official code could not be set up (above)"; }

# The prompts both trainers build for the ten classes, tokenized by each: the same ids or stop.
classes=$("$PY" -c "import json,sys; names={l: n for _, l, n in json.load(open(sys.argv[1]))['test']}; print('\n'.join(names[l] for l in sorted(names)))" \
  "$DATA_ROOT/fashion_mnist/split_zhou_FashionMNIST.json")
prompts=$(while IFS= read -r name; do echo "X X X X X X X X X X X X X X X X ${name//_/ }."; done <<< "$classes")
"$ATP" clip tokenize --vocab "$VOCAB" <<< "$prompts" | awk '{$1 = $1; print}' > "$WORK/tokens_atp.txt"
"${LAUNCH[@]}" tokens <<< "$prompts" 2> "$WORK/tokens.err" | awk '{$1 = $1; print}' > "$WORK/tokens_official.txt"
cmp -s "$WORK/tokens_atp.txt" "$WORK/tokens_official.txt" ||
  die "the official tokenizer and atp's disagree on the prompts (diff $WORK/tokens_atp.txt $WORK/tokens_official.txt)"
echo "tokens: the $(wc -l < "$WORK/tokens_atp.txt") classes' prompts have the same ids in both tokenizers"

load() { cut -d' ' -f1-3 /proc/loadavg; }
# timed NAME COMMAND...: runs COMMAND with output to WORK/NAME.log; sets WALL and CPU (user + sys
# of the command and its children, seconds) and LOAD (1-minute load average before it started).
timed() {
  local name=$1; shift
  LOAD=$(load)
  local t
  t=$( { TIMEFORMAT='%R %U %S'; time "$@" > "$WORK/$name.log" 2>&1; } 2>&1 ) ||
    { tail -30 "$WORK/$name.log" >&2; die "$name failed (log: $WORK/$name.log)"; }
  WALL=$(echo "$t" | awk '{print $1}')
  CPU=$(echo "$t" | awk '{printf "%.2f", $2 + $3}')
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
sum() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a + b }'; }
official_accuracy() { grep '^\* accuracy:' "$WORK/$1.log" | tail -1 | sed 's/^\* accuracy: *//; s/%//'; }
atp_metric() { "$PY" -c "import json,sys; print('%.2f' % json.load(open(sys.argv[1]))['metrics'][sys.argv[2]])" "$1" "$2"; }

# The job, both trainers. OPTS/TRAIN: the official train.py's arguments for seed $1.
OPTS=(TRAINER.COOP.N_CTX 16 TRAINER.COOP.CSC False TRAINER.COOP.CLASS_TOKEN_POSITION end
      TRAINER.COOP.PREC fp32 DATASET.NUM_SHOTS 16)
train_args() {
  TRAIN=(--root "$DATA_ROOT" --seed "$1" --trainer CoOp --dataset-config-file "$HERE/configs/fashion_mnist.yaml"
         --config-file "$HERE/configs/coop_tiny_clip.yaml")
}
# official_job SEED NAME: the released base-to-novel pair of runs, one thread as the demo's jobs
# (torch's and OpenBLAS's pools; no loader workers: the config). Sets O_* figures.
official_job() {
  local seed=$1 name=$2
  train_args "$seed"
  rm -rf "$WORK/${name}_base" "$WORK/${name}_new"
  timed "${name}_train" env ATP_OFFICIAL_MAX_TEST_IMAGES=2000 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
    "${LAUNCH[@]}" --threads 1 train -- "${TRAIN[@]}" --output-dir "$WORK/${name}_base" "${OPTS[@]}" \
    DATASET.SUBSAMPLE_CLASSES base OPTIM.MAX_EPOCH 30
  O_TRAIN_WALL=$WALL O_TRAIN_CPU=$CPU O_TRAIN_LOAD=$LOAD O_BASE=$(official_accuracy "${name}_train")
  timed "${name}_new" env ATP_OFFICIAL_MAX_TEST_IMAGES=2000 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
    "${LAUNCH[@]}" --threads 1 train -- "${TRAIN[@]}" --output-dir "$WORK/${name}_new" --eval-only \
    --model-dir "$WORK/${name}_base" --load-epoch 30 "${OPTS[@]}" DATASET.SUBSAMPLE_CLASSES new
  O_NEW_WALL=$WALL O_NEW_CPU=$CPU O_NEW_LOAD=$LOAD O_NEW=$(official_accuracy "${name}_new")
  O_WALL=$(sum "$O_TRAIN_WALL" "$O_NEW_WALL") O_CPU=$(sum "$O_TRAIN_CPU" "$O_NEW_CPU")
}
# write_job FILE SEED THREADS_LINE CACHE_LINE: experiments/demo.toml's vanilla CoOp job for atp.
write_job() {
  cat > "$1" <<JOB
method = "coop"
[params]
dataset = "fashion_mnist"
seed = $2
data_root = "$DATA_ROOT"
backbone = "$BACKBONE"
vocab = "$VOCAB"
max_test_images = 2000
epochs = 30
batch_size = 8
lr = 0.002
augment = false
atprompt = false
ctx_init = ""
n_ctx = 16
$3
$4
JOB
}
JOB_TITLE="tiny CLIP, Fashion-MNIST base-to-novel, 16 shots, 30 epochs, batch 8, lr 0.002, 16 random context tokens, no augmentation, 2000 test images per split"

if [ -z "$ONLY" ] || [ "$ONLY" = job ]; then
  echo
  echo "== 1. demo-sized CoOp job, seed $SEED: $JOB_TITLE"
  official_job "$SEED" official
  rm -rf "$WORK/atp"
  mkdir -p "$WORK/atp"
  rows=()
  for threads in 1 default; do
    threads_line="threads = 1"
    [ "$threads" = 1 ] || threads_line="# threads: atp's default (all cores of the process's share)"
    write_job "$WORK/atp/cold_$threads.toml" "$SEED" "$threads_line" "use_feature_cache = false"
    write_job "$WORK/atp/warm_$threads.toml" "$SEED" "$threads_line" "feature_cache = \"$WORK/atp/feature_cache\""
    timed "atp_cold_$threads" "$ATP" train "$WORK/atp/cold_$threads.toml" --workdir "$WORK/atp/cold_$threads" --fresh
    rows+=("atp train, cold, threads $threads|$WALL|$CPU|$LOAD|$(atp_metric "$WORK/atp/cold_$threads/metrics.json" base_accuracy)|$(atp_metric "$WORK/atp/cold_$threads/metrics.json" new_accuracy)")
    if [ ! -d "$WORK/atp/feature_cache" ]; then  # fills the cache (not a figure of the comparison)
      timed "atp_fill" "$ATP" train "$WORK/atp/warm_$threads.toml" --workdir "$WORK/atp/fill" --fresh
      FILL="$WALL s wall (load $LOAD)"
    fi
    timed "atp_warm_$threads" "$ATP" train "$WORK/atp/warm_$threads.toml" --workdir "$WORK/atp/warm_$threads" --fresh
    rows+=("atp train, warm, threads $threads|$WALL|$CPU|$LOAD|$(atp_metric "$WORK/atp/warm_$threads/metrics.json" base_accuracy)|$(atp_metric "$WORK/atp/warm_$threads/metrics.json" new_accuracy)")
  done
  echo
  printf '%-44s %8s %8s %18s %7s %7s %12s %12s\n' "run" "wall s" "CPU s" "load (1, 5, 15 min)" "base %" "new %" \
    "official/atp" "(CPU)"
  printf '%-44s %8s %8s %18s %7s %7s\n' "official train.py (train, base test)" "$O_TRAIN_WALL" "$O_TRAIN_CPU" \
    "$O_TRAIN_LOAD" "$O_BASE" "-"
  printf '%-44s %8s %8s %18s %7s %7s\n' "official train.py --eval-only (new test)" "$O_NEW_WALL" "$O_NEW_CPU" \
    "$O_NEW_LOAD" "-" "$O_NEW"
  printf '%-44s %8s %8s %18s %7s %7s\n' "official job (both runs)" "$O_WALL" "$O_CPU" "" "$O_BASE" "$O_NEW"
  for row in "${rows[@]}"; do
    IFS='|' read -r name wall cpu ld base new <<< "$row"
    printf '%-44s %8s %8s %18s %7s %7s %12s %12s\n' "$name" "$wall" "$cpu" "$ld" "$base" "$new" \
      "$(ratio "$O_WALL" "$wall")" "$(ratio "$O_CPU" "$cpu")"
  done
  echo "(the feature cache was filled by one more atp run: ${FILL:-?}; official train.py alone against atp's" \
       "whole job: $(ratio "$O_TRAIN_WALL" "$(echo "${rows[0]}" | cut -d'|' -f2)") cold at 1 thread)"
fi

if [ -n "$ACCURACY_SEEDS" ]; then
  echo
  echo "== accuracy over seeds ${ACCURACY_SEEDS}: $JOB_TITLE; official (both runs) and atp cold, 1 thread"
  printf '%6s %14s %14s %14s %14s\n' seed "official base" "atp base" "official new" "atp new"
  acc_rows=""
  for seed in ${ACCURACY_SEEDS//,/ }; do
    official_job "$seed" "official_seed$seed"
    write_job "$WORK/atp_seed$seed.toml" "$seed" "threads = 1" "use_feature_cache = false"
    timed "atp_seed$seed" "$ATP" train "$WORK/atp_seed$seed.toml" --workdir "$WORK/atp_seed$seed" --fresh
    a_base=$(atp_metric "$WORK/atp_seed$seed/metrics.json" base_accuracy)
    a_new=$(atp_metric "$WORK/atp_seed$seed/metrics.json" new_accuracy)
    printf '%6s %14s %14s %14s %14s\n' "$seed" "$O_BASE" "$a_base" "$O_NEW" "$a_new"
    acc_rows+="$O_BASE $a_base $O_NEW $a_new"$'\n'
  done
  printf '%s' "$acc_rows" | awk '{ for (i = 1; i <= 4; i++) { s[i] += $i; q[i] += $i * $i } n++ }
    END { printf "%6s", "mean"; for (i = 1; i <= 4; i++) printf " %14s", sprintf("%.2f", s[i] / n); printf "\n";
          if (n > 1) { printf "%6s", "sd"; for (i = 1; i <= 4; i++) printf " %14s", sprintf("%.2f", sqrt((q[i] - s[i] * s[i] / n) / (n - 1))); printf "\n" } }'
fi

if [ -z "$ONLY" ] || [ "$ONLY" = step ]; then
  echo
  echo "== 2. one CoOp+ATPrompt training step, ViT-B/16 sizes, random weights, batch 32, 50 classes, fp32"
  timed official_step "${LAUNCH[@]}" --steps "$STEPS" step
  O_STEP=$(grep '^official_step_seconds' "$WORK/official_step.log" | awk '{print $2}')
  O_STEP_LOAD=$LOAD
  grep '^\[official step\]' "$WORK/official_step.log" | sed 's/^/  /'
  timed bench_methods "$BENCH" vitb16 "$STEPS" --methods coop+atprompt
  B_LOAD=$LOAD
  grep -E '^(BLAS|GEMM|atp_bench_methods)|image tower' "$WORK/bench_methods.log" | sed 's/^ */  /'
  line=$(grep -E '^ +coop\+atprompt ' "$WORK/bench_methods.log") || die "no coop+atprompt row in $WORK/bench_methods.log"
  A_COLD=$(echo "$line" | awk '{printf "%.3f", 1 / $2}')
  A_WARM=$(echo "$line" | awk '{printf "%.3f", 1 / $3}')
  echo
  printf '%-52s %10s %18s %12s\n' "step" "s/step" "load (1, 5, 15 min)" "official/atp"
  printf '%-52s %10s %18s %12s\n' "official CustomCLIP (coop_atp.py), image tower inside" "$O_STEP" "$O_STEP_LOAD" ""
  printf '%-52s %10s %18s %12s\n' "atp cold (image tower on the batch)" "$A_COLD" "$B_LOAD" "$(ratio "$O_STEP" "$A_COLD")"
  printf '%-52s %10s %18s %12s\n' "atp warm (image features from the cache)" "$A_WARM" "$B_LOAD" "$(ratio "$O_STEP" "$A_WARM")"
fi
echo
echo "logs: $WORK"
