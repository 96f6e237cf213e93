"""WSGI application for the daemon-mode tests (tests/integration/test_daemon.py).

Runs inside a mod_wsgi daemon process (WSGIDaemonProcess), in one or more
application groups, and imports pyprof at the top like a production app
would.  Every view answers JSON that includes what pyprof reported in the
request (current_request_id(), attached(), daemon_mode) plus the process,
process group and application group that ran it, so a test can compare
what the app saw with what /server-profile shows.

Views (the first path segment after the mount point; anything after it,
e.g. a per-test tag, is ignored):

    /info                  the JSON facts only
    /slow?ms=N             sleep_for(N)
    /mixed?cpu=N&sleep=M   burn_cpu(N) then sleep_for(M)
    /segments?ms=N         nested segments (see view_segments)
    /hostile               segments with a hostile and an over-long detail
    /many?n=N              N sibling segments (more than the per-request cap)
    /sqlite                instrument_dbapi(sqlite3), in-memory database
    /pg                    instrument_dbapi(psycopg2), server from pg.json
    /bench?n=N             segment cost measured inside the request
    /flood                 a fast request (for lifecycle traffic)

Any view also takes ?pre=N: sleep_for(N) before the view runs (the sampler's
blind spot at a process' very first request; see apps/app.py).

Never writes to stderr (the harness treats [error] lines as failures).
"""

import json
import os
import sys
import time

# burn_cpu, sleep_for and ms_param: pyprof_testlib.py, copied next to this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyprof_testlib import burn_cpu, sleep_for  # noqa: E402
from pyprof_testlib import ms_param as _ms  # noqa: E402
from pyprof_testlib import route, segment_round  # noqa: E402

import pyprof

# What pyprof says while the script is imported (no request is being served).
IMPORT_FACTS = {"request_id": pyprof.current_request_id(), "attached": pyprof.attached(),
                "daemon_mode": pyprof.daemon_mode}

HERE = os.path.dirname(os.path.abspath(__file__))
STATE_DIR = os.path.join(HERE, "state")   # made writable by tests that want it


def _after_pyprof_shutdown(*args, **kwargs):
    """Subscribed after pyprof's own shutdown hook (pyprof is imported
    first): records whether pyprof's hook left the sampler stopped."""
    import mod_wsgi
    ext = getattr(pyprof, "_pyprof", None)
    record = {"pid": os.getpid(), "application_group": mod_wsgi.application_group,
              "sampler_running": ext.running() if ext else None,
              "args": [str(a) for a in args], "kwargs": sorted(kwargs)}
    name = "shutdown-%d-%s.json" % (os.getpid(), mod_wsgi.application_group or "main")
    with open(os.path.join(STATE_DIR, name), "w") as f:
        json.dump(record, f)


if os.path.isdir(STATE_DIR):
    try:
        import mod_wsgi
        if mod_wsgi.process_group:
            mod_wsgi.subscribe_shutdown(_after_pyprof_shutdown)
    except (ImportError, AttributeError):
        pass

# Long enough to be cut by the store (96 bytes for a detail).
LONG_DETAIL = "L" * 40 + "-middle-" + "M" * 300 + "-end"
HOSTILE_DETAIL = "<script>alert('pyprof')</script>&\"'"
HOSTILE_NAME = "<b>seg</b>"
LONG_NAME = "N" * 100
UTF8_DETAIL = "\u00e9" * 200          # 2 bytes a character


def facts(environ):
    try:
        import mod_wsgi
        process_group = mod_wsgi.process_group
        application_group = mod_wsgi.application_group
    except ImportError:
        process_group = application_group = None
    return {
        "pid": os.getpid(),
        "attached": pyprof.attached(),
        "daemon_mode": pyprof.daemon_mode,
        "request_id": pyprof.current_request_id(),
        "process_group": process_group,
        "application_group": application_group,
        "wsgi_request_id": environ.get("mod_wsgi.request_id"),
        "pyprof_file": getattr(pyprof, "__file__", None),
        "import": IMPORT_FACTS,
    }


def view_info(environ, params):
    return {}


def view_slow(environ, params):
    ms = _ms(params, "ms", 100)
    sleep_for(ms)
    return {"slept": ms}


def view_mixed(environ, params):
    cpu = _ms(params, "cpu", 100)
    sleep = _ms(params, "sleep", 100)
    t0 = time.monotonic()
    burn_cpu(cpu)
    t1 = time.monotonic()
    sleep_for(sleep)
    t2 = time.monotonic()
    # the wall time each part took: on a busy machine burning `cpu` ms of
    # CPU takes longer than `cpu` ms
    return {"cpu": cpu, "sleep": sleep,
            "burn_wall_ms": (t1 - t0) * 1000.0, "sleep_wall_ms": (t2 - t1) * 1000.0}


@pyprof.trace
def traced_step(ms):
    sleep_for(ms)


@pyprof.trace("named-step")
def named_step(ms):
    sleep_for(ms)


def view_segments(environ, params):
    """outer [ SQL(detail) [ sleep ms ] ; traced_step [ sleep ms ] ] ;
    named-step [ sleep ms ]  -- with ms (default 100) of sleep in each
    innermost segment, and a little sleep outside all of them (?note=X is
    appended to the SQL detail as a comment).  Returns how
    long each block took as the app measured it (perf_counter around it)."""
    ms = _ms(params, "ms", 100)
    note = params.get("note", [""])[0]
    sql = "SELECT 1 FROM inner_table" + (" -- " + note if note else "")
    clock = time.perf_counter
    took = {}
    sleep_for(20)
    t_outer = clock()
    with pyprof.segment("outer"):
        t = clock()
        with pyprof.segment("SQL", detail=sql):
            sleep_for(ms)
        took["SQL"] = clock() - t
        t = clock()
        traced_step(ms)
        took["traced_step"] = clock() - t
    took["outer"] = clock() - t_outer
    t = clock()
    named_step(ms)
    took["named-step"] = clock() - t
    sleep_for(20)
    return {"ms": ms, "took_ms": {k: v * 1000.0 for k, v in took.items()}}


def view_hostile(environ, params):
    with pyprof.segment(HOSTILE_NAME, detail=HOSTILE_DETAIL):
        sleep_for(50)
    with pyprof.segment("long", detail=LONG_DETAIL):
        sleep_for(50)
    with pyprof.segment("plain", detail=12345):   # not a str: str() of it
        pass
    with pyprof.segment(LONG_NAME):
        pass
    with pyprof.segment("utf8", detail=UTF8_DETAIL):
        pass
    sleep_for(_ms(params, "ms", 300))
    return {"hostile": HOSTILE_DETAIL, "hostile_name": HOSTILE_NAME, "long": LONG_DETAIL,
            "long_name": LONG_NAME, "utf8": UTF8_DETAIL}


def view_many(environ, params):
    n = min(_ms(params, "n", 60), 1000)
    for i in range(n):
        with pyprof.segment("many", detail="#%d" % i):
            pass
    sleep_for(_ms(params, "ms", 300))
    return {"n": n}


SECRET = "secret-value-7f3a"
SECRET_NUMBER = 424242


def view_sqlite(environ, params):
    import sqlite3
    pyprof.instrument_dbapi(sqlite3)
    conn = sqlite3.connect(":memory:")
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE t (id INTEGER, name TEXT)")
        cur.executemany("INSERT INTO t VALUES (?, ?)",
                        [(SECRET_NUMBER, SECRET), (2, "other")])
        cur.execute("SELECT id, name FROM t WHERE name = '%s' AND id = %d"
                    % (SECRET, SECRET_NUMBER))
        rows = cur.fetchall()
        shortcut = conn.execute("SELECT count(*) FROM t WHERE id > 1").fetchone()[0]
    finally:
        conn.close()
    sleep_for(_ms(params, "ms", 300))
    return {"rows": rows, "count": shortcut}


def view_pg(environ, params):
    import psycopg2
    pyprof.instrument_dbapi(psycopg2)
    with open(os.path.join(HERE, "pg.json")) as f:
        cfg = json.load(f)
    conn = psycopg2.connect(host="127.0.0.1", port=cfg["port"], user=cfg["user"],
                            dbname=cfg["dbname"], connect_timeout=5)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TEMP TABLE t (id integer, name text)")
        cur.execute("INSERT INTO t VALUES (%s, %s)", (SECRET_NUMBER, SECRET))
        cur.execute("SELECT id, name, pg_sleep(0.1) FROM t WHERE name = '%s' AND id = %d"
                    % (SECRET, SECRET_NUMBER))
        rows = [list(r[:2]) for r in cur.fetchall()]
        conn.rollback()
    finally:
        conn.close()
    sleep_for(_ms(params, "ms", 300))
    return {"rows": rows}


def view_bench(environ, params):
    """ns per `with pyprof.segment("x"): pass`, per `with segment("SQL",
    detail=...)`, per iteration of an empty loop and of a
    `with contextlib.nullcontext()` loop, measured here, inside the request
    (?n= iterations, ?rounds= repetitions; a request records at most 48
    segments, further ones are counted as dropped but cost the same calls)."""
    def number(name, default, lo, hi):
        try:
            return max(lo, min(int(params.get(name, [default])[0]), hi))
        except ValueError:
            return default
    n = number("n", 100000, 1, 1000000)
    rounds = number("rounds", 3, 1, 20)
    results = [segment_round(pyprof.segment, n) for _ in range(rounds)]
    sleep_for(_ms(params, "ms", 0))
    return {"n": n, "rounds": results}


def view_flood(environ, params):
    ms = _ms(params, "ms", 0)
    if ms:
        sleep_for(ms)
    return {}


VIEWS = {
    "info": view_info,
    "slow": view_slow,
    "mixed": view_mixed,
    "segments": view_segments,
    "hostile": view_hostile,
    "many": view_many,
    "sqlite": view_sqlite,
    "pg": view_pg,
    "bench": view_bench,
    "flood": view_flood,
}


def dispatch(environ):
    view, path, params = route(environ, VIEWS, view_info)
    pre = _ms(params, "pre", 0)
    if pre:
        sleep_for(pre)
    result = facts(environ)
    result["view"] = view(environ, params)
    result["path"] = path
    return result


def application(environ, start_response):
    try:
        body = json.dumps(dispatch(environ)).encode("utf-8")
        status = "200 OK"
    except Exception as e:  # the test shows it; stderr would be an [error] line
        body = json.dumps({"error": "%s: %s" % (type(e).__name__, e)}).encode("utf-8")
        status = "500 Internal Server Error"
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]
