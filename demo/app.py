"""Sample WSGI application for the mod_pyprof demo (`make demo`).

Pure standard library. Each endpoint does the kind of work a real view does,
through a few layers of ordinary functions, so the sampled stacks under
/server-profile look like something you would debug: a template-like render
that burns CPU, a database call that waits, both, and a search that scales
with its query. Durations are randomised so the per-location histograms have
some shape.

    /app/            index of the endpoints
    /app/fast        a few milliseconds
    /app/report      CPU-bound rendering, ~200-600 ms
    /app/slow-db     waits on a simulated query, ~150-700 ms
    /app/mixed       a query, then a render of its rows
    /app/search?q=   scores a small corpus; longer queries take longer
"""

import html
import json
import random
import time
from urllib.parse import parse_qs

ENDPOINTS = [
    ("/fast", "returns at once"),
    ("/report", "CPU-bound table rendering, 200-600 ms"),
    ("/slow-db", "waits on a simulated database query, 150-700 ms"),
    ("/mixed", "a query, then rendering of its rows"),
    ("/search?q=apache+python", "scores a corpus; longer queries are slower"),
]

WORDS = (
    "apache python wsgi request profile sample stack thread frame latency "
    "histogram module handler filter config server child worker event "
    "interpreter memory shared trace slow fast query render table row cell"
).split()


# --- "templates": CPU-bound rendering --------------------------------------

def format_cell(value):
    if isinstance(value, float):
        text = "{:,.2f}".format(value)
    else:
        text = str(value)
    # A little per-cell work, as escaping and filters do in a real template.
    text = html.escape(text.strip().title())
    return "<td>{}</td>".format(text)


# Plain loops rather than generator expressions, so the sampled stacks read
# render_table -> render_row -> format_cell without <genexpr> frames between.
def render_row(row):
    cells = []
    for value in row:
        cells.append(format_cell(value))
    return "<tr>" + "".join(cells) + "</tr>"


def render_table(rows):
    lines = []
    for row in rows:
        lines.append(render_row(row))
    return "<table>\n{}\n</table>".format("\n".join(lines))


def make_rows(count, rng):
    return [
        (i, rng.choice(WORDS), rng.random() * 10000, rng.choice(WORDS))
        for i in range(count)
    ]


def render_report(budget_s, rng):
    """Render tables until budget_s of CPU has gone, like a big report."""
    deadline = time.thread_time() + budget_s
    pages = []
    while time.thread_time() < deadline:
        pages.append(render_table(make_rows(200, rng)))
    return pages


# --- "database": time spent waiting ----------------------------------------

class OrderRepository:
    """Stands in for a database client: the time goes to waiting."""

    def __init__(self, rng):
        self.rng = rng

    def _execute(self, sql, wait_s):
        # The sleep is where a real driver would block on its socket.
        time.sleep(wait_s)
        return [(n, self.rng.choice(WORDS), self.rng.random() * 500,
                 self.rng.choice(WORDS)) for n in range(50)]

    def fetch_rows(self, customer, wait_s):
        sql = "SELECT id, item, total, state FROM orders WHERE customer = %s"
        return self._execute(sql, wait_s)


# --- search: cost grows with the query -------------------------------------

CORPUS = [
    " ".join(random.Random(seed).choice(WORDS) for _ in range(60))
    for seed in range(400)
]


def tokenize(text):
    return [word for word in text.lower().split() if word]


def score_document(terms, document):
    tokens = tokenize(document)
    score = 0
    for term in terms:
        for token in tokens:
            if token == term:
                score += 3
            elif token.startswith(term[:3]):
                score += 1
    return score


def run_search(query, rounds):
    terms = tokenize(query) or ["python"]
    results = []
    for _ in range(rounds):
        results = sorted(
            ((score_document(terms, doc), i) for i, doc in enumerate(CORPUS)),
            reverse=True,
        )
    return results[:10]


# --- views -----------------------------------------------------------------

def view_index(environ, rng):
    base = html.escape(environ.get("SCRIPT_NAME", ""))
    items = "\n".join(
        '<li><a href="{0}{1}">{0}{1}</a> — {2}</li>'.format(
            base, html.escape(path), html.escape(text))
        for path, text in ENDPOINTS
    )
    body = ("<!doctype html><title>mod_pyprof demo</title>"
            "<h1>mod_pyprof demo app</h1><ul>\n{}\n</ul>"
            '<p>Profile: <a href="/server-profile">/server-profile</a></p>'
            ).format(items)
    return "200 OK", "text/html; charset=utf-8", body


def view_fast(environ, rng):
    time.sleep(rng.uniform(0.001, 0.005))
    return "200 OK", "application/json", json.dumps({"ok": True})


def view_report(environ, rng):
    pages = render_report(rng.uniform(0.2, 0.6), rng)
    body = "<h1>Report</h1><p>{} pages</p>{}".format(len(pages), pages[-1])
    return "200 OK", "text/html; charset=utf-8", body


def view_slow_db(environ, rng):
    repo = OrderRepository(rng)
    rows = repo.fetch_rows("acme", rng.uniform(0.15, 0.7))
    return "200 OK", "application/json", json.dumps({"orders": len(rows)})


def view_mixed(environ, rng):
    repo = OrderRepository(rng)
    rows = repo.fetch_rows("acme", rng.uniform(0.1, 0.3))
    pages = render_report(rng.uniform(0.1, 0.3), rng)
    body = "{}<p>{} pages</p>".format(render_table(rows), len(pages))
    return "200 OK", "text/html; charset=utf-8", body


def view_search(environ, rng):
    query = parse_qs(environ.get("QUERY_STRING", "")).get("q", [""])[0]
    # Every term is scored against every token, so longer queries cost more;
    # the jitter in rounds keeps the histogram wide.
    rounds = rng.randint(10, 60)
    hits = run_search(query, rounds)
    return "200 OK", "application/json", json.dumps(
        {"query": query, "hits": [i for _, i in hits]})


ROUTES = {
    "": view_index,
    "/": view_index,
    "/fast": view_fast,
    "/report": view_report,
    "/slow-db": view_slow_db,
    "/mixed": view_mixed,
    "/search": view_search,
}


def application(environ, start_response):
    view = ROUTES.get(environ.get("PATH_INFO", ""))
    if view is None:
        status, ctype, body = "404 Not Found", "text/plain", "not found\n"
    else:
        status, ctype, body = view(environ, random.Random())
    data = body.encode("utf-8")
    start_response(status, [("Content-Type", ctype),
                            ("Content-Length", str(len(data)))])
    return [data]
