#!/usr/bin/python3
"""Long run for mod_pyprof (hardening issue): 2,000,000 requests at 10 ms
sampling, with the memory of every httpd process and the store's use
recorded over time; they must be flat after warm-up.

It starts a standalone httpd (the httpd harness' Httpd,
tests/pyhttpd/httpd.py: event MPM, 2 children x 8 threads,
MaxConnectionsPerChild 0, mod_wsgi embedded mode; --daemon uses a
WSGIDaemonProcess with 2 processes x 8 threads that imports pyprof) on a
free port on 127.0.0.1 with

    PyProfSample /app 10ms
    PyProfSlowThreshold 20ms

and a small WSGI app (written into the server directory, see APP below)
with a few distinct call paths.  wrk (-t2 -c8, --timeout 10s, a Lua script
walking a 200-entry mix round robin: 0.5% /app/slow (3 ms CPU + 25 ms
sleep), 0.5% /app/report (2 ms CPU + 30 ms sleep, another call path), 20%
/app/list, 20% /app/calc, 59% /app/fast) runs in chunks of at most --chunk-seconds
until --requests responses were counted (wrk's summary; the last chunk is
sized from the previous chunk's rate, so the count overshoots by at most a
few seconds of load).

Every --interval seconds a sampler thread records, for every httpd process
(parent, children, daemon processes; a new child is picked up when it
appears): VmRSS (/proc/PID/status), Pss / Shared_* / Private_* (from
/proc/PID/smaps_rollup), and the resident size of the store's shared
mapping (the mapping in /proc/PID/smaps whose size is the store's
`memory`); and the store block of /server-profile?format=json (arena_used,
traces kept / evicted / listed, samples, every *_full counter).  The
requests axis is the count of "GET /app" lines in the access log (read
incrementally).  One row per process per sample goes to the CSV.

--control N runs the same server, app and load without mod_pyprof for N
requests afterwards (rows with run=control in the same CSV), for comparison.

At the end it checks the error log (no "Segmentation fault", "exit signal",
"Fatal Python error", no [error]-or-worse line: pyhttpd's scan_error_log),
prints a markdown table (RSS / Pss at warm-up and at the end per process,
least-squares slope per 100k requests after warm-up, store use), writes it
as JSON next to the CSV, and plots the CSV (matplotlib, if installed; it is
not a test dependency) to --png.

The command used for tests/soak/RESULTS.md ("Long run"):

    cd /work/main
    cp mod_pyprof/.libs/mod_pyprof.so /tmp/longrun-mod_pyprof.so
    /usr/bin/python3 tests/soak/longrun.py --module /tmp/longrun-mod_pyprof.so \\
        --requests 2000000 --control 500000 \\
        --csv tests/soak/longrun.csv --png tests/soak/longrun-rss.png

and the time-long run next to it (the store keeps one aggregate table per
minute for 64 minutes, PP_EPOCHS, so its resident pages can only settle
after an hour of wall time, whatever the request count): the load throttled
to about 150 requests/s (wrk's delay(); ~125/s measured) for at least 75
minutes and 500,000 requests:

    /usr/bin/python3 tests/soak/longrun.py --module /tmp/longrun-mod_pyprof.so \\
        --requests 500000 --min-seconds 4500 --rate 150 --interval 30 \\
        --chunk-seconds 300 --max-seconds 5400 --xaxis minutes \\
        --csv tests/soak/longrun-time.csv --png tests/soak/longrun-time-rss.png

Re-plot from a CSV without running anything:

    /usr/bin/python3 tests/soak/longrun.py --plot-only --csv tests/soak/longrun.csv \\
        --png tests/soak/longrun-rss.png

Bounded: the whole run (both servers) stops at --max-seconds (default 3600)
even if the count was not reached (exit status 1 then); every subprocess
and HTTP call has a timeout.  Exit status 1 also on any error-log problem
or failed request.  Run as root (children run as www-data); /usr/bin/python3
with requests and pytest (the harness imports them); wrk and apache2 with
mod_wsgi installed.  Everything listens on 127.0.0.1 only.
"""

import argparse
import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests"))

WRK = "/usr/bin/wrk"
DAEMON_GROUP = "lr"

SAMPLING = """\
PyProfSample /app 10ms
PyProfSlowThreshold 20ms
"""

APP = '''\
"""WSGI app for tests/soak/longrun.py: a few distinct call paths.

    /app/fast     returns at once
    /app/list     builds and formats 20 rows
    /app/calc     a small recursive computation
    /app/slow     3 ms of CPU, then a 25 ms sleep      (kept: > 20 ms)
    /app/report   2 ms of CPU, then a 30 ms sleep      (kept, other path)
"""

import os
import sys

try:
    import pyprof  # daemon mode: starts the daemon process' sampler
except ImportError:
    pyprof = None

# burn_cpu and sleep_for: pyprof_testlib.py, which the harness copies next
# to this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyprof_testlib import burn_cpu, sleep_for  # noqa: E402


def format_row(i):
    return "%d,%s,%.2f" % (i, "item%d" % i, i * 1.5)


def build_rows(n):
    return [format_row(i) for i in range(n)]


def view_list():
    return "\\n".join(build_rows(20)) + "\\n"


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def compute():
    return fib(10)


def view_calc():
    return "%d\\n" % compute()


def slow_work():
    burn_cpu(3)
    sleep_for(25)


def view_slow():
    slow_work()
    return "slow\\n"


def query_db():
    sleep_for(30)


def gather():
    burn_cpu(2)
    query_db()


def view_report():
    gather()
    return "report\\n"


def view_fast():
    return "fast\\n"


VIEWS = {"fast": view_fast, "list": view_list, "calc": view_calc,
         "slow": view_slow, "report": view_report}


def dispatch(path):
    name = path.strip("/").split("/", 1)[0] or "fast"
    view = VIEWS.get(name)
    if view is None:
        return "404 Not Found", "no such view\\n"
    return "200 OK", view()


def application(environ, start_response):
    status, body = dispatch(environ.get("PATH_INFO", ""))
    data = body.encode()
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(data)))])
    return [data]
'''

# 200 entries: 2 slow (1 each path), 40 list, 40 calc, 118 fast, spread out.
MIX = []
for _i in range(200):
    if _i == 50:
        MIX.append("/app/slow")
    elif _i == 150:
        MIX.append("/app/report")
    elif _i % 5 == 1:
        MIX.append("/app/list")
    elif _i % 5 == 3:
        MIX.append("/app/calc")
    else:
        MIX.append("/app/fast")

LUA = """\
-- generated by tests/soak/longrun.py
local list = {%s}
local n = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("off", #threads * 97)
end

function request()
  n = n + 1
  return wrk.format("GET", list[(n + off) %% #list + 1])
end

%s
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('LONGRUN {"requests": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "duration_us": %%d}\\n',
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout, summary.duration))
end
"""


def lua_script(rate, connections):
    """The wrk script; with rate > 0 each connection waits between requests
    (wrk's delay()) so that all of them together send about `rate` per s."""
    delay = ""
    if rate > 0:
        delay = "function delay()\n  return %d\nend\n" % max(1, round(connections * 1000.0 / rate))
    return LUA % (",".join('"%s"' % p for p in MIX), delay)

LONGRUN_MPM_DAEMON = "WSGIDaemonProcess %s processes=2 threads=8 python-path=%s " \
    "display-name=%%{GROUP}\n<Location /app>\n    WSGIProcessGroup %s\n</Location>\n"

CSV_FIELDS = ["run", "t_s", "requests", "pid", "role", "vmrss_kb", "pss_kb", "shared_kb",
              "private_kb", "shm_rss_kb", "shm_pss_kb", "store_memory", "arena_used",
              "traces_kept", "traces_evicted", "traces_listed", "samples", "frames_full",
              "nodes_full", "aggregate_full", "slots_full", "slots_lost", "loc_requests"]

STORE_FIELDS = ["arena_used", "traces_kept", "traces_evicted", "frames_full", "nodes_full",
                "aggregate_full", "slots_full", "slots_lost"]


def log(msg):
    sys.stdout.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stdout.flush()


# ---------------------------------------------------------------------------
# /proc
# ---------------------------------------------------------------------------

def read_kv(path):
    """'Key:   123 kB' lines -> {Key: 123}; {} if the process is gone."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                    out[parts[0][:-1]] = int(parts[1])
    except (OSError, ProcessLookupError):
        return {}
    return out


def shm_mapping(pid, size_bytes):
    """(Rss kB, Pss kB) of the mapping of exactly size_bytes (the store)."""
    if not size_bytes:
        return None, None
    want = size_bytes // 1024
    try:
        with open("/proc/%d/smaps" % pid) as f:
            text = f.read()
    except (OSError, ProcessLookupError):
        return None, None
    best = None
    for block in re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", text):
        m = re.search(r"^Size:\s+(\d+) kB", block, re.M)
        if not m or int(m.group(1)) != want:
            continue
        rss = re.search(r"^Rss:\s+(\d+) kB", block, re.M)
        pss = re.search(r"^Pss:\s+(\d+) kB", block, re.M)
        cand = (int(rss.group(1)) if rss else None, int(pss.group(1)) if pss else None)
        if best is None or (cand[0] or 0) > (best[0] or 0):
            best = cand
    return best or (None, None)


def process_tree(parent):
    from pyhttpd.httpd import children_of as _children_of, cmdline
    kids = sorted(_children_of(parent))
    out = [(parent, "parent")]
    for k in kids:
        out.append((k, "daemon" if (cmdline(k) or "").startswith("(wsgi:") else "child"))
    return out


# ---------------------------------------------------------------------------
# sampling thread
# ---------------------------------------------------------------------------

class AccessCounter:
    """Counts '"GET /app' lines of the access log, reading only new bytes."""

    def __init__(self, path):
        self.path, self.pos, self.count, self.tail = path, 0, 0, b""

    def update(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return self.count
        self.pos += len(data)
        data = self.tail + data
        cut = data.rfind(b"\n") + 1
        self.count += data[:cut].count(b'"GET /app')
        self.tail = data[cut:]
        return self.count


class Sampler(threading.Thread):
    def __init__(self, run, srv, writer, interval, deadline, flush=None):
        super().__init__(daemon=True)
        self.run_name, self.srv, self.writer, self.flush = run, srv, writer, flush
        self.interval, self.deadline = interval, deadline
        self.halt = threading.Event()
        self.t0 = time.monotonic()
        self.access = AccessCounter(srv.access_log)
        self.rows = []
        self.errors = []
        self.last_store = None
        self.lock = threading.Lock()

    def overview(self):
        if not self.srv.with_module:
            return None
        try:
            return self.srv.get_json("/server-profile?format=json")
        except Exception as e:  # noqa: BLE001 -- recorded, the run goes on
            self.errors.append("overview: %r" % (e,))
            return None

    def sample(self):
        ov = self.overview()
        requests_seen = self.access.update()
        store = (ov or {}).get("store") or {}
        sampler = (ov or {}).get("sampler") or {}
        loc = [l for l in (ov or {}).get("locations", []) if l.get("path") == "/app"]
        common = {"run": self.run_name, "t_s": round(time.monotonic() - self.t0, 1),
                  "requests": requests_seen,
                  "store_memory": store.get("memory", ""),
                  "traces_listed": len(ov["requests"]) if ov else "",
                  "samples": sampler.get("samples", ""),
                  "loc_requests": loc[0]["requests"] if loc else ""}
        for k in STORE_FIELDS:
            common[k] = store.get(k, "")
        if ov:
            self.last_store = dict(store, samples=sampler.get("samples"),
                                   listed=len(ov["requests"]),
                                   loc_requests=common["loc_requests"])
        rows = []
        for pid, role in process_tree(self.srv.pid):
            status = read_kv("/proc/%d/status" % pid)
            if not status:
                continue
            roll = read_kv("/proc/%d/smaps_rollup" % pid)
            shm_rss, shm_pss = shm_mapping(pid, store.get("memory"))
            row = dict(common, pid=pid, role=role, vmrss_kb=status.get("VmRSS", ""),
                       pss_kb=roll.get("Pss", ""),
                       shared_kb=roll.get("Shared_Clean", 0) + roll.get("Shared_Dirty", 0)
                       if roll else "",
                       private_kb=roll.get("Private_Clean", 0) + roll.get("Private_Dirty", 0)
                       if roll else "",
                       shm_rss_kb="" if shm_rss is None else shm_rss,
                       shm_pss_kb="" if shm_pss is None else shm_pss)
            rows.append(row)
        with self.lock:
            for row in rows:
                self.writer.writerow(row)
            self.rows.extend(rows)
            if self.flush:
                self.flush()
        return rows

    def run(self):
        while not self.halt.wait(self.interval):
            if time.monotonic() > self.deadline:
                return
            try:
                self.sample()
            except Exception as e:  # noqa: BLE001
                self.errors.append("sample: %r" % (e,))


# ---------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------

def run_wrk(lua, port, seconds, threads, connections):
    cmd = [WRK, "-t%d" % threads, "-c%d" % connections, "-d%ds" % seconds, "--timeout", "10s",
           "-s", lua, "http://127.0.0.1:%d" % port]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=seconds + 60)
    out = proc.stdout.decode(errors="replace")
    m = re.search(r"^LONGRUN (\{.*\})$", out, re.M)
    if proc.returncode != 0 or not m:
        raise RuntimeError("wrk failed (rc %s):\n%s" % (proc.returncode, out[-2000:]))
    res = json.loads(m.group(1))
    m2 = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m2.group(1)) if m2 else 0
    return res


def drive(srv, lua, target, args, deadline, label):
    done, chunks, totals, rate = 0, 0, {}, None
    errors_by_chunk = {}
    t0 = time.monotonic()
    min_end = t0 + args.min_seconds
    while done < target or time.monotonic() < min_end:
        left = deadline - time.monotonic() - 30
        if left < 3:
            log("%s: time limit reached at %d requests" % (label, done))
            break
        seconds = args.chunk_seconds
        if rate and done < target:
            seconds = min(seconds, max(2, int(math.ceil((target - done) / rate))))
        if time.monotonic() < min_end:
            seconds = max(seconds, min(args.chunk_seconds,
                                       int(math.ceil(min_end - time.monotonic()))))
        seconds = int(max(2, min(seconds, left)))
        try:
            res = run_wrk(lua, srv.port, seconds, args.wrk_threads, args.connections)
        except (RuntimeError, subprocess.SubprocessError) as e:
            totals["failure"] = str(e)[-500:]
            log("%s: %s" % (label, totals["failure"]))
            break
        chunks += 1
        done += res["requests"]
        rate = res["requests"] / (res["duration_us"] / 1e6) if res["duration_us"] else None
        for k, v in res.items():
            totals[k] = totals.get(k, 0) + v
        errs = {k: res[k] for k in ("connect", "read", "write", "timeout", "non2xx") if res[k]}
        if errs:
            errors_by_chunk[chunks] = errs
        log("%s: chunk %d: %d requests in %ds (%.0f/s), total %d (%.0f%%), errors %s"
            % (label, chunks, res["requests"], seconds, rate or 0, done, 100.0 * done / target,
               errs))
        if not srv.running:
            totals["failure"] = "httpd (pid %s) is gone after chunk %d" % (srv.pid, chunks)
            log("%s: %s" % (label, totals["failure"]))
            break
    totals.update(errors_by_chunk=errors_by_chunk, chunks=chunks,
                  wall_s=round(time.monotonic() - t0, 1),
                  requests=done,
                  reached=done >= target and time.monotonic() >= min_end
                  and "failure" not in totals)
    return totals


# ---------------------------------------------------------------------------
# one run
# ---------------------------------------------------------------------------

def make_server(args, with_module, label):
    from pyhttpd.httpd import Httpd
    extra = SAMPLING if with_module else ""
    srv = Httpd(name="longrun_" + label, mpm="event", with_module=with_module,
                module=args.module)
    with open(srv.app, "w") as f:
        f.write(APP)
    os.chmod(srv.app, 0o644)
    if args.daemon:
        pyext = os.path.join(srv.root, "pyext")
        shutil.copytree(os.path.join(REPO, "pyext", "pyprof"), os.path.join(pyext, "pyprof"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        for root, dirs, files in os.walk(pyext):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o755 if name.endswith(".so") else 0o644)
        extra = LONGRUN_MPM_DAEMON % (DAEMON_GROUP, pyext, DAEMON_GROUP) + extra
    srv.extra = extra
    return srv


def one_run(args, with_module, target, writer, deadline, flush=None):
    label = "module" if with_module else "control"
    srv = make_server(args, with_module, label)
    lua = os.path.join(srv.root, "longrun.lua")
    with open(lua, "w") as f:
        f.write(lua_script(args.rate, args.connections))
    result = {"run": label, "target": target, "server_dir": srv.root}
    srv.start()
    log("%s: httpd pid %d on port %d, directory %s" % (label, srv.pid, srv.port, srv.root))
    sampler = Sampler(label, srv, writer, args.interval, deadline, flush)
    try:
        sampler.sample()                       # before any load
        sampler.start()
        result["wrk"] = drive(srv, lua, target, args, deadline, label)
        sampler.halt.set()
        sampler.join(args.interval + 30)
        time.sleep(2)                          # quiescent: last log_transaction done
        sampler.sample()                       # after the load
        result["store"] = sampler.last_store
        result["sampler_errors"] = sampler.errors[:20]
    finally:
        sampler.halt.set()
        srv.stop()
    text = srv.error_log_text()
    problems = srv.log_problems()
    result["log_problems"] = problems[:50]
    result["log_problem_count"] = len(problems)
    result["log_lines"] = len(text.splitlines())
    result["log_levels"] = {}
    for m in re.finditer(r"^\[[^]]*\] \[(?:[\w.-]+:)?(\w+)\]", text, re.M):
        result["log_levels"][m.group(1)] = result["log_levels"].get(m.group(1), 0) + 1
    counter = AccessCounter(srv.access_log)
    result["access_app_lines"] = counter.update()
    try:
        result["access_log_bytes"] = os.path.getsize(srv.access_log)
    except OSError:
        pass
    result["stop_seconds"] = srv.stop_seconds
    if problems or sampler.errors:
        log("%s: keeping %s (problems)" % (label, srv.root))
    elif not args.keep:
        srv.remove()
    return result


# ---------------------------------------------------------------------------
# analysis and plot
# ---------------------------------------------------------------------------

def load_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def series(rows):
    """{(run, pid, role): [row, ...]} in time order."""
    out = {}
    for r in rows:
        out.setdefault((r["run"], int(r["pid"]), r["role"]), []).append(r)
    for v in out.values():
        v.sort(key=lambda r: float(r["t_s"]))
    return out


def slope_per_100k(points):
    """Least-squares slope of (requests, value) in value per 100,000 requests."""
    pts = [(x, y) for x, y in points if x is not None and y is not None]
    if len(pts) < 3:
        return None
    n = len(pts)
    mx = sum(p[0] for p in pts) / n
    my = sum(p[1] for p in pts) / n
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx * 1e5


def summarize(rows, warmup, warmup_minutes=None):
    """Per process: memory at start, after warm-up (the first sample at or
    after `warmup` requests, or `warmup_minutes` when given) and at the end,
    and least-squares slopes after warm-up per 100k requests and per 10
    minutes."""
    table = []
    for (run, pid, role), rs in sorted(series(rows).items(),
                                       key=lambda kv: (kv[0][0] != "module", kv[0][1])):
        if warmup_minutes is not None:
            warm = [r for r in rs if float(r["t_s"]) >= warmup_minutes * 60]
        else:
            warm = [r for r in rs if float(r["requests"]) >= warmup]
        if not warm:
            continue
        first, last = warm[0], rs[-1]
        entry = {"run": run, "pid": pid, "role": role, "samples": len(rs),
                 "warm_requests": int(float(first["requests"])),
                 "warm_minutes": float(first["t_s"]) / 60,
                 "end_requests": int(float(last["requests"])),
                 "end_minutes": float(last["t_s"]) / 60}
        for col in ("vmrss_kb", "pss_kb", "private_kb", "shm_rss_kb"):
            entry[col + "_start"] = num(rs[0][col])
            entry[col + "_warm"] = num(first[col])
            entry[col + "_end"] = num(last[col])
            entry[col + "_max"] = max((num(r[col]) for r in rs if num(r[col]) is not None),
                                      default=None)
            entry[col + "_slope"] = slope_per_100k(
                [(num(r["requests"]), num(r[col])) for r in warm])
            per_10min = slope_per_100k([(num(r["t_s"]), num(r[col])) for r in warm])
            entry[col + "_slope_10min"] = None if per_10min is None else per_10min * 600 / 1e5
        table.append(entry)
    return table


def fmt(v, nd=0):
    if v is None:
        return "-"
    return ("%%.%df" % nd) % v


def markdown(table):
    lines = ["| run | process | pid | samples | VmRSS kB at start | VmRSS kB after warm-up "
             "(requests, min) | VmRSS kB at end (requests, min) | VmRSS max | VmRSS slope "
             "kB / 100k req | VmRSS slope kB / 10 min | Pss kB warm-up -> end | Private kB "
             "warm-up -> end | Private slope kB / 100k req | store mapping Rss kB warm-up -> "
             "end | store mapping slope kB / 100k req | store mapping slope kB / 10 min |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|---:|---:|"]
    for e in table:
        lines.append("| %s | %s | %d | %d | %s | %s (%d, %.1f) | %s (%d, %.1f) | %s | %s | %s "
                     "| %s -> %s | %s -> %s | %s | %s -> %s | %s | %s |" % (
                         e["run"], e["role"], e["pid"], e["samples"], fmt(e["vmrss_kb_start"]),
                         fmt(e["vmrss_kb_warm"]), e["warm_requests"], e["warm_minutes"],
                         fmt(e["vmrss_kb_end"]), e["end_requests"], e["end_minutes"],
                         fmt(e["vmrss_kb_max"]), fmt(e["vmrss_kb_slope"], 1),
                         fmt(e["vmrss_kb_slope_10min"], 1),
                         fmt(e["pss_kb_warm"]), fmt(e["pss_kb_end"]),
                         fmt(e["private_kb_warm"]), fmt(e["private_kb_end"]),
                         fmt(e["private_kb_slope"], 1),
                         fmt(e["shm_rss_kb_warm"]), fmt(e["shm_rss_kb_end"]),
                         fmt(e["shm_rss_kb_slope"], 1), fmt(e["shm_rss_kb_slope_10min"], 1)))
    return "\n".join(lines)


def plot(rows, png, warmup, xaxis="requests"):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no plot (apt-get install python3-matplotlib)")
        return False
    ser = series(rows)

    def xs(rs):
        if xaxis == "minutes":
            return [float(r["t_s"]) / 60 for r in rs]
        return [float(r["requests"]) / 1e6 for r in rs]

    fig, axes = plt.subplots(3, 1, figsize=(11, 12), sharex=True)
    colors = {}
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
               "tab:pink", "tab:olive", "tab:cyan"]

    def label_of(run, pid, role):
        return "%s %s %d" % ("mod_pyprof" if run == "module" else "control (no module)", role, pid)

    for key in sorted(ser, key=lambda k: (k[0] != "module", k[2] != "parent", k[1])):
        run, pid, role = key
        rs = ser[key]
        x = xs(rs)
        if run == "module":
            colors[key] = palette[len(colors) % len(palette)]
            style = dict(color=colors[key], linestyle="-", linewidth=1.6, marker=".", markersize=3)
        else:
            style = dict(color="0.45" if role == "parent" else "0.65",
                         linestyle="--" if role == "parent" else ":", linewidth=1.4)
        y = [num(r["vmrss_kb"]) / 1024 if num(r["vmrss_kb"]) is not None else None for r in rs]
        axes[0].plot(x, y, label=label_of(run, pid, role), **style)
        y = [num(r["pss_kb"]) / 1024 if num(r["pss_kb"]) is not None else None for r in rs]
        axes[1].plot(x, y, label=label_of(run, pid, role), **style)
    axes[0].set_ylabel("VmRSS (MiB)")
    axes[0].set_title("httpd processes: resident memory over %s "
                      "(PyProfSample /app 10ms, event MPM, mod_wsgi %s)"
                      % ("time" if xaxis == "minutes" else "requests served",
                         "daemon mode" if any(k[2] == "daemon" for k in ser) else "embedded"))
    axes[1].set_ylabel("Pss (MiB, shared pages split)")
    axes[1].set_title("Proportional set size (smaps_rollup)")
    for ax in axes[:2]:
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8, loc="lower right", ncol=2)

    # store use (module run only): one row per sample (take the parent's)
    mod = [r for (run, pid, role), rs in ser.items() if run == "module" and role == "parent"
           for r in rs]
    mod.sort(key=lambda r: float(r["t_s"]))
    ax = axes[2]
    if mod:
        x = xs(mod)
        shm_max = []
        by_t = {}
        for (run, pid, role), rs in ser.items():
            if run != "module":
                continue
            for r in rs:
                v = num(r["shm_rss_kb"])
                if v is not None:
                    by_t[r["t_s"]] = max(by_t.get(r["t_s"], 0), v)
        shm_max = [by_t.get(r["t_s"], float("nan")) / 1024 for r in mod]
        arena = [num(r["arena_used"]) / 1024 if num(r["arena_used"]) is not None else None
                 for r in mod]
        total = num(mod[-1]["store_memory"])
        ax.plot(x, shm_max, color="tab:blue", marker=".", markersize=3,
                label="store mapping resident (max over processes, MiB)")
        ax.plot(x, arena, color="tab:green", marker=".", markersize=3,
                label="frame-text arena used (KiB)")
        ax.set_ylabel("MiB (mapping) / KiB (arena)")
        top = max([v for v in shm_max + arena if v is not None and v == v] or [1])
        ax.set_ylim(0, top * 1.45)     # room for the legend above the lines
        ax2 = ax.twinx()
        listed = [num(r["traces_listed"]) for r in mod]
        evicted = [num(r["traces_evicted"]) for r in mod]
        ax2.plot(x, listed, color="tab:red", linestyle="--", label="traces listed (kept ring)")
        ax2.plot(x, [e / 100 if e is not None else None for e in evicted], color="tab:purple",
                 linestyle=":", label="traces evicted / 100")
        ax2.set_ylabel("traces")
        top2 = max([v for v in listed + [e / 100 for e in evicted if e is not None]
                    if v is not None] or [1])
        ax2.set_ylim(0, top2 * 1.45)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left", ncol=2)
        ax.set_title("Shared store (%s MiB mapped): resident pages, arena, kept traces"
                     % fmt(total / 1048576 if total else None))
    for a in axes:
        if xaxis == "requests":
            a.axvline(warmup / 1e6, color="0.7", linewidth=1)
        else:
            a.axvline(64, color="0.7", linewidth=1)
        a.grid(True, alpha=0.3)
    if xaxis == "minutes":
        axes[2].set_xlabel("minutes since the server started (requests at a constant rate; "
                           "grey line: 64 min, the store's ring of per-minute tables)")
    else:
        axes[2].set_xlabel("requests served under /app (millions; grey line: end of warm-up)")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    log("plot: %s" % png)
    return True


# ---------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--module", default=os.path.join(REPO, "mod_pyprof", ".libs", "mod_pyprof.so"),
                   help="mod_pyprof.so to load (use a private copy)")
    p.add_argument("--requests", type=int, default=2000000, help="requests with the module")
    p.add_argument("--control", type=int, default=0,
                   help="requests for the run without the module afterwards (0: none)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between samples")
    p.add_argument("--chunk-seconds", type=int, default=60, help="longest wrk run")
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--rate", type=float, default=0,
                   help="throttle the load to about this many requests/s (wrk delay(); "
                        "0: as fast as the server goes)")
    p.add_argument("--min-seconds", type=float, default=0,
                   help="keep the load on at least this long, even once --requests "
                        "were served (for a run that must be long in wall time)")
    p.add_argument("--warmup", type=int, default=100000,
                   help="requests after which memory must be flat")
    p.add_argument("--warmup-minutes", type=float, default=None,
                   help="warm-up in minutes instead (for a --rate run)")
    p.add_argument("--max-seconds", type=float, default=3600.0,
                   help="hard limit for the whole run (both servers)")
    p.add_argument("--daemon", action="store_true",
                   help="mod_wsgi daemon mode (2 processes x 8 threads, imports pyprof)")
    p.add_argument("--csv", default=os.path.join(HERE, "longrun.csv"))
    p.add_argument("--png", default=os.path.join(HERE, "longrun-rss.png"))
    p.add_argument("--keep", action="store_true", help="keep the server directories")
    p.add_argument("--plot-only", action="store_true", help="plot --csv and exit")
    p.add_argument("--xaxis", choices=("requests", "minutes"), default="requests",
                   help="what the plot's x axis shows")
    args = p.parse_args()

    if args.plot_only:
        rows = load_csv(args.csv)
        print(markdown(summarize(rows, args.warmup, args.warmup_minutes)))
        plot(rows, args.png, args.warmup, args.xaxis)
        return 0
    if os.geteuid() != 0:
        raise SystemExit("run as root (httpd children run as www-data)")
    if not os.path.exists(args.module):
        raise SystemExit("no module at %s (run make)" % args.module)

    started = time.monotonic()
    deadline = started + args.max_seconds
    import hashlib
    with open(args.module, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    log("module %s sha256 %s" % (args.module, sha))
    results = {"module": args.module, "module_sha256": sha, "args": vars(args), "runs": []}
    ok = True
    with open(args.csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        runs = [(True, args.requests)] + ([(False, args.control)] if args.control else [])
        for with_module, target in runs:
            if time.monotonic() > deadline - 60:
                log("no time left for the %s run" % ("module" if with_module else "control"))
                ok = False
                break
            res = one_run(args, with_module, target, writer, deadline, f.flush)
            f.flush()
            results["runs"].append(res)
            if not res["wrk"]["reached"] or res["log_problem_count"] or res["sampler_errors"]:
                ok = False
            # Socket read errors (a handful, in the first chunk, the same
            # without the module) are reported, not failures; an HTTP
            # error status or a timeout is.
            bad = sum(res["wrk"].get(k, 0) for k in ("timeout", "non2xx", "status"))
            if bad:
                ok = False
            log("%s: %s" % (res["run"], json.dumps({k: v for k, v in res.items()
                                                    if k != "log_problems"}, sort_keys=True)))
            for line in res["log_problems"][:10]:
                log("  log problem: %s" % line)
    results["wall_s"] = round(time.monotonic() - started, 1)
    rows = load_csv(args.csv)
    table = summarize(rows, args.warmup, args.warmup_minutes)
    results["table"] = table
    with open(os.path.splitext(args.csv)[0] + ".json", "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    print(markdown(table))
    plot(rows, args.png, args.warmup, args.xaxis)
    log("done in %.0fs: %s" % (results["wall_s"], "OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
