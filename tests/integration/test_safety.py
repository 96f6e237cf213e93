"""Hostile input in every output, and bounded pages.

Strings from clients (URIs with markup, quotes, backslashes, ';', encoded
newlines, invalid UTF-8) and from Python (function names with the same,
plus control characters and a lone surrogate: apps/hostile.py) must come
back escaped for HTML (text and attributes), JSON, folded lines,
speedscope, pprof and Prometheus labels.  Pages stay bounded: the overview
caps its rows and says how many it left out; a 1,000-deep stack renders.

Server (first selected MPM), query strings recorded so they carry hostile
text too:
    /app          apps/app.py, every 10 ms
    /h            apps/hostile.py, every 5 ms
    /l<xss-i>"&'x a location whose name needs escaping (nothing behind it)
"""

import html
import json
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import MAX_CONCURRENCY, raw_get, unique, wait_for
from pyhttpd.source import load_source
from views_util import (HOSTILE_SOURCE, PROMTOOL, Pprof, check_speedscope, folded_stacks,
                        inflight_section, metric, parse_prometheus, serve, slow_rows)

ODD_LOCATION = "/l<xss-i>\"&'x"
EXTRA = """\
PyProfSample /app 10ms
PyProfSample /h 5ms
PyProfSample %s 10ms
PyProfSlowThreshold 200ms
PyProfMaxDepth 1024
PyProfRecordQuery On
""" % ODD_LOCATION


HOSTILE = load_source("pyprof_hostile_app", HOSTILE_SOURCE)


def as_recorded(name):
    """A Python name as the sampler records it: lone surrogates become U+FFFD."""
    return "".join("\ufffd" if 0xd800 <= ord(c) <= 0xdfff else c for c in name)


def as_folded(name):
    """...and as a folded frame shows it: ';' would split frames, controls lines."""
    return "".join(":" if c == ";" else (" " if ord(c) < 0x20 or ord(c) == 0x7f else c)
                   for c in as_recorded(name))


def as_html(name):
    """...and as HTML text shows it (after unescaping): controls other than
    tab and newline become U+FFFD."""
    return "".join("\ufffd" if (ord(c) < 0x20 and c not in "\t\n") or ord(c) == 0x7f else c
                   for c in as_recorded(name))


EXPECTED_NAMES = [as_recorded(n) for n in HOSTILE.HOSTILE_NAMES]
EXPECTED_HTML = [as_html(n) for n in HOSTILE.HOSTILE_NAMES]


@pytest.fixture(scope="module")
def srv(pyprof_module, module_servers):
    return serve(module_servers, "safety", EXTRA, mounts=[("/h", HOSTILE_SOURCE)])


def page_bytes(srv, path):
    r = srv.get(path)
    assert r.status_code == 200, "GET %s -> %d" % (path, r.status_code)
    return r.content.decode("utf-8")          # strict: every page is valid UTF-8


def no_injected_markup(page):
    """No markup from the test's strings; the page's own single script at most."""
    lower = page.lower()
    assert "<script>alert" not in lower
    assert "<xss" not in lower
    assert "</td><script" not in lower
    assert lower.count("<script") <= 1, lower.count("<script")


# -- hostile URIs -------------------------------------------------------------

HOSTILE_URIS = [
    b"<script>alert(1)</script>",
    b"%3Cscript%3Ealert(1)%3C/script%3E",
    b'dq"quote"',
    b"sq'quote'",
    b"back\\slash",
    b"semi;colon;",
    b"new%0aline%0d%0a",
    b"bad\xff\xfeutf8",
    b"bad%ff%feencoded",
    b"amp&amp;&lt;",
]


@pytest.fixture(scope="module")
def hostile_uris(srv):
    """Kept requests for each hostile URI (slow endpoint of apps/app.py),
    with hostile text in the recorded query string as well."""
    tag = unique("uri")
    sent = {}
    for i, frag in enumerate(HOSTILE_URIS):
        path = (b"/app/" + tag.encode() + b"-%d-" % i + frag +
                b"?ms=250&q=</td><script>alert(2)</script>&x=\"'")
        assert raw_get(srv, path)[0] == 200, path
        sent[i] = path.decode("utf-8", "replace")
    kept = srv.wait_kept(tag, len(HOSTILE_URIS))
    assert len(kept) == len(HOSTILE_URIS), [k["uri"] for k in kept]
    by_index = {int(re.search(r"%s-(\d+)-" % tag, k["uri"]).group(1)): k for k in kept}
    return tag, sent, by_index


def test_hostile_uris_round_trip_through_json(hostile_uris):
    tag, sent, kept = hostile_uris
    for i, path in sent.items():
        assert kept[i]["uri"] == path, (kept[i]["uri"], path)


def test_hostile_uris_are_escaped_in_the_overview_html(srv, hostile_uris):
    tag, sent, kept = hostile_uris
    page = page_bytes(srv, "/server-profile")
    no_injected_markup(page)
    rows = {r["id"]: r for r in slow_rows(page)}
    for i, req in kept.items():
        row = rows[req["id"]]
        assert row["uri"] == req["uri"], (row, req["uri"])
        assert not set("<>\"'") & set(row["uri_html"]), row["uri_html"]


def test_hostile_uris_are_escaped_in_the_request_html(srv, hostile_uris):
    tag, sent, kept = hostile_uris
    for i, req in kept.items():
        page = page_bytes(srv, srv.request_path(req["id"]))
        no_injected_markup(page)
        h2 = re.search(r"<h2>GET <span class=mono>(.*?)</span></h2>", page, re.S).group(1)
        assert html.unescape(h2) == req["uri"]
        assert not set("<>\"'") & set(h2), h2
        title = re.search(r"<title>(.*?)</title>", page).group(1)
        assert "<" not in title


def test_hostile_uris_keep_request_json_valid(srv, hostile_uris):
    tag, sent, kept = hostile_uris
    for i, req in kept.items():
        r = srv.get(srv.request_path(req["id"], "json"))
        text = r.content.decode("utf-8")
        assert "<" not in text and ">" not in text      # escaped as \u003c for <script> embedding
        assert json.loads(text)["uri"] == req["uri"]


def test_hostile_uris_keep_folded_one_line_per_stack(srv, hostile_uris):
    tag, sent, kept = hostile_uris
    for i, req in kept.items():
        detail = srv.request_detail(req["id"])
        stacks = folded_stacks(page_bytes(srv, srv.request_path(req["id"], "folded")))
        assert len(stacks) == len(detail["stacks"])
        assert sorted(len(f) for f, _ in stacks) == sorted(len(s["frames"])
                                                          for s in detail["stacks"])


def test_hostile_uris_in_speedscope_names(srv, hostile_uris):
    tag, sent, kept = hostile_uris
    for i, req in kept.items():
        doc = check_speedscope(srv.get(srv.request_path(req["id"], "speedscope")).content)
        assert req["uri"] in doc["name"]


# -- hostile function names ---------------------------------------------------

@pytest.fixture(scope="module")
def hostile_names(srv):
    srv.pids_serving(want=2)
    # a request that also loaded the app (its process' first) spends most
    # of its time importing on a busy machine, and the hostile frames may
    # then be too narrow to draw: take one that ran the view only (bounded)
    for attempt in range(6):
        tag = unique("names")
        srv.get_ok("/h/hostile/%s?ms=300" % tag)
        [req] = srv.wait_kept(tag, 1)
        detail = srv.request_detail(req["id"])
        if not any("<module>" in [f["function"] for f in s["frames"]]
                   for s in detail["stacks"]):
            break
    [stack] = [s for s in detail["stacks"]
               if "sleep_for" in [f["function"] for f in s["frames"]]]
    return req, detail, stack


def test_hostile_names_round_trip_through_json(hostile_names):
    req, detail, stack = hostile_names
    names = [f["function"] for f in stack["frames"]]
    start = names.index(EXPECTED_NAMES[0])
    assert names[start:start + len(EXPECTED_NAMES)] == EXPECTED_NAMES, names
    assert names[-1] == "sleep_for"


def test_hostile_names_are_escaped_in_the_request_html(srv, hostile_names):
    req, detail, stack = hostile_names
    page = page_bytes(srv, srv.request_path(req["id"]))
    no_injected_markup(page)
    flame = {html.unescape(n) for n in re.findall(r'<g class=f [^>]*data-n="([^"]*)"', page)}
    assert set(EXPECTED_HTML) <= flame, flame
    hot = {html.unescape(n) for n in re.findall(r'<td class=fn title="([^"]*)"', page)}
    assert set(EXPECTED_HTML) <= hot, hot
    tree = {html.unescape(n) for n in re.findall(r'<span class=fn title="([^"]*)"', page)}
    assert set(EXPECTED_HTML) <= tree, tree
    # the names' attribute values hold no raw quote or '<'
    for value in re.findall(r'(?:data-n|class=fn title)="([^"]*)"', page):
        assert "<" not in value and "'" not in value, value


def test_hostile_names_keep_folded_frames_apart(srv, hostile_names):
    req, detail, stack = hostile_names
    stacks = folded_stacks(page_bytes(srv, srv.request_path(req["id"], "folded")))
    assert len(stacks) == len(detail["stacks"]), stacks
    assert sorted((len(f), c) for f, c in stacks) == sorted(
        (len(s["frames"]), s["count"]) for s in detail["stacks"])
    [line] = [f for f, _ in stacks if any(x.startswith("sleep_for (") for x in f)]
    names = [re.match(r"^(.*) \(.*:\d+\)$", f).group(1) for f in line]
    want = [as_folded(n) for n in HOSTILE.HOSTILE_NAMES]
    start = names.index(want[0])
    assert names[start:start + len(want)] == want, names


def test_hostile_names_in_speedscope(srv, hostile_names):
    req, detail, stack = hostile_names
    doc = check_speedscope(srv.get(srv.request_path(req["id"], "speedscope")).content)
    names = {f["name"] for f in doc["shared"]["frames"]}
    assert set(EXPECTED_NAMES) <= names, names


def test_hostile_names_in_pprof(srv, hostile_names):
    req, detail, stack = hostile_names
    prof = Pprof(srv.get(srv.request_path(req["id"], "pprof")).content)
    assert set(EXPECTED_NAMES) <= prof.function_names(), prof.function_names()
    [sample] = [s for s in prof.samples if "sleep_for" in prof.stack(s)]
    leaf_first = prof.stack(sample)
    start = leaf_first.index(EXPECTED_NAMES[-1])
    assert leaf_first[start:start + len(EXPECTED_NAMES)] == EXPECTED_NAMES[::-1]


@pytest.mark.parametrize("fmt", ["html", "json", "folded", "speedscope", "pprof"])
def test_hostile_names_in_the_location_aggregate(srv, hostile_names, fmt):
    r = srv.get("/server-profile/location?path=/h&format=" + fmt)
    assert r.status_code == 200
    if fmt == "html":
        page = r.content.decode("utf-8")
        no_injected_markup(page)
        assert html.escape(EXPECTED_NAMES[0], quote=False) in page
    elif fmt == "json":
        doc = json.loads(r.content.decode("utf-8"))
        assert set(EXPECTED_NAMES) <= {f["function"] for s in doc["stacks"] for f in s["frames"]}
    elif fmt == "folded":
        text = r.content.decode("utf-8")
        folded_stacks(text)
        assert as_folded("a;b") + " (" in text and "a;b (" not in text
    elif fmt == "speedscope":
        check_speedscope(r.content)
    else:
        assert set(EXPECTED_NAMES) <= Pprof(r.content).function_names()


def test_hostile_names_are_escaped_in_the_in_flight_stack(srv):
    tag = unique("liveh")
    done = threading.Event()

    def slow():
        try:
            srv.get("/h/hostile/%s?ms=1500" % tag)
        finally:
            done.set()

    threading.Thread(target=slow, daemon=True).start()

    def stack_rows():
        page = page_bytes(srv, "/server-profile")
        part = inflight_section(page)
        for chunk in part.split("<tr>")[1:]:
            # (a child's first /h request samples the import of the app
            # first: wait for the view's own stack)
            if tag in chunk and "<ol class=stack>" in chunk and "<li>view_hostile" in chunk:
                return page, chunk
        return None

    found = wait_for(stack_rows, 1.2, 0.05)
    assert done.wait(10)
    assert found, "hostile request's stack never showed in flight"
    page, row = found
    no_injected_markup(page)
    items = [html.unescape(re.sub(r"<span class=muted>.*?</span>", "", li)).strip()
             for li in re.findall(r"<li>(.*?)</li>", row, re.S)]
    start = items.index(EXPECTED_HTML[0])
    assert items[start:start + len(EXPECTED_HTML)] == EXPECTED_HTML, items


# -- long names ---------------------------------------------------------------

def test_long_names_are_shortened_for_display_only(srv):
    tag = unique("long")
    srv.get_ok("/h/long/%s?ms=250" % tag)
    [req] = srv.wait_kept(tag, 1)
    long_name = HOSTILE.LONG_NAME
    assert long_name in {f["function"] for s in srv.request_detail(req["id"])["stacks"]
                         for f in s["frames"]}
    folded = page_bytes(srv, srv.request_path(req["id"], "folded"))
    assert long_name + " (" in folded
    page = page_bytes(srv, srv.request_path(req["id"]))
    shown = [html.unescape(n) for n in re.findall(r'<g class=f [^>]*data-n="([^"]*)"', page)
             if "long_" in n]
    assert shown and all(len(n) <= 95 and "\u2026" in n for n in shown), shown
    assert shown[0].startswith("long_x") and shown[0].endswith("x_end")
    assert 'title="%s"' % long_name in page          # the full name on hover
    assert long_name in Pprof(srv.get(srv.request_path(req["id"], "pprof")).content
                              ).function_names()


# -- hostile location names ---------------------------------------------------

def test_location_name_is_escaped_in_overview_json_and_metrics(srv):
    assert raw_get(srv, ODD_LOCATION.encode() + b"/anything")[0] == 404
    loc = wait_for(lambda: (lambda l: l if l and l["requests"] else None)(
        srv.location(ODD_LOCATION)), 5)
    assert loc, [l["path"] for l in srv.profile()["locations"]]
    page = page_bytes(srv, "/server-profile")
    no_injected_markup(page)
    assert html.escape(ODD_LOCATION, quote=True).replace("&#x27;", "&#39;") in page
    text = page_bytes(srv, "/server-profile/metrics")
    proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")
    assert metric(parse_prometheus(text), "pyprof_request_duration_seconds_count",
                  location=ODD_LOCATION, status_class="4xx") == 1


# -- deep stacks --------------------------------------------------------------

def timed_get(srv, path):
    started = time.monotonic()
    r = srv.get(path, timeout=30)
    return r, time.monotonic() - started


def test_thousand_deep_stack_renders_and_exports(srv):
    tag = unique("deep")
    srv.get_ok("/h/deep/%s?n=1000&ms=300" % tag, timeout=30)
    [req] = srv.wait_kept(tag, 1)
    detail = srv.request_detail(req["id"])
    depth = max(len(s["frames"]) for s in detail["stacks"])
    assert depth >= 1003 and not detail["truncated"], (depth, detail["truncated"])
    r, took = timed_get(srv, srv.request_path(req["id"]))
    assert r.status_code == 200
    assert len(r.content) < 5 * 1024 * 1024, len(r.content)
    assert took < 3, "request page took %.2f s" % took
    assert r.text.rstrip().endswith("</html>"), r.text[-200:]
    folded = folded_stacks(page_bytes(srv, srv.request_path(req["id"], "folded")))
    assert max(len(f) for f, _ in folded) == depth
    check_speedscope(srv.get(srv.request_path(req["id"], "speedscope")).content)
    prof = Pprof(srv.get(srv.request_path(req["id"], "pprof")).content)
    assert max(len(prof.stack(s)) for s in prof.samples) == depth
    r, took = timed_get(srv, "/server-profile/location?path=/h")
    assert r.status_code == 200 and len(r.content) < 5 * 1024 * 1024 and took < 3


def test_deep_call_tree_renders_with_small_thread_stacks(pyprof_module, module_servers):
    """The call tree recursed once per level with 1.3 KB of name buffers in
    each frame: 1.35 MB of stack for a 1,026-deep stack, a segfault with
    `ThreadStackSize 512K` (about 100 KB now).  Pages are rendered on
    httpd's worker threads, whose size the admin sets."""
    small = serve(module_servers, "safety-small-stack", EXTRA + "ThreadStackSize 524288\n",
                  mounts=[("/h", HOSTILE_SOURCE)], mpm="event")
    try:
        tag = unique("deepsmall")
        small.get_ok("/h/deep/%s?n=1000&ms=300" % tag, timeout=30)
        [req] = small.wait_kept(tag, 1)
        for path in (small.request_path(req["id"]), "/server-profile/location?path=/h"):
            r = small.get(path, timeout=30)
            assert r.status_code == 200, (path, r.status_code)
            assert r.text.rstrip().endswith("</html>"), r.text[-200:]
            assert "<details" in r.text
        problems = small.log_problems()
        assert not problems, problems
    finally:
        small.stop()


def test_stack_deeper_than_max_depth_is_marked_truncated(srv):
    tag = unique("deeper")
    srv.get_ok("/h/deep/%s?n=1100&ms=250" % tag, timeout=30)
    [req] = srv.wait_kept(tag, 1)
    detail = srv.request_detail(req["id"])
    [deep] = [s for s in detail["stacks"] if len(s["frames"]) > 1000]
    names = [f["function"] for f in deep["frames"]]
    # the deepest 1024 frames kept, the cut marked at the root end
    assert len(names) == 1025 and names[0] == "[truncated]", names[:3]
    assert names[-1] == "sleep_for" and names[1:-1] == ["recurse"] * 1023, names[:3]
    assert detail["truncated"] is True, "stack cut at PyProfMaxDepth, flag says %r" % (
        detail["truncated"])
    r = srv.get(srv.request_path(req["id"]))
    assert r.status_code == 200 and len(r.content) < 5 * 1024 * 1024


# -- bounded overview ---------------------------------------------------------

BOUNDED = """\
PyProfSample /app 10ms
PyProfSlowThreshold 1ms
PyProfKeep 300
"""


def test_overview_lists_at_most_100_rows_and_counts_the_rest(pyprof_module, servers):
    srv = serve(servers, "bounded", BOUNDED)
    tag = unique("many")
    n = 300
    with ThreadPoolExecutor(max_workers=min(4, MAX_CONCURRENCY[srv.mpm])) as pool:
        codes = list(pool.map(lambda i: srv.get("/app/slow/%s-%d?ms=2" % (tag, i)).status_code,
                              range(n)))
    assert codes == [200] * n
    kept = srv.wait_kept(tag, n, timeout=20)
    assert len(kept) == n
    started = time.monotonic()
    r = srv.get("/server-profile")
    took = time.monotonic() - started
    assert r.status_code == 200
    assert took < 2, "overview with %d kept traces took %.2f s" % (n, took)
    rows = slow_rows(r.text)
    assert len(rows) == 100, len(rows)
    assert "%d more in" % (n - 100) in r.text
    assert re.search(r"\(%d kept, slowest first\)" % n, r.text)
    assert len(srv.profile()["requests"]) == n
