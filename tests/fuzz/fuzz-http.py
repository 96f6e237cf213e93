#!/usr/bin/python3
"""Fuzz mod_pyprof's request-facing parsers through a real httpd + mod_wsgi.

The handler's query and path parsing (parse_query, unescape_query,
parse_window_us, parse_ms, form_value, the /request/ID, /location,
/metrics and /pprof routing) and the post_read_request hook's traceparent
and trigger-header parsing are static in the glue, so they are exercised
where they run: requests with random and hostile paths, query strings,
forms and headers are sent over raw sockets (nothing normalises them) to a
server started by the httpd harness (tests/pyhttpd/httpd.py, class Httpd)
on 127.0.0.1.

Checked for every request: the server answers, with a status in
ALLOWED (200, 302, 303, 400, 403, 404, 405), and a 200 JSON page parses as
strict UTF-8 JSON.  Attack cases of their own: capture POSTs with hostile
Origin and Sec-Fetch-Site headers (one a browser marks as cross-site must
never arm a capture: never a 303), hostile Host headers (DNS rebinding),
and paths with CR LF and quotes that end up in the redirect's Location
(which must stay printable ASCII without quotes); every answer of the
handler that is no error must carry the page security headers.  At the end: the parent and every child that served is still
there or was replaced by httpd without a crash, and the error log holds no
crash marker (segfault, "exit signal", fatal Python error) nor an
[error]-or-worse line.  Every unexpected answer is written, with the exact
request bytes, to the --out directory.

Bounded: --seconds of fuzzing (default 60), at most --max-requests, every
socket operation times out, /pprof?seconds= is at most 1.

    /usr/bin/python3 tests/fuzz/fuzz-http.py --seconds 120 --mpm event
    /usr/bin/python3 tests/fuzz/fuzz-http.py --seconds 120 --daemon
    PYPROF_MODULE=build/asan/mod_pyprof/.libs/mod_pyprof.so ... (any build)

--daemon serves the app from a mod_wsgi daemon process group instead
(tests/integration/daemon_util.py: /alpha and /beta, two application
groups, 2 processes of 4 threads recycled every 50 requests), so hostile
URIs, trace ids and triggers travel to the daemons' samplers and back
through the store, and the pages render what the daemons recorded.
"""

import argparse
import json
import os
import random
import re
import shutil
import socket
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, os.path.join(REPO, "tests"))

from pyhttpd import httpd  # noqa: E402  (the httpd harness)
import daemon_util  # noqa: E402

if os.environ.get("PYPROF_HTTPD_ENV"):
    # sanitizer runtime into httpd (see tests/asan-integration.sh); its
    # reports in the error log count as crashes
    import pyhttpd.pytest_sanitizer_env  # noqa: E402,F401

ALLOWED = {200, 302, 303, 400, 403, 404, 405}
SECRET = "fuzz-secret-0123456789"
TRIGGER = "X-PyProf-Trigger"
# the profiled prefixes: /app (embedded), or /alpha and /beta (--daemon)
APPS = ["/app"]
SAMPLE_LINES = "PyProfSample /app 1ms\n"
DAEMON_SAMPLE_LINES = "PyProfSample /alpha 1ms\nPyProfSample /beta 1ms\n"
EXTRA_CONF = """\
PyProfSlowThreshold 1ms
PyProfKeep 200
PyProfHeaders On
PyProfTrigger %s %s 1ms
""" % (TRIGGER, SECRET)

HOSTILE = [
    "<script>alert(1)</script>", "\"'><img src=x onerror=alert(1)>", "a;b c",
    "\x00", "\xff\xfe", "%", "%%", "%0", "%zz", "%00", "%2F", "%2f%2e%2e",
    "../../etc/passwd", "/", "//", "?", "#", "&", "=", ";", "+", " ",
    "\u2026" * 30, "\ud800", "x" * 300, "9" * 40, "-1", "0", "1e309", "nan",
    "inf", "1.5", "0x10", "10m", "1h", "61m", "7d", "30s", "1s", "s", "",
    "5xx", "404", "999", "0xx", "6xx", "json", "html", "folded", "speedscope",
    "pprof", "diff", "slow", "rest", "all", "/app", "/app/", "/nope",
    "4bf92f3577b34da6a3ce929d0e0e4736", "4BF92F3577B34DA6A3CE929D0E0E4736",
]
KEYS = ["format", "refresh", "path", "sort", "location", "status", "since",
        "view", "seconds", "min_ms", "max_ms", "trace", "process_group",
        "app_group", "", "Format", "id", "nonce", "action", "count"]
SUBPAGES = ["", "/", "//", "/request", "/request/", "/location", "/location/",
            "/metrics", "/metrics/", "/pprof", "/request/x/../y", "/requests",
            "/locationx", "/request//", "/%72equest/", "/request%2Fabc",
            "/./request/", "/location/..", "/metrics?x"]
# Origin and Sec-Fetch-Site of capture POSTs; "{port}" is the server's
ORIGINS = ["http://127.0.0.1:{port}", "http://127.0.0.1:{port}/", "http://evil.example",
           "null", "http://127.0.0.1", "https://127.0.0.1:{port}", "http://127.0.0.1:80",
           "http://127.0.0.1:{port}@evil.example", "http://evil.example#127.0.0.1:{port}",
           "javascript:alert(1)", "HTTP://127.0.0.1:{port}", "http://", "", " ",
           "http://127.0.0.1:{port}.evil.example", "file://"]
SEC_FETCH_SITES = ["same-origin", "same-site", "cross-site", "none", "CROSS-SITE", "", "x"]
# a browser marks these as coming from another site (cross_site_refusal)
CROSS_SITE_ORIGINS = {"http://evil.example", "null", "http://127.0.0.1",
                      "http://127.0.0.1:80", "http://127.0.0.1:{port}@evil.example",
                      "http://127.0.0.1:{port}.evil.example", "file://",
                      "javascript:alert(1)"}
HOSTS = ["127.0.0.1", "localhost", "LOCALHOST", "[::1]", "evil.example",
         "127.0.0.1.evil.example", "evil.example:80", "", "a" * 300, "127.0.0.1:1",
         "[::1", "%00", "localhost.", "127.1"]
# CR LF, quotes and markup in the path the capture redirect is built from
POST_PATHS = ["", "", "/request/x", "/location", "/%0d%0aSet-Cookie:%20x=1",
              "/%0aLocation:%20http://evil.example", "/a%22b", "/%3Cscript%3E",
              "/%E2%80%A8", "/x%20y"]
SECURITY_HEADERS = ("content-security-policy", "x-frame-options",
                    "x-content-type-options", "referrer-policy")
TRACEPARENTS = [
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    "  \t00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "00", "",
    "00-<script>-00f067aa0ba902b7-01", "-" * 60, "0" * 55,
]


def rnd_text(r, maxlen=40):
    """A hostile string: pieces of HOSTILE, random bytes, unicode."""
    kind = r.random()
    if kind < 0.5:
        return r.choice(HOSTILE)
    if kind < 0.8:
        return "".join(chr(r.randrange(0, 0x250)) for _ in range(r.randrange(maxlen)))
    return "".join(r.choice(HOSTILE) for _ in range(r.randrange(1, 4)))


def enc(r, text):
    """Percent-encode text for a URL, sometimes leaving raw characters or
    breaking escapes (the parser must refuse, not misbehave)."""
    data = text.encode("utf-8", "surrogatepass")
    mode = r.random()
    if mode < 0.7:
        return urllib.parse.quote_from_bytes(data, safe="")
    if mode < 0.85:
        return urllib.parse.quote_from_bytes(data, safe="/;=&+%")
    # raw, minus what cannot go in a request line at all
    return "".join(c if 0x21 <= ord(c) < 0x7f else "%%%02X" % ord(c) for c in
                   data.decode("latin-1"))


def app_target(r, rest, query):
    """An app request: /app/<rest>, or in --daemon a view of daemon_app.py
    (whatever follows the view is ignored, so the hostile rest stays in the
    URI) with ?ms= kept short; its segments views record hostile and
    over-long segment names and details."""
    app = r.choice(APPS)
    if app == "/app":
        return "/app/%s%s" % (rest, "?" + query if query is not None else "")
    view = r.choices(["/flood", "/info", "/segments", "/slow", "/hostile"],
                     [4, 3, 2, 2, 1])[0]
    return "%s%s/%s?ms=%d%s" % (app, view, rest, r.choice([0, 1, 3]),
                                "&" + query if query else "")


def rnd_query(r, ids):
    parts = []
    for _ in range(r.randrange(0, 6)):
        key = r.choice(KEYS) if r.random() < 0.9 else rnd_text(r, 8)
        if key == "seconds" and r.random() < 0.9:
            val = r.choice(["0", "61", "-1", "x", "1.5", "", "99999999999999999999"])
        elif key == "trace" and ids and r.random() < 0.3:
            val = r.choice(["4bf92f3577b34da6a3ce929d0e0e4736", "0" * 32])
        else:
            val = rnd_text(r)
        form = r.random()
        if form < 0.8:
            parts.append("%s=%s" % (enc(r, key), enc(r, val)))
        elif form < 0.9:
            parts.append(enc(r, key))            # key without '='
        else:
            parts.append("%s==%s" % (enc(r, key), enc(r, val)))
    sep = r.choice(["&", "&", ";", "&&", "&;"])
    return sep.join(parts)


class Result:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_status = {}
        self.by_kind = {}
        self.unexpected = []
        self.errors = []
        self.sent = 0

    def add(self, kind, status):
        with self.lock:
            self.sent += 1
            self.by_status[status] = self.by_status.get(status, 0) + 1
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1


def http(port, raw, timeout=15.0, limit=64 << 20):
    """Send raw request bytes, read the whole response (Connection: close).
    Returns (status, headers dict, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        chunks, size = [], 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
            size += len(data)
            if size > limit:
                break
    resp = b"".join(chunks)
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", lines[0]) if lines else None
    if not m:
        raise IOError("no status line in %r" % resp[:200])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = dechunk(body)
    return int(m.group(1)), headers, body


def dechunk(body):
    out, i = [], 0
    while i < len(body):
        j = body.find(b"\r\n", i)
        if j < 0:
            break
        n = int(body[i:j].split(b";")[0] or b"0", 16)
        if n == 0:
            break
        out.append(body[j + 2:j + 2 + n])
        i = j + 2 + n + 2
    return b"".join(out)


def request(method, target, headers=(), body=b"", host="127.0.0.1"):
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: " + host,
             "Connection: close"]
    lines += ["%s: %s" % h for h in headers]
    if body or method == "POST":
        lines += ["Content-Type: application/x-www-form-urlencoded",
                  "Content-Length: %d" % len(body)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def one(r, srv, ids, nonce, res, outdir, valid_pages=0.25):
    """Build and send one fuzzed request; record the outcome."""
    kind = r.choices(["page", "app", "post", "method"], [70, 18, 8, 4])[0]
    headers = []
    body = b""
    host = "127.0.0.1:%d" % srv.port  # as a browser sends it: Origin is compared to it
    cross_site = False
    ours = kind == "post"  # surely the handler's (no dot segments to leave it)
    method = "GET" if r.random() < 0.9 else "HEAD"
    if kind == "page" and r.random() < valid_pages:
        # a valid page that builds a call tree: concurrent renders in one
        # threaded child are what the parsers' fuzzing alone would not do
        app = r.choice(APPS)
        ours = True
        target = r.choice(["/server-profile/location?path=" + app,
                           "/server-profile/location?path=%s&view=diff" % app,
                           "/server-profile/location?path=%s&since=10m" % app,
                           "/server-profile/location?path=%s&format=pprof" % app,
                           "/server-profile"] +
                          ["/server-profile/request/%s%s" % (
                              urllib.parse.quote(i, safe=""),
                              r.choice(["", "?format=json", "?format=pprof",
                                        "?format=speedscope", "?format=folded"]))
                           for i in ids[:20]])
    elif kind == "page":
        sub = r.choice(SUBPAGES)
        if sub.startswith("/request/") and r.random() < 0.6:
            sub = "/request/" + (enc(r, r.choice(ids)) if ids and r.random() < 0.6
                                 else enc(r, rnd_text(r)))
        path = "/server-profile" + sub
        q = rnd_query(r, ids)
        target = path + ("?" + q if q or r.random() < 0.1 else "")
        if r.random() < 0.1:
            host = r.choice(HOSTS)
    elif kind == "app":
        target = app_target(r, enc(r, rnd_text(r, 20)),
                            rnd_query(r, ids) if r.random() < 0.3 else None)
        if r.random() < 0.6:
            headers.append(("traceparent", r.choice(TRACEPARENTS) if r.random() < 0.7
                            else rnd_text(r, 80).encode("utf-8", "surrogatepass")
                            .decode("latin-1").replace("\r", "").replace("\n", "")))
        if r.random() < 0.4:
            secret = r.choice([SECRET, SECRET + "x", SECRET[:-1], "", rnd_text(r, 30)])
            headers.append((TRIGGER, secret.encode("utf-8", "surrogatepass")
                            .decode("latin-1").replace("\r", "").replace("\n", "")))
    elif kind == "post":
        method = "POST"
        fields = []
        for key in r.sample(["action", "nonce", "path", "count", rnd_text(r, 6)],
                            r.randrange(0, 5)):
            if key == "nonce" and nonce and r.random() < 0.5:
                val = nonce
            elif key == "action" and r.random() < 0.5:
                val = "capture"
            elif key == "path" and r.random() < 0.5:
                val = r.choice(APPS)
            elif key == "count" and r.random() < 0.5:
                val = str(r.choice([1, 2, 0, 1001, -1]))
            else:
                val = rnd_text(r)
            fields.append("%s=%s" % (enc(r, key), enc(r, val)))
        body = "&".join(fields).encode("latin-1", "replace")
        if nonce and r.random() < 0.3:
            # a form that arms, so the cross-site and redirect checks bite
            body = ("action=capture&nonce=%s&path=%s&count=1"
                    % (nonce, urllib.parse.quote(r.choice(APPS), safe=""))).encode()
        if r.random() < 0.05:
            body = b"x=" + b"a" * 5000          # over FORM_MAX
        target = "/server-profile" + r.choice(POST_PATHS)
        if r.random() < 0.5:
            origin = r.choice(ORIGINS)
            headers.append(("Origin", origin.format(port=srv.port)))
            cross_site = origin in CROSS_SITE_ORIGINS
        if r.random() < 0.4:
            site = r.choice(SEC_FETCH_SITES)
            headers.append(("Sec-Fetch-Site", site))
            cross_site = cross_site or site.lower() in ("cross-site", "same-site")
    else:
        method = r.choice(["PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
        target = "/server-profile" + r.choice(SUBPAGES)
    raw = request(method, target, headers, body, host)
    try:
        status, hdrs, payload = http(srv.port, raw)
    except (OSError, IOError) as e:
        with res.lock:
            res.errors.append((repr(e), raw))
        record(outdir, "error", raw, repr(e))
        return
    res.add(kind, status)
    problem = None
    location = hdrs.get("location", "")
    if status not in ALLOWED:
        problem = "status %d" % status
    elif cross_site and status == 303:
        problem = "a cross-site POST armed a capture"
    elif location and (not re.fullmatch(r"[\x21-\x7e]+", location) or
                       re.search(r"[\"'<>]", location)):
        problem = "Location header not escaped: %r" % location
    elif ours and status != 400 and not all(h in hdrs for h in SECURITY_HEADERS):
        problem = "handler answer without the security headers: %s" % sorted(hdrs)
    elif (status == 200 and method == "GET" and
          hdrs.get("content-type", "").startswith("application/json")):
        try:
            json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            problem = "200 JSON that does not parse: %s" % e
    if problem:
        with res.lock:
            res.unexpected.append((problem, raw))
        record(outdir, problem, raw, payload[:4000])


def record(outdir, what, raw, extra):
    name = os.path.join(outdir, "finding-%d-%d" % (os.getpid(), time.monotonic_ns()))
    with open(name, "wb") as f:
        f.write(("# %s\n" % what).encode())
        f.write(raw)
        f.write(b"\n# response / error:\n")
        f.write(extra if isinstance(extra, bytes) else str(extra).encode())


def warm_up(srv, r):
    """Traffic with hostile paths, trace ids and triggers, so the pages the
    fuzzer reads hold hostile data; returns the ids of kept requests."""
    for i in range(60):
        path = app_target(r, enc(r, rnd_text(r, 30)), "ms=%d" % r.choice([0, 2, 5]))
        hdrs = [("traceparent", r.choice(TRACEPARENTS[:2]))]
        if i % 5 == 0:
            hdrs.append((TRIGGER, SECRET))
        try:
            http(srv.port, request("GET", path, hdrs))
        except OSError:
            pass
    time.sleep(0.5)
    status, _, body = http(srv.port, request("GET", "/server-profile?format=json"))
    ids = []
    if status == 200:
        data = json.loads(body.decode("utf-8"))
        ids = [q["id"] for q in data.get("requests", []) + data.get("inflight", [])]
    status, _, body = http(srv.port, request("GET", "/server-profile"))
    m = re.search(rb'name=nonce value="?([0-9a-f]+)', body)
    return ids, m.group(1).decode() if m else None


def profiled_locations(srv):
    """{path: (requests, samples)} of the fuzzed app prefixes: proof that
    the app requests were profiled where they ran (the daemons in
    --daemon), not only refused on the way."""
    try:
        status, _, body = http(srv.port, request("GET", "/server-profile?format=json"))
        data = json.loads(body.decode("utf-8")) if status == 200 else {}
    except (OSError, IOError, ValueError):
        return {}
    return {loc["path"]: (loc.get("requests", 0), loc.get("samples", 0))
            for loc in data.get("locations", []) if loc.get("path") in APPS}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--max-requests", type=int, default=2000000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--mpm", default="event", choices=sorted(httpd.MPM_SETTINGS))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--daemon", action="store_true",
                    help="serve the app from a mod_wsgi daemon process group")
    ap.add_argument("--valid-pages", type=float, default=0.25,
                    help="share of page requests that are valid renders of "
                         "the overview, location and request pages")
    ap.add_argument("--out", default=os.path.join(REPO, "build", "fuzz-http"))
    args = ap.parse_args()

    seed = args.seed if args.seed is not None else int(time.time())
    # two workers in reserve for /pprof?seconds=1, which holds one
    limit = httpd.MAX_CONCURRENCY.get(args.mpm, 4) - 2
    if args.threads > limit:
        # more would reach MaxRequestWorkers, which httpd logs as an error
        print("fuzz-http: --threads %d lowered to %d for %s" % (args.threads, limit, args.mpm))
        args.threads = limit
    os.makedirs(args.out, exist_ok=True)
    print("fuzz-http: seed %d, %s MPM%s, %d threads, %.0fs, module %s"
          % (seed, args.mpm, ", daemon mode" if args.daemon else "", args.threads,
             args.seconds, httpd.module_path()))
    # a private copy: a rebuild of the module under a running httpd would
    # change the code it runs
    args.out = os.path.abspath(args.out)
    module = os.path.join(args.out, "mod_pyprof.so")
    shutil.copyfile(httpd.module_path(), module)
    os.chmod(module, 0o755)
    # httpd's core refuses some of the URIs at [error] level (AH10244
    # invalid URI path, AH00036 file name too long), and the MPM says so
    # when the fuzzer keeps every worker busy (AH00161, AH00484): not the
    # module's doing
    srv = httpd.Httpd(name="fuzz-http",
                         extra=(EXTRA_CONF if args.daemon else SAMPLE_LINES + EXTRA_CONF),
                         mpm=args.mpm, log_level="warn", module=module,
                         allowed_log=[r"\[(core|http):error\]",
                                      r"AH00161|AH00484"])
    if args.daemon:
        APPS[:] = ["/alpha", "/beta"]
        daemon_util.prepare(srv, sampling=DAEMON_SAMPLE_LINES)
    # the trigger with a wrong secret is logged at info: not a problem
    srv.start()
    res = Result()
    try:
        start_pids = set([srv.pid] + srv.children())
        ids, nonce = warm_up(srv, random.Random(seed))
        print("fuzz-http: %d request ids to aim at, nonce %s" % (len(ids), "found" if nonce else "missing"))
        deadline = time.monotonic() + args.seconds
        counter = iter(range(args.max_requests))
        counter_lock = threading.Lock()

        def worker(n):
            r = random.Random(seed * 1000 + n)
            while time.monotonic() < deadline:
                with counter_lock:
                    if next(counter, None) is None:
                        return
                one(r, srv, ids, nonce, res, args.out, args.valid_pages)

        threads = [threading.Thread(target=worker, args=(n,), daemon=True)
                   for n in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.seconds + 60)
        alive = srv.running
        reached = profiled_locations(srv) if alive else {}
        end_pids = set([srv.pid] + srv.children()) if alive else set()
    finally:
        srv.stop()
    problems = srv.log_problems()
    log = srv.error_log_text()
    crashes = [l for l in log.splitlines() if any(m in l for m in httpd.CRASH_MARKERS)]

    print("fuzz-http: %d requests: by status %s; by kind %s"
          % (res.sent, dict(sorted(res.by_status.items())), dict(sorted(res.by_kind.items()))))
    print("fuzz-http: processes at start %d, at end %d (gone, by crash or by "
          "the MPM's own maintenance: %s)"
          % (len(start_pids), len(end_pids), sorted(start_pids - end_pids)))
    print("fuzz-http: profiled (requests, samples) by prefix: %s" % reached)
    failed = False
    if alive and not all(reached.get(app, (0, 0))[1] > 0 for app in APPS):
        failed = True
        print("fuzz-http: an app prefix has no samples: %s" % reached)
    if res.unexpected:
        failed = True
        print("fuzz-http: %d unexpected answers, e.g.:" % len(res.unexpected))
        for what, raw in res.unexpected[:10]:
            print("  %s: %r" % (what, raw[:300]))
    if res.errors:
        failed = True
        print("fuzz-http: %d requests got no answer, e.g.:" % len(res.errors))
        for what, raw in res.errors[:10]:
            print("  %s: %r" % (what, raw[:300]))
    if crashes or problems:
        failed = True
        print("fuzz-http: error log problems:")
        for line in list(dict.fromkeys(crashes + problems))[:20]:
            print("  " + line[:400])
    if not alive:
        failed = True
        print("fuzz-http: the httpd parent is gone")
    if failed:
        print("fuzz-http: FAILED; requests kept in %s, server directory %s"
              % (args.out, srv.root))
        return 1
    srv.remove()
    print("fuzz-http: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
