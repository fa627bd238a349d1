#!/usr/bin/env bash
# Renders the atp status page in headless Chromium and checks that its script ran: the
# rendered DOM must carry the sweep's name (in the title) and the job counts that
# api/summary reports, and no script error. Also writes a screenshot for a person to look at.
#
# Usage: status_page_check.sh URL [SCREENSHOT.png]
#   URL         the page, e.g. http://127.0.0.1:8321/ (a query such as ?sweep=2 is kept)
#   SCREENSHOT  where to write the PNG (default: ./status_page.png)
# Exit: 0 passed; 1 a check failed; 2 bad usage or a missing python3; 77 skipped because
#       Chromium is missing and cannot be installed (the reason is printed).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || $1 == -h || $1 == --help ]]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit 2
fi
url=$1
screenshot=${2:-status_page.png}

if ! command -v python3 > /dev/null; then
  echo "status_page_check: needs python3 to read the API's JSON; install it" >&2
  exit 2
fi

find_chromium() {
  local name
  for name in chromium chromium-browser google-chrome; do
    if command -v "$name" > /dev/null; then command -v "$name"; return 0; fi
  done
  return 1
}

chrome=$(find_chromium || true)
if [[ -z $chrome ]]; then
  echo "status_page_check: Chromium not found; installing Debian's chromium" >&2
  if [[ $(id -u) -eq 0 ]] && command -v apt-get > /dev/null; then
    apt-get install -y chromium > /dev/null 2>&1 ||
      { apt-get update > /dev/null 2>&1 && apt-get install -y chromium > /dev/null 2>&1; } || true
  fi
  chrome=$(find_chromium || true)
  if [[ -z $chrome ]]; then
    echo "SKIP status_page_check: Chromium is not installed and could not be installed" \
         "(needs root and apt-get: apt-get install -y chromium)"
    exit 77
  fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One fresh profile per run: Chromium locks its profile, and a used one carries state.
run_chromium() {
  local profile
  profile=$(mktemp -d "$work/profile.XXXXXX")
  # The rendered page only ever talks to the server under test; no proxy, no Google services.
  timeout 120 "$chrome" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --no-proxy-server --user-data-dir="$profile" --virtual-time-budget=5000 \
    --enable-logging=stderr --v=0 "$@"
}

# The figures the page should show, read straight from the API before and after rendering:
# on a live sweep they may move in between, and the page may show either.
read_summary() {
  python3 - "$url" "$1" <<'EOF'
import json, sys, urllib.parse, urllib.request
page = urllib.parse.urlsplit(sys.argv[1])
api = urllib.parse.urljoin(sys.argv[1], "api/summary") + ("?" + page.query if page.query else "")
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(api, timeout=30) as response:
        json.dump(json.load(response), open(sys.argv[2], "w"))
except urllib.error.HTTPError as e:
    sys.exit("status_page_check: FAIL: %s answered %d: %s" % (api, e.code, e.read(2000).decode("utf-8", "replace")))
except (OSError, ValueError) as e:
    sys.exit("status_page_check: FAIL: cannot read %s: %s" % (api, e))
EOF
}

check_dom() {
  python3 - "$work/dom.html" "$work/before.json" "$work/after.json" <<'EOF'
import html, json, re, sys
dom = open(sys.argv[1], encoding="utf-8", errors="replace").read()
problems = []
error = re.search(r'data-js-error="([^"]*)"', dom)
if error:
    problems.append("the page's script failed: " + html.unescape(error.group(1)))
state = re.search(r'<body[^>]*\bdata-state="([^"]*)"', dom)
if not state or state.group(1) != "live":
    problems.append("the page never loaded the summary (data-state=%s)" % (state.group(1) if state else "missing"))
    banner = re.search(r'id="banner"[^>]*>([^<]*)<', dom)
    if banner and banner.group(1):
        problems.append("the page says: " + html.unescape(banner.group(1)))

def shown(summary):
    name = (summary.get("sweep") or {}).get("name")
    counts = summary.get("counts") or {}
    return name, {s: int(counts.get(s) or 0) for s in ("done", "running", "failed", "pending", "blocked")}

snapshots = [shown(json.load(open(path))) for path in sys.argv[2:]]
name = snapshots[0][0]
if name is not None:
    # Chromium writes the title's text with &, < and > escaped, as html.escape does.
    title = "<title>atp — %s</title>" % html.escape(str(name), quote=False)
    if title not in dom:
        found = re.search(r"<title>(.*?)</title>", dom, re.S)
        problems.append("title is %r, expected %r" % (found.group(0) if found else None, title))
counts = {}
for state_name in ("done", "running", "failed", "pending", "blocked"):
    found = re.search(r'id="count-%s"[^>]*>([^<]*)<' % state_name, dom)
    counts[state_name] = found.group(1).strip() if found else None
# The page polls on its own schedule, so it may show a state between the two API snapshots:
# done, failed and blocked only grow, pending only shrinks, and the total stays the same.
def between(shown_counts, before, after):
    try:
        got = {k: int(v) for k, v in shown_counts.items()}
    except (TypeError, ValueError):
        return False
    if sum(got.values()) != sum(before.values()) or got["running"] < 0:
        return False
    grows = all(before[k] <= got[k] <= after[k] for k in ("done", "failed", "blocked"))
    return grows and after["pending"] <= got["pending"] <= before["pending"]
if not between(counts, snapshots[0][1], snapshots[-1][1]):
    problems.append("counts shown %s, but the API said %s before and %s after"
                    % (counts, snapshots[0][1], snapshots[-1][1]))
for p in problems:
    print("status_page_check: FAIL: " + p)
if not problems:
    print("status_page_check: the page shows %r with counts %s" % (name, counts))
sys.exit(1 if problems else 0)
EOF
}

read_summary "$work/before.json" || exit 1
if ! run_chromium --dump-dom "$url" > "$work/dom.html" 2> "$work/chromium.log"; then
  echo "status_page_check: FAIL: Chromium could not render $url; its log:" >&2
  tail -n 20 "$work/chromium.log" >&2
  exit 1
fi
read_summary "$work/after.json" || exit 1

failed=0
check_dom || failed=1
# Uncaught exceptions reach Chromium's console log even when they escape the page's handler.
if grep -E 'Uncaught|SyntaxError|Content Security Policy' "$work/chromium.log" > "$work/errors.log"; then
  echo "status_page_check: FAIL: script errors in the console:" >&2
  cat "$work/errors.log" >&2
  failed=1
fi

rm -f "$screenshot"
if ! run_chromium --hide-scrollbars --window-size=1280,1500 --screenshot="$screenshot" "$url" \
     > /dev/null 2> "$work/screenshot.log" || [[ ! -s $screenshot ]]; then
  echo "status_page_check: FAIL: no screenshot written to $screenshot; Chromium's log:" >&2
  tail -n 20 "$work/screenshot.log" >&2
  failed=1
else
  echo "status_page_check: screenshot in $screenshot"
fi
exit "$failed"
