"""A WSGI app that calls faulthandler.enable() when it is imported, as
some applications do: Python's handler replaces the sampler's SIGSEGV and
SIGBUS handler (test_guarded_copies.py).

    /fh?depth=N&ms=M   recurse N Python frames, then spin M ms of thread
                       CPU in the innermost one; answers "faulthandler on"
"""
import faulthandler
import time
from urllib.parse import parse_qs

faulthandler.enable(file=2)  # httpd's stderr: the error log


def spin(ms):
    end = time.thread_time() + ms / 1000.0
    x = 0
    while time.thread_time() < end:
        x += 1
    return x


def recurse(depth, ms):
    if depth <= 1:
        return spin(ms)
    return recurse(depth - 1, ms)


def application(environ, start_response):
    params = parse_qs(environ.get("QUERY_STRING", ""))
    depth = min(int(params.get("depth", ["10"])[0]), 200)
    ms = min(int(params.get("ms", ["0"])[0]), 5000)
    recurse(depth, ms)
    body = ("faulthandler %s\n" % ("on" if faulthandler.is_enabled() else "off")).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
