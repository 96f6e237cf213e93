#!/usr/bin/env bash
# `make demo` as a new user's first command, checked: from the repository
# root of a clean clone, on a machine that may have nothing but make.  It
# must install what it needs, start the demo on 127.0.0.1, print the
# profile URL, and the profile must show the demo's requests; then it is
# stopped.  Used by .ci/run (the fresh Debian 12 CI machine, before
# anything else is installed) and by scripts/ci-chroots.sh (a bare
# Debian 13).
#
# Environment: PYPROF_DEMO_DIR (default /tmp/pyprof-ci-demo),
# PYPROF_DEMO_REQUESTS (default 12), and what scripts/install-deps.sh takes.
set -eo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYPROF_DEMO_DIR=${PYPROF_DEMO_DIR:-/tmp/pyprof-ci-demo}
export PYPROF_DEMO_REQUESTS=${PYPROF_DEMO_REQUESTS:-12}
out=$(mktemp)
trap 'make demo-stop >/dev/null 2>&1 || true; rm -f "$out"' EXIT
rm -rf "$PYPROF_DEMO_DIR"
timeout 1200 make demo 2>&1 | tee "$out"
grep -Eq '^  profile: +http://127\.0\.0\.1:[0-9]+/server-profile$' "$out" ||
    { echo "demo-check: make demo printed no profile URL" >&2; exit 1; }
port=$(cat "$PYPROF_DEMO_DIR/port")
curl -sf --max-time 10 "http://127.0.0.1:$port/server-profile?format=json" |
    /usr/bin/python3 -c 'import json, sys
want = int(sys.argv[1])
d = json.load(sys.stdin)
app = [l for l in d["locations"] if l["path"] == "/app"]
assert app and app[0]["requests"] >= want, d["locations"]
assert app[0]["samples"] > 0, app[0]
assert d["requests"], "no kept requests"
print("demo-check: /app %d requests, %d samples, %d kept"
      % (app[0]["requests"], app[0]["samples"], len(d["requests"])))' "$PYPROF_DEMO_REQUESTS"
make demo-stop
trap 'rm -f "$out"' EXIT
