"""Cost of one `with pyprof.segment(...)` enter/exit pair (issue [4]; target
under 1 us).  Not a test: prints the numbers.

Starts one daemon-mode httpd with the integration harness
(tests/pyhttpd/httpd.py + tests/integration/daemon_util.py: event MPM,
`WSGIDaemonProcess dm processes=2 threads=4`, apps/daemon_app.py), and asks
the app's /bench view to time, inside the request, in the daemon:

    empty        `for _ in range(n): pass`
    nullcontext  `with contextlib.nullcontext(): pass`
    segment      `with pyprof.segment("x"): pass`
    seg+detail   `with pyprof.segment("SQL", detail="SELECT ..."): pass`

in three situations:

    dropped      a profiled request (/alpha, sampled every 10 ms), n=100,000:
                 the first 48 segments are recorded, the rest are counted as
                 dropped -- the same two C calls, the store's slot lock and a
                 counter
    recorded     a profiled request, n=20 so that every segment is recorded
                 (2 x 20 <= 48), repeated over many requests
    unprofiled   a request no PyProfSample covers (/gamma): current() finds
                 no request, the pair does nothing
    outside      plain /usr/bin/python3, no Apache (no store attached)

and prints ns per pair, minus the empty loop ("net").  Medians over rounds.

    /usr/bin/python3 tests/bench/segment_cost.py [--requests 30]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, os.path.join(REPO, "tests"))

from pyhttpd.httpd import Httpd, module_path  # noqa: E402
from daemon_util import PYEXT, app_json, kept_by_id, prepare  # noqa: E402

KINDS = ("empty", "nullcontext", "segment", "segment_detail")

OUTSIDE = r"""
import json, sys
sys.path.insert(0, %(pyext)r)
sys.path.insert(0, %(apps)r)
import pyprof
from pyprof_testlib import segment_round
assert not pyprof.attached()
print(json.dumps([segment_round(pyprof.segment, %(n)d) for _ in range(5)]))
"""


def medians(rounds):
    return {k: statistics.median(r[k] for r in rounds) for k in KINDS}


def line(label, m, note=""):
    net = lambda k: m[k] - m["empty"]
    print("%-11s  empty %6.1f  nullcontext %6.1f (net %6.1f)  segment %7.1f (net %7.1f)"
          "  seg+detail %7.1f (net %7.1f)  ns/iteration%s"
          % (label, m["empty"], m["nullcontext"], net("nullcontext"), m["segment"],
             net("segment"), m["segment_detail"], net("segment_detail"), note))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100000, help="iterations per loop (default 100000)")
    ap.add_argument("--requests", type=int, default=30,
                    help="requests for the 'recorded' case (default 30)")
    args = ap.parse_args()

    srv = Httpd(name="segment-cost", mpm="event", module=module_path())
    prepare(srv, maximum_requests=0)
    results = {}
    try:
        srv.start()
        # warm both daemons and both interpreters up
        for _ in range(4):
            app_json(srv, "/alpha/info")
            app_json(srv, "/gamma/info")

        body = app_json(srv, "/alpha/bench/dropped?n=%d&rounds=5" % args.n, timeout=120)
        assert body["request_id"], "the bench request was not profiled: %r" % body
        req = kept_by_id(srv, body["request_id"])
        detail = srv.request_detail(body["request_id"]) if req else None
        results["dropped"] = medians(body["view"]["rounds"])
        dropped_note = ""
        if detail:
            dropped_note = "  (%d recorded, %d dropped, %d samples)" % (
                len(detail["segments"]), detail["segments_dropped"], detail["samples"])

        rounds = []
        for _ in range(args.requests):
            body = app_json(srv, "/alpha/bench/recorded?n=20&rounds=1")
            assert body["request_id"]
            rounds.extend(body["view"]["rounds"])
        results["recorded"] = medians(rounds)

        body = app_json(srv, "/gamma/bench/unprofiled?n=%d&rounds=5" % args.n, timeout=120)
        assert body["request_id"] is None
        results["unprofiled"] = medians(body["view"]["rounds"])
    finally:
        srv.stop()
        problems = srv.log_problems()
        if problems:
            print("error log problems (server directory kept: %s):\n  %s"
                  % (srv.root, "\n  ".join(problems)))
        else:
            srv.remove()

    proc = subprocess.run(["/usr/bin/python3", "-c", OUTSIDE % {"pyext": PYEXT, "n": args.n,
                                                   "apps": os.path.join(REPO, "tests", "integration", "apps")}],
                          stdout=subprocess.PIPE, timeout=300, check=True)
    results["outside"] = medians(json.loads(proc.stdout))

    print("pyprof.segment enter/exit cost, ns per iteration (median); net = minus the empty loop")
    print("python: /usr/bin/python3 (Debian 3.11); daemon: mod_wsgi 4.9.4, sampled every 10 ms")
    line("dropped", results["dropped"], dropped_note)
    line("recorded", results["recorded"], "  (n=20 x %d requests)" % args.requests)
    line("unprofiled", results["unprofiled"])
    line("outside", results["outside"])
    worst = max(results[k][kind] - results[k]["empty"]
                for k in ("dropped", "recorded") for kind in ("segment", "segment_detail"))
    print("segment cost in a profiled request: %.0f ns per pair (target < 1000 ns): %s"
          % (worst, "OK" if worst < 1000 else "OVER TARGET"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
