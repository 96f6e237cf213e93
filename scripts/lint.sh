#!/usr/bin/env bash
# Static analysis of the project's C: cppcheck, then clang-tidy (bugprone,
# cert, clang-analyzer), over mod_pyprof/*.c and pyext/_pyprof.c.
#
# Prints every finding as FILE:LINE: [check] message and exits non-zero
# if there is any.  Suppress a finding where it is, with the reason:
#   // cppcheck-suppress ID        (line before; cppcheck --inline-suppr)
#   // NOLINT(check-name): why     (same line; clang-tidy)
#   // NOLINTNEXTLINE(check-name): why
# Only the few checks below are off for the whole project, each with its
# reason.
#
# Before judging the sources, each tool is run on a canary file that
# includes the same httpd, APR and Python headers and holds one known bug:
# a configuration that silently fails to parse those headers (cppcheck
# gives up on a file without saying so) would otherwise look "clean".
#
# Usage: scripts/lint.sh [--cppcheck-only|--tidy-only] [FILE...]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

run_cppcheck=1
run_tidy=1
case "${1:-}" in
--cppcheck-only) run_tidy=0; shift ;;
--tidy-only) run_cppcheck=0; shift ;;
esac
files=("$@")

PY_INC=$(/usr/bin/python3-config --includes 2>/dev/null | tr ' ' '\n' | sed -n 's/^-I//p' | head -n1)
PY_INC=${PY_INC:-/usr/include/python3.11}
PY_VER=$(basename "$PY_INC")

if [[ ${#files[@]} -eq 0 ]]; then
    # every file, but the Python runtime file of the other versions
    # (pp_py_rt311.c is 3.11's, pp_py_rt.c 3.13+'s: each #errors on the
    # other's headers)
    for f in mod_pyprof/*.c pyext/_pyprof.c; do
        case "$f:$PY_VER" in
        mod_pyprof/pp_py_rt311.c:python3.11) ;;
        mod_pyprof/pp_py_rt311.c:*) continue ;;
        mod_pyprof/pp_py_rt.c:python3.11) continue ;;
        esac
        files+=("$f")
    done
fi
MULTIARCH=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
INCLUDES=(-Imod_pyprof -I/usr/include/apache2 -I/usr/include/apr-1.0 "-I$PY_INC")
# what apxs compiles with (apxs -q CFLAGS EXTRA_CPPFLAGS)
DEFINES=(-DLINUX -D_REENTRANT -D_GNU_SOURCE)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
findings=0

# The canary: the glue's and the sampler's headers, and an out-of-bounds
# write both tools must report.
cat >"$tmp/canary.c" <<'EOF'
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_frame.h>
#include "httpd.h"
#include "http_protocol.h"
#include "apr_strings.h"
#include "mod_pyprof.h"
int lint_canary(request_rec *r, PyObject *o);
int lint_canary(request_rec *r, PyObject *o)
{
    char small[4];
    int *none = NULL;
    if (Py_REFCNT(o) > 1) {
        return *none; /* clang-analyzer-core.NullDereference */
    }
    small[4] = (char)r->status; /* cppcheck: arrayIndexOutOfBounds */
    return small[0];
}
EOF

if [[ $run_cppcheck -eq 1 ]]; then
    command -v cppcheck >/dev/null || { echo "lint: cppcheck not installed" >&2; exit 2; }
    # cppcheck does not read the system headers (by design), so what the
    # httpd, APR and Python headers need from them is defined here:
    # AF_LOCAL (apr_network_io.h), the <limits.h> values pyport.h insists
    # on, _POSIX_THREADS (pycore_gil.h), and Debian's multiarch pyconfig.h.
    # Adding -I/usr/include instead makes cppcheck skip whole files.
    CPPCHECK=(cppcheck --std=c11 --enable=warning,performance,portability
        --inline-suppr --library=posix --error-exitcode=0 -q
        "${DEFINES[@]}" -D__linux__ -D__x86_64__ -D__LP64__ -DAF_LOCAL=1
        -D_POSIX_THREADS=200809L -D_POSIX_SEMAPHORES=200809L
        -DCHAR_BIT=8 -DUCHAR_MAX=255 -DINT_MAX=2147483647
        '-DINT_MIN=(-2147483647-1)' -DLONG_MAX=9223372036854775807L
        '-DLONG_MIN=(-9223372036854775807L-1)'
        -DULONG_MAX=18446744073709551615UL -DSIZE_MAX=18446744073709551615UL
        "--include=/usr/include/$MULTIARCH/$PY_VER/pyconfig.h"
        "${INCLUDES[@]}"
        --suppress=missingIncludeSystem
        # apr_pstrcat(p, a, b, NULL) is APR's documented sentinel; glibc
        # defines NULL as ((void *)0), so the "NULL may be int 0" case
        # this portability check guards against cannot arise.
        --suppress=varFuncNullUB
        '--template={file}:{line}: [cppcheck {id}] {severity}: {message}')

    canary=$("${CPPCHECK[@]}" "$tmp/canary.c" 2>&1)
    if ! grep -q 'arrayIndexOutOfBounds' <<<"$canary"; then
        echo "lint: cppcheck missed the canary's bug: the header setup is broken" >&2
        echo "$canary" >&2
        exit 2
    fi
    echo "== cppcheck $(cppcheck --version | awk '{print $2}') (canary caught)"
    out=$("${CPPCHECK[@]}" "${files[@]}" 2>&1 | grep -v '^$')
    if [[ -n "$out" ]]; then
        echo "$out"
        findings=$((findings + $(wc -l <<<"$out")))
    fi
fi

if [[ $run_tidy -eq 1 ]]; then
    TIDY=$(command -v clang-tidy || command -v clang-tidy-14) ||
        { echo "lint: clang-tidy not installed" >&2; exit 2; }
    checks="-*,bugprone-*,cert-*,clang-analyzer-*"
    # Annex K (memcpy_s, snprintf_s): glibc does not provide them, and the
    # calls it flags are bounded memcpy/memset/snprintf.
    checks+=",-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling"
    # API shape, not bugs: (st, idx, serial) and (count, weight) pairs are
    # how the store and the profile are addressed everywhere.
    checks+=",-bugprone-easily-swappable-parameters"
    # snprintf into fixed buffers truncates on purpose (display fields,
    # names bounded by the store); its return value is not an error code.
    checks+=",-cert-err33-c"
    # Integer-to-double conversions for display (us -> ms) are intended;
    # other narrowing stays checked (see the option below).
    tidy_config="{Checks: '$checks', CheckOptions: [
        {key: bugprone-narrowing-conversions.WarnOnIntegerToFloatingPointNarrowingConversion, value: false},
        {key: bugprone-narrowing-conversions.WarnOnFloatingPointNarrowingConversion, value: false}]}"
    compile_args=(-std=gnu11 "${DEFINES[@]}" "${INCLUDES[@]}")

    canary=$("$TIDY" --config="$tidy_config" --quiet "$tmp/canary.c" -- \
        "${compile_args[@]}" 2>&1)
    if ! grep -q 'clang-analyzer-core.NullDereference' <<<"$canary" ||
        grep -q 'error:' <<<"$canary"; then
        echo "lint: clang-tidy did not analyse the canary: the header setup is broken" >&2
        echo "$canary" >&2
        exit 2
    fi
    echo "== clang-tidy $("$TIDY" --version | awk '/version/ {print $NF; exit}') (canary analysed)"
    for f in "${files[@]}"; do
        out=$("$TIDY" --config="$tidy_config" --quiet "$f" -- "${compile_args[@]}" 2>/dev/null |
            grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' |
            sed -E "s|^$(pwd)/||; s|^([^:]+:[0-9]+):[0-9]+: (warning\|error): (.*) \[([^]]+)\]$|\1: [tidy \4] \3|")
        if [[ -n "$out" ]]; then
            echo "$out"
            findings=$((findings + $(wc -l <<<"$out")))
        fi
    done
fi

echo "== lint: $findings finding(s)"
[[ $findings -eq 0 ]]
