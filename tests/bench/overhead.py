"""mod_pyprof overhead and sample-rate benchmark (`make bench`).

Part "overhead": four standalone httpd servers (event MPM, one child with 8
threads, mod_wsgi embedded mode) serve tests/bench/app.py on 127.0.0.1:

    off      mod_pyprof not loaded
    p100ms   PyProfSample /app 100ms
    p10ms    PyProfSample /app 10ms
    p1ms     PyProfSample /app 1ms

All four run at once; only one is loaded at a time.  Each round loads every
variant in turn (off, p100ms, p10ms, p1ms, then the next round) with
`wrk -t2 -c8 -d<duration>` on /app/render and /app/render_sleep.  The main
measure is CPU time per request of the server's child processes (utime +
stime from /proc/PID/stat, all threads included, so the sampler thread's
own CPU counts), read before and after each wrk run; throughput is reported
too but is the noisier number on a shared machine.  Ratios to `off` are
taken per round (variant / off of the same round and endpoint), and the
median over rounds is reported.

Part "rate": on fresh servers, how many samples per second the sampler gets
on a CPU-bound request (/app/cpu?ms=1000) at 10ms and 1ms, and what one
sample costs for a ~30-frame stack (/app/deep?depth=30&ms=1000); then, under
the same 8-way load as part 1, which stacks the samples actually show.

    /usr/bin/python3 tests/bench/overhead.py                 # full (~10 min)
    /usr/bin/python3 tests/bench/overhead.py --quick         # smoke (~1.5 min)
    /usr/bin/python3 tests/bench/overhead.py --part rate     # part 2 only

Results go to stdout and to tests/bench/RESULTS.md (--output).  Every server
is stopped at the end, also on errors and Ctrl-C.
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
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
APACHE = "/usr/sbin/apache2"
APACHE_MODULES = "/usr/lib/apache2/modules"
WSGI_SO = os.path.join(APACHE_MODULES, "mod_wsgi.so")
DEFAULT_MODULE = os.path.join(REPO, "mod_pyprof", ".libs", "mod_pyprof.so")
APP_SOURCE = os.path.join(HERE, "app.py")
DEFAULT_OUTPUT = os.path.join(HERE, "RESULTS.md")

CLEAN_ENV = {"LANG": "C", "LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Straight to 127.0.0.1, whatever *_proxy the environment has.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

START_TIMEOUT = 20.0
STOP_TIMEOUT = 25.0          # httpd itself SIGKILLs stuck children after ~10 s
HTTP_TIMEOUT = 15.0
WARMUP_REQUESTS = 200
SETTLE_SECONDS = 0.3         # let in-flight requests finish after wrk stops

# (name, interval) in the interleaving order; None = module not loaded.
VARIANTS = [("off", None), ("p100ms", "100ms"), ("p10ms", "10ms"), ("p1ms", "1ms")]
ENDPOINTS = ["/app/render", "/app/render_sleep"]


class BenchError(Exception):
    pass


def log(msg):
    print(msg, flush=True)


# -- /proc ----------------------------------------------------------------------

def _stat_fields(pid):
    """Fields of /proc/PID/stat after the comm, or None if pid is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rfind(")") + 2:].split()


def alive(pid):
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def children_of(ppid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields and len(fields) > 1 and fields[1] == str(ppid):
            kids.append(int(entry))
    return sorted(kids)


def cpu_seconds(pid):
    """utime + stime of a process (all its threads, live and exited)."""
    fields = _stat_fields(pid)
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


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- one httpd ------------------------------------------------------------------

class Server:
    """A standalone httpd (event MPM, 1 child x 8 threads) + mod_wsgi embedded."""

    def __init__(self, name, interval, module, base_dir, threshold="500ms", extra=""):
        self.name = name
        self.interval = interval
        self.module = module
        self.threshold = threshold
        self.extra = extra
        self.port = free_port()
        self.pid = None
        self.root = tempfile.mkdtemp(prefix="pyprof-bench-%s-" % name, dir=base_dir)
        os.chmod(self.root, 0o755)
        for sub in ("logs", "run", "htdocs"):
            os.mkdir(os.path.join(self.root, sub))
            os.chmod(os.path.join(self.root, sub), 0o755)
        self.conf = os.path.join(self.root, "httpd.conf")
        self.app = os.path.join(self.root, "app.py")
        self.error_log = os.path.join(self.root, "logs", "error.log")
        self.pidfile = os.path.join(self.root, "run", "httpd.pid")
        shutil.copyfile(APP_SOURCE, self.app)
        os.chmod(self.app, 0o644)

    @property
    def profiled(self):
        return self.interval is not None

    def config_text(self):
        pyprof = ""
        if self.profiled:
            pyprof = """\
LoadModule pyprof_module "{module}"
PyProfSample /app {interval}
PyProfSlowThreshold {threshold}
{extra}""".format(module=self.module, interval=self.interval, threshold=self.threshold,
                  extra=self.extra)
        return """\
# Generated by tests/bench/overhead.py, variant "{name}".
ServerRoot "{root}"
DefaultRuntimeDir "{root}/run"
PidFile "{pidfile}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}

# Debian builds log_config and unixd into apache2: no LoadModule for them.
LoadModule mpm_event_module "{mods}/mod_mpm_event.so"
LoadModule authz_core_module "{mods}/mod_authz_core.so"
{pyprof}
LoadModule wsgi_module "{wsgi}"

User www-data
Group www-data

ErrorLog "{root}/logs/error.log"
LogLevel warn
# No access log: its cost would dilute the module's share of CPU per request.

Timeout 30
KeepAlive On
KeepAliveTimeout 5
MaxKeepAliveRequests 0

StartServers 1
ServerLimit 1
ThreadLimit 8
ThreadsPerChild 8
MaxRequestWorkers 8
MinSpareThreads 1
MaxSpareThreads 8
MaxConnectionsPerChild 0

DocumentRoot "{root}/htdocs"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{root}">
    Require all granted
</Directory>

WSGIScriptAlias /app "{app}"
# Debian's mod_wsgi 4.9.4 + Python 3.11 can hang ~8 s in finalisation at stop.
WSGIDestroyInterpreter Off

<Location /server-profile>
    SetHandler server-profile
</Location>
""".format(name=self.name, root=self.root, pidfile=self.pidfile, port=self.port,
           mods=APACHE_MODULES, pyprof=pyprof, wsgi=WSGI_SO, app=self.app)

    def _apache(self, args, timeout=30):
        proc = subprocess.run([APACHE, "-f", self.conf] + args, env=CLEAN_ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, cwd=self.root)
        return proc.returncode, proc.stdout.decode("utf-8", "replace")

    def error_log_text(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _read_pid(self):
        try:
            with open(self.pidfile) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def start(self):
        if self.profiled and not os.path.exists(self.module):
            raise BenchError("mod_pyprof not built: %s (run `make`)" % self.module)
        for attempt in range(3):
            with open(self.conf, "w") as f:
                f.write(self.config_text())
            os.chmod(self.conf, 0o644)
            rc, out = self._apache(["-k", "start"])
            if rc != 0:
                raise BenchError("server %s: apache2 -k start failed (rc %d):\n%s\n"
                                 "--- error log %s ---\n%s"
                                 % (self.name, rc, out, self.error_log,
                                    self.error_log_text()[-4000:]))
            error = self._wait_started()
            if error is None:
                return self
            text = self.error_log_text()
            if "AH00072" in text and attempt < 2:   # port taken meanwhile
                os.rename(self.error_log, self.error_log + ".bind-%d" % attempt)
                self.port = free_port()
                continue
            self.stop()
            raise BenchError("server %s did not come up: %s\n--- error log %s ---\n%s"
                             % (self.name, error, self.error_log, text[-4000:]))
        raise BenchError("server %s did not come up after 3 attempts" % self.name)

    def _wait_started(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            pid = self._read_pid()
            if pid and alive(pid):
                self.pid = pid
                try:
                    if self.get("/app/ping", timeout=3)[0] == 200:
                        return None
                except OSError:
                    pass
            elif pid:
                return "parent %d exited" % pid
            time.sleep(0.1)
        return "not answering on 127.0.0.1:%d after %.0fs" % (self.port, START_TIMEOUT)

    def stop(self):
        """`apache2 -k stop`, then wait (bounded) for parent and children."""
        pid = self.pid or self._read_pid()
        self.pid = None
        if not pid or not alive(pid):
            return
        kids = children_of(pid)
        started = time.monotonic()
        try:
            rc, out = self._apache(["-k", "stop"], timeout=10)
        except subprocess.TimeoutExpired:
            rc, out = -1, "apache2 -k stop timed out"
        if rc != 0 and alive(pid):
            log("warning: server %s: apache2 -k stop failed (rc %d): %s; sending SIGTERM"
                % (self.name, rc, out.strip()))
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        while time.monotonic() - started < STOP_TIMEOUT and alive(pid):
            time.sleep(0.05)
        leftovers = [p for p in [pid] + kids if alive(p)]
        if leftovers:
            log("warning: server %s still running %.0fs after stop, killing %s"
                % (self.name, STOP_TIMEOUT, leftovers))
            for p in leftovers:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(k) for k in kids):
            time.sleep(0.05)

    # -- measurement ----------------------------------------------------------

    def children(self):
        return children_of(self.pid) if self.pid else []

    def cpu_snapshot(self):
        """{child pid: CPU seconds} for every child of this server's parent."""
        snap = {}
        for kid in self.children():
            cpu = cpu_seconds(kid)
            if cpu is not None:
                snap[kid] = cpu
        return snap

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def get(self, path, timeout=HTTP_TIMEOUT):
        try:
            with OPENER.open(self.url(path), timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get_ok(self, path, timeout=HTTP_TIMEOUT):
        status, body = self.get(path, timeout=timeout)
        if status != 200:
            raise BenchError("server %s: GET %s -> %d: %s\n--- error log ---\n%s"
                             % (self.name, path, status, body[:500],
                                self.error_log_text()[-3000:]))
        return body

    def profile(self):
        return json.loads(self.get_ok("/server-profile?format=json").decode("utf-8"))

    def log_problems(self):
        """Error-log lines at error level or worse, crashes and stop trouble.
        AH00484 (all 8 workers busy) is expected: wrk -c8 against 8 threads."""
        bad = re.compile(r"\[(?:[A-Za-z0-9_.-]+:)?(error|crit|alert|emerg)\]|"
                         r"Segmentation fault|exit signal|Fatal Python error|AH00045|AH00046")
        return [line for line in self.error_log_text().splitlines()
                if bad.search(line) and "AH00484" not in line]


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


# -- part 1: overhead -----------------------------------------------------------

def sampler_block(server):
    if not server.profiled:
        return None
    return server.profile().get("sampler") or {}


def location_requests(server):
    if not server.profiled:
        return None
    for loc in server.profile().get("locations", []):
        if loc.get("path") == "/app":
            return loc.get("requests")
    return None


def measure_round(server, path, duration):
    warm_up(server, path)
    time.sleep(0.2)
    s_before = sampler_block(server)
    n_before = location_requests(server)
    before = server.cpu_snapshot()
    res = run_wrk(server, path, duration)
    time.sleep(SETTLE_SECONDS)
    after = server.cpu_snapshot()
    s_after = sampler_block(server)
    n_after = location_requests(server)
    cpu = cpu_delta(before, after)
    res["cpu_s"] = cpu
    res["cpu_ms_per_req"] = cpu * 1000.0 / res["requests"] if cpu is not None and res["requests"] else None
    if s_before is not None and s_after is not None:
        res["samples"] = s_after["samples"] - s_before["samples"]
        res["sampler_cpu_s"] = s_after["cpu_s"] - s_before["cpu_s"]
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
    for name, interval in VARIANTS:
        srv = Server(name, interval, args.module, base_dir)
        servers_out.append(srv)
        servers.append(srv)
    for srv in servers:
        srv.start()
        log("started %-7s on 127.0.0.1:%d (pid %d, children %s)"
            % (srv.name, srv.port, srv.pid, srv.children()))
    versions = servers[0].get_ok("/app/version").decode()
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
                log("[%d/%d] round %d %-7s %-18s %8.1f req/s  %s CPU ms/req  "
                    "p50 %s ms%s"
                    % (done, total, rnd, srv.name, path, res["rps"],
                       "%.3f" % res["cpu_ms_per_req"] if res["cpu_ms_per_req"] else "n/a",
                       "%.2f" % res["p50_ms"] if res["p50_ms"] is not None else "?",
                       ("  samples %d, sampler %.1f ms" % (res["samples"], res["sampler_cpu_s"] * 1000))
                       if "samples" in res else ""))
                if res["cpu_ms_per_req"] is None:
                    log("  warning: a child of %s came or went during the round; "
                        "its CPU is not counted" % srv.name)
    samplers = {srv.name: sampler_block(srv) for srv in servers if srv.profiled}
    problems = {srv.name: srv.log_problems() for srv in servers}
    return {"results": results, "samplers": samplers, "idle": idle,
            "idle_seconds": idle_seconds,
            "versions": versions, "problems": problems}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(overhead):
    """Rows of the main table: medians and per-round paired ratios to off."""
    res = overhead["results"]
    rows = []
    for path in ENDPOINTS:
        base = {r["round"]: r for r in res[("off", path)]}
        for name, _ in VARIANTS:
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
            if name != "off":
                row["samples_per_req"] = median(
                    r["samples"] / r["requests"] for r in rounds if r["requests"])
                row["sampler_us_per_req"] = median(
                    r["sampler_cpu_s"] * 1e6 / r["requests"] for r in rounds if r["requests"])
            rows.append(row)
    return rows


# -- part 2: sample rate and per-sample cost --------------------------------------

def wait_kept(server, marker, count, timeout=10):
    deadline = time.monotonic() + timeout
    kept = []
    while time.monotonic() < deadline:
        kept = [r for r in server.profile()["requests"] if marker in r["uri"]]
        if len(kept) >= count:
            break
        time.sleep(0.1)
    return kept


def rate_run(server, path, marker, repeats, with_stacks=False):
    for _ in range(repeats):
        server.get_ok(path, timeout=30)
    kept = wait_kept(server, marker, repeats)
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
            quoted = urllib.parse.quote(str(r["id"]), safe="-_.~@+=")
            detail = json.loads(server.get_ok("/server-profile/request/%s?format=json"
                                              % quoted).decode("utf-8"))
            depths = [len(s["frames"]) for s in detail.get("stacks", [])]
            t["max_frames"] = max(depths) if depths else None
        traces.append(t)
    return traces


def part_rate(args, base_dir, servers_out):
    repeats = 2 if args.quick else 3
    out = {"repeats": repeats, "rate": [], "deep": None, "versions": None}
    for name, interval in (("rate10ms", "10ms"), ("rate1ms", "1ms")):
        srv = Server(name, interval, args.module, base_dir)
        servers_out.append(srv)
        srv.start()
        log("started %s (PyProfSample /app %s) on port %d" % (name, interval, srv.port))
        out["versions"] = srv.get_ok("/app/version").decode()
        traces = rate_run(srv, "/app/cpu?ms=1000", "/app/cpu", repeats, with_stacks=True)
        sampler = sampler_block(srv)
        srv.stop()
        nominal = 1000.0 / _ms(interval)
        for t in traces:
            log("  %s cpu 1s: %d samples in %.0f ms -> %.1f/s (nominal %.0f/s), max %s frames"
                % (name, t["samples"], t["duration_ms"], t["per_s"], nominal, t["max_frames"]))
        out["rate"].append({"name": name, "interval": interval, "nominal": nominal,
                            "traces": traces, "sampler": sampler,
                            "problems": srv.log_problems()})
    srv = Server("deep1ms", "1ms", args.module, base_dir)
    servers_out.append(srv)
    srv.start()
    log("started deep1ms (PyProfSample /app 1ms) on port %d" % srv.port)
    traces = rate_run(srv, "/app/deep?depth=30&ms=1000", "/app/deep", repeats,
                      with_stacks=True)
    sampler = sampler_block(srv)
    srv.stop()
    log("  deep: sampler %s" % json.dumps(sampler))
    out["deep"] = {"traces": traces, "sampler": sampler, "nominal": 1000.0,
                   "problems": srv.log_problems()}
    out["where"] = where_samples_land(args, base_dir, servers_out)
    return out


MAX_DETAILS = 2000   # request pages read per endpoint in where_samples_land


def where_samples_land(args, base_dir, servers_out):
    """Under the overhead part's load (8 concurrent requests, one GIL), which
    stacks do the samples show?  Every request is kept (threshold 1ms) so
    their stacks can be read back."""
    srv = Server("where10ms", "10ms", args.module, base_dir, threshold="1ms",
                 extra="PyProfKeep 5000\nPyProfMemory 256M\n")
    servers_out.append(srv)
    srv.start()
    log("started where10ms (PyProfSample /app 10ms, PyProfSlowThreshold 1ms) on port %d"
        % srv.port)
    duration = 2 if args.quick else 3
    result = {"duration": duration, "endpoints": []}
    for path in ENDPOINTS:
        warm_up(srv, path)
        res = run_wrk(srv, path, duration)
        time.sleep(SETTLE_SECONDS)
        kept = [q for q in srv.profile()["requests"] if q["uri"].split("?")[0] == path]
        with_samples = [q for q in kept if q["samples"]]
        leaves, in_render, total = {}, 0, 0
        for q in with_samples[:MAX_DETAILS]:
            detail = json.loads(srv.get_ok(
                "/server-profile/request/%s?format=json"
                % urllib.parse.quote(str(q["id"]), safe="-_.~@+=")).decode("utf-8"))
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
        log("  %s: %d requests kept, %d with samples, %d samples, %d inside render_table, "
            "top leaves %s" % (path, len(kept), len(with_samples), total, in_render, top))
        result["endpoints"].append(entry)
    result["sampler"] = sampler_block(srv)
    srv.stop()
    result["problems"] = srv.log_problems()
    return result


# -- report ---------------------------------------------------------------------

def fmt(value, spec="%.2f", none="n/a"):
    return spec % value if value is not None else none


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
    try:
        with open("/proc/loadavg") as f:
            env["loadavg"] = " ".join(f.read().split()[:3])
    except OSError:
        env["loadavg"] = "?"
    return env


def render_report(args, env, overhead, rate, elapsed, loadavg_start):
    L = []
    L.append("# mod_pyprof benchmark results")
    L.append("")
    L.append("Generated by `tests/bench/overhead.py`; do not edit by hand.")
    L.append("")
    L.append("- date: %s (took %.0f s)" % (env["date"], elapsed))
    L.append("- command: `%s` (cwd `%s`)" % (" ".join([sys.executable] + sys.argv), os.getcwd()))
    L.append("- kernel: %s, nproc: %s, CPU: %s" % (env["kernel"], env["nproc"], env["cpu"]))
    L.append("- load average at start / end: %s / %s (shared machine)"
             % (loadavg_start, env["loadavg"]))
    L.append("- %s; embedded %s; %s" % (env["apache"], env["embedded"], env["wrk"]))
    L.append("- module: `%s` (%s)" % (args.module_source, args.module_info))
    L.append("")
    if overhead:
        rows = summarise(overhead)
        L.append("## Overhead: CPU time and throughput per request")
        L.append("")
        L.append("Four servers run at once (event MPM, 1 child x 8 threads, mod_wsgi embedded, "
                 "no access log), loaded one at a time, interleaved `off, p100ms, p10ms, p1ms` "
                 "for %d rounds of `wrk -t2 -c8 -d%ds` per endpoint, after %d warm-up requests. "
                 "CPU = utime+stime of the server's child process (all threads, sampler "
                 "included) per request. Ratios are medians over rounds of variant / `off` "
                 "in the same round; range = min..max of those per-round ratios; \"CPU µs/req over off\" "
                 "is the median per-round difference, to compare with the sampler thread's own "
                 "CPU (from the `sampler` block, per round). "
                 "`/app/render` is a 50-row table, ~300 Python calls a row (~15k calls a request)."
                 % (args.rounds, args.duration, WARMUP_REQUESTS))
        L.append("")
        L.append("| variant | endpoint | req/s | req/s vs off | CPU ms/req | CPU vs off | CPU ratio range "
                 "| CPU µs/req over off | samples/req | sampler thread CPU µs/req |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["variant"], r["path"], fmt(r["rps"], "%.1f"), fmt(r["rps_ratio"], "%.3f"),
                fmt(r["cpu"], "%.3f"), fmt(r["cpu_ratio"], "%.3f"),
                "%s..%s" % (fmt(r["cpu_ratio_min"], "%.3f"), fmt(r["cpu_ratio_max"], "%.3f")),
                fmt(r["cpu_diff_us"], "%+.1f"),
                fmt(r.get("samples_per_req"), "%.3f", "-"),
                fmt(r.get("sampler_us_per_req"), "%.2f", "-")))
        L.append("")
        for path in ENDPOINTS:
            base = [r["cpu_ms_per_req"] for r in overhead["results"][("off", path)]
                    if r["cpu_ms_per_req"]]
            if len(base) >= 2:
                mid = statistics.median(base)
                L.append("- noise floor, `off` alone on %s: CPU ms/req %.3f..%.3f over rounds "
                         "(%.1f%% below to %.1f%% above its median). Every ratio in a round "
                         "shares that round's `off`, so the three profiled variants' ratios "
                         "move together." % (path, min(base), max(base),
                                             (1 - min(base) / mid) * 100,
                                             (max(base) / mid - 1) * 100))
        L.append("")
        L.append("Latency (wrk, median over rounds of each round's percentile):")
        L.append("")
        L.append("| variant | endpoint | p50 ms | p99 ms |")
        L.append("|---|---|---:|---:|")
        for r in rows:
            L.append("| %s | %s | %s | %s |" % (r["variant"], r["path"], fmt(r["p50"]),
                                                fmt(r["p99"])))
        L.append("")
        L.append("Idle CPU of each server's child over %d quiet seconds (all four up, none "
                 "loaded; /proc/PID/task/*/schedstat): " % overhead["idle_seconds"]
                 + ", ".join("%s %s µs/s" % (k, fmt(v, "%.1f"))
                             for k, v in overhead["idle"].items()))
        L.append("")
        L.append("Sampler counters at the end of the run (`/server-profile?format=json` "
                 "`sampler`, cumulative over warm-up and all rounds; cost quantiles come "
                 "from a log2 histogram, so they are bucket mid-points, resolution x1.4):")
        L.append("")
        L.append("| variant | samples | ticks | cpu_s | sample_cost_p50_us | sample_cost_p99_us "
                 "| gil_wait_s | walk_s | threads_missing |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, s in overhead["samplers"].items():
            s = s or {}
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, s.get("samples"), s.get("ticks"), fmt(s.get("cpu_s"), "%.3f"),
                fmt(s.get("sample_cost_p50_us")), fmt(s.get("sample_cost_p99_us")),
                fmt(s.get("gil_wait_s"), "%.3f"), fmt(s.get("walk_s"), "%.3f"),
                s.get("threads_missing")))
        L.append("")
        L.append("<details><summary>Per-round CPU ms/req (req/s)</summary>")
        L.append("")
        L.append("| variant | endpoint | " + " | ".join("round %d" % i for i in range(1, args.rounds + 1)) + " |")
        L.append("|---|---|" + "---:|" * args.rounds)
        for path in ENDPOINTS:
            for name, _ in VARIANTS:
                cells = ["%s (%.0f)" % (fmt(r["cpu_ms_per_req"], "%.3f"), r["rps"])
                         for r in overhead["results"][(name, path)]]
                L.append("| %s | %s | %s |" % (name, path, " | ".join(cells)))
        L.append("")
        L.append("</details>")
        L.append("")
        probs = {k: v for k, v in overhead["problems"].items() if v}
        if probs:
            L.append("Error-log lines at error level or worse:")
            L.append("")
            for k, v in probs.items():
                for line in v[:10]:
                    L.append("    %s: %s" % (k, line))
            L.append("")
    if rate:
        L.append("## Effective sample rate on a CPU-bound request")
        L.append("")
        L.append("Fresh server per row, %d sequential `GET /app/cpu?ms=1000` (pure-Python busy "
                 "loop, 1 s of thread CPU), numbers from the kept traces. samples/s = samples / "
                 "duration. In GIL mode the sampler must wait for the GIL, which a CPU-bound "
                 "thread hands over only after the switch interval (5 ms), so a tick cannot come "
                 "sooner than ~5 ms after the previous one asked: expect at most "
                 "~1000/(interval_ms + 5) per second (~167/s at 1ms, ~67/s at 10ms if the "
                 "deadline did not absorb the wait)." % rate["repeats"])
        L.append("")
        L.append("| interval | nominal /s | request | duration ms | cpu ms | samples | samples/s | "
                 "achieved / nominal | frames |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for block in rate["rate"]:
            for i, t in enumerate(block["traces"], 1):
                L.append("| %s | %.0f | %d | %.1f | %.1f | %d | %.1f | %.2f | %s |" % (
                    block["interval"], block["nominal"], i, t["duration_ms"], t["cpu_ms"],
                    t["samples"], t["per_s"], t["per_s"] / block["nominal"],
                    t.get("max_frames")))
        L.append("")
        L.append("Per-sample cost (time holding the GIL per stack walked, sampler block of "
                 "each fresh server):")
        L.append("")
        L.append("| server | stack | samples | cpu_s | sample_cost_p50_us | sample_cost_p99_us "
                 "| mean walk µs/sample (walk_s / samples) | gil_wait_s |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|")
        entries = [(b["name"], "/app/cpu (%s frames)" % b["traces"][0].get("max_frames"),
                    b["sampler"]) for b in rate["rate"]]
        d = rate["deep"]
        entries.append(("deep1ms", "/app/deep?depth=30 (%s frames)"
                        % d["traces"][0].get("max_frames"), d["sampler"]))
        for name, what, s in entries:
            s = s or {}
            mean = (s["walk_s"] * 1e6 / s["samples"]
                    if s.get("samples") and s.get("walk_s") is not None else None)
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, what, s.get("samples"), fmt(s.get("cpu_s"), "%.3f"),
                fmt(s.get("sample_cost_p50_us")), fmt(s.get("sample_cost_p99_us")),
                fmt(mean), fmt(s.get("gil_wait_s"), "%.3f")))
        L.append("")
        L.append("Deep requests at 1ms: " + "; ".join(
            "%d samples in %.0f ms (%.1f/s)" % (t["samples"], t["duration_ms"], t["per_s"])
            for t in d["traces"]))
        L.append("")
        w = rate["where"]
        L.append("## Where the samples land under concurrent load")
        L.append("")
        L.append("Fresh server at 10ms with `PyProfSlowThreshold 1ms` (every request kept), "
                 "`wrk -t2 -c8 -d%ds` per endpoint as in the overhead part, then every kept "
                 "trace's stacks read back. `render_table` is where both views spend nearly "
                 "all their CPU." % w["duration"])
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
        L.append("Sampler block of that server: ticks %s, samples %s, threads_missing %s, "
                 "gil_wait_s %s." % (s.get("ticks"), s.get("samples"), s.get("threads_missing"),
                                      fmt(s.get("gil_wait_s"), "%.3f")))
        L.append("")
        probs = [(b["name"], b["problems"]) for b in rate["rate"]] + [("deep1ms", d["problems"]),
                                                                      ("where10ms", w["problems"])]
        probs = [(n, p) for n, p in probs if p]
        if probs:
            L.append("Error-log lines at error level or worse:")
            L.append("")
            for n, p in probs:
                for line in p[:10]:
                    L.append("    %s: %s" % (n, line))
            L.append("")
    return "\n".join(L) + "\n"


# -- main -----------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    p.add_argument("--duration", type=int, default=None,
                   help="seconds of wrk per variant, round and endpoint (default 10)")
    p.add_argument("--quick", action="store_true", help="smoke check: 2 rounds of 3 s")
    p.add_argument("--part", choices=("all", "overhead", "rate"), default="all")
    p.add_argument("--output", default=DEFAULT_OUTPUT, help="Markdown results file")
    p.add_argument("--module", default=os.environ.get("PYPROF_MODULE") or DEFAULT_MODULE)
    p.add_argument("--keep-tmp", action="store_true", help="keep the server directories")
    args = p.parse_args()
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    if args.duration is None:
        args.duration = 3 if args.quick else 10
    if not 1 <= args.rounds <= 50 or not 1 <= args.duration <= 300:
        p.error("--rounds must be 1..50 and --duration 1..300")
    return args


def check_tools(args):
    missing = [what for what, ok in (("apache2 (%s)" % APACHE, os.path.exists(APACHE)),
                                     ("mod_wsgi (%s)" % WSGI_SO, os.path.exists(WSGI_SO)),
                                     ("wrk", shutil.which("wrk")),
                                     ("ab (apache2-utils)", shutil.which("ab")))
               if not ok]
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


def main():
    args = parse_args()
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
    with open("/proc/loadavg") as f:
        loadavg_start = " ".join(f.read().split()[:3])
    overhead = rate = None
    try:
        if args.part in ("all", "overhead"):
            overhead = part_overhead(args, base_dir, servers)
        if args.part in ("all", "rate"):
            rate = part_rate(args, base_dir, servers)
        failed = False
    except BenchError as e:
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
    versions = (overhead or rate or {}).get("versions") or ""
    env = environment(versions)
    report = render_report(args, env, overhead, rate, time.monotonic() - started, loadavg_start)
    log("")
    log(report)
    with open(args.output, "w") as f:
        f.write(report)
    log("written to %s" % args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
