"""Deploys of new code, each followed by `apache2 -k graceful`, never fill
the store: frames of old code are reclaimed by a renewal of the store at a
graceful restart, and the page says so.

The store is the smallest PyProfMemory allows (1,024 frames); each deploy
rewrites the application with 100 functions of new names and a request
runs through all of them (with the imports of a new child's first request,
about 170 frames a deploy), so twelve deploys intern twice what the frame
table holds.  Before renewal existed, the sixth deploy's functions came
out as "[frame table full]".
"""

import os
import re

import pytest

from conftest import HttpdError, unique, wait_for

FUNCS = 100
DEPLOYS = 12

APP = '''\
import time

SRC = "".join(
    "def v{deploy}_f%d(n):\\n    return v{deploy}_f%d(n) + 1\\n" % (k, k + 1)
    for k in range({funcs}))
SRC += "def v{deploy}_f{funcs}(n):\\n    return leaf(n)\\n"


def leaf(n):
    # on CPU long enough for a few samples of the whole stack
    end = time.monotonic() + n
    x = 0
    while time.monotonic() < end:
        x += 1
    return 0


NS = {{"leaf": leaf}}
exec(compile(SRC, "/srv/release{deploy}.py", "exec"), NS)


def application(environ, start_response):
    NS["v{deploy}_f0"](0.05)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"release {deploy}"]
'''


def start_with_least_memory(srv, extra):
    """Start with the smallest PyProfMemory this server accepts.  Refused,
    the module names the size it needs: the directive the least for any
    server, then the parent the least for this MPM's limits."""
    need = 1
    for _ in range(3):
        srv.extra = extra + "PyProfMemory %dK\n" % need
        try:
            return srv.start()
        except HttpdError as refused:
            m = re.search(r"it needs at least (\d+)K", str(refused))
            assert m and int(m.group(1)) > need, str(refused)
            need = int(m.group(1))
    pytest.fail("no PyProfMemory accepted")


def deploy(srv, n):
    with open(srv.app + ".new", "w") as f:
        f.write(APP.format(deploy=n, funcs=FUNCS))
    # replaced whole: a child never reads a half-written file
    os.replace(srv.app + ".new", srv.app)


def test_graceful_restarts_with_new_code_keep_naming_it(servers, mpm, pyprof_module):
    srv = servers.create(name="renewal", mpm=mpm)
    deploy(srv, 0)
    start_with_least_memory(srv, "PyProfSample /app 1ms\nPyProfSlowThreshold 1ms\n"
                                 "PyProfKeep 4\nPyProfMaxDepth 512\n")
    tag = unique("release")
    store = srv.profile()["store"]
    assert store["frames_capacity"] == 1024, store

    counted = 0
    for n in range(DEPLOYS):
        if n:
            deploy(srv, n)
            srv.graceful()
            # the new generation answers with the new code
            assert wait_for(lambda: srv.get("/app/%s-probe-%d" % (tag, n)).text
                            == "release %d" % n, 20, 0.2), "deploy %d not serving" % n
        srv.get_ok("/app/%s-%d" % (tag, n))
        [kept] = srv.wait_kept("%s-%d" % (tag, n), 1)
        detail = srv.request_detail(kept["id"])
        names = {f["function"] for s in detail["stacks"] for f in s["frames"]}
        ours = {x for x in names if x.startswith("v%d_f" % n)}
        assert "[frame table full]" not in names, (n, sorted(names)[:10])
        # the deepest stack sampled names every one of this deploy's functions
        assert len(ours) == FUNCS + 1, (n, len(ours), sorted(names)[:10])
        # the location's histogram carries over: this deploy's request is
        # counted on top of every earlier one
        requests = srv.location("/app")["requests"]
        assert requests >= counted + 1, (n, requests, counted)
        counted = requests

    store = srv.profile()["store"]
    assert store["renewals"] >= 2, store
    assert store["frames_full"] == 0, store
    assert store["renewed_us"] > 0
    page = srv.get_ok("/server-profile").text
    assert "The store was renewed %d time(s)" % store["renewals"] in page
    log = srv.error_log_text()
    assert len(re.findall(r"the frame table is half full: renewing the store", log)) \
        == store["renewals"], log[-3000:]
