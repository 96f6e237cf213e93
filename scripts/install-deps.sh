#!/usr/bin/env bash
# Install the Debian packages that `make test` and `make demo` need.
#
# Idempotent: asks dpkg which packages are missing and does nothing else when
# none are. Only when something is missing does it run `apt-get update` and
# install exactly those packages. Runs without a terminal (CI); uses sudo
# only when not already root. Works on Debian 12 (bookworm), 13 (trixie)
# and sid: the one release-specific name, clang's runtime package, follows
# the release's default clang.
#
# Environment:
#   PYPROF_DEPS_SKIP   space-separated packages (or shell patterns:
#                      'libclang-rt-*') not to install, npm included (for a
#                      machine that runs only part of the tests, e.g. the
#                      CI chroots of scripts/ci-chroots.sh; their tests skip
#                      or are not run)
set -euo pipefail

# libclang-rt-N-dev for the release's default clang (clang depends on
# clang-N): 14 on bookworm, 19 on trixie, 21 on sid at the time of writing.
clang_rt_package() {
    local dep major=""
    dep=$(dpkg-query -W -f='${Depends}' clang 2>/dev/null || true)
    [[ $dep =~ clang-([0-9]+) ]] ||
        dep=$(apt-cache show clang 2>/dev/null | sed -n 's/^Depends: //p' | head -n 1)
    if [[ $dep =~ clang-([0-9]+) ]]; then
        major=${BASH_REMATCH[1]}
    else
        case $(sed -n "s/^VERSION_CODENAME=//p" /etc/os-release 2>/dev/null) in
        bookworm) major=14 ;;
        trixie) major=19 ;;
        esac
    fi
    [[ -z $major ]] || echo "libclang-rt-$major-dev"
}
clang_rt=$(clang_rt_package)

packages=(
    apache2             # httpd itself, mpm_event, the modules the tests load
    apache2-dev         # apxs, httpd headers
    libapache2-mod-wsgi-py3
    libcmocka-dev       # unit tests
    python3-dev         # headers of the Python the module builds against
    python3-pytest      # integration tests
    python3-requests
    wrk                 # benchmarks
    apache2-utils       # ab
    curl                # demo traffic
    zlib1g-dev          # gzip for the pprof export
    python3-jsonschema  # checks the speedscope export against its schema
    protobuf-compiler   # protoc: decodes the pprof export
    prometheus          # promtool and a real scraper for /metrics
    chromium            # headless browser test of the pages
    postgresql          # a real database for the DB-API instrumentation test
    python3-psycopg2
    python3-yappi       # a peer in the overhead benchmark
    iproute2            # `ip netns`: the page-access tests' client on "another host"
    # `make hardening` (docs/HARDENING.md): libFuzzer and clang's sanitizer
    # runtimes (clang-14 does not pull libclang-rt-14-dev), llvm-symbolizer
    # for readable sanitizer stacks, valgrind, and the linters; gcc's own
    # libasan/libubsan come with gcc
    clang
    ${clang_rt:+"$clang_rt"}    # libclang-rt-14-dev on bookworm
    llvm
    valgrind
    cppcheck
    clang-tidy
    clang-format        # `make format-check`
)

# shellcheck disable=SC2206
skip=(${PYPROF_DEPS_SKIP:-})
# each word a shell pattern: PYPROF_DEPS_SKIP='libclang-rt-*' works
skipped() {
    local s
    # shellcheck disable=SC2053
    for s in "${skip[@]}"; do [[ $1 == $s ]] && return 0; done
    return 1
}

missing=()
for pkg in "${packages[@]}"; do
    if skipped "$pkg"; then
        continue
    fi
    # db:Status-Abbrev is "ii " only for a fully installed package; removed
    # packages that left config files behind ("rc ") count as missing.
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != ii* ]]; then
        missing+=("$pkg")
    fi
done

# npm fetches speedscope's published schema for the export test; the
# machine may have Node.js (with npm) from elsewhere, so ask for the command
if ! command -v npm >/dev/null 2>&1 && ! skipped npm; then
    missing+=(npm)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-deps: all ${#packages[@]} packages already installed, nothing to do"
    exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    # -n: fail instead of prompting when there is no terminal.
    sudo=(sudo -n)
else
    echo "install-deps: missing ${missing[*]}, and not root and no sudo" >&2
    exit 1
fi

echo "install-deps: missing: ${missing[*]}"
echo "install-deps: running apt-get update"
"${sudo[@]}" apt-get update -q
if [[ -z $clang_rt ]] && ! skipped clang; then
    # an unknown release with no package lists before the update
    clang_rt=$(clang_rt_package)
    [[ -z $clang_rt ]] || skipped "$clang_rt" || missing+=("$clang_rt")
fi
echo "install-deps: installing: ${missing[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${#missing[@]} package(s)"
