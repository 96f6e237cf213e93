"""WSGI application for the GIL-free sampler tests (test_nogil.py).

Every view calls functions with distinctive names, so a test can find them
in sampled stacks.  The first path segment after the mount point picks the
view; anything after it (a per-test tag, a nonce) is ignored by the view
unless it says otherwise.

    /app/fast                     returns at once
    /app/pid                      the serving process' pid
    /app/cpu?ms=N                 burn_cpu(N): N ms of thread CPU in bytecode
    /app/mixed?cpu=N&sleep=M      burn_cpu(N) then sleep_for(M) (?pre=N first)
    /app/busy?ms=N                busy_render(N): a short pure-Python loop
    /app/regex_calibrate?target_ms=T
                                  picks (once per process) the N for which
                                  CATASTROPHIC.match('a' * N + 'b') takes
                                  about T ms of CPU; JSON {n, probe_n,
                                  probe_ms, predicted_ms}
    /app/regex                    catastrophic_regex(N) with the calibrated N;
                                  JSON {n, ms, cpu_ms, matched, line, file,
                                  function}
    /app/torture/KIND/TAG-nNONCE?ms=B
                                  about B ms of one kind of frame churn:
                                  threads, gen, exc, recurse, subinterp, exec,
                                  sqlite, fork, import (exec and import name
                                  their functions, and import its file, after
                                  NONCE; fork answers an error unless this is
                                  the main interpreter and the only one)
    /app/inventory                JSON {pid, functions: {qualname: {file:
                                  [lines]}}}: every code object this process
                                  can have run (see code_inventory)

Why `CATASTROPHIC.match(...)` and not `re.match(...)`: re.match is a Python
function (Lib/re/__init__.py) that calls the C matcher, so with re.match the
leaf Python frame during the backtrack is re's `match`, not ours.  A
precompiled pattern's .match is the C call itself, made from the line that
REGEX_LINE names.

It must stay importable by the Python that mod_wsgi embeds (Debian's 3.11),
never write to stderr (the harness treats [error] log lines as failures),
and keep every loop bounded.
"""

import asyncio
import gc
import importlib.util
import inspect
import json
import marshal
import os
import re
import signal
import sqlite3
import sys
import threading
import time
import types

# burn_cpu, ms_param, dispatch and the cpu and mixed views: pyprof_testlib.py,
# copied next to this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyprof_testlib import burn_cpu  # noqa: E402
from pyprof_testlib import dispatch, ms_param as _ms  # noqa: E402
from pyprof_testlib import view_cpu, view_mixed  # noqa: E402

try:
    import _imp
except ImportError:  # pragma: no cover
    _imp = None

# Sub-interpreters the app makes itself: _xxsubinterpreters (3.11, 3.12),
# renamed _interpreters in 3.13 (exec() instead of run_string(), and a
# config: "legacy" shares the main GIL as mod_wsgi's groups do, "isolated"
# has a GIL of its own, which GIL mode must leave alone).
try:
    import _xxsubinterpreters as subinterpreters
except ImportError:
    try:
        import _interpreters as subinterpreters
    except ImportError:
        subinterpreters = None

RECURSION_DEPTH = 5000
sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_DEPTH + 2000))

CATASTROPHIC = re.compile(r'(a+)+$')


# -- plain work ---------------------------------------------------------------

def busy_render(ms):
    """A short CPU-bound pure-Python loop: `ms` of this thread's CPU."""
    deadline = time.thread_time() + ms / 1000.0
    rows = []
    for i in range(1000000):
        rows.append("<td>%d</td>" % (i * 31 % 977))
        if len(rows) >= 50:
            rows = rows[25:]
        if time.thread_time() >= deadline:
            break
    return len(rows)


# -- the catastrophic regular expression --------------------------------------

def catastrophic_regex(n):
    subject = 'a' * n + 'b'
    return CATASTROPHIC.match(subject)  # the long GIL-holding C call


def _line_of(function, needle):
    lines, first = inspect.getsourcelines(function)
    for offset, text in enumerate(lines):
        if needle in text:
            return first + offset
    raise LookupError(needle)


REGEX_LINE = _line_of(catastrophic_regex, "CATASTROPHIC.match(")

_calibrated = {}


def regex_probe(n):
    """CPU ms of one backtrack of N (CPU, not wall: a busy machine must not
    make the calibration pick a short one)."""
    started = time.thread_time()
    CATASTROPHIC.match('a' * n + 'b')
    return (time.thread_time() - started) * 1000.0


def calibrate_regex(target_ms):
    """The smallest-to-probe N whose backtrack takes about target_ms.

    Each extra 'a' doubles the work: probe upwards from a small N (at most
    20 probes, stopping once a probe takes 40 ms), then extrapolate."""
    if "n" in _calibrated:
        return _calibrated
    n, ms = 12, 0.0
    for _ in range(20):
        ms = regex_probe(n)
        if ms >= 40.0:
            break
        n += 1
    # noise only ever adds CPU time (a cache or a sibling thread): the
    # least of three probes of the N chosen is the one to extrapolate
    # from (one inflated probe had the backtrack take 274 ms, not ~900)
    ms = min(ms, regex_probe(n), regex_probe(n))
    steps = 0
    while ms * 2 <= target_ms and steps < 8:
        ms *= 2
        steps += 1
    _calibrated.update(n=n + steps, probe_n=n, probe_ms=regex_probe(n),
                       predicted_ms=ms)
    return _calibrated


# -- torture --------------------------------------------------------------------

def tiny_leaf(x):
    return x * 3 + 1


def tiny_middle(x):
    return tiny_leaf(x) + tiny_leaf(x + 1)


def tiny_calls(rounds):
    total = 0
    for i in range(rounds):
        total += tiny_middle(i)
    return total


def thread_worker(seed):
    return tiny_calls(200 + seed)


def torture_threads(deadline):
    """Threads that start, run short frames and end, while this thread
    churns frames of its own."""
    rounds = 0
    while time.perf_counter() < deadline and rounds < 500:
        workers = [threading.Thread(target=thread_worker, args=(i,)) for i in range(4)]
        for w in workers:
            w.start()
        tiny_calls(100)
        for w in workers:
            w.join(2.0)
        rounds += 1
    return rounds


def gen_numbers(limit):
    for i in range(limit):
        yield i


def gen_squares(numbers):
    for n in numbers:
        yield n * n


def gen_pipeline(limit):
    return sum(gen_squares(gen_numbers(limit)))


async def coro_step(i):
    await asyncio.sleep(0)
    return tiny_leaf(i)


async def coro_worker(k):
    total = 0
    for i in range(50):
        total += await coro_step(i + k)
    return total


async def coro_main():
    results = await asyncio.gather(*(coro_worker(k) for k in range(5)))
    await asyncio.sleep(0.001)
    return sum(results)


def torture_gen(deadline):
    rounds = 0
    while time.perf_counter() < deadline and rounds < 500:
        gen_pipeline(500)
        asyncio.run(coro_main())
        rounds += 1
    return rounds


class TortureError(Exception):
    pass


def exc_raise(i):
    raise TortureError(i)


def exc_level3(i):
    return exc_raise(i)


def exc_level2(i):
    try:
        return exc_level3(i)
    finally:
        tiny_leaf(i)


def exc_level1(i):
    return exc_level2(i)


def torture_exc(deadline):
    caught = 0
    for i in range(1000000):
        if time.perf_counter() >= deadline:
            break
        try:
            exc_level1(i)
        except TortureError:
            caught += 1
    return caught


def recurse_deep(n):
    if n <= 0:
        return burn_cpu(3)
    return recurse_deep(n - 1) + 1


def torture_recurse(deadline):
    rounds = 0
    while time.perf_counter() < deadline and rounds < 100:
        recurse_deep(RECURSION_DEPTH)
        rounds += 1
    return rounds


# run_string() compiles its text as "<string>", the file name of every
# exec() of a str (site's .pth lines too): the torture's own code gets a
# file name of its own through a one-line bootstrap.
SUBINTERP_FILE = "<subinterp-torture>"
SUBINTERP_SRC = """\
def subinterp_leaf(x):
    return x * 5 + 2

def subinterp_work(rounds):
    total = 0
    for i in range(rounds):
        total += subinterp_leaf(i)
    return total

subinterp_work(20000)
"""
SUBINTERP_BOOT = "exec(compile(%r, %r, 'exec'))\n" % (SUBINTERP_SRC, SUBINTERP_FILE)


def torture_subinterp(deadline):
    if subinterpreters is None:
        return -1
    rounds = 0
    while time.perf_counter() < deadline and rounds < 20:
        if hasattr(subinterpreters, "run_string"):
            interp = subinterpreters.create()
        else:
            interp = subinterpreters.create("isolated" if rounds % 2 else "legacy")
        try:
            if hasattr(subinterpreters, "run_string"):
                subinterpreters.run_string(interp, SUBINTERP_BOOT)
            else:
                failed = subinterpreters.exec(interp, SUBINTERP_BOOT)
                if failed is not None:
                    raise RuntimeError("sub-interpreter: %s" % (failed.formatted,))
        finally:
            subinterpreters.destroy(interp)
        rounds += 1
    return rounds


NONCE = re.compile(r"-n([0-9a-f]{6,32})$")
# what the functions of both templates (exec'd, imported) compute
SUM_OF_SQUARES = """\
    total = 0
    for i in range(k):
        total += i * i
    return total
"""
EXEC_TEMPLATE = ("def nonce_inner_{nonce}(k):\n" + SUM_OF_SQUARES + """
def nonce_outer_{nonce}(k):
    return nonce_inner_{nonce}(k) + 1
""")


def exec_filename(nonce):
    return "<nonce-%s>" % nonce


def torture_exec(deadline, nonce):
    """Fresh code objects every round, freed again at once: their addresses
    (and their names' addresses) are reused by the next round's."""
    names = []
    rounds = 0
    while rounds < 2000 and (rounds == 0 or time.perf_counter() < deadline):
        source = EXEC_TEMPLATE.format(nonce=nonce)
        namespace = {}
        exec(compile(source, exec_filename(nonce), "exec"), namespace)
        namespace["nonce_outer_%s" % nonce](300)
        if not names:
            names = sorted(k for k in namespace if k.startswith("nonce_"))
        del namespace
        rounds += 1
    return rounds, names


# A C extension that releases the GIL: sqlite3 steps its statement with
# Py_BEGIN_ALLOW_THREADS, so the request thread is in the app, off the GIL,
# with sqlite_count_rows as its leaf Python frame for the whole query.
SQLITE_QUERY = ("WITH RECURSIVE counter(x) AS (SELECT 1 UNION ALL "
                "SELECT x + 1 FROM counter WHERE x < ?) SELECT count(*), sum(x) FROM counter")
SQLITE_ROWS = 25000     # about 5 ms on a 2020s CPU


def sqlite_count_rows(conn, rows):
    return conn.execute(SQLITE_QUERY, (rows,)).fetchone()  # the GIL-free C call


SQLITE_LINE = _line_of(sqlite_count_rows, "conn.execute(")


def torture_sqlite(deadline):
    conn = sqlite3.connect(":memory:")
    rounds = 0
    try:
        while rounds < 200 and (rounds == 0 or time.perf_counter() < deadline):
            count, total = sqlite_count_rows(conn, SQLITE_ROWS)
            if count != SQLITE_ROWS or total != SQLITE_ROWS * (SQLITE_ROWS + 1) // 2:
                raise ValueError("sqlite counted %r, %r" % (count, total))
            rounds += 1
    finally:
        conn.close()
    return rounds


# os.fork() inside a request.  The child runs forked_child_work (a function
# nothing else runs: if its frames ever reach the request's samples, the
# child wrote into the parent's request) and always leaves with os._exit,
# never returning into mod_wsgi.  The parent reaps it with a bounded wait.
FORK_WAIT_SECONDS = 2.0     # a child exits within ~50 ms; a hung one is killed


def forked_child_work(rounds):
    total = 0
    for i in range(rounds):
        total += tiny_leaf(i) % 7
    return total


def fork_parent_work(rounds):
    return tiny_calls(rounds)


def fork_and_reap():
    """(exit code or None, how, ms to reap) of one forked child."""
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            forked_child_work(20000)
            code = 0
        finally:
            os._exit(code)
    fork_parent_work(50)
    deadline = time.perf_counter() + FORK_WAIT_SECONDS
    how = "timeout"
    status = None
    for _ in range(100000):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            how = "reaped elsewhere"
            break
        if done == pid:
            how = "waited"
            break
        if time.perf_counter() >= deadline:
            break
        time.sleep(0.0005)
    if how == "timeout":
        os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    code = os.waitstatus_to_exitcode(status) if how == "waited" else None
    return code, how, (time.perf_counter() - started) * 1000.0


def fork_refused():
    """Why os.fork() here would break the child (None if it would not).
    Python 3.11's child of a fork from a sub-interpreter dies of a fatal
    error in PyOS_AfterFork_Child; from the main interpreter while another
    interpreter exists, it hangs there (test_nogil.py, at the top)."""
    if subinterpreters is None:
        return None
    if subinterpreters.get_current() != subinterpreters.get_main():
        return "not in the main interpreter"
    others = len(subinterpreters.list_all()) - 1
    if others:
        return "%d other interpreters exist" % others
    return None


def torture_fork(deadline):
    """{rounds, codes, hows, max_reap_ms}: at least one fork, then more
    until the deadline (at most 20)."""
    refused = fork_refused()
    if refused:
        return {"error": "os.fork() refused: %s" % refused}
    codes, hows, slowest = [], [], 0.0
    for _ in range(20):
        code, how, ms = fork_and_reap()
        codes.append(code)
        if how not in hows:
            hows.append(how)
        slowest = max(slowest, ms)
        if time.perf_counter() >= deadline:
            break
    return {"rounds": len(codes), "codes": codes, "hows": hows,
            "max_reap_ms": round(slowest, 2)}


# A brand-new module imported in the request (hashlib's pattern: module
# code that defines a function, calls it at import time, then dels it),
# freed again at once: the module's code objects live only while it is
# imported, so their addresses are reused by the next round's.  The file
# is named after the request's nonce and lives in IMPORT_DIR, a directory
# the test makes writable beside this file.
IMPORT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nogil_imports")
IMPORT_TEMPLATE = ("""\
import time

def nonce_imported_{nonce}(k):
""" + SUM_OF_SQUARES + """
_deadline = time.perf_counter() + {seconds!r}
_rounds = 0
while _rounds < 1000 and (_rounds == 0 or time.perf_counter() < _deadline):
    nonce_imported_{nonce}(300)
    _rounds += 1
ROUNDS = _rounds
del nonce_imported_{nonce}
""")
IMPORT_ROUND_SECONDS = 0.005
_import_lock = threading.Lock()


def import_module_name(nonce):
    return "nonce_mod_%s" % nonce


def import_filename(nonce):
    return os.path.join(IMPORT_DIR, import_module_name(nonce) + ".py")


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def import_fresh_module(nonce, seconds):
    name = import_module_name(nonce)
    path = import_filename(nonce)
    with _import_lock:
        if IMPORT_DIR not in sys.path:
            sys.path.append(IMPORT_DIR)
    with open(path, "w") as f:
        f.write(IMPORT_TEMPLATE.format(nonce=nonce, seconds=seconds))
    try:
        importlib.invalidate_caches()
        module = importlib.import_module(name)
        rounds = module.ROUNDS
        leftover = [k for k in vars(module) if k.startswith("nonce_")]
    finally:
        sys.modules.pop(name, None)
        _remove(path)
        _remove(importlib.util.cache_from_source(path))
    del module
    return rounds, leftover


def torture_import(deadline, nonce):
    rounds, calls, leftover = 0, 0, []
    while rounds < 50:
        seconds = min(IMPORT_ROUND_SECONDS, max(deadline - time.perf_counter(), 0.0))
        n, left = import_fresh_module(nonce, seconds)
        calls += n
        leftover += left
        rounds += 1
        if time.perf_counter() >= deadline:
            break
    return rounds, calls, leftover


# -- what this process can have run -------------------------------------------

def _module_code(name, module):
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None) if spec else None
    if origin == "frozen" and _imp is not None:
        try:
            return _imp.get_frozen_object(name)
        except Exception:
            return None
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        return None
    try:
        cached = importlib.util.cache_from_source(path)
        with open(cached, "rb") as f:
            data = f.read()
        return marshal.loads(data[16:])
    except Exception:
        pass
    try:
        with open(path, "rb") as f:
            return compile(f.read(), path, "exec", dont_inherit=True)
    except Exception:
        return None


def code_inventory():
    """{qualname: {filename: sorted lines}} for every code object this
    process can have executed: every live function's code and every
    loaded module's module code (with class bodies and comprehensions),
    walked through co_consts; plus what the torture views compile."""
    found = {}
    inventory = {}
    pending = []

    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType):
            pending.append(obj.__code__)
    for name, module in list(sys.modules.items()):
        code = _module_code(name, module)
        if code is not None:
            pending.append(code)
    pending.append(compile(SUBINTERP_SRC, SUBINTERP_FILE, "exec"))
    pending.append(compile(SUBINTERP_BOOT, "<string>", "exec"))
    # _interpreters.exec() (3.13+) names its text "<script>"
    pending.append(compile(SUBINTERP_BOOT, "<script>", "exec"))
    for _ in range(2000000):
        if not pending:
            break
        code = pending.pop()
        if id(code) in found:
            continue
        found[id(code)] = code
        lines = {line for _, _, line in code.co_lines() if line is not None}
        lines.add(code.co_firstlineno)
        inventory.setdefault(code.co_qualname, {}).setdefault(
            code.co_filename, set()).update(lines)
        pending.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return {q: {f: sorted(ls) for f, ls in files.items()}
            for q, files in inventory.items()}


# -- dispatch ---------------------------------------------------------------------

def view_fast(environ, params):
    return "fast\n"


def view_pid(environ, params):
    return "%d\n" % os.getpid()


def view_busy(environ, params):
    return "rows %d\n" % busy_render(_ms(params, "ms", 3))


def view_regex_calibrate(environ, params):
    return json.dumps(calibrate_regex(_ms(params, "target_ms", 800) or 800))


def view_regex(environ, params):
    n = calibrate_regex(800)["n"]
    started, cpu = time.perf_counter(), time.thread_time()
    matched = catastrophic_regex(n)
    took = (time.perf_counter() - started) * 1000.0
    cpu = (time.thread_time() - cpu) * 1000.0
    return json.dumps({"n": n, "ms": took, "cpu_ms": cpu, "matched": matched is not None,
                       "line": REGEX_LINE, "function": catastrophic_regex.__qualname__,
                       "file": catastrophic_regex.__code__.co_filename})


TORTURE = {
    "threads": torture_threads,
    "gen": torture_gen,
    "exc": torture_exc,
    "recurse": torture_recurse,
    "subinterp": torture_subinterp,
    "sqlite": torture_sqlite,
}


def view_torture(environ, params):
    parts = (environ.get("PATH_INFO", "") or "/").split("/")
    kind = parts[2] if len(parts) > 2 else ""
    budget = _ms(params, "ms", 30) / 1000.0
    deadline = time.perf_counter() + budget
    result = {"kind": kind, "pid": os.getpid()}
    if kind == "exec":
        match = NONCE.search(parts[-1])
        if not match:
            return json.dumps({"error": "no nonce in %s" % parts[-1]})
        result["nonce"] = match.group(1)
        result["rounds"], result["names"] = torture_exec(deadline, match.group(1))
        result["file"] = exec_filename(match.group(1))
    elif kind == "import":
        match = NONCE.search(parts[-1])
        if not match:
            return json.dumps({"error": "no nonce in %s" % parts[-1]})
        result["nonce"] = match.group(1)
        result["rounds"], result["calls"], result["leftover"] = torture_import(
            deadline, match.group(1))
        result["file"] = import_filename(match.group(1))
    elif kind == "fork":
        result.update(torture_fork(deadline))
    elif kind in TORTURE:
        result["rounds"] = TORTURE[kind](deadline)
        if kind == "subinterp" and result["rounds"] < 0:
            result["unavailable"] = True
        if kind == "sqlite":
            result.update(function=sqlite_count_rows.__qualname__, line=SQLITE_LINE,
                          file=sqlite_count_rows.__code__.co_filename)
    else:
        return json.dumps({"error": "unknown kind %r" % kind})
    return json.dumps(result)


def view_inventory(environ, params):
    return json.dumps({"pid": os.getpid(), "functions": code_inventory(),
                       "exec_template": EXEC_TEMPLATE,
                       "import_template": IMPORT_TEMPLATE, "import_dir": IMPORT_DIR,
                       "subinterpreters": subinterpreters is not None})


def view_echo(environ, params):
    return "echo %s\n" % environ.get("PATH_INFO", "")


VIEWS = {
    "fast": view_fast,
    "pid": view_pid,
    "cpu": view_cpu,
    "mixed": view_mixed,
    "busy": view_busy,
    "regex_calibrate": view_regex_calibrate,
    "regex": view_regex,
    "torture": view_torture,
    "inventory": view_inventory,
}


def application(environ, start_response):
    body = dispatch(environ, VIEWS, view_echo).encode("utf-8", "backslashreplace")
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
