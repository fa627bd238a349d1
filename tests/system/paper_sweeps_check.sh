#!/usr/bin/env bash
# Dry-runs every sweep file of experiments/ and experiments/paper/ and checks that each one is
# valid (exit 0, no warnings) and expands to the job counts recorded below (per stage and in
# total; experiments/paper/README.md quotes the same figures). Also checks that
# domain_generalization.toml's `train` jobs are cross_dataset.toml's (same keys), so the
# ImageNet models are trained once.
# Usage: paper_sweeps_check.sh BUILD_DIR. Prints "N passed, M failed"; exit 1 on any failure,
# 2 when BUILD_DIR has no tools/atp-sweep.
# A sweep file without recorded counts fails: add its counts here when adding the file.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SWEEP="${1:?usage: paper_sweeps_check.sh BUILD_DIR}/tools/atp-sweep"
[ -x "$SWEEP" ] || { echo "paper_sweeps_check.sh: $SWEEP not found; build the atp-sweep target first" >&2; exit 2; }

# file (relative to the repository root) -> "stage=jobs ... total=jobs"
declare -A EXPECTED=(
  [experiments/sleep.toml]="prepare=4 work=24 aggregate=3 total=31"
  [experiments/demo.toml]="search=1 zeroshot=1 train=24 train_20_seeds=40 train_30_seeds=60 total=126"
  [experiments/demo_promptkd.toml]="teacher=2 student=6 total=8"
  [experiments/paper/base2novel.toml]="zero_shot=11 base2novel=264 total=275"
  [experiments/paper/search.toml]="search=11 base2novel=132 total=143"
  [experiments/paper/cross_dataset.toml]="train=18 transfer=180 total=198"
  [experiments/paper/domain_generalization.toml]="train=18 dg_eval=90 total=108"
  [experiments/paper/promptkd.toml]="student=33 teacher=11 student_atprompt=33 total=77"
  [experiments/paper/ablations.toml]="class_position=9 soft_token_length=15 attribute_order=36 attribute_source=132 total=192"
)

passed=0
failed=0
check() {  # check "description" command...
  local what=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "  ok    $what"
  else
    failed=$((failed + 1))
    echo "  FAIL  $what"
    return 1
  fi
}
eq() { [ "$1" == "$2" ] || { echo "        expected '$2', got '$1'" >&2; return 1; }; }

# "stage=jobs ... total=jobs" from a dry run's summary table.
counts_of() {
  awk '/^stage +jobs +excluded/ { table = 1; next }
       table && /^total / { printf "total=%s", $2; exit }
       table && /^[A-Za-z0-9_-]+ +[0-9]+ / { printf "%s=%s ", $1, $2 }' <<<"$1"
}

declare -A OUTPUT
shopt -s nullglob
for path in "$ROOT"/experiments/*.toml "$ROOT"/experiments/paper/*.toml; do
  file=${path#"$ROOT"/}
  echo "$file"
  out=$("$SWEEP" "$path" --dry-run 2>&1)
  code=$?
  OUTPUT[$file]=$out
  check "dry run exits 0" eq "$code" 0 || { tail -5 <<<"$out" >&2; continue; }
  check "no warnings" eq "$(grep -c '^warning:' <<<"$out")" 0
  if [ -z "${EXPECTED[$file]:-}" ]; then
    check "job counts are recorded in $(basename "$0")" false
  else
    check "job counts: ${EXPECTED[$file]}" eq "$(counts_of "$out")" "${EXPECTED[$file]}"
  fi
done
for file in "${!EXPECTED[@]}"; do
  [ -e "$ROOT/$file" ] || check "$file exists (its counts are recorded)" false
done

train_keys() { grep -E '^[0-9a-f]{12} +train ' <<<"${OUTPUT[$1]:-}" | cut -c1-12 | sort; }
xd=experiments/paper/cross_dataset.toml
dg=experiments/paper/domain_generalization.toml
if [ -n "${OUTPUT[$xd]:-}" ] && [ -n "${OUTPUT[$dg]:-}" ]; then
  echo "shared ImageNet models"
  check "$dg trains the same 18 jobs as $xd" \
    eq "$(comm -12 <(train_keys "$xd") <(train_keys "$dg") | wc -l)" 18
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
