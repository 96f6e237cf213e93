#!/usr/bin/env bash
# Run every cmocka unit test (build/unit/test_*) under valgrind memcheck.
#
# Fails on any memcheck error (invalid read/write, use of uninitialised
# values, invalid free) and on any definite, indirect or possible leak; a
# per-test log is kept in build/valgrind/.  The tests are the ones `make
# unit` builds (-O1 -g); build them first (`make check-valgrind` does).
#
# The render tests fork and exec /usr/bin/python3 to check JSON: valgrind
# stays on the test (no --trace-children), so Python is not checked and
# its allocations are not counted.
#
# Usage: tests/unit/valgrind-unit.sh [TEST...]   (default: every build/unit/test_*)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

command -v valgrind >/dev/null || { echo "valgrind-unit: valgrind not installed" >&2; exit 2; }

tests=("$@")
if [[ ${#tests[@]} -eq 0 ]]; then
    shopt -s nullglob
    tests=(build/unit/test_*)
fi
if [[ ${#tests[@]} -eq 0 ]]; then
    echo "valgrind-unit: no tests in build/unit/ (run make unit)" >&2
    exit 2
fi

VALGRIND_TEST_LIMIT=${VALGRIND_TEST_LIMIT:-600}
mkdir -p build/valgrind
failed=0
for t in "${tests[@]}"; do
    name=$(basename "$t")
    log=build/valgrind/$name.log
    echo "== valgrind $name"
    set +e
    # bounded: a test that hangs under valgrind's one-thread-at-a-time
    # scheduling fails here instead of eating CI's time
    PP_UNIT_UNDER_VALGRIND=1 timeout -k 10 "$VALGRIND_TEST_LIMIT" \
        valgrind --tool=memcheck --leak-check=full \
        --show-leak-kinds=definite,indirect,possible \
        --errors-for-leak-kinds=definite,indirect,possible \
        --track-origins=yes --error-exitcode=99 \
        --log-file="$log" "$t" >"build/valgrind/$name.out" 2>&1
    rc=$?
    set -e
    # one line per test, summed over its processes (the store tests fork
    # children that exit with _exit: their blocks are "still reachable",
    # which is not a leak)
    awk '
        /ERROR SUMMARY:/ { procs++; errors += $4 }
        /definitely lost:/ { gsub(",", "", $4); definite += $4 }
        /indirectly lost:/ { gsub(",", "", $4); indirect += $4 }
        /possibly lost:/ { gsub(",", "", $4); possible += $4 }
        /still reachable:/ { gsub(",", "", $4); reachable += $4 }
        END { printf "   %d process(es): %d errors; lost: %d definite, %d " \
              "indirect, %d possible bytes; %d bytes still reachable\n", \
              procs, errors, definite, indirect, possible, reachable }
    ' "$log"
    grep -E '^\[  (PASSED|FAILED)' "build/valgrind/$name.out" | sed 's/^/   /' || true
    if [[ $rc -eq 99 ]]; then
        echo "   FAILED: memcheck errors or leaks, see $log"
        failed=1
    elif [[ $rc -eq 124 || $rc -eq 137 ]]; then
        echo "   FAILED: still running after ${VALGRIND_TEST_LIMIT}s, see build/valgrind/$name.out"
        failed=1
    elif [[ $rc -ne 0 ]]; then
        echo "   FAILED: the test itself failed (rc $rc), see build/valgrind/$name.out"
        failed=1
    fi
done
exit $failed
