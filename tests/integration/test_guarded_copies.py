"""Guarded copies: how the GIL-free sampler copies Python memory (issue
[10], `PyProfSampler nogil [guarded|syscall]`).

By default the sampler copies with plain memcpy() under a SIGSEGV/SIGBUS
handler of its own (a page freed meanwhile makes the copy fail, not the
process die); `PyProfSampler nogil syscall` keeps process_vm_readv().  An
application that installs its own SIGSEGV handler (faulthandler.enable()
at import, apps/faulthandler_app.py) takes the faults from then on: the
sampler notices within a tick, copies with process_vm_readv() from then
on, counts it (`guard_replaced`), logs it once at notice level, and the
process neither crashes nor stops being sampled.  Sanitizer builds have no
guard (process_vm_readv only); those tests skip themselves there.

Every server's error log is checked when it stops (conftest.serving): no
crash, no "Fatal Python error", nothing at error level.
"""

import os

import pytest
import requests

from conftest import HERE, serving, unique

FAULTHANDLER_APP = os.path.join(HERE, "apps", "faulthandler_app.py")
ONE_MS = "PyProfSample /app 1ms\nPyProfSlowThreshold 1ms\nPyProfMaxDepth 256\n"
DEEP = "/app/deep?depth=30&ms=300"


@pytest.fixture(scope="module")
def mpm():
    return "event"


@pytest.fixture(scope="module")
def guarded(mpm, pyprof_module):
    yield from serving(name="guarded", mpm=mpm, extra=ONE_MS)


@pytest.fixture(scope="module")
def syscall(mpm, pyprof_module):
    yield from serving(name="syscall", mpm=mpm,
                       extra=ONE_MS + "PyProfSampler nogil syscall\n")


@pytest.fixture(scope="module")
def faulthandler_srv(mpm, pyprof_module):
    # A sanitizer build has no guard for faulthandler to replace, and under
    # ASan faulthandler's alternate signal stack (malloc'd, set on the
    # request thread that imports the app) is what ASan tries to munmap as
    # its own when that thread exits: a report that is not the module's.
    if "libasan" in os.environ.get("PYPROF_HTTPD_ENV", ""):
        pytest.skip("no guarded copies in a sanitizer build")
    yield from serving(name="faulthandler", mpm=mpm, extra=ONE_MS,
                       app_source=FAULTHANDLER_APP)


def sampler(srv):
    return srv.profile()["sampler"]


def sanitizer_build(srv):
    """A sampler started GIL-free, none of them guarded: a build with a
    sanitizer (the module logs why at info level)."""
    s = sampler(srv)
    return s["samplers_nogil"] > 0 and s["samplers_guarded"] == 0


def sampled_ms(srv, path, n=2):
    """Samples taken during n sequential requests to path (one keep-alive
    connection: the same child), and the bodies."""
    before = sampler(srv)["samples"]
    bodies = []
    with requests.Session() as s:
        for _ in range(n):
            srv._record(path)
            r = s.get(srv.url(path), timeout=30)
            assert r.status_code == 200, r.text[:300]
            bodies.append(r.text)
    return sampler(srv)["samples"] - before, bodies


def test_default_copies_are_guarded(guarded):
    guarded.get_ok("/app/fast")
    got, _ = sampled_ms(guarded, "/app/cpu?ms=300&%s" % unique("g"))
    s = sampler(guarded)
    if sanitizer_build(guarded):
        pytest.skip("no guarded copies in a sanitizer build")
    assert s["mode"] == "nogil"
    assert s["reader"] == "guarded", s
    assert s["samplers_guarded"] >= 1 and s["guard_replaced"] == 0, s
    assert s["samplers_guarded"] == s["samplers_nogil"], s
    assert got >= 200, "%d samples in 600 ms of CPU at 1 ms" % got
    page = guarded.profile_html()
    assert "copied directly" in page
    assert "copies that met a freed page" in page


def test_pyprofsampler_nogil_syscall_keeps_process_vm_readv(syscall):
    syscall.get_ok("/app/fast")
    got, _ = sampled_ms(syscall, "/app/cpu?ms=300&%s" % unique("s"))
    s = sampler(syscall)
    assert s["mode"] == "nogil"
    assert s["reader"] == "syscall", s
    assert s["samplers_nogil"] >= 1 and s["samplers_guarded"] == 0, s
    assert s["copy_faults"] == 0 and s["guard_replaced"] == 0, s
    assert got >= 200, "%d samples in 600 ms of CPU at 1 ms" % got
    assert "process_vm_readv" in syscall.profile_html()


def test_faulthandler_in_the_app_sends_the_sampler_to_process_vm_readv(faulthandler_srv):
    srv = faulthandler_srv
    # the first request imports the app (faulthandler.enable()); the
    # sampler notices on its next ticks, and the requests after it, in the
    # same child, are sampled all the same
    got, bodies = sampled_ms(srv, DEEP + "&" + unique("fh"), n=3)
    assert all(b.strip() == "faulthandler on" for b in bodies), bodies
    if sanitizer_build(srv):
        pytest.skip("no guarded copies in a sanitizer build")
    s = sampler(srv)
    assert s["guard_replaced"] >= 1, s
    assert s["reader"] in ("syscall", "mixed"), s
    assert got >= 400, "%d samples in 900 ms of CPU at 1 ms" % got
    log = srv.error_log_text()
    notices = [line for line in log.splitlines()
               if "replaced the sampler's" in line]
    assert notices and all(":notice]" in line for line in notices), notices
    # once a process, however many ticks found it replaced
    pids = {line.split("[pid ")[1].split(":")[0].split("]")[0] for line in notices}
    assert len(notices) == len(pids), notices
    # the sampled stacks are the app's
    got2, _ = sampled_ms(srv, DEEP + "&" + unique("fh2"), n=1)
    assert got2 >= 100, got2
    assert "process_vm_readv" in srv.profile_html()


@pytest.mark.parametrize("value", ["nogil guarded", "nogil syscall", "NoGIL SysCall",
                                   "nogil GUARDED"])
def test_good_copy_values_pass_configtest(guarded, value):
    rc, out = guarded.configtest(ONE_MS + "PyProfSampler %s\n" % value)
    assert rc == 0 and "Syntax OK" in out, (value, out)


@pytest.mark.parametrize("value", ["gil syscall", "nogil bogus", "nogil syscall extra",
                                   "syscall"])
def test_bad_copy_values_fail_configtest_naming_the_directive(guarded, value):
    rc, out = guarded.configtest(ONE_MS + "PyProfSampler %s\n" % value)
    assert rc != 0, "apache2 -t accepted PyProfSampler %s:\n%s" % (value, out)
    assert "Syntax OK" not in out
    assert "PyProfSampler" in out.split("Syntax error", 1)[-1], out
