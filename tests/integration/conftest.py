"""Harness for the mod_pyprof integration tests: a real httpd + mod_wsgi.

`Httpd` writes a complete standalone httpd configuration into its own
temporary directory (nothing from /etc/apache2 is read), starts it with
`apache2 -f CONF -k start`, talks to it over 127.0.0.1 and stops it with
`-k stop`.  Children run as www-data, so everything the server reads is made
world-readable.  When a server is stopped its error log is scanned; a crash,
a fatal Python error or an [error]/[crit]/[alert]/[emerg] line the test did
not expect fails the test that owned the server.

Environment:
    PYPROF_MODULE      module under test (default <repo>/mod_pyprof/.libs/mod_pyprof.so)
    PYPROF_NO_MODULE=1 run the harness without mod_pyprof: only the harness
                       self-tests run, everything needing the module is skipped
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
import stat
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid

import pytest
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
APACHE = "/usr/sbin/apache2"
APACHE_MODULES = "/usr/lib/apache2/modules"
WSGI_SO = os.environ.get("PYPROF_WSGI_SO") or os.path.join(APACHE_MODULES, "mod_wsgi.so")
DEFAULT_MODULE = os.path.join(REPO, "mod_pyprof", ".libs", "mod_pyprof.so")
APP_SOURCE = os.path.join(HERE, "apps", "app.py")

CLEAN_ENV = {"LANG": "C", "LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

START_TIMEOUT = 20.0
# httpd's own reclaim gives up on children after ~10 s (SIGKILL at 9 s).
STOP_TIMEOUT = 25.0
HTTP_TIMEOUT = 15.0

MPM_SETTINGS = {
    # Two children that stay up: idle threads never exceed MaxSpareThreads,
    # and MinSpareThreads is low enough that tests with <= 10 concurrent
    # requests never make the MPM want a third child it may not fork.
    "event": """\
StartServers 2
ServerLimit 2
ThreadLimit 8
ThreadsPerChild 8
MaxRequestWorkers 16
MinSpareThreads 1
MaxSpareThreads 16
MaxConnectionsPerChild 0
""",
    "worker": """\
StartServers 2
ServerLimit 2
ThreadLimit 8
ThreadsPerChild 8
MaxRequestWorkers 16
MinSpareThreads 1
MaxSpareThreads 16
MaxConnectionsPerChild 0
""",
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


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_state(pid):
    """'R', 'S', 'Z'... or None when the pid does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rfind(")") + 2:].split(" ", 1)[0]


def _alive(pid):
    state = _proc_state(pid)
    return state is not None and state not in ("Z", "X")


def _children_of(ppid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1] == str(ppid):
            kids.append(int(entry))
    return kids


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
    """

    def __init__(self, name="httpd", extra="", mpm="event", destroy_interpreter=False,
                 with_module=True, log_level="warn", allowed_log=(), module=None,
                 module_before_wsgi=True):
        if mpm not in MPM_SETTINGS:
            raise ValueError("unknown MPM %r" % mpm)
        self.name = name
        self.extra = extra
        self.mpm = mpm
        self.destroy_interpreter = destroy_interpreter
        self.with_module = with_module
        self.log_level = log_level
        self.allowed_log = list(allowed_log)
        self.module = module or module_path()
        self.module_before_wsgi = module_before_wsgi
        self.port = _free_port()
        self.pid = None
        self.stop_seconds = None
        self.problems = []
        self.sent = []            # every path (with query) sent through get()/post()
        self._sent_lock = threading.Lock()
        self._configs = 0

        base = os.environ.get("PYPROF_TMPDIR", "/tmp")
        self.root = tempfile.mkdtemp(prefix="pyprof-it-%s-" % re.sub(r"\W", "_", name), dir=base)
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
        shutil.copyfile(APP_SOURCE, self.app)
        os.chmod(self.app, 0o644)

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
        if self.with_module and "pyprof:" not in log_level:
            log_level += " pyprof:debug"
        destroy = "" if self.destroy_interpreter else "WSGIDestroyInterpreter Off"
        return """\
# Generated by tests/integration/conftest.py for test server "{name}".
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
<IfModule !mime_module>
    LoadModule mime_module "{mods}/mod_mime.so"
</IfModule>
<IfModule !log_config_module>
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
LogFormat "%h %t \\"%r\\" %>s %b %D pid=%P" pyprof_it
CustomLog "{access_log}" pyprof_it
TypesConfig /etc/mime.types

Timeout 30
KeepAlive On
KeepAliveTimeout 2

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
           mpm=self.mpm, mods=APACHE_MODULES, load="\n".join(load),
           error_log=self.error_log, access_log=self.access_log, log_level=log_level,
           mpm_settings=MPM_SETTINGS[self.mpm], app=self.app, destroy=destroy,
           extra=extra, env_extra=os.environ.get("PYPROF_EXTRA_CONF", ""))

    def write_config(self):
        with open(self.conf, "w") as f:
            f.write(self.config_text())
        os.chmod(self.conf, 0o644)

    def _apache(self, args, conf=None, timeout=30):
        proc = subprocess.run([APACHE, "-f", conf or self.conf] + args, env=CLEAN_ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, cwd=self.root)
        return proc.returncode, proc.stdout.decode("utf-8", "replace")

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
                raise HttpdError("apache2 -k start failed (rc %d):\n%s" % (rc, out))
            error = self._wait_started()
            if error is None:
                return self
            log = self.error_log_text()
            if "AH00072" in log and attempt < 2:
                # Port taken between _free_port() and bind: move the log
                # aside (its bind error is not the test's) and try again.
                os.rename(self.error_log, self.error_log + ".bind-failure-%d" % attempt)
                self.port = _free_port()
                continue
            raise HttpdError("httpd did not come up: %s\n--- error log ---\n%s"
                             % (error, log[-4000:]))
        raise HttpdError("httpd did not come up after 3 attempts")

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
            if pid and _alive(pid):
                self.pid = pid
                try:
                    requests.get(self.url("/"), timeout=2)
                    return None
                except requests.RequestException:
                    pass
            elif pid and not _alive(pid):
                return "parent %d exited" % pid
            elif "AH00451" in self.error_log_text() or "AH00015" in self.error_log_text():
                return "no listening sockets"
            time.sleep(0.1)
        return "not answering on port %d after %.0fs" % (self.port, START_TIMEOUT)

    @property
    def running(self):
        return self.pid is not None and _alive(self.pid)

    def children(self):
        return _children_of(self.pid) if self.running else []

    def stop(self):
        """`apache2 -k stop`, then wait (bounded) for parent and children to go."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        kids = _children_of(pid)
        started = time.monotonic()
        try:
            rc, out = self._apache(["-k", "stop"], timeout=10)
        except subprocess.TimeoutExpired:
            rc, out = -1, "apache2 -k stop timed out"
        if rc != 0 and _alive(pid):
            self.problems.append("apache2 -k stop failed (rc %d): %s" % (rc, out.strip()))
            os.kill(pid, signal.SIGTERM)
        deadline = started + STOP_TIMEOUT
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop_seconds = time.monotonic() - started
        leftovers = [p for p in [pid] + kids if _alive(p)]
        if leftovers:
            self.problems.append("httpd still running %.0fs after stop: pids %s (killed)"
                                 % (STOP_TIMEOUT, leftovers))
            for p in leftovers:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        # Children are reclaimed by the parent before it exits; confirm.
        wait_for(lambda: not any(_alive(k) for k in kids), 5)

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


def _pool_fixture():
    pool = ServerPool()
    try:
        yield pool
    finally:
        report = pool.finish()
    if report:
        pytest.fail("error log / shutdown problems:\n" + "\n".join(report), pytrace=False)


def serving(**kw):
    """Generator for a fixture that owns one started server:

        @pytest.fixture(scope="module")
        def srv(mpm, pyprof_module):
            yield from serving(name="main", mpm=mpm, extra="PyProfSample /app 10ms")

    The server is stopped and its log checked when the fixture ends.
    """
    pools = _pool_fixture()
    pool = next(pools)
    try:
        srv = pool.start(**kw)
    except BaseException:
        pools.close()
        raise
    yield srv
    next(pools, None)


@pytest.fixture
def servers():
    """Function-scoped ServerPool: servers live for one test."""
    yield from _pool_fixture()


@pytest.fixture(scope="module")
def module_servers():
    """Module-scoped ServerPool: one server shared by a module's tests."""
    yield from _pool_fixture()


@pytest.fixture(scope="session")
def pyprof_module():
    """Path of the module under test; skips when PYPROF_NO_MODULE is set and
    fails (not skips) when the module has not been built."""
    if module_disabled():
        pytest.skip("PYPROF_NO_MODULE set: mod_pyprof not loaded")
    path = module_path()
    if not os.path.exists(path):
        pytest.fail("mod_pyprof not built: %s does not exist (run `make`, or set "
                    "PYPROF_MODULE)" % path, pytrace=False)
    # One `apache2 -t` up front, so a module that cannot be loaded is one
    # clear message rather than a start-up failure in every fixture.
    probe = Httpd(name="loadcheck", module=path)
    try:
        rc, out = probe.configtest("")
    finally:
        probe.remove()
    if rc != 0:
        pytest.fail("mod_pyprof does not load: %s" % out.strip(), pytrace=False)
    return path


@pytest.fixture(scope="module", params=selected_mpms())
def mpm(request):
    return request.param


# ---------------------------------------------------------------------------
# Appended for the issue [3] tests (test_headers, test_trigger, test_capture,
# test_correlation, test_cpu_wall, test_bad_input): a second WSGI app,
# tests/integration/apps/app3.py, mounted at /app3 next to the usual /app.
# ---------------------------------------------------------------------------

APP3_SOURCE = os.path.join(HERE, "apps", "app3.py")


def serving_app3(mounts=("/app3",), **kw):
    """Like serving(), but the server also mounts apps/app3.py at each of
    `mounts` (default /app3; copied into the server directory, so www-data
    can read it).  The PyProf* lines in `extra` may sample a mount like any
    other prefix, or leave it unsampled."""
    pools = _pool_fixture()
    pool = next(pools)
    try:
        srv = pool.create(**kw)
        app3 = os.path.join(srv.root, "app3.py")
        shutil.copyfile(APP3_SOURCE, app3)
        os.chmod(app3, 0o644)
        srv.app3 = app3
        aliases = "".join('WSGIScriptAlias %s "%s"\n' % (m, app3) for m in mounts)
        srv.extra = aliases + srv.extra
        srv.start()
    except BaseException:
        pools.close()
        raise
    yield srv
    next(pools, None)


def finished_request(srv, request_id, timeout=10):
    """The JSON of /server-profile/request/ID once the request has ended.

    A client has its response before log_transaction ran, and an id from
    X-PyProf-Id resolves while the request is still in flight (status 0,
    "inflight": true): wait (bounded) for the final record."""
    path = srv.request_path(request_id, "json")

    def final():
        r = srv.get(path)
        if r.status_code != 200:
            return None
        detail = r.json()
        return detail if not detail.get("inflight") else None

    detail = wait_for(final, timeout)
    assert detail, "%s did not resolve to a finished request within %ss" % (path, timeout)
    return detail
