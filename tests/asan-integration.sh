#!/usr/bin/env bash
# Run the integration suite against the ASan + UBSan build of mod_pyprof
# and the pyext (`make asan`, in build/asan/), with the sanitizer runtime
# preloaded into every httpd and every python3 the suite starts.
#
# httpd is not instrumented, so the ASan runtime must be the first library
# of the process: LD_PRELOAD, in httpd's own environment.  The harness
# starts apache2 with a clean environment, so the variables travel through
# PYPROF_HTTPD_ENV and the pytest plugin tests/pyhttpd/pytest_sanitizer_env.py
# (see docs/HARDENING.md for the harness line that would make it honour
# PYPROF_HTTPD_ENV itself).  Reports go to one file per process in
# a world-writable directory (children run as www-data) and are copied to
# build/asan/reports/ at the end.
#
# Fails if pytest fails or if any AddressSanitizer or UBSan report was
# written.  Extra arguments go to pytest, e.g.:
#   tests/asan-integration.sh -k "views or exports" -x
# or, after --run, are a command to run instead of pytest, with the same
# environment and the same report checks (make fuzz-http-asan):
#   tests/asan-integration.sh --run /usr/bin/python3 tests/fuzz/fuzz-http.py --daemon
# Environment: PYPROF_MPMS as for the suite; ASAN_SKIP_BUILD=1 to use the
# existing build/asan/ as is.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

if [[ "${ASAN_SKIP_BUILD:-0}" != 1 ]]; then
    make -s asan || exit 2
fi
module=$repo/build/asan/mod_pyprof/.libs/mod_pyprof.so
pyext=$repo/build/asan/pyext
[[ -f $module ]] || { echo "asan-integration: $module not built" >&2; exit 2; }

# the runtime the module was linked against (gcc's libasan, or clang's)
asan_lib=$(ldd "$module" | awk '/libasan|libclang_rt\.asan/ { print $3; exit }')
[[ -n "$asan_lib" && -f "$asan_lib" ]] || {
    echo "asan-integration: $module is not linked against an ASan runtime" >&2; exit 2; }

reports=$(mktemp -d /tmp/pyprof-asan-XXXXXX)
chmod 1777 "$reports"

# detect_leaks=0: httpd and CPython keep memory until exit by design; leaks
# of the core are checked by valgrind on the unit tests instead.
asan_options="detect_leaks=0:log_path=$reports/asan:abort_on_error=0"
asan_options+=":halt_on_error=1:print_summary=1:handle_segv=1:handle_abort=1"
asan_options+=":detect_stack_use_after_return=0:disable_coredump=1"
# httpd installs its own SIGSEGV handler (sig_coredump); keep ASan's, so a
# crash comes with a stack
asan_options+=":allow_user_segv_handler=0"
ubsan_options="print_stacktrace=1:halt_on_error=0:log_path=$reports/ubsan"

export PYPROF_MODULE=$module
export PYPROF_PYEXT=$pyext
export PYPROF_HTTPD_ENV="LD_PRELOAD=$asan_lib ASAN_OPTIONS=$asan_options UBSAN_OPTIONS=$ubsan_options"
export PYTHONPATH=$repo/tests${PYTHONPATH:+:$PYTHONPATH}

if [[ "${1:-}" == --run ]]; then
    shift
    cmd=("$@")
    log=build/asan/run.log
else
    cmd=(/usr/bin/python3 -m pytest -p pyhttpd.pytest_sanitizer_env -q -rfE -m "not timing" tests/integration "$@")
    log=build/asan/pytest.log
fi

echo "asan-integration: module $module"
echo "asan-integration: runtime $asan_lib, reports in $reports"
started=$(date +%s)
mkdir -p build/asan
"${cmd[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
echo "asan-integration: ${cmd[0]##*/} exit status $rc after $(( $(date +%s) - started ))s"

mkdir -p build/asan/reports
found=0
shopt -s nullglob
for f in "$reports"/asan.* "$reports"/ubsan.*; do
    cp "$f" build/asan/reports/
    if grep -qE 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$f"; then
        found=$((found + 1))
        echo "---- $(basename "$f") ----"
        head -n 60 "$f"
    fi
done
# Reports written to stderr end up in the servers' error logs (a crash in
# an httpd worker thread, and gcc's UBSan, ignore log_path there); the
# plugin makes them fail the test that owned the server, and the harness
# prints them: count them here.
in_logs=$(grep -hoE '(ERROR: AddressSanitizer: [a-z-]+|[A-Za-z0-9_./-]+:[0-9]+:[0-9]+: runtime error: .*|SUMMARY: AddressSanitizer: .*)' \
    "$log" | sed 's/^ *//' | sort | uniq -c | sort -rn)
if [[ -n "$in_logs" ]]; then
    echo "asan-integration: sanitizer reports in server error logs (count, report):"
    echo "$in_logs"
    found=$((found + $(wc -l <<<"$in_logs")))
fi
others=$(ls "$reports" | wc -l)
echo "asan-integration: $found sanitizer report(s) among $others file(s); copies in build/asan/reports/"
rm -rf "$reports"
if [[ $found -ne 0 ]]; then
    exit 1
fi
exit $rc
