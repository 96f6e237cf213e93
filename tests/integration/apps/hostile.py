"""Second WSGI application for the view, export and safety tests.

Mounted next to apps/app.py (the view tests mount it at /h), it adds what
app.py does not have:

    /h/status/NNN?ms=N   sleep_for(N), then answer with HTTP status NNN
    /h/hostile?ms=N      a call chain through functions with hostile names
                         (HOSTILE_NAMES: markup, quotes, ';', a backslash,
                         control characters, a lone surrogate), then
                         sleep_for(N) at the bottom of it
    /h/long?ms=N         a function with a 200-character name, then sleep_for
    /h/deep?n=D&ms=N     recurse(D) D frames deep, then sleep_for(N)
    /h/anything-else     200, sleeps ?ms=N if given

Every request runs application -> dispatch -> view_<name> -> ...  Anything
after the view name (a per-test tag) is ignored.  The hostile functions are
ordinary Python functions whose code object carries the hostile name as
co_name and co_qualname, which is what the sampler records.

It must stay importable by the Python that mod_wsgi embeds (Debian's 3.11)
and never writes to stderr: the harness treats [error] log lines as failures.
"""

import os
import sys
import types
from urllib.parse import parse_qs

# sleep_for and ms_param (as _int, ms at most 10 s unless told): pyprof_testlib.py,
# copied next to this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyprof_testlib import sleep_for  # noqa: E402
from pyprof_testlib import ms_param as _int  # noqa: E402

MAX_DEPTH = 2000

# Order matters: the chain calls them in this order, root to leaf.
HOSTILE_NAMES = (
    "<script>alert(1)</script>",
    "a;b",
    'quote"name',
    "apos'name",
    "back\\slash",
    "new\nline",
    "tab\tand\x01ctl",
    "sur\udcffrogate",
    "amp&amp;<xss-b>",
)

LONG_NAME = "long_" + "x" * 190 + "_end"


def _next(ms, chain):
    if chain:
        return chain[0](ms, chain[1:])
    return sleep_for(ms)


def _named(name):
    code = _next.__code__.replace(co_name=name, co_qualname=name)
    return types.FunctionType(code, globals(), name)


HOSTILE = tuple(_named(n) for n in HOSTILE_NAMES)
LONG = _named(LONG_NAME)


def recurse(depth, ms):
    if depth <= 1:
        return sleep_for(ms)
    return recurse(depth - 1, ms)


def view_status(environ, params, rest):
    try:
        code = int(rest.split("/")[0])
    except ValueError:
        code = 200
    if not 200 <= code <= 599:
        code = 200
    sleep_for(_int(params, "ms"))
    return code, "status %d\n" % code


def view_hostile(environ, params, rest):
    _next(_int(params, "ms", 100), HOSTILE)
    return 200, "hostile\n"


def view_long(environ, params, rest):
    LONG(_int(params, "ms", 100), ())
    return 200, "long\n"


def view_deep(environ, params, rest):
    depth = _int(params, "n", 100, MAX_DEPTH)
    if sys.getrecursionlimit() < depth + 100:
        sys.setrecursionlimit(depth + 100)
    recurse(depth, _int(params, "ms", 100))
    return 200, "deep %d\n" % depth


def view_echo(environ, params, rest):
    ms = _int(params, "ms")
    if ms:
        sleep_for(ms)
    return 200, "echo\n"


VIEWS = {
    "status": view_status,
    "hostile": view_hostile,
    "long": view_long,
    "deep": view_deep,
}

REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error",
           503: "Service Unavailable"}


def dispatch(environ):
    path = environ.get("PATH_INFO", "") or "/"
    parts = path.split("/", 2)
    name = parts[1] if len(parts) > 1 else ""
    rest = parts[2] if len(parts) > 2 else ""
    params = parse_qs(environ.get("QUERY_STRING", ""))
    return VIEWS.get(name, view_echo)(environ, params, rest)


def application(environ, start_response):
    code, text = dispatch(environ)
    body = text.encode("utf-8", "backslashreplace")
    start_response("%d %s" % (code, REASONS.get(code, "Status")),
                   [("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body)))])
    return [body]
