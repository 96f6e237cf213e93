"""Second WSGI application for the issue [3] integration tests (per-request
headers, trigger, capture, correlation, CPU vs wall, bad input).

Served at /app3 by conftest.serving_app3(); tests/integration/apps/app.py
(at /app) stays untouched.  As in app.py, the first path segment after the
mount point picks the view and anything after it (a per-test tag) is
ignored.

    /app3/fast              200 at once
    /app3/cpu?ms=N          burn_cpu(N) (pure-Python loop, N ms thread CPU)
    /app3/status/CODE       the app itself answers CODE (e.g. 404) with a body
    /app3/raise             the app raises: mod_wsgi answers 500 and logs
                            the traceback ("PyProfTestError" in it)
    /app3/redirect          the app answers 302 Location: /app3/fast
    /app3/env               JSON of what the app sees: every HTTP_* key,
                            UNIQUE_ID, and the header count
    /app3/slow?ms=N         sleep_for(N)

Any view also takes ?ms=N (sleep first, off CPU) and ?pre=N (same), so a
test can make an error or redirect response slow.  Never writes to stderr:
the harness treats [error] log lines as failures.
"""

import json
import os
import sys
from urllib.parse import parse_qs

# burn_cpu, sleep_for and ms_param: pyprof_testlib.py, copied next to this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyprof_testlib import burn_cpu, sleep_for  # noqa: E402
from pyprof_testlib import ms_param as _ms  # noqa: E402


class PyProfTestError(Exception):
    """Raised by /app3/raise; its name marks the expected traceback lines."""


def _text(start_response, status, body, extra=()):
    data = body.encode("utf-8", "backslashreplace")
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(data)))] + list(extra))
    return [data]


def view_status(environ, params, start_response, rest):
    try:
        code = int(rest[0]) if rest else 404
    except ValueError:
        code = 404
    if not 200 <= code <= 599:
        code = 404
    reasons = {404: "Not Found", 410: "Gone", 503: "Service Unavailable"}
    return _text(start_response, "%d %s" % (code, reasons.get(code, "Status")),
                 "app says %d\n" % code)


def view_raise(environ, params, start_response, rest):
    raise PyProfTestError("raised on purpose by /app3/raise")


def view_redirect(environ, params, start_response, rest):
    return _text(start_response, "302 Found", "see /app3/fast\n",
                 [("Location", "/app3/fast")])


def view_env(environ, params, start_response, rest):
    seen = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
    body = json.dumps({
        "http": seen,
        "header_count": len(seen),
        "unique_id": environ.get("UNIQUE_ID"),
        "trigger": environ.get("HTTP_X_PYPROF_TRIGGER"),
    }, sort_keys=True)
    data = body.encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]


def view_cpu(environ, params, start_response, rest):
    ms = _ms(params, "cpu", 100)
    burn_cpu(ms)
    return _text(start_response, "200 OK", "burned %d ms\n" % ms)


def view_fast(environ, params, start_response, rest):
    return _text(start_response, "200 OK", "fast\n")


def view_slow(environ, params, start_response, rest):
    return _text(start_response, "200 OK", "slept\n")


VIEWS = {
    "status": view_status,
    "raise": view_raise,
    "redirect": view_redirect,
    "env": view_env,
    "cpu": view_cpu,
    "fast": view_fast,
    "slow": view_slow,
}


def dispatch(environ, start_response):
    path = environ.get("PATH_INFO", "") or "/"
    parts = path.split("/")[1:]
    name = parts[0] if parts else ""
    params = parse_qs(environ.get("QUERY_STRING", ""))
    wait = _ms(params, "ms", 0) + _ms(params, "pre", 0)
    if wait:
        sleep_for(wait)
    view = VIEWS.get(name, view_fast)
    return view(environ, params, start_response, parts[1:])


def application(environ, start_response):
    return dispatch(environ, start_response)
