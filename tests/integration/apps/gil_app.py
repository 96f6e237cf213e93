"""WSGI application for the GIL blame tests (test_gil.py).

    /app/cpu/TAG?ms=N     build_rows(N): pure Python until the thread's CPU
                          clock has advanced N ms (CPU time, so a busy
                          machine cannot shorten how long it holds the GIL)
    /app/light/TAG        60 x (a 1 ms sleep, a little Python): it needs the
                          GIL back 60 times
    /app/lock/TAG         blocks about 200 ms on a threading.Lock that a
                          thread of its own holds while it sleeps: a futex
                          wait that is no GIL wait
    /app/fast             returns at once (warms the process up)

In a mod_wsgi daemon process (test_gil.py's daemon server puts pyext on
its python-path) it imports pyprof, which starts that process' sampler;
embedded, pyprof is not on the path and the module's own sampler runs.

Every loop is bounded; nothing is written to stderr.
"""

import threading
import time

try:
    import pyprof  # noqa: F401
except ImportError:
    pass


def build_rows(ms):
    end = time.thread_time() + ms / 1000.0
    rows = 0
    while time.thread_time() < end:
        for i in range(2000):
            rows += i & 7
    return rows


def light_step():
    return sum(range(2000))


def light():
    total = 0
    for _ in range(60):
        time.sleep(0.001)
        total += light_step()
    return total


def wait_for_lock():
    lock = threading.Lock()
    lock.acquire()

    def holder():
        time.sleep(0.2)
        lock.release()

    t = threading.Thread(target=holder)
    t.start()
    got = lock.acquire(timeout=5)
    t.join(5)
    return got


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    if path.startswith("/cpu"):
        ms = 900
        for part in query.split("&"):
            if part.startswith("ms="):
                ms = min(int(part[3:]), 5000)
        body = str(build_rows(ms))
    elif path.startswith("/light"):
        body = str(light())
    elif path.startswith("/lock"):
        body = str(wait_for_lock())
    else:
        body = "ok"
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(data)))])
    return [data]
