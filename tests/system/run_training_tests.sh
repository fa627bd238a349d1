#!/usr/bin/env bash
# End-to-end tests of training, run as a user runs it: import Fashion-MNIST, pretrain a small
# CLIP with `atp pretrain`, `atp train` one job (progress lines, metrics file, resume), `atp
# eval` of its checkpoint, Python's torch.load reading that checkpoint, and a sweep under
# mpirun whose 2-rank job matches the same job on 1 rank.
# Usage: run_training_tests.sh BUILD_DIR [TEST_NAME...]. Prints "N passed, M failed".
set -u
BUILD=$(cd "${1:?usage: run_training_tests.sh BUILD_DIR [TEST...]}" && pwd)
shift
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SWEEP="$BUILD/tools/atp-sweep"
ATP="$BUILD/tools/atp"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --oversubscribe --mca btl self,vader,tcp --mca btl_tcp_if_include lo)
WORK=$(mktemp -d /tmp/atp-training.XXXXXX)
failures=()
. "$(dirname "${BASH_SOURCE[0]}")/check_runner.sh"
trap 'pkill -KILL -f "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  echo "skip: /usr/share/datasets/fashion-mnist is missing (apt-get install dataset-fashion-mnist)"
  exit 0
fi
if ! "$ATP" help | grep -q "^  train"; then
  echo "skip: this atp was built without libtorch (no train command)"
  exit 0
fi

# A Python with torch (Debian's python3-torch), for torch.load checks: $ATP_PYTHON, python3,
# then /usr/bin/python3 (a python3 earlier on PATH may lack torch).
PY=""
for candidate in ${ATP_PYTHON:-} python3 /usr/bin/python3; do
  if "$candidate" -c 'import torch' 2>/dev/null; then PY=$candidate; break; fi
done

check() {  # check "description" command...
  local what=$1
  shift
  if "$@"; then echo "  ok    $what"; else echo "  FAIL  $what"; fi
}
eq() { [ "$1" == "$2" ] || { echo "        expected '$2', got '$1'" >&2; return 1; }; }
q() { sqlite3 -batch -noheader "$1" "$2"; }
close() {  # close A B TOL: |A - B| <= TOL * max(1, |A|)
  python3 -c "import sys; a, b, t = map(float, sys.argv[1:]); sys.exit(0 if abs(a - b) <= t * max(1.0, abs(a)) else 1)" "$1" "$2" "$3" ||
    { echo "        $1 and $2 differ by more than $3" >&2; return 1; }
}

echo "setup: Fashion-MNIST (40 images per class) and a small CLIP"
"$ATP" data import-fashion-mnist --out "$WORK/data" --max-per-class 40 > "$WORK/import.log" 2>&1 ||
  { cat "$WORK/import.log"; echo "setup failed"; exit 1; }
"$ATP" pretrain --data-root "$WORK/data" --out "$WORK/clip" --epochs 1 --max-train-per-class 40 \
  --max-test-per-class 10 > "$WORK/pretrain.log" 2>&1 || { cat "$WORK/pretrain.log"; echo "setup failed"; exit 1; }

write_job() {  # write_job FILE METHOD [extra TOML lines]
  local file=$1 method=$2
  shift 2
  cat > "$file" <<TOML
method = "$method"
[params]
dataset = "fashion_mnist"
data_root = "$WORK/data"
backbone = "$WORK/clip/tiny_clip.pt"
vocab = "$WORK/clip/tiny_clip_vocab.txt.gz"
feature_cache = "$WORK/cache"
shots = 8
epochs = 2
max_test_images = 50
threads = 1
TOML
  printf '%s\n' "$@" >> "$file"
}

test_train_command() {
  write_job job.toml coop "atprompt = true" 'attributes = ["shape", "length"]'
  local out err code
  out=$("$ATP" train job.toml --workdir j1 2> err.txt); code=$?
  err=$(cat err.txt)
  check "atp train exits 0" eq "$code" 0
  check "it prints progress lines with rate, ETA, epoch, step and loss" grep -Eq "steps/s \| (ETA|took) [^|]+\| epoch 2/2 step [0-9]+/[0-9]+ loss [0-9.]+" <<<"$err"
  check "it prints the base and new accuracy" grep -Eq "^base_accuracy [0-9.]+$" <<<"$out"
  check "the metrics file holds both accuracies" grep -q '"new_accuracy"' j1/metrics.json
  check "the resolved configuration is recorded" grep -q '"attribute_source": "explicit"' j1/metrics.json
  check "a checkpoint was written" test -s j1/checkpoint.pth
  out=$("$ATP" train job.toml --workdir j1 2>&1); code=$?
  check "rerunning resumes from the checkpoint" grep -q "resuming from" <<<"$out"
  check "a finished job only re-evaluates" grep -q '"resumed_from_epoch": 2' j1/metrics.json
  out=$("$ATP" eval job.toml --checkpoint j1/checkpoint.pth --workdir j2 2>/dev/null); code=$?
  check "atp eval of the checkpoint exits 0" eq "$code" 0
  check "atp eval reproduces the trained job's accuracy" \
    eq "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metrics"]["base_accuracy"])' j2/metrics.json)" \
       "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metrics"]["base_accuracy"])' j1/metrics.json)"
  if [ -n "$PY" ]; then
    check "Python's torch.load reads the checkpoint" "$PY" -c "
import torch
c = torch.load('j1/checkpoint.pth')
assert c['epoch'] == 2, c['epoch']
assert tuple(c['state_dict']['ctx'].shape)[0] == 2
assert 'ctx_att1' in c['state_dict'] and 'momentum_buffer' in c['optimizer']['state'][0]"
  else
    echo "  skip  torch.load check: python3-torch is not installed"
  fi
  write_job bad.toml coopp
  err=$("$ATP" train bad.toml 2>&1); code=$?
  check "an unknown method exits 2" eq "$code" 2
  check "and lists the valid ones" grep -q "coop, cocoop" <<<"$err"
  write_job nan.toml coop "lr = 1e30" "batch_size = 8"
  err=$("$ATP" train nan.toml --workdir jn 2>&1); code=$?
  check "a diverging job exits 1" eq "$code" 1
  check "and says where the loss went bad" grep -Eq "diverged: loss is (NaN|infinite) at epoch [0-9]+, step [0-9]+" <<<"$err"
}

test_two_ranks_match_one() {
  cat > dp.toml <<TOML
[sweep]
name = "data-parallel"
code_version = "1"
[axes]
dataset = ["fashion_mnist"]
[params]
data_root = "$WORK/data"
backbone = "$WORK/clip/tiny_clip.pt"
vocab = "$WORK/clip/tiny_clip_vocab.txt.gz"
feature_cache = "$WORK/cache"
shots = 8
epochs = 3
batch_size = 16
max_test_images = 50
threads = 1
atprompt = true
attributes = ["shape", "length"]
[[stage]]
name = "one_rank"
method = "coop"
ranks = 1
# Its own cache, so the two ranks always start cold and split the image tower's work.
[[stage]]
name = "two_ranks"
method = "coop"
ranks = 2
params = { feature_cache = "$WORK/cache_two_ranks" }
TOML
  "${MPIRUN[@]}" -np 4 "$SWEEP" dp.toml --db dp.db --jobs-dir jobs --log quiet > run.log 2>&1
  check "the sweep with a 2-rank job finishes" eq "$(q dp.db "SELECT count(*) FROM jobs WHERE state = 'done'")" 2
  local one two
  one=$(q dp.db "SELECT m.value FROM metrics m JOIN jobs j ON j.id = m.job_id WHERE j.stage = 'one_rank' AND m.name = 'train_loss'")
  two=$(q dp.db "SELECT m.value FROM metrics m JOIN jobs j ON j.id = m.job_id WHERE j.stage = 'two_ranks' AND m.name = 'train_loss'")
  check "2 ranks give 1 rank's training loss (within 1e-5)" close "$one" "$two" 1e-5
  if [ -n "$PY" ]; then
    local a b
    a=$(q dp.db "SELECT json_extract(outputs_json, '$.checkpoint') FROM jobs WHERE stage = 'one_rank'")
    b=$(q dp.db "SELECT json_extract(outputs_json, '$.checkpoint') FROM jobs WHERE stage = 'two_ranks'")
    check "and the same prompts (torch.allclose)" "$PY" -c "
import torch, sys
a = torch.load(sys.argv[1])['state_dict']; b = torch.load(sys.argv[2])['state_dict']
assert a.keys() == b.keys()
for k in a: assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), k" "$a" "$b"
  fi
}

# The PromptKD graph of experiments/demo_promptkd.toml, as written, on the small data and
# CLIPs: the teacher stage first (a wider CLIP), then students that distil from it.
test_promptkd_teacher_student_sweep() {
  "$ATP" pretrain --data-root "$WORK/data" --out "$WORK/clip_wide" --epochs 1 --max-train-per-class 40 \
    --max-test-per-class 10 --vision-width 192 --text-width 192 --embed-dim 192 > wide.log 2>&1 ||
    { cat wide.log; return 1; }
  mkdir -p kd/runs && ln -sfn "$WORK/data" kd/data && ln -sfn "$WORK/clip" kd/runs/tiny_clip &&
    ln -sfn "$WORK/clip_wide" kd/runs/tiny_clip_wide
  (cd kd && "${MPIRUN[@]}" -np 3 "$SWEEP" "$ROOT/experiments/demo_promptkd.toml" --db kd.db --jobs-dir jobs \
    --log quiet > run.log 2>&1)
  local db=kd/kd.db
  check "the teacher jobs finish" eq "$(q $db "SELECT count(*) FROM jobs WHERE stage = 'teacher' AND state = 'done'")" 2
  check "and all 6 students" eq "$(q $db "SELECT count(*) FROM jobs WHERE stage = 'student' AND state = 'done'")" 6
  check "every student starts after its teacher ends" eq "$(q $db "SELECT count(*) FROM jobs s JOIN jobs t
    ON t.stage = 'teacher' AND json_extract(t.spec_json, '$.params.atprompt') = json_extract(s.spec_json, '$.params.atprompt')
    WHERE s.stage = 'student' AND s.started_at >= t.ended_at")" 6
  check "students distil from their teacher job's checkpoint" eq "$(q $db "SELECT count(*) FROM jobs
    WHERE stage = 'student' AND json_extract(outputs_json, '$.teacher.origin') LIKE 'job %'")" 6
  check "and report the selected epoch with base and novel accuracy" eq "$(q $db "SELECT count(DISTINCT j.id)
    FROM jobs j JOIN metrics m ON m.job_id = j.id WHERE j.stage = 'student' AND m.name = 'selected_epoch'
    AND m.value BETWEEN 1 AND 5 AND EXISTS (SELECT 1 FROM metrics n WHERE n.job_id = j.id AND n.name = 'new_accuracy')")" 6
  local table
  table=$("$ATP" tables --db $db --table base2novel --where dataset=fashion_mnist)
  echo "$table" > promptkd_table.txt
  check "the table has the PromptKD row over 3 seeds" grep -Eq "\| PromptKD \| [0-9.]+ ± [0-9.]+ \(3\)" <<<"$table"
  check "and the PromptKD+ATPrompt row" grep -Eq "\| PromptKD\+ATPrompt \| [0-9.]+ ± [0-9.]+ \(3\)" <<<"$table"
}

test_demo_sweep_is_valid() {
  local out
  out=$("$SWEEP" "$ROOT/experiments/demo.toml" --dry-run)
  check "the demo sweep lists 126 jobs" grep -q "total *126 jobs" <<<"$out"
}

ALL=(test_train_command test_two_ranks_match_one test_demo_sweep_is_valid test_promptkd_teacher_student_sweep)
SELECTED=("$@")
[ ${#SELECTED[@]} -eq 0 ] && SELECTED=("${ALL[@]}")
passed=0
failed=0
for CURRENT in "${SELECTED[@]}"; do
  run_check "$CURRENT"
done
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
