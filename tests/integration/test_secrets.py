"""Secrets a request carries never reach a page or an export.

The app reads a password from the query string, a session cookie, an
Authorization header and a form body, and runs SQL with the password as a
literal.  Every page and export mod_pyprof serves is then fetched and
searched for each planted secret (issue [6], Security).  A token in the
path is rewritten by PyProfRedactPath before it is stored, so no page or
export shows it either (issue [8])."""

import gzip
import http.client
import os
import uuid

import pytest

from conftest import REPO, unique
from views_util import serve

HERE = os.path.dirname(os.path.abspath(__file__))
# PyProfRedactPath: a password-reset token in the path, and a user id kept
# as a shape through a group reference.
REDACT = ('PyProfRedactPath "/reset/[^/]+" "/reset/*"\n'
          'PyProfRedactPath "^(/login/[^/]+/user/)[0-9]+" "$1{id}"')
SECRETS = {
    "query": "qs-S3CRET-4f1c",
    "cookie": "cookie-S3CRET-9a7b",
    "authorization": "bearer-S3CRET-2d6e",
    "body": "body-S3CRET-7c3a",
    "sql_number": "987654321",
}


@pytest.fixture(scope="module")
def srv(mpm, pyprof_module, module_servers):
    return serve(module_servers, "secrets",
                 "WSGIPythonPath %s\n"
                 "PyProfSample /login 5ms\n"
                 "PyProfSlowThreshold 100ms\n"
                 "PyProfHeaders On\n"
                 "%s\n" % (os.path.join(REPO, "pyext"), REDACT),
                 mounts=[("/login", os.path.join(HERE, "apps", "secrets_app.py"))],
                 mpm=mpm)


def every_page(srv, rid):
    base = "/server-profile"
    pages = [base, base + "?format=json", base + "/metrics",
             base + "/location?path=/login",
             base + "/location?path=/login&view=diff"]
    for fmt in ("json", "folded", "speedscope", "pprof"):
        pages.append(base + "/location?path=/login&format=" + fmt)
    for fmt in ("html", "json", "folded", "speedscope", "pprof"):
        pages.append(base + "/request/%s?format=%s" % (rid, fmt))
    for path in pages:
        r = srv.get(path)
        assert r.status_code == 200, (path, r.status_code)
        body = r.content
        if "format=pprof" in path:
            body = gzip.decompress(body)
        yield path, body


def test_no_planted_secret_appears_in_any_page_or_export(srv):
    tag = unique("login")
    r = srv.post("/login/%s?user=alice&pw=%s" % (tag, SECRETS["query"]),
                 data="password=%s" % SECRETS["body"],
                 headers={"Cookie": "session=%s" % SECRETS["cookie"],
                          "Authorization": "Bearer %s" % SECRETS["authorization"],
                          "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200
    rid = r.headers["X-PyProf-Id"]
    [kept] = srv.wait_kept(tag, 1)
    assert kept["id"] == rid
    detail = srv.request_detail(rid)
    # the request was really profiled, with its SQL
    sql = [s["detail"] for s in detail["segments"] if s["name"] == "SQL"]
    assert len(sql) == 3 and all("?" in s for s in sql[1:]), sql
    assert detail["samples"] > 0
    checked = 0
    for path, body in every_page(srv, rid):
        for what, secret in SECRETS.items():
            assert secret.encode() not in body, "%s leaks the %s secret" % (path, what)
        checked += 1
    assert checked >= 14


def all_outputs(srv, rid):
    return b"\n".join(body for _, body in every_page(srv, rid))


@pytest.mark.parametrize("sent,recorded", [
    ("/login/%(tag)s/reset/%(token)s", "/login/%(tag)s/reset/*"),
    ("/login/%(tag)s/reset/%(token)s/confirm", "/login/%(tag)s/reset/*/confirm"),
    # the rule sees the path as <Location> does: decoded, no dot segments
    ("/login/%(tag)s/res%%65t/%(token)s", "/login/%(tag)s/reset/*"),
    ("/login/%(tag)s/x/../reset/%(token)s", "/login/%(tag)s/reset/*"),
    ("/login/%(tag)s/user/%(token)s", "/login/%(tag)s/user/%%7bid%%7d"),
], ids=["token", "token-then-more", "encoded", "dot-segment", "group"])
def test_redacted_path_is_all_any_page_shows(srv, sent, recorded):
    tag = unique("redact")
    token = str(uuid.uuid4().int)[:18]     # digits: the "user" rule's too
    names = {"tag": tag, "token": token}
    # http.client sends the path exactly as written (requests would remove
    # the dot segment itself)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request("GET", sent % names)
        r = conn.getresponse()
        r.read()
    finally:
        conn.close()
    assert r.status == 200
    rid = r.getheader("X-PyProf-Id")
    [kept] = srv.wait_kept(tag, 1)
    assert kept["id"] == rid
    assert kept["uri"] == recorded % names, kept["uri"]
    body = all_outputs(srv, rid)
    assert token.encode() not in body, "the token is in a page or an export"
    assert (recorded % names).encode() in body


BAD_REDACT = [
    ('PyProfRedactPath "(" "*"', "not a regular expression"),
    ('PyProfRedactPath "^/a/([^/]+)" "/a/$2"', "uses $2"),
    ('PyProfRedactPath "^/a"', "PyProfRedactPath takes two arguments"),
]


@pytest.mark.parametrize("directive,why", BAD_REDACT, ids=["regex", "group", "one-argument"])
def test_configtest_rejects_bad_redaction(srv, directive, why):
    rc, out = srv.configtest("PyProfSample /login 5ms\n" + directive)
    assert rc != 0 and "Syntax OK" not in out, out
    assert why in out, out
