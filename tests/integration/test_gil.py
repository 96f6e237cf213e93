"""GIL blame, issue [11]: a request that waits for the GIL says so, and
says who held it.

apps/gil_app.py serves /app/cpu (build_rows: 900 ms of thread CPU in pure
Python) and /app/light (60 x a 1 ms sleep and a little Python).  One Apache
child with 16 threads (event MPM), sampled every 1 ms, GIL-free sampler.
One CPU-bound request starts; once the sampler has seen it on CPU (polled
from the overview's in-flight list: no sleep as synchronisation), three
light ones start at once.  Each light one then spends most of its time
waiting for the GIL, before its first frame (mod_wsgi takes the GIL before
the app) and after each sleep, and its record names the CPU-bound request
and build_rows as the holder.  Run with the app in the main interpreter
(WSGIApplicationGroup %{GLOBAL}) and in a named application group (3.11:
the waiter's drop request goes to its own interpreter, so the holder runs
on until it blocks: the long case).

Controls: the three light requests alone wait next to nothing; with the
prefork MPM (one request per process) the light requests wait for no GIL
while /app/cpu runs in another child.

Margins (design note's experiments, 3.11): light threads behind a CPU-bound
one in the same interpreter spend 80-88% of their time waiting, across
interpreters over 90%; the assertion is half.
"""

import json
import os
import re
import threading

import pytest

from conftest import HERE, MPM_SETTINGS, finished_request, get_concurrently, serving, unique, wait_for

GIL_APP = os.path.join(HERE, "apps", "gil_app.py")

ONE_CHILD = """\
StartServers 1
ServerLimit 1
ThreadLimit 16
ThreadsPerChild 16
MaxRequestWorkers 16
MinSpareThreads 1
MaxSpareThreads 16
MaxConnectionsPerChild 0
"""

CONF = """\
PyProfSample /app 1ms
PyProfSlowThreshold 1ms
PyProfKeep 500
PyProfHeaders On
"""

GROUPS = {"global": "WSGIApplicationGroup %{GLOBAL}\n",
          "named": "WSGIApplicationGroup gil-named\n"}


@pytest.fixture(scope="module", params=sorted(GROUPS))
def srv(request, pyprof_module):
    yield from serving(name="gil-%s" % request.param, mpm="event",
                       mpm_settings=ONE_CHILD, app_source=GIL_APP,
                       extra=CONF + GROUPS[request.param])


@pytest.fixture(scope="module")
def prefork_srv(pyprof_module):
    yield from serving(name="gil-prefork", mpm="prefork",
                       mpm_settings=MPM_SETTINGS["prefork"], app_source=GIL_APP, extra=CONF)


def inflight(srv, tag):
    """The overview's in-flight entry of the request with tag in its URI."""
    for q in srv.get_ok("/server-profile?format=json").json()["inflight"]:
        if tag in q["uri"]:
            return q
    return None


def start_cpu(srv, tag, ms=900):
    """Start /app/cpu in a thread; returns (thread, result dict)."""
    out = {}

    def run():
        out["r"] = srv.get("/app/cpu/%s?ms=%d" % (tag, ms), timeout=30)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def lights(srv, tag, n=3):
    rs = get_concurrently(srv, ["/app/light/%s-%d" % (tag, i) for i in range(n)],
                          timeout=30)
    assert all(getattr(r, "status_code", None) == 200 for r in rs), rs
    return [finished_request(srv, r.headers["X-PyProf-Id"]) for r in rs]


def summary(q):
    """What a failed assertion prints about a request (whole: a string)."""
    return json.dumps({k: q.get(k) for k in (
        "id", "uri", "duration_ms", "samples", "gil_wait_ms", "gil_enter_ms",
        "samples_gil_wait", "samples_gil_enter", "outside_python_ms", "gil_holders")})


@pytest.fixture(scope="module")
def contended(srv):
    """(the CPU-bound request's JSON, the three light ones', their pages)"""
    srv.get_ok("/app/fast")
    tag = unique("gil")
    t, out = start_cpu(srv, tag)
    # the sampler has seen it burn 50 ms: it holds the GIL from now on
    seen = wait_for(lambda: (lambda q: q if q and q["samples_on_cpu"] >= 50 else None)(
        inflight(srv, tag)), 10, interval=0.01)
    assert seen, "the CPU-bound request never showed in flight on CPU"
    light = lights(srv, tag)
    t.join(30)
    assert out["r"].status_code == 200
    cpu = finished_request(srv, out["r"].headers["X-PyProf-Id"])
    pages = [srv.get_ok(srv.request_path(q["id"])).text for q in light]
    return cpu, light, pages


def test_light_requests_mostly_wait_for_the_gil(contended):
    cpu, light, _ = contended
    for q in light:
        assert q["gil_wait_ms"] >= 0.5 * q["duration_ms"], summary(q)


def test_first_holder_is_the_cpu_bound_request_in_build_rows(contended):
    cpu, light, _ = contended
    for q in light:
        assert q["gil_holders"], summary(q)
        h = q["gil_holders"][0]
        assert h["request_id"] == cpu["id"], (summary(q), cpu["id"])
        assert h["function"] == "build_rows", summary(q)
        assert h["file"].endswith("app.py") and h["line"] > 0, h
        assert h["samples"] > 0 and h["ms"] > 0, h
        assert h["uri"].startswith("/app/cpu/"), h
        ms = [x["ms"] for x in q["gil_holders"]]
        assert ms == sorted(ms, reverse=True), ms


def test_waiting_to_enter_python_is_not_outside_python(contended):
    """The wait before the first frame is GIL wait, not "outside Python"."""
    _, light, _ = contended
    for q in light:
        assert q["samples_gil_enter"] + q["samples_gil_wait"] > 0, summary(q)
        assert q["outside_python_ms"] < 0.25 * q["duration_ms"], summary(q)


def test_the_wait_shows_as_a_leaf_pseudo_frame(contended):
    _, light, _ = contended
    for q in light:
        leaves = [s["frames"][-1]["function"] if s["frames"] else "" for s in q["stacks"]]
        assert any(re.match(r"<(GIL wait|waiting to enter Python): held by /app build_rows>",
                            f) for f in leaves), leaves


def test_the_cpu_bound_request_waited_for_no_one(contended):
    cpu, _, _ = contended
    assert cpu["gil_wait_ms"] < 0.2 * cpu["duration_ms"], summary(cpu)


def test_request_page_names_the_holder(contended):
    cpu, light, pages = contended
    for q, page in zip(light, pages):
        m = re.search(r"Waited ([\d,.]+) ms for the GIL, (\d+)% behind", page)
        assert m, page[:3000]
        assert srv_link(cpu["id"]) in page
        assert "build_rows" in page
        assert "waiting to enter Python" in page


def srv_link(request_id):
    return 'href="/server-profile/request/%s"' % request_id


def test_control_without_cpu_request_shows_little_gil_wait(srv):
    srv.get_ok("/app/fast")
    for q in lights(srv, unique("ctl")):
        assert q["gil_wait_ms"] < 0.1 * q["duration_ms"], summary(q)


def test_a_lock_wait_is_off_cpu_not_gil_wait(srv):
    """A futex wait while the GIL is free (or nobody sleeps on it) is a
    lock: off CPU, not GIL wait (it used to count as the GIL)."""
    r = srv.get_ok("/app/lock/%s" % unique("lock"), timeout=30)
    q = finished_request(srv, r.headers["X-PyProf-Id"])
    assert q["duration_ms"] >= 200, summary(q)
    assert q["samples_off_cpu"] >= 50, summary(q)
    assert q["gil_wait_ms"] < 0.1 * q["duration_ms"], summary(q)
    assert q["samples_gil_wait"] < 0.1 * q["samples_off_cpu"], summary(q)


def test_prefork_shows_no_gil_wait(prefork_srv):
    srv = prefork_srv
    tag = unique("pf")
    t, out = start_cpu(srv, tag, ms=600)
    seen = wait_for(lambda: (lambda q: q if q and q["samples_on_cpu"] >= 50 else None)(
        inflight(srv, tag)), 10, interval=0.01)
    assert seen
    light = lights(srv, tag)
    t.join(30)
    cpu = finished_request(srv, out["r"].headers["X-PyProf-Id"])
    for q in light:
        assert q["pid"] != cpu["pid"], (summary(q), cpu["pid"])
        assert q["gil_wait_ms"] == 0 and q["gil_holders"] == [], summary(q)


def test_metrics_count_the_wait_suffered_and_caused(contended, srv):
    text = srv.get_ok("/server-profile/metrics").text
    waited = re.search(r'^pyprof_gil_wait_seconds_total\{location="/app"\} ([\d.]+)$',
                       text, re.M)
    caused = re.search(r'^pyprof_gil_blocking_seconds_total\{location="/app"\} ([\d.]+)$',
                       text, re.M)
    assert waited and float(waited.group(1)) > 0.3, text[-3000:]
    assert caused and float(caused.group(1)) > 0.3, text[-3000:]
    loc = srv.get_ok("/server-profile/location?path=/app&format=json").json()
    assert loc["gil_wait_ms"] > 300 and loc["gil_blocking_ms"] > 300, {
        k: loc[k] for k in ("gil_wait_ms", "gil_blocking_ms")}


def test_contention_tables_link_both_ways(contended, srv):
    overview = srv.get_ok("/server-profile").text
    i = overview.index("<h2 id=gil>GIL contention</h2>")
    table = overview[i:overview.index("</table>", i)]
    assert "build_rows" in table, table
    assert 'href="/server-profile/location?path=%2Fapp"' in table, table
    page = srv.get_ok("/server-profile/location?path=/app").text
    i = page.index("<h2>GIL contention</h2>")
    section = page[i:]
    # /app made only its own requests wait: one table (both ways are
    # unit-tested, tests/unit/test_pages.c)
    assert "<h3>Its own requests, behind each other</h3>" in section, section[:2000]
    assert "build_rows" in section
    assert 'href="/server-profile/location?path=%2Fapp"' in section


# -- exports: the wait as a leaf pseudo-frame, and pprof's gil_holder label --

WAIT_FRAME = re.compile(r"<(GIL wait|waiting to enter Python): held by /app build_rows>")


def test_exports_show_the_wait_at_the_leaf(contended, srv):
    from views_util import Pprof, folded_stacks
    _, light, _ = contended
    q = light[0]
    folded = srv.get_ok(srv.request_path(q["id"], "folded")).text
    leaves = [frames[-1] for frames, _ in folded_stacks(folded) if frames]
    assert any(WAIT_FRAME.match(f) for f in leaves), leaves
    # (test_exports.py validates the format against speedscope's schema)
    doc = json.loads(srv.get_ok(srv.request_path(q["id"], "speedscope")).content)
    assert any(WAIT_FRAME.match(f["name"]) for f in doc["shared"]["frames"]), doc["shared"]
    prof = Pprof(srv.get_ok(srv.request_path(q["id"], "pprof")).content)
    waits = [s for s in prof.samples if WAIT_FRAME.match(prof.stack(s)[0])]
    assert waits, [prof.stack(s)[:2] for s in prof.samples]
    for s in waits:
        assert re.match(r"/app build_rows \(.*app\.py:\d+\)$",
                        prof.labels(s)["gil_holder"]), prof.labels(s)
    others = [s for s in prof.samples if not prof.stack(s)[0].startswith("<")]
    assert all("gil_holder" not in prof.labels(s) for s in others)


# -- daemon mode: the same inside one threaded daemon process ----------------

def daemon_setup(srv):
    from daemon_util import PYEXT
    app = os.path.join(srv.root, "gil_daemon.py")
    with open(GIL_APP) as src, open(app, "w") as dst:
        dst.write(src.read())
    os.chmod(app, 0o644)
    srv.extra = ("WSGIDaemonProcess gild processes=1 threads=16 python-path=%s "
                 "display-name=%%{GROUP}\n"
                 'WSGIScriptAlias /d "%s" process-group=gild '
                 "application-group=%%{GLOBAL}\n" % (PYEXT, app)) + srv.extra


DAEMON_CONF = """\
PyProfSample /d 1ms
PyProfSlowThreshold 1ms
PyProfKeep 500
PyProfHeaders On
"""


@pytest.fixture(scope="module")
def daemon_srv(pyprof_module):
    yield from serving(daemon_setup, name="gil-daemon", mpm="event", extra=DAEMON_CONF)


def test_daemon_mode_blames_the_holder_and_names_the_process(daemon_srv):
    srv = daemon_srv
    srv.get_ok("/d/fast")
    tag = unique("dgil")
    out = {}

    def run():
        out["r"] = srv.get("/d/cpu/%s?ms=900" % tag, timeout=30)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    seen = wait_for(lambda: (lambda q: q if q and q["samples_on_cpu"] >= 50 else None)(
        inflight(srv, tag)), 10, interval=0.01)
    assert seen, "the CPU-bound request never showed in flight on CPU"
    rs = get_concurrently(srv, ["/d/light/%s-%d" % (tag, i) for i in range(3)], timeout=30)
    assert all(getattr(r, "status_code", None) == 200 for r in rs), rs
    light = [finished_request(srv, r.headers["X-PyProf-Id"]) for r in rs]
    t.join(30)
    cpu = finished_request(srv, out["r"].headers["X-PyProf-Id"])
    assert cpu["daemon_pid"], cpu
    for q in light:
        assert q["daemon_pid"] == cpu["daemon_pid"], summary(q)
        assert q["gil_wait_ms"] >= 0.5 * q["duration_ms"], summary(q)
        h = q["gil_holders"][0]
        assert h["request_id"] == cpu["id"] and h["function"] == "build_rows", summary(q)
        page = srv.get_ok(srv.request_path(q["id"])).text
        assert re.search(r"Waited [\d,.]+ ms for the GIL, \d+% behind", page)
        assert "inside mod_wsgi daemon process pid %d (group gild)" % q["daemon_pid"] in page
