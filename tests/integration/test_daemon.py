"""Issue [4]: mod_wsgi daemon mode, application groups and the pyext API.

One daemon-mode server per MPM shared by most tests (daemon_util.py):
`WSGIDaemonProcess dm processes=2 threads=4 maximum-requests=50`, the same
script (apps/daemon_app.py, which does `import pyprof` at its top) in two
application groups, /alpha -> "one" and /beta -> "two", both sampled every
10 ms, requests of 200 ms or more kept; /gamma runs in the daemon too but is
not sampled.  maximum-requests=50 makes the daemons restart while the
module's tests run.

Each test tags its paths with a unique marker and finds its own requests by
the id the app reports (pyprof.current_request_id()).  Servers of their own:
WSGIImportScript into %{GLOBAL}, the lifecycle test (maximum-requests
restarts, a graceful restart and a SIGKILLed daemon under traffic), the
shutdown test, and Apache without mod_pyprof.  PostgreSQL is started by a
fixture on 127.0.0.1 (initdb as the postgres user into a temporary dir).

PYPROF_PYEXT=DIR makes the daemons import pyprof from another build tree
(default <repo>/pyext), e.g. to try a fix without touching the repository.
"""

import datetime
import html
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests

from conftest import MAX_CONCURRENCY, _alive, get_concurrently, unique, wait_for
from daemon_util import (GLOBAL_SAMPLING, PYEXT, Postgres, apache_worker_pids, app_json, cmdline, daemon_pids,
                         is_daemon_process, kept_by_id, prepare, serving_daemon)

# the Python the module and the pyprof extension are built for
PYTHON = os.environ.get("PYPROF_PYTHON") or "/usr/bin/python3"


@pytest.fixture(scope="module")
def pg():
    server = Postgres()
    if not server.bindir:
        pytest.fail("PostgreSQL server binaries not found (Debian package postgresql)",
                    pytrace=False)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dsrv(mpm, pyprof_module):
    yield from serving_daemon(name="daemon", mpm=mpm)


def functions(stack):
    return [f["function"] for f in stack["frames"]]


def detail_of(srv, body):
    """The kept request (overview entry) and its detail JSON for a response
    body of daemon_app."""
    rid = body["request_id"]
    assert rid, "pyprof.current_request_id() was None inside a sampled request: %r" % body
    req = kept_by_id(srv, rid)
    assert req, "request %s (%s) not kept" % (rid, body["path"])
    return req, srv.request_detail(rid)


def segments_named(detail, name):
    return [s for s in detail["segments"] if s["name"] == name]


# -- 1. both application groups: kept, with stacks and labels ---------------

@pytest.mark.parametrize("mount,group", [("/alpha", "one"), ("/beta", "two")])
def test_daemon_requests_are_kept_with_stacks_and_group_labels(dsrv, mount, group):
    tag = unique("groups")
    body = app_json(dsrv, "%s/slow/%s?ms=300" % (mount, tag))
    # The daemon that answered, while it certainly still runs (maximum-
    # requests may retire it right after): a mod_wsgi daemon, not an Apache
    # worker.
    daemon_line = cmdline(body["pid"])
    workers = apache_worker_pids(dsrv)
    assert body["process_group"] == "dm" and body["application_group"] == group, body

    req, detail = detail_of(dsrv, body)
    assert req["location"] == mount
    assert req["uri"].startswith("%s/slow/%s" % (mount, tag))
    assert req["status"] == 200
    assert 300 <= req["duration_ms"] < 3000
    assert req["process_group"] == "dm"
    assert req["application_group"] == group
    assert req["daemon_pid"] == body["pid"], (req["daemon_pid"], body["pid"])
    assert req["daemon_pid"] != req["pid"], "daemon_pid is the Apache child's pid"
    assert int(req["pid"]) in workers, (req["pid"], workers)
    assert daemon_line is None or daemon_line.startswith("(wsgi:dm)"), daemon_line
    for field in ("daemon_pid", "process_group", "application_group", "status", "samples"):
        assert detail[field] == req[field], field

    assert 15 <= req["samples"] <= 60, "300 ms at 10 ms gave %s samples" % req["samples"]
    sleeping = [s for s in detail["stacks"] if "sleep_for" in functions(s)]
    assert sleeping, detail["stacks"]
    # root first: application -> dispatch -> view_slow -> sleep_for
    assert functions(sleeping[0])[-4:] == ["application", "dispatch", "view_slow", "sleep_for"], \
        functions(sleeping[0])
    assert sum(s["count"] for s in sleeping) >= 0.8 * req["samples"]
    assert all(f["file"].endswith("daemon_app.py") for f in sleeping[0]["frames"][-4:-1])
    assert sleeping[0]["frames"][-1]["file"].endswith("pyprof_testlib.py")


# -- 2. CPU / sleep proportions as in embedded mode ---------------------------

@pytest.mark.parametrize("mount", ["/alpha", "/beta"])
def test_cpu_and_sleep_proportions_hold_in_a_daemon(dsrv, mount):
    tag = unique("mixed")
    # pre=50: the sampler's blind spot at a fresh daemon's first request
    body = app_json(dsrv, "%s/mixed/%s?cpu=300&sleep=300&pre=50" % (mount, tag))
    req, detail = detail_of(dsrv, body)
    weight = lambda s: s["weight_ms"] if s.get("weight_ms") is not None else s["count"]
    total = sum(weight(s) for s in detail["stacks"])
    cpu = sum(weight(s) for s in detail["stacks"] if "burn_cpu" in functions(s))
    slept = sum(weight(s) for s in detail["stacks"] if "sleep_for" in functions(s))
    assert total > 0, detail
    # the share of wall time the app measured in each part (burning 300 ms
    # of CPU takes longer than 300 ms when the machine is busy)
    part = body["view"]
    burn_share = part["burn_wall_ms"] / (part["burn_wall_ms"] + part["sleep_wall_ms"])
    assert abs(cpu / total - burn_share) <= 0.2, \
        "burn_cpu has %.0f of %.0f ms weight (%.2f), the app measured %.2f; stacks %s" % (
            cpu, total, cpu / total, burn_share, detail["stacks"])
    assert abs(slept / total - (1 - burn_share)) <= 0.2, (slept, total, burn_share)
    assert abs(req["cpu_ms"] - 300) <= 0.25 * 300, \
        "cpu_ms %s for 300 ms of CPU in the daemon" % req["cpu_ms"]


# -- 3. what pyprof tells the app ---------------------------------------------

def test_pyprof_reports_daemon_mode_and_the_request_id_the_page_shows(dsrv):
    tag = unique("facts")
    for mount in ("/alpha", "/beta"):
        body = app_json(dsrv, "%s/slow/%s?ms=250" % (mount, tag))
        assert body["attached"] is True, body
        assert body["daemon_mode"] is True, body
        assert body["pyprof_file"] == os.path.join(PYEXT, "pyprof", "__init__.py"), body
        # imported with no request in progress: no id then
        assert body["import"] == {"request_id": None, "attached": True, "daemon_mode": True}, body
        req = kept_by_id(dsrv, body["request_id"])
        assert req, "current_request_id() %r is not a kept request's id" % body["request_id"]
        assert req["uri"].startswith("%s/slow/%s" % (mount, tag))
        # the id mod_wsgi forwarded to the daemon is the same one
        assert body["wsgi_request_id"] == body["request_id"]


def test_current_request_id_is_per_thread_under_concurrency(dsrv):
    tag = unique("conc")
    n = min(6, MAX_CONCURRENCY[dsrv.mpm])
    paths = ["/%s/slow/%s-%d?ms=400" % ("alpha" if i % 2 else "beta", tag, i) for i in range(n)]
    responses = get_concurrently(dsrv, paths, timeout=20)
    bodies = []
    for path, r in zip(paths, responses):
        assert isinstance(r, requests.Response) and r.status_code == 200, (path, r)
        bodies.append(r.json())
    ids = [b["request_id"] for b in bodies]
    assert None not in ids and len(set(ids)) == n, ids
    for i, body in enumerate(bodies):
        req = kept_by_id(dsrv, body["request_id"])
        assert req, body
        assert "%s-%d" % (tag, i) in req["uri"], (i, req["uri"])
        assert req["daemon_pid"] == body["pid"]
        assert req["application_group"] == ("one" if i % 2 else "two")


def test_unsampled_mount_in_the_daemon_has_no_request_id_and_segments_are_no_ops(dsrv):
    tag = unique("gamma")
    body = app_json(dsrv, "/gamma/segments/%s?ms=150" % tag)
    assert body["attached"] is True and body["daemon_mode"] is True, body
    assert body["request_id"] is None, body
    assert body["application_group"] == "one"
    assert dsrv.kept(tag) == []


PRELOAD = """\
import json, os
import mod_wsgi
import pyprof  # WSGIImportScript: starts the daemon's sampler
with open(os.path.join(%(state)r, "%%d.json" %% os.getpid()), "w") as f:
    json.dump({"process_group": mod_wsgi.process_group,
               "application_group": mod_wsgi.application_group,
               "daemon_mode": pyprof.daemon_mode, "status": pyprof._daemon_status}, f)
"""


def test_wsgi_import_script_into_the_global_group_profiles_an_app_that_never_imports_pyprof(
        servers, pyprof_module):
    """The other documented way: `WSGIImportScript` loads pyprof into the
    daemon's main interpreter; an app running there (the harness' plain
    apps/app.py, which knows nothing of pyprof) is profiled."""
    srv = servers.create(name="daemon-import", mpm="event")
    prepare(srv, sampling="PyProfSample /plain 10ms\nPyProfSlowThreshold 200ms\n")
    preload = os.path.join(srv.root, "preload_pyprof.py")
    state = os.path.join(srv.root, "state")   # what the import saw, per daemon
    os.mkdir(state)
    os.chmod(state, 0o777)
    with open(preload, "w") as f:
        f.write(PRELOAD % {"state": state})
    os.chmod(preload, 0o644)
    srv.extra += ('WSGIImportScript "%s" process-group=dm application-group=%%{GLOBAL}\n'
                  'WSGIScriptAlias /plain "%s" process-group=dm application-group=%%{GLOBAL}\n'
                  % (preload, srv.app))
    srv.start()
    tag = unique("import")
    daemon = int(srv.get_ok("/plain/pid").text)
    assert is_daemon_process(daemon), cmdline(daemon)
    # At WSGIImportScript time mod_wsgi.process_group is already the
    # daemon's group (mod_wsgi sets it before it runs the daemon's import
    # scripts), so the import itself started the sampler.  On CPython 3.12+
    # mod_wsgi runs this %{GLOBAL} import in the sub-interpreter of /beta's
    # preload ("two", the one before it), and pyprof then hooks the main
    # interpreter from there, where /plain runs.
    seen = {}
    for name in os.listdir(state):
        with open(os.path.join(state, name)) as f:
            seen[int(name.split(".")[0])] = json.load(f)
    assert daemon in seen, (daemon, seen)
    for s in seen.values():
        assert s["process_group"] == "dm" and s["daemon_mode"] is True, seen
        if s["application_group"] == "":
            assert s["status"] == "daemon process group 'dm': sampling", seen
        else:
            assert s["application_group"] == "two", seen
            assert s["status"] == ("daemon process group 'dm': sampling "
                                   "(main interpreter hooked too)"), seen
    srv.get_ok("/plain/slow/%s?ms=300" % tag)
    [req] = srv.wait_kept(tag, 1)
    assert req["process_group"] == "dm"
    assert req["application_group"] == ""          # %{GLOBAL}: the main interpreter
    assert req["daemon_pid"] in daemon_pids(srv) and req["daemon_pid"] != req["pid"]
    detail = srv.request_detail(req["id"])
    assert any(functions(s)[-2:] == ["view_slow", "sleep_for"] for s in detail["stacks"]), \
        detail["stacks"]
    assert req["samples"] >= 15
    page = srv.get_ok(srv.request_path(req["id"])).text
    assert "(main interpreter)" in page


# -- 4. segments ----------------------------------------------------------------

@pytest.mark.parametrize("mount", ["/alpha", "/beta"])
def test_segments_are_nested_timed_and_carry_samples(dsrv, mount):
    tag = unique("seg")
    body = app_json(dsrv, "%s/segments/%s?ms=100" % (mount, tag))
    req, detail = detail_of(dsrv, body)
    segs = detail["segments"]
    assert [s["name"] for s in segs] == ["outer", "SQL", "traced_step", "named-step"], segs
    assert detail["segments_dropped"] == 0
    outer, sql, traced, named = segs
    # nesting: parent is index + 1 of the enclosing segment, 0 at top level
    assert (outer["depth"], outer["parent"]) == (0, 0), outer
    assert (sql["depth"], sql["parent"]) == (1, 1), sql
    assert (traced["depth"], traced["parent"]) == (1, 1), traced
    assert (named["depth"], named["parent"]) == (0, 0), named
    assert sql["detail"] == "SELECT 1 FROM inner_table"
    assert outer["detail"] == traced["detail"] == named["detail"] == ""
    # timings: 100 ms sleeps inside each innermost one.  A segment lasts
    # what the block lasted as the app measured it around the `with` (on a
    # loaded machine a sleep may end late; the segment must still match).
    took = body["view"]["took_ms"]
    for s in segs:
        assert took[s["name"]] - 10 <= s["duration_ms"] <= took[s["name"]] + 2, (s, took)
    for s in (sql, traced, named):
        assert 100 - 1 <= s["duration_ms"] <= 100 + 150, s
    assert 200 - 2 <= outer["duration_ms"] <= 200 + 300, outer
    assert outer["duration_ms"] >= sql["duration_ms"] + traced["duration_ms"] - 1
    assert outer["start_ms"] >= 15, outer   # after a 20 ms sleep
    assert outer["start_ms"] <= sql["start_ms"] <= outer["start_ms"] + 10
    assert traced["start_ms"] >= sql["start_ms"] + sql["duration_ms"] - 0.5
    assert named["start_ms"] >= outer["start_ms"] + outer["duration_ms"] - 0.5
    assert named["start_ms"] + named["duration_ms"] <= req["duration_ms"] + 1
    # samples go to the innermost open segment, with about its duration as
    # weight (a sample's weight is the time since the thread's previous
    # one, so a late sample just after a boundary brings some of the
    # previous segment's time with it)
    for s in (sql, traced, named):
        assert s["samples"] > 0, s
        assert 0.5 * s["duration_ms"] <= s["weight_ms"] <= s["duration_ms"] + 50, s
    assert sum(s["samples"] for s in segs) <= req["samples"]
    assert outer["samples"] <= 3, outer


def test_segments_of_concurrent_requests_stay_in_their_own_request(dsrv):
    tag = unique("segconc")
    n = min(6, MAX_CONCURRENCY[dsrv.mpm])
    paths = ["/%s/segments/%s-%d?ms=100&note=%s-%d" % ("alpha" if i % 2 else "beta", tag, i, tag, i)
             for i in range(n)]
    responses = get_concurrently(dsrv, paths, timeout=20)
    for i, (path, r) in enumerate(zip(paths, responses)):
        assert isinstance(r, requests.Response) and r.status_code == 200, (path, r)
        req, detail = detail_of(dsrv, r.json())
        assert "%s-%d" % (tag, i) in req["uri"]
        assert [s["name"] for s in detail["segments"]] == \
            ["outer", "SQL", "traced_step", "named-step"], detail["segments"]
        assert detail["segments"][1]["detail"] == "SELECT 1 FROM inner_table -- %s-%d" % (tag, i)
        assert [(s["depth"], s["parent"]) for s in detail["segments"]] == \
            [(0, 0), (1, 1), (1, 1), (0, 0)]


def test_request_page_shows_the_segments_table_and_the_daemon(dsrv):
    tag = unique("segpage")
    body = app_json(dsrv, "/beta/segments/%s?ms=100" % tag)
    req, _ = detail_of(dsrv, body)
    page = dsrv.get_ok(dsrv.request_path(req["id"])).text
    assert re.search(r"<h2>Segments\b", page), page[:3000]
    table = page[page.index("<h2>Segments"):]
    table = table[:table.index("</table>")]
    for name in ("outer", "SQL", "traced_step", "named-step", "SELECT 1 FROM inner_table"):
        assert name in table, name
    assert table.index("outer") < table.index("traced_step") < table.index("named-step")
    assert re.search(r"daemon pid %d\b" % req["daemon_pid"], page)
    assert re.search(r"process group\s*(<[^>]*>)?dm<", page)
    assert re.search(r"application group\s*(<[^>]*>)?two<", page)


def test_segment_detail_is_escaped_and_over_long_values_are_truncated(dsrv):
    tag = unique("hostile")
    body = app_json(dsrv, "/alpha/hostile/%s?ms=250" % tag)
    sent = body["view"]
    req, detail = detail_of(dsrv, body)
    assert req["status"] == 200
    by_name = {s["name"]: s for s in detail["segments"]}
    # JSON carries the exact text, properly escaped (get_json parsed it)
    assert by_name[sent["hostile_name"]]["detail"] == sent["hostile"]
    assert by_name["plain"]["detail"] == "12345"
    # an over-long detail is cut, not refused
    long = by_name["long"]["detail"]
    assert 40 < len(long) < len(sent["long"]) and sent["long"].startswith(long), long
    # an over-long name is cut too
    [cut_name] = [n for n in by_name if n.startswith("NNN")]
    assert 8 <= len(cut_name) < len(sent["long_name"]), cut_name
    # a multi-byte detail is cut on a character boundary (valid UTF-8, a prefix)
    utf8 = by_name["utf8"]["detail"]
    assert utf8 and sent["utf8"].startswith(utf8), ascii(utf8)

    page = dsrv.get_ok(dsrv.request_path(req["id"])).text
    assert "<script>alert" not in page
    assert "<b>seg</b>" not in page
    assert "&lt;script&gt;alert(" in page
    assert "&lt;b&gt;seg&lt;/b&gt;" in page
    assert html.escape(long) in page


def test_segments_beyond_the_per_request_cap_are_counted_as_dropped(dsrv):
    tag = unique("many")
    body = app_json(dsrv, "/beta/many/%s?n=60&ms=250" % tag)
    req, detail = detail_of(dsrv, body)
    assert len(detail["segments"]) == 48, len(detail["segments"])
    assert detail["segments_dropped"] == 12
    assert [s["detail"] for s in detail["segments"]] == ["#%d" % i for i in range(48)]
    page = dsrv.get_ok(dsrv.request_path(req["id"])).text
    assert re.search(r"\b12 more segments", page), "no dropped-segments note on the page"


# -- 5. instrument_dbapi ----------------------------------------------------------

def _assert_sql_stripped(detail, secret, number):
    sql = segments_named(detail, "SQL")
    assert sql, detail["segments"]
    for s in sql:
        assert secret not in s["detail"], s
        assert str(number) not in s["detail"], s
        assert s["depth"] == 0 and s["duration_ms"] >= 0, s
    return sql


def test_sqlite_queries_become_segments_with_literals_stripped(dsrv):
    tag = unique("sqlite")
    body = app_json(dsrv, "/alpha/sqlite/%s?ms=250" % tag)
    assert body["view"]["rows"] == [[424242, "secret-value-7f3a"]], body  # the queries ran
    assert body["view"]["count"] == 2
    req, detail = detail_of(dsrv, body)
    sql = _assert_sql_stripped(detail, "secret-value-7f3a", 424242)
    assert [s["detail"] for s in sql] == [
        "CREATE TABLE t (id INTEGER, name TEXT)",
        "INSERT INTO t VALUES (?, ?)",                          # executemany
        "SELECT id, name FROM t WHERE name = ? AND id = ?",     # cursor.execute
        "SELECT count(*) FROM t WHERE id > ?",                  # connection.execute
    ], sql


@pytest.fixture(scope="module")
def gsrv(mpm, pyprof_module):
    """A daemon whose only application is in the main interpreter."""
    yield from serving_daemon(name="daemon_global", mpm=mpm,
                              sampling=GLOBAL_SAMPLING,
                              daemon_kw={"only_global": True})


def test_postgres_queries_become_segments_with_literals_stripped(gsrv, pg):
    # psycopg2 cannot be imported in a sub-interpreter on CPython 3.12+
    # (with or without mod_pyprof): served from the main interpreter of a
    # daemon that has no other
    dsrv = gsrv
    pg.write_app_config(dsrv.root)
    tag = unique("pg")
    body = app_json(dsrv, "/delta/pg/%s?ms=250" % tag, timeout=30)
    assert body["view"]["rows"] == [[424242, "secret-value-7f3a"]], body
    req, detail = detail_of(dsrv, body)
    sql = _assert_sql_stripped(detail, "secret-value-7f3a", 424242)
    details = [s["detail"] for s in sql]
    assert details == [
        "CREATE TEMP TABLE t (id integer, name text)",
        "INSERT INTO t VALUES (%s, %s)",
        "SELECT id, name, pg_sleep(?) FROM t WHERE name = ? AND id = ?",
    ], details
    # pg_sleep(0.1) runs inside the SELECT's segment: timed, and sampled
    select = sql[2]
    assert 100 <= select["duration_ms"] <= 1000, select
    assert select["samples"] > 0, select


# -- 6. lifecycle under traffic ---------------------------------------------------

# The line Debian's mod_wsgi 4.9.4 logs in the Apache child that was
# proxying a request to the daemon we SIGKILL: that request is lost (500)
# and retried.  Nothing else at [error] passes, and this one only within
# seconds of the kill or the graceful restart (checked by the test).
# What mod_wsgi logs for a request whose daemon dies under it: before the
# response headers came ("Truncated ...") or while the body was being proxied
# (the SIGKILL lands mid-response: "Connection reset by peer ... Failed to
# proxy").  Each such line must match a retried request near the graceful
# restart or the kill.
LIFECYCLE_LOG = (
    r"^\[[^]]+\] \[wsgi:error\] \[pid \d+:tid \d+\] \[client 127\.0\.0\.1:\d+\] "
    r"Truncated or oversized response headers received from daemon process 'dm': "
    r"\S+/daemon_app\.py$",
    r"^\[[^]]+\] \[wsgi:error\] \[pid \d+:tid \d+\] \(104\)Connection reset by peer: "
    r"\[client 127\.0\.0\.1:\d+\] mod_wsgi \(pid=\d+\): "
    r"Failed to proxy response from daemon\.$",
)
LOG_TIME = re.compile(r"^\[(\w{3} \w{3} \d\d \d\d:\d\d:\d\d\.\d+ \d{4})\]")


def log_time(line):
    m = LOG_TIME.match(line)
    return datetime.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S.%f %Y").timestamp() \
        if m else None


class LifecycleClient(threading.Thread):
    """One client thread: a fixed list of paths, each retried at most once."""

    def __init__(self, srv, paths, progress):
        super().__init__(daemon=True)
        self.srv, self.paths, self.progress = srv, paths, progress
        self.bodies, self.retried, self.failed = [], [], []

    def run(self):
        deadline = time.monotonic() + 90
        for path in self.paths:
            if time.monotonic() > deadline:
                self.failed.append((path, "client deadline"))
                return
            for attempt in (1, 2):
                try:
                    r = self.srv.get(path, timeout=20)
                    outcome = r.status_code
                    if r.status_code == 200:
                        self.bodies.append(r.json())
                        break
                except requests.RequestException as e:
                    outcome = repr(e)
                if attempt == 1:
                    self.retried.append((path, outcome, time.monotonic()))
                    time.sleep(0.05)
                else:
                    self.failed.append((path, outcome))
            self.progress.append(1)


def test_daemon_restarts_graceful_and_sigkill_under_traffic_leave_a_consistent_store(
        servers, pyprof_module, mpm):
    srv = servers.create(name="daemon-life", mpm=mpm, allowed_log=LIFECYCLE_LOG)
    prepare(srv)
    srv.start()
    tag = unique("life")
    progress = []
    clients = []
    for c in range(4):
        paths = []
        for j in range(50):
            mount = "alpha" if (c + j) % 2 else "beta"
            if j % 10 == 5:
                paths.append("/%s/slow/%s-c%dr%d?ms=250" % (mount, tag, c, j))
            else:
                paths.append("/%s/flood/%s-c%dr%d?ms=5" % (mount, tag, c, j))
        clients.append(LifecycleClient(srv, paths, progress))
    for c in clients:
        c.start()

    assert wait_for(lambda: len(progress) >= 60, 40), "traffic stalled: %d" % len(progress)
    graceful_at = time.time()
    srv.graceful()
    assert wait_for(lambda: len(progress) >= 120, 40), "traffic stalled: %d" % len(progress)
    victims = [p for p in daemon_pids(srv)]
    assert victims, "no daemon process found"
    victim = victims[0]
    killed_at, killed_wall = time.monotonic(), time.time()
    os.kill(victim, signal.SIGKILL)
    for c in clients:
        c.join(max(1, 100 - (time.monotonic() - killed_at)))
    assert not any(c.is_alive() for c in clients), "clients still running after 100 s"
    assert wait_for(lambda: not _alive(victim), 10)

    failed = [f for c in clients for f in c.failed]
    retried = [r for c in clients for r in c.retried]
    assert failed == [], "requests failed twice: %s" % failed
    assert len(retried) <= 12, "too many retries: %s" % retried
    bodies = [b for c in clients for b in c.bodies]
    assert len(bodies) == 200
    seen = {b["pid"] for b in bodies}
    assert len(seen) >= 4, "daemons did not restart (maximum-requests=50): pids %s" % seen
    # still serving, from fresh daemons, in both groups
    for mount in ("alpha", "beta"):
        body = app_json(srv, "/%s/slow/%s-after?ms=250" % (mount, tag))
        assert body["pid"] != victim and body["daemon_mode"] is True
        req = kept_by_id(srv, body["request_id"])
        assert req and req["daemon_pid"] == body["pid"], (body, req)
        # the restarted daemon's sampler runs
        stacks = srv.request_detail(req["id"])["stacks"]
        assert any("sleep_for" in functions(s) for s in stacks), stacks

    # no request of the killed daemon stays "in flight" for ever
    assert wait_for(lambda: srv.profile().get("inflight") == [], 15), srv.profile().get("inflight")

    # every kept record readable and self-consistent
    profile = srv.profile()
    kept = profile["requests"]
    ours = [r for r in kept if tag in r["uri"]]
    assert len(ours) >= 15, "only %d of 22 slow requests kept" % len(ours)
    for req in kept:
        detail = srv.request_detail(req["id"])
        assert detail["samples"] == sum(s["count"] for s in detail["stacks"]), req["id"]
        assert 100 <= detail["status"] < 600, detail["status"]
        assert 0 < detail["duration_ms"] < 60000, detail["duration_ms"]
        assert detail["cpu_ms"] >= 0
        for i, s in enumerate(detail["segments"]):
            assert 0 <= s["parent"] <= i, s
        for field in ("id", "uri", "status", "duration_ms", "samples", "daemon_pid"):
            assert detail[field] == req[field], (field, req["id"])
        if tag in req["uri"] and req["status"] == 200:
            assert req["process_group"] == "dm" and req["daemon_pid"] != req["pid"], req
        srv.get_ok(srv.request_path(req["id"]))
        srv.get_ok(srv.request_path(req["id"], "folded"))
    srv.profile_html()

    srv.stop()
    log = srv.error_log_text()
    for marker in ("Segmentation fault", "Fatal Python error", "exit signal", "core dumped"):
        assert marker not in log, marker
    expected = [l for l in log.splitlines()
                if any(re.search(p, l) for p in LIFECYCLE_LOG)]
    # A lost daemon connection is logged for a request in flight at the
    # graceful restart or the kill: at most one per client each time.  Its
    # client retried it, or had its whole response already (mod_wsgi
    # logs the reset it meets reading past the end: seen once in CI, a
    # 200 for the client and no retry)
    assert len(expected) <= len(retried) + 2 * len(clients), (expected, retried)
    for line in expected:
        at = log_time(line)
        assert at is not None and any(t - 1 <= at <= t + 10 for t in (graceful_at, killed_wall)), \
            "daemon connection lost away from the kill / graceful restart: %s" % line
    if retried:
        print("lifecycle: %d retried request(s): %s" % (len(retried), retried))


# -- 7. shutdown -----------------------------------------------------------------

@pytest.mark.parametrize("destroy", [False, True], ids=["destroy-off", "destroy-default"])
def test_daemon_shutdown_stops_the_sampler_through_subscribe_shutdown_cleanly(
        servers, pyprof_module, destroy):
    srv = servers.create(name="daemon-stop", mpm="event", destroy_interpreter=destroy)
    prepare(srv)
    state = os.path.join(srv.root, "state")   # the app records its shutdown here
    os.mkdir(state)
    os.chmod(state, 0o777)
    srv.start()
    tag = unique("stop")
    served = set()
    for mount in ("alpha", "beta", "alpha", "beta"):
        body = app_json(srv, "/%s/slow/%s?ms=250" % (mount, tag))
        assert body["daemon_mode"] is True
        served.add((body["pid"], body["application_group"]))
    daemons = daemon_pids(srv)
    assert daemons
    srv.stop()
    assert not any(_alive(p) for p in daemons), "daemon processes outlived the server"

    # The app's own shutdown callback runs after pyprof's (pyprof was
    # imported first): by then pyprof has stopped the process' sampler,
    # before mod_wsgi finalises Python.
    records = []
    for name in sorted(os.listdir(state)):
        with open(os.path.join(state, name)) as f:
            records.append(json.load(f))
    recorded = {(r["pid"], r["application_group"]) for r in records}
    assert served <= recorded, "no shutdown record for %s" % sorted(served - recorded)
    still = [r for r in records if r["sampler_running"] is not False]
    assert still == [], "sampler still running after pyprof's shutdown hook: %s" % still

    log = srv.error_log_text()
    ours = [l for l in log.splitlines() if any(re.search(r"\b%d\b" % p, l) for p in daemons)]
    bad = [l for l in ours if "Exception occurred within event callback" in l
           or "Traceback" in l or "Error:" in l or "Fatal Python error" in l
           or "Segmentation fault" in l]
    assert bad == [], "daemon shutdown:\n" + "\n".join(bad)


# -- 8. pyprof outside Apache ------------------------------------------------------

OUTSIDE = r"""
import json, sqlite3, sys
sys.path.insert(0, %(pyext)r)
import pyprof
out = {"ext": pyprof._pyprof is not None, "attached": pyprof.attached(),
       "rid": pyprof.current_request_id(), "daemon_mode": pyprof.daemon_mode}
with pyprof.segment("x", detail="y") as s:
    out["inside"] = pyprof.current_request_id()
@pyprof.trace
def add(a, b=2):
    "doc"
    return a + b
@pyprof.trace("named")
def named():
    return "n"
out["trace"] = [add(1), add(1, b=5), named(), add.__name__, add.__doc__, named.__name__]
try:
    with pyprof.segment("boom"):
        raise KeyError("k")
except KeyError:
    out["exception_propagates"] = True
assert pyprof.instrument_dbapi(sqlite3) is sqlite3
pyprof.instrument_dbapi(sqlite3)   # idempotent
conn = sqlite3.connect(":memory:")
cur = conn.cursor()
cur.execute("CREATE TABLE t (id INTEGER, name TEXT)")
cur.executemany("INSERT INTO t VALUES (?, ?)", [(42, 'secret'), (7, 'x')])
cur.execute("SELECT * FROM t WHERE name = 'secret' AND id = 42")
out["rows"] = cur.fetchall()
out["count"] = conn.execute("SELECT count(*) FROM t").fetchone()[0]
with conn:
    conn.execute("INSERT INTO t VALUES (1, 'y')")
out["after_commit"] = conn.execute("SELECT count(*) FROM t").fetchone()[0]
out["iter"] = [r for r in conn.cursor().execute("SELECT id FROM t ORDER BY id")]
conn.close()
print(json.dumps(out))
"""


def test_import_pyprof_outside_apache_is_inert_and_harmless():
    proc = subprocess.run([PYTHON, "-c", OUTSIDE % {"pyext": PYEXT}], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60, cwd="/",
                          env={"LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stderr == b"", proc.stderr.decode(errors="replace")
    out = json.loads(proc.stdout)
    assert out["ext"] is True, "the C extension did not load from the build tree"
    assert out["attached"] is False
    assert out["rid"] is None and out["inside"] is None
    assert out["daemon_mode"] is False
    assert out["trace"] == [3, 6, "n", "add", "doc", "named"]
    assert out["exception_propagates"] is True
    assert out["rows"] == [[42, "secret"]]
    assert out["count"] == 2 and out["after_commit"] == 3
    assert out["iter"] == [[1], [7], [42]]


STRIP = r"""
import json, sys
sys.path.insert(0, %(pyext)r)
import pyprof
print(json.dumps([pyprof.strip_sql_literals(q) for q in json.loads(sys.argv[1])]))
"""

STRIP_CASES = [
    ("SELECT * FROM t WHERE name = 'secret' AND id = 42",
     "SELECT * FROM t WHERE name = ? AND id = ?"),
    ("SELECT 'it''s', -3.5, 1e-3 FROM t1 WHERE x > 0.25",
     "SELECT ?, ?, ? FROM t1 WHERE x > ?"),
    ("INSERT INTO t2 VALUES ($$body$$, x'deadbeef', col3)",
     "INSERT INTO t2 VALUES (?, ?, col3)"),
    ("SELECT a FROM t WHERE b = %s AND c = :name AND d = ?",
     "SELECT a FROM t WHERE b = %s AND c = :name AND d = ?"),
]


def test_strip_sql_literals_removes_strings_and_numbers_but_not_identifiers():
    proc = subprocess.run([PYTHON, "-c", STRIP % {"pyext": PYEXT},
                           json.dumps([q for q, _ in STRIP_CASES])],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, cwd="/",
                          env={"LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert json.loads(proc.stdout) == [want for _, want in STRIP_CASES]


def test_import_pyprof_in_a_daemon_without_mod_pyprof_reports_not_attached(servers):
    srv = servers.create(name="daemon-nomod", mpm="event", with_module=False)
    prepare(srv, sampling="")
    srv.start()
    tag = unique("nomod")
    for mount, group in (("alpha", "one"), ("beta", "two")):
        body = app_json(srv, "/%s/slow/%s?ms=50" % (mount, tag))
        assert body["attached"] is False, body
        assert body["daemon_mode"] is False, body
        assert body["request_id"] is None, body
        assert body["process_group"] == "dm" and body["application_group"] == group
        assert body["import"] == {"request_id": None, "attached": False, "daemon_mode": False}
        assert is_daemon_process(body["pid"]) or not _alive(body["pid"])
    # segments, trace and instrument_dbapi still run the app's code
    body = app_json(srv, "/alpha/segments/%s?ms=20" % tag)
    assert body["view"]["ms"] == 20 and body["view"]["took_ms"]["SQL"] >= 19, body
    body = app_json(srv, "/beta/sqlite/%s?ms=0" % tag)
    assert body["view"]["rows"] == [[424242, "secret-value-7f3a"]]
    body = app_json(srv, "/alpha/hostile/%s?ms=0" % tag)
    assert body["view"]["hostile"].startswith("<script>")


def test_overview_filters_kept_requests_by_daemon_and_application_group(dsrv):
    """The slow list can be narrowed to one mod_wsgi process group or one
    application group (sub-interpreter)."""
    tag = unique("groups")
    for mount in ("alpha", "beta"):
        body = app_json(dsrv, "/%s/slow/%s?ms=400" % (mount, tag))
        assert kept_by_id(dsrv, body["request_id"])
    data = dsrv.get("/server-profile?format=json").json()
    groups = {r["application_group"] for r in data["requests"] if r["application_group"]}
    assert {"one", "two"} <= groups, groups
    for group in groups:
        got = dsrv.get("/server-profile?format=json&app_group=%s"
                       % urllib.parse.quote(group, safe="")).json()["requests"]
        assert got and {r["application_group"] for r in got} == {group}
    got = dsrv.get("/server-profile?format=json&process_group=dm").json()["requests"]
    assert got and {r["process_group"] for r in got} == {"dm"}
    none = dsrv.get("/server-profile?format=json&process_group=nosuch").json()["requests"]
    assert none == []
    page = dsrv.get("/server-profile?app_group=%s" % urllib.parse.quote(sorted(groups)[0], safe=""))
    assert page.status_code == 200 and "name=app_group" in page.text
