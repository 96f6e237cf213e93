#!/usr/bin/env bash
# Run the mod_pyprof demo: a standalone httpd on 127.0.0.1 serving
# demo/app.py through mod_wsgi, profiled by the freshly built module.
#
#   scripts/demo.sh start    (re)start it, send some traffic, print the URLs
#   scripts/demo.sh stop     stop it
#
# Builds nothing: `make demo` builds the module first. Everything the server
# writes (config, logs, pid) goes to the state directory.
#
# Environment:
#   PYPROF_DEMO_DIR        state directory (default /tmp/mod_pyprof-demo)
#   PYPROF_MODULE          module to load
#                          (default <repo>/mod_pyprof/.libs/mod_pyprof.so)
#   PYPROF_DEMO_REQUESTS   requests to send after start (default 60; 0: none)
#   PYPROF_DEMO_NO_MODULE  1: leave mod_pyprof out (LoadModule, PyProf*,
#                          /server-profile) to debug the demo set-up itself
#   PYPROF_WSGI_SO         the mod_wsgi to load (default
#                          /usr/lib/apache2/modules/mod_wsgi.so); the module
#                          must be built for the same Python
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${PYPROF_DEMO_DIR:-/tmp/mod_pyprof-demo}
module=${PYPROF_MODULE:-$repo/mod_pyprof/.libs/mod_pyprof.so}
requests=${PYPROF_DEMO_REQUESTS:-60}
no_module=${PYPROF_DEMO_NO_MODULE:-0}
wsgi_so=${PYPROF_WSGI_SO:-/usr/lib/apache2/modules/mod_wsgi.so}
httpd=/usr/sbin/apache2
python=/usr/bin/python3
conf=$state/httpd.conf
pidfile=$state/httpd.pid

say() { echo "demo: $*"; }
die() { echo "demo: $*" >&2; exit 1; }

pid_alive() {
    local pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# Run httpd with a clean Python environment: mod_wsgi embeds Debian's
# Python, which must not pick up another Python's home or path.
run_httpd() {
    env -u PYTHONHOME -u PYTHONPATH "$httpd" -f "$conf" "$@"
}

stop_demo() {
    if ! pid_alive; then
        rm -f "$pidfile"
        say "not running"
        return 0
    fi
    local pid
    pid=$(<"$pidfile")
    say "stopping httpd (pid $pid)"
    run_httpd -k stop || true
    # httpd gives its children a few seconds, then SIGKILLs them; allow for
    # that, then stop waiting and kill the parent ourselves.
    local i
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "httpd still running after 20s; sending SIGKILL to $pid"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    say "stopped"
}

free_port() {
    "$python" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# The children run as www-data and must be able to read the app. Serve it
# from the repository when they can (so stacks show the repository's path),
# otherwise from a copy in the state directory.
app_path() {
    local app=$repo/demo/app.py
    if [[ $(id -u) -eq 0 ]] && ! runuser -u www-data -- test -r "$app" 2>/dev/null; then
        install -m 0644 "$app" "$state/app.py"
        app=$state/app.py
    fi
    echo "$app"
}

write_conf() {
    local port=$1 app=$2 pyprof_load="" pyprof_conf="" loglevel=warn
    if [[ $no_module != 1 ]]; then
        loglevel="warn pyprof:info"
        pyprof_load="LoadModule pyprof_module $module"
        pyprof_conf="PyProfSample /app 10ms
PyProfSlowThreshold 200ms
# off by default in a real server (it costs CPU: README, Limits); on here
# so the request pages show what each request allocated and kept
PyProfAllocations 256K

<Location /server-profile>
    SetHandler server-profile
    Require local
</Location>"
    fi
    cat >"$conf" <<EOF
# Written by scripts/demo.sh; rewritten on every start.
ServerRoot "$state"
DefaultRuntimeDir "$state"
PidFile "$pidfile"
ServerName 127.0.0.1
Listen 127.0.0.1:$port

LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule authz_host_module /usr/lib/apache2/modules/mod_authz_host.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
# Debian compiles these two into the server; elsewhere they are DSOs.
<IfModule !log_config_module>
    LoadModule log_config_module /usr/lib/apache2/modules/mod_log_config.so
</IfModule>
<IfModule !unixd_module>
    LoadModule unixd_module /usr/lib/apache2/modules/mod_unixd.so
</IfModule>
LoadModule wsgi_module $wsgi_so
$pyprof_load

# Started as root without User/Group, httpd logs AH02155 at alert level.
User www-data
Group www-data

# Two small children, so requests (and the profile page) land in both.
StartServers 2
ServerLimit 2
ThreadsPerChild 8
MaxRequestWorkers 16
MinSpareThreads 8
MaxSpareThreads 16

TypesConfig /etc/mime.types
ErrorLog "$state/error.log"
LogLevel $loglevel
LogFormat "%h %t \"%r\" %>s %b %{ms}Tms" demo
CustomLog "$state/access.log" demo

# mod_wsgi maps PATH_INFO through a subrequest to set PATH_TRANSLATED, so
# the document root must be readable too or every request logs AH01630.
DocumentRoot "$state/htdocs"
<Directory />
    Require all denied
</Directory>
<Directory "$state/htdocs">
    Require all granted
</Directory>
<Directory "$(dirname "$app")">
    Require all granted
</Directory>

WSGIScriptAlias /app "$app"
# mod_wsgi 4.9.4 with Python 3.11 can hang finalising the interpreter when a
# child stops (AH00045); skipping finalisation makes \`stop\` take a second.
WSGIDestroyInterpreter Off

$pyprof_conf
EOF
}

# Ready when the pid file names a live process and the port accepts: httpd
# listens before it detaches and writes the pid file, so wait for both.
wait_for_server() {
    local port=$1 i
    for ((i = 0; i < 100; i++)); do
        if pid_alive && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# Bounded traffic: $requests requests over the demo's endpoints, two at a
# time, each with a time limit, the whole batch with one too.
drive_traffic() {
    local base=$1 n=$2
    ((n > 0)) || return 0
    local paths=(
        / /fast /fast /fast /fast /report /report /report /slow-db /slow-db
        /slow-db /mixed /mixed "/search?q=apache" "/search?q=python+wsgi"
        "/search?q=slow+request+profile+histogram"
    )
    say "sending $n requests (2 concurrent) to $base/app/ ..."
    local i
    for ((i = 0; i < n; i++)); do
        echo "$base/app${paths[RANDOM % ${#paths[@]}]}"
    done | timeout 120 xargs -P 2 -n 1 \
        curl -s -o /dev/null --max-time 10 -w '%{http_code}\n' \
        >"$state/traffic.txt" || true
    say "responses by status: $(sort "$state/traffic.txt" | uniq -c |
        awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')"
}

slowest_request_url() {
    local base=$1
    curl -s --max-time 5 "$base/server-profile?format=json" 2>/dev/null |
        "$python" -c 'import json, sys
try:
    reqs = json.load(sys.stdin).get("requests") or []
except ValueError:
    sys.exit(0)
if reqs:
    print(sys.argv[1] + "/server-profile/request/" + str(reqs[0]["id"]))' \
        "$base" || true
}

start_demo() {
    [[ -x $httpd ]] || die "$httpd not found: run 'make deps' first"
    [[ -r $wsgi_so ]] ||
        die "mod_wsgi not installed ($wsgi_so): run 'make deps' first"
    if [[ $no_module != 1 && ! -r $module ]]; then
        die "$module not found: run 'make' first (or 'make demo')"
    fi
    mkdir -p "$state/htdocs"
    chmod 0755 "$state" "$state/htdocs"
    if pid_alive; then
        say "an earlier demo is running; stopping it first"
        stop_demo
    fi
    rm -f "$pidfile"

    local port app base
    port=$(free_port)
    app=$(app_path)
    write_conf "$port" "$app"
    : >"$state/error.log"
    local check
    if ! check=$(run_httpd -t 2>&1); then
        echo "$check" >&2
        die "config test failed: $conf"
    fi
    run_httpd -k start
    if ! wait_for_server "$port"; then
        tail -n 20 "$state/error.log" >&2 || true
        die "httpd did not start listening on 127.0.0.1:$port"
    fi
    base=http://127.0.0.1:$port
    echo "$port" >"$state/port"
    say "httpd running (pid $(<"$pidfile")) on $base"

    drive_traffic "$base" "$requests"

    echo
    echo "  app:        $base/app/"
    if [[ $no_module != 1 ]]; then
        echo "  profile:    $base/server-profile"
        local slowest
        slowest=$(slowest_request_url "$base")
        [[ -z $slowest ]] || echo "  slowest:    $slowest"
    else
        echo "  profile:    (PYPROF_DEMO_NO_MODULE=1: mod_pyprof not loaded)"
    fi
    echo "  state dir:  $state"
    echo "  config:     $conf"
    echo "  error log:  $state/error.log"
    echo "  access log: $state/access.log"
    echo
    echo "  stop with:  make demo-stop   (or: bash scripts/demo.sh stop)"
}

case ${1:-} in
start) start_demo ;;
stop) stop_demo ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
