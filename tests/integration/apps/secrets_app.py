"""A WSGI app that handles secrets the way real apps do: it reads the
query string, cookies, the Authorization header and the body, and runs an
SQL query with a secret literal through pyprof.instrument_dbapi.  Used by
test_secrets.py to prove none of them reaches a page or an export."""

import sqlite3
import time

import pyprof

pyprof.instrument_dbapi(sqlite3)


def handle_login(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    token = environ.get("HTTP_AUTHORIZATION", "")
    cookie = environ.get("HTTP_COOKIE", "")
    query = environ.get("QUERY_STRING", "")
    secret = query.split("pw=")[-1] if "pw=" in query else "none"
    db = sqlite3.connect(":memory:")
    with pyprof.segment("auth", detail="user lookup"):
        cur = db.cursor()
        cur.execute("CREATE TABLE users (name TEXT, pw TEXT, pin INTEGER)")
        cur.execute("INSERT INTO users VALUES ('alice', '%s', 987654321)" % secret)
        cur.execute("SELECT name FROM users WHERE pw = '%s' AND pin = 987654321" % secret)
        cur.fetchall()
    time.sleep(0.25)   # slow enough to be kept
    return len(body) + len(token) + len(cookie)


def application(environ, start_response):
    n = handle_login(environ)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(n).encode()]
