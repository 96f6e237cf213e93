"""Who may see /server-profile, whatever the rest of the configuration says.

The handler serves loopback clients only unless PyProfAccess opens it, so a
virtual host's `<Location /> Require all granted` (which replaces the
shipped conf's `Require local`: virtual-host sections merge later and
AuthMerging is Off) cannot expose the pages.  Apache's own Require still
applies on top.  A client on "another host" is a network namespace of the
test's own: a veth pair with addresses in 10.213.0.0/16 (only those), httpd
listening on the host-side address, the client run with `ip netns exec`.

Also here: the capture form refuses cross-site POSTs (Origin,
Sec-Fetch-Site) and its nonce is bound to the hour (the window logic is
unit-tested in test_store.c); every response of the handler carries the
page security headers; the capture redirect's Location is escaped; a Host
that names neither this server nor an IP address is refused (DNS
rebinding); configtest says what PyProfAccess accepts.
"""

import base64
import hashlib
import html
import json
import os
import random
import re
import subprocess
import urllib.parse

import pytest

from conftest import APACHE_MODULES, REPO, unique

SHIPPED_CONF = os.path.join(REPO, "conf", "pyprof.conf")
NONCE = re.compile(r'<input type=hidden name=nonce value="([^"]*)">')
TAKEN = re.compile(r"<h3>(?P<path>[^<:]+): capture (?P<id>\d+), (?P<taken>\d+) of (?P<n>\d+) taken</h3>")

AUTH_MODULES = "\n".join(
    "<IfModule !%s_module>\n    LoadModule %s_module \"%s/mod_%s.so\"\n</IfModule>"
    % (m, m, APACHE_MODULES, m)
    for m in ("authz_host", "authn_core", "authn_file", "auth_basic", "authz_user"))

CLIENT = r"""
import json, sys, urllib.request, urllib.error, base64
url, method, headers, data = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
req = urllib.request.Request(url, method=method, headers=headers,
                             data=data.encode() if data else None)
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None
try:
    r = urllib.request.build_opener(NoRedirect).open(req, timeout=15)
except urllib.error.HTTPError as e:
    r = e
print(json.dumps({"status": r.status if hasattr(r, "status") else r.code,
                  "headers": dict(r.headers.items()),
                  "body": r.read().decode("utf-8", "replace")}))
"""


# -- a client on another host: a network namespace -----------------------------

class NetNs:
    def __init__(self):
        tag = "%x" % random.getrandbits(24)
        self.name = "pyprof-acc-" + tag
        self.veth_host, self.veth_ns = "ppa%sh" % tag, "ppa%sn" % tag
        # a /30 of the test's own in 10.213.0.0/16, not in use on this host
        used = subprocess.run(["ip", "-4", "-o", "addr", "show"], stdout=subprocess.PIPE,
                              text=True).stdout
        while True:
            third, fourth = random.randrange(256), 4 * random.randrange(64)
            self.net = "10.213.%d.%d" % (third, fourth)
            self.host_ip = "10.213.%d.%d" % (third, fourth + 1)
            self.client_ip = "10.213.%d.%d" % (third, fourth + 2)
            if (" %s/" % self.host_ip) not in used and (" %s/" % self.client_ip) not in used:
                break

    def up(self):
        steps = [
            ["ip", "netns", "add", self.name],
            ["ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_ns],
            ["ip", "link", "set", self.veth_ns, "netns", self.name],
            ["ip", "addr", "add", self.host_ip + "/30", "dev", self.veth_host],
            ["ip", "link", "set", self.veth_host, "up"],
            ["ip", "netns", "exec", self.name, "ip", "addr", "add", self.client_ip + "/30",
             "dev", self.veth_ns],
            ["ip", "netns", "exec", self.name, "ip", "link", "set", self.veth_ns, "up"],
            ["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"],
        ]
        for cmd in steps:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if p.returncode != 0:
                return "%s: %s" % (" ".join(cmd), p.stdout.strip())
        return None

    def down(self):
        # deleting the namespace deletes its end of the pair and with it ours
        subprocess.run(["ip", "netns", "del", self.name], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "link", "del", self.veth_host], stderr=subprocess.DEVNULL)

    def request(self, url, method="GET", headers=None, data=""):
        p = subprocess.run(["ip", "netns", "exec", self.name, "/usr/bin/python3", "-c", CLIENT,
                            url, method, json.dumps(headers or {}), data],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        assert p.returncode == 0, p.stderr[-2000:]
        return json.loads(p.stdout)


@pytest.fixture(scope="module")
def netns():
    if subprocess.run(["ip", "netns", "list"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        pytest.skip("`ip netns` is unavailable (iproute2 missing or no CAP_SYS_ADMIN)")
    ns = NetNs()
    try:
        error = ns.up()
        if error:
            pytest.skip("cannot make a network namespace here: %s" % error)
        yield ns
    finally:
        ns.down()


# -- servers -------------------------------------------------------------------

# Ports on the host-side address: one block per MPM, since each MPM's
# servers live until the module's end
PORT_BASE = {"event": 8000, "worker": 8100, "prefork": 8200}


def ns_url(ns, srv, offset, path):
    return "http://%s:%d%s" % (ns.host_ip, srv.ns_port + offset, path)


def shipped_extra(ns, port):
    """The shipped conf/pyprof.conf included unchanged (server-level
    <Location /server-profile> with Require local), and the most common
    virtual host there is: everything granted under /."""
    return """\
{auth_modules}
Include "{shipped}"
PyProfSample /app 10ms
Listen {ip}:{port}
<VirtualHost {ip}:{port}>
    ServerName granted.test
    <Location />
        Require all granted
    </Location>
</VirtualHost>
""".format(auth_modules=AUTH_MODULES, shipped=SHIPPED_CONF, ip=ns.host_ip, port=port)


@pytest.fixture(scope="module")
def shipped(mpm, pyprof_module, module_servers, netns):
    srv = module_servers.create(name="access-shipped", mpm=mpm)
    srv.ns_port = PORT_BASE[mpm]
    srv.extra = shipped_extra(netns, srv.ns_port)
    srv.start()
    return srv


@pytest.fixture(scope="module")
def opened(mpm, pyprof_module, module_servers, netns):
    """Virtual hosts on ports of the host-side address: one opened to the
    namespace's network, one to authenticated users, one opened by
    PyProfAccess but still closed by Apache's Require local."""
    srv = module_servers.create(name="access-opened", mpm=mpm,
                                allowed_log=[r"AH01630: client denied by server configuration",
                                             r"AH01617: user admin: authentication failure"])
    srv.ns_port = PORT_BASE[mpm]
    htpasswd = os.path.join(srv.root, "htpasswd")
    with open(htpasswd, "w") as f:
        f.write("admin:{SHA}%s\n" % base64.b64encode(hashlib.sha1(b"s3cret-pass").digest()).decode())
    os.chmod(htpasswd, 0o644)
    srv.extra = """\
{auth_modules}
Include "{shipped}"
PyProfSample /app 10ms
Listen {ip}:{p1}
Listen {ip}:{p2}
Listen {ip}:{p3}
Listen {ip}:{p4}
<VirtualHost {ip}:{p1}>
    ServerName opened.test
    <Location />
        Require all granted
    </Location>
    <Location /server-profile>
        PyProfAccess {net}/30
    </Location>
</VirtualHost>
<VirtualHost {ip}:{p2}>
    ServerName auth.test
    <Location /server-profile>
        AuthType Basic
        AuthName pyprof
        AuthBasicProvider file
        AuthUserFile "{htpasswd}"
        Require valid-user
        PyProfAccess authenticated
    </Location>
</VirtualHost>
<VirtualHost {ip}:{p3}>
    ServerName require.test
    <Location /server-profile>
        PyProfAccess {net}/30
    </Location>
</VirtualHost>
<VirtualHost {ip}:{p4}>
    ServerName no-auth.test
    <Location />
        Require all granted
    </Location>
    <Location /server-profile>
        PyProfAccess authenticated
    </Location>
</VirtualHost>
""".format(auth_modules=AUTH_MODULES, shipped=SHIPPED_CONF, ip=netns.host_ip,
           net=netns.net, htpasswd=htpasswd,
           **{"p%d" % k: srv.ns_port + k for k in range(1, 5)})
    srv.start()
    return srv


ROUTES = [
    ("GET", "/server-profile"),
    ("GET", "/server-profile?format=json"),
    ("GET", "/server-profile/request/no-such-id"),
    ("GET", "/server-profile/request?trace=0123456789abcdef0123456789abcdef"),
    ("GET", "/server-profile/location?path=/app"),
    ("GET", "/server-profile/location?path=/app&format=folded"),
    ("GET", "/server-profile/metrics"),
    ("GET", "/server-profile/pprof?path=/app&seconds=1"),
    ("HEAD", "/server-profile"),
    ("POST", "/server-profile"),
    ("PUT", "/server-profile"),
]


# -- the handler's own access rule ----------------------------------------------

def test_shipped_conf_with_vhost_grant_refuses_another_host(shipped, netns):
    """The reported bug: the shipped conf included unchanged plus a virtual
    host's `<Location /> Require all granted` gave a client on another host
    the whole page (200).  Now the handler itself refuses it."""
    r = netns.request(ns_url(netns, shipped, 0, "/server-profile"))
    assert r["status"] == 403, (r["status"], r["body"][:300])
    assert "loopback clients only" in r["body"], r["body"]
    assert "PyProfAccess" in r["body"], r["body"]
    assert "<table" not in r["body"]


@pytest.mark.parametrize("method,path", ROUTES, ids=["%s %s" % r for r in ROUTES])
def test_shipped_conf_with_vhost_grant_refuses_every_route(shipped, netns, method, path):
    r = netns.request(ns_url(netns, shipped, 0, path), method=method,
                      data="action=capture" if method == "POST" else "")
    assert r["status"] == 403, (method, path, r["status"], r["body"][:300])
    if method != "HEAD":
        assert r["body"].startswith("403 Forbidden: "), r["body"][:300]
    assert r["headers"].get("X-Frame-Options") == "DENY"


def test_shipped_conf_serves_the_loopback_client(shipped):
    r = shipped.get("/server-profile")
    assert r.status_code == 200, r.text[:300]
    assert "<h2 id=captures>" in r.text


def test_access_opened_to_the_namespace_network_serves_it(opened, netns):
    for path in ("/server-profile", "/server-profile/metrics",
                 "/server-profile?format=json"):
        r = netns.request(ns_url(netns, opened, 1, path))
        assert r["status"] == 200, (path, r["status"], r["body"][:300])
    assert "pyprof_dropped_total" in netns.request(
        ns_url(netns, opened, 1, "/server-profile/metrics"))["body"]


def test_access_authenticated_serves_a_logged_in_user(opened, netns):
    url = ns_url(netns, opened, 2, "/server-profile")
    assert netns.request(url)["status"] == 401  # Apache's Require valid-user
    wrong = "Basic " + base64.b64encode(b"admin:wrong").decode()
    assert netns.request(url, headers={"Authorization": wrong})["status"] == 401
    good = "Basic " + base64.b64encode(b"admin:s3cret-pass").decode()
    r = netns.request(url, headers={"Authorization": good})
    assert r["status"] == 200, (r["status"], r["body"][:300])


def test_access_authenticated_without_authentication_is_refused(opened, netns):
    """PyProfAccess authenticated where nothing authenticates (Require all
    granted, no Require valid-user): no user is ever set, so 403."""
    r = netns.request(ns_url(netns, opened, 4, "/server-profile"))
    assert r["status"] == 403, (r["status"], r["body"][:300])
    assert "not among those PyProfAccess allows" in r["body"]


def test_apache_require_still_applies_on_top(opened, netns):
    """PyProfAccess opens the handler to the namespace's network, but the
    shipped conf's Require local (not overridden in this virtual host)
    still refuses it: PyProfAccess never grants what Apache denies."""
    r = netns.request(ns_url(netns, opened, 3, "/server-profile"))
    assert r["status"] == 403
    assert not r["body"].startswith("403 Forbidden: "), "refused by the handler, not by Require"


# -- DNS rebinding ------------------------------------------------------------

@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example"])
def test_loopback_client_with_a_foreign_host_header_is_refused(capture_srv, host):
    r = capture_srv.get("/server-profile", headers={"Host": host})
    assert r.status_code == 403, (host, r.status_code)
    assert "DNS rebinding" in r.text


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "[::1]"])
def test_loopback_client_with_a_local_host_header_is_served(capture_srv, host):
    r = capture_srv.get("/server-profile", headers={"Host": "%s:%d" % (host, capture_srv.port)})
    assert r.status_code == 200, (host, r.status_code, r.text[:300])


# -- security headers on every response ----------------------------------------

def flame_script_hash(page):
    m = re.search(r"<script>(.*?)</script>", page, re.S)
    assert m, "no script on the request page"
    return "'sha256-%s'" % base64.b64encode(hashlib.sha256(m.group(1).encode()).digest()).decode()


@pytest.mark.parametrize("method,path", ROUTES, ids=["%s %s" % r for r in ROUTES])
def test_every_route_sends_the_security_headers(capture_srv, method, path):
    import requests
    r = requests.request(method, capture_srv.url(path), allow_redirects=False, timeout=30,
                         data="action=capture" if method == "POST" else None)
    h = r.headers
    csp = h.get("Content-Security-Policy", "")
    for directive in ("default-src 'none'", "frame-ancestors 'none'", "form-action 'self'",
                      "script-src 'sha256-"):
        assert directive in csp, (method, path, r.status_code, csp)
    assert h.get("X-Frame-Options") == "DENY", (method, path, r.status_code)
    assert h.get("X-Content-Type-Options") == "nosniff", (method, path, r.status_code)
    assert h.get("Referrer-Policy") == "no-referrer", (method, path, r.status_code)
    assert h.get("Cache-Control") == "no-store", (method, path, r.status_code)


def test_csp_allows_exactly_the_request_page_script(capture_srv):
    tag = unique("csp")
    capture_srv.get_ok("/app/slow/%s?ms=600" % tag)
    kept = capture_srv.wait_kept(tag, 1)
    r = capture_srv.get_ok(capture_srv.request_path(kept[0]["id"]))
    csp = r.headers["Content-Security-Policy"]
    assert "script-src %s;" % flame_script_hash(r.text) in csp, csp


# -- the capture form: cross-site POSTs, the nonce ----------------------------

def nonce_of(srv):
    m = NONCE.search(srv.get_ok("/server-profile").text)
    assert m, "no nonce field in the capture form"
    return html.unescape(m.group(1))


def post_capture(srv, path="/server-profile", nonce=None, count=3, headers=None):
    body = "action=capture&nonce=%s&path=%%2Fapp&count=%d" % (
        urllib.parse.quote(nonce if nonce is not None else nonce_of(srv)), count)
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    h.update(headers or {})
    return srv.post(path, data=body, headers=h, allow_redirects=False)


def captures(srv):
    page = srv.get_ok("/server-profile").text
    return [(m.group("path"), int(m.group("n"))) for m in TAKEN.finditer(page)]


@pytest.fixture(scope="module")
def capture_srv(mpm, pyprof_module, module_servers):
    return module_servers.start(name="access-capture", mpm=mpm,
                                extra="PyProfSample /app 10ms\n")


_counts = iter(range(11, 1000))


CROSS_SITE = [
    {"Origin": "http://evil.example"},
    {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
]


@pytest.mark.parametrize("headers", CROSS_SITE, ids=lambda h: ",".join("%s=%s" % i for i in h.items()))
def test_cross_site_post_with_a_valid_nonce_is_refused_and_arms_nothing(capture_srv, headers):
    before = captures(capture_srv)
    r = post_capture(capture_srv, headers=headers, count=next(_counts))
    assert r.status_code == 403, (headers, r.status_code, r.text[:300])
    assert "posted from this server's own page" in html.unescape(r.text)
    assert captures(capture_srv) == before


def test_post_from_another_port_of_the_same_host_is_refused(capture_srv):
    before = captures(capture_srv)
    r = post_capture(capture_srv, headers={"Origin": "http://127.0.0.1:%d" % (capture_srv.port + 1)},
                     count=next(_counts))
    assert r.status_code == 403
    assert captures(capture_srv) == before


@pytest.mark.parametrize("headers", [
    {"Origin": "http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"},
    {"Origin": "http://127.0.0.1:{port}"},
    {},  # no browser (curl): the nonce alone
], ids=["browser", "origin-only", "no-origin"])
def test_same_origin_post_arms_the_capture(capture_srv, headers):
    headers = {k: v.format(port=capture_srv.port) for k, v in headers.items()}
    n = next(_counts)
    r = post_capture(capture_srv, headers=headers, count=n)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    assert ("/app", n) in captures(capture_srv)


def test_a_made_up_nonce_is_refused(capture_srv):
    before = captures(capture_srv)
    r = post_capture(capture_srv, nonce="0" * 64, count=next(_counts))
    assert r.status_code == 400
    assert "nonce" in r.text
    assert captures(capture_srv) == before


def test_the_nonce_is_an_hourly_hmac_not_the_old_store_value(capture_srv):
    """64 hex digits (HMAC-SHA256 of the hour); that a nonce of an older
    hour is refused is pinned by test_store.c (the clock is not ours to
    move here)."""
    assert re.fullmatch(r"[0-9a-f]{64}", nonce_of(capture_srv))


# -- the capture redirect's Location --------------------------------------------

@pytest.mark.parametrize("suffix,raw", [
    ("/%0D%0ASet-Cookie:%20pwned=1", "\r\n"),
    ("/a%22b%3Cc%3E", '"'),
])
def test_capture_redirect_location_is_escaped(capture_srv, suffix, raw):
    """The handler's base URL comes from the decoded r->uri: a CR LF or a
    quote in the path must not reach the Location header as it is (httpd
    answered 500 to the CR LF, and a quote lands raw in the header)."""
    r = post_capture(capture_srv, path="/server-profile" + suffix)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    loc = r.headers["Location"]
    assert raw not in loc and "\n" not in loc and "<" not in loc, repr(loc)
    assert "Set-Cookie" not in r.headers
    assert loc.endswith("#captures"), loc
    assert urllib.parse.unquote(loc.split("#")[0]) == urllib.parse.unquote("/server-profile" + suffix)


# -- configuration -----------------------------------------------------------

@pytest.fixture(scope="module")
def cfg(module_servers, pyprof_module):
    return module_servers.create(name="access-configtest", mpm="event")


BAD_ACCESS = [
    ("PyProfAccess example.com", "example.com"),
    ("PyProfAccess 10.0.0.300", "10.0.0.300"),
    ("PyProfAccess 10.0.0.0/33", "10.0.0.0/33"),
    ("PyProfAccess localhost", "localhost"),
    ("PyProfAccess any local", "cannot be combined"),
    ("PyProfAccess", "PyProfAccess"),
]


@pytest.mark.parametrize("line,says", BAD_ACCESS, ids=[b[0] for b in BAD_ACCESS])
def test_configtest_rejects_bad_access_saying_what_is_accepted(cfg, line, says):
    rc, out = cfg.configtest(line)
    assert rc != 0 and "Syntax OK" not in out, out
    message = out.split("Syntax error", 1)[-1]
    assert "PyProfAccess" in message, out
    if "combined" not in says and line != "PyProfAccess":
        assert "local" in message and "authenticated" in message and "192.0.2.0/24" in message, out
    assert says in message, out


@pytest.mark.parametrize("conf", [
    "PyProfAccess local",
    "PyProfAccess any",
    "PyProfAccess local 192.0.2.0/24 2001:db8::/32 10.1 authenticated",
    "<Location /server-profile>\n    PyProfAccess 192.0.2.7\n    PyProfAccess Authenticated\n</Location>",
])
def test_configtest_accepts_access(cfg, conf):
    rc, out = cfg.configtest(conf)
    assert rc == 0 and "Syntax OK" in out, out
