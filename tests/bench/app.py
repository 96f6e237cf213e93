"""WSGI application for the mod_pyprof overhead benchmark (tests/bench/overhead.py).

The views stand in for a typical server-rendered page: lots of small Python
function calls, which is exactly where a profiler that hooks calls
(cProfile) hurts most and where a sampler should cost next to nothing.

    /app/render              a 50-row HTML table; each row costs ~300 small
                             Python calls (render_row -> render_cell ->
                             format_cell -> format_number/escape ...)
    /app/render_sleep        the same, then time.sleep(0.002) (GIL released)
    /app/cpu?ms=N            pure-Python busy loop for N ms of thread CPU
    /app/deep?depth=D&ms=N   recurse D Python frames deep, then the busy loop
    /app/version             Python and mod_wsgi versions of the embedded
                             interpreter (for the results header)
    /app/ping                returns at once

It must stay importable by the Python that mod_wsgi embeds (Debian's 3.11)
and never writes to stderr.
"""

import sys
import time
from urllib.parse import parse_qs

ROWS = 50
COLUMNS = 30          # ~10 calls a cell + the row's own: ~300 calls a row
MAX_MS = 10000
MAX_DEPTH = 500

_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"))


# -- the template-like rendering ------------------------------------------------

def escape(text):
    for raw, entity in _ESCAPES:
        if raw in text:
            text = text.replace(raw, entity)
    return text


def format_number(value):
    if value < 0:
        return "-" + format_number(-value)
    return "{:,}".format(value)


def format_text(value):
    return escape(str(value))


def css_class(column, value):
    if column == 0:
        return "id"
    return "odd" if value & 1 else "even"


def cell_value(row_index, column):
    return (row_index * 31 + column * 17) % 10007 - 97


def format_cell(row_index, column):
    value = cell_value(row_index, column)
    if column % 3 == 0:
        text = format_number(value)
    else:
        text = format_text("<v%d & %d>" % (column, value))
    return text, css_class(column, value)


def attr(name, value):
    return ' %s="%s"' % (name, escape(value))


def open_tag(name, cls):
    return "<%s%s>" % (name, attr("class", cls))


def close_tag(name):
    return "</%s>" % name


def render_cell(row_index, column):
    text, cls = format_cell(row_index, column)
    return open_tag("td", cls) + text + close_tag("td")


def render_row(row_index):
    parts = [open_tag("tr", css_class(row_index, row_index))]
    for column in range(COLUMNS):
        parts.append(render_cell(row_index, column))
    parts.append(close_tag("tr"))
    return "".join(parts)


def render_table(rows=ROWS):
    out = [open_tag("table", "report")]
    for row_index in range(rows):
        out.append(render_row(row_index))
    out.append(close_tag("table"))
    return "\n".join(out)


# -- CPU-bound views for the sample-rate part -------------------------------

def burn_cpu(ms):
    """Spin in Python bytecode until this thread has used `ms` of CPU."""
    deadline = time.thread_time() + ms / 1000.0
    spins = 0
    while time.thread_time() < deadline:
        spins += 1
        spins = (spins * 7 + 3) % 1000003
    return spins


def recurse(depth, ms):
    if depth <= 1:
        return burn_cpu(ms)
    return recurse(depth - 1, ms)


def _int(params, name, default, limit):
    try:
        value = int(params.get(name, [default])[0])
    except ValueError:
        value = default
    return max(0, min(value, limit))


# -- views ------------------------------------------------------------------

def view_render(params):
    return render_table()


def view_render_sleep(params):
    page = render_table()
    time.sleep(0.002)
    return page


def view_cpu(params):
    ms = _int(params, "ms", 100, MAX_MS)
    burn_cpu(ms)
    return "burned %d ms\n" % ms


def view_deep(params):
    depth = _int(params, "depth", 30, MAX_DEPTH)
    ms = _int(params, "ms", 100, MAX_MS)
    recurse(depth, ms)
    return "burned %d ms at depth %d\n" % (ms, depth)


def view_version(params):
    try:
        import mod_wsgi
        wsgi = ".".join(str(v) for v in mod_wsgi.version)
    except ImportError:
        wsgi = "unknown"
    return "python=%s\nmod_wsgi=%s\n" % (sys.version.split()[0], wsgi)


def view_ping(params):
    return "pong\n"


VIEWS = {
    "render": view_render,
    "render_sleep": view_render_sleep,
    "cpu": view_cpu,
    "deep": view_deep,
    "version": view_version,
    "ping": view_ping,
}


def dispatch(environ):
    path = environ.get("PATH_INFO", "") or "/"
    name = path.split("/")[1] if path.count("/") >= 1 else ""
    view = VIEWS.get(name)
    if view is None:
        return None
    return view(parse_qs(environ.get("QUERY_STRING", "")))


def application(environ, start_response):
    page = dispatch(environ)
    if page is None:
        body = b"not found\n"
        status = "404 Not Found"
    else:
        body = page.encode("utf-8")
        status = "200 OK"
    start_response(status, [("Content-Type", "text/html; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [body]
