"""mod_pyprof benchmark suite (`make bench`): overhead beside the peer
profilers, accuracy, sampler cost, scaling, achieved rate, memory.

Every part runs real standalone httpd servers (event MPM, one child,
mod_wsgi embedded mode, no access log) on 127.0.0.1 serving
tests/bench/app.py, loaded with wrk/ab/urllib from this process.  CPU time
comes from /proc (utime+stime of the child, all threads, or schedstat where
clock ticks are too coarse), the sampler's own counters from
/server-profile?format=json ("sampler").  The machine is assumed shared and
noisy: rounds are interleaved, medians reported, every loop is bounded.

Parts (--part, comma-separated; "all" = every part):

  overhead  eight servers (1 child x 8 threads) at once, loaded one at a
            time, interleaved rounds of `wrk -t2 -c8 -d<duration>` on
            /app/render and /app/render_sleep:
                off          mod_pyprof not loaded, no profiler
                p100ms       PyProfSample /app 100ms   (nogil sampler)
                p10ms        PyProfSample /app 10ms    (nogil)
                p1ms         PyProfSample /app 1ms     (nogil)
                p10ms-gil    PyProfSample /app 10ms + PyProfSampler gil
                cprofile     module absent; cProfile per request, stats merged
                             into one process-wide pstats.Stats under a lock
                yappi        module absent; yappi, wall clock, all threads
                pysampler    module absent; pure-Python sys._current_frames()
                             sampler thread, every 10 ms, stacks in a dict
            (the peers live in app.py, switched on by one line appended to
            each variant's copy of it).  CPU ms per request of the child,
            req/s, medians over rounds and per-round ratios to `off`.
  accuracy  /app/split: four functions taking 10/20/30/40 % of a 400 ms
            request (two burn CPU, two sleep), sequential requests until the
            nogil 10ms server has >= 1,000 samples; leaf-function shares from
            the location aggregate (weights) vs the app's own timing, for
            nogil 10ms, gil 10ms, nogil 1ms and the Python sampler.
  sampler   cost per sample for stacks of 10, 30, 100, 1,000 frames with 1, 8
            (busy) and 64 (sleeping, ThreadsPerChild 64) requests in flight,
            nogil and gil, 1ms, PyProfMaxDepth 1024, a fresh server per cell;
            walk time and GIL wait from diffs of the sampler counters.
  scaling   nogil sampler CPU seconds per wall second as 1..64 sleeping
            requests are in flight in one process, at 10ms and 1ms.
  rate      achieved samples/s on a CPU-bound request at 10ms and 1ms, nogil
            vs gil; a request stuck ~1 s in one GIL-holding C call (regex
            backtracking): which line the samples name; where the samples
            land under the overhead part's load.
  memory    child RSS (VmRSS) over 200,000 profiled requests
            at 10ms (/app/nap?ms=1, every request kept as slow), and the
            store's size from the JSON "store" block, start vs end.

    /usr/bin/python3 tests/bench/overhead.py                  # every part (~20 min)
    /usr/bin/python3 tests/bench/overhead.py --quick          # smoke (~6 min)
    /usr/bin/python3 tests/bench/overhead.py --part rate      # one part
    /usr/bin/python3 tests/bench/overhead.py --part memory    # ~1-2 min
    /usr/bin/python3 tests/bench/overhead.py --part overhead --variants p10ms,yappi

Results go to stdout and to tests/bench/RESULTS.md (--output): each part
replaces its own section there and leaves the others' (each section says
when and how it was measured).  The raw results are also pickled to
/tmp/pyprof-bench-last.pickle; `--rerender FILE` writes the report from such
a file again without measuring.  Every server is stopped at the end, also on
errors and Ctrl-C.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))     # tests/, for tests/pyhttpd

from pyhttpd.httpd import (APACHE, CLEAN_ENV, HTTP_TIMEOUT, REPO, WSGI_SO,  # noqa: E402
                           Httpd, HttpdError, module_path, scan_error_log,
                           stat_fields)

APP_SOURCE = os.path.join(HERE, "app.py")
DEFAULT_OUTPUT = os.path.join(HERE, "RESULTS.md")

CLK_TCK = os.sysconf("SC_CLK_TCK")
# Straight to 127.0.0.1, whatever *_proxy the environment has.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

WARMUP_REQUESTS = 200
SETTLE_SECONDS = 0.3         # let in-flight requests finish after wrk stops


class Variant:
    """One server of the overhead part: interval None = module not loaded."""

    def __init__(self, name, interval=None, sampler=None, profiler="none", what=""):
        self.name = name
        self.interval = interval
        self.sampler = sampler
        self.profiler = profiler
        self.what = what


# The interleaving order.
VARIANTS = [
    Variant("off", what="mod_pyprof not loaded, no profiler"),
    Variant("p100ms", "100ms", what="PyProfSample /app 100ms, nogil sampler (default)"),
    Variant("p10ms", "10ms", what="PyProfSample /app 10ms, nogil"),
    Variant("p1ms", "1ms", what="PyProfSample /app 1ms, nogil"),
    Variant("p10ms-gil", "10ms", sampler="gil",
            what="PyProfSample /app 10ms, PyProfSampler gil"),
    Variant("cprofile", profiler="cprofile",
            what="module absent; cProfile.Profile per request, merged into one "
                 "pstats.Stats under a lock"),
    Variant("yappi", profiler="yappi",
            what="module absent; yappi %s, wall clock, all threads, started at import"),
    Variant("pysampler", profiler="pysampler",
            what="module absent; Python thread: sys._current_frames() every 10 ms, "
                 "stacks counted in a dict"),
]
VARIANT_NAMES = [v.name for v in VARIANTS]
ENDPOINTS = ["/app/render", "/app/render_sleep"]
PARTS_ALL = ["overhead", "accuracy", "sampler", "scaling", "rate", "memory"]
PARTS = PARTS_ALL


class BenchError(HttpdError):
    pass


def log(msg):
    print(msg, flush=True)


# -- /proc ----------------------------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of a process (all its threads, live and exited)."""
    fields = stat_fields(pid)
    if fields is None:
        return None
    # After the comm: state=0, ppid=1, ... utime=11, stime=12.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_run_ns(pid):
    """Sum of on-CPU nanoseconds of a process' live threads (schedstat): much
    finer than utime+stime's clock ticks, for the near-zero idle numbers."""
    total = 0
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return None
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


# -- one httpd ------------------------------------------------------------------

BENCH_MPM = """\
StartServers 1
ServerLimit 1
ThreadLimit {threads}
ThreadsPerChild {threads}
MaxRequestWorkers {threads}
MinSpareThreads 1
MaxSpareThreads {threads}
MaxConnectionsPerChild 0
"""


class BenchHttpd(Httpd):
    """The harness' Httpd as the benchmark runs it: event MPM, 1 child x
    `threads` threads, mod_wsgi embedded, no access log (its cost would
    dilute the module's share of CPU per request), no mod_mime, LogLevel
    warn.  interval None = mod_pyprof not loaded; sampler "gil"/"nogil" adds
    PyProfSampler (None: the module's default); profiler names the in-app
    peer profiler (app.py install_profiler).  Pages are read with urllib
    (fetch: (status, body)); AH00484 (all workers busy) is expected: wrk
    -c8 against 8 threads."""

    def __init__(self, name, interval, module, base_dir, threshold="500ms", extra="",
                 sampler=None, profiler="none", threads=8, max_depth=None):
        if sampler:
            extra += "PyProfSampler %s\n" % sampler
        if max_depth:
            extra += "PyProfMaxDepth %d\n" % max_depth
        pyprof = ""
        if interval is not None:
            pyprof = ("PyProfSample /app %s\nPyProfSlowThreshold %s\n%s"
                      % (interval, threshold, extra))
        super().__init__(name=name, extra=pyprof, mpm="event", with_module=interval is not None,
                         module=module, allowed_log=["AH00484"],
                         mpm_settings=BENCH_MPM.format(threads=threads), app_source=APP_SOURCE,
                         access_log=False, mime=False, module_debug=False,
                         keepalive="KeepAliveTimeout 5\nMaxKeepAliveRequests 0",
                         prefix="pyprof-bench-", base_dir=base_dir)
        self.interval = interval
        self.threshold = threshold
        self.sampler = sampler
        self.profiler = profiler
        self.threads = threads
        # this variant's copy of the app: the same file plus the one line
        # that switches its peer profiler on (or "none")
        with open(self.app, "a") as f:
            f.write("\n\ninstall_profiler(%r)  # added by overhead.py\n" % profiler)

    @property
    def profiled(self):
        return self.interval is not None

    def answering(self):
        try:
            return self.fetch("/app/ping", timeout=3)[0] == 200
        except OSError:
            return False

    def stop(self):
        """The harness' stop; its trouble is printed (not a log problem)."""
        known = len(self.problems)
        super().stop()
        for problem in self.problems[known:]:
            log("warning: server %s: %s" % (self.name, problem))

    def log_problems(self):
        """Error-log lines at error level or worse, crashes and stop trouble."""
        return scan_error_log(self.error_log_text(), self.destroy_interpreter_off,
                              self.allowed_log)

    # -- measurement ----------------------------------------------------------

    def cpu_snapshot(self):
        """{child pid: CPU seconds} for every child of this server's parent."""
        snap = {}
        for kid in self.children():
            cpu = cpu_seconds(kid)
            if cpu is not None:
                snap[kid] = cpu
        return snap

    def fetch(self, path, timeout=HTTP_TIMEOUT):
        try:
            with OPENER.open(self.url(path), timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def fetch_ok(self, path, timeout=HTTP_TIMEOUT):
        status, body = self.fetch(path, timeout=timeout)
        if status != 200:
            raise BenchError("server %s: GET %s -> %d: %s\n--- error log ---\n%s"
                             % (self.name, path, status, body[:500],
                                self.error_log_text()[-3000:]))
        return body

    def profile(self):
        return json.loads(self.fetch_ok("/server-profile?format=json").decode("utf-8"))

    def location_page(self, path="/app"):
        return json.loads(self.fetch_ok("/server-profile/location?path=%s&format=json"
                                        % urllib.parse.quote(path, safe="/")).decode("utf-8"))

    def bench_profiler(self, query=""):
        """State of the in-app peer profiler (app.py /bench_profiler)."""
        return json.loads(self.fetch_ok("/app/bench_profiler" + query).decode("utf-8"))

    def child(self):
        kids = self.children()
        return kids[0] if len(kids) == 1 else None


def cpu_delta(before, after):
    """CPU seconds used between two snapshots; None when a child came or went
    (a child that exited took its CPU time with it)."""
    if set(before) != set(after):
        return None
    return sum(after[p] - before[p] for p in after)


# -- load generation ------------------------------------------------------------

def warm_up(server, path, count=WARMUP_REQUESTS):
    proc = subprocess.run(["ab", "-q", "-k", "-n", str(count), "-c", "4", "-s", "10",
                           server.url(path)], env=CLEAN_ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)
    out = proc.stdout.decode("utf-8", "replace")
    failed = re.search(r"Failed requests:\s+(\d+)", out)
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    if proc.returncode != 0 or (failed and int(failed.group(1))) or non2xx:
        raise BenchError("warm-up of %s %s failed:\n%s\n--- error log ---\n%s"
                         % (server.name, path, out, server.error_log_text()[-3000:]))


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def run_wrk(server, path, duration):
    cmd = ["wrk", "-t2", "-c8", "-d%ds" % duration, "--timeout", "10s", "--latency",
           server.url(path)]
    try:
        proc = subprocess.run(cmd, env=CLEAN_ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=duration + 30)
    except subprocess.TimeoutExpired:
        raise BenchError("wrk on %s did not finish in %ds" % (server.name, duration + 30))
    out = proc.stdout.decode("utf-8", "replace")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    if proc.returncode != 0 or not rps or not total:
        raise BenchError("wrk on %s failed (rc %d):\n%s\n--- error log ---\n%s"
                         % (server.name, proc.returncode, out,
                            server.error_log_text()[-3000:]))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    if errors:
        raise BenchError("wrk on %s got %s non-2xx responses:\n%s\n--- error log ---\n%s"
                         % (server.name, errors.group(1), out,
                            server.error_log_text()[-3000:]))
    lat = {}
    for q in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % q, out, re.M)
        if m:
            lat[q] = _ms(m.group(1))
    return {"rps": float(rps.group(1)), "requests": int(total.group(1)),
            "p50_ms": lat.get("50"), "p99_ms": lat.get("99"),
            "socket_errors": sock.group(1).strip() if sock else None}


# -- helpers shared by the parts ----------------------------------------------------

SAMPLER_KEYS = ("samples", "ticks", "cpu_s", "walk_s", "gil_wait_s", "torn",
                "threads_missing")


def sampler_block(server):
    if not server.profiled:
        return None
    return server.profile().get("sampler") or {}


def sampler_diff(before, after):
    """Counter differences of two `sampler` blocks (the quantiles are
    cumulative histograms and cannot be diffed)."""
    if before is None or after is None:
        return None
    d = {}
    for k in SAMPLER_KEYS:
        if k in before and k in after:
            d[k] = after[k] - before[k]
    for k in ("sample_cost_p50_us", "sample_cost_p99_us", "mode"):
        d[k] = after.get(k)
    return d


def location_requests(server):
    if not server.profiled:
        return None
    for loc in server.profile().get("locations", []):
        if loc.get("path") == "/app":
            return loc.get("requests")
    return None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def child_run_ns(server):
    kid = server.child()
    return thread_run_ns(kid) if kid else None


class Concurrent:
    """`count` GETs of `path` at once, each in its own thread (bounded by
    the timeout); join() returns [(status, body, seconds)]."""

    def __init__(self, server, path, count, timeout=60):
        self.results = [None] * count
        self.timeout = timeout
        self.threads = []
        for i in range(count):
            t = threading.Thread(target=self._one, args=(server, path, i, timeout),
                                 daemon=True)
            self.threads.append(t)
        for t in self.threads:
            t.start()

    def _one(self, server, path, i, timeout):
        t0 = time.monotonic()
        try:
            status, body = server.fetch(path, timeout=timeout)
        except OSError as e:
            status, body = None, str(e).encode()
        self.results[i] = (status, body, time.monotonic() - t0)

    def join(self):
        deadline = time.monotonic() + self.timeout + 5
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        return self.results

    def join_ok(self, server):
        res = self.join()
        bad = [r for r in res if r is None or r[0] != 200]
        if bad:
            raise BenchError("server %s: %d of %d concurrent requests failed: %s\n"
                             "--- error log ---\n%s"
                             % (server.name, len(bad), len(res), bad[:3],
                                server.error_log_text()[-3000:]))
        return res


def wait_inflight(server, count, timeout=5.0):
    """Until the store shows `count` requests in flight (bounded)."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n = len(server.profile().get("inflight", []))
        if n >= count:
            return n
        time.sleep(0.05)
    return n


def start_servers(servers, servers_out):
    for srv in servers:
        servers_out.append(srv)
        srv.start()
        log("started %-14s on 127.0.0.1:%d (pid %d, children %s)"
            % (srv.name, srv.port, srv.pid, srv.children()))


def stop_server(srv):
    srv.stop()
    return srv.log_problems()


def app_line(marker):
    """Line number of the app.py line carrying `marker` (a comment)."""
    with open(APP_SOURCE) as f:
        for no, line in enumerate(f, 1):
            if marker in line:
                return no
    raise BenchError("no %r in %s" % (marker, APP_SOURCE))


# -- part: overhead ------------------------------------------------------------------

def pysampler_samples(server):
    if server.profiler != "pysampler":
        return None
    return server.bench_profiler().get("samples")


def measure_round(server, path, duration):
    warm_up(server, path)
    time.sleep(0.2)
    s_before = sampler_block(server)
    n_before = location_requests(server)
    p_before = pysampler_samples(server)
    before = server.cpu_snapshot()
    res = run_wrk(server, path, duration)
    time.sleep(SETTLE_SECONDS)
    after = server.cpu_snapshot()
    s_after = sampler_block(server)
    n_after = location_requests(server)
    p_after = pysampler_samples(server)
    cpu = cpu_delta(before, after)
    res["cpu_s"] = cpu
    res["cpu_ms_per_req"] = cpu * 1000.0 / res["requests"] if cpu is not None and res["requests"] else None
    if s_before is not None and s_after is not None:
        res["samples"] = s_after["samples"] - s_before["samples"]
        res["sampler_cpu_s"] = s_after["cpu_s"] - s_before["cpu_s"]
    if p_before is not None and p_after is not None:
        res["samples"] = p_after - p_before
    if n_before is not None and n_after is not None:
        # The server's own count of the round's requests: a check on wrk's.
        res["server_requests"] = n_after - n_before
    return res


def measure_idle(servers, seconds):
    """CPU µs per second of each server's children while nothing loads them."""
    def snap(srv):
        return {k: thread_run_ns(k) for k in srv.children()}
    before = {s.name: snap(s) for s in servers}
    time.sleep(seconds)
    after = {s.name: snap(s) for s in servers}
    idle = {}
    for s in servers:
        b, a = before[s.name], after[s.name]
        if set(a) != set(b) or None in a.values() or None in b.values():
            idle[s.name] = None
        else:
            idle[s.name] = sum(a[k] - b[k] for k in a) / 1e3 / seconds
    return idle


def part_overhead(args, base_dir, servers_out):
    servers = []
    for v in args.variant_list:
        servers.append(BenchHttpd(v.name, v.interval, args.module, base_dir,
                              sampler=v.sampler, profiler=v.profiler))
    start_servers(servers, servers_out)
    versions = servers[0].fetch_ok("/app/version").decode()
    for srv in servers:
        for path in ENDPOINTS:
            warm_up(srv, path)
    idle_seconds = 2 if args.quick else 5
    log("idle CPU over %ds ..." % idle_seconds)
    idle = measure_idle(servers, idle_seconds)

    results = {}     # (variant, path) -> [round result]
    total = args.rounds * len(ENDPOINTS) * len(servers)
    done = 0
    for rnd in range(1, args.rounds + 1):
        for path in ENDPOINTS:
            for srv in servers:
                done += 1
                res = measure_round(srv, path, args.duration)
                res["round"] = rnd
                results.setdefault((srv.name, path), []).append(res)
                log("[%d/%d] round %d %-10s %-18s %8.1f req/s  %s CPU ms/req  "
                    "p50 %s ms%s"
                    % (done, total, rnd, srv.name, path, res["rps"],
                       "%.3f" % res["cpu_ms_per_req"] if res["cpu_ms_per_req"] else "n/a",
                       "%.2f" % res["p50_ms"] if res["p50_ms"] is not None else "?",
                       ("  samples %d%s" % (res["samples"],
                                            ", sampler %.1f ms" % (res["sampler_cpu_s"] * 1000)
                                            if "sampler_cpu_s" in res else ""))
                       if "samples" in res else ""))
                if res["cpu_ms_per_req"] is None:
                    log("  warning: a child of %s came or went during the round; "
                        "its CPU is not counted" % srv.name)
    samplers = {srv.name: sampler_block(srv) for srv in servers if srv.profiled}
    peers = {}
    for srv in servers:
        if srv.profiler != "none":
            try:
                peers[srv.name] = srv.bench_profiler()
            except BenchError as e:
                peers[srv.name] = {"error": str(e)[:200]}
    problems = {srv.name: srv.log_problems() for srv in servers}
    return {"results": results, "samplers": samplers, "idle": idle, "peers": peers,
            "idle_seconds": idle_seconds, "variants": [v.name for v in args.variant_list],
            "versions": versions, "problems": problems}


def summarise(overhead):
    """Rows of the main table: medians and per-round paired ratios to off."""
    res = overhead["results"]
    rows = []
    for path in ENDPOINTS:
        base = {r["round"]: r for r in res[("off", path)]}
        for name in overhead["variants"]:
            rounds = res[(name, path)]
            rps_ratio, cpu_ratio, cpu_diff = [], [], []
            for r in rounds:
                b = base.get(r["round"])
                if b and b["rps"]:
                    rps_ratio.append(r["rps"] / b["rps"])
                if b and r["cpu_ms_per_req"] and b["cpu_ms_per_req"]:
                    cpu_ratio.append(r["cpu_ms_per_req"] / b["cpu_ms_per_req"])
                    cpu_diff.append((r["cpu_ms_per_req"] - b["cpu_ms_per_req"]) * 1000.0)
            row = {
                "variant": name, "path": path, "n": len(rounds),
                "rps": median(r["rps"] for r in rounds),
                "cpu": median(r["cpu_ms_per_req"] for r in rounds),
                "p50": median(r["p50_ms"] for r in rounds),
                "p99": median(r["p99_ms"] for r in rounds),
                "rps_ratio": median(rps_ratio), "cpu_ratio": median(cpu_ratio),
                "cpu_diff_us": median(cpu_diff),
                "cpu_ratio_min": min(cpu_ratio) if cpu_ratio else None,
                "cpu_ratio_max": max(cpu_ratio) if cpu_ratio else None,
            }
            if any("samples" in r for r in rounds):
                row["samples_per_req"] = median(
                    r["samples"] / r["requests"] for r in rounds
                    if r["requests"] and "samples" in r)
            if any("sampler_cpu_s" in r for r in rounds):
                row["sampler_us_per_req"] = median(
                    r["sampler_cpu_s"] * 1e6 / r["requests"] for r in rounds
                    if r["requests"] and "sampler_cpu_s" in r)
            rows.append(row)
    return rows


# -- part: accuracy --------------------------------------------------------------------

# (leaf function, nominal % of the request, kind)
SPLIT_FUNCS = [("split_cpu_10", 10, "CPU"), ("split_sleep_20", 20, "sleep"),
               ("split_cpu_30", 30, "CPU"), ("split_sleep_40", 40, "sleep")]
SPLIT_TOTAL_MS = 400


def module_leaf_shares(server, within="view_split"):
    """Leaf-function weights and counts of the /app location aggregate,
    only the stacks that pass through `within`."""
    loc = server.location_page("/app")
    weight = {f: 0.0 for f, _, _ in SPLIT_FUNCS}
    count = {f: 0 for f, _, _ in SPLIT_FUNCS}
    other_w = other_c = 0
    for st in loc.get("stacks", []):
        frames = st["frames"]
        if not any(fr["function"] == within for fr in frames):
            continue
        leaf = frames[-1]["function"] if frames else ""
        if leaf in weight:
            weight[leaf] += st["weight_ms"]
            count[leaf] += st["count"]
        else:
            other_w += st["weight_ms"]
            other_c += st["count"]
    return {"weight": weight, "count": count, "other_weight": other_w,
            "other_count": other_c, "samples": sum(count.values()) + other_c}


def pysampler_leaf_shares(server, within="view_split"):
    state = server.bench_profiler("?stacks=1&within=%s" % within)
    leaves = state.get("leaves", {})
    weight = {f: 0.0 for f, _, _ in SPLIT_FUNCS}
    count = {f: 0 for f, _, _ in SPLIT_FUNCS}
    other_w = other_c = 0
    for leaf, (c, w) in leaves.items():
        if leaf in weight:
            weight[leaf] += w
            count[leaf] += c
        else:
            other_w += w
            other_c += c
    return {"weight": weight, "count": count, "other_weight": other_w,
            "other_count": other_c, "samples": sum(count.values()) + other_c,
            "ticks": state.get("ticks")}


def shares(values):
    total = sum(values.values())
    return {k: (v * 100.0 / total if total else None) for k, v in values.items()}


def max_error(measured, truth):
    errs = [abs(measured[k] - truth[k]) for k in truth
            if measured.get(k) is not None and truth.get(k) is not None]
    return max(errs) if errs else None


def part_accuracy(args, base_dir, servers_out):
    target = 300 if args.quick else 1000
    min_requests = 8 if args.quick else 30
    max_requests = 40 if args.quick else 80
    specs = [("acc-nogil-10ms", "10ms", "nogil", "none"),
             ("acc-gil-10ms", "10ms", "gil", "none"),
             ("acc-nogil-1ms", "1ms", "nogil", "none"),
             ("acc-pysampler", None, None, "pysampler")]
    servers = [BenchHttpd(name, interval, args.module, base_dir, threshold="10s",
                      sampler=mode, profiler=prof)
               for name, interval, mode, prof in specs]
    start_servers(servers, servers_out)
    versions = servers[0].fetch_ok("/app/version").decode()
    pys = servers[-1]
    pys.bench_profiler("?reset=1")
    truth = {srv.name: {f: 0.0 for f, _, _ in SPLIT_FUNCS} for srv in servers}
    done = 0
    path = "/app/split?total=%d" % SPLIT_TOTAL_MS
    started = time.monotonic()
    while done < max_requests:
        for srv in servers:       # interleaved: A B C D A B C D ...
            body = json.loads(srv.fetch_ok(path, timeout=30).decode("utf-8"))
            for f in truth[srv.name]:
                truth[srv.name][f] += body["wall_ms"][f]
        done += 1
        if done >= min_requests and done % 5 == 0:
            got = module_leaf_shares(servers[0])["samples"]
            log("  accuracy: %d requests per server, %d samples at nogil 10ms"
                % (done, got))
            if got >= target:
                break
    elapsed = time.monotonic() - started
    rows = []
    for srv, (name, interval, mode, prof) in zip(servers, specs):
        m = pysampler_leaf_shares(srv) if prof == "pysampler" else module_leaf_shares(srv)
        t = shares(truth[srv.name])
        sw, sc = shares(m["weight"]), shares(m["count"])
        row = {"name": name, "interval": interval or "10ms", "mode": mode or "python",
               "samples": m["samples"], "truth": t, "by_weight": sw, "by_count": sc,
               "err_weight": max_error(sw, t), "err_count": max_error(sc, t),
               "err_weight_nominal": max_error(sw, {f: p for f, p, _ in SPLIT_FUNCS}),
               "other_weight_pct": (m["other_weight"] * 100.0 /
                                    (m["other_weight"] + sum(m["weight"].values()))
                                    if m["other_weight"] + sum(m["weight"].values()) else None),
               "wall_ms": truth[srv.name]}
        if prof == "pysampler":
            row["ticks"] = m.get("ticks")
        else:
            row["sampler"] = sampler_block(srv)
        rows.append(row)
        log("  %-15s %5d samples  max error %.2f pp by weight, %.2f pp by count  %s"
            % (name, m["samples"], row["err_weight"] or -1, row["err_count"] or -1,
               ", ".join("%s %.1f%%" % (f, sw[f] or 0) for f, _, _ in SPLIT_FUNCS)))
    problems = {}
    for srv in servers:
        problems[srv.name] = stop_server(srv)
    return {"requests": done, "elapsed": elapsed, "rows": rows, "versions": versions,
            "target": target, "problems": problems}


# -- part: sampler micro-benchmark --------------------------------------------------

COST_DEPTHS = [10, 30, 100, 1000]
COST_THREADS = [1, 8, 64]


def sampler_cell(args, base_dir, servers_out, mode, threads, depth):
    big = threads > 8
    srv = BenchHttpd("cost-%s-%dt-d%d" % (mode, threads, depth), "1ms", args.module, base_dir,
                 threshold="30s", sampler=mode, threads=64 if big else 8, max_depth=1024)
    servers_out.append(srv)
    srv.start()
    if threads == 1:
        path = "/app/deep?depth=%d&ms=%d" % (depth, 300 if args.quick else 1000)
    elif not big:
        path = "/app/deep?depth=%d&ms=%d" % (depth, 100 if args.quick else 250)
    else:
        path = "/app/deep?depth=%d&ms=%d&mode=sleep" % (depth, 700 if args.quick else 1500)
    before = sampler_block(srv)
    r0 = child_run_ns(srv)
    t0 = time.monotonic()
    if threads == 1:
        srv.fetch_ok(path, timeout=60)
    else:
        Concurrent(srv, path, threads, timeout=60).join_ok(srv)
    wall = time.monotonic() - t0
    r1 = child_run_ns(srv)
    after = sampler_block(srv)
    d = sampler_diff(before, after)
    frames = 0
    for st in srv.location_page("/app").get("stacks", []):
        if any(fr["function"] in ("recurse", "recurse_sleep") for fr in st["frames"]):
            frames = max(frames, len(st["frames"]))
    problems = stop_server(srv)
    cell = {"mode": mode, "threads": threads, "depth": depth, "path": path, "wall": wall,
            "d": d, "frames": frames, "child_cpu_s": (r1 - r0) / 1e9 if r0 and r1 else None,
            "problems": problems}
    s = d["samples"] or 0
    cell["walk_us"] = d["walk_s"] * 1e6 / s if s else None
    cell["cpu_us"] = d["cpu_s"] * 1e6 / s if s else None
    cell["gil_wait_ms_per_tick"] = (d["gil_wait_s"] * 1e3 / d["ticks"]
                                    if d.get("ticks") else None)
    cell["rate_per_thread"] = s / wall / threads if wall else None
    log("  %-5s %2d threads depth %4d (%4d frames): %6d samples %6d ticks, walk %s us/sample "
        "(p50 %.2f p99 %.2f), sampler cpu %s us/sample, gil wait %.3f s, torn %s, "
        "%.0f samples/s per thread"
        % (mode, threads, depth, frames, s, d["ticks"], fmt(cell["walk_us"]),
           d["sample_cost_p50_us"], d["sample_cost_p99_us"], fmt(cell["cpu_us"]),
           d["gil_wait_s"], d.get("torn"), cell["rate_per_thread"] or 0))
    return cell


def part_sampler(args, base_dir, servers_out):
    cells = []
    depths = [10, 1000] if args.quick else COST_DEPTHS
    for threads in COST_THREADS:
        for depth in depths:
            for mode in ("nogil", "gil"):     # the two modes side by side in time
                cells.append(sampler_cell(args, base_dir, servers_out, mode, threads, depth))
    return {"cells": cells}


# -- part: scaling -----------------------------------------------------------------------

SCALE_INFLIGHT = [0, 1, 2, 4, 8, 16, 32, 64]


def part_scaling(args, base_dir, servers_out):
    window = 1.0 if args.quick else 2.0
    hold_ms = int((window + 2.5) * 1000)
    levels = [0, 1, 8, 64] if args.quick else SCALE_INFLIGHT
    # 72 threads: 64 held requests leave room for the /server-profile reads
    servers = [BenchHttpd("scale-%s" % iv, iv, args.module, base_dir, threshold="30s",
                      threads=72) for iv in ("10ms", "1ms")]
    start_servers(servers, servers_out)
    rows = []
    for k in levels:
        for srv in servers:
            conc = None
            if k:
                conc = Concurrent(srv, "/app/deep?depth=20&ms=%d&mode=sleep" % hold_ms, k,
                                  timeout=30)
                seen = wait_inflight(srv, k, timeout=5)
                if seen < k:
                    log("  warning: %s: only %d of %d requests in flight" % (srv.name, seen, k))
            time.sleep(0.3)
            s0 = sampler_block(srv)
            r0 = child_run_ns(srv)
            t0 = time.monotonic()
            time.sleep(window)
            r1 = child_run_ns(srv)
            t1 = time.monotonic()
            s1 = sampler_block(srv)
            if conc:
                conc.join_ok(srv)
            d = sampler_diff(s0, s1)
            dt = t1 - t0
            nominal = 1000.0 / _ms(srv.interval)
            row = {"server": srv.name, "interval": srv.interval, "inflight": k, "window": dt,
                   "sampler_cpu_ms_per_s": d["cpu_s"] * 1e3 / dt,
                   "child_cpu_ms_per_s": (r1 - r0) / 1e6 / dt if r0 and r1 else None,
                   "samples_per_s": d["samples"] / dt,
                   "ticks_per_s": d["ticks"] / dt,
                   "achieved_pct": (d["samples"] / dt / (k * nominal) * 100.0) if k else None,
                   "walk_ms_per_s": d["walk_s"] * 1e3 / dt, "torn": d.get("torn")}
            row["cpu_us_per_sample"] = (d["cpu_s"] * 1e6 / d["samples"]) if d["samples"] else None
            rows.append(row)
            log("  %-11s %2d in flight: sampler %.3f ms CPU/s (child %s ms/s), %.0f samples/s "
                "(%s%% of nominal), %.0f ticks/s"
                % (srv.name, k, row["sampler_cpu_ms_per_s"], fmt(row["child_cpu_ms_per_s"], "%.3f"),
                   row["samples_per_s"], fmt(row["achieved_pct"], "%.0f"), row["ticks_per_s"]))
    problems = {srv.name: stop_server(srv) for srv in servers}
    return {"rows": rows, "window": window, "problems": problems}


# -- part: achieved rate, the stuck C call, where samples land ------------------------

def wait_kept(server, marker, count, timeout=10):
    deadline = time.monotonic() + timeout
    kept = []
    while time.monotonic() < deadline:
        kept = [r for r in server.profile()["requests"] if marker in r["uri"]]
        if len(kept) >= count:
            break
        time.sleep(0.1)
    return kept


def wait_new_kept(server, marker, known, timeout=10):
    """Kept traces for `marker` not in `known`, oldest first (bounded wait)."""
    deadline = time.monotonic() + timeout
    fresh = []
    while time.monotonic() < deadline:
        fresh = [r for r in server.profile()["requests"]
                 if marker in r["uri"] and r["id"] not in known]
        if fresh:
            break
        time.sleep(0.1)
    fresh.sort(key=lambda r: r.get("started_at") or "")
    return fresh


def request_detail(server, rid):
    quoted = urllib.parse.quote(str(rid), safe="-_.~@+=")
    return json.loads(server.fetch_ok("/server-profile/request/%s?format=json"
                                    % quoted).decode("utf-8"))


def rate_run(server, path, marker, repeats, with_stacks=False):
    already = {r["id"] for r in server.profile()["requests"] if marker in r["uri"]}
    for _ in range(repeats):
        server.fetch_ok(path, timeout=30)
    kept = [r for r in wait_kept(server, marker, repeats + len(already))
            if r["id"] not in already]
    if len(kept) < repeats:
        raise BenchError("server %s: expected %d kept traces for %s, found %d\n"
                         "--- error log ---\n%s" % (server.name, repeats, marker,
                                                    len(kept), server.error_log_text()[-3000:]))
    traces = []
    for r in kept:
        t = {"id": r["id"], "duration_ms": r["duration_ms"], "cpu_ms": r["cpu_ms"],
             "samples": r["samples"],
             "per_s": r["samples"] / (r["duration_ms"] / 1000.0) if r["duration_ms"] else None}
        if with_stacks:
            detail = request_detail(server, r["id"])
            depths = [len(s["frames"]) for s in detail.get("stacks", [])]
            t["max_frames"] = max(depths) if depths else None
        traces.append(t)
    return traces


BYSTANDER_MS = 800


def stuck_run(server, repeats, n):
    """Requests stuck in one long GIL-holding C call: how many samples name
    the line that made the call, and where the rest went."""
    line = app_line("STUCK-CALL")
    out = []
    known_by = {r["id"] for r in server.profile()["requests"] if "/app/deep" in r["uri"]}
    known_stuck = {r["id"] for r in server.profile()["requests"] if "/app/stuck" in r["uri"]}
    for _ in range(repeats):
        before = sampler_block(server)
        # a bystander: another request of the same process, sleeping (GIL
        # released) through the stuck call; does it still get sampled?
        bystander = Concurrent(server, "/app/deep?depth=3&ms=%d&mode=sleep"
                               % BYSTANDER_MS, 1, timeout=60)
        time.sleep(0.05)
        body = json.loads(server.fetch_ok("/app/stuck?n=%d" % n, timeout=60).decode("utf-8"))
        bystander.join_ok(server)
        after = sampler_block(server)
        fresh = wait_new_kept(server, "/app/stuck", known_stuck)
        if not fresh:
            raise BenchError("server %s: the stuck request was not kept" % server.name)
        rec = fresh[-1]
        known_stuck.add(rec["id"])
        detail = request_detail(server, rec["id"])
        at_call = {"count": 0, "weight_ms": 0.0}
        leaves = {}
        for st in detail.get("stacks", []):
            fr = st["frames"]
            key = "%s:%s" % (fr[-1]["function"], fr[-1]["line"]) if fr else "(no frames)"
            agg = leaves.setdefault(key, [0, 0.0])
            agg[0] += st["count"]
            agg[1] += st["weight_ms"]
            if fr and fr[-1]["function"] == "view_stuck" and fr[-1]["line"] == line:
                at_call["count"] += st["count"]
                at_call["weight_ms"] += st["weight_ms"]
        top = sorted(leaves.items(), key=lambda kv: -kv[1][1])[:3]
        by = wait_new_kept(server, "/app/deep", known_by)
        by_rec = by[-1] if by else None
        if by_rec:
            known_by.add(by_rec["id"])
        out.append({"id": rec["id"], "call_ms": body["ms"], "duration_ms": rec["duration_ms"],
                    "samples": rec["samples"], "at_call": at_call, "line": line,
                    "top": top, "d": sampler_diff(before, after),
                    "bystander": {"duration_ms": by_rec["duration_ms"],
                                  "samples": by_rec["samples"]} if by_rec else None})
    return out


def part_rate(args, base_dir, servers_out):
    repeats = 2 if args.quick else 3
    stuck_n = 23 if args.quick else 25
    out = {"repeats": repeats, "rate": [], "versions": None, "stuck_n": stuck_n}
    servers = []
    for interval in ("10ms", "1ms"):
        for mode in ("nogil", "gil"):
            servers.append(BenchHttpd("rate-%s-%s" % (interval, mode), interval, args.module,
                                  base_dir, sampler=mode, threshold="100ms"))
    start_servers(servers, servers_out)
    out["versions"] = servers[0].fetch_ok("/app/version").decode()
    blocks = {srv.name: {"name": srv.name, "interval": srv.interval, "mode": srv.sampler,
                         "nominal": 1000.0 / _ms(srv.interval)} for srv in servers}
    for srv in servers:
        b = blocks[srv.name]
        s0 = sampler_block(srv)
        b["traces"] = rate_run(srv, "/app/cpu?ms=1000", "/app/cpu", repeats, with_stacks=True)
        b["cpu_phase"] = sampler_diff(s0, sampler_block(srv))
        for t in b["traces"]:
            log("  %s cpu 1s: %d samples in %.0f ms -> %.1f/s (nominal %.0f/s), max %s frames"
                % (srv.name, t["samples"], t["duration_ms"], t["per_s"], b["nominal"],
                   t["max_frames"]))
        if srv.interval == "1ms":
            s0 = sampler_block(srv)
            b["deep"] = rate_run(srv, "/app/deep?depth=30&ms=1000", "/app/deep", repeats,
                                 with_stacks=True)
            b["deep_phase"] = sampler_diff(s0, sampler_block(srv))
    for srv in servers:
        b = blocks[srv.name]
        b["stuck"] = stuck_run(srv, 2 if not args.quick else 1, stuck_n)
        for s in b["stuck"]:
            log("  %s stuck: regex %.0f ms, request %.0f ms, %d samples, %d at the call line "
                "(%.0f ms), top %s" % (srv.name, s["call_ms"], s["duration_ms"], s["samples"],
                                       s["at_call"]["count"], s["at_call"]["weight_ms"],
                                       s["top"]))
    for srv in servers:
        blocks[srv.name]["sampler"] = sampler_block(srv)
        blocks[srv.name]["problems"] = stop_server(srv)
        out["rate"].append(blocks[srv.name])
    out["where"] = [where_samples_land(args, base_dir, servers_out, mode)
                    for mode in ("nogil", "gil")]
    return out


MAX_DETAILS = 2000   # request pages read per endpoint in where_samples_land


def where_samples_land(args, base_dir, servers_out, mode="nogil"):
    """Under the overhead part's load (8 concurrent requests, one GIL), which
    stacks do the samples show?  Every request is kept (threshold 1ms) so
    their stacks can be read back."""
    srv = BenchHttpd("where10ms-%s" % mode, "10ms", args.module, base_dir, threshold="1ms",
                 extra="PyProfKeep 5000\nPyProfMemory 256M\n", sampler=mode)
    servers_out.append(srv)
    srv.start()
    log("started %s (PyProfSample /app 10ms, PyProfSlowThreshold 1ms) on port %d"
        % (srv.name, srv.port))
    duration = 2 if args.quick else 3
    result = {"duration": duration, "endpoints": [], "mode": mode}
    for path in ENDPOINTS:
        warm_up(srv, path)
        res = run_wrk(srv, path, duration)
        time.sleep(SETTLE_SECONDS)
        kept = [q for q in srv.profile()["requests"] if q["uri"].split("?")[0] == path]
        with_samples = [q for q in kept if q["samples"]]
        leaves, in_render, total = {}, 0, 0
        for q in with_samples[:MAX_DETAILS]:
            detail = request_detail(srv, q["id"])
            for stack in detail.get("stacks", []):
                frames = stack["frames"]
                key = ("%s:%s" % (frames[-1]["function"], frames[-1]["line"])
                       if frames else "(no frames)")
                leaves[key] = leaves.get(key, 0) + stack["count"]
                total += stack["count"]
                if any(f["function"] == "render_table" for f in frames):
                    in_render += stack["count"]
        top = sorted(leaves.items(), key=lambda kv: -kv[1])[:4]
        entry = {"path": path, "wrk_requests": res["requests"], "kept": len(kept),
                 "with_samples": len(with_samples),
                 "read": min(len(with_samples), MAX_DETAILS), "samples": total,
                 "in_render_table": in_render, "top_leaves": top}
        log("  %s %s: %d requests kept, %d with samples, %d samples, %d inside render_table, "
            "top leaves %s" % (mode, path, len(kept), len(with_samples), total, in_render, top))
        result["endpoints"].append(entry)
    result["sampler"] = sampler_block(srv)
    result["problems"] = stop_server(srv)
    return result


# -- part: memory ------------------------------------------------------------------------

def vm_rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class RssPoller:
    """VmRSS of some pids every `every` seconds, in a thread (bounded by stop())."""

    def __init__(self, pids, every=2.0):
        self.pids = pids
        self.every = every
        self.series = {p: [] for p in pids}
        self.t0 = time.monotonic()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            now = time.monotonic() - self.t0
            for p in self.pids:
                self.series[p].append((now, vm_rss_kb(p)))
            self.done.wait(self.every)

    def stop(self):
        self.done.set()
        self.thread.join(5)
        return self.series


def part_memory(args, base_dir, servers_out):
    """VmRSS of the child of a profiled server (10ms, every request kept) and,
    as the control, of a server without the module, over the same load:
    chunks of wrk alternate between them until each has served the target."""
    target = 20000 if args.quick else args.memory_requests
    chunk = 5 if args.quick else 10
    max_seconds = 900
    path = "/app/nap?ms=1"
    servers = [BenchHttpd("mem10ms", "10ms", args.module, base_dir, threshold="1ms"),
               BenchHttpd("mem-off", None, args.module, base_dir)]
    start_servers(servers, servers_out)
    versions = servers[0].fetch_ok("/app/version").decode()
    warm = 5000
    info = {}
    for srv in servers:
        warm_up(srv, path, count=warm)
    time.sleep(1)
    for srv in servers:
        kid = srv.child()
        if not kid:
            raise BenchError("server %s: expected one child, got %s" % (srv.name, srv.children()))
        info[srv.name] = {"kid": kid, "rss0": vm_rss_kb(kid), "requests": 0, "marks": [],
                          "store0": srv.profile().get("store", {}) if srv.profiled else None,
                          "sampler0": sampler_block(srv), "reqs0": location_requests(srv)}
    poller = RssPoller([info[srv.name]["kid"] for srv in servers], every=2.0)
    started = time.monotonic()
    try:
        while (any(info[srv.name]["requests"] < target for srv in servers)
               and time.monotonic() - started < max_seconds):
            for srv in servers:
                i = info[srv.name]
                if i["requests"] >= target:
                    continue
                res = run_wrk(srv, path, chunk)
                i["requests"] += res["requests"]
                i["marks"].append((time.monotonic() - poller.t0, i["requests"],
                                   vm_rss_kb(i["kid"])))
                log("  memory %-8s %7d requests, %6.0f req/s, VmRSS %s kB"
                    % (srv.name, i["requests"], res["rps"], i["marks"][-1][2]))
                if srv.child() != i["kid"]:
                    raise BenchError("server %s: the child changed during the run" % srv.name)
    finally:
        series = poller.stop()
    time.sleep(1)
    out = {"target": target, "warm": warm, "path": path, "chunk": chunk,
           "elapsed": time.monotonic() - started, "servers": [], "versions": versions}
    for srv in servers:
        i = info[srv.name]
        e = {"name": srv.name, "profiled": srv.profiled, "requests": i["requests"],
             "rss0": i["rss0"], "rss1": vm_rss_kb(i["kid"]), "marks": i["marks"],
             "series": series[i["kid"]]}
        if srv.profiled:
            e["store0"] = i["store0"]
            e["store1"] = srv.profile().get("store", {})
            e["sampler"] = sampler_diff(i["sampler0"], sampler_block(srv))
            reqs1 = location_requests(srv)
            e["server_requests"] = (reqs1 - i["reqs0"]) if i["reqs0"] is not None else None
        e["problems"] = stop_server(srv)
        out["servers"].append(e)
    return out


# -- report --------------------------------------------------------------------------------

def fmt(value, spec="%.2f", none="n/a"):
    return spec % value if value is not None else none


def _dpkg_version(pkg):
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=10).stdout.decode().strip()
        return out or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(versions):
    env = {}
    env["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    env["kernel"] = platform.release()
    env["nproc"] = os.cpu_count()
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    env["cpu"] = model
    env["mem"] = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    env["mem"] = "%.1f GiB" % (int(line.split()[1]) / 1024.0 / 1024.0)
    except (OSError, ValueError):
        pass
    try:
        env["apache"] = subprocess.run([APACHE, "-v"], env=CLEAN_ENV, stdout=subprocess.PIPE,
                                       timeout=10).stdout.decode().splitlines()[0].split(":", 1)[1].strip()
    except Exception:
        env["apache"] = "unknown"
    env["embedded"] = versions.replace("\n", ", ").strip(", ") if versions else "unknown"
    try:
        env["wrk"] = subprocess.run(["wrk", "--version"], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, timeout=10
                                    ).stdout.decode().split("[")[0].strip()
    except Exception:
        env["wrk"] = "unknown"
    env["yappi"] = _dpkg_version("python3-yappi") or "not installed"
    try:
        with open("/proc/loadavg") as f:
            env["loadavg"] = " ".join(f.read().split()[:3])
    except OSError:
        env["loadavg"] = "?"
    return env


def torn_share(s):
    """Share of sample attempts dropped as torn, from a sampler block or diff."""
    if not s:
        return None
    torn, samples = s.get("torn") or 0, s.get("samples") or 0
    return torn / float(torn + samples) if torn + samples else None


def torn_warning(name, s, threshold=0.05):
    share = torn_share(s)
    if share is None or share < threshold:
        return None
    return ("**Warning: %s dropped %.0f%% of its samples as torn** (torn %d, samples %d): its "
            "samples and where they land do not describe a working sampler, though its CPU "
            "figures still include every (wasted) walk." % (name, share * 100, s.get("torn"),
                                                             s.get("samples")))


def pct(ratio):
    return "%+.1f%%" % ((ratio - 1) * 100) if ratio is not None else "n/a"


TARGETS = {"p100ms": 1.002, "p10ms": 1.01, "p1ms": 1.05}


def render_overhead(args, ov):
    rows = summarise(ov)
    off_cpu = {r["path"]: r["cpu"] for r in rows if r["variant"] == "off"}
    L = ["## Overhead: CPU time and throughput per request, mod_pyprof beside its peers", ""]
    L.append("%d servers run at once (event MPM, 1 child x 8 threads, mod_wsgi embedded, "
             "no access log), loaded one at a time, interleaved `%s` for %d rounds of "
             "`wrk -t2 -c8 -d%ds` per endpoint, each after %d warm-up requests (ab -c4). "
             "CPU = utime+stime of the server's child process (all threads: the sampler thread "
             "and the peers' own threads included) per request. Ratios are medians over rounds "
             "of variant / `off` of the same round and endpoint; range = min..max of those "
             "per-round ratios; \"CPU µs/req over off\" is the median per-round difference. "
             "`/app/render` is a 50-row table, ~300 Python calls a row (~15k calls a request); "
             "`/app/render_sleep` is the same plus `time.sleep(0.002)`."
             % (len(ov["variants"]), ", ".join(ov["variants"]), args.rounds, args.duration,
                WARMUP_REQUESTS))
    L.append("")
    L.append("| variant | what |")
    L.append("|---|---|")
    for v in VARIANTS:
        if v.name in ov["variants"]:
            what = v.what % _dpkg_version("python3-yappi") if "%s" in v.what else v.what
            L.append("| %s | %s |" % (v.name, what))
    L.append("")
    L.append("| variant | endpoint | req/s | req/s vs off | CPU ms/req | CPU vs off | CPU ratio range "
             "| CPU µs/req over off | samples/req | sampler thread CPU µs/req | sampler CPU % of off |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        own = r.get("sampler_us_per_req")
        base = off_cpu.get(r["path"])
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["variant"], r["path"], fmt(r["rps"], "%.1f"), fmt(r["rps_ratio"], "%.3f"),
            fmt(r["cpu"], "%.3f"), fmt(r["cpu_ratio"], "%.3f"),
            "%s..%s" % (fmt(r["cpu_ratio_min"], "%.3f"), fmt(r["cpu_ratio_max"], "%.3f")),
            fmt(r["cpu_diff_us"], "%+.1f"),
            fmt(r.get("samples_per_req"), "%.3f", "-"),
            fmt(own, "%.2f", "-"),
            fmt(own / (base * 1000.0) * 100.0 if own is not None and base else None,
                "%.2f%%", "-")))
    L.append("")
    spreads = {}
    for path in ENDPOINTS:
        base = [r["cpu_ms_per_req"] for r in ov["results"][("off", path)] if r["cpu_ms_per_req"]]
        if len(base) >= 2:
            mid = statistics.median(base)
            spreads[path] = ((1 - min(base) / mid) * 100, (max(base) / mid - 1) * 100)
            L.append("- noise floor, `off` alone on %s: CPU ms/req %.3f..%.3f over rounds "
                     "(%.1f%% below to %.1f%% above its median)."
                     % (path, min(base), max(base), spreads[path][0], spreads[path][1]))
    L.append("")
    # what this means, from the numbers
    by = {(r["variant"], r["path"]): r for r in rows}
    text = []
    if spreads:
        worst = max(max(v) for v in spreads.values())
        text.append("The `off` server alone moves by up to %.1f%% from round to round, so "
                    "differences of a few percent between variants are at or below the noise "
                    "floor of this shared 2-core machine (other jobs ran at the same time: see "
                    "the load averages); the paired per-round ratios and their ranges are the "
                    "fair comparison, and a ratio range that contains 1.000 means \"not "
                    "distinguishable from off here\"." % worst)
    verdicts = []
    for name, limit in TARGETS.items():
        parts = []
        for path in ENDPOINTS:
            r = by.get((name, path))
            if not r or r["cpu_ratio"] is None:
                continue
            ok = "meets" if r["cpu_ratio"] <= limit else "misses"
            within = (r["cpu_ratio_min"] is not None and r["cpu_ratio_min"] <= 1.0
                      <= r["cpu_ratio_max"])
            parts.append("%s %s (%s, range %s..%s%s)" % (
                path, pct(r["cpu_ratio"]), ok, fmt(r["cpu_ratio_min"], "%.3f"),
                fmt(r["cpu_ratio_max"], "%.3f"), ", includes 1.000" if within else ""))
        if parts:
            verdicts.append("`%s` (target %s): %s" % (name, pct(limit), "; ".join(parts)))
    if verdicts:
        text.append("Against the issue's targets, by median CPU ratio: " + ". ".join(verdicts)
                    + ".")
    own = []
    for name in ("p100ms", "p10ms", "p1ms", "p10ms-gil"):
        for path in ENDPOINTS:
            r = by.get((name, path))
            if r and r.get("sampler_us_per_req") is not None and off_cpu.get(path):
                own.append("%s %s %.2f%%" % (name, path, r["sampler_us_per_req"] /
                                                (off_cpu[path] * 1000) * 100))
    if own:
        text.append("The sampler thread's own CPU, which the module counts exactly and no noise "
                    "touches, is the floor of the module's cost: " + ", ".join(own) + " of "
                    "`off`'s CPU per request. Anything measured above that is the cost inside "
                    "the request threads (registration, the store) plus noise.")
    peers = []
    for name in ("cprofile", "yappi", "pysampler"):
        for path in ENDPOINTS:
            r = by.get((name, path))
            if r and r["cpu_ratio"] is not None:
                peers.append("%s %s %s (range %s..%s)" % (
                    name, path, pct(r["cpu_ratio"]), fmt(r["cpu_ratio_min"], "%.3f"),
                    fmt(r["cpu_ratio_max"], "%.3f")))
    if peers:
        text.append("The peers, same load and same noise: " + "; ".join(peers) + ".")
    warnings = [w for w in (torn_warning(n, b) for n, b in ov["samplers"].items()) if w]
    L.append("**What this means.** " + " ".join(text + warnings))
    L.append("")
    L.append("Latency (wrk, median over rounds of each round's percentile):")
    L.append("")
    L.append("| variant | endpoint | p50 ms | p99 ms |")
    L.append("|---|---|---:|---:|")
    for r in rows:
        L.append("| %s | %s | %s | %s |" % (r["variant"], r["path"], fmt(r["p50"]), fmt(r["p99"])))
    L.append("")
    L.append("Idle CPU of each server's child over %d quiet seconds (all up, none loaded; "
             "/proc/PID/task/*/schedstat): " % ov["idle_seconds"]
             + ", ".join("%s %s µs/s" % (k, fmt(v, "%.1f")) for k, v in ov["idle"].items())
             + ". The Python sampler wakes every 10 ms even when idle.")
    L.append("")
    if ov["samplers"]:
        L.append("Sampler counters at the end of the run (`/server-profile?format=json` "
                 "`sampler`, cumulative over warm-up and all rounds; cost quantiles come from a "
                 "log2 histogram, so they are bucket mid-points, resolution x1.4):")
        L.append("")
        L.append("| variant | mode | samples | ticks | cpu_s | sample_cost_p50_us | "
                 "sample_cost_p99_us | gil_wait_s | walk_s | threads_missing | torn |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, s in ov["samplers"].items():
            s = s or {}
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, s.get("mode"), s.get("samples"), s.get("ticks"),
                fmt(s.get("cpu_s"), "%.3f"), fmt(s.get("sample_cost_p50_us")),
                fmt(s.get("sample_cost_p99_us")), fmt(s.get("gil_wait_s"), "%.3f"),
                fmt(s.get("walk_s"), "%.3f"), s.get("threads_missing"), s.get("torn")))
        L.append("")
    if ov.get("peers"):
        L.append("Peer profilers' own state at the end (app.py `/app/bench_profiler`): "
                 + "; ".join("%s %s" % (k, json.dumps(v, sort_keys=True))
                             for k, v in ov["peers"].items()))
        L.append("")
    L.append("<details><summary>Per-round CPU ms/req (req/s)</summary>")
    L.append("")
    L.append("| variant | endpoint | " + " | ".join("round %d" % i for i in range(1, args.rounds + 1)) + " |")
    L.append("|---|---|" + "---:|" * args.rounds)
    for path in ENDPOINTS:
        for name in ov["variants"]:
            cells = ["%s (%.0f)" % (fmt(r["cpu_ms_per_req"], "%.3f"), r["rps"])
                     for r in ov["results"][(name, path)]]
            L.append("| %s | %s | %s |" % (name, path, " | ".join(cells)))
    L.append("")
    L.append("</details>")
    L.append("")
    L += render_problems(ov["problems"].items())
    return L


def render_problems(items):
    items = [(n, p) for n, p in items if p]
    if not items:
        return []
    L = ["Error-log lines at error level or worse:", ""]
    for n, p in items:
        for line in p[:10]:
            L.append("    %s: %s" % (n, line))
    L.append("")
    return L


def render_accuracy(acc):
    L = ["## Accuracy: a known split of time across four functions", ""]
    L.append("`/app/split?total=%d`: four functions called one after the other, nominally "
             "10/20/30/40 %% of the request: `split_cpu_10` and `split_cpu_30` spin in an inline "
             "Python loop until their thread has used 40 / 120 ms of CPU, `split_sleep_20` and "
             "`split_sleep_40` sleep 80 / 160 ms. Four servers (1 child x 8 threads) take one "
             "request at a time, interleaved, %d requests each (%.0f s in all), until the nogil "
             "10ms server had >= %d samples. **Truth** = the app's own perf_counter wall time of "
             "each function summed over the requests (CPU-bound functions take longer than their "
             "CPU budget when the machine is busy, so this differs from the nominal split). "
             "mod_pyprof's shares come from the location aggregate "
             "(`/server-profile/location?path=/app&format=json`): the stacks passing through "
             "`view_split`, attributed to their leaf function, by `weight_ms` (the wall time each "
             "sample stands for) and, for comparison, by sample count. The Python sampler "
             "(app.py `PySampler`, 10 ms) counts stacks; its weight column uses the wall time "
             "since its previous tick."
             % (SPLIT_TOTAL_MS, acc["requests"], acc["elapsed"], acc["target"]))
    L.append("")
    rows = acc["rows"]
    names = [f for f, _, _ in SPLIT_FUNCS]
    L.append("| server | shares | " + " | ".join("`%s` (%s)" % (f, k) for f, _, k in SPLIT_FUNCS)
             + " | max error vs truth (pp) | samples |")
    L.append("|---|---|" + "---:|" * (len(names) + 2))
    L.append("| | nominal | " + " | ".join("%d" % p for _, p, _ in SPLIT_FUNCS) + " | | |")
    for r in rows:
        L.append("| %s | truth (app timing) | %s | | |" % (
            r["name"], " | ".join(fmt(r["truth"][f], "%.1f") for f in names)))
        L.append("| %s | **by weight** | %s | **%s** | %d |" % (
            r["name"], " | ".join(fmt(r["by_weight"][f], "%.1f") for f in names),
            fmt(r["err_weight"], "%.2f"), r["samples"]))
        L.append("| %s | by count | %s | %s | |" % (
            r["name"], " | ".join(fmt(r["by_count"][f], "%.1f") for f in names),
            fmt(r["err_count"], "%.2f")))
    L.append("")
    L.append("Weight of samples inside `view_split` but outside the four functions: " + ", ".join(
        "%s %s" % (r["name"], fmt(r["other_weight_pct"], "%.2f%%")) for r in rows) + ".")
    L.append("")
    L.append("Max error against the *nominal* split by weight (how far the machine's load "
             "moved the truth): " + ", ".join(
                 "%s %s pp" % (r["name"], fmt(r["err_weight_nominal"], "%.2f")) for r in rows)
             + ".")
    L.append("")
    text = []
    for r in rows:
        ok = r["err_weight"] is not None and r["err_weight"] <= 3.0
        text.append("%s: %s pp by weight (%s the 3-point target), %s pp by count, %d samples"
                    % (r["name"], fmt(r["err_weight"], "%.2f"), "within" if ok else "outside",
                       fmt(r["err_count"], "%.2f"), r["samples"]))
    L.append("**What this means.** " + "; ".join(text) + ". With ~1,000 samples the "
             "statistical error of one share p is about sqrt(p(1-p)/n) ≈ 1.5 points at p = 0.4, "
             "so errors of 1-2 points are sampling noise, not bias. A count-based share is "
             "biased wherever samples are not evenly spaced in time: a sampler that needs the "
             "GIL (gil mode, the Python sampler) gets it late while a CPU-bound function holds "
             "it (up to the 5 ms switch interval), so CPU-bound functions get fewer samples per "
             "second than sleeping ones; weighting each sample by the wall time it stands for "
             "removes that bias, which is why mod_pyprof reports weights.")
    L.append("")
    L += render_problems(acc["problems"].items())
    return L


def render_sampler(sm):
    cells = sm["cells"]
    L = ["## Sampler micro-benchmark: cost per sample", ""]
    L.append("A fresh server per cell (`PyProfSample /app 1ms`, `PyProfMaxDepth 1024`), the "
             "sampler counters diffed around the load. Load: **1 thread** = one "
             "`/app/deep?depth=D&ms=1000` (recurse D frames, then a pure-Python busy loop for "
             "1 s of thread CPU); **8 threads** = 8 concurrent `/app/deep?depth=D&ms=250` (busy, "
             "contending for the GIL; 1 child x 8 threads); **64 threads** = 64 concurrent "
             "`/app/deep?depth=D&ms=1500&mode=sleep` (recurse, then sleep) on a server with "
             "`ThreadsPerChild 64`. frames = deepest stack recorded. **walk µs/sample** = "
             "walk_s / samples: the time spent reading stacks (nogil: process_vm_readv copies "
             "and decoding, no GIL; gil: walking with the GIL held, the app stalled), per stack; "
             "p50/p99 are the module's per-tick histogram (walk time / stacks in that tick, "
             "log2 buckets, x1.4 resolution; cumulative since the fresh server started). "
             "**GIL wait ms/tick** = gil_wait_s / ticks, reported apart from the walk (always 0 "
             "in nogil). **sampler CPU µs/sample** = the sampler thread's CPU per stack, "
             "including interning the stack into the shared store. samples/s per thread vs the "
             "nominal 1,000.")
    L.append("")
    L.append("| threads | depth | frames | mode | samples | ticks | walk µs/sample | p50 µs | "
             "p99 µs | sampler CPU µs/sample | GIL wait s | GIL wait ms/tick | torn | "
             "samples/s per thread |")
    L.append("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in cells:
        d = c["d"]
        L.append("| %d | %d | %d | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            c["threads"], c["depth"], c["frames"], c["mode"], d["samples"], d["ticks"],
            fmt(c["walk_us"]), fmt(d["sample_cost_p50_us"]), fmt(d["sample_cost_p99_us"]),
            fmt(c["cpu_us"]), fmt(d["gil_wait_s"], "%.3f"), fmt(c["gil_wait_ms_per_tick"], "%.3f"),
            d.get("torn"), fmt(c["rate_per_thread"], "%.0f")))
    L.append("")
    get = {(c["mode"], c["threads"], c["depth"]): c for c in cells}
    text = []
    c30 = get.get(("nogil", 1, 30))
    if c30:
        text.append("Walk cost for a ~30-frame stack, one busy thread, nogil: %s µs mean, "
                    "p50 bucket %s µs (target: median under 5 µs excluding GIL wait)."
                    % (fmt(c30["walk_us"]), fmt(c30["d"]["sample_cost_p50_us"])))
    g30 = get.get(("gil", 1, 30))
    if g30:
        text.append("In gil mode the walk itself costs %s µs, but each tick first waits %s ms "
                    "for the GIL on a busy thread (the switch interval), which is what caps "
                    "its rate at %s samples/s."
                    % (fmt(g30["walk_us"]), fmt(g30["gil_wait_ms_per_tick"], "%.2f"),
                       fmt(g30["rate_per_thread"], "%.0f")))
    a, b = get.get(("nogil", 1, 10)), get.get(("nogil", 1, 1000))
    if a and b and a["walk_us"] and b["walk_us"] and b["frames"] > a["frames"]:
        text.append("From 10 to 1,000 frames the nogil walk grows from %s to %s µs "
                    "(%.3f µs per extra frame) and the whole sample (with interning) from %s to "
                    "%s µs." % (fmt(a["walk_us"]), fmt(b["walk_us"]),
                                (b["walk_us"] - a["walk_us"]) / (b["frames"] - a["frames"]),
                                fmt(a["cpu_us"]), fmt(b["cpu_us"])))
    m = get.get(("nogil", 64, 30))
    if m:
        text.append("With 64 requests in flight (30 frames) a nogil sample costs %s µs walking "
                    "and %s µs of sampler CPU, and each request got %s samples/s of 1,000."
                    % (fmt(m["walk_us"]), fmt(m["cpu_us"]), fmt(m["rate_per_thread"], "%.0f")))
    text.append("walk_s is wall time: on a loaded 2-core machine the sampler thread is "
                "sometimes preempted in the middle of a walk (each process_vm_readv is a "
                "syscall), which inflates a cell's mean far above its p50 while its CPU per "
                "sample stays low; compare the sampler CPU column. Single cells are single runs "
                "on a shared machine.")
    for c in cells:
        w_torn = torn_warning("cell %s/%d threads/depth %d" % (c["mode"], c["threads"],
                                                               c["depth"]), c["d"])
        if w_torn:
            text.append(w_torn)
    L.append("**What this means.** " + " ".join(text))
    L.append("")
    L += render_problems(("%s/%dt/d%d" % (c["mode"], c["threads"], c["depth"]), c["problems"])
                         for c in cells)
    return L


def render_scaling(sc):
    L = ["## Scaling: sampler CPU per second as requests in flight grow", ""]
    L.append("One server per interval (`ThreadsPerChild 72`: 64 held requests plus room for "
             "reading `/server-profile`; nogil), k concurrent "
             "`/app/deep?depth=20&mode=sleep` requests (~24 frames, sleeping) held in flight; "
             "after all k show in the store, %.0f s window: sampler CPU from the `sampler` "
             "counters (cpu_s) and the whole child's CPU from /proc/PID/task/*/schedstat (the "
             "sleeping requests use none, so it is the sampler plus Apache's idle threads). "
             "Levels interleaved across the two servers." % sc["window"])
    L.append("")
    L.append("| interval | in flight | sampler CPU ms/s | child CPU ms/s | samples/s | "
             "% of nominal | ticks/s | sampler CPU µs/sample | torn |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for iv in ("10ms", "1ms"):
        for r in sc["rows"]:
            if r["interval"] != iv:
                continue
            L.append("| %s | %d | %.3f | %s | %.0f | %s | %.0f | %s | %s |" % (
                iv, r["inflight"], r["sampler_cpu_ms_per_s"], fmt(r["child_cpu_ms_per_s"], "%.3f"),
                r["samples_per_s"], fmt(r["achieved_pct"], "%.0f%%", "-"), r["ticks_per_s"],
                fmt(r["cpu_us_per_sample"]), r["torn"]))
    L.append("")
    get = {(r["interval"], r["inflight"]): r for r in sc["rows"]}
    text = []
    for iv in ("10ms", "1ms"):
        lo, hi = get.get((iv, 1)), get.get((iv, 64))
        if lo and hi:
            text.append("At %s the sampler uses %.3f ms CPU per second with 1 request in flight "
                        "and %.3f ms/s with 64 (%.2f%% of one core), %s%% of the nominal rate "
                        "at 64." % (iv, lo["sampler_cpu_ms_per_s"], hi["sampler_cpu_ms_per_s"],
                                    hi["sampler_cpu_ms_per_s"] / 10.0,
                                    fmt(hi["achieved_pct"], "%.0f")))
    text.append("The cost is per sample: it grows linearly with requests in flight × rate, "
                "and the per-sample cost falls a little as more stacks share one tick (one "
                "wake-up, one HEAD_LOCK, one pass over the thread list).")
    L.append("**What this means.** " + " ".join(text))
    L.append("")
    L += render_problems(sc["problems"].items())
    return L


def render_rate(rate):
    L = ["## Achieved sample rate: nogil vs gil", ""]
    L.append("A server per interval and mode (1 child x 8 threads), %d sequential `GET "
             "/app/cpu?ms=1000` (pure-Python busy loop, 1 s of thread CPU), numbers from the kept "
             "traces; samples/s = samples / duration. With the GIL the sampler can only read "
             "stacks when the busy thread hands the GIL over, after the 5 ms switch interval, so "
             "gil mode tops out near 1000/(interval + 5 ms) per second (~167/s at 1ms); the nogil "
             "sampler copies the frames with process_vm_readv while the thread runs on."
             % rate["repeats"])
    L.append("")
    L.append("| interval | mode | nominal /s | request | duration ms | cpu ms | samples | "
             "samples/s | achieved / nominal | frames |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b in rate["rate"]:
        for i, t in enumerate(b["traces"], 1):
            L.append("| %s | %s | %.0f | %d | %.1f | %.1f | %d | %.1f | %.2f | %s |" % (
                b["interval"], b["mode"], b["nominal"], i, t["duration_ms"], t["cpu_ms"],
                t["samples"], t["per_s"], t["per_s"] / b["nominal"], t.get("max_frames")))
    L.append("")
    L.append("Sampler counters over each phase (diffs): the busy-loop requests above, and for "
             "the 1ms servers %d `GET /app/deep?depth=30&ms=1000` (~34 frames):" % rate["repeats"])
    L.append("")
    L.append("| server | phase | samples | ticks | walk µs/sample | sampler CPU µs/sample | "
             "GIL wait s | GIL wait ms/tick | torn | deep: samples/s per request |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b in rate["rate"]:
        phases = [("cpu", b["cpu_phase"], None)]
        if b.get("deep_phase"):
            phases.append(("deep30", b["deep_phase"],
                           median(t["per_s"] for t in b["deep"])))
        for name, d, per in phases:
            s = d["samples"] or 0
            L.append("| %s | %s | %d | %d | %s | %s | %.3f | %s | %s | %s |" % (
                b["name"], name, s, d["ticks"],
                fmt(d["walk_s"] * 1e6 / s if s else None), fmt(d["cpu_s"] * 1e6 / s if s else None),
                d["gil_wait_s"], fmt(d["gil_wait_s"] * 1e3 / d["ticks"] if d["ticks"] else None,
                                     "%.2f"), d.get("torn"), fmt(per, "%.1f", "-")))
    L.append("")
    by = {(b["interval"], b["mode"]): b for b in rate["rate"]}
    text = []
    for iv in ("1ms", "10ms"):
        ng, gl = by.get((iv, "nogil")), by.get((iv, "gil"))
        if ng and gl:
            text.append("At %s nogil achieves %s of nominal (median), gil %s."
                        % (iv, fmt(median(t["per_s"] for t in ng["traces"]) / ng["nominal"] * 100,
                                   "%.0f%%"),
                           fmt(median(t["per_s"] for t in gl["traces"]) / gl["nominal"] * 100,
                               "%.0f%%")))
    text.append("Target: at least 90% of nominal at 1 ms on a CPU-bound request.")
    slow = [(t["duration_ms"] / t["cpu_ms"], b["name"]) for b in rate["rate"]
            for t in b["traces"] if t["cpu_ms"]]
    if slow and max(slow)[0] > 1.3:
        text.append("Some 1-s-of-CPU requests took up to %.1f times their CPU time in wall time "
                    "(%s): the machine was overloaded at that moment, the sampler thread then "
                    "also waits for a CPU, and a tick that comes late is skipped rather than "
                    "made up, so those rows understate what the sampler achieves on a quiet "
                    "machine (the weights still cover the time)." % max(slow))
    for b in rate["rate"]:
        for phase in ("cpu_phase", "deep_phase"):
            w_torn = torn_warning("%s (%s)" % (b["name"], phase.split("_")[0]), b.get(phase))
            if w_torn:
                text.append(w_torn)
    L.append("**What this means.** " + " ".join(text))
    L.append("")
    # the stuck call
    line = None
    for b in rate["rate"]:
        for s in b.get("stuck", []):
            line = s["line"]
    L.append("### A request stuck in one long GIL-holding C call")
    L.append("")
    L.append("`GET /app/stuck?n=%d`: `_STUCK_RE.match('a' * %d + 'b')` with `_STUCK_RE = "
             "re.compile(r'(a+)+$')` — catastrophic backtracking inside the C regex engine, "
             "which holds the GIL throughout and runs no Python frame. The call is app.py line "
             "%s in `view_stuck`. \"at the call line\" = samples (and their weight) whose leaf "
             "frame is `view_stuck:%s`; top leaves by weight show where the rest went."
             % (rate["stuck_n"], rate["stuck_n"], line, line))
    L.append("")
    L.append("| interval | mode | regex ms | request ms | samples | at the call line | weight at "
             "the call line ms | share of the call | GIL wait s during request | bystander: ms, "
             "samples | top leaves by weight (count, ms) |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for b in rate["rate"]:
        for s in b.get("stuck", []):
            by = s.get("bystander")
            L.append("| %s | %s | %.0f | %.0f | %d | %d | %.0f | %s | %.3f | %s | %s |" % (
                b["interval"], b["mode"], s["call_ms"], s["duration_ms"], s["samples"],
                s["at_call"]["count"], s["at_call"]["weight_ms"],
                fmt(s["at_call"]["weight_ms"] / s["call_ms"] * 100 if s["call_ms"] else None,
                    "%.0f%%"), s["d"]["gil_wait_s"] if s.get("d") else 0.0,
                "%.0f, %d" % (by["duration_ms"], by["samples"]) if by else "-",
                ", ".join("`%s` %d, %.0f" % (k, v[0], v[1]) for k, v in s["top"])))
    L.append("")
    text = []
    for iv in ("10ms", "1ms"):
        ng, gl = by.get((iv, "nogil")), by.get((iv, "gil"))
        if ng and gl and ng.get("stuck") and gl.get("stuck"):
            def bys(b):
                v = [s["bystander"]["samples"] for s in b["stuck"] if s.get("bystander")]
                return median(v)
            text.append("At %s nogil takes %s samples during the call, all on the call line "
                        "(median %s); gil takes %s in all (median) and the sleeping bystander "
                        "request gets %s samples with nogil vs %s with gil."
                        % (iv, fmt(median(s["samples"] for s in ng["stuck"]), "%.0f"),
                           fmt(median(s["at_call"]["count"] for s in ng["stuck"]), "%.0f"),
                           fmt(median(s["samples"] for s in gl["stuck"]), "%.0f"),
                           fmt(bys(ng), "%.0f"), fmt(bys(gl), "%.0f")))
    text.append("The nogil sampler reads the frame chain while the C call runs: the innermost "
                "Python frame is the caller, stopped at its CALL instruction, so every sample "
                "names the line that made the call. The GIL sampler is blocked for the whole "
                "call (its GIL wait is the call's length): it takes no sample during the call. "
                "In 3.11 the eval loop checks for a GIL drop request at the end of the CALL "
                "instruction, so gil mode's one late sample still lands on the call line and "
                "its weight covers the call: the *total* is right by weight, but only from a "
                "single sample, and meanwhile no other request of the process is sampled "
                "(the bystander column).")
    L.append("**What this means.** " + " ".join(text))
    L.append("")
    for w in rate["where"]:
        L.append("### Where the samples land under concurrent load (%s)" % w["mode"])
        L.append("")
        L.append("Fresh server at 10ms, `PyProfSampler %s`, `PyProfSlowThreshold 1ms` (every "
                 "request kept), `wrk -t2 -c8 -d%ds` per endpoint as in the overhead part, then "
                 "every kept trace's stacks read back. `render_table` is where both views spend "
                 "nearly all their CPU." % (w["mode"], w["duration"]))
        L.append("")
        L.append("| endpoint | kept requests | with >= 1 sample | samples | samples inside "
                 "render_table | most frequent leaf frames (function:line count) |")
        L.append("|---|---:|---:|---:|---:|---|")
        for e in w["endpoints"]:
            L.append("| %s | %d | %d | %d | %d | %s |" % (
                e["path"], e["kept"], e["with_samples"], e["samples"], e["in_render_table"],
                ", ".join("`%s` %d" % kv for kv in e["top_leaves"]) or "-"))
        L.append("")
        s = w["sampler"] or {}
        L.append("Sampler block of that server: mode %s, ticks %s, samples %s, threads_missing "
                 "%s, gil_wait_s %s, torn %s." % (s.get("mode"), s.get("ticks"), s.get("samples"),
                                                 s.get("threads_missing"),
                                                 fmt(s.get("gil_wait_s"), "%.3f"), s.get("torn")))
        L.append("")
        w_torn = torn_warning("where10ms-%s" % w["mode"], s)
        if w_torn:
            L.append(w_torn)
            L.append("")
    ws = {w["mode"]: w for w in rate["where"]}
    if "nogil" in ws and "gil" in ws:
        def share(w, path):
            for e in w["endpoints"]:
                if e["path"] == path and e["samples"]:
                    return e["in_render_table"] * 100.0 / e["samples"]
            return None
        L.append("**What this means.** Share of samples inside `render_table` on /app/render: "
                 "nogil %s, gil %s; on /app/render_sleep: nogil %s, gil %s. The GIL sampler "
                 "only gets the GIL when a request thread drops it, which is mostly at a "
                 "`time.sleep` or at the end of a request, so it over-represents those places; "
                 "the nogil sampler reads the stacks where they are."
                 % (fmt(share(ws["nogil"], "/app/render"), "%.0f%%"),
                    fmt(share(ws["gil"], "/app/render"), "%.0f%%"),
                    fmt(share(ws["nogil"], "/app/render_sleep"), "%.0f%%"),
                    fmt(share(ws["gil"], "/app/render_sleep"), "%.0f%%")))
        L.append("")
    L += render_problems([(b["name"], b["problems"]) for b in rate["rate"]] +
                         [("where10ms-" + w["mode"], w["problems"]) for w in rate["where"]])
    return L


def render_memory(mem):
    L = ["## Memory: child RSS and store size over many profiled requests", ""]
    L.append("Two servers (1 child x 8 threads): **mem10ms** at `PyProfSample /app 10ms` (nogil) "
             "with `PyProfSlowThreshold 1ms`, so every request runs registered with the sampler, "
             "many are sampled, and each is kept as a trace (the kept-trace ring turns over many "
             "times); **mem-off** without the module, as the control. Load: `%s` (sleeps 1 ms), "
             "`wrk -t2 -c8` in %d s chunks alternating between the two servers until each has "
             "served %d requests (bounded at 15 min). VmRSS of each child from /proc/PID/status "
             "every 2 s; start = after %d warm-up requests."
             % (mem["path"], mem["chunk"], mem["target"], mem["warm"]))
    L.append("")
    servers = mem["servers"]
    L.append("| server | requests | start VmRSS kB | at 25 % | at 50 % | at 75 % | end VmRSS kB | "
             "end - start kB | 2nd half kB | max kB |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for e in servers:
        marks = e["marks"]

        def at(frac):
            want = frac * e["requests"]
            for t, req, rss in marks:
                if req >= want:
                    return rss
            return None
        vals = [v for _, v in e["series"] if v]
        mid = at(0.5)
        L.append("| %s | %d | %s | %s | %s | %s | %s | %+d | %s | %s |" % (
            e["name"], e["requests"], e["rss0"], at(0.25), mid, at(0.75), e["rss1"],
            (e["rss1"] or 0) - (e["rss0"] or 0),
            "%+d" % ((e["rss1"] or 0) - mid) if mid else "n/a", max(vals) if vals else "n/a"))
    L.append("")
    prof = [e for e in servers if e["profiled"]]
    ctrl = [e for e in servers if not e["profiled"]]
    for e in prof:
        s0, s1 = e["store0"], e["store1"]
        keys = ["memory", "arena_used", "arena_size", "slots", "keep", "frames_capacity",
                "nodes_capacity", "traces_kept", "traces_evicted", "slots_full", "frames_full",
                "nodes_full", "aggregate_full"]
        L.append("| store of %s (JSON `store`) | start | end |" % e["name"])
        L.append("|---|---:|---:|")
        for k in keys:
            if k in s0 or k in s1:
                L.append("| %s | %s | %s |" % (k, s0.get(k), s1.get(k)))
        L.append("")
        d = e["sampler"] or {}
        L.append("Sampler of %s over the run: %s samples, %s ticks, %.3f s CPU, torn %s; the "
                 "location counted %s requests." % (e["name"], d.get("samples"), d.get("ticks"),
                                                    d.get("cpu_s") or 0, d.get("torn"),
                                                    e.get("server_requests")))
        L.append("")
    L.append("<details><summary>VmRSS every 2 s (seconds: kB)</summary>")
    L.append("")
    for e in servers:
        L.append("- %s: %s" % (e["name"], ", ".join("%.0f: %s" % (t, v)
                                                    for t, v in e["series"][::3])))
    L.append("")
    L.append("</details>")
    L.append("")
    text = []
    cdelta = (((ctrl[0]["rss1"] or 0) - (ctrl[0]["rss0"] or 0)) / 1024.0) if ctrl else None
    for e in prof:
        delta = ((e["rss1"] or 0) - (e["rss0"] or 0)) / 1024.0
        text.append("The profiled child's RSS moved by %+.2f MB over %d requests (target: within "
                    "2 MB)." % (delta, e["requests"]))
        if cdelta is not None:
            text.append("The control child without the module, same load, moved by %+.2f MB: "
                        "the module's own share is %+.2f MB (%s the 2 MB target); the rest is "
                        "Apache, mod_wsgi and Python growing their heaps the same way with or "
                        "without the module." % (cdelta, delta - cdelta,
                                                 "within" if abs(delta - cdelta) <= 2 else
                                                 "outside"))
        s0, s1 = e["store0"], e["store1"]
        fixed = s0.get("memory") == s1.get("memory") and s0.get("arena_size") == s1.get("arena_size")
        text.append("The shared store is allocated once at startup and its size %s (%s bytes); "
                    "`arena_used` (%s -> %s) is the frame-text arena filling with the few "
                    "distinct frames of this app, inside that fixed size."
                    % ("stayed fixed" if fixed else "CHANGED", s1.get("memory"),
                       s0.get("arena_used"), s1.get("arena_used")))
    halves = []
    for e in servers:
        mid = None
        for t, req, rss in e["marks"]:
            if req >= 0.5 * e["requests"]:
                mid = rss
                break
        if mid is not None and e["rss1"]:
            halves.append("%s %+d kB" % (e["name"], e["rss1"] - mid))
    text.append("Over the second half of the requests: %s. Both children still creep up "
                "slowly, so only a longer run could tell a warm-up from a slow leak; a gap "
                "of a few hundred kB between them is within the scatter of the 2 s series."
                % ", ".join(halves))
    L.append("**What this means.** " + " ".join(text))
    L.append("")
    L += render_problems((e["name"], e["problems"]) for e in servers)
    return L


SECTION_ORDER = ["overhead", "accuracy", "sampler", "scaling", "rate", "memory"]
RENDERERS = {"overhead": lambda a, d: render_overhead(a, d),
             "accuracy": lambda a, d: render_accuracy(d),
             "sampler": lambda a, d: render_sampler(d),
             "scaling": lambda a, d: render_scaling(d),
             "rate": lambda a, d: render_rate(d),
             "memory": lambda a, d: render_memory(d)}


def read_sections(path):
    """{part: text} of the marked sections of an existing results file."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return {}
    out = {}
    for m in re.finditer(r"<!-- section:(\w+) -->\n(.*?)<!-- /section:\1 -->\n", text, re.S):
        out[m.group(1)] = m.group(2)
    return out


def render_report(args, env, results, meta, elapsed, loadavg_start):
    sections = read_sections(args.output)
    for part, data in results.items():
        if data is None:
            continue
        L = RENDERERS[part](args, data)
        head = L[:2]
        stamp = ("_Measured %s by `%s` (part took %.0f s; load average %s at its start, %s at "
                 "its end; module %s)._" % (meta[part]["date"], args.command, meta[part]["elapsed"],
                                            meta[part]["load_start"], meta[part]["load_end"],
                                            args.module_info))
        sections[part] = "\n".join(head + [stamp, ""] + L[2:]) + "\n"
    L = []
    L.append("# mod_pyprof benchmark results")
    L.append("")
    L.append("Generated by `tests/bench/overhead.py` (`make bench` runs every part; "
             "`--part NAME` reruns one part and replaces only its section); do not edit "
             "by hand. Each section names the command, time and load it was measured under.")
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append("- kernel %s, %s CPUs (%s), %s RAM" % (env["kernel"], env["nproc"], env["cpu"],
                                                  env["mem"]))
    L.append("- %s; embedded %s; %s; python3-yappi %s" % (env["apache"], env["embedded"],
                                                         env["wrk"], env["yappi"]))
    L.append("- a **shared, noisy** machine: other agents' builds and test suites run at the "
             "same time (load average at the start / end of the last run: %s / %s). Rounds are "
             "interleaved and medians reported, but single-digit-percent differences are "
             "within the noise; each table says so where it matters." % (loadavg_start,
                                                                         env["loadavg"]))
    L.append("- last run: %s, `%s` (cwd `%s`), took %.0f s; module `%s` (%s)"
             % (env["date"], args.command, os.getcwd(), elapsed, args.module_source,
                args.module_info))
    L.append("")
    L.append("Commands:")
    L.append("")
    L.append("    make bench                                         # = /usr/bin/python3 tests/bench/overhead.py")
    L.append("    /usr/bin/python3 tests/bench/overhead.py --part memory")
    L.append("    /usr/bin/python3 tests/bench/overhead.py --part accuracy,rate   # any subset")
    L.append("    /usr/bin/python3 tests/bench/overhead.py --quick                 # smoke run")
    L.append("")
    # then sections written by other tools (sampler_ab.py, sample_cost.c
    # results), kept as they are, in the order they were found
    for part in list(SECTION_ORDER) + [p for p in sections if p not in SECTION_ORDER]:
        if part in sections:
            L.append("<!-- section:%s -->" % part)
            L.append(sections[part].rstrip("\n"))
            L.append("<!-- /section:%s -->" % part)
            L.append("")
    return "\n".join(L) + "\n"


# -- main -----------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds of the overhead part (default 5)")
    p.add_argument("--duration", type=int, default=None,
                   help="seconds of wrk per variant, round and endpoint (default 6)")
    p.add_argument("--quick", action="store_true",
                   help="smoke check: 2 rounds of 3 s, fewer cells and requests")
    p.add_argument("--part", default="all",
                   help="comma-separated: all (= %s), %s" % (",".join(PARTS_ALL),
                                                             ", ".join(PARTS)))
    p.add_argument("--variants", default=None,
                   help="overhead variants, comma-separated (off is always included): %s"
                        % ",".join(VARIANT_NAMES))
    p.add_argument("--memory-requests", type=int, default=200000,
                   help="requests of the memory part (default 200000)")
    p.add_argument("--output", default=DEFAULT_OUTPUT, help="Markdown results file")
    p.add_argument("--module", default=module_path())
    p.add_argument("--keep-tmp", action="store_true", help="keep the server directories")
    p.add_argument("--rerender", metavar="PICKLE", default=None,
                   help="write the report from a pickled run (/tmp/pyprof-bench-last.pickle) "
                        "without measuring")
    args = p.parse_args()
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    if args.duration is None:
        args.duration = 3 if args.quick else 6
    if not 1 <= args.rounds <= 50 or not 1 <= args.duration <= 300:
        p.error("--rounds must be 1..50 and --duration 1..300")
    if not 1000 <= args.memory_requests <= 5000000:
        p.error("--memory-requests must be 1000..5000000")
    parts = []
    for name in args.part.split(","):
        name = name.strip()
        if name == "all":
            parts += PARTS_ALL
        elif name in PARTS:
            parts.append(name)
        else:
            p.error("unknown part %r (choose from all, %s)" % (name, ", ".join(PARTS)))
    args.parts = [x for x in SECTION_ORDER if x in parts]
    wanted = set(VARIANT_NAMES)
    if args.variants:
        wanted = {v.strip() for v in args.variants.split(",") if v.strip()} | {"off"}
        unknown = wanted - set(VARIANT_NAMES)
        if unknown:
            p.error("unknown variants %s (choose from %s)" % (", ".join(sorted(unknown)),
                                                              ", ".join(VARIANT_NAMES)))
    args.variant_list = [v for v in VARIANTS if v.name in wanted]
    args.command = " ".join([sys.executable] + sys.argv)
    return args


def check_tools(args):
    missing = [what for what, ok in (("apache2 (%s)" % APACHE, os.path.exists(APACHE)),
                                     ("mod_wsgi (%s)" % WSGI_SO, os.path.exists(WSGI_SO)),
                                     ("wrk", shutil.which("wrk")),
                                     ("ab (apache2-utils)", shutil.which("ab")))
               if not ok]
    if "overhead" in args.parts and any(v.profiler == "yappi" for v in args.variant_list):
        if not _dpkg_version("python3-yappi"):
            missing.append("python3-yappi (apt-get install python3-yappi)")
    if missing:
        raise BenchError("missing: %s; run `make deps`" % ", ".join(missing))
    if not os.path.exists(args.module):
        raise BenchError("mod_pyprof not built: %s (run `make`)" % args.module)


def module_info(path):
    """sha256, mtime and the repository state of the module under test."""
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    mtime = datetime.datetime.fromtimestamp(os.stat(path).st_mtime, datetime.timezone.utc)
    info = "sha256 %s, built %s" % (digest, mtime.strftime("%Y-%m-%d %H:%M:%S UTC"))
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              timeout=10).stdout.decode().strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "mod_pyprof"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               timeout=10).stdout.decode().strip()
        if head:
            info += ", git %s%s" % (head, " + uncommitted changes in mod_pyprof/" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def _terminate(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def _loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


PART_FUNCS = {"overhead": part_overhead, "accuracy": part_accuracy, "sampler": part_sampler,
              "scaling": part_scaling, "rate": part_rate, "memory": part_memory}


LAST_PICKLE = "/tmp/pyprof-bench-last.pickle"
RENDER_ARGS = ("rounds", "duration", "quick", "parts", "command", "module_source",
               "module_info", "variant_list")


def rerender(args):
    import pickle
    with open(args.rerender, "rb") as f:
        saved = pickle.load(f)
    for k, v in saved["args"].items():
        setattr(args, k, v)
    env = saved["env"]
    report = render_report(args, env, saved["results"], saved["meta"], saved["elapsed"],
                           saved["loadavg_start"])
    with open(args.output, "w") as f:
        f.write(report)
    log(report)
    log("written to %s" % args.output)
    return 0


def main():
    args = parse_args()
    if args.rerender:
        return rerender(args)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        check_tools(args)
    except BenchError as e:
        log("ERROR: %s" % e)
        return 1
    base_dir = tempfile.mkdtemp(prefix="pyprof-bench-", dir="/tmp")
    os.chmod(base_dir, 0o755)
    # Run every server from one copy of the module: a rebuild during the run
    # must neither mix builds nor break `apache2 -k stop` (it parses the config).
    args.module_source = args.module
    args.module_info = module_info(args.module)
    args.module = os.path.join(base_dir, "mod_pyprof.so")
    shutil.copyfile(args.module_source, args.module)
    os.chmod(args.module, 0o755)
    servers = []
    failed = True
    started = time.monotonic()
    loadavg_start = _loadavg()
    results, meta = {}, {}
    try:
        for part in args.parts:
            log("== part %s" % part)
            t0 = time.monotonic()
            meta[part] = {"date": datetime.datetime.now(datetime.timezone.utc)
                          .strftime("%Y-%m-%d %H:%M UTC"), "load_start": _loadavg()}
            results[part] = PART_FUNCS[part](args, base_dir, servers)
            meta[part]["elapsed"] = time.monotonic() - t0
            meta[part]["load_end"] = _loadavg()
            # a finished part's servers are done with: stop them now
            for srv in servers:
                srv.stop()
            log("== part %s took %.0f s" % (part, meta[part]["elapsed"]))
        failed = False
    except HttpdError as e:  # BenchError too
        log("\nERROR: %s" % e)
    finally:
        for srv in servers:
            srv.stop()
        if failed or args.keep_tmp:
            log("server directories kept under %s" % base_dir)
        else:
            shutil.rmtree(base_dir, ignore_errors=True)
    if failed:
        return 1
    versions = ""
    for data in results.values():
        if isinstance(data, dict) and data.get("versions"):
            versions = data["versions"]
            break
    env = environment(versions)
    elapsed = time.monotonic() - started
    try:
        import pickle
        with open(LAST_PICKLE, "wb") as f:
            pickle.dump({"args": {k: getattr(args, k) for k in RENDER_ARGS}, "env": env,
                         "results": results, "meta": meta, "elapsed": elapsed,
                         "loadavg_start": loadavg_start}, f)
    except (OSError, pickle.PicklingError) as e:
        log("warning: could not save %s: %s" % (LAST_PICKLE, e))
    report = render_report(args, env, results, meta, elapsed, loadavg_start)
    log("")
    log(report)
    with open(args.output, "w") as f:
        f.write(report)
    log("written to %s" % args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
