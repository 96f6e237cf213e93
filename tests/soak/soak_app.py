"""WSGI application for the soak / fault-injection run (tests/soak/soak.py).

Mounted at /app; requests under /app/deep are the same views under a second
PyProfSample prefix (sampled every 1 ms instead of 10 ms).  PATH_INFO is
"/deep/<view>/..." there: the "deep" segment is skipped.

    /fast                      returns at once
    /slow?ms=N                 sleep_for(N)
    /cpu?ms=N                  burn_cpu(N)
    /recurse?depth=D&ms=N      D nested calls of recurse(), then sleep_for(N)
    /gen?n=N&ms=M              a generator pipeline (produce -> transform ->
                               consume), sleeping M ms every 4th item, in a
                               pyprof.segment
    /exc?depth=D&count=C&ms=M  C times: raise through D frames of thrower()
                               (each with a finally) and catch it
    /coro?n=N&ms=M             a chain of N coroutines (async def) driven by
                               send(), the innermost awaits a sleep
    /pid                       the serving process' pid

For store exhaustion (never in the soak mix):

    /unique/TOKEN?depth=D&ms=N&pad=P
        compiles (exec) D fresh functions u_<TOKEN>_<k>[_xxx...] in a file
        named /soak-unique/<TOKEN>[/yyy...].py, calls the chain and sleeps
        at its end: every request interns D new frames.  P pads the names
        (and file) to make each frame's text long, so the frame-text arena
        rather than the frame table runs out first.
    /paths/TOKEN?depth=D&ms=N
        a walk of D calls through the fixed functions p0..p7, in an order
        taken from sha256(TOKEN): every request makes new stack nodes from
        a handful of frames.

Function names are distinctive so the checker can resolve every frame it
sees against this file (soak.py parses it); the exhaustion checker
recomputes the names and orders a TOKEN must produce.  The app never
writes to stderr (an [error] line fails the run).
"""

import hashlib
import os
import re
import sys
from urllib.parse import parse_qs

# burn_cpu and sleep_for: pyprof_testlib.py, which the harness copies next
# to this file; read in place (soak.py loads this file from tests/soak for
# its checks) it is tests/integration/apps'
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.append(os.path.join(_HERE, os.pardir, "integration", "apps"))
from pyprof_testlib import burn_cpu, sleep_for  # noqa: E402

try:
    import pyprof  # daemon mode: starts the daemon process' sampler
except ImportError:  # embedded without pyext on the path: not needed there
    pyprof = None

MAX_MS = 5000
MAX_DEPTH = 5000
sys.setrecursionlimit(max(sys.getrecursionlimit(), MAX_DEPTH + 200))

TOKEN_RE = re.compile(r"[^A-Za-z0-9]")
PATH_FUNCS = 8


class _NoSegment(object):
    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


segment = pyprof.segment if pyprof is not None else _NoSegment


def _int(params, name, default, lo=0, hi=MAX_MS):
    try:
        value = int(params.get(name, [default])[0])
    except ValueError:
        value = default
    return max(lo, min(value, hi))


# -- the soak mix ----------------------------------------------------------

def view_fast(params, rest):
    return "fast\n"


def view_slow(params, rest):
    ms = _int(params, "ms", 60)
    sleep_for(ms)
    return "slept %d ms\n" % ms


def view_cpu(params, rest):
    ms = _int(params, "ms", 10)
    burn_cpu(ms)
    return "burned %d ms\n" % ms


def recurse(n, ms):
    if n <= 0:
        sleep_for(ms)
        return 0
    return recurse(n - 1, ms) + 1


def view_recurse(params, rest):
    depth = _int(params, "depth", 200, 0, MAX_DEPTH)
    ms = _int(params, "ms", 10)
    return "depth %d\n" % recurse(depth, ms)


def produce(n, ms):
    for i in range(n):
        if i % 4 == 0:
            sleep_for(ms)
        yield i


def transform(items):
    for x in items:
        yield x * 2 + 1


def consume(items):
    total = 0
    for x in items:
        total += x
    return total


def view_gen(params, rest):
    n = _int(params, "n", 40, 0, 10000)
    ms = _int(params, "ms", 2)
    with segment("gen", detail="n=%d" % n):
        total = consume(transform(produce(n, ms)))
    return "sum %d\n" % total


class SoakError(Exception):
    pass


def thrower(depth, ms):
    try:
        if depth <= 0:
            sleep_for(ms)
            raise SoakError("bottom")
        thrower(depth - 1, ms)
    finally:
        depth -= 1


def view_exc(params, rest):
    depth = _int(params, "depth", 30, 0, 500)
    count = _int(params, "count", 5, 0, 100)
    ms = _int(params, "ms", 2)
    caught = 0
    for _ in range(count):
        with segment("exc"):
            try:
                thrower(depth, ms)
            except SoakError:
                caught += 1
    return "caught %d\n" % caught


class Nap(object):
    """An awaitable that sleeps, then suspends once (so send() drives it)."""

    def __init__(self, ms):
        self.ms = ms

    def __await__(self):
        sleep_for(self.ms)
        yield self.ms
        return self.ms


async def coro_leaf(ms):
    return await Nap(ms)


async def coro_chain(n, ms):
    if n <= 0:
        return await coro_leaf(ms)
    return await coro_chain(n - 1, ms) + 1


def drive(coro, limit=100000):
    for _ in range(limit):
        try:
            coro.send(None)
        except StopIteration as stop:
            return stop.value
    coro.close()
    return None


def view_coro(params, rest):
    n = _int(params, "n", 20, 0, 500)
    ms = _int(params, "ms", 2)
    total = 0
    for _ in range(3):
        total += drive(coro_chain(n, ms))
    return "coro %d\n" % total


def view_pid(params, rest):
    return "%d\n" % os.getpid()


# -- store exhaustion --------------------------------------------------------

def unique_name(token, k, pad):
    return "u_%s_%d" % (token, k) + ("_" + "x" * pad if pad else "")


def unique_file(token, pad):
    return "/soak-unique/%s%s.py" % (token, "/" + "y" * pad if pad else "")


def view_unique(params, rest):
    token = TOKEN_RE.sub("", rest)[:40] or "none"
    depth = _int(params, "depth", 20, 1, 100)
    ms = _int(params, "ms", 100)
    pad = _int(params, "pad", 0, 0, 900)
    names = [unique_name(token, k, pad) for k in range(depth)]
    lines = []
    for k, name in enumerate(names):
        callee = names[k + 1] if k + 1 < depth else "sleep_for"
        lines.append("def %s(ms):\n    return %s(ms)\n" % (name, callee))
    namespace = {"sleep_for": sleep_for}
    exec(compile("".join(lines), unique_file(token, pad), "exec"), namespace)
    namespace[names[0]](ms)
    return "unique %s %d\n" % (token, depth)


def path_order(token, depth):
    """The p<k> functions a /paths/TOKEN request walks through, root first."""
    digest = b""
    block = 0
    while len(digest) < depth:
        digest += hashlib.sha256(("%s:%d" % (token, block)).encode()).digest()
        block += 1
    return [digest[i] % PATH_FUNCS for i in range(depth)]


def _walk(order, i, ms):
    if i >= len(order):
        sleep_for(ms)
        return 0
    return PATHS[order[i]](order, i + 1, ms)


def p0(order, i, ms):
    return _walk(order, i, ms) + 1


def p1(order, i, ms):
    return _walk(order, i, ms) + 1


def p2(order, i, ms):
    return _walk(order, i, ms) + 1


def p3(order, i, ms):
    return _walk(order, i, ms) + 1


def p4(order, i, ms):
    return _walk(order, i, ms) + 1


def p5(order, i, ms):
    return _walk(order, i, ms) + 1


def p6(order, i, ms):
    return _walk(order, i, ms) + 1


def p7(order, i, ms):
    return _walk(order, i, ms) + 1


PATHS = [p0, p1, p2, p3, p4, p5, p6, p7]


def view_paths(params, rest):
    token = TOKEN_RE.sub("", rest)[:40] or "none"
    depth = _int(params, "depth", 30, 1, 100)
    ms = _int(params, "ms", 100)
    return "paths %s %d\n" % (token, _walk(path_order(token, depth), 0, ms))


VIEWS = {
    "fast": view_fast,
    "slow": view_slow,
    "cpu": view_cpu,
    "recurse": view_recurse,
    "gen": view_gen,
    "exc": view_exc,
    "coro": view_coro,
    "pid": view_pid,
    "unique": view_unique,
    "paths": view_paths,
}


def dispatch(environ):
    parts = (environ.get("PATH_INFO", "") or "/").split("/")[1:]
    if parts and parts[0] == "deep":
        parts = parts[1:]
    name = parts[0] if parts else ""
    rest = "/".join(parts[1:])
    params = parse_qs(environ.get("QUERY_STRING", ""))
    view = VIEWS.get(name, view_fast)
    return view(params, rest)


def application(environ, start_response):
    body = dispatch(environ).encode("utf-8", "backslashreplace")
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
