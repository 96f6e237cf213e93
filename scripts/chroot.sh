#!/usr/bin/env bash
# Debian chroots for building and testing mod_pyprof against other Debian
# releases (and so other Pythons and mod_wsgi versions) on a Debian host.
#
#   scripts/chroot.sh bootstrap SUITE DIR  debootstrap --variant=minbase
#                                        SUITE (trixie, sid, ...) into DIR
#                                        unless DIR/usr/bin/apt-get exists;
#                                        no daemons start (policy-rc.d)
#   scripts/chroot.sh create SUITE DIR   bootstrap, then install what `make
#                                        all unit integration` and `make
#                                        demo` need
#   scripts/chroot.sh run DIR CMD...     copy this working tree (tracked and
#                                        untracked-not-ignored files, and the
#                                        build/speedscope schema cache) to
#                                        DIR/src/mod_pyprof, fresh each time,
#                                        and run CMD there with bash -lc under
#                                        a clean environment; exits with
#                                        CMD's status
#   scripts/chroot.sh umount DIR         kill whatever still runs inside DIR
#                                        and unmount everything under DIR
#
# create and run mount proc, /dev, /dev/pts and a tmpfs on /dev/shm (httpd's
# and PostgreSQL's shared memory) inside DIR, and on every way out (success,
# failure, SIGINT, SIGTERM) kill every process whose root is DIR and unmount
# everything mounted under DIR. Only mount points strictly under DIR are
# ever unmounted; DIR must not be /.
#
# Environment:
#   PYPROF_CHROOT_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#   PYPROF_CHROOT_EXTRA   more packages for create to install
#
# The chroot shares the host's network (httpd in there listens on the host's
# 127.0.0.1) and its /dev. One command at a time per DIR: the cleanup of one
# would kill the other's processes. Needs root, debootstrap and util-linux.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MIRROR=${PYPROF_CHROOT_MIRROR:-http://deb.debian.org/debian}
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# What the unit and integration tests and `make demo` need (see
# scripts/install-deps.sh for the host's list). Left out on purpose, the
# tests that use them skip or are not run: chromium (test_browser skips),
# apache2-utils/python3-yappi (benchmarks only), the hardening tools, and
# npm (the speedscope schema is copied from the host's build/ cache).
# prometheus (with promtool: test_metrics) and wrk (test_soak_short) are
# small.
PACKAGES=(
    gcc make apache2 apache2-dev libapache2-mod-wsgi-py3 python3-dev
    libcmocka-dev python3-pytest python3-requests curl zlib1g-dev
    python3-jsonschema protobuf-compiler postgresql python3-psycopg2
    prometheus wrk procps iproute2 ca-certificates git
)

log() { echo "chroot.sh: $*" >&2; }
die() { log "$*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root"

# canonical DIR, refusing / and anything that is not a directory
resolve_dir() {
    local d=$1
    [[ -n "$d" ]] || die "no DIR given"
    mkdir -p -- "$d"
    d=$(realpath -e -- "$d")
    [[ "$d" != / ]] || die "refusing DIR=/"
    [[ "$d" != "$(realpath -e "$REPO")" ]] || die "refusing DIR = the repository"
    printf '%s\n' "$d"
}

# mount points strictly under $1, deepest first (from /proc/self/mountinfo;
# field 5 is the mount point with spaces etc. as octal escapes)
mounts_under() {
    local root=$1 mp
    awk '{print $5}' /proc/self/mountinfo | while IFS= read -r mp; do
        mp=$(printf '%b' "$mp")
        [[ "$mp" == "$root"/* ]] && printf '%s\n' "$mp"
    done | awk '{print length($0) "\t" $0}' | sort -rn -k1,1 | cut -f2- | uniq
}

is_mounted() {
    local want=$1 mp
    while IFS= read -r mp; do
        [[ "$(printf '%b' "$mp")" == "$want" ]] && return 0
    done < <(awk '{print $5}' /proc/self/mountinfo)
    return 1
}

# pids whose root directory is $1 or below it
pids_in() {
    local root=$1 p r
    for p in /proc/[0-9]*; do
        r=$(readlink "$p/root" 2>/dev/null) || continue
        if [[ "$r" == "$root" || "$r" == "$root"/* ]]; then
            printf '%s\n' "${p#/proc/}"
        fi
    done
}

kill_in() {
    local root=$1 sig i
    local -a pids
    for sig in TERM TERM KILL KILL; do
        mapfile -t pids < <(pids_in "$root")
        [[ ${#pids[@]} -gt 0 ]] || return 0
        log "sending SIG$sig to processes left in $root: ${pids[*]}"
        kill -s "$sig" "${pids[@]}" 2>/dev/null || true
        for ((i = 0; i < 30; i++)); do
            [[ -n "$(pids_in "$root")" ]] || return 0
            sleep 0.1
        done
    done
    mapfile -t pids < <(pids_in "$root")
    [[ ${#pids[@]} -eq 0 ]] || log "WARNING: still running in $root: ${pids[*]}"
}

umount_all() {
    local root=$1 mp _
    for _ in 1 2 3; do
        while IFS= read -r mp; do
            [[ -n "$mp" && "$mp" == "$root"/* ]] || continue
            umount -- "$mp" 2>/dev/null || umount -l -- "$mp" 2>/dev/null || true
        done < <(mounts_under "$root")
        [[ -z "$(mounts_under "$root")" ]] && return 0
        sleep 0.5
    done
    log "WARNING: still mounted under $root: $(mounts_under "$root" | tr '\n' ' ')"
    return 1
}

cleanup() {
    local rc=$?
    trap - EXIT
    # ignore, not default: a signal often comes twice (`timeout` sends it to
    # its child and then to the child's process group), and the second must
    # not cut the cleanup short
    trap '' INT TERM HUP
    if [[ -n "${CLEAN_DIR:-}" ]]; then
        kill_in "$CLEAN_DIR"
        umount_all "$CLEAN_DIR" || true
    fi
    exit "$rc"
}

on_signal() {
    trap '' INT TERM HUP
    log "interrupted ($1)"
    exit $((128 + $2))
}

arm_cleanup() {
    CLEAN_DIR=$1
    trap cleanup EXIT
    trap 'on_signal INT 2' INT
    trap 'on_signal TERM 15' TERM
    trap 'on_signal HUP 1' HUP
}

mount_all() {
    local d=$1
    mkdir -p "$d/proc" "$d/dev" "$d/sys"
    is_mounted "$d/proc" || mount -t proc proc "$d/proc"
    is_mounted "$d/dev" || mount --bind /dev "$d/dev"
    # a private mount, so nothing mounted under DIR/dev reaches the host's /dev
    mount --make-private "$d/dev" 2>/dev/null || true
    if [[ -d /dev/pts ]] && ! is_mounted "$d/dev/pts"; then
        mount --bind /dev/pts "$d/dev/pts"
    fi
    # its own tmpfs: the host's /dev/shm is a separate mount the bind above
    # does not carry, and the chroot's POSIX shared memory stays its own
    if ! is_mounted "$d/dev/shm"; then
        mkdir -p "$d/dev/shm"
        mount -t tmpfs -o mode=1777,size=1g shm "$d/dev/shm"
    fi
    chmod 1777 "$d/tmp" 2>/dev/null || true
}

# Run a command in the background and wait for it: a trapped SIGTERM or
# SIGINT interrupts `wait` at once (bash defers traps while a foreground
# command runs), and the cleanup then kills what runs inside the chroot.
bg_wait() {
    "$@" &
    wait $!
}

in_chroot() {
    local d=$1
    shift
    bg_wait chroot "$d" env -i PATH="$CHROOT_PATH" HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

is_sid() { [[ "$1" == sid || "$1" == unstable ]]; }

cmd_bootstrap() {
    local suite=$1 d=$2
    if [[ ! -x "$d/usr/bin/apt-get" ]]; then
        command -v debootstrap >/dev/null || die "debootstrap missing (apt-get install debootstrap)"
        # a half-finished debootstrap leaves no apt-get behind; start over
        # only where nothing is mounted
        [[ -z "$(mounts_under "$d")" ]] || die "$d has mounts; scripts/chroot.sh umount $d first"
        log "debootstrap $suite into $d"
        bg_wait debootstrap --variant=minbase "$suite" "$d" "$MIRROR"
    else
        log "$d already bootstrapped (Debian $(cat "$d/etc/debian_version" 2>/dev/null))"
    fi
    # no daemons started by package scripts (apache2, postgresql), as in
    # Debian's Docker images
    printf '#!/bin/sh\nexit 101\n' >"$d/usr/sbin/policy-rc.d"
    chmod 755 "$d/usr/sbin/policy-rc.d"
    cp -L /etc/resolv.conf "$d/etc/resolv.conf" 2>/dev/null || true
    if is_sid "$suite"; then
        # sid's Release files are only valid for a week; a mirror or a
        # snapshot that lags behind serves expired ones (seen here: sid
        # InRelease 28 days past Valid-Until). Also for plain `apt-get
        # update` run inside (scripts/docker-check.sh).
        echo 'Acquire::Check-Valid-Until "false";' \
            >"$d/etc/apt/apt.conf.d/99pyprof-no-valid-until"
    fi
}

cmd_create() {
    local suite=$1 d
    d=$(resolve_dir "$2")
    arm_cleanup "$d"
    cmd_bootstrap "$suite" "$d"
    mount_all "$d"

    local update=(apt-get -q update)
    local pkgs=("${PACKAGES[@]}")
    if is_sid "$suite"; then
        update=(apt-get -q -o Acquire::Check-Valid-Until=false update)
        # the newest Python besides the default; libapache2-mod-wsgi-py3
        # ships mod_wsgi.so-3.NN for every supported Python 3.NN
        pkgs+=(python3.15 python3.15-dev)
    fi
    # shellcheck disable=SC2206
    pkgs+=(${PYPROF_CHROOT_EXTRA:-})
    log "$suite: ${update[*]}"
    in_chroot "$d" "${update[@]}"
    log "$suite: installing ${pkgs[*]}"
    in_chroot "$d" apt-get install -y -q --no-install-recommends "${pkgs[@]}"
    in_chroot "$d" apt-get clean
    log "$suite: ready in $d: $(in_chroot "$d" python3 --version 2>&1)," \
        "$(in_chroot "$d" sh -c 'ls /usr/lib/apache2/modules | grep wsgi | tr "\n" " "')"
}

copy_tree() {
    local d=$1 dest=$1/src/mod_pyprof
    rm -rf -- "$dest"
    mkdir -p "$dest"
    if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
        # tracked (minus deleted) and untracked-not-ignored files
        (cd "$REPO" && git ls-files -z -co --exclude-standard \
            | while IFS= read -r -d '' f; do
                  [[ -e "$f" || -L "$f" ]] && printf '%s\0' "$f"
              done \
            | tar --null -T - -cf -) | tar -xf - -C "$dest"
    else
        (cd "$REPO" && tar --exclude=./build --exclude=.git -cf - .) | tar -xf - -C "$dest"
    fi
    # speedscope's schema, fetched once by the host's `make test` through
    # npm: the chroot then needs neither npm nor the npm registry
    if [[ -d "$REPO/build/speedscope" ]]; then
        mkdir -p "$dest/build"
        cp -a "$REPO/build/speedscope" "$dest/build/"
    fi
}

cmd_run() {
    local d
    d=$(resolve_dir "$1")
    shift
    [[ $# -gt 0 ]] || die "run: no command"
    [[ -x "$d/usr/bin/apt-get" ]] || die "$d is not a chroot (scripts/chroot.sh create first)"
    arm_cleanup "$d"
    mount_all "$d"
    cp -L /etc/resolv.conf "$d/etc/resolv.conf" 2>/dev/null || true
    copy_tree "$d"
    local rc=0
    in_chroot "$d" bash -lc "cd /src/mod_pyprof && $*" || rc=$?
    [[ $rc -eq 0 ]] || log "run: exit status $rc: $*"
    return $rc
}

cmd_umount() {
    local d
    d=$(resolve_dir "$1")
    kill_in "$d"
    umount_all "$d"
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

case "${1:-}" in
    bootstrap)
        [[ $# -eq 3 ]] || usage
        d=$(resolve_dir "$3")
        cmd_bootstrap "$2" "$d"
        ;;
    create) [[ $# -eq 3 ]] || usage; cmd_create "$2" "$3" ;;
    run) [[ $# -ge 3 ]] || usage; shift; cmd_run "$@" ;;
    umount) [[ $# -eq 2 ]] || usage; cmd_umount "$2" ;;
    *) usage ;;
esac
