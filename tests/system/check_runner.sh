# Sourced by the system-test runners: runs one test function and counts its checks.
# A test function prints "  ok ...", "  FAIL ..." or "  skip ..." per check.
#
# run_check FUNCTION runs FUNCTION in its own folder under $WORK, shows its output, and adds
# its checks to the caller's counters `passed` and `failed` (and, on failure of the function
# itself, a line to the array `failures`). A marker line shows that the function ran to its
# end: one that aborts (an unset variable, a command that kills the subshell) or checks
# nothing counts as a failure.
run_check() {
  local name=$1 out="$WORK/$1.out" p f s
  echo "$name"
  mkdir -p "$WORK/$name"
  (cd "$WORK/$name" && { "$name"; echo "  --end--"; }) > "$out" 2>&1
  grep -v '^  --end--$' "$out"
  p=$(grep -c '^  ok ' "$out")
  f=$(grep -c '^  FAIL ' "$out")
  s=$(grep -c '^  skip ' "$out")
  if ! grep -q '^  --end--$' "$out"; then
    echo "  FAIL  $name did not run to its end (after $p passed and $f failed checks)"
    f=$((f + 1))
    failures+=("$name: aborted")
  elif [ $((p + f + s)) -eq 0 ]; then
    echo "  FAIL  $name ran no check"
    f=$((f + 1))
    failures+=("$name: no check")
  fi
  passed=$((passed + p))
  failed=$((failed + f))
}
