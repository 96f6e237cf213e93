"""WSGI application served by the mod_pyprof integration tests.

Every view calls functions with distinctive names so that a test can look
for them in sampled stacks: a request runs
    application -> dispatch -> view_<name> -> burn_cpu | sleep_for
so the stacks have depth and a known root-to-leaf order (dispatch, the
slow, cpu and mixed views and the leaves are pyprof_testlib.py's).  The
first path segment after the mount point picks the view; anything after
it (e.g. a per-test tag) is ignored, so a test can make its requests
recognisable in /server-profile even when the query string is redacted.

    /app/fast               returns at once
    /app/slow?ms=N          sleep_for(N)
    /app/cpu?ms=N           burn_cpu(N): pure-Python loop, N ms of thread CPU
    /app/mixed?cpu=N&sleep=M burn_cpu(N) then sleep_for(M)
    /app/pid[?ms=N]         the serving process' pid (after N ms of sleep)
    /app/anything-else      200, echoes the path; sleeps ?ms=N if given

Any view also takes ?pre=N: sleep_for(N) before the view runs.  A CPU burst
at the very start of a child's first request is a known blind spot of the
sampler (see test_preload.py); tests about something else use pre= so that
the sampler has seen the request's interpreter before the burst.

It must stay importable by the Python that mod_wsgi embeds (Debian's 3.11)
and never writes to stderr: the harness treats [error] log lines as failures.
"""

import os
import sys
import time

# sleep_for, ms_param, dispatch and the slow, cpu and mixed views:
# pyprof_testlib.py, copied next to this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyprof_testlib import sleep_for  # noqa: E402
from pyprof_testlib import dispatch, ms_param as _ms  # noqa: E402
from pyprof_testlib import view_cpu, view_mixed, view_slow  # noqa: E402


def view_fast(environ, params):
    return "fast\n"


def view_pid(environ, params):
    ms = _ms(params, "ms", 0)
    if ms:
        time.sleep(ms / 1000.0)
    return "%d\n" % os.getpid()


def view_echo(environ, params):
    ms = _ms(params, "ms", 0)
    if ms:
        sleep_for(ms)
    return "echo %s\n" % environ.get("PATH_INFO", "")


VIEWS = {
    "fast": view_fast,
    "slow": view_slow,
    "cpu": view_cpu,
    "mixed": view_mixed,
    "pid": view_pid,
}


def application(environ, start_response):
    body = dispatch(environ, VIEWS, view_echo).encode("utf-8", "backslashreplace")
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
