"""The harness itself, without mod_pyprof: config generation, start/stop,
the WSGI test app's endpoints, and the error-log scanner.  These run even
with PYPROF_NO_MODULE=1, so a broken harness is told apart from a broken
module."""

import pytest

import time

from conftest import Traffic, get_concurrently, scan_error_log, wait_for


@pytest.fixture(scope="module")
def bare(mpm):
    from conftest import serving
    yield from serving(name="bare", mpm=mpm, with_module=False)


def test_app_endpoints_answer_without_the_module(bare):
    assert bare.get_ok("/app/fast").text == "fast\n"
    assert bare.get_ok("/app/slow?ms=20").text == "slept 20 ms\n"
    assert bare.get_ok("/app/cpu?ms=20").text == "burned 20 ms\n"
    assert bare.get_ok("/app/mixed?cpu=10&sleep=10").text == "burned 10 ms, slept 10 ms\n"
    assert int(bare.get_ok("/app/pid").text) > 1
    assert bare.get_ok("/app/some/thing").text == "echo /some/thing\n"
    assert bare.get_ok("/app").text == "echo \n"
    assert bare.get_ok("/app/fast?pre=5").text == "fast\n"


def test_several_children_serve_python(bare, mpm):
    assert len(bare.children()) >= 2
    responses = get_concurrently(bare, ["/app/slow?ms=300"] * 6)
    assert all(getattr(r, "status_code", None) == 200 for r in responses), responses
    assert len(bare.pids_serving(want=2)) >= 2


def test_hostile_uris_reach_the_app(bare):
    # The escaping tests rely on these reaching mod_wsgi unharmed.
    r = bare.get_ok("/app/x%3Cscript%3Ealert(1)%3C/script%3E?ms=1")
    assert "<script>alert(1)</script>" in r.text
    r = bare.get_ok("/app/q%22uote%5Cback%09tab?ms=1")
    assert r.status_code == 200


def test_server_profile_is_absent_without_the_module(bare):
    assert bare.get("/server-profile").status_code == 404


def test_configtest_accepts_the_generated_config(bare):
    rc, out = bare.configtest()
    assert rc == 0 and "Syntax OK" in out, out


def test_configtest_reports_an_unknown_directive(bare):
    rc, out = bare.configtest("NoSuchDirective 1")
    assert rc != 0 and "NoSuchDirective" in out, out


def test_graceful_restart_without_the_module_loses_no_request(servers, mpm):
    # Baseline for test_graceful.py: httpd + mod_wsgi alone.
    srv = servers.start(name="bare-graceful", mpm=mpm, with_module=False)
    old = srv.pids_serving(want=2)
    traffic = Traffic(srv, "/app/fast")
    traffic.start()
    try:
        time.sleep(0.3)
        srv.graceful()
        assert wait_for(lambda: int(srv.get_ok("/app/pid").text) not in old, 15)
        time.sleep(0.5)
    finally:
        traffic.halt.set()
        traffic.join(15)
    assert traffic.failures == [] and set(traffic.statuses) == {200}
    print("retries:", traffic.retries, "requests:", len(traffic.statuses))


def test_scanner_flags_crashes_and_severe_lines():
    log = "\n".join([
        "[Sat Nov 22 00:00:00.1 2025] [core:notice] [pid 1] AH00094: Command line",
        "[Sat Nov 22 00:00:00.1 2025] [core:notice] [pid 1] AH00052: child pid 7 exit signal Segmentation fault (11)",
        "[Sat Nov 22 00:00:00.1 2025] [wsgi:error] [pid 7:tid 9] oops",
        "[Sat Nov 22 00:00:00.1 2025] [pyprof:debug] [pid 7:tid 9] sampler stopped",
        "Fatal Python error: PyThreadState_Get: no current thread",
        "[Sat Nov 22 00:00:00.1 2025] [core:warn] [pid 1] AH00045: child process 7 still did not exit, sending a SIGTERM",
        "[Sat Nov 22 00:00:00.1 2025] [core:error] [pid 1] AH00046: child process 7 still did not exit, sending a SIGKILL",
        "[Sat Nov 22 00:00:00.1 2025] [mpm_event:crit] [pid 1] AH00xxx: bad",
    ])
    off = scan_error_log(log, destroy_interpreter_off=True)
    assert len(off) == 6, off
    default = scan_error_log(log, destroy_interpreter_off=False)
    assert not any("AH0004" in line for line in default)
    assert len(default) == 4, default
    allowed = scan_error_log(log, True, allowed=[r"\[wsgi:error\].*oops"])
    assert len(allowed) == 5 and not any("oops" in line for line in allowed)
    # A whitelist never hides a crash.
    assert len(scan_error_log(log, True, allowed=["exit signal", "Fatal"])) == 6
