"""PyProfAllocations (issue [12]): sampled allocations attributed to the
request whose thread made them.

apps/alloc_app.py allocates known amounts: /keep keeps 16 MiB of 4 KiB
bytearrays, /churn builds 30 MiB of 1000-byte bytes objects and frees them,
/none allocates next to nothing.  At PyProfAllocations 64K an estimate of B
bytes has a relative standard error of about sqrt(64K / B): 6% for 16 MiB,
4.5% for 30 MiB, so "within 25%" holds at 4 sigma or more.

Also: an app that starts and stops tracemalloc keeps working and later
requests still get estimates; a graceful restart and a daemon process
recycled by maximum-requests leave a clean error log (the harness checks
it); with the directive absent (Off) no hook is installed and the JSON has
no alloc_* keys.
"""

import gzip
import os
import subprocess
import time

import pytest

from conftest import HERE, finished_request, serving, unique
from daemon_util import PYEXT
from views_util import PROMTOOL

ALLOC_APP = os.path.join(HERE, "apps", "alloc_app.py")

CONF = """\
PyProfSample /app 10ms
PyProfHeaders On
PyProfKeep 200
"""
# the app in the main interpreter, imported as each child starts (before
# the hooks: what a first request would otherwise allocate making an
# interpreter and importing the script is not the view's)
PRELOAD = """\
WSGIApplicationGroup %{{GLOBAL}}
WSGIImportScript "{app}" process-group=%{{GLOBAL}} application-group=%{{GLOBAL}}
"""


def preload(s):
    s.extra = PRELOAD.format(app=s.app) + s.extra
ON = "PyProfAllocations 64K\n"

DAEMON = """\
WSGIDaemonProcess dalloc processes=1 threads=2 maximum-requests=5 python-path={pyext} display-name=%{{GROUP}}
WSGIScriptAlias /dapp "{app}" process-group=dalloc application-group=%{{GLOBAL}}
PyProfSample /dapp 10ms
"""


@pytest.fixture(scope="module")
def srv(mpm, pyprof_module):
    yield from serving(preload, name="alloc-" + mpm, mpm=mpm, app_source=ALLOC_APP,
                       extra=CONF + ON)


@pytest.fixture(scope="module")
def off_srv(pyprof_module):
    yield from serving(preload, name="alloc-off", mpm="event", app_source=ALLOC_APP,
                       extra=CONF)


def run(srv, path):
    """GET path; (the view's JSON, the request's record)."""
    r = srv.get_ok(path)
    # a daemon's response carries no X-PyProf-Id; the app asks pyprof
    rid = r.headers.get("X-PyProf-Id") or r.json().get("request_id")
    assert rid, "no request id for %s" % path
    return r.json(), finished_request(srv, rid)


def near(value, truth, tol=0.25):
    return abs(value - truth) <= tol * truth


def leaf_functions(detail, n=3):
    return [s["frames"][-1]["function"] for s in detail["alloc_stacks"][:n] if s["frames"]]


def test_kept_bytes_are_live(srv):
    srv.get_ok("/app/release")
    view, d = run(srv, "/app/keep/%s?kb=16384" % unique("a"))
    truth = view["truth"]
    assert d["alloc_mean"] == 65536
    assert near(d["alloc_bytes"], truth), (d["alloc_bytes"], truth)
    assert near(d["alloc_live_bytes"], truth), (d["alloc_live_bytes"], truth)
    assert d["alloc_samples"] > 50
    assert "keep_chunks" in leaf_functions(d, 1), d["alloc_stacks"][:2]
    top = d["alloc_stacks"][0]
    assert top["bytes"] >= 0.5 * truth
    # largest first
    sizes = [s["bytes"] for s in d["alloc_stacks"]]
    assert sizes == sorted(sizes, reverse=True)
    srv.get_ok("/app/release")


def test_request_page_and_metrics(srv):
    srv.get_ok("/app/release")
    view, d = run(srv, "/app/keep/%s?kb=4096" % unique("a"))
    html = srv.get_ok(srv.request_path(d["id"])).text
    assert "<h2>Allocations" in html
    assert "still live when the request ended" in html
    assert "keep_chunks" in html
    pprof = gzip.decompress(srv.get_ok(srv.request_path(d["id"], "pprof") + "&kind=alloc").content)
    for name in (b"alloc_objects", b"alloc_space", b"bytes", b"keep_chunks"):
        assert name in pprof, name
    assert b"alloc_space" not in gzip.decompress(
        srv.get_ok(srv.request_path(d["id"], "pprof")).content)
    srv.get_ok("/app/release")
    text = srv.get_ok("/server-profile/metrics").text
    series = {}
    for line in text.splitlines():
        if line.startswith("pyprof_alloc_"):
            name, value = line.rsplit(" ", 1)
            series[name] = float(value)
    assert series.get('pyprof_alloc_bytes_total{location="/app"}', 0) >= d["alloc_bytes"]
    assert series.get('pyprof_alloc_retained_bytes_total{location="/app"}', 0) > 0
    assert "pyprof_alloc_outside_bytes_total" in series
    if PROMTOOL and os.path.exists(PROMTOOL):
        proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode("utf-8"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = proc.stdout.decode("utf-8", "replace")
        assert proc.returncode == 0 or "alloc" not in out, out


def test_freed_bytes_are_not_live(srv):
    view, d = run(srv, "/app/churn/%s?mb=30" % unique("a"))
    truth = view["truth"]
    assert near(d["alloc_bytes"], truth), (d["alloc_bytes"], truth)
    # all of it freed before the view returned: what is left is noise (a
    # few sampled allocations of the response, ~64K each)
    assert d["alloc_live_bytes"] < 0.05 * truth, (d["alloc_live_bytes"], truth)
    assert "churn_objects" in leaf_functions(d, 1), d["alloc_stacks"][:2]


def test_no_allocations_is_about_zero(srv):
    _, d = run(srv, "/app/none/%s" % unique("a"))
    assert "alloc_bytes" in d
    # mod_wsgi's environ and the response: a few KB, at most a sample or
    # two of ~64K each
    assert d["alloc_bytes"] < 512 * 1024, d["alloc_bytes"]


def test_tracemalloc_in_the_app(srv):
    view, d = run(srv, "/app/trace/%s?kb=4096" % unique("a"))
    assert view["truth"] > 0
    # tracemalloc wrapped our hooks and put them back: later requests are
    # still estimated
    srv.get_ok("/app/release")
    view, d = run(srv, "/app/keep/%s?kb=16384" % unique("a"))
    assert near(d["alloc_bytes"], view["truth"]), (d["alloc_bytes"], view["truth"])
    srv.get_ok("/app/release")
    assert run(srv, "/app/hooked")[0]["hooked"] is True


def test_graceful_restart(srv):
    for _ in range(3):
        srv.get_ok("/app/churn?mb=2")
    srv.graceful()
    deadline = time.time() + 20
    while True:
        try:
            view, d = run(srv, "/app/keep/%s?kb=8192" % unique("a"))
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    assert near(d["alloc_bytes"], view["truth"], 0.35)
    srv.get_ok("/app/release")


def test_off_installs_no_hook(off_srv):
    view, d = run(off_srv, "/app/hooked/%s" % unique("a"))
    assert view["hooked"] is False
    assert "alloc_bytes" not in d and "alloc_stacks" not in d
    assert "<h2>Allocations" not in off_srv.get_ok(off_srv.request_path(d["id"])).text
    assert "pyprof_alloc_" not in off_srv.get_ok("/server-profile/metrics").text


@pytest.fixture(scope="module")
def daemon_srv(pyprof_module):
    def setup(s):
        s.extra = DAEMON.format(pyext=PYEXT, app=s.app) + s.extra
    yield from serving(setup, name="alloc-daemon", mpm="event", app_source=ALLOC_APP,
                       extra=CONF + ON)


def test_daemon_recycled_by_maximum_requests(daemon_srv):
    # the first request of each daemon process imports the app (and
    # pyprof, which hooks the allocators): estimates from the second on
    pids = set()
    good = 0
    for i in range(12):
        view, d = run(daemon_srv, "/dapp/keep/%s?kb=8192" % unique("a"))
        pids.add(view["pid"])
        if "alloc_bytes" in d and near(d["alloc_bytes"], view["truth"], 0.35):
            good += 1
        daemon_srv.get("/dapp/release")
    assert len(pids) >= 2, "maximum-requests=5 did not recycle the daemon"
    assert good >= 6, good
    assert run(daemon_srv, "/dapp/hooked")[0]["hooked"] is True


@pytest.fixture(scope="module")
def cfg(module_servers, pyprof_module):
    return module_servers.create(name="alloc-configtest", mpm="event")


@pytest.mark.parametrize("value", ["0", "2G", "lots", "64Q"])
def test_configtest_refuses_a_bad_size(cfg, value):
    rc, out = cfg.configtest("PyProfAllocations %s\n" % value)
    assert rc != 0 and "Syntax OK" not in out
    message = out.split("Syntax error", 1)[-1]
    assert "PyProfAllocations" in message and "Off" in message and "256K" in message, out


@pytest.mark.parametrize("value", ["Off", "64K", "1M", "1", "262144"])
def test_configtest_accepts(cfg, value):
    rc, out = cfg.configtest("PyProfAllocations %s\n" % value)
    assert rc == 0, out


def test_configtest_main_server_only(cfg):
    rc, out = cfg.configtest("<VirtualHost *:1>\nPyProfAllocations 64K\n</VirtualHost>\n")
    assert rc != 0 and "PyProfAllocations" in out, out
