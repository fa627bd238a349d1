#!/usr/bin/env bash
# Hostile but fair command lines and files against the built commands. Property: none
# crashes (no signal, no uncaught exception), unusable input is refused with a non-zero exit
# and a message naming the flag, key or file, and nothing is silently answered with exit 0.
# Usage: hostile_input_check.sh BUILD_DIR. Prints "N passed, M failed"; exit 1 on a failure.
set -u
BUILD="${1:?usage: hostile_input_check.sh BUILD_DIR}"
ATP="$BUILD/tools/atp"
SWEEP="$BUILD/tools/atp-sweep"
[ -x "$ATP" ] && [ -x "$SWEEP" ] || { echo "hostile_input_check.sh: build atp and atp-sweep first" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 2

passed=0
failed=0
# refused "what" EXPECTED_CODE NEEDLE command...: exits with EXPECTED_CODE (not a signal) and
# prints NEEDLE on stderr or stdout.
refused() {
  local what=$1 want=$2 needle=$3
  shift 3
  local out code
  out=$(timeout 60 "$@" 2>&1)
  code=$?
  if [ "$code" -eq "$want" ] && [[ "$out" == *"$needle"* ]]; then
    passed=$((passed + 1))
    echo "  ok    $what"
  else
    failed=$((failed + 1))
    echo "  FAIL  $what (exit $code, want $want and '$needle'):"
    echo "$out" | head -5 | sed 's/^/        /'
  fi
}

# A small results database to point the readers at.
cat > s.toml <<'TOML'
[sweep]
name = "s"
code_version = "1"
[[stage]]
name = "w"
method = "sleep"
params = { seconds = 0.01, steps = 1 }
TOML
"$SWEEP" s.toml --db r.db --log quiet >/dev/null 2>&1 || { echo "cannot make a database" >&2; exit 2; }

echo "flags"
for port in 99999 abc -1 65536 "host:" ":80" "::1:80"; do
  refused "atp serve --http $port" 2 "--http" "$ATP" serve --db r.db --http "$port"
done
refused "atp-sweep --http 99999 (before anything runs)" 2 "--http" "$SWEEP" s.toml --db r2.db --http 99999
refused "atp status --sweep abc" 2 "--sweep" "$ATP" status --db r.db --sweep abc
refused "atp status --sweep 0" 2 "--sweep" "$ATP" status --db r.db --sweep 0
refused "atp query --where nokey=1" 2 "no job in the database has a key 'nokey'" "$ATP" query --db r.db --where nokey=1
refused "atp query --group-by nokey" 2 "nokey" "$ATP" query --db r.db --group-by nokey
refused "atp-sweep --heartbeat-timeout inf" 2 "--heartbeat-timeout" "$SWEEP" s.toml --db r2.db --heartbeat-timeout inf
refused "atp-sweep --progress-interval 0" 2 "--progress-interval" "$SWEEP" s.toml --db r2.db --progress-interval 0
if "$ATP" serve --db r.db --http "[::1]:0" >serve.out 2>&1 & then
  pid=$!
  for _ in $(seq 100); do [ -s serve.out ] && break; sleep 0.1; done
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  if grep -q "http://\[::1\]:" serve.out || grep -q "Cannot assign\|not available\|cannot bind" serve.out; then
    passed=$((passed + 1)); echo "  ok    atp serve --http [::1]:0 (IPv6 literal understood)"
  else
    failed=$((failed + 1)); echo "  FAIL  atp serve --http [::1]:0: $(head -2 serve.out)"
  fi
fi

echo "sweep files"
printf '[sweep]\nname = "x"\ncode_version = "1"\n[[stage]]\nname = "w"\nmethod = "sleep"\nranks = 1000000\n' > ranks.toml
refused "ranks = 1000000" 2 "from 1 to 4096" "$SWEEP" ranks.toml --dry-run
printf '[sweep]\nname = "x"\ncode_version = "1"\n[[stage]]\nname = "w"\nmethod = "sleep"\nhang_timeout_s = inf\n' > inf.toml
refused "hang_timeout_s = inf" 2 "inf.toml:7" "$SWEEP" inf.toml --dry-run
printf '[sweep]\nname = "x"\ncode_version = "1"\n[[stage]]\nname = "w"\nmethod = "sleep"\nparams = { seconds = nan }\n' > nan.toml
refused "seconds = nan" 2 "finite" "$SWEEP" nan.toml --dry-run
axis=$(seq -s, 1 1000)
{ printf '[sweep]\nname = "x"\ncode_version = "1"\n[[stage]]\nname = "w"\nmethod = "sleep"\n[stage.axes]\n'
  for key in seed steps seconds value fail_attempts fail_at_step; do echo "$key = [$axis]"; done; } > huge.toml
refused "10^18 points (--dry-run)" 2 "over the limit" "$SWEEP" huge.toml --dry-run

echo "databases"
head -c 4096 r.db > cut.db
printf 'garbage%.0s' $(seq 1 600) >> cut.db
refused "a damaged database is named" 2 "cut.db" "$ATP" status --db cut.db

echo "atp train / eval"
if "$ATP" train --help >/dev/null 2>&1; then
  printf 'method = "coop"\n[params]\ndataset = "eurosat"\ndata_root = "%s/nodata"\n' "$WORK" > job.toml
  touch afile
  mkdir -p adir
  refused "atp train --workdir FILE" 2 "--workdir" "$ATP" train job.toml --workdir afile
  refused "atp train --out in a missing folder (before running)" 2 "does not exist" "$ATP" train job.toml --workdir wd --out missing/m.json
  refused "atp eval --out DIR (before running)" 2 "is a directory" "$ATP" eval job.toml --workdir wd --out adir
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
