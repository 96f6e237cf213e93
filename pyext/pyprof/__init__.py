"""pyprof: mod_pyprof's Python side.

Inside Apache with mod_pyprof loaded:

* in a mod_wsgi daemon process, ``import pyprof`` starts the C sampler of
  that process (once) and tags each request's thread through
  ``mod_wsgi.subscribe_events``, so the request's Python stacks join the
  timing the Apache child records, under the same request id;
* in embedded mode the Apache child samples already; importing is harmless;
* ``segment()`` / ``trace`` add exact timings to the current request's
  profile, and ``instrument_dbapi()`` turns every SQL query into one.

Anywhere else (plain ``python3``, Apache without the module) nothing is
attached: ``attached()`` is False and everything is a cheap no-op.
"""

import functools
import re
import threading

try:
    from . import _pyprof
except ImportError:  # built without the extension: stay importable
    _pyprof = None

__all__ = ["attached", "current_request_id", "segment", "trace",
           "instrument_dbapi", "strip_sql_literals"]


def attached():
    """True when mod_pyprof's shared store is in this process."""
    return bool(_pyprof and _pyprof.attached())


def current_request_id():
    """The id of the request this thread serves (as on /server-profile), or
    None."""
    return _pyprof.current_request_id() if _pyprof else None


class _NoSegment(object):
    __slots__ = ()

    def __init__(self, name, detail=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


#: ``with segment("SQL", detail=sql): ...`` records the block's exact start
#: and duration in the current request's trace (nested blocks nest); samples
#: taken inside it are attributed to it.  Outside a profiled request it
#: does nothing.
segment = _pyprof.segment if _pyprof else _NoSegment


def trace(arg=None):
    """Decorator: ``@trace`` or ``@trace("name")`` times every call of the
    function as a segment named after it."""
    def wrap(func, name):
        @functools.wraps(func)
        def traced(*args, **kwargs):
            with segment(name):
                return func(*args, **kwargs)
        return traced

    if callable(arg):
        return wrap(arg, getattr(arg, "__qualname__", arg.__name__))
    return lambda func: wrap(
        func, arg or getattr(func, "__qualname__", func.__name__))


# -- SQL -------------------------------------------------------------------

_SQL_LITERALS = re.compile(
    r"""'(?:[^']|'')*'"""           # 'strings', with '' escapes
    r"""|\$\$.*?\$\$"""             # $$dollar quoted$$
    r"""|(?<![\w$.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w$])"""  # numbers
    r"""|(?<![\w$])[xX]'[0-9a-fA-F]*'""",  # blobs
    re.S)


def strip_sql_literals(sql):
    """Replace string and numeric literals with '?', so query texts carry
    no data and group by shape."""
    return _SQL_LITERALS.sub("?", sql)


class _Cursor(object):
    def __init__(self, cursor, strip):
        self._cursor = cursor
        self._strip = strip

    def _detail(self, sql):
        text = sql if isinstance(sql, str) else repr(sql)
        return strip_sql_literals(text) if self._strip else text

    def execute(self, sql, *args, **kwargs):
        with segment("SQL", self._detail(sql)):
            return self._cursor.execute(sql, *args, **kwargs)

    def executemany(self, sql, *args, **kwargs):
        with segment("SQL", self._detail(sql)):
            return self._cursor.executemany(sql, *args, **kwargs)

    def __iter__(self):
        return iter(self._cursor)

    def __enter__(self):
        self._cursor.__enter__()
        return self

    def __exit__(self, *exc):
        return self._cursor.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


class _Connection(object):
    def __init__(self, conn, strip):
        self._conn = conn
        self._strip = strip

    def cursor(self, *args, **kwargs):
        return _Cursor(self._conn.cursor(*args, **kwargs), self._strip)

    def execute(self, sql, *args, **kwargs):  # sqlite3's shortcut
        with segment("SQL", _Cursor._detail(self, sql)):
            return self._conn.execute(sql, *args, **kwargs)

    def __enter__(self):
        self._conn.__enter__()
        return self

    def __exit__(self, *exc):
        return self._conn.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def instrument_dbapi(module, strip_literals=True):
    """Wrap a DB-API 2 module's ``connect`` so every ``cursor.execute`` and
    ``executemany`` becomes a segment carrying its SQL text (literals
    replaced by '?' unless ``strip_literals=False``).  Returns the module.
    Idempotent."""
    if getattr(module, "_pyprof_instrumented", False):
        return module
    original = module.connect

    @functools.wraps(original)
    def connect(*args, **kwargs):
        return _Connection(original(*args, **kwargs), strip_literals)

    module.connect = connect
    module._pyprof_instrumented = True
    return module


# -- mod_wsgi daemon processes -------------------------------------------

_local = threading.local()
_setup_lock = threading.Lock()


def _on_event(name, *args, **event):
    if name == "request_started":
        rid = event.get("request_id")
        if not rid:
            environ = event.get("request_environ") or {}
            rid = environ.get("mod_wsgi.request_id")
        slot = -1
        if rid:
            import mod_wsgi
            slot = _pyprof.daemon_begin(str(rid), mod_wsgi.process_group,
                                        mod_wsgi.application_group)
        _local.slot = slot
    elif name == "request_finished":
        slot = getattr(_local, "slot", -1)
        _local.slot = -1
        if slot >= 0:
            _pyprof.daemon_end(slot)


def _on_shutdown(*args, **kwargs):
    # before Py_Finalize: a sampler asking for the GIL then would be killed
    _pyprof.stop(5000)


def _setup():
    if not attached():
        return False
    try:
        import mod_wsgi
    except ImportError:
        return False
    if not getattr(mod_wsgi, "process_group", ""):
        return False  # embedded mode: the Apache child samples already
    with _setup_lock:
        # one sampler per process, events in every interpreter that
        # imports us (each has its own mod_wsgi module and subscribers)
        if not _pyprof.start():
            return False
        mod_wsgi.subscribe_events(_on_event)
        mod_wsgi.subscribe_shutdown(_on_shutdown)
    return True


daemon_mode = _setup()
