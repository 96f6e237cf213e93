"""The work the integration tests' WSGI apps do: a CPU burn and a sleep,
and what several apps share around them.

Every app (app.py, app3.py, daemon_app.py, hostile.py, nogil_app.py)
imports them from here rather than keeping a copy of its own:

    from pyprof_testlib import burn_cpu, sleep_for

The apps that take ?ms=N style parameters read them with ms_param.
app.py and nogil_app.py answer through dispatch, with the text views
view_slow (app.py's), view_cpu and view_mixed (both's): `application ->
dispatch -> view_<name>` then spans two files, the names and their order
as before.
daemon_app.py routes with route.  segment_round is what daemon_app.py's
/bench view and tests/bench/segment_cost.py (outside Apache) both time.

The harness (tests/pyhttpd/httpd.py) copies this file into every server's
directory, where the apps are copied too, and each app puts its own
directory on sys.path first; a test that loads an app's source directly
finds this file next to it in tests/integration/apps.  A sampled stack
therefore ends in this file: the tests that pin its leaf pin this file's
name and these functions' lines.

It must stay importable by every Python mod_wsgi embeds (Debian's 3.11,
the chroots' 3.13 to 3.15) and never write to stderr: the harness treats
[error] log lines as failures.
"""

import contextlib
import time
from urllib.parse import parse_qs


def burn_cpu(ms):
    """Spin in Python bytecode until this thread has used `ms` of CPU."""
    deadline = time.thread_time() + ms / 1000.0
    spins = 0
    while time.thread_time() < deadline:
        spins += 1
        spins = (spins * 7 + 3) % 1000003
    return spins


def sleep_for(ms):
    """Wait `ms` milliseconds off-CPU (releases the GIL)."""
    time.sleep(ms / 1000.0)


MAX_MS = 10000


def ms_param(params, name, default=0, top=MAX_MS):
    """A whole-number query parameter (parse_qs's params), milliseconds
    unless told: `default` if it is missing or not a whole number, held to
    0..top."""
    try:
        value = int(params.get(name, [default])[0])
    except ValueError:
        value = default
    return max(0, min(value, top))





def view_slow(environ, params):
    ms = ms_param(params, "ms", 100)
    sleep_for(ms)
    return "slept %d ms\n" % ms


def view_cpu(environ, params):
    ms = ms_param(params, "ms", 100)
    burn_cpu(ms)
    return "burned %d ms\n" % ms


def view_mixed(environ, params):
    cpu = ms_param(params, "cpu", 100)
    sleep = ms_param(params, "sleep", 100)
    burn_cpu(cpu)
    sleep_for(sleep)
    return "burned %d ms, slept %d ms\n" % (cpu, sleep)

def route(environ, views, default):
    """The view the first path segment names (`default` for any other),
    the path, and the query's parameters (parse_qs)."""
    path = environ.get("PATH_INFO", "") or "/"
    name = path.split("/")[1] if path.count("/") >= 1 else ""
    return views.get(name, default), path, parse_qs(environ.get("QUERY_STRING", ""))


def dispatch(environ, views, default):
    """What the routed view returns, once ?pre=N (ms) has been slept."""
    view, _, params = route(environ, views, default)
    pre = ms_param(params, "pre", 0)
    if pre:
        sleep_for(pre)
    return view(environ, params)

def segment_round(segment, n):
    """ns per iteration of n empty loops, n `with nullcontext()`, n `with
    segment("x")` and n `with segment("SQL", detail=...)`: one round, as a
    dict keyed empty, nullcontext, segment, segment_detail."""
    null, clock = contextlib.nullcontext(), time.perf_counter_ns
    t0 = clock()
    for _ in range(n):
        pass
    t1 = clock()
    for _ in range(n):
        with null:
            pass
    t2 = clock()
    for _ in range(n):
        with segment("x"):
            pass
    t3 = clock()
    for _ in range(n):
        with segment("SQL", detail="SELECT * FROM t WHERE id = ?"):
            pass
    t4 = clock()
    return {"empty": (t1 - t0) / n, "nullcontext": (t2 - t1) / n,
            "segment": (t3 - t2) / n, "segment_detail": (t4 - t3) / n}
