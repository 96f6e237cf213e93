"""PyProfHeaders: a sampled request's response carries X-PyProf-Id (resolvable
at /server-profile/request/ID once the request ended, even when it was fast)
and `Server-Timing: pyprof;dur=MS;desc="N samples"` (time to headers), on
200s, 404s and redirects from the app and on the 500 of an app exception.

Two servers per MPM: "headers-on" (PyProfHeaders On for the whole server,
Off again in <Location /app3/quiet>) and "headers-location" (the default Off,
On only in <Location /app3/x>).  /app3 is sampled, /app is not.
"""

import re

import pytest

from conftest import finished_request, serving_app3, unique

ON = """\
PyProfSample /app3 10ms
PyProfSlowThreshold 200ms
PyProfHeaders On
<Location /app3/quiet>
    PyProfHeaders Off
</Location>
"""

IN_LOCATION = """\
PyProfSample /app3 10ms
PyProfSlowThreshold 200ms
<Location /app3/x>
    PyProfHeaders On
</Location>
"""

SERVER_TIMING = re.compile(r'^pyprof;dur=(?P<dur>\d+(?:\.\d+)?);desc="(?P<n>\d+) samples"$')

# mod_wsgi logs the traceback of /app3/raise at [wsgi:error], one line each.
WSGI_LINE = r"\[wsgi:error\] \[pid \d+(?::tid \d+)?\] \[client 127\.0\.0\.1:\d+\] "
RAISE_TRACEBACK = [
    WSGI_LINE + r"mod_wsgi \(pid=\d+\): Exception occurred processing WSGI script '[^']*/app3\.py'\.$",
    WSGI_LINE + r"Traceback \(most recent call last\):$",
    WSGI_LINE + r'  File "[^"]*/app3\.py", line \d+, in (application|dispatch|view_raise)$',
    WSGI_LINE + r"    (return dispatch\(environ, start_response\)"
                r"|return view\(environ, params, start_response, parts\[1:\]\)"
                r"|raise PyProfTestError\(\"raised on purpose by /app3/raise\"\))$",
    WSGI_LINE + r" +\^+$",
    WSGI_LINE + r"\S*PyProfTestError: raised on purpose by /app3/raise$",
]


@pytest.fixture(scope="module")
def srv(mpm, pyprof_module):
    yield from serving_app3(name="headers-on", mpm=mpm, extra=ON,
                            allowed_log=RAISE_TRACEBACK)


@pytest.fixture(scope="module")
def loc_srv(mpm, pyprof_module):
    yield from serving_app3(name="headers-location", mpm=mpm, extra=IN_LOCATION)


def server_timing(response):
    """(dur_ms, samples) from the response's pyprof Server-Timing entry."""
    value = response.headers.get("Server-Timing")
    assert value is not None, "no Server-Timing: %r" % dict(response.headers)
    m = SERVER_TIMING.match(value)
    assert m, "Server-Timing %r is not pyprof;dur=MS;desc=\"N samples\"" % value
    return float(m.group("dur")), int(m.group("n"))


def pyprof_headers(response):
    return {k: v for k, v in response.headers.items()
            if k.lower() in ("x-pyprof-id", "server-timing")}


def resolved(srv, request_id):
    return finished_request(srv, request_id)


def assert_headers_resolve(srv, response, status, uri_prefix):
    assert response.status_code == status, (response.status_code, response.text[:300])
    request_id = response.headers.get("X-PyProf-Id")
    assert request_id, "no X-PyProf-Id on a %d: %r" % (status, dict(response.headers))
    dur, samples = server_timing(response)
    detail = resolved(srv, request_id)
    assert detail["id"] == request_id
    assert detail["status"] == status, detail
    assert detail["uri"].startswith(uri_prefix), detail["uri"]
    # Time to headers cannot exceed the whole request; samples only grow.
    assert 0 <= dur <= detail["duration_ms"] + 1, (dur, detail["duration_ms"])
    assert samples <= detail["samples"], (samples, detail["samples"])
    assert srv.get(srv.request_path(request_id)).status_code == 200
    return detail


# -- each status class --------------------------------------------------------

def test_200_carries_id_and_server_timing(srv):
    tag = unique("ok")
    r = srv.get("/app3/slow/%s?ms=250" % tag)
    detail = assert_headers_resolve(srv, r, 200, "/app3/slow/" + tag)
    assert detail["samples"] >= 5


def test_404_returned_by_the_app_carries_id_and_server_timing(srv):
    tag = unique("nf")
    r = srv.get("/app3/status/404/%s" % tag)
    assert r.text == "app says 404\n"       # the app's own 404, not Apache's
    assert_headers_resolve(srv, r, 404, "/app3/status/404/" + tag)


def test_500_from_an_app_exception_carries_id_and_server_timing(srv):
    tag = unique("boom")
    r = srv.get("/app3/raise/%s" % tag)
    assert_headers_resolve(srv, r, 500, "/app3/raise/" + tag)
    assert "PyProfTestError" in srv.error_log_text()


def test_302_returned_by_the_app_carries_id_and_server_timing(srv):
    tag = unique("redir")
    r = srv.get("/app3/redirect/%s" % tag, allow_redirects=False)
    assert r.headers.get("Location", "").endswith("/app3/fast")
    assert_headers_resolve(srv, r, 302, "/app3/redirect/" + tag)


def test_slow_error_and_redirect_responses_carry_headers_too(srv):
    # The same classes when the app took long enough to be sampled many times.
    tag = unique("slowerr")
    for path, status in (("/app3/status/404/%s?ms=250" % tag, 404),
                         ("/app3/redirect/%s?ms=250" % tag, 302)):
        r = srv.get(path, allow_redirects=False)
        detail = assert_headers_resolve(srv, r, status, path.split("?")[0])
        _, samples = server_timing(r)
        assert samples >= 5, "250 ms at 10 ms: %d samples at header time" % samples
        assert detail["samples"] >= samples


# -- what the headers say -------------------------------------------------------

def test_server_timing_dur_is_the_time_to_headers(srv):
    tag = unique("dur")
    r = srv.get("/app3/slow/%s?ms=300" % tag)
    dur, samples = server_timing(r)
    elapsed_ms = r.elapsed.total_seconds() * 1000.0   # request sent -> headers parsed
    assert dur >= 300, "the app slept 300 ms before its headers; dur=%s" % dur
    assert dur <= elapsed_ms + 2, "server time %s > client time %s" % (dur, elapsed_ms)
    assert elapsed_ms - dur <= max(50.0, 0.15 * elapsed_ms), (dur, elapsed_ms)
    # ~30 at 10 ms; fewer when a loaded machine delays the sampler's ticks
    assert 10 <= samples <= 40, "300 ms at 10 ms: %d samples at header time" % samples


def test_each_response_has_its_own_id(srv):
    tag = unique("ids")
    ids = [srv.get("/app3/fast/%s-%d" % (tag, i)).headers.get("X-PyProf-Id") for i in range(5)]
    assert all(ids) and len(set(ids)) == 5, ids
    # one Server-Timing entry per response, not one per filter call
    r = srv.get("/app3/fast/%s" % tag)
    assert r.headers["Server-Timing"].count("pyprof;") == 1, r.headers["Server-Timing"]


def test_fast_request_id_resolves_but_it_is_not_a_slow_request(srv):
    tag = unique("fast")
    r = srv.get("/app3/fast/%s" % tag)
    detail = assert_headers_resolve(srv, r, 200, "/app3/fast/" + tag)
    assert detail["duration_ms"] < 200, detail
    request_id = r.headers["X-PyProf-Id"]
    overview = srv.profile()
    assert request_id not in [q["id"] for q in overview["requests"]]
    assert not [q for q in overview["requests"] if tag in q["uri"]], overview["requests"]
    assert tag not in srv.profile_html()
    # ...and its own page says why it is there.
    page = srv.get_ok(srv.request_path(request_id)).text
    assert re.search(r"<span class=flag[^>]*>fast</span>", page), page[-3000:]


def test_slow_request_with_headers_is_listed_as_usual(srv):
    tag = unique("listed")
    r = srv.get("/app3/slow/%s?ms=250" % tag)
    [kept] = srv.wait_kept(tag, 1)
    assert kept["id"] == r.headers["X-PyProf-Id"]


# -- where the headers do not go ------------------------------------------------

def test_unsampled_paths_get_no_headers(srv):
    r = srv.get("/app/fast")                # /app is not a PyProfSample prefix
    assert r.status_code == 200
    assert pyprof_headers(r) == {}, pyprof_headers(r)
    r = srv.get("/server-profile")
    assert r.status_code == 200
    assert pyprof_headers(r) == {}, pyprof_headers(r)


def test_headers_off_in_a_location_turns_them_off_there(srv):
    tag = unique("quiet")
    r = srv.get("/app3/quiet/%s?ms=250" % tag)
    assert r.status_code == 200
    assert pyprof_headers(r) == {}
    assert len(srv.wait_kept(tag, 1)) == 1      # still sampled and kept


def test_headers_are_off_by_default(loc_srv):
    tag = unique("default")
    for path in ("/app3/fast/%s" % tag, "/app3/slow/%s?ms=250" % tag,
                 "/app3/status/404/%s" % tag):
        r = loc_srv.get(path)
        assert pyprof_headers(r) == {}, (path, pyprof_headers(r))
    # sampled all the same: the slow one is kept (the fast one may be too,
    # when it is a fresh child's first request and importing the app takes
    # longer than the threshold on a loaded machine)
    kept = loc_srv.wait_kept(tag, 1)
    assert len([r for r in kept if "/slow/" in r["uri"]]) == 1, kept


def test_headers_on_in_a_location_apply_only_there(loc_srv):
    tag = unique("inloc")
    inside = loc_srv.get("/app3/x/%s" % tag)
    assert inside.status_code == 200
    assert inside.headers.get("X-PyProf-Id"), dict(inside.headers)
    server_timing(inside)
    resolved(loc_srv, inside.headers["X-PyProf-Id"])
    for path in ("/app3/fast/%s" % tag, "/app3/y/%s" % tag, "/app/x/%s" % tag):
        r = loc_srv.get(path)
        assert r.status_code == 200, path
        assert pyprof_headers(r) == {}, (path, pyprof_headers(r))

