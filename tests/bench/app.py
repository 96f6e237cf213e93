"""WSGI application for the mod_pyprof overhead benchmark (tests/bench/overhead.py).

The views stand in for a typical server-rendered page: lots of small Python
function calls, which is exactly where a profiler that hooks calls
(cProfile) hurts most and where a sampler should cost next to nothing.

    /app/render              a 50-row HTML table; each row costs ~300 small
                             Python calls (render_row -> render_cell ->
                             format_cell -> format_number/escape ...)
    /app/render_sleep        the same, then time.sleep(0.002) (GIL released)
    /app/cpu?ms=N            pure-Python busy loop for N ms of thread CPU
    /app/deep?depth=D&ms=N   recurse D Python frames deep, then the busy loop
    /app/deep?...&mode=sleep the same recursion, then time.sleep(N ms)
                             instead of the busy loop (GIL released)
    /app/split?total=400     the accuracy workload: four functions, one after
                             the other, 10/20/30/40 % of `total` ms: two burn
                             thread CPU in an inline loop (split_cpu_10,
                             split_cpu_30), two sleep (split_sleep_20,
                             split_sleep_40); answers each one's measured
                             wall ms as JSON (the truth the profilers are
                             compared with)
    /app/stuck?n=25          one long C call that holds the GIL: a compiled
                             regex backtracking catastrophically on
                             'a' * n + 'b' (~1 s at n=25 here)
    /app/nap?ms=1            time.sleep(ms) (the memory run's cheap request)
    /app/bench_profiler      JSON state of the in-app profiler of this variant
                             (?reset=1 clears the Python sampler's counts)
    /app/version             Python and mod_wsgi versions of the embedded
                             interpreter (for the results header)
    /app/ping                returns at once

The benchmark's peer profilers live here too, switched on by one line that
overhead.py appends to the per-variant copy of this file
(`install_profiler("cprofile")` etc.):

    cprofile    WSGI middleware: every request runs under its own
                cProfile.Profile, whose stats are merged into one
                process-wide pstats.Stats under a lock
    yappi       yappi (Debian python3-yappi) started once at import, wall
                clock, all threads; request threads that mod_wsgi creates
                later (not threading.Thread, so yappi's threading.setprofile
                hook never sees them) are handed to yappi on their first
                request the way that hook would
    pysampler   the classic pure-Python sampler: a daemon thread started at
                import that every 10 ms calls sys._current_frames() and
                counts each thread's stack in a dict

It must stay importable by the Python that mod_wsgi embeds (Debian's 3.11)
and never writes to stderr.
"""

import json
import os
import re
import sys
import threading
import time
from urllib.parse import parse_qs

# burn_cpu: pyprof_testlib.py, which the harness copies next to this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyprof_testlib import burn_cpu  # noqa: E402

ROWS = 50
COLUMNS = 30          # ~10 calls a cell + the row's own: ~300 calls a row
MAX_MS = 10000
MAX_DEPTH = 2000

# /app/deep?depth=1000 needs more than the default limit of 1000 frames
# (3.11 runs Python-to-Python calls without C recursion: the C stack is fine)
if sys.getrecursionlimit() < MAX_DEPTH + 200:
    sys.setrecursionlimit(MAX_DEPTH + 200)

_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"))


# -- the template-like rendering ------------------------------------------------

def escape(text):
    for raw, entity in _ESCAPES:
        if raw in text:
            text = text.replace(raw, entity)
    return text


def format_number(value):
    if value < 0:
        return "-" + format_number(-value)
    return "{:,}".format(value)


def format_text(value):
    return escape(str(value))


def css_class(column, value):
    if column == 0:
        return "id"
    return "odd" if value & 1 else "even"


def cell_value(row_index, column):
    return (row_index * 31 + column * 17) % 10007 - 97


def format_cell(row_index, column):
    value = cell_value(row_index, column)
    if column % 3 == 0:
        text = format_number(value)
    else:
        text = format_text("<v%d & %d>" % (column, value))
    return text, css_class(column, value)


def attr(name, value):
    return ' %s="%s"' % (name, escape(value))


def open_tag(name, cls):
    return "<%s%s>" % (name, attr("class", cls))


def close_tag(name):
    return "</%s>" % name


def render_cell(row_index, column):
    text, cls = format_cell(row_index, column)
    return open_tag("td", cls) + text + close_tag("td")


def render_row(row_index):
    parts = [open_tag("tr", css_class(row_index, row_index))]
    for column in range(COLUMNS):
        parts.append(render_cell(row_index, column))
    parts.append(close_tag("tr"))
    return "".join(parts)


def render_table(rows=ROWS):
    out = [open_tag("table", "report")]
    for row_index in range(rows):
        out.append(render_row(row_index))
    out.append(close_tag("table"))
    return "\n".join(out)


# -- CPU-bound views for the sample-rate part -------------------------------

def recurse(depth, ms):
    if depth <= 1:
        return burn_cpu(ms)
    return recurse(depth - 1, ms)


def _int(params, name, default, limit):
    try:
        value = int(params.get(name, [default])[0])
    except ValueError:
        value = default
    return max(0, min(value, limit))


# -- views ------------------------------------------------------------------

def view_render(params):
    return render_table()


def view_render_sleep(params):
    page = render_table()
    time.sleep(0.002)
    return page


def build_objects(n):
    """n small dicts, each with a list and two strings: what an ORM or a
    JSON decoder makes (PyProfAllocations' allocation-heavy view)."""
    rows = []
    for i in range(n):
        rows.append({"id": i, "name": "row-%d" % i, "tags": [i, str(i)]})
    return len(rows)


def view_alloc(params):
    n = _int(params, "n", 2000, 1000000)
    return "built %d\n" % build_objects(n)


def view_cpu(params):
    ms = _int(params, "ms", 100, MAX_MS)
    burn_cpu(ms)
    return "burned %d ms\n" % ms


def view_deep(params):
    depth = _int(params, "depth", 30, MAX_DEPTH)
    ms = _int(params, "ms", 100, MAX_MS)
    if params.get("mode", ["cpu"])[0] == "sleep":
        recurse_sleep(depth, ms)
        return "slept %d ms at depth %d\n" % (ms, depth)
    recurse(depth, ms)
    return "burned %d ms at depth %d\n" % (ms, depth)


# -- the accuracy workload -------------------------------------------------------
# Each function is its own leaf: the CPU ones loop inline (time.thread_time is
# C, so no Python frame below them), the sleeping ones call time.sleep.

def split_cpu_10(ms):
    deadline = time.thread_time() + ms / 1000.0
    spins = 0
    while time.thread_time() < deadline:
        spins = (spins * 7 + 3) % 1000003
    return spins


def split_sleep_20(ms):
    time.sleep(ms / 1000.0)


def split_cpu_30(ms):
    deadline = time.thread_time() + ms / 1000.0
    spins = 0
    while time.thread_time() < deadline:
        spins = (spins * 7 + 3) % 1000003
    return spins


def split_sleep_40(ms):
    time.sleep(ms / 1000.0)


SPLIT = ((split_cpu_10, 0.10), (split_sleep_20, 0.20), (split_cpu_30, 0.30),
         (split_sleep_40, 0.40))


def view_split(params):
    total = _int(params, "total", 400, MAX_MS)
    wall = {}
    for func, share in SPLIT:
        t0 = time.perf_counter()
        func(total * share)
        wall[func.__name__] = (time.perf_counter() - t0) * 1000.0
    return json.dumps({"total_ms": total, "wall_ms": wall}) + "\n"


# -- one long GIL-holding C call ---------------------------------------------------

_STUCK_RE = re.compile(r"(a+)+$")


def view_stuck(params):
    n = _int(params, "n", 25, 27)
    text = "a" * n + "b"
    t0 = time.perf_counter()
    matched = _STUCK_RE.match(text)  # STUCK-CALL: ~1 s in C, GIL held
    took = (time.perf_counter() - t0) * 1000.0
    return json.dumps({"n": n, "matched": matched is not None, "ms": took}) + "\n"


def view_nap(params):
    time.sleep(_int(params, "ms", 1, MAX_MS) / 1000.0)
    return "ok\n"


def recurse_sleep(depth, ms):
    if depth <= 1:
        time.sleep(ms / 1000.0)
        return 0
    return recurse_sleep(depth - 1, ms)


def view_version(params):
    try:
        import mod_wsgi
        wsgi = ".".join(str(v) for v in mod_wsgi.version)
    except ImportError:
        wsgi = "unknown"
    return "python=%s\nmod_wsgi=%s\n" % (sys.version.split()[0], wsgi)


def view_ping(params):
    return "pong\n"


VIEWS = {
    "render": view_render,
    "render_sleep": view_render_sleep,
    "cpu": view_cpu,
    "deep": view_deep,
    "split": view_split,
    "stuck": view_stuck,
    "nap": view_nap,
    "alloc": view_alloc,
    "bench_profiler": lambda params: view_bench_profiler(params),
    "version": view_version,
    "ping": view_ping,
}


def dispatch(environ):
    path = environ.get("PATH_INFO", "") or "/"
    name = path.split("/")[1] if path.count("/") >= 1 else ""
    view = VIEWS.get(name)
    if view is None:
        return None
    return view(parse_qs(environ.get("QUERY_STRING", "")))


def application(environ, start_response):
    page = dispatch(environ)
    if page is None:
        body = b"not found\n"
        status = "404 Not Found"
    else:
        body = page.encode("utf-8")
        status = "200 OK"
    start_response(status, [("Content-Type", "text/html; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [body]


# -- the peer profilers (one per variant, see the module docstring) ------------

PROFILER = "none"
_plain_application = application


class CProfileMerger:
    """cProfile per request, merged into one process-wide pstats.Stats."""

    def __init__(self, app):
        import cProfile
        import pstats
        self._cProfile = cProfile
        self._pstats = pstats
        self.app = app
        self.lock = threading.Lock()
        self.stats = None
        self.requests = 0

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/bench_profiler"):
            return self.app(environ, start_response)
        prof = self._cProfile.Profile()
        prof.enable()
        try:
            return self.app(environ, start_response)
        finally:
            prof.disable()
            with self.lock:
                if self.stats is None:
                    self.stats = self._pstats.Stats(prof)
                else:
                    self.stats.add(prof)
                self.requests += 1

    def state(self, params):
        with self.lock:
            return {"requests": self.requests,
                    "functions": len(self.stats.stats) if self.stats else 0,
                    "calls": self.stats.total_calls if self.stats else 0}


class YappiAllThreads:
    """yappi, wall clock, all threads.  yappi.start() hooks the thread states
    that exist and, through threading.setprofile, threads started later by
    the threading module; mod_wsgi's request threads are neither, so each
    is handed to yappi on its first request exactly as that hook would
    (sys.setprofile(yappi's callback): yappi installs its C profiler on the
    thread's next call event)."""

    def __init__(self, app):
        import yappi
        self.yappi = yappi
        self.app = app
        self.local = threading.local()
        self.threads = set()
        yappi.set_clock_type("wall")
        yappi.start(builtins=False, profile_threads=True)

    def __call__(self, environ, start_response):
        if not getattr(self.local, "hooked", False):
            self.local.hooked = True
            self.threads.add(threading.get_ident())
            if sys.getprofile() is None:
                sys.setprofile(self.yappi._profile_thread_callback)
        return self.app(environ, start_response)

    def state(self, params):
        funcs = self.yappi.get_func_stats()
        return {"running": self.yappi.is_running(), "hooked_threads": len(self.threads),
                "yappi_threads": len(self.yappi.get_thread_stats()),
                "functions": len(funcs)}


class PySampler:
    """The classic pure-Python sampler: every `interval` s, sys._current_frames()
    and each other thread's stack (leaf first, (function, file, line)) counted
    in a dict, with the wall time since the previous tick as its weight."""

    def __init__(self, interval=0.01, max_depth=128):
        self.interval = interval
        self.max_depth = max_depth
        self.lock = threading.Lock()
        self.counts = {}
        self.ticks = 0
        self.samples = 0
        self.thread = threading.Thread(target=self.run, name="pysampler", daemon=True)
        self.thread.start()

    def run(self):
        me = threading.get_ident()
        last = time.perf_counter()
        while True:
            time.sleep(self.interval)
            now = time.perf_counter()
            elapsed, last = now - last, now
            frames = sys._current_frames()
            with self.lock:
                self.ticks += 1
                for tid, frame in frames.items():
                    if tid == me:
                        continue
                    stack = []
                    depth = 0
                    while frame is not None and depth < self.max_depth:
                        code = frame.f_code
                        stack.append((code.co_name, code.co_filename, frame.f_lineno))
                        frame = frame.f_back
                        depth += 1
                    key = tuple(stack)
                    entry = self.counts.get(key)
                    if entry is None:
                        self.counts[key] = [1, elapsed]
                    else:
                        entry[0] += 1
                        entry[1] += elapsed
                    self.samples += 1
            del frames

    def state(self, params):
        with self.lock:
            out = {"ticks": self.ticks, "samples": self.samples, "stacks": len(self.counts)}
            if params.get("stacks", ["0"])[0] == "1":
                # leaf function -> [count, weight ms]; ?within=F: only the
                # stacks that pass through function F
                within = params.get("within", [None])[0]
                out["leaves"] = {}
                for key, (count, weight) in self.counts.items():
                    if within and not any(fr[0] == within for fr in key):
                        continue
                    leaf = key[0][0] if key else "(none)"
                    agg = out["leaves"].setdefault(leaf, [0, 0.0])
                    agg[0] += count
                    agg[1] += weight * 1000.0
            if params.get("reset", ["0"])[0] == "1":
                self.counts = {}
                self.ticks = 0
                self.samples = 0
        return out


_PROFILER_OBJ = None


def view_bench_profiler(params):
    state = {"profiler": PROFILER}
    if _PROFILER_OBJ is not None:
        state.update(_PROFILER_OBJ.state(params))
    return json.dumps(state) + "\n"


def install_profiler(name):
    """Called by the last line of each variant's copy of this file."""
    global PROFILER, _PROFILER_OBJ, application
    PROFILER = name
    if name == "cprofile":
        _PROFILER_OBJ = application = CProfileMerger(_plain_application)
    elif name == "yappi":
        _PROFILER_OBJ = application = YappiAllThreads(_plain_application)
    elif name == "pysampler":
        _PROFILER_OBJ = PySampler(0.01)
    elif name != "none":
        raise ValueError("unknown profiler %r" % name)
