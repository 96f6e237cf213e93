"""pytest fixtures of the mod_pyprof integration tests over the one httpd
harness, tests/pyhttpd (class Httpd: a real httpd + mod_wsgi).

When a server is stopped its error log is scanned; a crash, a fatal Python
error or an [error]/[crit]/[alert]/[emerg] line the test did not expect
fails the test that owned the server.  The harness' names are re-exported
here, so the tests import everything from conftest.

The environment variables (PYPROF_MODULE, PYPROF_NO_MODULE, PYPROF_MPMS,
PYPROF_KEEP_TMP, PYPROF_TMPDIR, PYPROF_EXTRA_CONF, PYPROF_WSGI_SO) are
described in tests/pyhttpd/httpd.py.
"""

import os
import shutil
import socket
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))     # tests/, for tests/pyhttpd

from pyhttpd.httpd import (APACHE, APACHE_MODULES, APP_SOURCE, CLEAN_ENV,  # noqa: E402,F401
                           HTTP_TIMEOUT, MAX_CONCURRENCY, MPM_SETTINGS, PID_IN_LOG, REPO,
                           SEVERE_LEVEL, START_TIMEOUT, STOP_TIMEOUT, WSGI_SO, Httpd,
                           HttpdError, ServerPool, Traffic, _alive, _children_of, _free_port, cmdline,
                           add_crash_markers, get_concurrently, module_disabled, module_path,
                           path_under, scan_error_log, selected_mpms, unique, wait_for)


def _pool_fixture():
    pool = ServerPool()
    try:
        yield pool
    finally:
        report = pool.finish()
    if report:
        pytest.fail("error log / shutdown problems:\n" + "\n".join(report), pytrace=False)


def serving(setup=None, **kw):
    """Generator for a fixture that owns one started server:

        @pytest.fixture(scope="module")
        def srv(mpm, pyprof_module):
            yield from serving(name="main", mpm=mpm, extra="PyProfSample /app 10ms")

    setup(srv), when given, runs on the created server before it starts
    (installs apps, adds configuration).  The server is stopped and its log
    checked when the fixture ends.
    """
    pools = _pool_fixture()
    pool = next(pools)
    try:
        srv = pool.create(**kw)
        if setup is not None:
            setup(srv)
        srv.start()
    except BaseException:
        pools.close()
        raise
    yield srv
    next(pools, None)


@pytest.fixture
def servers():
    """Function-scoped ServerPool: servers live for one test."""
    yield from _pool_fixture()


@pytest.fixture(scope="module")
def module_servers():
    """Module-scoped ServerPool: one server shared by a module's tests."""
    yield from _pool_fixture()


@pytest.fixture(scope="session")
def pyprof_module():
    """Path of the module under test; skips when PYPROF_NO_MODULE is set and
    fails (not skips) when the module has not been built."""
    if module_disabled():
        pytest.skip("PYPROF_NO_MODULE set: mod_pyprof not loaded")
    path = module_path()
    if not os.path.exists(path):
        pytest.fail("mod_pyprof not built: %s does not exist (run `make`, or set "
                    "PYPROF_MODULE)" % path, pytrace=False)
    # One `apache2 -t` up front, so a module that cannot be loaded is one
    # clear message rather than a start-up failure in every fixture.
    probe = Httpd(name="loadcheck", module=path)
    try:
        rc, out = probe.configtest("")
    finally:
        probe.remove()
    if rc != 0:
        pytest.fail("mod_pyprof does not load: %s" % out.strip(), pytrace=False)
    return path


@pytest.fixture(scope="module", params=selected_mpms())
def mpm(request):
    return request.param


# ---------------------------------------------------------------------------
# Appended for the issue [3] tests (test_headers, test_trigger, test_capture,
# test_correlation, test_cpu_wall, test_bad_input): a second WSGI app,
# tests/integration/apps/app3.py, mounted at /app3 next to the usual /app.
# ---------------------------------------------------------------------------

APP3_SOURCE = os.path.join(HERE, "apps", "app3.py")


def serving_app3(mounts=("/app3",), **kw):
    """Like serving(), but the server also mounts apps/app3.py at each of
    `mounts` (default /app3; copied into the server directory, so www-data
    can read it).  The PyProf* lines in `extra` may sample a mount like any
    other prefix, or leave it unsampled."""
    def setup(srv):
        app3 = os.path.join(srv.root, "app3.py")
        shutil.copyfile(APP3_SOURCE, app3)
        os.chmod(app3, 0o644)
        srv.app3 = app3
        aliases = "".join('WSGIScriptAlias %s "%s"\n' % (m, app3) for m in mounts)
        srv.extra = aliases + srv.extra
    yield from serving(setup, **kw)


def finished_request(srv, request_id, timeout=10):
    """The JSON of /server-profile/request/ID once the request has ended.

    A client has its response before log_transaction ran, and an id from
    X-PyProf-Id resolves while the request is still in flight (status 0,
    "inflight": true): wait (bounded) for the final record."""
    path = srv.request_path(request_id, "json")

    def final():
        r = srv.get(path)
        if r.status_code != 200:
            return None
        detail = r.json()
        return detail if not detail.get("inflight") else None

    detail = wait_for(final, timeout)
    assert detail, "%s did not resolve to a finished request within %ss" % (path, timeout)
    return detail


def raw_get(srv, target, headers=(), timeout=15):
    """GET with exactly these bytes as the request target (and these raw
    header lines); returns (status, the response's bytes), status None when
    the answer is not HTTP."""
    request = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    for h in headers:
        request += h + b"\r\n"
    request += b"\r\n"
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        for _ in range(1000):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else None
    return status, data


def stolen_ms():
    """CPU time the hypervisor took from this virtual machine, all CPUs
    (the steal column of /proc/stat): 0 on bare metal."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    steal = int(fields[8]) if len(fields) > 8 else 0
    return steal * 1000.0 / os.sysconf("SC_CLK_TCK")
