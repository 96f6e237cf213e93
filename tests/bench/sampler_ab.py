"""sampler_ab.py: the sampler's CPU per sample for two builds of the module,
side by side in time (issue [10]'s workload).

Each cell is a fresh server (event MPM, 1 child x 8 threads, nogil sampler,
PyProfMaxDepth 1024) loaded with 8 concurrent /app/deep?depth=30&ms=MS
(30 Python frames, then a CPU-bound loop for MS ms of thread CPU); the
sampler counters are diffed around the load, and so is the CPU time the
kernel counts for the thread named pyprof-sampler (builds that name it).  Cells run interleaved
A B A B ... for each interval and round, so both builds see the same
machine load; medians over rounds are printed as a Markdown table.

    /usr/bin/python3 tests/bench/sampler_ab.py --a OLD.so --b NEW.so \\
        [--rounds 3] [--ms 1500] [--intervals 1ms,10ms]

A benchmark, not a test: nothing here fails.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import overhead as ob  # noqa: E402


def sampler_thread_ns(srv):
    """The CPU time (ns, /proc schedstat) of every thread named
    pyprof-sampler in srv's children: everything those threads spent, as
    the kernel counts it; None when there is none (a build that does not
    name its sampler thread)."""
    total, found = 0, False
    for pid in srv.children():
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                    if f.read().strip() != "pyprof-sampler":
                        continue
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    total += int(f.read().split()[0])
                found = True
            except (OSError, ValueError, IndexError):
                continue
    return total if found else None


def cell(module, label, interval, ms, base_dir, servers):
    srv = ob.BenchHttpd("ab-%s-%s" % (label, interval), interval, module, base_dir,
                        threshold="30s", sampler="nogil", threads=8, max_depth=1024)
    servers.append(srv)
    srv.start()
    try:
        # a warm-up request: code objects and frames interned once
        srv.fetch_ok("/app/deep?depth=30&ms=50", timeout=60)
        before = ob.sampler_block(srv)
        thread_before = sampler_thread_ns(srv)
        ob.Concurrent(srv, "/app/deep?depth=30&ms=%d" % ms, 8, timeout=120).join_ok(srv)
        thread_after = sampler_thread_ns(srv)
        after = ob.sampler_block(srv)
    finally:
        srv.stop()
    d = ob.sampler_diff(before, after)
    s = d["samples"] or 0
    return {"samples": s, "per_tick": s / d["ticks"] if d.get("ticks") else None,
            "cpu_us": d["cpu_s"] * 1e6 / s if s else None,
            "walk_us": d["walk_s"] * 1e6 / s if s else None,
            "thread_us": ((thread_after - thread_before) / 1e3 / s
                          if s and thread_before is not None and thread_after is not None
                          else None),
            "p50": d.get("sample_cost_p50_us"), "p99": d.get("sample_cost_p99_us"),
            "torn": d.get("torn")}


def fmt(v, f="%.2f"):
    return "-" if v is None else f % v


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--a", required=True, help="module A (before)")
    p.add_argument("--b", required=True, help="module B (after)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ms", type=int, default=1500)
    p.add_argument("--intervals", default="1ms,10ms")
    args = p.parse_args()
    base_dir = tempfile.mkdtemp(prefix="pyprof-ab-", dir="/tmp")
    os.chmod(base_dir, 0o755)
    mods = {}
    for label, src in (("A", args.a), ("B", args.b)):
        mods[label] = os.path.join(base_dir, "mod_pyprof_%s.so" % label)
        shutil.copyfile(src, mods[label])
        os.chmod(mods[label], 0o755)
    res = {}
    servers = []
    t0 = time.monotonic()
    try:
        for r in range(args.rounds):
            for interval in args.intervals.split(","):
                for label in ("A", "B"):
                    c = cell(mods[label], label, interval, args.ms, base_dir, servers)
                    res.setdefault((label, interval), []).append(c)
                    ob.log("round %d %s %-4s: %6d samples, cpu %s us/sample (thread %s), "
                           "%s a tick, walk %s, p50 %s p99 %s, torn %s"
                           % (r, label, interval, c["samples"], fmt(c["cpu_us"]),
                              fmt(c["thread_us"]), fmt(c["per_tick"]),
                              fmt(c["walk_us"]), c["p50"], c["p99"], c["torn"]))
    finally:
        for srv in servers:
            srv.stop()
    print("\n%d rounds, 8 x /app/deep?depth=30&ms=%d, %.0f s, load %s\n"
          % (args.rounds, args.ms, time.monotonic() - t0, os.getloadavg()))
    print("| build | interval | samples | sampler CPU µs/sample (median, range) "
          "| sampler thread CPU µs/sample (/proc) | walk µs/sample | p99 µs (bucket) | torn |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for interval in args.intervals.split(","):
        for label in ("A", "B"):
            cs = res.get((label, interval), [])
            cpu = [c["cpu_us"] for c in cs if c["cpu_us"] is not None]
            walk = [c["walk_us"] for c in cs if c["walk_us"] is not None]
            thread = [c["thread_us"] for c in cs if c["thread_us"] is not None]
            print("| %s | %s | %d | %s (%s..%s) | %s | %s | %s | %d |"
                  % (label, interval, int(statistics.median([c["samples"] for c in cs])),
                     fmt(statistics.median(cpu)), fmt(min(cpu)), fmt(max(cpu)),
                     fmt(statistics.median(thread)) if thread else "-",
                     fmt(statistics.median(walk)),
                     fmt(statistics.median([c["p99"] or 0 for c in cs])),
                     sum(c["torn"] or 0 for c in cs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
