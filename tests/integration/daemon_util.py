"""Helpers for the daemon-mode tests (test_daemon.py, tests/bench/segment_cost.py).

A daemon-mode server is the harness' usual Httpd plus:

    WSGIDaemonProcess dm processes=2 threads=4 maximum-requests=50 \
        python-path=<repo>/pyext display-name=%{GROUP}
    /alpha  -> apps/daemon_app.py in process group dm, application group
               "one" (WSGIProcessGroup / WSGIApplicationGroup in a
               <Location>: the script is loaded at its first request)
    /beta   -> the same script, application group "two" (process-group= and
               application-group= on WSGIScriptAlias: mod_wsgi preloads it
               when the daemon starts)
    /gamma  -> the same script in group "one" again, under a prefix no
               PyProfSample covers (requests there are not profiled)

With only_global=True (daemon_conf) the daemon runs one application, /delta,
in the main interpreter (%{GLOBAL}) and no sub-interpreter ever exists in
it: for C extensions that do not support sub-interpreters (psycopg2 on
CPython 3.12+: "cannot import name 'encodings'" once any interpreter of
the process has imported it, and mod_wsgi 5 on 3.12+ may run a %{GLOBAL}
request in a sub-interpreter its thread used before).

The script is copied into the server directory (www-data must read it);
pyprof is imported from the build tree (<repo>/pyext).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import requests

from conftest import HERE, REPO, _alive, _free_port, cmdline, serving, wait_for

DAEMON_APP_SOURCE = os.path.join(HERE, "apps", "daemon_app.py")
# The pyext build tree the daemons import pyprof from (PYPROF_PYEXT: try
# another build, e.g. a patched copy, without touching the repository).
PYEXT = os.environ.get("PYPROF_PYEXT") or os.path.join(REPO, "pyext")

DAEMON_GROUP = "dm"

SAMPLING = """\
PyProfSample /alpha 10ms
PyProfSample /beta 10ms
PyProfSlowThreshold 200ms
"""


GLOBAL_SAMPLING = """\
PyProfSample /delta 10ms
PyProfSlowThreshold 200ms
"""


def daemon_conf(app, processes=2, threads=4, maximum_requests=50, options="",
                only_global=False):
    """The WSGI lines of a daemon-mode server (no PyProf* lines)."""
    if only_global:
        return """\
WSGIDaemonProcess {group} processes={processes} threads={threads} maximum-requests={maxreq} python-path={pyext} display-name=%{{GROUP}} {options}
WSGIScriptAlias /delta "{app}" process-group={group} application-group=%{{GLOBAL}}
""".format(group=DAEMON_GROUP, processes=processes, threads=threads,
           maxreq=maximum_requests, pyext=PYEXT, app=app, options=options)
    return """\
WSGIDaemonProcess {group} processes={processes} threads={threads} maximum-requests={maxreq} python-path={pyext} display-name=%{{GROUP}} {options}
WSGIScriptAlias /alpha "{app}"
<Location /alpha>
    WSGIProcessGroup {group}
    WSGIApplicationGroup one
</Location>
WSGIScriptAlias /beta "{app}" process-group={group} application-group=two
WSGIScriptAlias /gamma "{app}"
<Location /gamma>
    WSGIProcessGroup {group}
    WSGIApplicationGroup one
</Location>
""".format(group=DAEMON_GROUP, processes=processes, threads=threads,
           maxreq=maximum_requests, pyext=PYEXT, app=app, options=options)


def install_app(srv):
    app = os.path.join(srv.root, "daemon_app.py")
    shutil.copyfile(DAEMON_APP_SOURCE, app)
    os.chmod(app, 0o644)
    srv.daemon_app = app
    return app


def prepare(srv, sampling=SAMPLING, **daemon_kw):
    """Install the app into a created (not started) server and configure it."""
    app = install_app(srv)
    srv.extra = daemon_conf(app, **daemon_kw) + (sampling or "") + srv.extra
    return srv


def serving_daemon(sampling=SAMPLING, daemon_kw=None, **kw):
    """Like conftest.serving(): a fixture generator owning one started
    daemon-mode server, stopped and log-checked at teardown."""
    yield from serving(lambda srv: prepare(srv, sampling=sampling, **(daemon_kw or {})), **kw)


# -- talking to the app ------------------------------------------------------

def app_json(srv, path, timeout=20):
    """GET a daemon_app view; it must answer 200 with JSON."""
    r = srv.get(path, timeout=timeout)
    assert r.status_code == 200, "GET %s -> %d: %s" % (path, r.status_code, r.text[:1000])
    return r.json()


def kept_by_id(srv, request_id, timeout=10):
    """The kept request with this id from the overview JSON (waits, bounded)."""
    def find():
        for req in srv.profile()["requests"]:
            if req["id"] == request_id:
                return req
        return None
    return wait_for(find, timeout, 0.1)


# -- processes ---------------------------------------------------------------

def is_daemon_process(pid, group=DAEMON_GROUP):
    """display-name=%{GROUP} makes a daemon's command line '(wsgi:GROUP)'."""
    line = cmdline(pid)
    return line is not None and line.startswith("(wsgi:%s)" % group)


def daemon_pids(srv, group=DAEMON_GROUP):
    return sorted(p for p in srv.children() if _alive(p) and is_daemon_process(p, group))


def apache_worker_pids(srv):
    return sorted(p for p in srv.children()
                  if _alive(p) and not (cmdline(p) or "").startswith("(wsgi:"))


# -- PostgreSQL --------------------------------------------------------------

def _pg_bindir():
    base = "/usr/lib/postgresql"
    if not os.path.isdir(base):
        return None
    for version in sorted(os.listdir(base), key=lambda v: [int(x) for x in v.split(".") if x.isdigit()],
                          reverse=True):
        bindir = os.path.join(base, version, "bin")
        if os.path.exists(os.path.join(bindir, "initdb")):
            return bindir
    return None


class Postgres:
    """A throw-away PostgreSQL server on 127.0.0.1: initdb into a temporary
    directory owned by the postgres user, trust authentication, unix socket
    in the same directory.  Every step is bounded in time."""

    USER = "postgres"

    def __init__(self):
        self.bindir = _pg_bindir()
        self.root = None
        self.data = None
        self.port = None
        self.log = None
        self.running = False

    def _as_postgres(self, args, timeout):
        return subprocess.run(["/usr/sbin/runuser", "-u", self.USER, "--"] + args,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, cwd=self.root,
                              env={"LANG": "C", "LC_ALL": "C", "PATH": "/usr/bin:/bin"})

    def start(self):
        if not self.bindir:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.root = tempfile.mkdtemp(prefix="pyprof-it-pg-", dir="/tmp")
        shutil.chown(self.root, self.USER, self.USER)
        os.chmod(self.root, 0o700)
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "postgres.log")
        proc = self._as_postgres([os.path.join(self.bindir, "initdb"), "-D", self.data,
                                  "-A", "trust", "-U", self.USER, "--no-sync",
                                  "-E", "UTF8", "--locale=C"], timeout=90)
        if proc.returncode != 0:
            raise RuntimeError("initdb failed: %s" % proc.stdout.decode(errors="replace"))
        for attempt in range(3):
            self.port = _free_port()
            opts = ("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s "
                    "-c fsync=off -c max_connections=40" % (self.port, self.root))
            proc = self._as_postgres([os.path.join(self.bindir, "pg_ctl"), "-D", self.data,
                                      "-l", self.log, "-w", "-t", "30", "-o", opts, "start"],
                                     timeout=45)
            if proc.returncode == 0:
                break
            if attempt == 2:
                raise RuntimeError("pg_ctl start failed: %s\n%s"
                                   % (proc.stdout.decode(errors="replace"), self.log_text()[-3000:]))
        self.running = True
        ok = wait_for(self._accepting, 15, 0.2)
        if not ok:
            raise RuntimeError("postgres not accepting on 127.0.0.1:%d" % self.port)
        return self

    def _accepting(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def stop(self):
        if self.running:
            try:
                self._as_postgres([os.path.join(self.bindir, "pg_ctl"), "-D", self.data,
                                   "-m", "fast", "-w", "-t", "20", "stop"], timeout=30)
            except subprocess.TimeoutExpired:
                pass
            self.running = False
            pidfile = os.path.join(self.data, "postmaster.pid")
            if os.path.exists(pidfile):  # still up after 20 s: kill it
                try:
                    with open(pidfile) as f:
                        pid = int(f.readline().strip())
                    os.kill(pid, signal.SIGKILL)
                except (OSError, ValueError):
                    pass
        if self.root and os.environ.get("PYPROF_KEEP_TMP") != "1":
            shutil.rmtree(self.root, ignore_errors=True)

    def write_app_config(self, directory):
        """pg.json next to daemon_app.py: the app reads it per request
        (SetEnv does not reach os.environ in mod_wsgi)."""
        path = os.path.join(directory, "pg.json")
        with open(path, "w") as f:
            json.dump({"port": self.port, "user": self.USER, "dbname": "postgres"}, f)
        os.chmod(path, 0o644)
        return path


def wait_http(srv, path, timeout=15):
    """GET path until it answers 200 (bounded); the last response or exception."""
    deadline = time.monotonic() + timeout
    last = None
    for _ in range(200):
        try:
            last = srv.get(path, timeout=5)
            if last.status_code == 200:
                return last
        except requests.RequestException as e:
            last = e
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return last
