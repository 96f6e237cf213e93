"""The one httpd harness of the test tree: a real standalone httpd + mod_wsgi
(+ mod_pyprof), as httpd's own test/pyhttpd serves all its suites.

`Httpd` writes a complete standalone httpd configuration into its own
temporary directory (nothing from /etc/apache2 is read), starts it with
`apache2 -f CONF -k start`, talks to it over 127.0.0.1 and stops it with
`-k stop`.  Children run as www-data, so everything the server reads is made
world-readable.  `log_problems()` lists what in the error log makes a run
fail: a crash, a fatal Python error or an [error]/[crit]/[alert]/[emerg]
line nobody declared expected.  Its users: the integration tests
(tests/integration/conftest.py wraps it in pytest fixtures), the benchmark
(tests/bench/overhead.py, segment_cost.py), the soak runs (tests/soak/) and
the HTTP fuzzer (tests/fuzz/fuzz-http.py).

Environment:
    PYPROF_MODULE      module under test (default <repo>/mod_pyprof/.libs/mod_pyprof.so)
    PYPROF_NO_MODULE=1 run the integration tests without mod_pyprof: only the
                       harness self-tests run, everything needing the module
                       is skipped
    PYPROF_MPMS        comma-separated MPMs to run (default "event,prefork,worker")
    PYPROF_KEEP_TMP=1  keep every server directory (they are kept on failure)
    PYPROF_TMPDIR      where the server directories go (default /tmp)
    PYPROF_EXTRA_CONF  directives appended to every generated config, for
                       diagnosis (e.g. "WSGIApplicationGroup %{GLOBAL}")
    PYPROF_WSGI_SO     the mod_wsgi to load (default
                       /usr/lib/apache2/modules/mod_wsgi.so, Debian's link to
                       the one for the default python3); e.g.
                       /usr/lib/apache2/modules/mod_wsgi.so-3.15 to test
                       under another Python mod_wsgi supports

Every wait in here is bounded in time and every loop in count.
"""

import json
import os
import re
import shutil
import signal
import socket
import resource
import stat
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
INTEGRATION = os.path.join(REPO, "tests", "integration")
APACHE = "/usr/sbin/apache2"
APACHE_MODULES = "/usr/lib/apache2/modules"
WSGI_SO = os.environ.get("PYPROF_WSGI_SO") or os.path.join(APACHE_MODULES, "mod_wsgi.so")
DEFAULT_MODULE = os.path.join(REPO, "mod_pyprof", ".libs", "mod_pyprof.so")
APP_SOURCE = os.path.join(INTEGRATION, "apps", "app.py")
# the helpers every test app imports (burn_cpu, sleep_for), copied next to them
TESTLIB_SOURCE = os.path.join(INTEGRATION, "apps", "pyprof_testlib.py")

CLEAN_ENV = {"LANG": "C", "LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

START_TIMEOUT = 20.0
# httpd's own reclaim gives up on children after ~10 s (SIGKILL at 9 s).
STOP_TIMEOUT = 25.0
HTTP_TIMEOUT = 15.0

# Two children that stay up: idle threads never exceed MaxSpareThreads,
# and MinSpareThreads is low enough that tests with <= 10 concurrent
# requests never make the MPM want a third child it may not fork.
_THREADED_SETTINGS = """\
StartServers 2
ServerLimit 2
ThreadLimit 8
ThreadsPerChild 8
MaxRequestWorkers 16
MinSpareThreads 1
MaxSpareThreads 16
MaxConnectionsPerChild 0
"""

MPM_SETTINGS = {
    "event": _THREADED_SETTINGS,
    "worker": _THREADED_SETTINGS,
    "prefork": """\
StartServers 3
MinSpareServers 3
MaxSpareServers 6
ServerLimit 8
MaxRequestWorkers 8
MaxConnectionsPerChild 0
""",
}

# How many requests a test may have in flight at once per MPM without
# reaching MaxRequestWorkers (which httpd logs at error level).
MAX_CONCURRENCY = {"event": 10, "worker": 10, "prefork": 6}

# Error-log lines that are failures whatever their level, never whitelisted.
CRASH_MARKERS = ("Segmentation fault", "exit signal", "Fatal Python error")
SEVERE_LEVEL = re.compile(r"\[(?:[A-Za-z0-9_.-]+:)?(error|crit|alert|emerg)\]")
PID_IN_LOG = re.compile(r"\[pid (\d+)")


def module_path():
    return os.environ.get("PYPROF_MODULE") or DEFAULT_MODULE


def module_disabled():
    return os.environ.get("PYPROF_NO_MODULE", "").lower() in ("1", "yes", "true", "on")


def selected_mpms():
    raw = os.environ.get("PYPROF_MPMS", "event,prefork,worker")
    return [m.strip() for m in raw.split(",") if m.strip()]


def wait_for(predicate, timeout, interval=0.1):
    """Poll predicate() until it returns something truthy or timeout passes.

    Returns the last value, so callers assert on it with a useful message.
    """
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def path_under(path, prefix):
    """Segment-boundary prefix match, as the contract defines for PyProfSample."""
    path = path.split("?", 1)[0]
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


def add_crash_markers(markers):
    """Make more error-log strings crashes (e.g. sanitizer reports)."""
    global CRASH_MARKERS
    CRASH_MARKERS = CRASH_MARKERS + tuple(m for m in markers if m not in CRASH_MARKERS)


def scan_error_log(text, destroy_interpreter_off, allowed=()):
    """Return the error-log lines that make a run fail.

    Under mod_wsgi's default WSGIDestroyInterpreter, Debian's mod_wsgi 4.9.4
    with Python 3.11 is known to hang in finalisation at stop, so httpd's
    AH00045 (warn) / AH00046 (error, SIGKILL) are expected there; with
    `WSGIDestroyInterpreter Off` they are failures.
    """
    allowed_res = [re.compile(a) for a in allowed]
    problems = []
    for line in text.splitlines():
        if any(marker in line for marker in CRASH_MARKERS):
            problems.append(line)
            continue
        if "AH00045" in line or "AH00046" in line:
            if destroy_interpreter_off:
                problems.append(line)
            continue
        if SEVERE_LEVEL.search(line) and not any(a.search(line) for a in allowed_res):
            problems.append(line)
    return problems


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stat_fields(pid):
    """Fields of /proc/PID/stat after the comm (state first), or None when
    the pid does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(")") + 2:].split()


def alive(pid):
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def children_of(ppid):
    """Pids whose parent is ppid, ascending."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = stat_fields(int(entry))
        if fields and len(fields) > 1 and fields[1] == str(ppid):
            kids.append(int(entry))
    return sorted(kids)


# The names the integration tests and tools have always imported.
_free_port, _alive, _children_of = free_port, alive, children_of


def cmdline(pid):
    """A process' command line, arguments joined by spaces; None when gone."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return None


def _check_traversable(path):
    """www-data must reach the server directory: every parent needs o+x."""
    parent = os.path.dirname(os.path.abspath(path))
    while True:
        mode = os.stat(parent).st_mode
        if not mode & stat.S_IXOTH:
            raise RuntimeError("%s is not traversable by www-data (mode %o); "
                               "set PYPROF_TMPDIR to a directory under /tmp"
                               % (parent, stat.S_IMODE(mode)))
        if parent == "/":
            return
        parent = os.path.dirname(parent)


def _unlimited_core():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


class HttpdError(Exception):
    pass


class Httpd:
    """One standalone httpd with mod_wsgi (+ mod_pyprof) on 127.0.0.1.

    extra:               directives appended at server level (the PyProf* lines)
    mpm:                 "event" or "prefork"
    destroy_interpreter: False writes `WSGIDestroyInterpreter Off`; True keeps
                         mod_wsgi's default (destroy on child exit)
    with_module:         load mod_pyprof (False for harness self-checks)
    log_level:           LogLevel value; "pyprof:debug" is added when the module
                         is loaded
    allowed_log:         regexes of [error]-or-worse lines this test expects

    and for the harness' other users (the defaults are the integration
    tests' server):

    mpm_settings:        the MPM block (default MPM_SETTINGS[mpm])
    app_source:          the WSGI script copied to <root>/app.py, mounted at /app
    access_log:          False: no access log (the benchmark: its cost would
                         dilute the module's share of CPU per request)
    mime:                False: no mod_mime, no TypesConfig
    keepalive:           the keep-alive directives after `KeepAlive On`
    module_debug:        False: no "pyprof:debug" added to LogLevel
    cores:               crashed children dump core into <root>/cores
                         (CoreDumpDirectory, RLIMIT_CORE unlimited for the
                         apache2 it runs); core_backtraces() reads them
    prefix, base_dir:    the server directory's name prefix and parent
                         (default "pyprof-it-", PYPROF_TMPDIR or /tmp)
    """

    def __init__(self, name="httpd", extra="", mpm="event", destroy_interpreter=False,
                 with_module=True, log_level="warn", allowed_log=(), module=None,
                 module_before_wsgi=True, mpm_settings=None, app_source=APP_SOURCE,
                 access_log=True, mime=True, keepalive="KeepAliveTimeout 2",
                 module_debug=True, cores=False, prefix="pyprof-it-",
                 base_dir=None):
        if mpm not in MPM_SETTINGS:
            raise ValueError("unknown MPM %r" % mpm)
        self.mpm_settings = MPM_SETTINGS[mpm] if mpm_settings is None else mpm_settings
        self.with_access_log = access_log
        self.mime = mime
        self.keepalive = keepalive
        self.module_debug = module_debug
        self.name = name
        self.extra = extra
        self.mpm = mpm
        self.destroy_interpreter = destroy_interpreter
        self.with_module = with_module
        self.log_level = log_level
        self.allowed_log = list(allowed_log)
        self.module = module or module_path()
        self.module_before_wsgi = module_before_wsgi
        self.port = free_port()
        self.pid = None
        self.stop_seconds = None
        self.problems = []
        self.sent = []            # every path (with query) sent through get()/post()
        self._sent_lock = threading.Lock()
        self._configs = 0

        base = base_dir or os.environ.get("PYPROF_TMPDIR", "/tmp")
        self.root = tempfile.mkdtemp(prefix="%s%s-" % (prefix, re.sub(r"\W", "_", name)),
                                     dir=base)
        _check_traversable(self.root)
        os.chmod(self.root, 0o755)
        for sub in ("logs", "run", "htdocs"):
            os.mkdir(os.path.join(self.root, sub))
            os.chmod(os.path.join(self.root, sub), 0o755)
        self.conf = os.path.join(self.root, "httpd.conf")
        self.app = os.path.join(self.root, "app.py")
        self.error_log = os.path.join(self.root, "logs", "error.log")
        self.access_log = os.path.join(self.root, "logs", "access.log")
        self.pidfile = os.path.join(self.root, "run", "httpd.pid")
        shutil.copyfile(app_source, self.app)
        os.chmod(self.app, 0o644)
        # every app copied into this directory imports it from here (each
        # puts its own directory on sys.path)
        self.testlib = os.path.join(self.root, "pyprof_testlib.py")
        shutil.copyfile(TESTLIB_SOURCE, self.testlib)
        os.chmod(self.testlib, 0o644)
        self.cores = None
        if cores:
            # httpd makes its children dumpable when CoreDumpDirectory is set
            self.cores = os.path.join(self.root, "cores")
            os.mkdir(self.cores)
            os.chmod(self.cores, 0o777)

    # -- configuration ---------------------------------------------------

    @property
    def destroy_interpreter_off(self):
        return not self.destroy_interpreter

    def config_text(self, extra=None):
        extra = self.extra if extra is None else extra
        load = []
        pyprof = 'LoadModule pyprof_module "%s"' % self.module
        if self.with_module and self.module_before_wsgi:
            load.append(pyprof)
        load.append('LoadModule wsgi_module "%s"' % WSGI_SO)
        if self.with_module and not self.module_before_wsgi:
            load.append(pyprof)
        log_level = self.log_level
        if self.with_module and self.module_debug and "pyprof:" not in log_level:
            log_level += " pyprof:debug"
        destroy = "" if self.destroy_interpreter else "WSGIDestroyInterpreter Off"
        mime = mime_types = access = cores = ""
        if self.mime:
            mime = ('<IfModule !mime_module>\n    LoadModule mime_module "%s/mod_mime.so"\n'
                    '</IfModule>\n' % APACHE_MODULES)
            mime_types = "TypesConfig /etc/mime.types\n"
        if self.with_access_log:
            access = ('LogFormat "%%h %%t \\"%%r\\" %%>s %%b %%D pid=%%P" pyprof_it\n'
                      'CustomLog "%s" pyprof_it\n' % self.access_log)
        if self.cores:
            cores = 'CoreDumpDirectory "%s"\n' % self.cores
        return """\
# Generated by tests/pyhttpd/httpd.py for test server "{name}".
ServerRoot "{root}"
DefaultRuntimeDir "{root}/run"
PidFile "{pidfile}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}

# Debian compiles log_config and unixd in; IfModule keeps this portable.
<IfModule !mpm_{mpm}_module>
    LoadModule mpm_{mpm}_module "{mods}/mod_mpm_{mpm}.so"
</IfModule>
<IfModule !authz_core_module>
    LoadModule authz_core_module "{mods}/mod_authz_core.so"
</IfModule>
{mime}<IfModule !log_config_module>
    LoadModule log_config_module "{mods}/mod_log_config.so"
</IfModule>
<IfModule !unixd_module>
    LoadModule unixd_module "{mods}/mod_unixd.so"
</IfModule>
{load}

User www-data
Group www-data

ErrorLog "{error_log}"
LogLevel {log_level}
{access}{mime_types}{cores}
Timeout 30
KeepAlive On
{keepalive}

{mpm_settings}
DocumentRoot "{root}/htdocs"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{root}">
    Require all granted
</Directory>

WSGIScriptAlias /app "{app}"
{destroy}

<Location /server-profile>
    SetHandler server-profile
</Location>

# Directives from the test:
{extra}
{env_extra}
""".format(name=self.name, root=self.root, pidfile=self.pidfile, port=self.port,
           mpm=self.mpm, mods=APACHE_MODULES, load="\n".join(load), mime=mime,
           error_log=self.error_log, access=access, mime_types=mime_types, cores=cores,
           log_level=log_level, keepalive=self.keepalive,
           mpm_settings=self.mpm_settings, app=self.app, destroy=destroy,
           extra=extra, env_extra=os.environ.get("PYPROF_EXTRA_CONF", ""))

    def write_config(self):
        with open(self.conf, "w") as f:
            f.write(self.config_text())
        os.chmod(self.conf, 0o644)

    def _apache(self, args, conf=None, timeout=30):
        proc = subprocess.run([APACHE, "-f", conf or self.conf] + args, env=CLEAN_ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, cwd=self.root,
                              preexec_fn=_unlimited_core if self.cores else None)
        return proc.returncode, proc.stdout.decode("utf-8", "replace")

    def core_backtraces(self, limit=3, timeout=180):
        """[(core path, gdb backtrace of every thread)] of the cores left."""
        out = []
        for name in sorted(os.listdir(self.cores))[:limit] if self.cores else []:
            path = os.path.join(self.cores, name)
            try:
                bt = subprocess.run(["gdb", "-batch", "-nx", "-ex", "info threads",
                                     "-ex", "thread apply all bt 40", APACHE, path],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    timeout=timeout).stdout.decode("utf-8", "replace")
            except (OSError, subprocess.SubprocessError) as e:
                bt = "gdb failed: %s" % e
            out.append((path, bt))
        return out

    def configtest(self, extra=None):
        """`apache2 -t` on this server's config with `extra` as the test directives.

        Returns (returncode, combined output).  Does not need a running server.
        """
        self._configs += 1
        path = os.path.join(self.root, "configtest-%d.conf" % self._configs)
        with open(path, "w") as f:
            f.write(self.config_text(extra))
        os.chmod(path, 0o644)
        return self._apache(["-t"], conf=path)

    # -- process control --------------------------------------------------

    def start(self):
        if self.with_module and not os.path.exists(self.module):
            raise HttpdError("module under test not built: %s" % self.module)
        for attempt in range(3):
            self.write_config()
            rc, out = self._apache(["-k", "start"])
            if rc != 0:
                raise HttpdError("server %s: apache2 -k start failed (rc %d):\n%s\n"
                                 "--- error log %s ---\n%s"
                                 % (self.name, rc, out, self.error_log,
                                    self.error_log_text()[-4000:]))
            error = self._wait_started()
            if error is None:
                return self
            log = self.error_log_text()
            if "AH00072" in log and attempt < 2:
                # Port taken between free_port() and bind: move the log
                # aside (its bind error is not the test's) and try again.
                os.rename(self.error_log, self.error_log + ".bind-failure-%d" % attempt)
                self.port = free_port()
                continue
            self.stop()
            raise HttpdError("server %s did not come up: %s\n--- error log %s ---\n%s"
                             % (self.name, error, self.error_log, log[-4000:]))
        raise HttpdError("server %s did not come up after 3 attempts" % self.name)

    def _read_pid(self):
        try:
            with open(self.pidfile) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _wait_started(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            pid = self._read_pid()
            if pid and alive(pid):
                self.pid = pid
                if self.answering():
                    return None
            elif pid and not alive(pid):
                return "parent %d exited" % pid
            elif "AH00451" in self.error_log_text() or "AH00015" in self.error_log_text():
                return "no listening sockets"
            time.sleep(0.1)
        return "not answering on port %d after %.0fs" % (self.port, START_TIMEOUT)

    def answering(self):
        """Whether the server answers yet (start() polls it): any answer on /."""
        try:
            requests.get(self.url("/"), timeout=2)
            return True
        except requests.RequestException:
            return False

    @property
    def running(self):
        return self.pid is not None and alive(self.pid)

    def children(self):
        return children_of(self.pid) if self.running else []

    def stop(self):
        """`apache2 -k stop`, then wait (bounded) for parent and children to go."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        kids = children_of(pid)
        started = time.monotonic()
        try:
            rc, out = self._apache(["-k", "stop"], timeout=10)
        except subprocess.TimeoutExpired:
            rc, out = -1, "apache2 -k stop timed out"
        if rc != 0 and alive(pid):
            self.problems.append("apache2 -k stop failed (rc %d): %s" % (rc, out.strip()))
            os.kill(pid, signal.SIGTERM)
        deadline = started + STOP_TIMEOUT
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop_seconds = time.monotonic() - started
        leftovers = [p for p in [pid] + kids if alive(p)]
        if leftovers:
            self.problems.append("httpd still running %.0fs after stop: pids %s (killed)"
                                 % (STOP_TIMEOUT, leftovers))
            for p in leftovers:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        # Children are reclaimed by the parent before it exits; confirm.
        wait_for(lambda: not any(alive(k) for k in kids), 5)

    def graceful(self):
        rc, out = self._apache(["-k", "graceful"])
        if rc != 0:
            raise HttpdError("apache2 -k graceful failed (rc %d): %s" % (rc, out))

    # -- logs -------------------------------------------------------------

    def error_log_text(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def allow_log(self, regex):
        """Declare an [error]-or-worse log line this test expects."""
        self.allowed_log.append(regex)

    def log_problems(self):
        return self.problems + scan_error_log(self.error_log_text(),
                                              self.destroy_interpreter_off,
                                              self.allowed_log)

    # -- HTTP -------------------------------------------------------------

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _record(self, path):
        with self._sent_lock:
            self.sent.append(path)

    def sent_under(self, prefix):
        with self._sent_lock:
            return sum(1 for p in self.sent if path_under(p, prefix))

    def get(self, path, timeout=HTTP_TIMEOUT, **kw):
        """GET on a fresh connection (so requests spread over children)."""
        self._record(path)
        return requests.get(self.url(path), timeout=timeout, **kw)

    def post(self, path, timeout=HTTP_TIMEOUT, **kw):
        self._record(path)
        return requests.post(self.url(path), timeout=timeout, **kw)

    def get_ok(self, path, **kw):
        r = self.get(path, **kw)
        assert r.status_code == 200, "GET %s -> %d: %s" % (path, r.status_code, r.text[:500])
        return r

    def profile(self):
        """The overview as JSON (GET /server-profile?format=json)."""
        return self.get_json("/server-profile?format=json")

    def get_json(self, path):
        """GET a JSON page; strict UTF-8 and strict JSON (no control chars)."""
        r = self.get_ok(path)
        try:
            return json.loads(r.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise AssertionError("GET %s: not valid UTF-8 JSON (%s): %r"
                                 % (path, e, r.content[:2000]))

    def profile_html(self):
        return self.get_ok("/server-profile").text

    @staticmethod
    def request_path(request_id, fmt=None):
        quoted = urllib.parse.quote(str(request_id), safe="-_.~@+=")
        return "/server-profile/request/%s%s" % (quoted, "?format=%s" % fmt if fmt else "")

    def request_detail(self, request_id):
        return self.get_json(self.request_path(request_id, "json"))

    def request_folded(self, request_id):
        return self.get_ok(self.request_path(request_id, "folded"))

    def kept(self, marker):
        """Kept slow requests whose uri contains `marker`, in page order."""
        return [r for r in self.profile()["requests"] if marker in r["uri"]]

    def wait_kept(self, marker, count, timeout=10):
        """Wait until `count` kept requests carry `marker` (log_transaction may
        still be running when the client already has its response)."""
        return wait_for(lambda: (lambda k: k if len(k) >= count else None)(self.kept(marker)),
                        timeout) or self.kept(marker)

    def location(self, path):
        for loc in self.profile()["locations"]:
            if loc["path"] == path:
                return loc
        return None

    def pids_serving(self, want=2, max_requests=60, timeout=15):
        """Distinct child pids seen answering /app/pid (bounded).

        Sequential connections first; a threaded MPM child whose listener
        keeps winning the accept can take every one of them (seen once
        under ASan: 60 in a row on event), so then bursts of concurrent
        requests that stay open 100 ms each, which one child's listener
        does not all take before another's wakes."""
        pids = set()
        deadline = time.monotonic() + timeout
        for _ in range(max_requests):
            if len(pids) >= want or time.monotonic() > deadline:
                break
            pids.add(int(self.get_ok("/app/pid").text))
        for _ in range(10):
            if len(pids) >= want or time.monotonic() > deadline:
                break
            for r in get_concurrently(self, ["/app/pid?ms=100"] * 4):
                if getattr(r, "status_code", None) == 200:
                    pids.add(int(r.text))
        return pids

    def remove(self):
        shutil.rmtree(self.root, ignore_errors=True)


def unique(label):
    """A tag that marks one test's requests in the shared store."""
    return "%s%s" % (label, uuid.uuid4().hex[:10])


def get_concurrently(srv, paths, timeout=HTTP_TIMEOUT):
    """GET every path at once, one thread each; returns responses in order."""
    results = [None] * len(paths)

    def worker(i, p):
        try:
            results[i] = srv.get(p, timeout=timeout)
        except requests.RequestException as e:  # reported by the caller
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i, p), daemon=True)
               for i, p in enumerate(paths)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    return results


class Traffic(threading.Thread):
    """Sequential GETs until stopped, bounded in count and time.  A request
    that fails at the connection level is retried once (counted): a
    connection can be reset at the instant a listener is handed over."""

    def __init__(self, srv, path, max_requests=3000, max_seconds=30, pause=0.005):
        super().__init__(daemon=True)
        self.srv, self.path, self.pause = srv, path, pause
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.halt = threading.Event()
        self.statuses, self.failures, self.retries = [], [], 0

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        for _ in range(self.max_requests):
            if self.halt.is_set() or time.monotonic() > deadline:
                return
            for attempt in (1, 2):
                try:
                    self.statuses.append(self.srv.get(self.path, timeout=10).status_code)
                    time.sleep(self.pause)
                    break
                except requests.RequestException as e:
                    if attempt == 2:
                        self.failures.append(repr(e))
                    else:
                        self.retries += 1
                        time.sleep(0.05)


class ServerPool:
    """Servers started by one fixture; stopped and log-checked at its teardown."""

    def __init__(self):
        self.servers = []

    def start(self, **kw):
        srv = Httpd(**kw)
        self.servers.append(srv)
        srv.start()
        return srv

    def create(self, **kw):
        """A server that is configured but not started (e.g. for configtest)."""
        srv = Httpd(**kw)
        self.servers.append(srv)
        return srv

    def finish(self):
        report = []
        for srv in self.servers:
            srv.stop()
            problems = srv.log_problems()
            if problems:
                report.append("server %s (%s, %s), directory kept: %s\n  %s"
                              % (srv.name, srv.mpm,
                                 "WSGIDestroyInterpreter Off" if srv.destroy_interpreter_off
                                 else "default WSGIDestroyInterpreter",
                                 srv.root, "\n  ".join(problems)))
            elif os.environ.get("PYPROF_KEEP_TMP") != "1":
                srv.remove()
        return report


