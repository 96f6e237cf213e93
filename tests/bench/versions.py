"""Overhead per supported CPython: the overhead part of overhead.py (module
absent vs PyProfSample 10 ms and 1 ms, GIL-free) on the host's Python and in
the Debian chroots scripts/chroot.sh makes, one environment after the other,
then one table in tests/bench/RESULTS.md ("Per Python version").

    /usr/bin/python3 tests/bench/versions.py --trixie DIR --sid DIR
    /usr/bin/python3 tests/bench/versions.py --only 3.11      # the host only

Each environment runs `overhead.py --part overhead --variants p10ms,p1ms`
(interleaved rounds, each variant against `off` of the same round), so the
ratios of one row come from one run on one machine state; rows of different
versions were measured minutes apart and compare only loosely.  The
sampler's CPU per sample is exact (its own thread CPU clock over its own
sample count); CPU per request is the Apache child's utime+stime.
"""

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
RESULTS = os.path.join(HERE, "RESULTS.md")
SECTION = "## Per Python version"


def overhead_cmd(out, rounds, duration):
    return ("/usr/bin/python3 tests/bench/overhead.py --part overhead "
            "--variants p10ms,p1ms --rounds %d --duration %d --output %s"
            % (rounds, duration, out))


def environments(args):
    """(label, distribution, build+bench shell command, dir the output
    lands in as seen from here, output file name)"""
    envs = []
    host_out = os.path.join(REPO, "build", "bench-py311.md")
    envs.append(("3.11", "Debian 12 (host)", None, host_out))
    if args.trixie:
        envs.append(("3.13", "Debian 13 (chroot)", args.trixie, None))
    if args.sid:
        envs.append(("3.14", "Debian sid (chroot)", args.sid, None))
        envs.append(("3.15", "Debian sid (chroot)", args.sid, None))
    return [e for e in envs if not args.only or e[0] in args.only.split(",")]


def run_env(label, chroot, host_out, rounds, duration):
    name = "bench-py%s.md" % label.replace(".", "")
    if chroot is None:
        subprocess.run(["make", "all"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        os.makedirs(os.path.dirname(host_out), exist_ok=True)
        subprocess.run(overhead_cmd(host_out, rounds, duration), shell=True, cwd=REPO,
                       check=True)
        return host_out
    py = "" if label in ("3.13", "3.14") else "PYTHON=/usr/bin/python%s " % label
    wsgi = "" if label in ("3.13", "3.14") else \
        "PYPROF_WSGI_SO=/usr/lib/apache2/modules/mod_wsgi.so-%s " % label
    inner = ("mkdir -p build && make %sall >/dev/null && %s%s"
             % (py, wsgi, overhead_cmd("build/" + name, rounds, duration)))
    subprocess.run(["bash", os.path.join(REPO, "scripts", "chroot.sh"), "run", chroot, inner],
                   check=True)
    # out of the chroot now: its tree is copied afresh for the next run
    out = os.path.join(REPO, "build", name)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    shutil.copyfile(os.path.join(chroot, "src", "mod_pyprof", "build", name), out)
    return out


ROW = re.compile(r"^\| (off|p10ms|p1ms) \| (/app/render(?:_sleep)?) \|(.*)\|$")


def parse(path):
    """{(variant, endpoint): {column: value}} from the overhead table."""
    rows = {}
    header = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("| variant | endpoint | req/s"):
                header = [c.strip() for c in line.strip().strip("|").split("|")]
                continue
            if not line.startswith("|"):
                header = None  # the overhead table ended: later tables differ
                continue
            m = ROW.match(line.strip())
            if m and header:
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                rows[(m.group(1), m.group(2))] = dict(zip(header, cells))
    return rows


def number(s):
    try:
        return float(s.replace("%", "").replace("+", ""))
    except (ValueError, AttributeError):
        return None


def render(results, args):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = [SECTION, ""]
    L.append("_Written %s by `/usr/bin/python3 tests/bench/versions.py%s%s` "
             "(overhead.py --part overhead --variants p10ms,p1ms, %d interleaved rounds of "
             "%d s per variant and endpoint; GIL-free sampler; event MPM, 1 child x 8 "
             "threads, mod_wsgi embedded)._"
             % (now, " --trixie DIR" if args.trixie else "", " --sid DIR" if args.sid else "",
                args.rounds, args.duration))
    L.append("")
    L.append("The sampler's CPU per sample is its own thread CPU time over its own "
             "sample count (exact, whatever the load); CPU per request is the child's "
             "utime+stime against the module absent in the same round (median of the "
             "per-round ratios; the machine's own noise is several percent).")
    L.append("")
    L.append("| CPython | distribution | endpoint | interval | sampler CPU µs/sample | "
             "samples/req | CPU/req vs absent | ratio range |")
    L.append("|---|---|---|---|---:|---:|---:|---:|")
    for label, dist, rows in results:
        for endpoint in ("/app/render", "/app/render_sleep"):
            for variant, interval in (("p10ms", "10 ms"), ("p1ms", "1 ms")):
                r = rows.get((variant, endpoint))
                if not r:
                    continue
                spr = number(r.get("samples/req"))
                us = number(r.get("sampler thread CPU µs/req"))
                per = "%.1f" % (us / spr) if spr and us is not None else "-"
                ratio = number(r.get("CPU vs off"))
                vs = "%+.1f%%" % ((ratio - 1) * 100) if ratio is not None else "-"
                L.append("| %s | %s | %s | %s | %s | %s | %s | %s |"
                         % (label, dist, endpoint, interval, per, r.get("samples/req"),
                            vs, r.get("CPU ratio range")))
    L.append("")
    return "\n".join(L)


def write_section(text):
    with open(RESULTS, encoding="utf-8") as f:
        doc = f.read()
    start = doc.find(SECTION)
    if start >= 0:
        end = doc.find("\n## ", start + len(SECTION))
        doc = doc[:start] + text + (doc[end + 1:] if end >= 0 else "")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    with open(RESULTS, "w", encoding="utf-8") as f:
        f.write(doc)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trixie", help="a Debian 13 chroot made by scripts/chroot.sh create")
    p.add_argument("--sid", help="a Debian sid chroot made by scripts/chroot.sh create")
    p.add_argument("--only", help="comma-separated versions (3.11,3.13,3.14,3.15)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--parse-only", action="store_true",
                   help="measure nothing: write the table from the last runs' files")
    args = p.parse_args()
    results = []
    for label, dist, chroot, host_out in environments(args):
        print("versions: CPython %s (%s)" % (label, dist), flush=True)
        if args.parse_only:
            name = "bench-py%s.md" % label.replace(".", "")
            out = os.path.join(REPO, "build", name)
        else:
            out = run_env(label, chroot, host_out, args.rounds, args.duration)
        results.append((label, dist, parse(out)))
    text = render(results, args)
    print(text)
    write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
