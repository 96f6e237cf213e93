#!/usr/bin/env python3
"""include-cycles.py: fail if two units of the C sources depend on each
other, directly or through others.

A unit is x.c with its headers x.h and x_int.h (pp_store.c, pp_store.h
and pp_store_int.h are one unit; x_impl.h counts as x_int.h: pp_api_impl.h
is pp_api.c's).  Unit A depends on unit B when a file of
A includes a file of B ("..." includes of the project's own headers; a
header's own includes count for the unit it belongs to).  A cycle between
units means neither can be read, built or tested without the other: the
layering README's "Layout" describes is broken.

Usage: scripts/include-cycles.py [DIR...]   (default: mod_pyprof pyext)
Prints each cycle found as A -> B -> ... -> A (with the include that makes
each step) and exits 1, or prints nothing and exits 0.  `make lint` runs it.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def unit_of(name):
    base = os.path.basename(name)
    stem, ext = os.path.splitext(base)
    for private in ("_int", "_impl"):
        if ext == ".h" and stem.endswith(private):
            stem = stem[: -len(private)]
    return stem


def read_graph(dirs):
    files = {}
    for d in dirs:
        for f in sorted(os.listdir(d)):
            if f.endswith((".c", ".h")):
                files[f] = os.path.join(d, f)
    edges = {}  # unit -> {unit: "file includes header"}
    for f, path in files.items():
        a = unit_of(f)
        edges.setdefault(a, {})
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        for inc in INCLUDE.findall(text):
            inc = os.path.basename(inc)
            if inc not in files:
                continue  # not one of ours (httpd, APR, Python, libc)
            b = unit_of(inc)
            if b != a:
                edges[a].setdefault(b, "%s includes %s" % (f, inc))
    return edges


def cycles(edges):
    """Strongly connected components of more than one unit (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def one_cycle(edges, comp):
    """A path from comp[0] back to itself inside the component."""
    inside = set(comp)
    start = comp[0]
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, ())):
            if w not in inside:
                continue
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                path.reverse()
                return path + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return comp + [start]


def main(argv):
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    dirs = argv[1:] or ["mod_pyprof", "pyext"]
    dirs = [d if os.path.isabs(d) else os.path.join(root, d) for d in dirs]
    edges = read_graph(dirs)
    found = cycles(edges)
    for comp in found:
        path = one_cycle(edges, comp)
        print("include cycle between units: " + " -> ".join(path))
        for a, b in zip(path, path[1:]):
            print("    %s" % edges[a][b])
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
