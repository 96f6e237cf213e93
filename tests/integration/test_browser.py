"""The pages in a real browser: headless Debian chromium loads the overview
and a request detail from the test httpd; the tests assert on the DOM after
the pages' scripts ran (--dump-dom), on the console (no script errors), on
the flame graph's click-to-zoom and search, and save screenshots under the
test's temporary directory.

One server (first selected MPM): /app sampled every 10 ms, requests of
200 ms or more kept.  Skipped only when /usr/bin/chromium is absent.
"""

import html.parser
import os
import re
import shutil
import subprocess

import pytest

from conftest import unique
from views_util import CHROMIUM, serve, settle

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="Debian package chromium not installed "
                                       "(%s missing)" % CHROMIUM)

EXTRA = """\
PyProfSample /app 10ms
PyProfSlowThreshold 200ms
"""

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--enable-logging=stderr", "--v=0"]
BROWSER_TIMEOUT = 90


@pytest.fixture(scope="module")
def srv(pyprof_module, module_servers):
    return serve(module_servers, "browser", EXTRA)


@pytest.fixture(scope="module")
def pages(srv):
    tag = unique("browser")
    srv.pids_serving(want=2)
    for i in range(5):
        srv.get_ok("/app/fast/%s-%d" % (tag, i))
    srv.get_ok("/app/slow/%s-s?ms=250" % tag)
    srv.get_ok("/app/mixed/%s-m?cpu=300&sleep=300&pre=30" % tag)
    kept = srv.wait_kept(tag, 2)
    assert len(kept) == 2
    settle(srv, "/app")
    mixed = [r for r in kept if "-m" in r["uri"]][0]
    return {"tag": tag, "kept": kept, "overview": srv.url("/server-profile"),
            "detail": srv.url(srv.request_path(mixed["id"]))}


def chromium(tmp_path, *args):
    """Run headless chromium with a new profile directory; (stdout, console lines)."""
    profile = tmp_path / ("profile-%d" % len(list(tmp_path.glob("profile-*"))))
    proc = subprocess.run([CHROMIUM] + FLAGS + ["--user-data-dir=%s" % profile] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=BROWSER_TIMEOUT, cwd=str(tmp_path))
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, "chromium rc %d:\n%s" % (proc.returncode, err[-3000:])
    shutil.rmtree(profile, ignore_errors=True)
    console = [l for l in err.splitlines() if ":CONSOLE" in l]
    return proc.stdout.decode("utf-8"), console


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children, self.text = [], []

    @property
    def classes(self):
        return (self.attrs.get("class") or "").split()

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()

    def find(self, tag=None, cls=None, **attrs):
        return [n for n in self.walk()
                if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def all_text(self):
        return "".join(self.text) + "".join(c.all_text() for c in self.children)


VOID = {"meta", "input", "br", "img", "link", "hr", "col", "source", "wbr"}


class DomParser(html.parser.HTMLParser):
    """Enough of a DOM for assertions on chromium's serialised DOM."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        node = self.cur
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.cur = node.parent

    def handle_data(self, data):
        self.cur.text.append(data)


def dom(text):
    p = DomParser()
    p.feed(text)
    p.close()
    return p.root


def no_script_errors(console):
    errors = [l for l in console if "Uncaught" in l or "Error" in l]
    assert not errors, "script errors on the page:\n" + "\n".join(errors)


# -- overview -----------------------------------------------------------------

def test_overview_dom_has_histogram_bars_and_slow_rows(tmp_path, pages):
    text, console = chromium(tmp_path, "--dump-dom", pages["overview"])
    no_script_errors(console)
    doc = dom(text)
    hists = doc.find("svg", cls="hist")
    assert hists, "no histogram svg"
    bars = [r for h in hists for r in h.find("rect", cls="b")]
    assert len(bars) >= 2, "histogram bars: %d" % len(bars)
    for bar in bars:
        assert bar.parent.tag == "a" and bar.parent.attrs["href"].startswith("?location="), \
            bar.parent.attrs
        assert float(bar.attrs["height"]) >= 2
    slow = doc.find("h2", id="slow")
    assert slow, "no slow-requests heading"
    rows = [tr for tr in doc.find("tr")
            if any(pages["tag"] in td.all_text() for td in tr.find("td", cls="uri"))]
    assert len(rows) == 2, [r.all_text() for r in rows]
    for tr in rows:
        links = [a.attrs["href"] for a in tr.find("a") if "/request/" in a.attrs.get("href", "")]
        assert len(links) == 1, links
    assert doc.find("a", href="/server-profile/location?path=%2Fapp")


def test_overview_screenshot(tmp_path, pages):
    shot = tmp_path / "overview.png"
    _, console = chromium(tmp_path, "--screenshot=%s" % shot, "--window-size=1300,1000",
                          "--hide-scrollbars", pages["overview"])
    no_script_errors(console)
    assert shot.exists(), "no screenshot written"
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1300, 1000), (width, height)
    assert len(data) > 20000, "screenshot suspiciously small: %d bytes" % len(data)


# -- request detail -----------------------------------------------------------

def test_detail_dom_has_flame_graph_hot_table_and_tree(tmp_path, pages):
    text, console = chromium(tmp_path, "--dump-dom", pages["detail"])
    no_script_errors(console)
    doc = dom(text)
    [flame] = doc.find("svg", cls="flame")
    frames = flame.find("g", cls="f")
    names = {g.attrs["data-n"] for g in frames}
    assert {"application", "view_mixed", "burn_cpu", "sleep_for"} <= names, names
    for g in frames:
        rect = g.find("rect")
        assert rect and float(rect[0].attrs["width"]) > 0
    [hot] = doc.find("table", cls="hot")
    hot_names = {td.all_text() for td in hot.find("td", cls="fn")}
    assert {"burn_cpu", "sleep_for"} <= hot_names, hot_names
    [tree] = doc.find("div", cls="tree")
    assert len(tree.find("details")) >= 3
    assert {"burn_cpu", "sleep_for"} <= {s.all_text() for s in tree.find("span", cls="fn")}


def test_detail_screenshot(tmp_path, pages):
    shot = tmp_path / "detail.png"
    _, console = chromium(tmp_path, "--screenshot=%s" % shot, "--window-size=1300,1000",
                          "--hide-scrollbars", pages["detail"])
    no_script_errors(console)
    assert shot.exists() and len(shot.read_bytes()) > 20000


DRIVER = """
<script>
(function(){
  var out = [];
  var gs = [].slice.call(document.querySelectorAll('svg.flame g.f'));
  var burn = gs.filter(function(g){ return g.getAttribute('data-n') === 'burn_cpu'; })[0];
  var sleep = gs.filter(function(g){ return g.getAttribute('data-n') === 'sleep_for'
      && g.getAttribute('data-d') === burn.getAttribute('data-d'); })[0];
  burn.dispatchEvent(new MouseEvent('click', {bubbles: true}));
  var r = burn.querySelector('rect');
  out.push('zoom-width=' + r.getAttribute('width'));
  out.push('zoom-x=' + r.getAttribute('x'));
  out.push('sibling-hidden=' + (sleep ? sleep.style.display : 'none'));
  document.getElementById('flame-reset').click();
  out.push('reset-width=' + burn.querySelector('rect').getAttribute('width'));
  out.push('reset-shown=' + (sleep ? sleep.style.display : ''));
  var q = document.getElementById('flame-search');
  q.value = 'burn_c';
  q.dispatchEvent(new Event('input'));
  out.push('hits=' + document.querySelectorAll('svg.flame g.hit').length);
  out.push('match=' + document.getElementById('flame-match').textContent);
  var pre = document.createElement('pre');
  pre.id = 'driver-result';
  pre.textContent = out.join('\\n');
  document.body.appendChild(pre);
})();
</script>
"""


def test_flame_graph_zooms_on_click_and_searches(tmp_path, pages, srv):
    """The page's own inline script, driven in the browser: a click on
    burn_cpu zooms it to the full width and hides its siblings, Reset zoom
    restores it, and a search highlights the matching frames."""
    import requests
    page = requests.get(pages["detail"], timeout=15).text
    assert "</body>" in page
    local = tmp_path / "detail-driven.html"
    local.write_text(page.replace("</body>", DRIVER + "</body>"), encoding="utf-8")
    text, console = chromium(tmp_path, "--dump-dom", "file://%s" % local)
    no_script_errors(console)
    [pre] = dom(text).find("pre", id="driver-result")
    result = dict(line.split("=", 1) for line in pre.all_text().splitlines())
    assert float(result["zoom-width"]) == pytest.approx(1200, abs=0.01), result
    assert float(result["zoom-x"]) == pytest.approx(0, abs=0.01), result
    assert result["sibling-hidden"] == "none", result
    assert float(result["reset-width"]) < 1200, result
    assert result["reset-shown"] == "", result
    assert int(result["hits"]) >= 1, result
    assert re.match(r"matched \d+(\.\d)?%$", result["match"]), result


@pytest.mark.parametrize("page", ["overview", "detail"])
def test_pages_run_under_their_content_security_policy(tmp_path, pages, page):
    """Served over HTTP, with the handler's Content-Security-Policy, the
    page's inline script and styles are allowed: chromium reports every
    blocked script or style on its console ("Refused to execute inline
    script because it violates the following Content Security Policy
    directive"), and none is reported.  (The zoom test above loads a saved
    copy from file://, where no policy applies.)"""
    import requests
    csp = requests.get(pages[page], timeout=15).headers.get("Content-Security-Policy", "")
    assert "script-src 'sha256-" in csp, csp
    _, console = chromium(tmp_path, "--dump-dom", pages[page])
    refused = [l for l in console if "Content Security Policy" in l or "Refused to" in l]
    assert not refused, "the page breaks its own policy:\n" + "\n".join(refused)
