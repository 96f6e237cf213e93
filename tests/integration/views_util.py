"""Helpers for the tests of issue [2]: views, exports, metrics, browser, safety.

Built on conftest.py's harness (Httpd, ServerPool); adds
  - serve(): a server with more WSGI applications mounted next to /app
    (apps/hostile.py at /h, or apps/app.py again under another prefix);
  - parsers for the overview's HTML (slow table, histogram bars, in-flight
    rows), for folded stacks, for protoc's text output and for the
    Prometheus text format;
  - the speedscope JSON schema (from the speedscope npm package, cached
    under build/speedscope) and a pprof decoder that runs Debian's protoc.

Every wait is bounded in time and every loop in count.
"""

import gzip
import html
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.parse

import pytest

from conftest import HERE, REPO, selected_mpms

APPS = os.path.join(HERE, "apps")
HOSTILE_SOURCE = os.path.join(APPS, "hostile.py")
PROTO_DIR = os.path.join(HERE, "data")
PROTOC = "/usr/bin/protoc"
PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"
CHROMIUM = "/usr/bin/chromium"

SPEEDSCOPE_VERSION = "1.25.0"
SPEEDSCOPE_CACHE = os.path.join(REPO, "build", "speedscope")
SPEEDSCOPE_SCHEMA_MEMBER = "package/dist/release/file-format-schema.json"

# These pages render the same under every MPM; one is enough (the first
# selected one, so PYPROF_MPMS still chooses).
VIEW_MPM = selected_mpms()[0]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- servers ------------------------------------------------------------------

def serve(pool, name, extra, mounts=(), **kw):
    """Start a server from `pool` with extra WSGI applications.

    mounts: (url_prefix, source) pairs; source None mounts apps/app.py (the
    server's own copy) once more under url_prefix.  Each source is copied
    into the server's directory, readable by www-data.  `extra` is the
    test's PyProf* configuration.
    """
    kw.setdefault("mpm", VIEW_MPM)
    srv = pool.create(name=name, **kw)
    lines = []
    for url, source in mounts:
        if source is None:
            path = srv.app
        else:
            path = os.path.join(srv.root, os.path.basename(source))
            shutil.copyfile(source, path)
            os.chmod(path, 0o644)
        lines.append('WSGIScriptAlias %s "%s"' % (url, path))
    srv.extra = "\n".join(lines + [extra])
    srv.start()
    return srv


def settle(srv, prefix, timeout=10):
    """Wait until the location counts every request sent under `prefix`
    (log_transaction may run after the client has its response)."""
    want = srv.sent_under(prefix)
    deadline = time.monotonic() + timeout
    loc = None
    while time.monotonic() < deadline:
        loc = srv.location(prefix)
        if loc and loc["requests"] >= want:
            return loc
        time.sleep(0.05)
    return loc


# -- HTML of the overview -----------------------------------------------------

def section(page, start, end=None):
    """The part of `page` from the marker `start` up to `end` (or the end)."""
    i = page.find(start)
    assert i >= 0, "no %r on the page" % start
    j = page.find(end, i + len(start)) if end else -1
    return page[i:j] if j >= 0 else page[i:]


def slow_section(page):
    return section(page, "<h2 id=slow>", "<h2 id=captures>")


REQ_LINK = re.compile(r'href="[^"]*/request/([^"?#]+)"')


def slow_rows(page):
    """Rows of the overview's slow-request table, in page order:
    [{"id", "uri" (HTML-unescaped), "uri_html" (as sent), "status", "duration"}]."""
    part = slow_section(page)
    rows = []
    for chunk in part.split("<tr>")[1:]:
        if "<th" in chunk:
            continue
        uri = re.search(r"<td class=uri>(.*?)</td>", chunk, re.S)
        status = re.search(r'<td class="num[^"]*">(\d+)</td>', chunk)
        link = REQ_LINK.search(chunk)
        dur = re.search(r"<td class=num>([^<]+)</td>", chunk)
        assert uri and status and link and dur, "unparsable slow row: %r" % chunk[:500]
        uri_html = re.sub(r"<span class=flag>.*?</span>", "", uri.group(1))
        rows.append({"id": urllib.parse.unquote(html.unescape(link.group(1))),
                     "uri": html.unescape(uri_html), "uri_html": uri_html,
                     "status": int(status.group(1)),
                     "duration_ms": parse_human_ms(dur.group(1))})
    return rows


def parse_human_ms(text):
    """'581 ms', '0.5 ms', '1.25 s' -> milliseconds."""
    m = re.match(r"^\s*([0-9.]+) (ms|s)\s*$", text)
    assert m, "not a duration: %r" % text
    return float(m.group(1)) * (1000.0 if m.group(2) == "s" else 1.0)


def location_row(page, path):
    """The <tr> of one location in the overview's Locations table."""
    part = section(page, "<h2>Locations</h2>", "<h2>")
    href = "/location?path=" + urllib.parse.quote(path, safe="")
    for chunk in part.split("<tr>")[1:]:
        if href in chunk:
            return chunk
    raise AssertionError("no Locations row for %s" % path)


HIST_BAR = re.compile(
    r'<a href="(\?location=[^"]*)"><rect class=b [^>]*><title>([^<]*)</title>')


def hist_bars(page, path):
    """Histogram bars of a location: [{"href" (unescaped), "query", "count"}]."""
    row = location_row(page, path)
    svgs = re.findall(r"<svg class=hist.*?</svg>", row, re.S)
    assert len(svgs) == 1, "location %s: %d histogram svgs" % (path, len(svgs))
    bars = []
    for href, title in HIST_BAR.findall(svgs[0]):
        href = html.unescape(href)
        count = re.search(r": (\d+) requests", title)
        assert count, title
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(href).query)
        bars.append({"href": href, "query": query, "count": int(count.group(1)),
                     "title": html.unescape(title)})
    return bars


def inflight_section(page):
    return section(page, "<h2>In flight now", "<h2 id=slow>")


# -- folded -------------------------------------------------------------------

FOLDED_LINE = re.compile(r"^(.+) (\d+)$")


def folded_stacks(text):
    """[(frames, count)] of a folded export; asserts the line format."""
    assert text.endswith("\n") or text == "", "folded text does not end a line: %r" % text[-80:]
    out = []
    for line in text.split("\n")[:-1]:
        m = FOLDED_LINE.match(line)
        assert m, "not a folded line: %r" % line
        out.append((m.group(1).split(";"), int(m.group(2))))
    return out


def frame_function(frame):
    """'burn_cpu (/x/app.py:38)' -> 'burn_cpu'."""
    m = re.match(r"^(.*) \((.*):(\d+)\)$", frame)
    return m.group(1) if m else frame


# -- speedscope ---------------------------------------------------------------

def speedscope_schema():
    """speedscope's published file-format schema, from its npm package
    (`npm pack speedscope@VERSION`, cached under build/speedscope)."""
    path = os.path.join(SPEEDSCOPE_CACHE, "file-format-schema-%s.json" % SPEEDSCOPE_VERSION)
    if not os.path.exists(path):
        os.makedirs(SPEEDSCOPE_CACHE, exist_ok=True)
        tgz = os.path.join(SPEEDSCOPE_CACHE, "speedscope-%s.tgz" % SPEEDSCOPE_VERSION)
        if not os.path.exists(tgz):
            npm = shutil.which("npm")
            if not npm:
                pytest.fail("npm is needed once to fetch speedscope's schema "
                            "(Debian package npm)", pytrace=False)
            proc = subprocess.run([npm, "pack", "speedscope@%s" % SPEEDSCOPE_VERSION],
                                  cwd=SPEEDSCOPE_CACHE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=180)
            assert proc.returncode == 0 and os.path.exists(tgz), \
                "npm pack speedscope failed: %s" % proc.stdout.decode(errors="replace")[-2000:]
        with tarfile.open(tgz, "r:gz") as tar:
            data = tar.extractfile(SPEEDSCOPE_SCHEMA_MEMBER).read()
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.rename(path + ".tmp", path)
    with open(path) as f:
        return json.load(f)


def speedscope_validator():
    import jsonschema
    schema = speedscope_schema()
    # The root is {"$ref": "#/definitions/FileFormat.File", "definitions": ...}.
    assert schema.get("$ref") == "#/definitions/FileFormat.File", schema.get("$ref")
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def check_speedscope(content):
    """Parse (strict UTF-8, strict JSON), validate; returns the document."""
    doc = json.loads(content.decode("utf-8"))
    errors = sorted(speedscope_validator().iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "speedscope schema errors:\n" + "\n".join(
        "%s: %s" % (list(e.path), e.message) for e in errors[:10])
    frames = doc["shared"]["frames"]
    for prof in doc["profiles"]:
        assert prof["type"] == "sampled"
        assert len(prof["samples"]) == len(prof["weights"])
        for stack in prof["samples"]:
            assert all(0 <= i < len(frames) for i in stack), stack
    return doc


# -- pprof --------------------------------------------------------------------

def protoc_decode(content):
    """gunzip a pprof export and decode it with protoc; returns the text."""
    raw = gzip.decompress(content)
    proc = subprocess.run([PROTOC, "--decode=perftools.profiles.Profile", "-I", PROTO_DIR,
                           "profile.proto"], input=raw, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 0, "protoc --decode failed (rc %d): %s" % (
        proc.returncode, proc.stderr.decode(errors="replace")[:2000])
    assert not proc.stderr.strip(), proc.stderr.decode(errors="replace")[:2000]
    return proc.stdout.decode("ascii")


_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", '"': b'"', "'": b"'", "\\": b"\\",
            "a": b"\a", "b": b"\b", "f": b"\f", "v": b"\v", "?": b"?"}


def _unescape_c(s):
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode("ascii")
            i += 1
            continue
        nxt = s[i + 1]
        if nxt in "01234567":
            m = re.match(r"[0-7]{1,3}", s[i + 1:])
            out.append(int(m.group(0), 8))
            i += 1 + len(m.group(0))
        elif nxt == "x":
            m = re.match(r"[0-9a-fA-F]{1,2}", s[i + 2:])
            out.append(int(m.group(0), 16))
            i += 2 + len(m.group(0))
        else:
            out += _ESCAPES[nxt]
            i += 2
    return bytes(out)


def parse_textproto(text):
    """protoc's text output -> {field: [value | dict]} (strings decoded as UTF-8)."""
    root = {}
    stack = [root]
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line == "}":
            stack.pop()
            continue
        m = re.match(r"^(\w+) \{$", line)
        if m:
            child = {}
            stack[-1].setdefault(m.group(1), []).append(child)
            stack.append(child)
            continue
        m = re.match(r'^(\w+): (.*)$', line)
        assert m, "unparsable protoc line: %r" % line
        value = m.group(2)
        if value.startswith('"'):
            assert value.endswith('"'), line
            value = _unescape_c(value[1:-1]).decode("utf-8")
        elif re.match(r"^-?\d+$", value):
            value = int(value)
        stack[-1].setdefault(m.group(1), []).append(value)
    assert len(stack) == 1, "unbalanced protoc output"
    return root


class Pprof:
    """A decoded pprof profile with the string table resolved."""

    def __init__(self, content):
        self.text = protoc_decode(content)
        self.msg = parse_textproto(self.text)
        self.strings = self.msg.get("string_table", [])
        assert self.strings and self.strings[0] == "", "string_table[0] must be ''"
        self.functions = {f["id"][0]: f for f in self.msg.get("function", [])}
        self.locations = {l["id"][0]: l for l in self.msg.get("location", [])}
        self.samples = self.msg.get("sample", [])

    def s(self, index):
        return self.strings[index]

    def sample_types(self):
        return [(self.s(t.get("type", [0])[0]), self.s(t.get("unit", [0])[0]))
                for t in self.msg.get("sample_type", [])]

    def function_names(self):
        return {self.s(f.get("name", [0])[0]) for f in self.functions.values()}

    def stack(self, sample):
        """Function names of a sample, leaf first (as profile.proto orders them)."""
        names = []
        for lid in sample.get("location_id", []):
            for line in self.locations[lid].get("line", []):
                names.append(self.s(self.functions[line["function_id"][0]]["name"][0]))
        return names

    def labels(self, sample):
        out = {}
        for lab in sample.get("label", []):
            key = self.s(lab["key"][0])
            out[key] = self.s(lab["str"][0]) if "str" in lab else lab.get("num", [0])[0]
        return out


# -- Prometheus text format ---------------------------------------------------

_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text):
    """[(name, {label: value}, float)] of every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        assert m, "not a sample line: %r" % line
        labels = {}
        if m.group(3):
            for k, v in _LABEL.findall(m.group(3)):
                labels[k] = re.sub(r"\\(.)", lambda x: "\n" if x.group(1) == "n" else x.group(1), v)
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def metric(samples, name, **labels):
    """The value of one series (None if absent)."""
    for n, l, v in samples:
        if n == name and all(l.get(k) == want for k, want in labels.items()):
            return v
    return None


# -- processes ----------------------------------------------------------------

def stop_process(proc, timeout=10):
    """SIGTERM, wait (bounded), SIGKILL if it is still there."""
    if proc.poll() is not None:
        return proc.returncode
    proc.terminate()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5)
