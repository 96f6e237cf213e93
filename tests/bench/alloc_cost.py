"""What PyProfAllocations costs (issue [12]): CPU ms per request of the
child with the module absent, with the module sampling stacks and
allocation profiling Off, and with PyProfAllocations 256K (and 64K), on the
overhead part's call-heavy view (/app/render) and an allocation-heavy one
(/app/alloc: 2,000 small dicts with a list and two strings each).

Same method as overhead.py's overhead part (its servers and helpers are
reused): one child x 8 threads per variant, all started at once, loaded one
at a time with `wrk -t2 -c8 -d<duration>`, rounds interleaved, medians of
the rounds and the median of the per-round ratios to "absent".

    /usr/bin/python3 tests/bench/alloc_cost.py [--rounds 7] [--duration 5]

Prints a Markdown table (paste it into RESULTS.md's allocations section).
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import overhead as ov  # noqa: E402

VARIANTS = [
    ("absent", None, "", "mod_pyprof not loaded"),
    ("off", "10ms", "", "PyProfSample /app 10ms, PyProfAllocations Off (the default)"),
    ("a256k", "10ms", "PyProfAllocations 256K\n", "the same + PyProfAllocations 256K"),
    ("a64k", "10ms", "PyProfAllocations 64K\n", "the same + PyProfAllocations 64K"),
]
ENDPOINTS = ["/app/render", "/app/alloc"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--module", default=ov.module_path())
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="pyprof-alloc-bench-", dir="/tmp")
    os.chmod(base, 0o755)
    # one copy of the module: a rebuild during the run changes nothing
    module = os.path.join(base, "mod_pyprof.so")
    shutil.copyfile(args.module, module)
    os.chmod(module, 0o755)
    servers = []
    try:
        for name, interval, extra, _ in VARIANTS:
            servers.append(ov.BenchHttpd(name, interval, module, base, extra=extra))
        ov.start_servers(servers, [])
        for srv in servers:
            for path in ENDPOINTS:
                ov.warm_up(srv, path)
        results = {}
        for rnd in range(args.rounds):
            for path in ENDPOINTS:
                for srv in servers:
                    res = ov.measure_round(srv, path, args.duration)
                    results.setdefault((srv.name, path), []).append(res)
                    ov.log("round %d %-7s %-12s %8.1f req/s %s CPU ms/req"
                           % (rnd + 1, srv.name, path, res["rps"],
                              "%.3f" % res["cpu_ms_per_req"] if res["cpu_ms_per_req"] else "n/a"))
        problems = {srv.name: srv.log_problems() for srv in servers}
    finally:
        for srv in servers:
            try:
                srv.stop()
            except Exception as e:  # noqa: BLE001  (report, keep stopping)
                ov.log("stop %s: %s" % (srv.name, e))
    print("| view | variant | CPU ms/req (median) | vs absent (median of round ratios) | req/s |")
    print("|---|---|---:|---:|---:|")
    for path in ENDPOINTS:
        base_rounds = results[("absent", path)]
        for name, _, _, _ in VARIANTS:
            rounds = results[(name, path)]
            cpu = [r["cpu_ms_per_req"] for r in rounds if r["cpu_ms_per_req"]]
            ratios = [r["cpu_ms_per_req"] / b["cpu_ms_per_req"]
                      for r, b in zip(rounds, base_rounds)
                      if r["cpu_ms_per_req"] and b["cpu_ms_per_req"]]
            print("| %s | %s | %.3f | %+.1f%% | %.0f |"
                  % (path, name, statistics.median(cpu),
                     (statistics.median(ratios) - 1) * 100 if ratios else float("nan"),
                     statistics.median(r["rps"] for r in rounds)))
    print()
    for name, _, _, what in VARIANTS:
        print("- %s: %s" % (name, what))
    bad = {k: v for k, v in problems.items() if v}
    if bad:
        print("\nlog problems: %r" % bad)


if __name__ == "__main__":
    main()
