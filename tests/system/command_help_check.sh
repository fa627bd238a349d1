#!/usr/bin/env bash
# Every command prints the same --help layout and ends a usage error alike. The commands are
# read from `atp --help` (and each command's own "commands:" list), so a new command is
# checked without being named here. For each: `--help` exits 0 with nothing on stderr and a
# help that opens "usage: PROGRAM", then a blank line, and has an "options:" list ending
# with -h,--help; an unknown flag exits 2 with "PROGRAM: ..." and the usage on stderr.
# Usage: command_help_check.sh BUILD_DIR. Prints "N passed, M failed"; exit 1 on a failure.
set -u
BUILD="${1:?usage: command_help_check.sh BUILD_DIR}"
ATP="$BUILD/tools/atp"
SWEEP="$BUILD/tools/atp-sweep"
[ -x "$ATP" ] && [ -x "$SWEEP" ] || { echo "command_help_check.sh: build atp and atp-sweep first" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "  ok    $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL  $1"; [ -n "${2:-}" ] && echo "$2" | head -8 | sed 's/^/        /'; }

# The names listed under "commands:" in a help text.
commands_of() { sed -n '/^commands:$/,/^$/p' "$1" | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p'; }

# check_command PROGRAM BINARY ARGS...: PROGRAM is how the command names itself.
check_command() {
  local program=$1
  shift
  local out="$WORK/out" err="$WORK/err" code
  "$@" --help > "$out" 2> "$err"
  code=$?
  if [ "$code" -eq 0 ] && [ ! -s "$err" ] && [ "$(sed -n 1p "$out")" != "${program%% *}" ] &&
     [[ "$(sed -n 1p "$out")" == "usage: $program "* || "$(sed -n 1p "$out")" == "usage: $program" ]] &&
     grep -q '^$' "$out" && grep -q '^options:$' "$out" &&
     [ "$(sed -n '/^options:$/,/^$/p' "$out" | grep '^  -' | tail -1 | awk '{print $1}')" == "-h,--help" ]; then
    pass "$program --help: exit 0, usage line, options ending with -h,--help"
  else
    fail "$program --help (exit $code)" "$(cat "$out" "$err")"
  fi
  "$@" --no-such-flag > "$out" 2> "$err"
  code=$?
  if [ "$code" -eq 2 ] && [ ! -s "$out" ] && [[ "$(sed -n 1p "$err")" == "$program: "* ]] &&
     grep -q "^usage: $program" "$err"; then
    pass "$program --no-such-flag: exit 2, the error and the usage on stderr"
  else
    fail "$program --no-such-flag (exit $code)" "$(cat "$out" "$err")"
  fi
}

"$ATP" --help > "$WORK/atp.help" 2> "$WORK/atp.err"
code=$?
if [ "$code" -eq 0 ] && [ ! -s "$WORK/atp.err" ] && [ "$(sed -n 1p "$WORK/atp.help")" == "usage: atp COMMAND [options]" ] &&
   [ -n "$(commands_of "$WORK/atp.help")" ]; then
  pass "atp --help: exit 0, usage line, a list of commands"
else
  fail "atp --help (exit $code)" "$(cat "$WORK/atp.help" "$WORK/atp.err")"
fi
"$ATP" no-such-command > /dev/null 2>&1
code=$?
[ "$code" -eq 2 ] && pass "atp no-such-command: exit 2" || fail "atp no-such-command: exit $code, want 2"

check_command atp-sweep "$SWEEP"
for command in $(commands_of "$WORK/atp.help"); do
  [ "$command" == version ] && continue
  check_command "atp $command" "$ATP" "$command"
  "$ATP" "$command" --help > "$WORK/command.help" 2>/dev/null
  for sub in $(commands_of "$WORK/command.help"); do
    check_command "atp $command $sub" "$ATP" "$command" "$sub"
  done
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
