#!/usr/bin/env bash
# CI stage: build and test mod_pyprof on Debian 13 (trixie: CPython 3.13,
# mod_wsgi 5.0) and Debian sid (CPython 3.14, and 3.15 through
# mod_wsgi.so-3.15) in chroots (scripts/chroot.sh), check `make demo` from a
# fresh clone, and run docker/Dockerfile's steps (scripts/docker-check.sh).
#
#   bash scripts/ci-chroots.sh
#   bash scripts/ci-chroots.sh --create    only make the chroots
#
# Steps (each bounded by `timeout`; a failed step does not stop the others;
# the exit status is 1 if any failed):
#   trixie-base    debootstrap trixie once into WORK/trixie-base (never
#                  entered: the pristine image for the Dockerfile check and
#                  the seed of WORK/trixie)
#   create-*       WORK/trixie and WORK/sid with the test packages (both at
#                  once; reused when they exist, only missing packages are
#                  installed)
#   trixie         make all unit && PYPROF_MPMS=event make integration,
#                  without the host-only files (HOST_ONLY below)
#   trixie-demo    git clone of the tree; `make demo` there must print the
#                  profile URL and its /server-profile?format=json must list
#                  requests; then `make demo-stop`
#   sid-3.14       as trixie, with sid's default python3
#   sid-3.15       the same with PYTHON=/usr/bin/python3.15 and
#                  PYPROF_WSGI_SO=.../mod_wsgi.so-3.15 (in a fresh copy of
#                  the tree, like every step)
#   trixie-docker  scripts/docker-check.sh trixie in a fresh copy of
#                  WORK/trixie-base, deleted afterwards
#
# Environment:
#   PYPROF_CI_CHROOT_DIR  work directory (default /var/tmp/pyprof-ci)
#   PYPROF_CI_STEPS       steps to run (default: all, in the order above;
#                         the create steps run when a later step needs them)
#
# Needs root and a network (deb.debian.org). Installs debootstrap when it
# is missing. Prints each step's time and a summary.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PYPROF_CI_CHROOT_DIR:-/var/tmp/pyprof-ci}
STEPS=${PYPROF_CI_STEPS:-"trixie trixie-demo sid-3.14 sid-3.15 trixie-docker"}
CHROOT=(bash "$REPO/scripts/chroot.sh")

# what the chroots leave out (scripts/chroot.sh PACKAGES): `make demo`'s
# deps step must not install them there
DEPS_SKIP="apache2-utils chromium python3-yappi clang libclang-rt-* llvm valgrind cppcheck clang-tidy clang-format npm"

mkdir -p "$WORK" && WORK=$(realpath "$WORK") || exit 1

declare -a summary=()
failed=0
t_all=$(date +%s)

log() { echo "ci-chroots: $*"; }

# Every step runs under `timeout`, started in the background and waited
# for, so that a SIGTERM or SIGINT to this script (.ci/run's own timeout,
# Ctrl-C) is handled at once: it is passed to the running steps' timeout
# processes, which pass it to their commands (scripts/chroot.sh then kills
# what runs in the chroot and unmounts), and waited for. (`timeout` puts
# itself in its own process group, so a signal to ours does not reach it.)
declare -A live=()
# shellcheck disable=SC2317  # reached through the traps
on_signal() {
    trap '' INT TERM
    log "interrupted: stopping the running steps (${!live[*]})"
    local p
    for p in "${!live[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${!live[@]}"; do wait "$p" 2>/dev/null || true; done
    exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# start_step NAME TIMEOUT CMD...: start in the background; sets STEP_PID
start_step() {
    local name=$1 limit=$2
    shift 2
    log "=== $name (limit $limit) ==="
    STEP_T0[$name]=$(date +%s)
    timeout -k 30 "$limit" "$@" &
    STEP_PID=$!
    live[$STEP_PID]=$name
}
declare -A STEP_T0=()

# finish_step NAME PID: wait, time and record; returns the step's status
finish_step() {
    local name=$1 pid=$2 rc=0
    wait "$pid" || rc=$?
    unset "live[$pid]"
    local dt=$(($(date +%s) - STEP_T0[$name]))
    local what=ok
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then
        what="TIMED OUT"
    elif [[ $rc -ne 0 ]]; then
        what="FAILED (exit $rc)"
    fi
    [[ $rc -eq 0 ]] || failed=1
    log "=== $name: $what in ${dt}s ==="
    summary+=("$(printf '%-14s %-18s %5ss' "$name" "$what" "$dt")")
    return $rc
}

# step NAME TIMEOUT CMD...: run, time and record
step() {
    start_step "$@"
    finish_step "$1" "$STEP_PID"
}

wants() { [[ " $STEPS " == *" $1 "* ]]; }

safe_rm() {
    # nothing mounted under it (a bind-mounted /dev would be emptied)
    local d=$1
    "${CHROOT[@]}" umount "$d" >/dev/null || return 1
    if awk '{print $5}' /proc/self/mountinfo | grep -q "^$d/"; then
        log "still mounted under $d; not removing it"
        return 1
    fi
    rm -rf --one-file-system -- "$d"
}

# internal: the parts a step runs under `timeout` (which runs programs, not
# shell functions)
if [[ ${1:-} == --do ]]; then
    case ${2:-} in
    create-trixie)
        "${CHROOT[@]}" bootstrap trixie "$WORK/trixie-base" || exit 1
        if [[ ! -x "$WORK/trixie/usr/bin/apt-get" ]]; then
            safe_rm "$WORK/trixie" || exit 1
            cp -a "$WORK/trixie-base" "$WORK/trixie" || exit 1
        fi
        exec "${CHROOT[@]}" create trixie "$WORK/trixie"
        ;;
    demo-trixie)
        # a bare Debian 13 (debootstrap minbase) and a clean clone: `make
        # demo` must install everything it needs itself; only make is
        # there first, as on a machine where someone typed
        # `apt-get install make git && git clone ... && make demo`
        safe_rm "$WORK/trixie-demo" || exit 1
        cp -a "$WORK/trixie-base" "$WORK/trixie-demo" || exit 1
        rm -rf "$WORK/demo-clone"
        git clone -q "$REPO" "$WORK/demo-clone" || exit 1
        # the clone holds what is committed; the CI tree is a clean clone
        # already, and a developer's uncommitted work is not what CI tests
        rc=0
        [[ -n ${DEMO_CHECK:-} ]] || exit 2
        bash "$WORK/demo-clone/scripts/chroot.sh" run "$WORK/trixie-demo" "$DEMO_CHECK" || rc=$?
        safe_rm "$WORK/trixie-demo" || true
        rm -rf "$WORK/demo-clone"
        exit $rc
        ;;
    docker-trixie)
        safe_rm "$WORK/trixie-docker" || exit 1
        cp -a "$WORK/trixie-base" "$WORK/trixie-docker" || exit 1
        rc=0
        bash "$REPO/scripts/docker-check.sh" trixie "$WORK/trixie-docker" || rc=$?
        safe_rm "$WORK/trixie-docker" || true
        exit $rc
        ;;
    esac
    exit 2
fi

if [[ $(id -u) -ne 0 ]]; then
    log "must run as root (chroot, mount)"
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends debootstrap || exit 1
fi

# -- chroots ----------------------------------------------------------------

need_trixie=0
need_sid=0
for s in trixie trixie-demo trixie-docker; do wants "$s" && need_trixie=1; done
for s in sid-3.14 sid-3.15; do wants "$s" && need_sid=1; done

ok_trixie=1
ok_sid=1
if [[ $need_trixie == 1 || $need_sid == 1 ]]; then
    # both at once: mostly waiting on the mirror
    log "creating the chroots in $WORK (logs: $WORK/create-*.log)"
    declare -A create_pid=()
    if [[ $need_trixie == 1 ]]; then
        start_step create-trixie 25m bash "$0" --do create-trixie >"$WORK/create-trixie.log" 2>&1
        create_pid[trixie]=$STEP_PID
    fi
    if [[ $need_sid == 1 ]]; then
        start_step create-sid 25m "${CHROOT[@]}" create sid "$WORK/sid" >"$WORK/create-sid.log" 2>&1
        create_pid[sid]=$STEP_PID
    fi
    for s in trixie sid; do
        [[ -n "${create_pid[$s]:-}" ]] || continue
        if finish_step "create-$s" "${create_pid[$s]}"; then
            # the apt noise only when it failed
            grep -E '^chroot.sh:' "$WORK/create-$s.log"
        else
            cat "$WORK/create-$s.log"
            eval "ok_$s=0"
        fi
    done
fi

# `ci-chroots.sh --create`: only the chroots (.ci/run makes them while
# `make test` runs; the later full run reuses them)
if [[ ${1:-} == --create ]]; then
    [[ $ok_trixie == 1 && $ok_sid == 1 ]]
    exit $?
fi

# -- tests ------------------------------------------------------------------

# In the chroots, the integration files whose outcome depends on the
# Python and mod_wsgi version: every file but the ones below, which test the
# pages, exports, access rules and input parsing (C that no Python header
# reaches; the host runs them on every MPM), the browser and network
# namespace tests (they skip in a chroot) and the short soak (110 s per
# run; the host runs it on every MPM, and the lifecycle files kept here
# cover fork, graceful restarts, kills and reaping on each Python).  A new
# file runs here unless it is added to this list.
HOST_ONLY="test_access test_bad_input test_browser test_configtest test_exports
test_harness test_limits test_locations test_metrics test_profile_pages
test_secrets test_soak_short test_views"
IGNORE=
for f in $HOST_ONLY; do IGNORE+=" --ignore=tests/integration/$f.py"; done
TESTS="make all unit && PYPROF_MPMS=event make integration PYTEST_ARGS='$IGNORE'"

# no `make clean`: every step builds in a fresh copy of the tree, and
# `make clean` would delete build/speedscope, the schema cache chroot.sh
# copies in (the chroots have no npm)
PY315="make PYTHON=/usr/bin/python3.15 all unit && \
PYPROF_WSGI_SO=/usr/lib/apache2/modules/mod_wsgi.so-3.15 PYPROF_MPMS=event \
make PYTHON=/usr/bin/python3.15 integration PYTEST_ARGS='$IGNORE'"

DEMO_CHECK="set -eo pipefail
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends make >/dev/null
PYPROF_DEPS_SKIP='$DEPS_SKIP' bash scripts/demo-check.sh"
export DEMO_CHECK # for `$0 --do demo-trixie`

if wants trixie; then
    if [[ $ok_trixie == 1 ]]; then step trixie 12m "${CHROOT[@]}" run "$WORK/trixie" "$TESTS"; else summary+=("trixie         skipped (no chroot)"); fi
fi
if wants trixie-demo; then
    if [[ $ok_trixie == 1 ]]; then step trixie-demo 8m bash "$0" --do demo-trixie; else summary+=("trixie-demo    skipped (no chroot)"); fi
fi
if wants sid-3.14; then
    if [[ $ok_sid == 1 ]]; then step sid-3.14 12m "${CHROOT[@]}" run "$WORK/sid" "$TESTS"; else summary+=("sid-3.14       skipped (no chroot)"); fi
fi
if wants sid-3.15; then
    if [[ $ok_sid == 1 ]]; then step sid-3.15 12m "${CHROOT[@]}" run "$WORK/sid" "$PY315"; else summary+=("sid-3.15       skipped (no chroot)"); fi
fi
if wants trixie-docker; then
    if [[ $ok_trixie == 1 ]]; then
        step trixie-docker 8m bash "$0" --do docker-trixie
    else
        summary+=("trixie-docker  skipped (no chroot)")
    fi
fi

log "summary (total $(($(date +%s) - t_all))s):"
for line in "${summary[@]}"; do echo "    $line"; done
exit $failed
