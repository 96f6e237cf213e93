#!/usr/bin/python3
"""Try to reproduce the worker-child segfault at graceful restart
(tests/soak/RESULTS.md, "Module failures found", item 2).

One standalone httpd (tests/pyhttpd/httpd.py's Httpd) with the soak
app, small children that churn, PyProfSample at 1 ms, wrk load (the soak
mix), page/export fetchers (speedscope, pprof, request pages) and a driver
that sends SIGUSR1 (graceful) to the parent every --graceful-min..max
seconds and SIGKILLs a random child every --kill-every seconds.  Children
dump core into <server>/cores (CoreDumpDirectory + RLIMIT_CORE); every
core is run through gdb at the end.  Bounded in time (--seconds).

    /usr/bin/python3 tests/soak/graceful_repro.py --mpm worker --seconds 300
    PYPROF_MODULE=/tmp/x/mod_pyprof.so /usr/bin/python3 tests/soak/graceful_repro.py

Exit status 1 when a child died of a signal other than SIGKILL (a crash).
"""

import argparse
import os
import random
import re
import signal
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, HERE)

import requests  # noqa: E402

from pyhttpd.httpd import Httpd, children_of  # noqa: E402

if os.environ.get("PYPROF_HTTPD_ENV"):
    # the sanitizer build (tests/asan-integration.sh): its runtime goes
    # into every apache2 this script starts
    import pyhttpd.pytest_sanitizer_env  # noqa: E402,F401
from soak import Wrk, lua_script  # noqa: E402

SOAK_APP = os.path.join(HERE, "soak_app.py")


def mpm_settings(mpm, threads, max_conn):
    if mpm == "prefork":
        return ("StartServers 4\nMinSpareServers 2\nMaxSpareServers 6\nServerLimit 24\n"
                "MaxRequestWorkers 24\nMaxConnectionsPerChild %d\n" % max_conn)
    return ("StartServers 3\nServerLimit 16\nThreadLimit %d\nThreadsPerChild %d\n"
            "MaxRequestWorkers %d\nMinSpareThreads %d\nMaxSpareThreads %d\n"
            "MaxConnectionsPerChild %d\n"
            % (threads, threads, 16 * threads, threads, 4 * threads, max_conn))


class Fetcher(threading.Thread):
    """Profile pages and exports, on fresh connections, until halted."""

    def __init__(self, srv, seed, halt, deadline):
        super().__init__(daemon=True)
        self.srv, self.rng, self.halt, self.deadline = srv, random.Random(seed), halt, deadline
        self.n = self.errors = 0

    def get(self, path, timeout=20):
        self.n += 1
        return requests.get(self.srv.url(path), timeout=timeout)

    def run(self):
        ids = []
        while not self.halt.is_set() and time.monotonic() < self.deadline:
            try:
                if not ids or self.rng.random() < 0.15:
                    doc = self.get("/server-profile?format=json").json()
                    ids = [r["id"] for r in doc.get("requests", [])] + \
                          [r["id"] for r in doc.get("inflight", [])]
                if ids and self.rng.random() < 0.7:
                    fmt = self.rng.choice(["speedscope", "speedscope", "pprof", "json",
                                           "folded", "html"])
                    path = self.srv.request_path(self.rng.choice(ids),
                                                 None if fmt == "html" else fmt)
                else:
                    loc = self.rng.choice(["/app", "/app/deep"])
                    fmt = self.rng.choice(["speedscope", "pprof", "json", "folded"])
                    path = "/server-profile/location?path=%s&format=%s" % (
                        urllib.parse.quote(loc, safe=""), fmt)
                self.get(path)
            except (requests.RequestException, ValueError):
                self.errors += 1
                time.sleep(0.05)


def crash_lines(text):
    return [l for l in text.splitlines()
            if "exit signal" in l and "exit signal Killed" not in l] + \
           [l for l in text.splitlines() if "Fatal Python error" in l]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mpm", default="worker", choices=["worker", "event", "prefork"])
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--graceful-min", type=float, default=0.3)
    ap.add_argument("--graceful-max", type=float, default=1.0)
    ap.add_argument("--kill-every", type=float, default=2.0, help="0: no SIGKILLs")
    ap.add_argument("--threads", type=int, default=4, help="ThreadsPerChild")
    ap.add_argument("--max-conn", type=int, default=0, help="MaxConnectionsPerChild")
    ap.add_argument("--sampler", default="", help="PyProfSampler value (gil / nogil)")
    ap.add_argument("--fetchers", type=int, default=3)
    ap.add_argument("--connections", type=int, default=6, help="per wrk")
    ap.add_argument("--destroy-interpreter", action="store_true",
                    help="mod_wsgi's default WSGIDestroyInterpreter (On)")
    ap.add_argument("--stop-on-crash", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    sampling = ("PyProfSample /app 1ms\nPyProfSample /app/deep 1ms\n"
                "PyProfSlowThreshold 20ms\nPyProfKeep 200\n")
    if args.sampler:
        sampling += "PyProfSampler %s\n" % args.sampler
    srv = Httpd(name="graceful_repro_%s" % args.mpm, mpm=args.mpm,
                destroy_interpreter=args.destroy_interpreter, app_source=SOAK_APP,
                mpm_settings=mpm_settings(args.mpm, args.threads, args.max_conn), cores=True,
                extra="WSGIPythonPath %s\n%s" % (os.path.join(REPO, "pyext"), sampling))
    print("server directory:", srv.root, "module:", srv.module, flush=True)
    srv.start()
    rng = random.Random(args.seed)
    halt = threading.Event()
    deadline = time.monotonic() + args.seconds
    lua = os.path.join(srv.root, "soak.lua")
    with open(lua, "w") as f:
        f.write(lua_script())
    wrks = [Wrk(lua, srv.port, mode, "r", args.seconds, connections=args.connections).start()
            for mode in ("app", "deep")]
    fetchers = [Fetcher(srv, args.seed * 100 + i, halt, deadline) for i in range(args.fetchers)]
    for f in fetchers:
        f.start()
    gracefuls = kills = 0
    next_kill = time.monotonic() + (args.kill_every or 1e9)
    crashes = []
    try:
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(args.graceful_min, args.graceful_max))
            if not srv.running:
                print("parent gone", flush=True)
                break
            os.kill(srv.pid, signal.SIGUSR1)
            gracefuls += 1
            if args.kill_every and time.monotonic() >= next_kill:
                next_kill = time.monotonic() + args.kill_every
                kids = [k for k in children_of(srv.pid)]
                if kids:
                    try:
                        os.kill(rng.choice(kids), signal.SIGKILL)
                        kills += 1
                    except ProcessLookupError:
                        pass
            if gracefuls % 50 == 0:
                crashes = crash_lines(srv.error_log_text())
                print("%s gracefuls %d kills %d crashes %d cores %d fetched %d"
                      % (time.strftime("%H:%M:%S"), gracefuls, kills, len(crashes),
                         len(os.listdir(srv.cores)), sum(f.n for f in fetchers)), flush=True)
                if crashes and args.stop_on_crash:
                    break
    finally:
        halt.set()
        for w in wrks:
            w.stop()
        for f in fetchers:
            f.join(25)
        srv.stop()
    text = srv.error_log_text()
    crashes = crash_lines(text)
    print("done: %d gracefuls, %d kills, %d fetches, %d crash lines, cores: %s"
          % (gracefuls, kills, sum(f.n for f in fetchers), len(crashes),
             os.listdir(srv.cores)), flush=True)
    for line in crashes:
        print("  " + line)
        m = re.search(r"child pid (\d+)", line)
        if m:
            for l2 in text.splitlines():
                if "pid %s:" % m.group(1) in l2 or "pid %s]" % m.group(1) in l2:
                    print("    " + l2)
    for path, bt in srv.core_backtraces(limit=5, timeout=300):
        print("==== %s\n%s" % (path, bt))
    print("server directory kept:", srv.root)
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
