"""Stopping httpd after profiled traffic: no crash, and the sampler is
stopped in every child before Python is finalised.

Debian's mod_wsgi 4.9.4 + Python 3.11 often hangs in finalisation under the
default WSGIDestroyInterpreter (AH00045/AH00046 at stop, even without
mod_pyprof), so there the test proves the order from the debug log instead;
with `WSGIDestroyInterpreter Off` the stop must be clean and quick."""

import pytest

from conftest import MAX_CONCURRENCY, get_concurrently, scan_error_log, unique

MAIN = """\
PyProfSample /app 10ms
PyProfSlowThreshold 200ms
"""


def first_line_index(lines, pid, needle):
    mark = "[pid %d:" % pid
    for i, line in enumerate(lines):
        if mark in line and needle in line:
            return i
    return None


@pytest.mark.parametrize("destroy", [True, False], ids=["default-destroy", "destroy-off"])
def test_stop_is_clean_and_sampler_stops_before_finalisation(servers, mpm, pyprof_module, destroy):
    srv = servers.start(name="stop", mpm=mpm, extra=MAIN, destroy_interpreter=destroy,
                        log_level="warn wsgi:info")
    pids = srv.pids_serving(want=2)
    assert len(pids) >= 2
    tag = unique("stop")
    n = MAX_CONCURRENCY[mpm]
    responses = get_concurrently(srv, ["/app/mixed/%s-%d?cpu=50&sleep=250" % (tag, i)
                                       for i in range(n)])
    assert all(getattr(r, "status_code", None) == 200 for r in responses), responses
    kept = srv.wait_kept(tag, n)
    pids |= {int(r["pid"]) for r in kept}

    srv.stop()
    log = srv.error_log_text()
    lines = log.splitlines()
    assert srv.problems == []
    assert scan_error_log(log, srv.destroy_interpreter_off) == []

    for pid in sorted(pids):
        stopped = first_line_index(lines, pid, "sampler stopped")
        assert stopped is not None, "no 'sampler stopped' logged by child %d:\n%s" % (pid, log)
        finalising = first_line_index(lines, pid, "Destroying interpreters")
        if finalising is not None:
            assert stopped < finalising, ("child %d: sampler stopped after mod_wsgi began "
                                          "destroying interpreters:\n%s" % (pid, log))
    if not destroy:
        assert "AH00045" not in log
        assert srv.stop_seconds < 8, "stop took %.1f s" % srv.stop_seconds


def test_load_order_after_mod_wsgi_samples_and_stops_cleanly(servers, mpm, pyprof_module):
    # a2enmod loads pyprof before wsgi (alphabetical); a hand-written config
    # may not.  Hook ordering must not depend on it.
    srv = servers.start(name="load-order", mpm=mpm, extra=MAIN, module_before_wsgi=False)
    tag = unique("order")
    # pre=30: keep this test clear of the first-burst blind spot (test_preload.py)
    srv.get_ok("/app/mixed/%s?cpu=100&sleep=200&pre=30" % tag)
    [req] = srv.wait_kept(tag, 1)
    names = {f["function"] for s in srv.request_detail(req["id"])["stacks"] for f in s["frames"]}
    assert {"burn_cpu", "sleep_for"} <= names
    children = srv.children()
    srv.stop()
    log = srv.error_log_text()
    assert scan_error_log(log, srv.destroy_interpreter_off) == []
    for pid in children:
        assert first_line_index(log.splitlines(), pid, "sampler stopped") is not None, pid
