"""Issue [8] item 3: the request slots of children that were SIGKILLed with
requests in flight (the OOM killer, an operator, a crash) are freed without
anyone opening the overview, so profiling never stops.

One server per threaded MPM (2 children x 16 threads: the store has its
minimum of 64 request slots).  Five rounds: 14 slow requests to /app are
sent, /metrics shows them in flight, every child is SIGKILLed; 70 slots
were then held by dead processes, more than the store has.  Only /metrics
is scraped (it never reaps): the replacement children free the dead slots
(child_init), later requests are all profiled, nothing is counted as
slots_full and pyprof_slots_reaped_total says how many were freed.

Prefork is left out: a prefork child holds one request, and filling 64
slots would take 64 kills and as many Python start-ups.  The store code
is the same for every MPM; tests/unit/test_store.c covers the claim-time
reap and its rate limit.

The parent logs each SIGKILLed child ("AH00052: child pid N exit signal
Killed (9)"), a crash marker for the harness: the server is managed here,
and its log is checked with exactly those lines (for our victims) left
out.
"""

import os
import re
import signal
import threading
import time

import pytest
import requests

from conftest import (Httpd, _alive, _children_of, scan_error_log, selected_mpms, unique,
                      wait_for)
from views_util import metric, parse_prometheus

ROUNDS = 5
IN_FLIGHT = 14          # per round: one child's 16 threads, less room for /metrics
SLOTS = 64              # the store's minimum, what 2 x 16 workers get
EXTRA = """\
ThreadLimit 16
ThreadsPerChild 16
MaxRequestWorkers 32
MaxSpareThreads 32
PyProfSample /app 10ms
"""
COUNT = "pyprof_request_duration_seconds_count"


def scrape(srv):
    r = srv.get("/server-profile/metrics", timeout=20)
    assert r.status_code == 200, r.text[:500]
    return parse_prometheus(r.text)


def value(samples, name, **labels):
    v = metric(samples, name, **labels)
    return 0 if v is None else int(v)


def fire(srv, paths):
    """GET each path on its own thread; these requests die with their child."""
    def get(path):
        try:
            srv.get(path, timeout=60)
        except requests.RequestException:
            pass
    threads = [threading.Thread(target=get, args=(p,), daemon=True) for p in paths]
    for t in threads:
        t.start()
    return threads


def gone(pid):
    return not os.path.exists("/proc/%d" % pid)


@pytest.mark.parametrize("mpm_name", [m for m in selected_mpms() if m != "prefork"]
                         or [pytest.param("event", marks=pytest.mark.skip(
                             reason="only prefork selected: see the module docstring"))])
def test_slots_of_sigkilled_children_are_reaped_without_opening_the_overview(
        pyprof_module, mpm_name):
    srv = Httpd(name="reaping", mpm=mpm_name, extra=EXTRA)
    victims = []
    try:
        srv.start()
        tag = unique("reap")
        for rnd in range(ROUNDS):
            before = scrape(srv)
            # the dead of the previous round are no longer in flight
            assert value(before, "pyprof_inflight_requests", location="/app") == 0, (
                "round %d: slots of killed children still held: %s"
                % (rnd, [s for s in before if s[0] == "pyprof_inflight_requests"]))
            threads = fire(srv, ["/app/slow/%s-r%d-%d?ms=60000" % (tag, rnd, i)
                                 for i in range(IN_FLIGHT)])
            inflight = wait_for(
                lambda: (lambda s: s if value(s, "pyprof_inflight_requests", location="/app")
                         >= IN_FLIGHT else None)(scrape(srv)), 30, interval=0.2)
            assert inflight, "round %d: %s" % (rnd, [
                s for s in scrape(srv)
                if s[0] in ("pyprof_inflight_requests", "pyprof_dropped_total")])
            assert value(inflight, "pyprof_inflight_requests", location="/app") == IN_FLIGHT
            kids = _children_of(srv.pid)
            assert kids, "no children"
            for pid in kids:
                os.kill(pid, signal.SIGKILL)
            victims.extend(kids)
            assert wait_for(lambda: all(gone(p) for p in kids), 20), kids
            for t in threads:
                t.join(20)
        assert IN_FLIGHT * ROUNDS > SLOTS

        # nobody opened the overview: later requests are all profiled
        start = scrape(srv)
        counted = value(start, COUNT, location="/app", status_class="2xx")
        for i in range(20):
            srv.get_ok("/app/fast/%s-after-%d" % (tag, i))
        after = wait_for(
            lambda: (lambda s: s if value(s, COUNT, location="/app", status_class="2xx")
                     >= counted + 20 else None)(scrape(srv)), 10)
        assert after, "later requests not profiled: %s" % [
            s for s in scrape(srv) if s[0] in (COUNT, "pyprof_dropped_total")]
        assert value(after, COUNT, location="/app", status_class="2xx") == counted + 20
        assert value(after, "pyprof_dropped_total", reason="slots_full") == 0
        # every slot a killed child held was freed, once
        assert value(after, "pyprof_slots_reaped_total") == IN_FLIGHT * ROUNDS
        assert value(after, "pyprof_dropped_total", reason="lost") == IN_FLIGHT * ROUNDS
    finally:
        srv.stop()
    killed = re.compile(r"AH00052: child pid (\d+) exit signal Killed \(9\)")
    kept = []
    for line in srv.error_log_text().splitlines():
        m = killed.search(line)
        if m and int(m.group(1)) in victims:
            continue
        kept.append(line)
    problems = srv.problems + scan_error_log("\n".join(kept), srv.destroy_interpreter_off,
                                             srv.allowed_log)
    assert not problems, "server %s, directory kept: %s\n  %s" % (
        srv.name, srv.root, "\n  ".join(problems))
    srv.remove()
