"""Deploys of new code, each followed by `apache2 -k graceful`, never fill
the store: frames of old code are reclaimed by a renewal of the store at a
graceful restart, and the page says so.

The store is the smallest PyProfMemory allows (1,024 frames); each deploy
rewrites the application with 100 functions of new names and a request
runs through all of them (with the imports of a new child's first request,
about 170 frames a deploy), so twelve deploys intern twice what the frame
table holds.  Before renewal existed, the sixth deploy's functions came
out as "[frame table full]".

A graceful restart does not stop the old generation at once: its children
finish what they have, and meanwhile may even take a new connection; and
mod_wsgi reloads a script whose file changed, so an old child answers with
the new code too.  Such a request is recorded in the old child's store (the
one renewal replaced, if it did) by a sampler thread that competes for the
cores with a generation starting and one finalising Python.  So each
deploy waits for the old generation to exit, and the requests judged are
those of the new one (the app says its pid).  A request the sampler never
caught in the app's stack (a starved sampler thread: seen under ASan, while
the new children start) says nothing about names: the next one is judged,
at most TRIES of them.
"""

import os
import re

import pytest

from conftest import HttpdError, _alive, unique, wait_for

FUNCS = 100
DEPLOYS = 12
TRIES = 5

APP = '''\
import os
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
    return [b"release {deploy} in pid %d" % os.getpid()]
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


def served(srv, path):
    """GET path: (the release that answered, the pid that ran it)."""
    m = re.fullmatch(r"release (\d+) in pid (\d+)", srv.get_ok(path).text)
    assert m, path
    return int(m.group(1)), int(m.group(2))


def new_generation(srv, tag, n, old):
    """After deploy n's graceful restart: wait until no child of the old
    generation (pids `old`) is left and a new one answers with release n."""
    gone = wait_for(lambda: not old.intersection(p for p in srv.children() if _alive(p)),
                    60, 0.1)
    assert gone, "deploy %d: old children %s still running" % (n, sorted(old))
    assert wait_for(lambda: served(srv, "/app/%s-probe-%d" % (tag, n))[0] == n, 20, 0.2), \
        "deploy %d not serving" % n


def app_stacks(detail):
    """The request's stacks that reach the app's leaf."""
    return [s for s in detail["stacks"] if any(f["function"] == "leaf" for f in s["frames"])]


def diagnose(srv, n, detail, names, old):
    """What a failed check saw: the kept request (pid, samples, stacks),
    whether its pid was of the old generation, the store and sampler
    counters."""
    req = {k: detail.get(k) for k in ("id", "uri", "pid", "tid", "samples",
                                      "samples_on_cpu", "samples_off_cpu",
                                      "samples_outside_python", "samples_other",
                                      "duration_ms", "app_ms")}
    req["old_generation"] = detail.get("pid") in old
    stacks = [(s["count"], len(s["frames"]), [f["function"] for f in s["frames"]][-3:])
              for s in detail["stacks"]][:8]
    prof = srv.profile()
    return ("deploy %d: names %s; request %s; stacks (count, depth, leaf end) %s; "
            "children %s, old generation %s; store %s; sampler %s"
            % (n, sorted(names)[:20], req, stacks, srv.children(), sorted(old),
               prof["store"], prof["sampler"]))


def test_graceful_restarts_with_new_code_keep_naming_it(servers, mpm, pyprof_module):
    srv = servers.create(name="renewal", mpm=mpm)
    deploy(srv, 0)
    start_with_least_memory(srv, "PyProfSample /app 1ms\nPyProfSlowThreshold 1ms\n"
                                 "PyProfKeep 4\nPyProfMaxDepth 512\n")
    tag = unique("release")
    store = srv.profile()["store"]
    assert store["frames_capacity"] == 1024, store

    counted = 0
    old = set()
    for n in range(DEPLOYS):
        if n:
            old = set(srv.children())
            deploy(srv, n)
            srv.graceful()
            new_generation(srv, tag, n, old)
        for attempt in range(TRIES):
            marker = "%s-%d-%d" % (tag, n, attempt)
            release, pid = served(srv, "/app/%s" % marker)
            assert (release, pid not in old) == (n, True), (n, release, pid, sorted(old))
            [kept] = srv.wait_kept(marker, 1)
            detail = srv.request_detail(kept["id"])
            names = {f["function"] for s in detail["stacks"] for f in s["frames"]}
            why = diagnose(srv, n, detail, names, old)
            assert detail["pid"] == pid, why
            assert "[frame table full]" not in names, why
            if app_stacks(detail):
                break
        else:
            pytest.fail("deploy %d: %d requests, none sampled in the app: %s"
                        % (n, TRIES, why))
        ours = {x for x in names if x.startswith("v%d_f" % n)}
        # the deepest stack sampled names every one of this deploy's functions
        assert len(ours) == FUNCS + 1, (len(ours), why)
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
