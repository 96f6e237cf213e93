#!/usr/bin/python3
"""Soak and fault-injection run for mod_pyprof (issue [6], "Faults and load").

For each MPM (event, worker, prefork) and both mod_wsgi modes (embedded;
daemon: WSGIDaemonProcess dm processes=2 threads=4, the app imports pyprof
from a snapshot of <repo>/pyext) it starts a standalone httpd (the
httpd harness' Httpd, tests/pyhttpd/httpd.py) serving
tests/soak/soak_app.py at /app with

    PyProfSample /app 10ms
    PyProfSample /app/deep 1ms      (half of the load: sampled every 1 ms)
    PyProfSlowThreshold 50ms
    PyProfKeep 200

and, for the length of --duration:

  * two wrk processes (one per location, -t1 -c6, --timeout 10s) send a mix
    of fast, slow, CPU, deep-recursion (up to 5,000 frames), generator,
    exception and coroutine requests; a Lua script counts what each sent;
  * a driver thread runs `apache2 -k graceful` --gracefuls times and
    SIGKILLs --kills children: alternately a process that has a sampled
    request in flight right now (from /server-profile?format=json, so it
    dies while it samples) and a random one; in daemon mode every other
    kill is a mod_wsgi daemon process;
  * a snapshot thread takes /server-profile?format=json every second, one
    after the other, and checks that every counter only grows;
  * two fetcher threads GET the overview (HTML, JSON), request pages of kept
    and in-flight requests (html, json, folded, speedscope, pprof), the
    location pages (html, json, folded, speedscope, pprof, since=, view=),
    /server-profile/metrics and the pprof pull endpoint, and validate each.

Afterwards (load stopped, store quiescent) it checks:

  * the error log: no "Segmentation fault", "exit signal", "Fatal Python
    error"; no [error]-or-worse line except those a SIGKILL or a graceful
    restart causes (LOG_WHITELIST, each allowed only within seconds of a
    kill or graceful restart); AH00045/AH00046 (children that did not
    exit at stop) and old-generation children still alive 35 s after the
    last graceful restart, against the same run without the module;
  * every kept trace (a walk of the overview's list): detail JSON parses,
    matches its list entry, samples == sum of stack counts == on-CPU +
    off-CPU samples, duration >= the slow threshold, status 100..599, the
    right location and interval, sane segments, every frame resolves to a
    function that exists in its file (the app, the stdlib, pyprof) at a
    line inside it; its folded export carries the same stacks;
  * the histogram: per location, requests == the access log's lines for
    that location (both come from log_transaction), and over both
    locations 0 <= requests - (wrk completed - slots_lost) <= wrk sent -
    wrk completed (requests the server finished that wrk did not see:
    timeouts, the ones in flight when wrk stopped);
  * traces_kept - traces_evicted == traces listed; sum(kept) per location
    >= traces_kept; nothing stays in flight; slots_full == 0.

Then store exhaustion (--exhaustion): PyProfMemory at its minimum (found
with `apache2 -t`: the directive's own floor, then the size check_config
asks for, verified one KiB below and at it) under a flood of slow requests
with deep, unique stacks (/app/deep/unique/TOKEN: exec'd functions with
unique names; /app/deep/paths/TOKEN: random walks through 8 fixed
functions, for stack nodes), in two variants:

    table   short names: the frame table fills (then the node table)
    arena   names and files padded to ~1 KB: the frame-text arena fills

and checks: frames_full / nodes_full count the drops and the overview's
"dropped" card and the metrics show the same numbers; the oldest traces
were evicted (the kept ones are the newest completions in the access log);
no frame in any kept trace, checked over and over while the flood runs and
once more at the end, names a function the app did not create for that
very request (u_<TOKEN>_<k> from another TOKEN, a p<k> off the request's
walk, anything not in the app).

With --scrape-only nobody opens a page while the load runs (no snapshot or
fetcher threads; kills pick a random process): a real Prometheus (Debian's
`prometheus`, on a free port, its TSDB in the run directory) scrapes
/server-profile/metrics every second, and its data must show profiling never
stopped (every 5-s window of the load counted requests and took samples,
dropped{reason="slots_full"} stayed 0, scrapes succeeded) and, once the load
is over, histogram totals equal to the access log.  The pages are opened
only after that, for the usual final checks.

Usage (as root, from the repository; /usr/bin/python3 with requests,
pytest and jsonschema; wrk and apache2 installed):

    /usr/bin/python3 tests/soak/soak.py --quick     # ~6 min: event/embedded,
                                                    # worker/daemon, 60 s each
    /usr/bin/python3 tests/soak/soak.py             # full run, ~25 min here
    /usr/bin/python3 tests/soak/soak.py --combos event:embedded --duration 30 \\
        --gracefuls 5 --kills 10 --no-exhaustion --output /tmp/r.md

The module and pyext are copied into a run directory first (a rebuild
during the run must not change what a graceful restart loads).  Results go
to --output (default tests/soak/RESULTS.md) and, as JSON, to the run
directory.  Exit status 1 if any check failed.  Every loop is bounded in
count and time; everything listens on 127.0.0.1 only.
"""

import _imp
import argparse
import ast
import datetime
import hashlib
import inspect
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import traceback
import urllib.parse
from html import unescape as html_unescape

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
INTEGRATION = os.path.join(REPO, "tests", "integration")
sys.path.insert(0, INTEGRATION)
sys.path.insert(0, os.path.join(REPO, "tests"))

import requests  # noqa: E402

from pyhttpd.httpd import (APACHE, CRASH_MARKERS, SEVERE_LEVEL, Httpd, HttpdError,  # noqa: E402
                           alive as _alive, children_of as _children_of, cmdline,
                           free_port as _free_port, module_path, path_under)
from pyhttpd.source import load_source  # noqa: E402
from views_util import Pprof, check_speedscope, folded_stacks, parse_prometheus  # noqa: E402

SOAK_APP = os.path.join(HERE, "soak_app.py")
WRK = "/usr/bin/wrk"
DAEMON_GROUP = "dm"

LOCATIONS = {"/app": 10.0, "/app/deep": 1.0}
SLOW_MS = 50.0
KEEP = 200
MAX_DEPTH = 128

SAMPLING = """\
PyProfSample /app 10ms
PyProfSample /app/deep 1ms
PyProfSlowThreshold 50ms
PyProfKeep %d
""" % KEEP

# Enough workers that the load (12 wrk connections, 3-4 page fetchers)
# never reaches MaxRequestWorkers, even with a child just killed and the
# previous generation still finishing after a graceful restart.  The two
# threaded MPMs take the same numbers.
SOAK_THREADED = """\
StartServers 4
ServerLimit 16
ThreadLimit 8
ThreadsPerChild 8
MaxRequestWorkers 64
MinSpareThreads 8
MaxSpareThreads 40
MaxConnectionsPerChild 0
"""
SOAK_MPM = {
    "event": SOAK_THREADED,
    "worker": SOAK_THREADED,
    "prefork": """\
StartServers 16
MinSpareServers 8
MaxSpareServers 20
ServerLimit 40
MaxRequestWorkers 40
MaxConnectionsPerChild 0
""",
}

# The per-location request mix (wrk walks each list round robin).
MIX = {
    "app": ["/app/fast", "/app/cpu?ms=5", "/app/slow?ms=60", "/app/gen?n=40&ms=2",
            "/app/fast", "/app/exc?depth=30&count=5&ms=2", "/app/coro?n=20&ms=2",
            "/app/recurse?depth=300&ms=20", "/app/cpu?ms=25", "/app/fast"],
    "deep": ["/app/deep/fast", "/app/deep/recurse?depth=1500&ms=30",
             "/app/deep/gen?n=60&ms=3", "/app/deep/exc?depth=60&count=4&ms=3",
             "/app/deep/coro?n=50&ms=3", "/app/deep/cpu?ms=15", "/app/deep/slow?ms=55",
             "/app/deep/recurse?depth=5000&ms=5"],
}

# [error]-or-worse lines that a SIGKILL or a graceful restart legitimately
# causes, each with what may cause it and how long after that event (s).
# Anything else at [error] or worse fails the run.
LOG_WHITELIST = [
    # The Apache child proxying a request to a daemon process that was
    # SIGKILLed (or restarted by a graceful restart) gets no response:
    # mod_wsgi answers 500 and logs this.
    ("daemon-lost", re.compile(
        r"^\[[^]]+\] \[wsgi:error\] \[pid \d+:tid \d+\] \[client 127\.0\.0\.1:\d+\] "
        r"Truncated or oversized response headers received from daemon process "
        r"'dm': \S+/app\.py$"), ("kill-daemon", "graceful"), 10.0),
    # A graceful restart makes a new listener socket for the daemons (the
    # generation is in its name) and removes the old one: a child of the
    # old generation that still proxies a request finds no socket.  Seen
    # without mod_pyprof too.
    ("daemon-socket-gone", re.compile(
        r"^\[[^]]+\] \[wsgi:error\] \[pid \d+:tid \d+\] \(2\)No such file or directory: "
        r"\[client 127\.0\.0\.1:\d+\] mod_wsgi \(pid=\d+\): Unable to connect to WSGI "
        r"daemon process 'dm' on '\S+\.sock' as user with uid=\d+\.$"), ("graceful",), 10.0),
    # The daemon was killed (or stopped by a graceful restart) while the
    # child was reading its response body.
    ("daemon-proxy-reset", re.compile(
        r"^\[[^]]+\] \[wsgi:error\] \[pid \d+:tid \d+\] \(104\)Connection reset by peer: "
        r"\[client 127\.0\.0\.1:\d+\] mod_wsgi \(pid=\d+\): Failed to proxy response "
        r"from daemon\.$"), ("kill-daemon", "graceful"), 10.0),
    # The Apache child that was sending the request to the daemon was
    # SIGKILLed (or left with a graceful restart): the daemon reads EOF.
    # Seen without mod_pyprof too.
    ("daemon-request-eof", re.compile(
        r"^\[[^]]+\] \[wsgi:crit\] \[pid \d+:tid \d+\] \(70014\)End of file found: "
        r"mod_wsgi \(pid=\d+\): Unable to read WSGI request\.$"),
     ("kill-child", "graceful"), 10.0),
    # The daemon reading the request went away (SIGKILL, or stopped by a
    # graceful restart) while the child was sending it the request.
    ("daemon-write-broken", re.compile(
        r"^\[[^]]+\] \[wsgi:error\] \[pid \d+:tid \d+\] \[client 127\.0\.0\.1:\d+\] "
        r"mod_wsgi \(pid=\d+\): Request data write error when proxying data to daemon "
        r"process: Broken pipe\.$"), ("kill-daemon", "graceful"), 10.0),
]
LOG_TIME = re.compile(r"^\[(\w{3} \w{3} \d\d \d\d:\d\d:\d\d\.\d+ \d{4})\]")

SPECIAL_FRAMES = {"[truncated]", "[frame table full]", "[other stacks]"}
# GIL blame's pseudo-frames, at the holder's file and line: group 1 is the
# holder's function (None: holder unknown)
GIL_PSEUDO = re.compile(r"^<(?:GIL wait|waiting to enter Python): "
                        r"(?:holder unknown|held by (?:no request|\S+) (.+))>$")


def log_time(line):
    m = LOG_TIME.match(line)
    if not m:
        return None
    return datetime.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S.%f %Y").timestamp()


def now():
    return time.time()


def short(obj, n=600):
    text = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True)
    return text if len(text) <= n else text[:n] + "...(%d chars)" % len(text)


# ---------------------------------------------------------------------------
# run directory: a private copy of the module and of pyext
# ---------------------------------------------------------------------------

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class RunDir:
    def __init__(self, base="/tmp"):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.path = os.path.join(base, "pyprof-soak-%s-%d" % (stamp, os.getpid()))
        os.makedirs(self.path)
        os.chmod(self.path, 0o755)
        src = module_path()
        if not os.path.exists(src):
            raise SystemExit("mod_pyprof not built: %s (run make)" % src)
        self.module = os.path.join(self.path, "mod_pyprof.so")
        shutil.copyfile(src, self.module)
        os.chmod(self.module, 0o755)
        self.module_sha = sha256_file(self.module)
        self.pyext = os.path.join(self.path, "pyext")
        shutil.copytree(os.path.join(REPO, "pyext", "pyprof"),
                        os.path.join(self.pyext, "pyprof"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        for root, dirs, files in os.walk(self.pyext):
            os.chmod(root, 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o755 if f.endswith(".so") else 0o644)
        ext = [f for f in os.listdir(os.path.join(self.pyext, "pyprof")) if f.endswith(".so")]
        self.pyext_sha = sha256_file(os.path.join(self.pyext, "pyprof", ext[0])) if ext else None
        self.lua = os.path.join(self.path, "soak.lua")
        with open(self.lua, "w") as f:
            f.write(lua_script())


def git_head():
    try:
        out = subprocess.run(["git", "-C", REPO, "log", "-1", "--format=%H %s"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
        head = out.stdout.decode().strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--",
                                "mod_pyprof", "pyext"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, timeout=10).stdout.decode()
        dirty = [l for l in dirty.splitlines() if not l.endswith((".lo", ".slo", ".la", ".o"))]
        return head + (" (+ uncommitted changes in mod_pyprof/ or pyext/)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ---------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------

def lua_script():
    mix = {k: ",".join('"%s"' % p for p in v) for k, v in MIX.items()}
    return """\
-- generated by tests/soak/soak.py: the soak's request mix, counted
local mode = "app"
local nonce = "x"
local list = {}
local n = 0
sent = 0
tid = 0
local threads = {}
local ntid = 0

function setup(thread)
  ntid = ntid + 1
  thread:set("tid", ntid)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1] or "app"
  nonce = args[2] or "x"
  if mode == "app" then list = {%(app)s}
  elseif mode == "deep" then list = {%(deep)s}
  end
end

function request()
  n = n + 1
  sent = sent + 1
  local p
  local tok = string.format("%%st%%dn%%d", nonce, tid, n)
  if mode == "table" then
    if n %% 2 == 0 then p = "/app/deep/unique/" .. tok .. "?depth=30&ms=80"
    else p = "/app/deep/paths/" .. tok .. "?depth=40&ms=80" end
  elseif mode == "arena" then
    p = "/app/deep/unique/" .. tok .. "?depth=20&ms=80&pad=" .. (200 + (n * 37) %% 700)
  else
    p = list[(n - 1) %% #list + 1]
  end
  return wrk.format("GET", p)
end

function done(summary, latency, requests)
  local s = 0
  for _, t in ipairs(threads) do s = s + (t:get("sent") or 0) end
  local e = summary.errors
  io.write(string.format('SOAKWRK {"requests": %%d, "sent": %%d, "connect": %%d, ' ..
    '"read": %%d, "write": %%d, "status": %%d, "timeout": %%d, "duration_us": %%d}\\n',
    summary.requests, s, e.connect, e.read, e.write, e.status, e.timeout, summary.duration))
end
""" % mix


class Wrk:
    def __init__(self, lua, port, mode, nonce, duration, connections=6, threads=1):
        self.cmd = [WRK, "-t%d" % threads, "-c%d" % connections, "-d%ds" % duration,
                    "--timeout", "10s", "-s", lua, "http://127.0.0.1:%d" % port, "--",
                    mode, nonce]
        self.duration = duration
        self.mode = mode
        self.proc = None
        self.result = None
        self.output = ""

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return self

    def wait(self):
        try:
            out, _ = self.proc.communicate(timeout=self.duration + 60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate(timeout=10)
            self.output = out.decode(errors="replace")
            raise RuntimeError("wrk %s did not finish in %ds" % (self.mode, self.duration + 60))
        self.output = out.decode(errors="replace")
        m = re.search(r"^SOAKWRK (\{.*\})$", self.output, re.M)
        if self.proc.returncode != 0 or not m:
            raise RuntimeError("wrk %s failed (rc %s):\n%s" % (self.mode, self.proc.returncode,
                                                               self.output[-2000:]))
        self.result = json.loads(m.group(1))
        return self.result

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass


# ---------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------

class SoakHttpd(Httpd):
    """The harness' Httpd with the soak app at /app, roomier MPM settings,
    cores of crashed children kept (core_backtraces()) and a second access
    log whose lines carry the request id and pid."""

    def __init__(self, mode, rundir, sampling, **kw):
        super().__init__(app_source=SOAK_APP, mpm_settings=SOAK_MPM[kw.get("mpm", "event")],
                         cores=True, **kw)
        self.mode = mode
        self.soak_log = os.path.join(self.root, "logs", "soak_access.log")
        lines = ['LogFormat "%%{%%s}t.%%{usec_frac}t \\"%%r\\" %%>s %%D %%P %%L" soak\n'
                 'CustomLog "%s" soak' % self.soak_log]
        if mode == "daemon":
            lines.append(
                "WSGIDaemonProcess %s processes=2 threads=4 python-path=%s "
                "display-name=%%{GROUP}\n<Location /app>\n    WSGIProcessGroup %s\n"
                "</Location>" % (DAEMON_GROUP, rundir.pyext, DAEMON_GROUP))
        else:
            lines.append("WSGIPythonPath %s" % rundir.pyext)
        self.extra = "\n".join(lines) + "\n" + (sampling or "") + self.extra


def is_daemon(pid):
    line = cmdline(pid)
    return line is not None and line.startswith("(wsgi:%s)" % DAEMON_GROUP)


def children(srv):
    pid = srv.pid
    return [p for p in _children_of(pid) if _alive(p)] if pid else []


def worker_pids(srv):
    return [p for p in children(srv) if not (cmdline(p) or "").startswith("(wsgi:")]


def daemon_pids(srv):
    return [p for p in children(srv) if is_daemon(p)]


_BTIME = None


def proc_start_time(pid):
    """Wall-clock start of a process (from /proc, clock-tick resolution)."""
    global _BTIME
    if _BTIME is None:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    _BTIME = int(line.split()[1])
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(")") + 2:].split()
    return _BTIME + int(fields[19]) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------
# frame resolution: every frame must name a function that exists in its file
# ---------------------------------------------------------------------------

_COMPREHENSIONS = {ast.GeneratorExp: "<genexpr>", ast.ListComp: "<listcomp>",
                   ast.SetComp: "<setcomp>", ast.DictComp: "<dictcomp>"}


def qualnames(source):
    """Every co_qualname (Python 3.11) the code of `source` can have."""
    tree = ast.parse(source)
    names = {"<module>"}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                q = prefix + child.name
                names.add(q)
                for sub in child.decorator_list + child.args.defaults + \
                        [d for d in child.args.kw_defaults if d is not None]:
                    visit_expr(sub, prefix)
                for stmt in child.body:
                    visit_expr(stmt, q + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                q = prefix + child.name
                names.add(q)
                for stmt in child.body:
                    visit_expr(stmt, q + ".")
            elif isinstance(child, ast.Lambda):
                q = prefix + "<lambda>"
                names.add(q)
                visit(child, q + ".<locals>.")
            elif type(child) in _COMPREHENSIONS:
                q = prefix + _COMPREHENSIONS[type(child)]
                names.add(q)
                visit(child, q + ".<locals>.")
            else:
                visit(child, prefix)

    def visit_expr(node, prefix):
        wrapper = ast.Module(body=[], type_ignores=[])
        wrapper.body = [node] if isinstance(node, ast.stmt) else [ast.Expr(value=node)]
        visit(wrapper, prefix)

    visit(tree, "")
    return names


# The Python the module under test runs (mod_wsgi's; PYPROF_PYTHON, set by
# `make integration`): its stdlib, frozen modules and syntax are the ones the
# frames come from, which the Python running this file may not share (sid:
# pytest on 3.14, the module on 3.15, whose stdlib uses 3.15-only syntax).
TARGET_PYTHON = os.environ.get("PYPROF_PYTHON") or sys.executable


def _target_is_us():
    try:
        return os.path.samefile(TARGET_PYTHON, sys.executable)
    except OSError:
        return False


def _in_target(script, *args):
    """Run `script` (python -c) with the target Python; its stdout as JSON."""
    proc = subprocess.run([TARGET_PYTHON, "-c", script] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60, check=True)
    return json.loads(proc.stdout)


_QUALNAMES_MAIN = """
import json, sys
try:
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    print(json.dumps([sorted(qualnames(text)), text.count("\\n") + 1]))
except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
    print("null")
"""


def _target_stdlib():
    if _target_is_us():
        return sysconfig.get_paths()["stdlib"]
    return _in_target('import json, sysconfig; print(json.dumps(sysconfig.get_paths()["stdlib"]))')


def _target_is_frozen(name):
    if _target_is_us():
        return _imp.is_frozen(name)
    return _in_target("import _imp, json, sys; print(json.dumps(_imp.is_frozen(sys.argv[1])))", name)


def _source_info(src):
    """(qualnames, number of lines) of a source file, parsed by the target
    Python; None if it cannot be read or parsed."""
    if _target_is_us():
        with open(src, encoding="utf-8") as f:
            text = f.read()
        return (qualnames(text), text.count("\n") + 1)
    script = ("import ast\n_COMPREHENSIONS = {ast.GeneratorExp: '<genexpr>', "
              "ast.ListComp: '<listcomp>', ast.SetComp: '<setcomp>', "
              "ast.DictComp: '<dictcomp>'}\n" + inspect.getsource(qualnames) +
              _QUALNAMES_MAIN)
    got = _in_target(script, src)
    if got is None:
        raise ValueError("the target Python cannot parse %s" % src)
    return (set(got[0]), got[1])


class FrameResolver:
    """Checks a frame {function, file, line} against the source it names."""

    STDLIB = None

    def __init__(self, app_path, allow_missing=None):
        self.app_path = app_path
        self.allow_missing = allow_missing
        self.cache = {}
        self.unverifiable = 0
        self.unverifiable_files = set()
        self.lock = threading.Lock()

    def source_of(self, path):
        m = re.match(r"^<frozen ([\w.]+)>$", path)
        if m:
            if FrameResolver.STDLIB is None:
                FrameResolver.STDLIB = _target_stdlib()
            return os.path.join(self.STDLIB, m.group(1).replace(".", "/") + ".py")
        return path

    def info(self, path):
        with self.lock:
            if path in self.cache:
                return self.cache[path]
        src = self.source_of(path)
        result = None
        if src == self.app_path:
            src = SOAK_APP     # the server's copy is the same file
        try:
            result = _source_info(src)
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            result = None
        with self.lock:
            self.cache[path] = result
        return result

    def problem(self, frame):
        fn, path, line = frame.get("function"), frame.get("file"), frame.get("line")
        if not isinstance(fn, str) or not fn or fn == "[unknown]":
            return "unresolved frame %s" % short(frame, 300)
        if not isinstance(path, str) or not isinstance(line, int) or line < 0:
            return "malformed frame %s" % short(frame, 300)
        if fn in SPECIAL_FRAMES:
            return None if path == "" else "special frame with a file: %s" % short(frame, 300)
        gil = GIL_PSEUDO.match(fn)
        if gil:
            # GIL blame's pseudo-frame: the holder's function, file and line
            if gil.group(1) in (None, "[no Python frame]"):
                return None if path == "" else "GIL frame with a file: %s" % short(frame, 300)
            return self.problem(dict(frame, function=gil.group(1)))
        info = self.info(path)
        if info is None:
            with self.lock:
                self.unverifiable += 1
                if len(self.unverifiable_files) < 20:
                    self.unverifiable_files.add(path)
            frozen = re.match(r"^<frozen ([\w.]+)>$", path)
            if (fn, path) == ("<module>", "<string>") or (
                    frozen and (_target_is_frozen(frozen.group(1)) or
                                (fn, path) == ("<module>", "<frozen getpath>"))) or (
                    self.allow_missing and self.allow_missing(fn, path)):
                # exec()'d code (site runs .pth lines so); a frozen module
                # without a source file (getpath, at interpreter start-up)
                return None
            return "frame in a file that does not exist: %s" % short(frame, 600)
        names, nlines = info
        if fn not in names:
            return "function %r does not exist in %s (frame %s)" % (fn, path, short(frame, 300))
        if line > nlines:
            return "line %d past the end of %s (%d lines): %s" % (line, path, nlines, fn)
        return None


# ---------------------------------------------------------------------------
# checks of one kept trace
# ---------------------------------------------------------------------------

def location_for(uri):
    path = uri.split("?", 1)[0]
    best = None
    for loc in LOCATIONS:
        if path_under(path, loc) and (best is None or len(loc) > len(best)):
            best = loc
    return best


def check_trace(detail, listed, resolver, mode, extra_frame_check=None):
    """Problems of one kept trace (detail JSON against its overview entry)."""
    p = []
    rid = listed.get("id")
    tag = "request %s (%s)" % (rid, listed.get("uri"))
    for field in ("id", "uri", "status", "duration_ms", "samples", "pid", "location",
                  "daemon_pid", "started_at", "interval_ms"):
        if detail.get(field) != listed.get(field):
            p.append("%s: %s is %r in the detail, %r in the list"
                     % (tag, field, detail.get(field), listed.get(field)))
    if detail.get("inflight"):
        p.append("%s: a kept trace says inflight" % tag)
    status = detail.get("status")
    if not isinstance(status, int) or not 100 <= status <= 599:
        p.append("%s: status %r" % (tag, status))
    dur = detail.get("duration_ms")
    forced = detail.get("triggered") or detail.get("captured")
    if not isinstance(dur, (int, float)) or dur < 0 or (not forced and dur < SLOW_MS):
        p.append("%s: duration_ms %r (kept as slow needs >= %s)" % (tag, dur, SLOW_MS))
    if not isinstance(detail.get("cpu_ms"), (int, float)) or detail["cpu_ms"] < 0:
        p.append("%s: cpu_ms %r" % (tag, detail.get("cpu_ms")))
    stacks = detail.get("stacks")
    if not isinstance(stacks, list):
        return p + ["%s: no stacks list" % tag]
    total = sum(s.get("count", 0) for s in stacks)
    if detail.get("samples") != total:
        p.append("%s: samples %r != sum of stack counts %d" % (tag, detail.get("samples"), total))
    on, off = detail.get("samples_on_cpu"), detail.get("samples_off_cpu")
    if isinstance(on, int) and isinstance(off, int) and on + off != detail.get("samples"):
        p.append("%s: samples_on_cpu %d + samples_off_cpu %d != samples %r"
                 % (tag, on, off, detail.get("samples")))
    if (detail.get("samples_gil_wait") or 0) > (off or 0):
        p.append("%s: samples_gil_wait > samples_off_cpu" % tag)
    loc = location_for(detail.get("uri", ""))
    if detail.get("location") != loc:
        p.append("%s: location %r, the uri belongs to %r" % (tag, detail.get("location"), loc))
    elif not forced and abs(detail.get("interval_ms", -1) - LOCATIONS[loc]) > 1e-6:
        p.append("%s: interval_ms %r for %s" % (tag, detail.get("interval_ms"), loc))
    truncated = False
    for s in stacks:
        frames = s.get("frames")
        if not isinstance(s.get("count"), int) or s["count"] < 1:
            p.append("%s: stack count %r" % (tag, s.get("count")))
        for k in ("weight_ms", "cpu_ms"):
            if not isinstance(s.get(k), (int, float)) or s[k] < 0:
                p.append("%s: stack %s %r" % (tag, k, s.get(k)))
        if not isinstance(frames, list) or not frames:
            p.append("%s: stack without frames: %s" % (tag, short(s, 300)))
            continue
        # [truncated] at the root, and a GIL pseudo-frame at the leaf
        gil_leaf = isinstance(frames[-1], dict) and \
            bool(GIL_PSEUDO.match(str(frames[-1].get("function"))))
        if len(frames) > MAX_DEPTH + 1 + gil_leaf:
            p.append("%s: stack of %d frames (PyProfMaxDepth %d)" % (tag, len(frames), MAX_DEPTH))
        for i, f in enumerate(frames):
            fn = f.get("function")
            if fn == "[truncated]":
                truncated = True
                if i != 0:
                    p.append("%s: [truncated] not at the root (frame %d)" % (tag, i))
            elif fn == "[other stacks]" and len(frames) != 1:
                p.append("%s: [other stacks] inside a stack" % tag)
            problem = resolver.problem(f)
            if problem:
                p.append("%s: %s" % (tag, problem))
        if extra_frame_check:
            p.extend("%s: %s" % (tag, x) for x in extra_frame_check(detail, frames))
    if truncated and not detail.get("truncated"):
        p.append("%s: a stack is [truncated] but the trace is not flagged truncated" % tag)
    segs = detail.get("segments") or []
    for i, g in enumerate(segs):
        if not 0 <= g.get("parent", -1) <= i:
            p.append("%s: segment %d parent %r" % (tag, i, g.get("parent")))
            continue
        want_depth = 0 if g["parent"] == 0 else segs[g["parent"] - 1].get("depth", -9) + 1
        if g.get("depth") != want_depth:
            p.append("%s: segment %d depth %r, parent says %d" % (tag, i, g.get("depth"), want_depth))
        # a daemon killed inside the block leaves it open: the child
        # answers 500 and finishes the request
        died = mode == "daemon" and status == 500 and g.get("duration_ms") == -1
        if died:
            continue
        if g.get("duration_ms", -1) < 0 or g.get("start_ms", -1) < 0:
            p.append("%s: segment %d open or negative in a finished request: %s"
                     % (tag, i, short(g, 300)))
        elif isinstance(dur, (int, float)) and g["start_ms"] + g["duration_ms"] > dur + 1.0:
            p.append("%s: segment %d ends after the request: %s" % (tag, i, short(g, 300)))
        if g.get("name") not in ("gen", "exc"):
            p.append("%s: segment name %r" % (tag, g.get("name")))
    if mode == "daemon":
        if detail.get("daemon_pid") is not None and detail.get("process_group") != DAEMON_GROUP:
            p.append("%s: daemon_pid %r with process_group %r"
                     % (tag, detail.get("daemon_pid"), detail.get("process_group")))
    elif detail.get("daemon_pid") is not None:
        p.append("%s: daemon_pid %r in embedded mode" % (tag, detail.get("daemon_pid")))
    return p


def folded_line(frames):
    return ";".join("%s (%s:%d)" % (f["function"].replace(";", ":"), f["file"].replace(";", ":"),
                                    f["line"]) if f["file"] or f["line"] else
                    f["function"].replace(";", ":") for f in frames)


def check_folded_matches(detail, text):
    """The folded export of a kept trace carries the JSON's stacks."""
    try:
        got = folded_stacks(text)
    except AssertionError as e:
        return ["request %s: folded export malformed: %s" % (detail.get("id"), e)]
    total = sum(c for _, c in got)
    if total != detail.get("samples"):
        return ["request %s: folded export has %d samples, JSON %r"
                % (detail.get("id"), total, detail.get("samples"))]
    want = {}
    for s in detail["stacks"]:
        want[folded_line(s["frames"])] = want.get(folded_line(s["frames"]), 0) + s["count"]
    have = {}
    for frames, c in got:
        key = ";".join(frames)
        have[key] = have.get(key, 0) + c
    if want != have:
        diff = sorted(set(want.items()) ^ set(have.items()))[:4]
        return ["request %s: folded export differs from the JSON stacks: %s"
                % (detail.get("id"), short(diff, 800))]
    return []


# ---------------------------------------------------------------------------
# threads that run during the load
# ---------------------------------------------------------------------------

MONOTONIC = [("sampler", "samples"), ("sampler", "ticks"), ("sampler", "cpu_s"),
             ("sampler", "torn"), ("sampler", "threads_missing"), ("sampler", "gil_wait_s"),
             ("sampler", "walk_s"), ("store", "traces_kept"), ("store", "traces_evicted"),
             ("store", "traces_dropped"), ("store", "slots_full"), ("store", "slots_lost"),
             ("store", "frames_full"), ("store", "nodes_full"), ("store", "aggregate_full"),
             ("store", "stacks_overflow"), ("store", "uptime_s")]
CONSTANT = [("store", "memory"), ("store", "slots"), ("store", "keep"),
            ("store", "frames_capacity"), ("store", "nodes_capacity"), ("store", "arena_size")]
LOC_MONOTONIC = ("requests", "samples", "kept", "max_ms")


def counters_of(data):
    c = {}
    for sec, key in MONOTONIC + CONSTANT:
        c["%s.%s" % (sec, key)] = (data.get(sec) or {}).get(key)
    for loc in data.get("locations", []):
        for key in LOC_MONOTONIC:
            c["loc[%s].%s" % (loc["path"], key)] = loc.get(key)
        for b in loc.get("histogram", []):
            c["loc[%s].hist[%s]" % (loc["path"], b["lo_ms"])] = b["count"]
    return c


def compare_counters(prev, cur, label):
    """Problems between two successive snapshots."""
    p = []
    const = {"%s.%s" % x for x in CONSTANT}
    for key, old in prev.items():
        new = cur.get(key)
        if key in const:
            if new != old:
                p.append("%s: %s changed %r -> %r (store recreated?)" % (label, key, old, new))
            continue
        if new is None:
            if ".hist[" in key:
                p.append("%s: histogram bucket %s vanished (was %r)" % (label, key, old))
            else:
                p.append("%s: %s vanished (was %r)" % (label, key, old))
            continue
        if old is not None and new < old:
            p.append("%s: %s went down %r -> %r" % (label, key, old, new))
    return p


class Looper(threading.Thread):
    """A checker thread: one round (step()) again and again, `pause`
    seconds apart, until halted, after `rounds` rounds, or after
    max_seconds.  A connection error (a child killed under us) is counted
    in errors; any other exception is a checker bug, kept in problems
    rather than passing silently."""

    rounds, pause, name_in_problems, traceback_limit = 100000, 1.0, "thread", 3

    def __init__(self, max_seconds):
        super().__init__(daemon=True)
        self.max_seconds = max_seconds
        self.halt = threading.Event()
        self.errors = []          # connection-level (a child killed under us)
        self.problems = []

    def step(self):
        raise NotImplementedError

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        for _ in range(self.rounds):
            if self.halt.is_set() or time.monotonic() > deadline:
                return
            try:
                self.step()
            except requests.RequestException as e:
                self.errors.append("%s %r" % (time.strftime("%H:%M:%S"), e))
            except Exception:  # a checker bug must not pass silently
                self.problems.append("%s thread: %s" % (
                    self.name_in_problems, traceback.format_exc(limit=self.traceback_limit)))
            self.halt.wait(self.pause)


class Snapshotter(Looper):
    """GET /server-profile?format=json once a second, one after the other."""

    name_in_problems = "snapshot"

    def __init__(self, srv, interval=1.0, max_seconds=900):
        super().__init__(max_seconds)
        self.srv, self.pause = srv, interval
        self.count = 0
        self.prev = None
        self.prev_at = None
        self.negative_elapsed = []
        self.last = None
        self.last_at = 0.0
        self.lock = threading.Lock()

    def take(self):
        r = requests.get(self.srv.url("/server-profile?format=json"), timeout=15)
        if r.status_code != 200:
            self.problems.append("snapshot: HTTP %d: %s" % (r.status_code, r.text[:300]))
            return None
        try:
            data = json.loads(r.content.decode("utf-8"))
        except ValueError as e:
            self.problems.append("snapshot: not JSON (%s): %r" % (e, r.content[:300]))
            return None
        cur = counters_of(data)
        label = "snapshot %d (%s)" % (self.count + 1, time.strftime("%H:%M:%S"))
        if self.prev is not None:
            self.problems.extend(compare_counters(self.prev, cur, label))
        for loc in data.get("locations", []):
            hsum = sum(b["count"] for b in loc.get("histogram", []))
            if hsum != loc.get("requests"):
                self.problems.append("%s: %s histogram sums to %d, requests %r"
                                     % (label, loc["path"], hsum, loc.get("requests")))
        for req in data.get("inflight", []):
            if req.get("status") != 0 or not isinstance(req.get("elapsed_ms"), (int, float)):
                self.problems.append("%s: odd in-flight entry %s" % (label, short(req, 300)))
            elif req["elapsed_ms"] < 0:
                # one line for all of them at the end (see summary())
                self.negative_elapsed.append((label, req["id"], req["elapsed_ms"]))
        self.prev = cur
        self.count += 1
        with self.lock:
            self.last = data
            self.last_at = time.monotonic()
        return data

    def latest_inflight(self, max_age):
        """The in-flight list of the newest snapshot if it is fresh enough."""
        with self.lock:
            if self.last is not None and time.monotonic() - self.last_at <= max_age:
                return self.last.get("inflight") or []
        return None

    def summary(self):
        """Problems, with the negative elapsed_ms entries folded into one."""
        out = list(self.problems)
        if self.negative_elapsed:
            worst = min(self.negative_elapsed, key=lambda x: x[2])
            out.append("in-flight entries with a negative elapsed_ms in %d snapshot entries "
                       "(worst %.3f ms: request %s in %s; e.g. %s)"
                       % (len(self.negative_elapsed), worst[2], worst[1], worst[0],
                          self.negative_elapsed[:3]))
        return out

    def latest(self):
        with self.lock:
            return self.last

    def step(self):
        self.take()


class Fetcher(Looper):
    """Fetches pages and exports in a loop and validates what comes back."""

    rounds, pause, name_in_problems, traceback_limit = 200000, 0.05, "fetcher", 4

    def __init__(self, srv, snap, resolver, mode, seed, max_seconds=900, heavy_every=4):
        super().__init__(max_seconds)
        self.srv, self.snap, self.resolver, self.mode = srv, snap, resolver, mode
        self.rng = random.Random(seed)
        self.heavy_every = heavy_every
        self.fetched = {}
        self.gone = 0             # 404 for a request evicted meanwhile
        self.traces_checked = 0
        self.n = 0

    def get(self, path, timeout=20):
        r = requests.get(self.srv.url(path), timeout=timeout)
        # a child answers at most 4 renders and 1 pull at once: past that
        # a 503 with Retry-After, which a client honours (counted as busy)
        for attempt in range(8):
            if r.status_code != 503 or "Retry-After" not in r.headers:
                break
            self.busy = getattr(self, "busy", 0) + 1
            time.sleep(0.25 * (attempt + 1))
            r = requests.get(self.srv.url(path), timeout=timeout)
        kind = re.sub(r"[?&](since|view|seconds|path|sort|location|refresh)=[^&]*", "",
                      re.sub(r"/request/[^?]+", "/request/ID", path))
        self.fetched[kind] = self.fetched.get(kind, 0) + 1
        return r

    def expect_ok(self, path, r, ctype=None):
        if r.status_code != 200:
            self.problems.append("GET %s -> HTTP %d: %s" % (path, r.status_code, r.text[:300]))
            return False
        if ctype and not r.headers.get("Content-Type", "").startswith(ctype):
            self.problems.append("GET %s: Content-Type %r" % (path, r.headers.get("Content-Type")))
            return False
        return True

    def check_html(self, path, r):
        if self.expect_ok(path, r, "text/html"):
            if "</html>" not in r.text[-200:]:
                self.problems.append("GET %s: HTML does not end with </html>: %r"
                                     % (path, r.text[-200:]))

    def check_json(self, path, r):
        if self.expect_ok(path, r, "application/json"):
            try:
                return json.loads(r.content.decode("utf-8"))
            except ValueError as e:
                self.problems.append("GET %s: not strict JSON (%s): %r" % (path, e, r.content[:300]))
        return None

    def check_export(self, path, r, fmt):
        if not self.expect_ok(path, r):
            return
        heavy = self.n % self.heavy_every == 0
        try:
            if fmt == "folded":
                folded_stacks(r.content.decode("utf-8"))
            elif fmt == "speedscope":
                if heavy:
                    check_speedscope(r.content)
                else:
                    json.loads(r.content.decode("utf-8"))
            elif fmt == "pprof":
                if heavy:
                    Pprof(r.content)
                else:
                    import gzip
                    gzip.decompress(r.content)
        except Exception as e:
            self.problems.append("GET %s: invalid %s: %s" % (path, fmt, short(str(e), 500)))

    def one_request(self, listed, inflight):
        rid = listed["id"]
        base = self.srv.request_path(rid)
        fmt = self.rng.choice(["json", "json", "html", "folded", "speedscope", "pprof"])
        path = base + ("?format=%s" % fmt if fmt != "html" else "")
        r = self.get(path)
        if r.status_code == 404:
            self.gone += 1   # evicted (kept) or finished and not kept (in flight)
            return
        if fmt == "json":
            detail = self.check_json(path, r)
            if detail is not None and not inflight:
                self.traces_checked += 1
                self.problems.extend(check_trace(detail, listed, self.resolver, self.mode))
            elif detail is not None and detail.get("inflight"):
                total = sum(s.get("count", 0) for s in detail.get("stacks", []))
                if total != detail.get("samples"):
                    # an in-flight record is copied under its seqlock: it
                    # must be self-consistent too
                    self.problems.append("in-flight %s: samples %r != sum of counts %d"
                                         % (rid, detail.get("samples"), total))
                for s in detail.get("stacks", []):
                    for f in s.get("frames", []):
                        problem = self.resolver.problem(f)
                        if problem:
                            self.problems.append("in-flight %s: %s" % (rid, problem))
        elif fmt == "html":
            self.check_html(path, r)
        else:
            self.check_export(path, r, fmt)

    def one_round(self):
        self.n += 1
        data = self.snap.latest() or {}
        choice = self.n % 8
        if choice == 0:
            self.check_html("/server-profile", self.get("/server-profile"))
        elif choice == 1:
            path = "/server-profile/metrics"
            r = self.get(path)
            if self.expect_ok(path, r, "text/plain"):
                try:
                    parse_prometheus(r.text)
                except AssertionError as e:
                    self.problems.append("GET %s: %s" % (path, e))
        elif choice in (2, 3, 4):
            kept = data.get("requests") or []
            live = data.get("inflight") or []
            if choice == 4 and live:
                self.one_request(self.rng.choice(live), True)
            elif kept:
                self.one_request(self.rng.choice(kept), False)
        elif choice in (5, 6):
            loc = self.rng.choice(sorted(LOCATIONS))
            q = "/server-profile/location?path=%s" % urllib.parse.quote(loc, safe="")
            fmt = self.rng.choice(["html", "json", "folded", "speedscope", "pprof",
                                   "html&since=5m", "folded&view=slow", "html&view=diff",
                                   "json&since=2m"])
            path = q + "&format=" + fmt if not fmt.startswith("html") else \
                q + fmt[4:]
            r = self.get(path)
            base_fmt = fmt.split("&")[0]
            if base_fmt == "html":
                self.check_html(path, r)
            elif base_fmt == "json":
                doc = self.check_json(path, r)
                if doc is not None:
                    total = sum(s.get("count", 0) for s in doc.get("stacks", []))
                    if doc.get("samples") is not None and total > doc["samples"]:
                        self.problems.append("GET %s: stacks count %d > samples %r"
                                             % (path, total, doc["samples"]))
                    for s in doc.get("stacks", [])[:300]:
                        for f in s.get("frames", []):
                            problem = self.resolver.problem(f)
                            if problem:
                                self.problems.append("GET %s: %s" % (path, problem))
            else:
                self.check_export(path, r, base_fmt)
        else:
            if self.n % 32 == 7:
                loc = self.rng.choice(sorted(LOCATIONS))
                path = "/server-profile/pprof?path=%s&seconds=1" % urllib.parse.quote(loc, safe="")
                self.check_export(path, self.get(path, timeout=30), "pprof")
            else:
                path = "/server-profile?format=json&sort=time&location=/app/deep"
                self.check_json(path, self.get(path))

    def step(self):
        self.one_round()


class Prometheus(object):
    """A real Prometheus (Debian's `prometheus`) scraping the server's
    /server-profile/metrics every second, its TSDB in the run directory;
    queried over its HTTP API after the load (--scrape-only)."""

    def __init__(self, rundir, target_port, name):
        self.dir = os.path.join(rundir.path, "prom-%s" % name)
        os.makedirs(self.dir)
        self.port = _free_port()
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
                    "scrape_configs:\n  - job_name: pyprof\n"
                    "    metrics_path: /server-profile/metrics\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % target_port)
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + cfg,
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url("/-/ready"), timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("prometheus did not become ready (log %s)" % self.log.name)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def query(self, expr, at=None):
        params = {"query": expr}
        if at is not None:
            params["time"] = "%.3f" % at
        r = requests.get(self.url("/api/v1/query"), params=params, timeout=10)
        r.raise_for_status()
        return [(m["metric"], float(m["value"][1])) for m in r.json()["data"]["result"]]

    def range(self, expr, start, end, step):
        r = requests.get(self.url("/api/v1/query_range"),
                         params={"query": expr, "start": "%.3f" % start, "end": "%.3f" % end,
                                 "step": "%gs" % step}, timeout=20)
        r.raise_for_status()
        return [(m["metric"], [(float(t), float(v)) for t, v in m["values"]])
                for m in r.json()["data"]["result"]]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


WINDOW_S = 5


def scrape_checks(prom, res, t0, t1, events=()):
    """Nobody opened a page during the load (--scrape-only): what Prometheus
    recorded must show profiling never stopped.  Every WINDOW_S-second
    window of the load saw requests counted by the histogram and samples
    taken; no request was dropped for want of a slot; every failed scrape
    was one a SIGKILL or graceful restart broke (its connection's child
    went away: from 2 s before to 3 s after one of `events`)."""
    fail = res["failures"]
    start, end = t0 + WINDOW_S, t1 - 1
    inc = "increase(%s[" + str(WINDOW_S) + "s])"
    reqs = prom.range("sum(" + inc % "pyprof_request_duration_seconds_count" + ")",
                      start, end, WINDOW_S)
    samples = prom.range("sum(" + inc % "pyprof_samples_total" + ")", start, end, WINDOW_S)
    ups = prom.range("up", t0, t1, 1)
    full = prom.query("max_over_time(pyprof_dropped_total{reason=\"slots_full\"}[1h])")
    reaped = prom.query("max_over_time(pyprof_slots_reaped_total[1h])")
    busy = prom.query("max_over_time(pyprof_dropped_total{reason=\"writer_busy\"}[1h])")
    rv = [v for _, vals in reqs for _, v in vals]
    sv = [v for _, vals in samples for _, v in vals]
    up = [v for _, vals in ups for _, v in vals]
    failed_at = [t for _, vals in ups for t, v in vals if v < 1]
    unexplained = [t for t in failed_at if not any(e - 2 <= t <= e + 3 for e in events)]
    res["scrape"] = {"windows": len(rv), "windows_without_requests": sum(1 for v in rv if v <= 0),
                     "windows_without_samples": sum(1 for v in sv if v <= 0),
                     "min_requests_per_window": min(rv) if rv else None,
                     "min_samples_per_window": min(sv) if sv else None,
                     "scrapes": len(up), "scrapes_failed": sum(1 for v in up if v < 1),
                     "scrapes_failed_unexplained": len(unexplained),
                     "slots_full_max": max([v for _, v in full] or [0]),
                     "reaped": {"slots_reaped": v for m, v in reaped},
                     "writer_busy_max": max([v for _, v in busy] or [0])}
    sc = res["scrape"]
    if not rv or len(rv) < (end - start) / WINDOW_S - 1:
        fail.append("prometheus: %d %d-s windows of data for %.0f s of load"
                    % (len(rv), WINDOW_S, end - start))
    if sc["windows_without_requests"] or sc["windows_without_samples"]:
        fail.append("profiling stopped: %d of %d windows counted no request, %d took no sample"
                    % (sc["windows_without_requests"], len(rv), sc["windows_without_samples"]))
    if sc["slots_full_max"]:
        fail.append("prometheus: dropped_total{reason=slots_full} reached %g"
                    % sc["slots_full_max"])
    if not up or unexplained:
        fail.append("prometheus: %d of %d scrapes failed, %d of them away from any kill or "
                    "graceful restart (at %s)" % (sc["scrapes_failed"], len(up), len(unexplained),
                                                   ", ".join("%.1f" % t for t in unexplained[:10])))


def scrape_vs_access(prom, res, srv):
    """After the load, the histogram totals Prometheus last scraped equal the
    access log's lines per location."""
    acc = access_lines(srv.soak_log)
    want = {loc: sum(1 for a in acc if location_for(a["uri"]) == loc) for loc in LOCATIONS}
    got = {}
    for attempt in range(10):
        time.sleep(1.5)
        got = {m.get("location"): v for m, v in
               prom.query("sum by (location) (pyprof_request_duration_seconds_count)")}
        if all(got.get(loc) == want[loc] for loc in LOCATIONS):
            break
    res["scrape"]["final_count"] = got
    res["scrape"]["access"] = want
    for loc in LOCATIONS:
        if got.get(loc) != want[loc]:
            res["failures"].append("prometheus: %s count %r, access log %d"
                                   % (loc, got.get(loc), want[loc]))


class Driver(threading.Thread):
    """Graceful restarts and SIGKILLs, spread over the load's duration."""

    def __init__(self, srv, duration, gracefuls, kills, mode, snap, seed, with_module,
                 peek=True):
        super().__init__(daemon=True)
        self.srv, self.duration, self.mode, self.snap = srv, duration, mode, snap
        # peek=False (--scrape-only): never open a page, so kill at random
        self.with_module = with_module and peek
        self.rng = random.Random(seed)
        self.halt = threading.Event()
        events = []
        span0, span1 = 0.05 * duration, 0.92 * duration
        for i in range(gracefuls):
            events.append((span0 + (span1 - span0) * (i + 0.5) / max(1, gracefuls), "graceful"))
        for i in range(kills):
            at = span0 + (span1 - span0) * (i + 0.25) / max(1, kills)
            events.append((at, "kill"))
        self.events = sorted(events)
        self.gracefuls = []     # wall times
        self.graceful_failures = []
        self.kills = []         # dicts
        self.kill_misses = 0
        self.problems = []

    def inflight_now(self):
        """Requests in flight: from the snapshot thread's newest overview
        (at most 1.5 s old), else one quick fetch; a driver that waited for
        a slow page would fall behind its schedule."""
        fresh = self.snap.latest_inflight(1.5) if self.snap is not None else None
        if fresh is not None:
            return fresh
        try:
            r = requests.get(self.srv.url("/server-profile?format=json"), timeout=1.5)
            if r.status_code == 200:
                return r.json().get("inflight") or []
        except (requests.RequestException, ValueError):
            pass
        return []

    def pick(self, nkill):
        daemon_turn = self.mode == "daemon" and nkill % 2 == 1
        sampling_turn = self.with_module and (nkill // (2 if self.mode == "daemon" else 1)) % 2 == 0
        pool = daemon_pids(self.srv) if daemon_turn else worker_pids(self.srv)
        if sampling_turn:
            live = self.inflight_now()
            if daemon_turn:
                busy = {r["daemon_pid"]: r["id"] for r in live if r.get("daemon_pid")}
            else:
                busy = {int(r["pid"]): r["id"] for r in live}
            cands = [p for p in busy if p in pool]
            if cands:
                pid = self.rng.choice(cands)
                ids = [r["id"] for r in live if (r.get("daemon_pid") if daemon_turn
                                                   else int(r["pid"])) == pid]
                return pid, "daemon" if daemon_turn else "child", True, ids
        if not pool:
            return None, None, False, []
        return self.rng.choice(pool), "daemon" if daemon_turn else "child", False, []

    def run(self):
        start = time.monotonic()
        nkill = 0
        for at, what in self.events:
            while not self.halt.is_set() and time.monotonic() - start < at:
                self.halt.wait(min(0.05, at - (time.monotonic() - start)))
            if self.halt.is_set():
                return
            if what == "graceful":
                t = now()
                try:
                    self.srv.graceful()
                    self.gracefuls.append(t)
                except (HttpdError, subprocess.SubprocessError) as e:
                    self.graceful_failures.append("%s: %s" % (time.strftime("%H:%M:%S"), e))
                continue
            done = False
            # right after a graceful restart there may be no child to kill
            # for a moment (the old ones leaving, the new ones not forked
            # yet): try again for up to a second
            for attempt in range(20):
                pid, kind, sampling, ids = self.pick(nkill)
                if pid is None:
                    time.sleep(0.05)
                    continue
                # a last check that the pid is still one of ours (no reuse)
                if pid not in _children_of(self.srv.pid):
                    time.sleep(0.05)
                    continue
                try:
                    t = now()
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    time.sleep(0.05)
                    continue
                self.kills.append({"at": t, "pid": pid, "kind": kind, "sampling": sampling,
                                   "inflight_ids": ids})
                done = True
                break
            if not done:
                self.kill_misses += 1
            nkill += 1


# ---------------------------------------------------------------------------
# logs
# ---------------------------------------------------------------------------

def scan_log(text, gracefuls, kills):
    """(crash lines, unexpected severe lines, {whitelist name: count}, AH00045, AH00046)."""
    crashes, unexpected, allowed = [], [], {}
    events = {"graceful": list(gracefuls),
              "kill-daemon": [k["at"] for k in kills if k["kind"] == "daemon"],
              "kill-child": [k["at"] for k in kills if k["kind"] == "child"]}
    ah45 = ah46 = 0
    for line in text.splitlines():
        if any(m in line for m in CRASH_MARKERS):
            crashes.append(line)
            continue
        if "AH00045" in line:
            ah45 += 1
            continue
        if "AH00046" in line:
            ah46 += 1
            continue
        if not SEVERE_LEVEL.search(line):
            continue
        at = log_time(line)
        for name, regex, causes, window in LOG_WHITELIST:
            if regex.search(line) and at is not None and any(
                    t - 1.0 <= at <= t + window for c in causes for t in events.get(c, [])):
                allowed[name] = allowed.get(name, 0) + 1
                break
        else:
            unexpected.append(line)
    return crashes, unexpected, allowed, ah45, ah46


ACCESS = re.compile(r'^(\d+)\.(\d+) "(\S+) (\S+) [^"]*" (\d+) (\d+) (\d+) (\S+)$')


def access_lines(path):
    out = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = ACCESS.match(line.rstrip("\n"))
                if m:
                    out.append({"t": float("%s.%s" % (m.group(1), m.group(2))), "method": m.group(3),
                                "uri": m.group(4), "status": int(m.group(5)),
                                "us": int(m.group(6)), "pid": int(m.group(7)), "id": m.group(8)})
    except FileNotFoundError:
        pass
    return out


# ---------------------------------------------------------------------------
# one soak combination
# ---------------------------------------------------------------------------

def quiesce(srv, timeout=30):
    """Wait until nothing is in flight and the counters stop moving; the
    final overview JSON (None if the server never answered)."""
    deadline = time.monotonic() + timeout
    last, stable = None, 0
    data = None
    while time.monotonic() < deadline:
        try:
            data = srv.get_json("/server-profile?format=json")
        except (requests.RequestException, AssertionError):
            time.sleep(0.5)
            continue
        key = json.dumps([[(l.get("path"), l.get("requests"), l.get("samples"), l.get("kept"))
                           for l in data.get("locations", [])],
                          [(data.get("store") or {}).get(k) for k in
                           ("slots_lost", "traces_kept", "traces_dropped")]])
        if not data.get("inflight") and key == last:
            stable += 1
            if stable >= 2:
                return data, True
        else:
            stable = 0
        last = key
        time.sleep(1.0)
    return data, False


def wait_old_generation(srv, last_graceful, timeout=35):
    """Children (workers and daemons) started before the last graceful
    restart that are still alive `timeout` s after it."""
    if last_graceful is None:
        return []
    deadline = last_graceful + timeout
    old = []
    for _ in range(400):
        old = [p for p in children(srv)
               if (proc_start_time(p) or 1e18) < last_graceful - 0.5]
        if not old or now() > deadline:
            break
        time.sleep(0.25)
    return [(p, cmdline(p)) for p in old]


def keep_or_remove(srv, res, fail, keep_dirs):
    """A run's server directory stays if it failed (or --keep-dirs), for
    the post-mortem; else it goes."""
    if fail or keep_dirs:
        res["server_dir_kept"] = True
    else:
        srv.remove()


def logged(res, label, fail, log):
    """res, once its failures are logged (the first ten, shortened)."""
    log("   %s: %d failure(s)" % (label, len(fail)))
    for f in fail[:10]:
        log("     - " + short(f, 400))
    return res


def run_combination(rundir, mpm, mode, with_module, duration, gracefuls, kills, seed,
                    keep_dirs=False, log=print, scrape_only=False):
    label = "%s/%s/%s" % (mpm, mode, "module" if with_module else "no-module")
    log("== %s: %ds, %d gracefuls, %d kills" % (label, duration, gracefuls, kills))
    res = {"mpm": mpm, "mode": mode, "module": with_module, "duration_s": duration,
           "gracefuls_planned": gracefuls, "kills_planned": kills, "failures": [],
           "scrape_only": scrape_only}
    fail = res["failures"]
    srv = SoakHttpd(mode, rundir, SAMPLING if with_module else "",
                    name="soak-%s-%s-%s" % (mpm, mode, "mod" if with_module else "nomod"),
                    mpm=mpm, with_module=with_module, module=rundir.module)
    res["server_dir"] = srv.root
    wrks, threads = [], []
    started = False
    prom = None
    try:
        srv.start()
        started = True
        resolver = FrameResolver(srv.app)
        snap = Snapshotter(srv, max_seconds=duration + 120)
        fetchers = [Fetcher(srv, snap, resolver, mode, seed + i, max_seconds=duration + 120)
                    for i in range(2)]
        if scrape_only:
            prom = Prometheus(rundir, srv.port, os.path.basename(srv.root))
            snap, fetchers = None, []
        if with_module and snap is not None:
            snap.take()
        nonce = "s%x" % random.Random(seed).getrandbits(24)
        load_t0 = time.time()
        wrks = [Wrk(rundir.lua, srv.port, m, nonce, duration).start() for m in ("app", "deep")]
        driver = Driver(srv, duration, gracefuls, kills, mode, snap, seed, with_module,
                        peek=not scrape_only)
        threads = [driver] + ([snap] + fetchers if with_module and snap is not None else [])
        for t in threads:
            t.start()
        results = []
        for w in wrks:
            try:
                results.append(w.wait())
            except RuntimeError as e:
                fail.append(str(e))
        load_t1 = time.time()
        driver.halt.set()
        driver.join(30)
        if prom is not None and with_module:
            # before anything opens a page: what the scrapes alone saw
            scrape_checks(prom, res, load_t0, load_t1,
                          [k["at"] for k in driver.kills] + list(driver.gracefuls))
        time.sleep(1.0)
        for t in threads[1:]:
            t.halt.set()
        for t in threads[1:]:
            t.join(60)
        if any(t.is_alive() for t in threads):
            fail.append("a soak thread did not stop within 60 s")

        res["wrk"] = {w.mode: w.result for w in wrks}
        res["wrk_output"] = {w.mode: w.output[-1500:] for w in wrks}
        res["wrk_cmd"] = " ".join(wrks[0].cmd)
        res["gracefuls"] = len(driver.gracefuls)
        res["graceful_times"] = driver.gracefuls
        res["graceful_failures"] = driver.graceful_failures
        fail.extend("graceful failed: %s" % g for g in driver.graceful_failures)
        res["kills"] = len(driver.kills)
        res["kills_sampling"] = sum(1 for k in driver.kills if k["sampling"])
        res["kills_daemon"] = sum(1 for k in driver.kills if k["kind"] == "daemon")
        res["kill_misses"] = driver.kill_misses
        res["kill_log"] = driver.kills
        if not srv.running:
            fail.append("the httpd parent is gone after the load")

        res["old_generation_alive"] = wait_old_generation(
            srv, max(driver.gracefuls) if driver.gracefuls else None)

        if with_module and prom is not None:
            final, quiet = quiesce(srv)
            if not quiet:
                fail.append("the store did not settle within 30 s")
            scrape_vs_access(prom, res, srv)
            final_checks(srv, final or {}, res, resolver, mode, results, driver.kills)
        elif with_module:
            final, quiet = quiesce(srv)
            if final is None:
                fail.append("no overview JSON after the load")
                final = {}
            if not quiet:
                fail.append("the store did not settle within 30 s: in flight %s"
                            % short(final.get("inflight"), 1500))
            # the final snapshot continues the monotonic series
            if snap.prev is not None:
                snap.problems.extend(compare_counters(snap.prev, counters_of(final),
                                                      "final snapshot"))
            res["snapshots"] = snap.count
            res["snapshot_errors"] = len(snap.errors)
            res["monotonic_problems"] = [x for x in snap.problems if "went down" in x
                                         or "vanished" in x or "changed" in x]
            res["negative_elapsed"] = len(snap.negative_elapsed)
            fail.extend(snap.summary())
            res["pages"] = {}
            res["page_errors"] = 0
            res["pages_gone"] = 0
            res["traces_checked_live"] = 0
            for f in fetchers:
                for k, v in f.fetched.items():
                    res["pages"][k] = res["pages"].get(k, 0) + v
                res["page_errors"] += len(f.errors)
                res["pages_gone"] += f.gone
                res["traces_checked_live"] += f.traces_checked
                fail.extend(f.problems)
            res["page_error_samples"] = [e for f in fetchers for e in f.errors][:5]
            final_checks(srv, final, res, resolver, mode, results, driver.kills)
        else:
            acc = access_lines(srv.soak_log)
            res["access"] = {loc: sum(1 for a in acc if location_for(a["uri"]) == loc)
                             for loc in LOCATIONS}
    except Exception:
        fail.append("soak run raised: %s" % traceback.format_exc(limit=6))
    finally:
        for w in wrks:
            w.stop()
        for t in threads:
            t.halt.set()
        if prom is not None:
            prom.stop()
        if started:
            srv.stop()
        res["stop_seconds"] = srv.stop_seconds
        res["stop_problems"] = list(srv.problems)
        fail.extend(srv.problems)
        text = srv.error_log_text()
        drv = next((t for t in threads if isinstance(t, Driver)), None)
        crashes, unexpected, allowed, ah45, ah46 = scan_log(
            text, drv.gracefuls if drv else [], drv.kills if drv else [])
        res["crash_lines"] = crashes
        res["unexpected_log"] = unexpected
        res["whitelisted_log"] = allowed
        res["AH00045"] = ah45
        res["AH00046"] = ah46
        res["pyprof_warnings"] = sum(1 for l in text.splitlines()
                                     if "[pyprof:warn]" in l)
        fail.extend("crash marker in the error log: %s" % l for l in crashes)
        res["cores"] = []
        for path, bt in srv.core_backtraces():
            keep = os.path.join(rundir.path, "%s-%s" % (os.path.basename(srv.root), "bt.txt"))
            with open(keep, "a") as f:
                f.write("== %s\n%s\n" % (path, bt))
            res["cores"].append({"core": path, "backtrace": keep})
            fail.append("core dump %s; backtrace (gdb) in %s:\n%s" % (path, keep, bt[-3000:]))
        fail.extend("unexpected error-log line: %s" % l for l in unexpected[:30])
        if len(unexpected) > 30:
            fail.append("... and %d more unexpected error-log lines" % (len(unexpected) - 30))
        if res.get("old_generation_alive"):
            msg = "children of an old generation still alive 35 s after the last graceful: %s" \
                % res["old_generation_alive"]
            res["hung_note"] = msg
        keep_or_remove(srv, res, fail, keep_dirs)
    return logged(res, label, fail, log)


KILL_AFTER_LOG_S = 0.1


def logged_then_killed(lines, kills, window=KILL_AFTER_LOG_S):
    """Access-log lines whose process was SIGKILLed just after the request
    ended.  mod_log_config (compiled in, so its log_transaction hook runs
    first) writes the line before mod_pyprof's hook counts the request: a
    SIGKILL between the two leaves a logged request that the histogram
    never sees and that the store reaps as lost.  The histogram may miss
    at most these (and never more than slots_lost)."""
    kill_at = {}
    for k in kills:
        kill_at.setdefault(k["pid"], []).append(k["at"])
    out = []
    for a in lines:
        end = a["t"] + a["us"] / 1e6
        if any(end - 0.01 <= t <= end + window for t in kill_at.get(a["pid"], [])):
            out.append({"id": a["id"], "pid": a["pid"], "end": round(end, 6)})
    return out


def check_access_vs_hist(res, acc, kills, slots_lost):
    """Per location: the histogram counts every request the access log has,
    except those logged by a process SIGKILLed right after (see
    logged_then_killed); fills res, returns the failures."""
    fail = []
    res["access_minus_hist"], res["logged_then_killed"] = {}, {}
    for loc in LOCATIONS:
        lines = [a for a in acc if location_for(a["uri"]) == loc]
        gap = res["access"][loc] - (res["hist"][loc] or 0)
        window = logged_then_killed(lines, kills)
        res["access_minus_hist"][loc] = gap
        res["logged_then_killed"][loc] = len(window)
        if not 0 <= gap <= len(window) or gap > slots_lost:
            fail.append("histogram of %s counts %r requests, the access log %d: %d more than "
                        "the %d lines whose process was SIGKILLed within %.1f s after it "
                        "logged them (and slots_lost is %s); those lines: %s"
                        % (loc, res["hist"][loc], res["access"][loc], gap, len(window),
                           KILL_AFTER_LOG_S, slots_lost, short(window, 800)))
    return fail


def recheck(path, output):
    """Re-run the log scan and the access-log check of an earlier run on its
    kept server directories (the raw data), with this version's whitelist
    and rules; rewrite results.json (the old one kept) and the report."""
    src = os.path.join(path, "results.json")
    with open(src) as f:
        data = json.load(f)
    shutil.copyfile(src, src + ".orig")
    for r in data["runs"]:
        d = r.get("server_dir")
        if not d or not os.path.isdir(d):
            continue
        with open(os.path.join(d, "logs", "error.log"), errors="replace") as f:
            text = f.read()
        crashes, unexpected, allowed, ah45, ah46 = scan_log(
            text, r.get("graceful_times") or [], r.get("kill_log") or [])
        keep = [x for x in r["failures"] if not x.startswith(
            ("unexpected error-log line:", "... and ", "histogram of "))]
        new = ["unexpected error-log line: %s" % l for l in unexpected[:30]]
        if len(unexpected) > 30:
            new.append("... and %d more unexpected error-log lines" % (len(unexpected) - 30))
        r["unexpected_log"], r["whitelisted_log"] = unexpected, allowed
        if r["module"] and r.get("hist"):
            acc = access_lines(os.path.join(d, "logs", "soak_access.log"))
            new.extend(check_access_vs_hist(r, acc, r.get("kill_log") or [],
                                            (r.get("store") or {}).get("slots_lost") or 0))
        r["failures"] = keep + new
        r["rechecked"] = True
    data.setdefault("meta", {})["rechecked"] = now()
    with open(src, "w") as f:
        json.dump(data, f, indent=1, default=str)
    return report_only(path, output)


def final_checks(srv, final, res, resolver, mode, wrk_results, kills=()):
    fail = res["failures"]
    store = final.get("store") or {}
    locs = {l["path"]: l for l in final.get("locations", [])}
    res["store"] = {k: store.get(k) for k in (
        "traces_kept", "traces_evicted", "traces_dropped", "slots_full", "slots_lost",
        "slots_reaped", "writes_dropped", "renewals",
        "frames_full", "nodes_full", "aggregate_full", "stacks_overflow", "slots", "memory")}
    res["sampler"] = {k: (final.get("sampler") or {}).get(k) for k in (
        "samples", "torn", "threads_missing", "cpu_s", "mode")}
    res["hist"] = {p: locs.get(p, {}).get("requests") for p in LOCATIONS}
    res["loc_kept"] = {p: locs.get(p, {}).get("kept") for p in LOCATIONS}
    for p, loc in locs.items():
        hsum = sum(b["count"] for b in loc.get("histogram", []))
        if hsum != loc.get("requests"):
            fail.append("final: %s histogram sums to %d, requests %r" % (p, hsum, loc["requests"]))

    # histogram against the access log (both written in log_transaction)
    acc = access_lines(srv.soak_log)
    res["access"] = {loc: sum(1 for a in acc if location_for(a["uri"]) == loc) for loc in LOCATIONS}
    res["access_5xx"] = sum(1 for a in acc if location_for(a["uri"]) and a["status"] >= 500)
    fail.extend(check_access_vs_hist(res, acc, kills, store.get("slots_lost") or 0))

    # histogram against what wrk completed
    done = sum(r["requests"] for r in wrk_results)
    sent = sum(r["sent"] for r in wrk_results)
    lost = store.get("slots_lost") or 0
    hist = sum(v or 0 for v in res["hist"].values())
    residual = hist - (done - lost)
    res["balance"] = {"wrk_completed": done, "wrk_sent": sent, "lost": lost, "hist": hist,
                      "residual": residual, "max_residual": sent - done,
                      "wrk_socket_errors": sum(r["connect"] + r["read"] + r["write"] + r["timeout"]
                                               for r in wrk_results),
                      "wrk_non2xx": sum(r["status"] for r in wrk_results)}
    if not 0 <= residual <= sent - done:
        fail.append("histogram %d vs wrk: completed %d - lost %d = %d; the difference %d is "
                    "outside [0, sent - completed = %d]" % (hist, done, lost, done - lost,
                                                            residual, sent - done))
    if store.get("slots_full"):
        fail.append("slots_full = %s: requests went unprofiled" % store.get("slots_full"))

    # the store walk
    kept = final.get("requests") or []
    res["traces_listed"] = len(kept)
    tk, te = store.get("traces_kept") or 0, store.get("traces_evicted") or 0
    if tk - te != len(kept):
        fail.append("traces_kept %d - traces_evicted %d = %d, but %d traces are listed"
                    % (tk, te, tk - te, len(kept)))
    sum_kept = sum(v or 0 for v in res["loc_kept"].values())
    if sum_kept < tk:
        fail.append("locations' kept sum to %d < traces_kept %d" % (sum_kept, tk))
    problems = []
    checked = 0
    for listed in kept:
        try:
            r = srv.get(srv.request_path(listed["id"], "json"))
            if r.status_code != 200:
                problems.append("kept request %s: detail HTTP %d" % (listed["id"], r.status_code))
                continue
            detail = json.loads(r.content.decode("utf-8"))
            problems.extend(check_trace(detail, listed, resolver, mode))
            rf = srv.get(srv.request_path(listed["id"], "folded"))
            if rf.status_code != 200:
                problems.append("kept request %s: folded HTTP %d" % (listed["id"], rf.status_code))
            else:
                problems.extend(check_folded_matches(detail, rf.content.decode("utf-8")))
            checked += 1
        except (requests.RequestException, ValueError) as e:
            problems.append("kept request %s: %r" % (listed["id"], e))
    res["traces_checked"] = checked
    res["trace_problems"] = len(problems)
    res["frames_unverifiable"] = resolver.unverifiable
    res["frames_unverifiable_files"] = sorted(resolver.unverifiable_files)
    fail.extend(problems[:40])
    if len(problems) > 40:
        fail.append("... and %d more trace problems" % (len(problems) - 40))

    # metrics agree with the JSON once quiet: compared between two JSON
    # snapshots that agree with each other (a request whose daemon was
    # killed can still be logged, and counted, after the final snapshot)
    try:
        def json_counts():
            data = srv.get_json("/server-profile/?format=json")
            locs_now = {l["path"]: l for l in data.get("locations", [])}
            return ({p: locs_now.get(p, {}).get("requests") for p in LOCATIONS},
                    (data.get("store") or {}).get("slots_lost") or 0)

        for attempt in range(5):
            before = json_counts()
            samples = parse_prometheus(srv.get_ok("/server-profile/metrics").text)
            if json_counts() == before:
                break
            time.sleep(1)
        hist_now, lost_now = before
        res["metrics_compare_attempts"] = attempt + 1
        for loc in LOCATIONS:
            count = sum(v for n, l, v in samples if n == "pyprof_request_duration_seconds_count"
                        and l.get("location") == loc)
            if count != hist_now[loc]:
                fail.append("metrics count %s for %s, JSON %r" % (count, loc, hist_now[loc]))
        lost_metric = [v for n, l, v in samples if n == "pyprof_dropped_total"
                       and l.get("reason") == "lost"]
        if lost_metric != [lost_now]:
            fail.append("metrics dropped{reason=lost} %s, JSON slots_lost %s"
                        % (lost_metric, lost_now))
    except (requests.RequestException, AssertionError, ValueError) as e:
        fail.append("metrics after the load: %s" % e)


# ---------------------------------------------------------------------------
# store exhaustion
# ---------------------------------------------------------------------------

def find_min_memory(rundir, mpm, sampling):
    """The smallest PyProfMemory `apache2 -t` accepts for this MPM and
    sampling config: (bytes, evidence lines, problems).

    The directive itself refuses sizes below a floor (the store for 16
    slots and 1 trace); check_config then refuses sizes below what the
    MPM's slots and PyProfKeep need and names that size.  A bisection over
    KiB finds a size check_config refuses, its message gives the minimum,
    which is then confirmed: accepted at it, refused 1 KiB below."""
    srv = SoakHttpd("embedded", rundir, sampling, name="soak-minmem-%s" % mpm, mpm=mpm,
                    module=rundir.module)
    evidence, problems = [], []

    def probe(kib):
        rc, out = srv.configtest(srv.extra + "PyProfMemory %dK\n" % kib)
        lines = [l for l in out.strip().splitlines() if "PyProfMemory" in l]
        return rc, (lines[-1] if lines else out.strip()[-200:])

    try:
        rc, msg = probe(1)
        evidence.append("PyProfMemory 1K: rc %d: %s" % (rc, msg))
        if rc == 0:
            raise RuntimeError("PyProfMemory 1K accepted")
        if not re.search(r"needs at least \d+K", msg):
            problems.append("the PyProfMemory directive's own error does not say the size "
                            "it needs: `apache2 -t` with `PyProfMemory 1K` prints: %s" % msg)
        lo, hi = 1, 64 * 1024       # lo: refused by the directive; hi: accepted (64M)
        rc, msg = probe(hi)
        if rc != 0:
            raise RuntimeError("PyProfMemory %dK refused: %s" % (hi, msg))
        need = None
        for _ in range(40):
            if hi - lo <= 1:
                break
            mid = (lo + hi) // 2
            rc, msg = probe(mid)
            m = re.search(r"request slots.*needs at least (\d+)K", msg)
            if m:
                need = int(m.group(1))
                evidence.append("PyProfMemory %dK: rc %d: %s" % (mid, rc, msg))
                break
            if rc == 0:
                hi = mid
            else:
                lo = mid
        if need is None:
            need = hi     # check_config never refused: the directive's floor decides
        rc_at, msg_at = probe(need)
        rc_below, msg_below = probe(need - 1)
        evidence.append("PyProfMemory %dK: rc %d" % (need, rc_at))
        evidence.append("PyProfMemory %dK: rc %d: %s" % (need - 1, rc_below, msg_below))
        if rc_at != 0 or rc_below == 0:
            raise RuntimeError("minimum %dK not confirmed: %s" % (need, evidence))
        return need * 1024, evidence, problems
    finally:
        srv.remove()


UNIQUE_URI = re.compile(r"^/app/deep/unique/([A-Za-z0-9]+)(\?|$)")
PATHS_URI = re.compile(r"^/app/deep/paths/([A-Za-z0-9]+)(\?|$)")
UNAME = re.compile(r"^u_([A-Za-z0-9]+)_(\d+)(?:_(x+))?$")
UFILE = re.compile(r"^/soak-unique/([A-Za-z0-9]+)(?:/(y+))?\.py$")


APP = load_source("soak_app_for_checks", SOAK_APP)


def exhaustion_frame_check(app_path, resolver):
    """Frame check for /unique and /paths requests: every frame is one the
    app created for this very request (or a fixed app function or a special
    frame), in the order the request made it."""
    def check(detail, frames):
        uri = detail.get("uri", "")
        p = []
        mu, mp = UNIQUE_URI.match(uri), PATHS_URI.match(uri)
        token = (mu or mp).group(1) if (mu or mp) else None
        last_k = None
        base = None
        for i, f in enumerate(frames):
            fn, path, line = f["function"], f["file"], f["line"]
            if fn in SPECIAL_FRAMES or GIL_PSEUDO.match(fn):
                last_k = None
                continue
            if path == app_path:
                if fn == "view_paths" and base is None:
                    base = i + 1
                if fn == "view_unique":
                    last_k = -1     # the first exec'd frame must be u_..._0
                continue        # resolved by the FrameResolver
            m, mf = UNAME.match(fn), UFILE.match(path)
            if (fn, path) == ("<module>", "<string>") and i > 0 and (
                    frames[i - 1]["function"] == "addpackage" or
                    (frames[i - 1]["function"], frames[i - 1]["file"]) == (fn, path)):
                # site.addpackage exec()s a .pth file's import line, which
                # may exec() again (this machine's certifi .pth does)
                continue
            if not (m or mf) and resolver.problem(f) is None:
                continue        # a real function in a real file (the stdlib: mod_wsgi
                                # sets a sub-interpreter up inside the first request)
            if fn == "<module>" and mf and mu:
                if mf.group(1) != token:
                    p.append("WRONG FRAME: the module code of %r in the trace of token %s"
                             % (path, token))
                last_k = -1     # the exec'd module body runs nothing but defs
                continue
            if not (m and mf):
                p.append("frame %r in %r is neither the app's nor this request's (stack %s)"
                         % (fn, path, short([(x["function"][:40], x["file"][-40:], x["line"])
                                             for x in frames], 1500)))
                continue
            if not mu:
                p.append("frame %s in a request that made no unique functions" % fn)
                continue
            if m.group(1) != token or mf.group(1) != token:
                p.append("WRONG FRAME NAME: %r (file %r) in the trace of token %s"
                         % (fn, path, token))
                continue
            if len(m.group(3) or "") != len(mf.group(2) or ""):
                p.append("frame %r: padding differs from its file %r" % (fn[:60], path[:60]))
            k = int(m.group(2))
            if line not in (2 * k + 1, 2 * k + 2):
                p.append("frame %s at line %d (made at line %d)" % (fn[:60], line, 2 * k + 1))
            if last_k is not None and k != last_k + 1:
                p.append("frame u_..._%d follows %s" % (
                    k, "view_unique" if last_k < 0 else "u_..._%d" % last_k))
            last_k = k
        if mp and base is not None and frames[0]["function"] != "[truncated]" and \
                base < len(frames) and frames[base]["function"] in ("_walk",
                                                                    "[frame table full]"):
            # (a sample in path_order(), before the walk, has nothing to align)
            order = APP.path_order(token, 100)
            j = 0
            for i in range(base, len(frames), 2):
                # frames[i] is _walk, frames[i + 1] the p<k> it called
                fw = frames[i]["function"]
                if fw not in ("_walk", "[frame table full]"):
                    p.append("paths %s: frame %d is %r, expected _walk" % (token, i, fw))
                    break
                if i + 1 >= len(frames):
                    break
                fp = frames[i + 1]["function"]
                if fp == "sleep_for":
                    break
                if fp != "[frame table full]" and fp != "p%d" % order[j]:
                    p.append("paths %s: level %d is %r, the walk has p%d (%s)"
                             % (token, j, fp, order[j], [f["function"] for f in frames]))
                    break
                j += 1
        return p
    return check


class ExhaustChecker(threading.Thread):
    """Walks every kept trace again and again while the flood runs."""

    def __init__(self, srv, resolver, frame_check, max_seconds):
        super().__init__(daemon=True)
        self.srv, self.resolver, self.frame_check = srv, resolver, frame_check
        self.max_seconds = max_seconds
        self.halt = threading.Event()
        self.passes = 0
        self.checked = 0
        self.problems = []
        self.errors = 0
        self.gone = 0
        self.with_unique = 0
        self.ids_seen = set()
        self.unique_ids = set()

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        for _ in range(10000):
            if self.halt.is_set() or time.monotonic() > deadline:
                return
            try:
                data = self.srv.get_json("/server-profile?format=json")
                listed_all = data.get("requests", [])
                # the ones not yet checked first: the ring turns over fast
                listed_all.sort(key=lambda x: x["id"] in self.ids_seen)
                for listed in listed_all:
                    if self.halt.is_set():
                        break
                    r = self.srv.get(self.srv.request_path(listed["id"], "json"))
                    if r.status_code == 404:
                        self.gone += 1
                        continue
                    if r.status_code != 200:
                        self.problems.append("request %s: HTTP %d" % (listed["id"], r.status_code))
                        continue
                    detail = json.loads(r.content.decode("utf-8"))
                    self.problems.extend(check_trace(detail, listed, self.resolver, "embedded",
                                                     self.frame_check))
                    self.checked += 1
                    self.ids_seen.add(listed["id"])
                    if any(UNAME.match(f["function"]) for s in detail["stacks"]
                           for f in s["frames"]):
                        self.with_unique += 1
                        self.unique_ids.add(listed["id"])
                self.passes += 1
            except (requests.RequestException, ValueError, AssertionError):
                self.errors += 1
                time.sleep(0.2)
            except Exception:
                self.problems.append("checker: %s" % traceback.format_exc(limit=4))


def run_exhaustion(rundir, variant, mpm, duration, seed, keep_dirs=False, log=print):
    label = "exhaustion/%s/%s" % (variant, mpm)
    log("== %s: %ds" % (label, duration))
    res = {"variant": variant, "mpm": mpm, "duration_s": duration, "failures": []}
    fail = res["failures"]
    sampling = SAMPLING
    try:
        size, evidence, problems = find_min_memory(rundir, mpm, sampling)
        fail.extend(problems)
    except Exception as e:
        fail.append("finding the minimum PyProfMemory failed: %s" % e)
        return res
    res["memory"] = size
    res["memory_evidence"] = evidence
    srv = SoakHttpd("embedded", rundir, sampling + "PyProfMemory %dK\n" % (size // 1024),
                    name="soak-exhaust-%s-%s" % (variant, mpm), mpm=mpm, module=rundir.module)
    res["server_dir"] = srv.root
    wrk = None
    checker = None
    started = False
    try:
        srv.start()
        started = True
        first = srv.profile()
        res["store_at_start"] = {k: first["store"].get(k) for k in (
            "memory", "arena_size", "frames_capacity", "nodes_capacity", "slots", "keep")}
        resolver = FrameResolver(srv.app, lambda fn, path: UFILE.match(path) is not None)
        # The first requests of the flood, made while the tables still had
        # room, go to the ring of captured traces (max(4, PyProfKeep/4)),
        # which the flood cannot evict: their unique names are checked
        # over and over while the tables fill and the arena runs out.
        page = srv.profile_html()
        m = re.search(r'<input type=hidden name=nonce value="([^"]*)">', page)
        capture = max(4, KEEP // 4)
        body = "action=capture&nonce=%s&path=%s&count=%d" % (
            urllib.parse.quote(html_unescape(m.group(1)) if m else ""),
            urllib.parse.quote("/app/deep", safe="/"), capture)
        r = srv.post("/server-profile", data=body, allow_redirects=False,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        if r.status_code != 303:
            fail.append("arming a capture failed: HTTP %d %s" % (r.status_code, r.text[:300]))
        res["captured_first"] = capture
        checker = ExhaustChecker(srv, resolver, exhaustion_frame_check(srv.app, resolver), duration + 60)
        nonce = "x%x" % random.Random(seed).getrandbits(24)
        conns = 12 if mpm == "prefork" else 10
        wrk = Wrk(rundir.lua, srv.port, variant, nonce, duration, connections=conns).start()
        res["wrk_cmd"] = " ".join(wrk.cmd)
        checker.start()
        try:
            res["wrk"] = wrk.wait()
        except RuntimeError as e:
            fail.append(str(e))
        time.sleep(1.0)
        checker.halt.set()
        checker.join(120)
        final, quiet = quiesce(srv)
        final = final or {}
        if not quiet:
            fail.append("store did not settle after the flood")
        store = final.get("store") or {}
        res["store"] = {k: store.get(k) for k in (
            "arena_used", "arena_size", "frames_capacity", "nodes_capacity", "traces_kept",
            "traces_evicted", "traces_dropped", "frames_full", "nodes_full", "aggregate_full",
            "stacks_overflow", "slots_lost", "slots_full")}
        res["live_passes"] = checker.passes
        res["live_traces_checked"] = checker.checked
        res["live_traces_with_unique_frames"] = checker.with_unique
        res["live_distinct_traces_with_unique_frames"] = len(checker.unique_ids)
        res["live_distinct_traces"] = len(checker.ids_seen)
        fail.extend(checker.problems[:40])
        if len(checker.problems) > 40:
            fail.append("... and %d more problems during the flood" % (len(checker.problems) - 40))

        # drops counted and shown
        if not (store.get("frames_full") or store.get("nodes_full")):
            fail.append("the flood filled nothing: frames_full %r, nodes_full %r"
                        % (store.get("frames_full"), store.get("nodes_full")))
        drops = sum(store.get(k) or 0 for k in ("traces_dropped", "slots_full", "frames_full",
                                                 "nodes_full", "aggregate_full",
                                                 "stacks_overflow"))
        page = srv.profile_html()
        m = re.search(r"<b>(\d+)</b><span>dropped \(store full", page)
        res["html_dropped"] = int(m.group(1)) if m else None
        if res["html_dropped"] != drops:
            fail.append("overview shows %r dropped, the JSON's counters sum to %d"
                        % (res["html_dropped"], drops))
        samples = parse_prometheus(srv.get_ok("/server-profile/metrics").text)
        for reason, key in (("frames_full", "frames_full"), ("nodes_full", "nodes_full")):
            v = [val for n, l, val in samples if n == "pyprof_dropped_total"
                 and l.get("reason") == reason]
            if v != [store.get(key)]:
                fail.append("metrics dropped{reason=%s} %s, JSON %s" % (reason, v, store.get(key)))

        # the final walk (JSON + folded), every frame checked once more
        kept = final.get("requests") or []
        res["traces_listed"] = len(kept)
        problems, with_full, with_unique = [], 0, 0
        fcheck = exhaustion_frame_check(srv.app, resolver)
        for listed in kept:
            detail = srv.get_json(srv.request_path(listed["id"], "json"))
            problems.extend(check_trace(detail, listed, resolver, "embedded", fcheck))
            problems.extend(check_folded_matches(
                detail, srv.get_ok(srv.request_path(listed["id"], "folded")).text))
            names = {f["function"] for s in detail["stacks"] for f in s["frames"]}
            with_full += "[frame table full]" in names
            with_unique += any(UNAME.match(n) for n in names)
        res["final_traces_with_frame_table_full"] = with_full
        res["final_traces_with_unique_frames"] = with_unique
        res["final_captured"] = sum(1 for r in kept if r.get("captured"))
        if not with_unique:
            fail.append("no kept trace carries a function name unique to its request: the "
                        "check for wrong frame names had nothing to check")
        fail.extend(problems[:40])
        if len(problems) > 40:
            fail.append("... and %d more problems in the final walk" % (len(problems) - 40))

        # the oldest were evicted: the kept are the newest completions
        tk, te = store.get("traces_kept") or 0, store.get("traces_evicted") or 0
        if te <= 0:
            fail.append("no trace was evicted (traces_kept %d)" % tk)
        if tk - te != len(kept):  # both rings: the slow one and the captured
            fail.append("traces_kept %d - traces_evicted %d != %d listed" % (tk, te, len(kept)))
        acc = [a for a in access_lines(srv.soak_log)
               if UNIQUE_URI.match(a["uri"]) or PATHS_URI.match(a["uri"])]
        slow = [a for a in acc if a["us"] >= SLOW_MS * 1000]
        order = {a["id"]: i for i, a in enumerate(slow)}
        kept_ids = [r["id"] for r in kept if not r.get("captured")]
        pos = sorted(order.get(i, -1) for i in kept_ids)
        res["flood_requests"] = len(acc)
        res["flood_slow"] = len(slow)
        slack = conns * 2 + (store.get("traces_dropped") or 0)
        oldest_ok = len(slow) - KEEP - slack
        res["kept_positions"] = {"min": pos[0] if pos else None, "max": pos[-1] if pos else None,
                                 "of": len(slow), "allowed_min": oldest_ok}
        if -1 in pos:
            fail.append("kept traces not found among the slow flood requests of the access "
                        "log: %s" % [i for i in kept_ids if i not in order][:5])
        elif pos and pos[0] < oldest_ok:
            fail.append("a kept trace is older than the newest %d slow completions "
                        "(position %d of %d)" % (KEEP + slack, pos[0], len(slow)))
        newest = [a["id"] for a in slow[-(KEEP - slack):]] if KEEP > slack else []
        missing = [i for i in newest if i not in set(kept_ids)]
        if missing:
            fail.append("%d of the newest %d slow completions are not kept: %s"
                        % (len(missing), len(newest), missing[:5]))
    except Exception:
        fail.append("exhaustion run raised: %s" % traceback.format_exc(limit=6))
    finally:
        if wrk:
            wrk.stop()
        if checker:
            checker.halt.set()
        if started:
            srv.stop()
        res["stop_seconds"] = srv.stop_seconds
        fail.extend(srv.problems)
        crashes, unexpected, allowed, ah45, ah46 = scan_log(srv.error_log_text(), [], [])
        res["crash_lines"], res["unexpected_log"] = crashes, unexpected
        res["AH00045"], res["AH00046"] = ah45, ah46
        fail.extend("crash marker in the error log: %s" % l for l in crashes)
        fail.extend("unexpected error-log line: %s" % l for l in unexpected[:20])
        keep_or_remove(srv, res, fail, keep_dirs)
    return logged(res, label, fail, log)


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------

def fmt_int(v):
    return "-" if v is None else str(v)


def write_results(path, args, rundir, runs, exhausts, started, finished, argv):
    L = []
    L.append("# Soak and fault-injection results (issue [6])")
    L.append("")
    L.append("Produced by `tests/soak/soak.py`; this file is rewritten by every run.")
    L.append("")
    L.append("## Run")
    L.append("")
    L.append("- Command: `cd %s && /usr/bin/python3 tests/soak/%s`" % (REPO, " ".join(
        ["soak.py"] + argv)))
    L.append("- When: %s to %s (UTC), %.1f min" % (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
        time.strftime("%H:%M:%S", time.gmtime(finished)), (finished - started) / 60))
    L.append("- Machine: %s, %d CPUs, shared with other jobs (load average %s: %s)"
             % (platform.platform(), os.cpu_count(),
                "at the end" if args is not None else "when this report was rewritten",
                " ".join("%.1f" % x for x in os.getloadavg())))
    L.append("- Source: %s" % git_head())
    L.append("- Module under test: a copy of `%s` (sha256 %s); pyext copied from `pyext/` "
             "(extension sha256 %s)" % (module_path(), rundir.module_sha[:16],
                                        (rundir.pyext_sha or "?")[:16]))
    L.append("- %s; `%s`" % (subprocess.run([APACHE, "-v"], stdout=subprocess.PIPE,
                                            env={"PATH": "/usr/sbin:/usr/bin"}).stdout.decode()
                             .splitlines()[0], subprocess.run(
                                 [WRK, "--version"], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT).stdout.decode().splitlines()[0].strip()))
    L.append("- Run directory (JSON of every number below, kept server directories): `%s`"
             % rundir.path)
    rechecked = [r for r in runs if r.get("rechecked")]
    if rechecked:
        L.append("- The error-log scan and the histogram-vs-access-log check of %d run(s) with "
                 "failures were re-run after the run on their kept server directories with "
                 "`soak.py --recheck %s` (same raw data; the whitelist below and the "
                 "logged-then-killed rule were added after this run; results.json.orig keeps "
                 "the first verdicts)" % (len(rechecked), rundir.path))
    L.append("")
    L.append("Configuration of every soak server (with the module): `%s`, plus "
             "`WSGIDestroyInterpreter Off`, `LogLevel warn pyprof:debug`, and in daemon mode "
             "`WSGIDaemonProcess dm processes=2 threads=4 python-path=<copy of pyext>` with "
             "`WSGIProcessGroup dm` for /app (the app does `import pyprof`). MPM settings: "
             "event/worker `StartServers 4, ServerLimit 16, ThreadsPerChild 8, "
             "MaxRequestWorkers 64`; prefork `StartServers 16, MinSpareServers 8, "
             "ServerLimit 40, MaxRequestWorkers 40`. The run without the module is the same server, load, "
             "graceful restarts and kills with mod_pyprof not loaded (no page fetchers: there "
             "are no pages)." % "; ".join(SAMPLING.strip().splitlines()))
    L.append("")
    if runs:
        L.append("Load: two `wrk -t1 -c6 -d<duration>s --timeout 10s -s soak.lua` at once, one "
                 "per location; `/app` mix: %s; `/app/deep` mix: %s."
                 % (", ".join("`%s`" % p for p in MIX["app"]),
                    ", ".join("`%s`" % p for p in MIX["deep"])))
        L.append("")
        L.append("## Soak: per combination")
        L.append("")
        L.append("| MPM | mode | module | s | wrk completed | sent | socket err | non-2xx | "
                 "gracefuls | kills (sampling / daemon) | crash lines | unexpected [error] | "
                 "whitelisted | AH00045 / AH00046 | old gen. alive | stop s | failures |")
        L.append("|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|---:|---:|---:|")
        for r in runs:
            w = r.get("wrk") or {}
            comp = sum(x["requests"] for x in w.values() if x)
            sent = sum(x["sent"] for x in w.values() if x)
            serr = sum(x["connect"] + x["read"] + x["write"] + x["timeout"] for x in w.values() if x)
            non2 = sum(x["status"] for x in w.values() if x)
            L.append("| %s | %s | %s | %d | %d | %d | %d | %d | %s | %s (%s / %s) | %d | %d | %s | "
                     "%d / %d | %d | %s | %d |" % (
                         r["mpm"], r["mode"], "yes" if r["module"] else "no", r["duration_s"],
                         comp, sent, serr, non2, fmt_int(r.get("gracefuls")),
                         fmt_int(r.get("kills")), fmt_int(r.get("kills_sampling")),
                         fmt_int(r.get("kills_daemon")), len(r.get("crash_lines", [])),
                         len(r.get("unexpected_log", [])),
                         ", ".join("%s %d" % kv for kv in sorted(
                             (r.get("whitelisted_log") or {}).items())) or "0",
                         r.get("AH00045", 0), r.get("AH00046", 0),
                         len(r.get("old_generation_alive") or []),
                         "%.1f" % r["stop_seconds"] if r.get("stop_seconds") is not None else "-",
                         len(r["failures"])))
        L.append("")
        scraped = [r for r in runs if r.get("scrape")]
        if scraped:
            L.append("Scrape-only runs (`--scrape-only`): nobody opened a page during the load; "
                     "a real Prometheus scraped `/server-profile/metrics` every second. Per "
                     "%d-s window of the load: requests the histogram counted and samples "
                     "taken (their minimum over the windows; 0 would mean profiling stopped), "
                     "the most `dropped_total{reason=\"slots_full\"}` reached, and the last "
                     "scraped histogram totals against the access log:" % WINDOW_S)
            L.append("")
            L.append("| MPM | mode | windows | min requests / window | min samples / window | "
                     "scrapes (failed; away from a kill or graceful) | slots_full | reaped | "
                     "Prometheus count | access log |")
            L.append("|---|---|---:|---:|---:|---|---:|---|---|---|")
            for r in scraped:
                sc = r["scrape"]
                L.append("| %s | %s | %d | %.0f | %.0f | %d (%d; %s) | %g | %s | %s | %s |" % (
                    r["mpm"], r["mode"], sc["windows"], sc["min_requests_per_window"] or 0,
                    sc["min_samples_per_window"] or 0, sc["scrapes"], sc["scrapes_failed"],
                    sc.get("scrapes_failed_unexplained", "?"),
                    sc["slots_full_max"],
                    ", ".join("%s %g" % kv for kv in sorted(sc["reaped"].items())) or "-",
                    ", ".join("%s %d" % (k, v) for k, v in sorted(
                        (sc.get("final_count") or {}).items())),
                    ", ".join("%s %d" % (k, v) for k, v in sorted(
                        (sc.get("access") or {}).items()))))
            L.append("")
        L.append("Whitelisted [error]-or-worse lines (anything else fails the run; each is "
                 "allowed only from 1 s before to the given time after one of its causes):")
        L.append("")
        for name, regex, causes, window in LOG_WHITELIST:
            L.append("- `%s` (after %s, %.0f s): `%s`" % (name, " or ".join(causes), window,
                                                        regex.pattern))
        L.append("")
        L.append("Hung children, with vs without the module (AH00045 / AH00046 at stop, and "
                 "children of an older generation still alive 35 s after the last graceful "
                 "restart):")
        L.append("")
        L.append("| MPM | mode | with module | without module |")
        L.append("|---|---|---|---|")
        pairs = {}
        for r in runs:
            pairs.setdefault((r["mpm"], r["mode"]), {})[r["module"]] = r
        for (mpm, mode), d in sorted(pairs.items()):
            def h(x):
                if not x:
                    return "not run"
                return "%d / %d, %d old" % (x.get("AH00045", 0), x.get("AH00046", 0),
                                            len(x.get("old_generation_alive") or []))
            L.append("| %s | %s | %s | %s |" % (mpm, mode, h(d.get(True)), h(d.get(False))))
        L.append("")
        L.append("Store after the load (with the module): histogram vs access log vs wrk, and "
                 "the consistency walk:")
        L.append("")
        L.append("| MPM | mode | hist /app | access /app | hist /app/deep | access /app/deep | "
                 "wrk completed | lost (slots_lost) | hist - (completed - lost) | allowed "
                 "[0, sent - completed] | 5xx | kept listed / checked | trace problems | "
                 "snapshots (monotonic problems) | pages fetched (conn. errors) | traces "
                 "checked live |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---|---|---:|")
        for r in runs:
            if not r["module"]:
                continue
            b = r.get("balance") or {}
            h, a = r.get("hist") or {}, r.get("access") or {}
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | [0, %s] | %s | %s / %s | %s | "
                     "%s (%d) | %s (%s) | %s |" % (
                         r["mpm"], r["mode"], fmt_int(h.get("/app")), fmt_int(a.get("/app")),
                         fmt_int(h.get("/app/deep")), fmt_int(a.get("/app/deep")),
                         fmt_int(b.get("wrk_completed")), fmt_int(b.get("lost")),
                         fmt_int(b.get("residual")), fmt_int(b.get("max_residual")),
                         fmt_int(r.get("access_5xx")), fmt_int(r.get("traces_listed")),
                         fmt_int(r.get("traces_checked")), fmt_int(r.get("trace_problems")),
                         fmt_int(r.get("snapshots")), len(r.get("monotonic_problems") or []),
                         sum((r.get("pages") or {}).values()), fmt_int(r.get("page_errors")),
                         fmt_int(r.get("traces_checked_live"))))
        L.append("")
        L.append("Store counters at the end (with the module):")
        L.append("")
        L.append("| MPM | mode | samples | torn | traces kept / evicted / dropped | frames_full | "
                 "nodes_full | aggregate_full | stacks_overflow | slots_full | pyprof warnings |")
        L.append("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
        for r in runs:
            if not r["module"]:
                continue
            s, sm = r.get("store") or {}, r.get("sampler") or {}
            L.append("| %s | %s | %s | %s | %s / %s / %s | %s | %s | %s | %s | %s | %s |" % (
                r["mpm"], r["mode"], fmt_int(sm.get("samples")), fmt_int(sm.get("torn")),
                fmt_int(s.get("traces_kept")), fmt_int(s.get("traces_evicted")),
                fmt_int(s.get("traces_dropped")), fmt_int(s.get("frames_full")),
                fmt_int(s.get("nodes_full")), fmt_int(s.get("aggregate_full")),
                fmt_int(s.get("stacks_overflow")), fmt_int(s.get("slots_full")),
                fmt_int(r.get("pyprof_warnings"))))
        L.append("")
    if exhausts:
        L.append("## Store exhaustion")
        L.append("")
        L.append("PyProfMemory at the minimum `apache2 -t` accepts for the soak's sampling "
                 "config (PyProfKeep %d), embedded mode, `wrk -t1 -c<N> -d<duration>s` of slow "
                 "(80 ms) requests under `/app/deep` (1 ms): `table` = 50%% `/unique/TOKEN"
                 "?depth=30` (30 exec'd functions with names unique to the request) + 50%% "
                 "`/paths/TOKEN?depth=40` (a walk through p0..p7 chosen by the token); `arena` = "
                 "`/unique/TOKEN?depth=20&pad=200..900` (names and file padded: ~1-2 KB of text "
                 "per frame)." % KEEP)
        L.append("")
        L.append("| variant | MPM | PyProfMemory | frames cap. / nodes cap. / arena | wrk completed "
                 "| frames_full | nodes_full | aggregate_full | kept / evicted / dropped | "
                 "overview 'dropped' | traces checked live (passes) | live with unique frames | "
                 "final walk: listed / with [frame table full] / with unique frames | kept "
                 "positions (min of slow completions) | failures |")
        L.append("|---|---|---|---|---:|---:|---:|---:|---|---:|---|---:|---|---|---:|")
        for r in exhausts:
            s, s0 = r.get("store") or {}, r.get("store_at_start") or {}
            kp = r.get("kept_positions") or {}
            L.append("| %s | %s | %s | %s / %s / %s | %s | %s | %s | %s | %s / %s / %s | %s | %s (%s) "
                     "| %s | %s / %s / %s | %s of %s (>= %s) | %d |" % (
                         r["variant"], r["mpm"],
                         "%dK" % (r["memory"] // 1024) if r.get("memory") else "-",
                         fmt_int(s0.get("frames_capacity")), fmt_int(s0.get("nodes_capacity")),
                         fmt_int(s0.get("arena_size")),
                         fmt_int((r.get("wrk") or {}).get("requests")),
                         fmt_int(s.get("frames_full")), fmt_int(s.get("nodes_full")),
                         fmt_int(s.get("aggregate_full")), fmt_int(s.get("traces_kept")),
                         fmt_int(s.get("traces_evicted")), fmt_int(s.get("traces_dropped")),
                         fmt_int(r.get("html_dropped")), fmt_int(r.get("live_traces_checked")),
                         fmt_int(r.get("live_passes")),
                         fmt_int(r.get("live_traces_with_unique_frames")),
                         fmt_int(r.get("traces_listed")),
                         fmt_int(r.get("final_traces_with_frame_table_full")),
                         fmt_int(r.get("final_traces_with_unique_frames")),
                         fmt_int(kp.get("min")), fmt_int(kp.get("of")),
                         fmt_int(kp.get("allowed_min")), len(r["failures"])))
        L.append("")
        for r in exhausts:
            if r.get("memory_evidence"):
                L.append("Minimum for %s (%s): %s" % (r["variant"], r["mpm"], "; ".join(
                    "`%s`" % e.replace("`", "'") for e in r["memory_evidence"])))
                L.append("")
    L.append("## Commands")
    L.append("")
    L.append("    cd %s" % REPO)
    L.append("    make                                        # module and pyext")
    L.append("    /usr/bin/python3 tests/soak/soak.py --quick # ~6 min: event/embedded and "
             "worker/daemon, 60 s, 5 gracefuls, 10 kills, short exhaustion")
    L.append("    /usr/bin/python3 tests/soak/soak.py         # the full run above (~25 min "
             "on 2 shared CPUs)")
    L.append("    /usr/bin/python3 -m pytest -q tests/integration/test_soak_short.py   # CI: "
             "event/embedded, 40 s, 3 gracefuls, 6 kills")
    L.append("")
    L.append("## Failures")
    L.append("")
    any_fail = False
    for r in runs + exhausts:
        if r["failures"]:
            any_fail = True
            name = ("%s/%s/%s" % (r["mpm"], r["mode"], "module" if r["module"] else "no-module")
                    if "mode" in r else "exhaustion/%s/%s" % (r["variant"], r["mpm"]))
            L.append("### %s (server directory kept: `%s`)" % (name, r.get("server_dir")))
            L.append("")
            L.append("```")
            for f in r["failures"][:60]:
                L.append(short(f, 1500))
            if len(r["failures"]) > 60:
                L.append("... %d more" % (len(r["failures"]) - 60))
            L.append("```")
            L.append("")
    if not any_fail:
        L.append("None: every check above passed.")
        L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


# ---------------------------------------------------------------------------

class _SavedRun(object):
    """What write_results needs of a RunDir, from an earlier run's directory."""

    def __init__(self, path):
        self.path = path
        self.module_sha = sha256_file(os.path.join(path, "mod_pyprof.so"))
        ext = [f for f in os.listdir(os.path.join(path, "pyext", "pyprof")) if f.endswith(".so")]
        self.pyext_sha = sha256_file(os.path.join(path, "pyext", "pyprof", ext[0])) if ext else None


def report_only(path, output):
    with open(os.path.join(path, "results.json")) as f:
        data = json.load(f)
    meta = data.get("meta") or {}
    started = meta.get("started")
    if started is None:   # a run from before "meta": the directory's name has its start
        m = re.search(r"pyprof-soak-(\d{8}-\d{6})-", path)
        started = datetime.datetime.strptime(m.group(1), "%Y%m%d-%H%M%S").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    finished = meta.get("finished") or os.path.getmtime(os.path.join(path, "results.json"))
    write_results(output, None, _SavedRun(path), data["runs"], data["exhaustion"], started,
                  finished, meta.get("argv", []))
    print("rewrote %s from %s" % (output, path))
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="event/embedded and worker/daemon, 60 s, 5 gracefuls, 10 kills")
    ap.add_argument("--combos", help="comma-separated MPM:MODE (default: all six)")
    ap.add_argument("--duration", type=int, help="seconds of load per combination")
    ap.add_argument("--gracefuls", type=int)
    ap.add_argument("--kills", type=int)
    ap.add_argument("--no-compare", action="store_true", help="skip the runs without the module")
    ap.add_argument("--no-exhaustion", action="store_true")
    ap.add_argument("--exhaustion-only", action="store_true")
    ap.add_argument("--exhaust-duration", type=int)
    ap.add_argument("--exhaust", default="table:event,arena:prefork",
                    help="comma-separated VARIANT:MPM (table, arena)")
    ap.add_argument("--scrape-only", action="store_true",
                    help="nobody opens a page during the load: a real Prometheus scrapes "
                         "/server-profile/metrics every second, and its data must show "
                         "profiling never stopped and end equal to the access log")
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--keep", action="store_true", help="keep every server directory")
    ap.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--report", metavar="RUNDIR",
                    help="only rewrite --output from RUNDIR/results.json of an earlier run")
    ap.add_argument("--recheck", metavar="RUNDIR",
                    help="re-run the log and access-log checks of an earlier run on its kept "
                         "server directories, then rewrite --output")
    args = ap.parse_args(argv)
    if args.report:
        return report_only(args.report, args.output)
    if args.recheck:
        return recheck(args.recheck, args.output)

    if os.geteuid() != 0:
        raise SystemExit("run as root (httpd children run as www-data)")
    if args.quick:
        combos = args.combos or "event:embedded,worker:daemon"
        duration, gracefuls, kills = args.duration or 60, 5, 10
        exhaust_duration = args.exhaust_duration or 30
    else:
        combos = args.combos or ("event:embedded,event:daemon,worker:embedded,worker:daemon,"
                                 "prefork:embedded,prefork:daemon")
        duration, gracefuls, kills = args.duration or 70, 50, 100
        exhaust_duration = args.exhaust_duration or 45
    if args.gracefuls is not None:
        gracefuls = args.gracefuls
    if args.kills is not None:
        kills = args.kills
    combos = [tuple(c.split(":")) for c in combos.split(",") if c]
    for mpm, mode in combos:
        if mpm not in SOAK_MPM or mode not in ("embedded", "daemon"):
            raise SystemExit("bad combination %s:%s" % (mpm, mode))
    exhausts_wanted = [tuple(e.split(":")) for e in args.exhaust.split(",") if e]

    started = now()
    rundir = RunDir()
    print("run directory %s (module sha256 %s)" % (rundir.path, rundir.module_sha[:16]))
    runs, exhausts = [], []
    stop_flag = []

    def on_term(signum, frame):
        stop_flag.append(signum)
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)
    try:
        if not args.exhaustion_only:
            for i, (mpm, mode) in enumerate(combos):
                runs.append(run_combination(rundir, mpm, mode, True, duration, gracefuls, kills,
                                            args.seed + 100 * i, args.keep,
                                            scrape_only=args.scrape_only))
                if not args.no_compare:
                    runs.append(run_combination(rundir, mpm, mode, False, duration, gracefuls,
                                                kills, args.seed + 100 * i, args.keep))
                write_results(args.output, args, rundir, runs, exhausts, started, now(), argv)
        if not args.no_exhaustion:
            for j, (variant, mpm) in enumerate(exhausts_wanted):
                exhausts.append(run_exhaustion(rundir, variant, mpm, exhaust_duration,
                                               args.seed + 7 * j, args.keep))
                write_results(args.output, args, rundir, runs, exhausts, started, now(), argv)
    except KeyboardInterrupt:
        print("interrupted; writing what ran so far")
    finished = now()
    write_results(args.output, args, rundir, runs, exhausts, started, finished, argv)
    with open(os.path.join(rundir.path, "results.json"), "w") as f:
        json.dump({"runs": runs, "exhaustion": exhausts,
                   "meta": {"started": started, "finished": finished, "argv": argv}},
                  f, indent=1, default=str)
    nfail = sum(len(r["failures"]) for r in runs + exhausts)
    print("%d failure(s); results in %s and %s" % (nfail, args.output,
                                                  os.path.join(rundir.path, "results.json")))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
