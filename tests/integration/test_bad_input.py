"""Hostile requests: URIs as long as Apache accepts (LimitRequestLine 8190),
raw UTF-8 cut by the store's URI limit, 90 request headers (LimitRequestFields
100), and over-limit requests Apache itself refuses.  Each must be served,
recorded where sampled (the URI truncated but valid), render on the pages,
and leave the server healthy: no crash, no slot left behind, and no
[error]-or-worse line in the error log but mod_wsgi's 404 for a path
longer than PATH_MAX (EXPECTED_LOG, matched exactly).

One server per MPM: /app and /app3 sampled every 10 ms, slow from 200 ms,
PyProfHeaders On, PyProfRecordQuery On (so a long query is recorded, cut).
"""


import pytest

from conftest import finished_request, raw_get, serving_app3, unique, wait_for

BAD_INPUT = """\
PyProfSample /app 10ms
PyProfSample /app3 10ms
PyProfSlowThreshold 200ms
PyProfHeaders On
PyProfRecordQuery On
"""

PATHMAX_TAG = "pathmax"

# mod_wsgi's 404 for a path longer than PATH_MAX (test_8kb_path_...), exactly.
EXPECTED_LOG = [
    r"\[wsgi:error\] \[pid \d+(?::tid \d+)?\] \[client 127\.0\.0\.1:\d+\] Target WSGI "
    r"script not found or unable to stat: /\S+/app\.py/slow/" + PATHMAX_TAG + r"[0-9a-f]{10}-(/a+)+$",
]

LIMIT_REQUEST_LINE = 8190        # Apache's default, request line without CRLF
URI_MAX = 511                    # the store keeps at most this many bytes (PP_URI_MAX - 1)


@pytest.fixture(scope="module")
def srv(mpm, pyprof_module):
    yield from serving_app3(name="bad-input", mpm=mpm, extra=BAD_INPUT,
                            allowed_log=EXPECTED_LOG)


def long_uri(prefix, total):
    """prefix + '/aaaa...' in 200-byte segments, exactly `total` bytes."""
    uri = prefix
    while len(uri) < total:
        uri += "/" + "a" * min(199, total - len(uri) - 1)
    return uri[:total]


def assert_healthy(srv):
    overview = srv.profile()                     # strict UTF-8 JSON
    assert srv.profile_html()
    store = overview["store"]
    assert store["slots_lost"] == 0 and store["slots_full"] == 0, store
    # nothing left in flight once every request has been answered
    assert wait_for(lambda: srv.profile()["inflight"] == [], 10), srv.profile()["inflight"]
    srv.get_ok("/app/fast")


# -- long URIs --------------------------------------------------------------------

def assert_recorded_truncated(srv, req, uri, tag):
    assert req["uri"].startswith(uri[:len(req["uri"]) - 8]), (req["uri"][:80], uri[:80])
    assert 100 <= len(req["uri"].encode()) <= URI_MAX, len(req["uri"])
    assert tag in req["uri"]
    page = srv.get_ok(srv.request_path(req["id"])).text
    assert tag in page
    srv.request_detail(req["id"])               # strict JSON
    srv.request_folded(req["id"])


def test_8kb_uri_is_served_and_recorded_truncated(srv):
    # Just under LimitRequestLine: "GET " + uri + " HTTP/1.1" <= 8190 bytes.
    # The bulk is in the query string (recorded here: PyProfRecordQuery On),
    # as a path this long exceeds PATH_MAX (see the next test).
    tag = unique("long")
    head = "/app/slow/%s?ms=250&pad=" % tag
    uri = head + "a" * (LIMIT_REQUEST_LINE - len("GET ") - len(" HTTP/1.1") - len(head) - 2)
    assert 8100 < len(uri) < LIMIT_REQUEST_LINE
    r = srv.get(uri)
    assert r.status_code == 200, r.status_code
    [req] = srv.wait_kept(tag, 1)
    assert req["id"] == r.headers["X-PyProf-Id"]
    assert_recorded_truncated(srv, req, uri, tag)
    assert tag in srv.profile_html()


def test_4kb_path_is_served_and_recorded_truncated(srv):
    tag = unique("path")
    uri = long_uri("/app/slow/%s-" % tag, 3900)     # the script's path + this < PATH_MAX
    r = srv.get(uri + "?ms=250")
    assert r.status_code == 200, r.status_code
    [req] = srv.wait_kept(tag, 1)
    assert_recorded_truncated(srv, req, uri, tag)


def test_8kb_path_answered_404_by_mod_wsgi_is_recorded(srv):
    # Longer than PATH_MAX: mod_wsgi cannot stat the script and answers 404
    # itself (the whitelisted "Target WSGI script not found" line).
    tag = PATHMAX_TAG + unique("")
    total = LIMIT_REQUEST_LINE - len("GET ") - len(" HTTP/1.1") - 10
    uri = long_uri("/app/slow/%s-" % tag, total)
    r = srv.get(uri)
    assert r.status_code == 404, r.status_code
    request_id = r.headers.get("X-PyProf-Id")
    assert request_id, "a sampled 404 without X-PyProf-Id"
    req = finished_request(srv, request_id)
    assert req["status"] == 404
    assert_recorded_truncated(srv, req, uri, tag)


def test_uri_over_limit_request_line_is_refused_by_apache_and_not_recorded(srv):
    tag = unique("toolong")
    uri = long_uri("/app/slow/%s-" % tag, LIMIT_REQUEST_LINE + 100)
    r = srv.get(uri)
    assert r.status_code == 414, r.status_code
    assert "X-PyProf-Id" not in r.headers
    assert srv.kept(tag) == []
    assert_healthy(srv)


@pytest.mark.parametrize("shift", [0, 1])
def test_raw_utf8_uri_cut_by_the_store_limit_stays_valid_utf8(srv, shift):
    # Raw two-byte characters (no percent-encoding) across the store's cut:
    # one of the two shifts makes the limit fall inside a character.
    tag = unique("utf8")
    target = ("/app/slow/%s-%s" % (tag, "x" * shift)).encode() + "é".encode() * 400 + b"?ms=250"
    status, _ = raw_get(srv, target)
    assert status == 200, status
    [req] = srv.wait_kept(tag, 1)              # profile() decodes strict UTF-8
    # the store's cut may split a character; the page shows U+FFFD for it
    assert len(req["uri"]) <= URI_MAX, len(req["uri"])
    assert "\ufffd" not in req["uri"][:-1], req["uri"]
    assert "é" in req["uri"] or "%C3%A9" in req["uri"].upper()
    srv.request_detail(req["id"])
    page = srv.get(srv.request_path(req["id"]))
    assert page.status_code == 200
    page.content.decode("utf-8")               # strict
    srv.profile_html()


def test_long_uri_on_an_unsampled_path_is_fine(srv):
    # under PATH_MAX: longer, Apache's core refuses to map it (AH00127, 403)
    r = srv.get(long_uri("/nowhere/%s-" % unique("unsampled"), 3900) + "?q=" + "b" * 4000)
    assert r.status_code == 404
    assert "X-PyProf-Id" not in r.headers


LONG_PAGE_ARGS = {
    # 200-byte segments under PATH_MAX: a longer segment or path makes
    # Apache's own directory walk answer 403 before any handler runs
    "request-id": long_uri("/server-profile/request/A", 3900),
    "request-id-escaped": "/server-profile/request/" + ("%41" * 60 + "/") * 20,
    "trace": "/server-profile/request?trace=" + "a" * 8000,
    "location-path": "/server-profile/location?path=/" + "a" * 8000,
    "overview-location": "/server-profile?location=/" + "a" * 8000,
}


@pytest.mark.parametrize("name", sorted(LONG_PAGE_ARGS))
def test_long_arguments_to_the_pages_are_rejected_cleanly(srv, name):
    path = LONG_PAGE_ARGS[name]
    r = srv.get(path)
    assert r.status_code in (400, 404), (path[:60], r.status_code)
    r.content.decode("utf-8")


# -- many headers -------------------------------------------------------------------

def test_ninety_headers_are_served_and_recorded(srv):
    tag = unique("headers")
    headers = {"X-Test-%02d" % i: "v%02d-" % i + "h" * 1000 for i in range(90)}
    r = srv.get("/app3/env/%s?ms=250" % tag, headers=headers)
    assert r.status_code == 200, r.status_code
    seen = r.json()
    assert seen["header_count"] >= 90, seen["header_count"]
    assert seen["http"]["HTTP_X_TEST_89"].startswith("v89-")
    [req] = srv.wait_kept(tag, 1)
    assert req["id"] == r.headers["X-PyProf-Id"]
    assert srv.get_ok(srv.request_path(req["id"])).text


def test_ninety_traceparent_headers_are_ignored_or_parsed_without_harm(srv):
    tag = unique("manytp")
    lines = [b"traceparent: 00-%032x-%016x-01" % (i + 1, i + 1) for i in range(45)]
    lines += [b"traceparent: garbage-%d" % i for i in range(45)]
    status, head = raw_get(srv, ("/app3/slow/%s?ms=250" % tag).encode(), lines)
    assert status == 200, head[:300]
    [req] = srv.wait_kept(tag, 1)
    # Apache folds repeated headers into one comma-separated value, which is
    # not a valid traceparent; at most the first one may be taken.
    assert req["trace_id"] in (None, "%032x" % 1), req["trace_id"]


def test_over_limit_request_fields_is_refused_by_apache(srv):
    tag = unique("fields")
    lines = [b"X-Test-%03d: v" % i for i in range(120)]
    status, _ = raw_get(srv, ("/app/slow/%s?ms=250" % tag).encode(), lines)
    assert status == 400, status
    assert srv.kept(tag) == []
    assert_healthy(srv)


def test_server_is_healthy_after_the_hostile_requests(srv):
    assert_healthy(srv)
