"""CPU time in a location's aggregate: the location page's call tree and
its JSON show how much of a location's sampled time was on CPU, summed
from the same per-stack CPU time a request's own page shows (they said
"0% on CPU" and cpu_ms 0.000 for every stack, whatever the code did).

One server per MPM: /app/cpu (a view that burns CPU) and /app (a view that
sleeps) are two locations, both sampled every 10 ms.
"""

import re

import pytest

from conftest import serving, unique

LOCATIONS = """\
PyProfSample /app 10ms
PyProfSample /app/cpu 10ms
PyProfSlowThreshold 100ms
"""


@pytest.fixture(scope="module")
def srv(mpm, pyprof_module):
    yield from serving(name="location-cpu", mpm=mpm, extra=LOCATIONS)


@pytest.fixture(scope="module")
def finished(srv):
    """One CPU-bound and one sleeping request, both logged (so in their
    location's aggregate).  pre=30: clear of the first-burst blind spot
    (test_preload.py)."""
    tag = unique("loccpu")
    srv.get_ok("/app/cpu/%s?ms=300&pre=30" % tag)
    srv.get_ok("/app/slow/%s?ms=300" % tag)
    kept = srv.wait_kept(tag, 2)
    assert len(kept) == 2, kept
    return {("cpu" if "/cpu/" in r["uri"] else "slow"): r for r in kept}


def location_json(srv, path):
    return srv.get_json("/server-profile/location?path=%s&format=json" % path)


def burn_share(loc):
    """cpu_ms / weight_ms of the stacks that end in burn_cpu."""
    stacks = [s for s in loc["stacks"] if s["frames"][-1]["function"] == "burn_cpu"]
    assert stacks, [s["frames"][-1]["function"] for s in loc["stacks"]]
    return (sum(s["cpu_ms"] for s in stacks) / sum(s["weight_ms"] for s in stacks),
            stacks)


def test_cpu_bound_location_json_has_cpu_time(srv, finished):
    req = finished["cpu"]
    loc = location_json(srv, "/app/cpu")
    share, stacks = burn_share(loc)
    assert all(s["cpu_ms"] > 0 for s in stacks), stacks
    # the location holds this one request: its CPU is the request's own,
    # summed the same way, stack by stack
    own = srv.request_detail(req["id"])["stacks"]
    assert loc["cpu_ms"] == pytest.approx(sum(s["cpu_ms"] for s in own), abs=0.01)
    assert loc["weight_ms"] == pytest.approx(sum(s["weight_ms"] for s in own), abs=0.01)
    by_leaf = {}
    for s in own:
        by_leaf[s["frames"][-1]["function"]] = by_leaf.get(s["frames"][-1]["function"], 0) \
            + s["cpu_ms"]
    assert sum(s["cpu_ms"] for s in stacks) == pytest.approx(by_leaf["burn_cpu"], abs=0.01)
    # and plausibly on CPU: a busy loop.  Not near 100%: on this shared
    # 2-core machine a runnable thread can wait for a core most of the
    # time, and the samples rightly count that as off CPU (the request's
    # own page says the same, pinned above)
    assert share >= 0.1, "burn_cpu %.0f%% on CPU" % (100 * share)


def test_sleeping_location_json_is_off_cpu(srv, finished):
    loc = location_json(srv, "/app")
    sleeping = [s for s in loc["stacks"] if s["frames"][-1]["function"] == "sleep_for"]
    assert sleeping, loc["stacks"]
    weight = sum(s["weight_ms"] for s in sleeping)
    cpu = sum(s["cpu_ms"] for s in sleeping)
    assert weight >= 200, weight
    assert cpu <= 0.1 * weight, (cpu, weight)


def test_location_page_shows_the_cpu_share(srv, finished):
    loc = location_json(srv, "/app/cpu")
    page = srv.get_ok("/server-profile/location?path=/app/cpu").text
    m = re.search(r"of request time, (\d+)% of it on CPU", page)
    assert m, page[:3000]
    assert abs(int(m.group(1)) - 100 * loc["cpu_ms"] / loc["weight_ms"]) <= 1, \
        (m.group(0), loc["cpu_ms"], loc["weight_ms"])
    assert int(m.group(1)) >= 10, m.group(0)
    # the call tree's row of burn_cpu says so too
    share, _ = burn_share(loc)
    row = page[page.find('<span class=fn title="burn_cpu">'):]
    m = re.search(r"<span class=cnt>[^<]*, (\d+)% on CPU</span>", row)
    assert m and abs(int(m.group(1)) - 100 * share) <= 1, (row[:600], share)


def test_sleeping_location_page_shows_little_cpu(srv, finished):
    page = srv.get_ok("/server-profile/location?path=/app").text
    row = page[page.find('<span class=fn title="sleep_for">'):]
    m = re.search(r"<span class=cnt>[^<]*, (\d+)% on CPU</span>", row)
    assert m and int(m.group(1)) <= 10, row[:600]
