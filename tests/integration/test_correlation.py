"""Correlation: a W3C `traceparent` header's trace id and parent span id are
recorded with the request (JSON, pages, pprof labels) and
/server-profile/request?trace=TRACEID finds the request; invalid values are
ignored; mod_unique_id's UNIQUE_ID is recorded when that module is loaded.

One server per MPM: /app3 sampled every 10 ms (slow from 200 ms), /plain3
(app3 again) not sampled, PyProfHeaders On (so a fast request's id is known),
mod_unique_id loaded after mod_pyprof (as Debian's a2enmod orders
pyprof.load before unique_id.load).
"""

import gzip
import os
import re
import secrets
import subprocess

import pytest

from conftest import HERE, finished_request, serving_app3, unique

CORRELATION = """\
PyProfSample /app3 10ms
PyProfSlowThreshold 200ms
PyProfHeaders On
LoadModule unique_id_module /usr/lib/apache2/modules/mod_unique_id.so
"""

PROTOC = "/usr/bin/protoc"
PROTO_DIR = os.path.join(HERE, "data")


@pytest.fixture(scope="module")
def srv(mpm, pyprof_module):
    yield from serving_app3(name="correlation", mpm=mpm, extra=CORRELATION,
                            mounts=("/app3", "/plain3"))


def new_ids():
    return secrets.token_hex(16), secrets.token_hex(8)


def traceparent(trace, parent, version="00", flags="01"):
    return "%s-%s-%s-%s" % (version, trace, parent, flags)


def detail_by_id(srv, request_id):
    return finished_request(srv, request_id)


def fast_with(srv, value, path="/app3/fast/%s"):
    """A fast request carrying `value` as traceparent; its recorded JSON."""
    r = srv.get(path % unique("tp"), headers={"traceparent": value})
    assert r.status_code == 200, r.status_code
    return detail_by_id(srv, r.headers["X-PyProf-Id"])


# -- a valid traceparent ------------------------------------------------------------

@pytest.fixture(scope="module")
def traced(srv):
    """One slow request with a valid traceparent: (trace, parent, overview entry)."""
    trace, parent = new_ids()
    tag = unique("traced")
    r = srv.get("/app3/slow/%s?ms=250" % tag, headers={"traceparent": traceparent(trace, parent)})
    assert r.status_code == 200
    [req] = srv.wait_kept(tag, 1)
    return trace, parent, req


def test_traceparent_ids_are_in_the_overview_json(traced):
    trace, parent, req = traced
    assert req["trace_id"] == trace
    assert req["parent_id"] == parent


def test_traceparent_ids_are_in_the_request_json(srv, traced):
    trace, parent, req = traced
    detail = srv.request_detail(req["id"])
    assert (detail["trace_id"], detail["parent_id"]) == (trace, parent)


def test_traceparent_ids_show_on_the_request_page(srv, traced):
    trace, parent, req = traced
    page = srv.get_ok(srv.request_path(req["id"])).text
    assert trace in page and parent in page
    assert re.search(r"trace %s, parent span %s" % (trace, parent), page), page[-3000:]


def test_request_without_traceparent_has_null_ids(srv):
    r = srv.get("/app3/fast/%s" % unique("none"))
    detail = detail_by_id(srv, r.headers["X-PyProf-Id"])
    assert detail["trace_id"] is None and detail["parent_id"] is None


def test_fast_request_records_the_trace_too(srv):
    trace, parent = new_ids()
    detail = fast_with(srv, traceparent(trace, parent))
    assert (detail["trace_id"], detail["parent_id"]) == (trace, parent)


def test_future_version_with_more_fields_is_accepted(srv):
    # W3C: a version above 00 may append fields; a parser takes the known ones.
    trace, parent = new_ids()
    detail = fast_with(srv, traceparent(trace, parent, version="01") + "-what-comes-next")
    assert (detail["trace_id"], detail["parent_id"]) == (trace, parent)


# -- lookup by trace id -------------------------------------------------------------

def test_trace_lookup_redirects_to_the_request(srv, traced):
    trace, _, req = traced
    r = srv.get("/server-profile/request?trace=%s" % trace, allow_redirects=False)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert re.search(r"(^|//[^/]+)/server-profile/request/%s$" % re.escape(req["id"]),
                     r.headers.get("Location", "")), r.headers.get("Location")
    followed = srv.get("/server-profile/request?trace=%s" % trace)
    assert followed.status_code == 200 and trace in followed.text


def test_trace_lookup_keeps_the_json_format(srv, traced):
    trace, _, req = traced
    r = srv.get("/server-profile/request?trace=%s&format=json" % trace, allow_redirects=False)
    assert r.status_code == 302
    assert r.headers["Location"].endswith("/server-profile/request/%s?format=json" % req["id"])


def test_trace_lookup_finds_the_newest_request_of_the_trace(srv):
    trace, _ = new_ids()
    tag = unique("newest")
    for i in range(2):
        srv.get_ok("/app3/slow/%s-%d?ms=220" % (tag, i),
                   headers={"traceparent": traceparent(trace, secrets.token_hex(8))})
    kept = {q["uri"].rsplit("-", 1)[1].split("?")[0]: q for q in srv.wait_kept(tag, 2)}
    assert set(kept) == {"0", "1"}
    r = srv.get("/server-profile/request?trace=%s" % trace, allow_redirects=False)
    assert r.status_code == 302
    assert r.headers["Location"].endswith("/request/%s" % kept["1"]["id"]), (
        r.headers["Location"], kept)


def test_unknown_trace_is_404(srv):
    r = srv.get("/server-profile/request?trace=%s" % secrets.token_hex(16), allow_redirects=False)
    assert r.status_code == 404


@pytest.mark.parametrize("value", ["abc", "g" * 32, "0" * 31, "0" * 33, ""],
                         ids=["short", "non-hex", "31", "33", "empty"])
def test_malformed_trace_lookup_is_400(srv, value):
    r = srv.get("/server-profile/request?trace=%s" % value, allow_redirects=False)
    assert r.status_code == 400, r.status_code


# -- invalid values are ignored ------------------------------------------------------

T, P = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
INVALID = {
    "trace-31-hex": "00-%s-%s-01" % (T[:31], P),
    "trace-33-hex": "00-%s0-%s-01" % (T, P),
    "parent-15-hex": "00-%s-%s-01" % (T, P[:15]),
    "uppercase-trace": "00-%s-%s-01" % (T.upper(), P),
    "uppercase-parent": "00-%s-%s-01" % (T, P.upper()),
    "zero-trace": "00-%s-%s-01" % ("0" * 32, P),
    "zero-parent": "00-%s-%s-01" % (T, "0" * 16),
    "version-ff": "ff-%s-%s-01" % (T, P),
    "version-00-with-more": "00-%s-%s-01-extra" % (T, P),
    "no-flags": "00-%s-%s" % (T, P),
    "bad-flags": "00-%s-%s-zz" % (T, P),
    "non-hex-version": "0g-%s-%s-01" % (T, P),
    "underscores": "00_%s_%s_01" % (T, P),
    "garbage": "garbage",
    "empty": "",
    # obs-text bytes where the hex should be (Apache itself refuses controls)
    "high-bytes": "00-%s-%s-01" % ("\xe9\xff" * 16, P),
    "8kb": "00-%s-%s-01" % (T, P) + "-" + "a" * 8000,
    "8kb-hex": "00-" + "a" * 8000,
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_traceparent_is_ignored(srv, name):
    value = INVALID[name]
    r = srv.get("/app3/fast/%s" % unique("bad"), headers={"traceparent": value})
    assert r.status_code == 200, (name, r.status_code)
    detail = detail_by_id(srv, r.headers["X-PyProf-Id"])
    assert detail["trace_id"] is None and detail["parent_id"] is None, (name, detail["trace_id"])


def test_invalid_traceparent_on_a_slow_request_keeps_pages_valid(srv):
    tag = unique("badslow")
    r = srv.get("/app3/slow/%s?ms=250" % tag,
                headers={"traceparent": "00-<script>\"x\\" + "z" * 200})
    assert r.status_code == 200
    [req] = srv.wait_kept(tag, 1)          # profile() parses the JSON strictly
    assert req["trace_id"] is None
    assert '<script>"x' not in srv.get_ok(srv.request_path(req["id"])).text
    srv.get_ok("/app3/fast")               # still serving


# -- pprof labels -----------------------------------------------------------------------

def protoc_text(content):
    data = gzip.decompress(content)
    proc = subprocess.run([PROTOC, "--decode=perftools.profiles.Profile", "-I", PROTO_DIR,
                           "profile.proto"], input=data, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=30)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode("utf-8", "replace")


def decode_string(quoted):
    """A protoc text-format string literal (C escapes, octal bytes) -> str."""
    raw = quoted[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
    return raw.encode("latin-1").decode("utf-8", "replace")


def pprof_labels(text):
    """{key: set of string values} over every sample's labels, plus the
    string table, from protoc's text output."""
    strings = [decode_string(m.group(1)) for m in
               re.finditer(r'^string_table: ("(?:[^"\\]|\\.)*")$', text, re.M)]
    labels = {}
    for block in re.finditer(r"label \{\s*(.*?)\s*\}", text, re.S):
        fields = dict(re.findall(r"(\w+): (-?\d+)", block.group(1)))
        key = strings[int(fields["key"])]
        value = strings[int(fields["str"])] if "str" in fields else int(fields.get("num", 0))
        labels.setdefault(key, set()).add(value)
    return labels, strings


@pytest.fixture(scope="module")
def traced_pprof(srv, traced):
    trace, parent, req = traced
    r = srv.get_ok(srv.request_path(req["id"], "pprof"))
    labels, strings = pprof_labels(protoc_text(r.content))
    assert "sample {" in protoc_text(r.content)
    return labels, strings, req


def test_pprof_export_labels_samples_with_the_request_id(traced_pprof):
    labels, _, req = traced_pprof
    assert labels.get("request_id") == {req["id"]}, labels


def test_pprof_export_labels_samples_with_the_trace_id(traced_pprof, traced):
    # The issue: trace and parent ids "include them in JSON and as pprof labels".
    labels, strings, _ = traced_pprof
    trace, parent, _ = traced
    assert {trace} in [v for k, v in labels.items() if "trace" in k], (
        "no pprof label carries the trace id %s; labels: %r" % (trace, labels))
    assert {parent} in [v for k, v in labels.items() if "parent" in k or "span" in k], labels


# -- mod_unique_id ---------------------------------------------------------------------

def test_unique_id_is_recorded_as_the_app_saw_it(srv):
    tag = unique("uid")
    r = srv.get("/app3/env/%s?ms=250" % tag)
    seen = r.json()["unique_id"]
    assert seen, "mod_unique_id did not set UNIQUE_ID"
    [req] = srv.wait_kept(tag, 1)
    assert req["unique_id"] == seen, (req["unique_id"], seen)
    assert srv.request_detail(req["id"])["unique_id"] == seen
    page = srv.get_ok(srv.request_path(req["id"])).text
    assert re.search(r"<dt>UNIQUE_ID</dt><dd class=mono>%s</dd>" % re.escape(seen), page)


def test_sampling_does_not_change_the_unique_id_mod_unique_id_hands_out(srv):
    # UNIQUE_ID must be mod_unique_id's own id (the one it gives unsampled
    # requests: 27 characters in httpd 2.4), not replaced by mod_pyprof's.
    plain = [srv.get("/plain3/env/%s" % unique("u")).json()["unique_id"] for _ in range(3)]
    sampled = [srv.get("/app3/env/%s" % unique("u")) for _ in range(3)]
    assert all(plain)
    shape = {len(u) for u in plain}
    for r in sampled:
        uid = r.json()["unique_id"]
        assert len(uid) in shape, (
            "UNIQUE_ID on a sampled path is %r (%d chars, X-PyProf-Id %s); on an unsampled "
            "path mod_unique_id gives %r" % (uid, len(uid), r.headers.get("X-PyProf-Id"), plain))
