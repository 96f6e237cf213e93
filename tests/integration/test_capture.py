"""Captures (New Relic's X-Ray idea): a POST to /server-profile with the
page's nonce arms "keep the next N requests to PREFIX"; those N requests
are sampled at the trigger interval (1 ms by default) and kept however fast,
and the overview shows them with a histogram of just those N.  A wrong
nonce is a 400 and arms nothing; a GET never changes anything.

One server per MPM: /app and /app3 sampled every 10 ms, no PyProfTrigger,
PyProfHeaders Off (so a fast request is kept only if it was captured).
"""

import html
import re
import time
import urllib.parse

import pytest

from conftest import serving_app3, unique

CAPTURE = """\
PyProfSample /app 10ms
PyProfSample /app3 10ms
PyProfSlowThreshold 200ms
"""

NONCE = re.compile(r'<input type=hidden name=nonce value="([^"]*)">')
TAKEN = re.compile(r"<h3>(?P<path>[^<:]+): capture (?P<id>\d+), (?P<taken>\d+) of (?P<n>\d+) taken</h3>")
BAR = re.compile(r"<title>[^<]*: (\d+) requests \(click")


@pytest.fixture(scope="module")
def srv(mpm, pyprof_module):
    yield from serving_app3(name="capture", mpm=mpm, extra=CAPTURE)


def nonce_of(srv):
    page = srv.profile_html()
    m = NONCE.search(page)
    assert m, "no nonce field in the overview's capture form"
    return html.unescape(m.group(1))


def post_form(srv, **fields):
    """POST the fields urlencoded, leaving '/' unescaped (as curl --data
    does; a browser sends it as %2F: see test_form_as_a_browser_sends_it_arms)."""
    body = "&".join("%s=%s" % (k, urllib.parse.quote(v, safe="/")) for k, v in fields.items())
    return srv.post("/server-profile", data=body, allow_redirects=False,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})


def arm(srv, path, count):
    r = post_form(srv, action="capture", nonce=nonce_of(srv), path=path, count=str(count))
    assert r.status_code == 303, (r.status_code, r.text[:500])
    return r


def captures_section(page):
    start = page.find("<h2 id=captures>")
    assert start >= 0, "no captures section on the overview"
    end = page.find("<h2", start + 10)
    return page[start:end if end > 0 else len(page)]


def capture_headings(srv):
    """{path: (capture id, taken, n)} from the overview's captures section."""
    section = captures_section(srv.profile_html())
    return {m.group("path"): (int(m.group("id")), int(m.group("taken")), int(m.group("n")))
            for m in TAKEN.finditer(section)}


def tagged(srv, tag):
    return [q for q in srv.profile()["requests"] if tag in q["uri"]]


@pytest.fixture(scope="module")
def armed(srv):
    """Arm a capture of 5 requests to /app, then send 6 fast ones."""
    tag = unique("cap")
    response = arm(srv, "/app", 5)
    for i in range(6):
        srv.get_ok("/app/fast/%s-%d" % (tag, i))
    srv.wait_kept(tag, 5)
    time.sleep(0.3)        # a 6th, wrongly kept, would be logged by now
    return {"tag": tag, "response": response, "kept": srv.kept(tag)}


# -- the form -----------------------------------------------------------------------

def test_overview_has_a_capture_form_with_a_nonce(srv):
    section = captures_section(srv.profile_html())
    assert re.search(r'<form[^>]*method=post[^>]*action="/server-profile"', section), section[:800]
    assert '<input type=hidden name=action value=capture>' in section
    nonce = NONCE.search(section)
    assert nonce and len(nonce.group(1)) >= 16, nonce and nonce.group(1)
    assert '<option value="/app">' in section and '<option value="/app3">' in section
    assert nonce_of(srv) == nonce.group(1), "the nonce changes between page loads"


# -- arming ---------------------------------------------------------------------------

def test_arming_answers_303_to_the_captures_section(armed):
    r = armed["response"]
    assert r.status_code == 303
    location = r.headers.get("Location", "")
    assert re.search(r"(^|//[^/]+)/server-profile#captures$", location), location


def test_next_n_requests_are_kept_with_one_capture_id(armed):
    tag = armed["tag"]
    kept = {int(q["uri"].rsplit("-", 1)[1]): q for q in armed["kept"]}
    assert sorted(kept) == [0, 1, 2, 3, 4], sorted(kept)
    ids = {q["capture"] for q in kept.values()}
    assert len(ids) == 1 and ids.pop() > 0, [q.get("capture") for q in kept.values()]
    for q in kept.values():
        assert q["captured"] is True and q["triggered"] is False, q
        assert tag in q["uri"]
    # fast ones, kept only because captured (a child's first request may
    # pass the 200 ms threshold while it imports the app on a loaded
    # machine: still captured, which is what counts)
    fast = [q for q in kept.values() if q["duration_ms"] < 200]
    assert len(fast) >= 3, list(kept.values())


def test_request_after_the_capture_is_not_kept(armed):
    assert not [q for q in armed["kept"] if q["uri"].endswith("-5")], armed["kept"]


def test_captured_requests_are_sampled_at_the_trigger_interval(armed):
    for q in armed["kept"]:
        assert q["interval_ms"] == 1.0, q


def test_overview_shows_the_capture_and_a_histogram_of_its_requests(srv, armed):
    section = captures_section(srv.profile_html())
    m = [h for h in TAKEN.finditer(section) if h.group("path") == "/app"]
    assert m, section[:2000]
    heading = m[-1]
    capture_id = armed["kept"][0]["capture"]
    assert int(heading.group("id")) == capture_id
    assert (heading.group("taken"), heading.group("n")) == ("5", "5"), heading.group(0)
    body = section[heading.end():]
    body = body[:body.find("<h3>")] if "<h3>" in body else body
    for i in range(5):
        assert "%s-%d" % (armed["tag"], i) in body
    assert "%s-5" % armed["tag"] not in body
    assert "These 5 requests" in body
    svg = body[body.find("<svg class=hist"):body.find("</svg>")]
    assert svg, "no histogram for the capture"
    assert sum(int(n) for n in BAR.findall(svg)) == 5, svg[:1500]


def test_captured_request_page_is_flagged(srv, armed):
    q = armed["kept"][0]
    page = srv.get_ok(srv.request_path(q["id"])).text
    assert "<span class=flag>capture %d</span>" % q["capture"] in page


def test_capture_only_takes_requests_of_its_location(srv, armed):
    tag = unique("other")
    arm(srv, "/app", 1)
    srv.get_ok("/app3/fast/%s-other" % tag)        # another location
    srv.get_ok("/app/fast/%s-mine" % tag)
    kept = srv.wait_kept(tag, 1)
    time.sleep(0.3)
    kept = srv.kept(tag)
    # the capture took /app's request, not /app3's (which a busy machine
    # may make slow enough to be kept as slow, never as captured)
    captured = [q["uri"] for q in kept if q["captured"]]
    assert captured == ["/app/fast/%s-mine" % tag], kept
    assert capture_headings(srv)["/app"][1:] == (1, 1)


def test_form_as_a_browser_sends_it_arms_a_capture(srv, armed):
    # A browser submitting the overview's form encodes the <select>'s "/app"
    # as path=%2Fapp (application/x-www-form-urlencoded escapes '/').
    tag = unique("browser")
    body = urllib.parse.urlencode({"action": "capture", "nonce": nonce_of(srv),
                                   "count": "1", "path": "/app"})
    assert "path=%2Fapp" in body
    r = srv.post("/server-profile", data=body, allow_redirects=False,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 303, "browser-encoded form -> %d: %s" % (
        r.status_code, re.sub(r"(?s).*<main>|</main>.*", "", r.text)[:300])
    srv.get_ok("/app/fast/%s" % tag)
    assert len(srv.wait_kept(tag, 1)) == 1


# -- what does not arm ------------------------------------------------------------------

def assert_nothing_armed(srv, before):
    tag = unique("unarmed")
    for i in range(3):
        srv.get_ok("/app/fast/%s-%d" % (tag, i))
    time.sleep(0.3)
    assert tagged(srv, tag) == [], "fast requests were kept: something was armed"
    assert capture_headings(srv) == before


@pytest.mark.parametrize("nonce", ["0" * 32, "", "x"], ids=["zeros", "empty", "short"])
def test_wrong_nonce_is_400_and_arms_nothing(srv, nonce):
    before = capture_headings(srv)
    r = post_form(srv, action="capture", nonce=nonce, path="/app", count="5")
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert "nonce" in r.text
    assert_nothing_armed(srv, before)


def test_stale_nonce_from_a_mangled_page_is_400(srv):
    before = capture_headings(srv)
    real = nonce_of(srv)
    mangled = real[:-1] + ("0" if real[-1] != "0" else "1")
    r = post_form(srv, action="capture", nonce=mangled, path="/app", count="5")
    assert r.status_code == 400
    r = post_form(srv, action="capture", nonce=real + "0", path="/app", count="5")
    assert r.status_code == 400
    assert_nothing_armed(srv, before)


def test_missing_nonce_is_400_and_arms_nothing(srv):
    before = capture_headings(srv)
    r = post_form(srv, action="capture", path="/app", count="5")
    assert r.status_code == 400
    assert_nothing_armed(srv, before)


@pytest.mark.parametrize("field,value", [
    ("count", "0"), ("count", "1001"), ("count", "five"), ("count", "5x"),
    ("path", "/nowhere"), ("path", "/app/fast"), ("action", "clear"),
])
def test_bad_form_values_are_400_and_arm_nothing(srv, field, value):
    before = capture_headings(srv)
    fields = {"action": "capture", "nonce": nonce_of(srv), "path": "/app", "count": "5"}
    fields[field] = value
    r = post_form(srv, **fields)
    assert r.status_code == 400, (field, value, r.status_code)
    assert_nothing_armed(srv, before)


def test_get_with_the_form_arguments_changes_nothing(srv):
    before = capture_headings(srv)
    query = "action=capture&nonce=%s&path=/app&count=5" % nonce_of(srv)
    r = srv.get("/server-profile?" + query, allow_redirects=False)
    assert r.status_code == 200
    r = srv.get("/server-profile?format=json&" + query, allow_redirects=False)
    assert r.status_code == 200
    assert_nothing_armed(srv, before)
