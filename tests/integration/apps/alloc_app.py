"""WSGI application of the PyProfAllocations tests (test_alloc.py).

Each view allocates a known amount through functions with distinctive
names, so a test can compare a request's alloc_bytes / alloc_live_bytes
with the truth the view reports, and look for the allocating function in
its alloc_stacks.  Every view answers JSON.

    /keep?kb=N     keep_chunks: N KiB of 4 KiB bytearrays appended to a
                   module-level list (still live when the request ends)
    /release       drops what /keep kept
    /churn?mb=N    churn_objects: N MiB of 1000-byte bytes objects in a
                   list, all freed before the view returns
    /none          allocates (next to) nothing
    /trace?kb=N    tracemalloc.start(), keep_chunks(N), tracemalloc.stop()
    /hooked        whether the OBJ domain's malloc lies in mod_pyprof.so
                   (PyMem_GetAllocator through ctypes, /proc/self/maps)

In a daemon process the app imports pyprof (its import starts the
sampler and, with PyProfAllocations, hooks the allocators there).  Never
writes to stderr: the harness treats [error] lines as failures.
"""

import itertools
import json
import os
import sys
from urllib.parse import parse_qs

pyprof = None
try:
    import mod_wsgi
    if mod_wsgi.process_group:
        import pyprof  # daemon: sampler and hooks
except ImportError:
    pass

KEPT = []
CHUNK = 4096
MAX_KB = 64 * 1024


def _int(params, name, default):
    try:
        v = int(params.get(name, [default])[0])
    except ValueError:
        v = default
    return max(0, min(v, MAX_KB))


def keep_chunks(kb):
    n = kb * 1024 // CHUNK
    before = len(KEPT)
    for _ in itertools.repeat(None, n):
        KEPT.append(bytearray(CHUNK))
    return n * sys.getsizeof(KEPT[before]) if n else 0


def churn_objects(mb, size=1000):
    n = mb * 1024 * 1024 // size
    items = [None] * n
    for i in range(n):
        items[i] = bytes(size)  # a variable size: never a folded constant
    # the objects, the list, and the loop's int objects (one per step)
    truth = n * (sys.getsizeof(items[0]) + sys.getsizeof(n)) + sys.getsizeof(items)
    del items
    return truth


def obj_malloc_in_module():
    import ctypes

    class Allocator(ctypes.Structure):
        _fields_ = [("ctx", ctypes.c_void_p), ("malloc", ctypes.c_void_p),
                    ("calloc", ctypes.c_void_p), ("realloc", ctypes.c_void_p),
                    ("free", ctypes.c_void_p)]

    a = Allocator()
    get = ctypes.pythonapi.PyMem_GetAllocator
    get.restype = None
    get.argtypes = [ctypes.c_int, ctypes.POINTER(Allocator)]
    get(2, ctypes.byref(a))  # PYMEM_DOMAIN_OBJ
    with open("/proc/self/maps") as f:
        for line in f:
            if "mod_pyprof" not in line:
                continue
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= (a.malloc or 0) < hi:
                return True
    return False


def application(environ, start_response):
    params = parse_qs(environ.get("QUERY_STRING", ""))
    view = environ.get("PATH_INFO", "/").strip("/").split("/")[0]
    out = {"pid": os.getpid(), "view": view}
    if view == "keep":
        out["truth"] = keep_chunks(_int(params, "kb", 1024))
    elif view == "release":
        del KEPT[:]
    elif view == "churn":
        out["truth"] = churn_objects(_int(params, "mb", 30))
    elif view == "trace":
        import tracemalloc
        tracemalloc.start()
        try:
            out["truth"] = keep_chunks(_int(params, "kb", 1024))
        finally:
            tracemalloc.stop()
    elif view == "hooked":
        out["hooked"] = obj_malloc_in_module()
    if pyprof is not None:
        out["request_id"] = pyprof.current_request_id()
    body = (json.dumps(out) + "\n").encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
