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
import os
import re
import sys
import threading

try:
    from . import _pyprof
except ImportError as exc:  # built without the extension: stay importable
    _pyprof = None
    _ext_error = str(exc)   # e.g. only built for another Python's ABI
else:
    _ext_error = None

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


def _warn(message):
    # mod_wsgi sends sys.stderr to Apache's error log
    try:
        sys.stderr.write("pyprof (pid %d): %s\n" % (os.getpid(), message))
        sys.stderr.flush()
    except Exception:
        pass


def _process_group():
    """The mod_wsgi daemon process group this process serves: "" in an
    Apache child (embedded mode), None outside mod_wsgi.

    mod_wsgi sets ``mod_wsgi.process_group`` when it creates an interpreter
    (newInterpreterObject() in wsgi_interp.c), from the same global
    (wsgi_daemon_group) that wsgi_start_process() sets in a daemon before
    wsgi_python_child_init() creates the main interpreter and runs the
    daemon's WSGIImportScript files -- whose process-group= is matched
    against that very global.  So it is already final when any Python code,
    a WSGIImportScript into %{GLOBAL} included, runs in the process, in
    mod_wsgi 4.9 and 5.0 alike, and it never changes later: there is
    nothing to wait for.  Empty means embedded mode, where the Apache child
    samples and a second sampler must not start."""
    try:
        import mod_wsgi
    except ImportError:
        return None
    group = getattr(mod_wsgi, "process_group", None)
    return group if isinstance(group, str) else None


def _setup():
    global _daemon_status
    group = _process_group()
    if group is None:
        _daemon_status = "not in a mod_wsgi process"
        return False
    if not group:
        _daemon_status = "embedded mode: the Apache child samples"
        return False
    if _pyprof is None:
        from importlib.machinery import EXTENSION_SUFFIXES
        wanted = "_pyprof" + EXTENSION_SUFFIXES[0]
        _daemon_status = "daemon process group %r, no %s" % (group, wanted)
        _warn("daemon process group %r not sampled: pyprof's C extension "
              "for this Python, %s in %s, did not load: %s"
              % (group, wanted, os.path.dirname(__file__), _ext_error))
        return False
    if not attached():
        # Apache without mod_pyprof, or no PyProfSample: nothing to feed
        _daemon_status = "daemon process group %r, mod_pyprof not attached" % group
        return False
    import mod_wsgi
    with _setup_lock:
        # one sampler per process, events in every interpreter that
        # imports us (each has its own mod_wsgi module and subscribers)
        if not _pyprof.start():
            _daemon_status = "daemon process group %r, sampler did not start" % group
            _warn("daemon process group %r: the sampler did not start" % group)
            return False
        mod_wsgi.subscribe_events(_on_event)
        mod_wsgi.subscribe_shutdown(_on_shutdown)
    _daemon_status = "daemon process group %r: sampling" % group
    main = _hook_main_interpreter()
    if main:
        _daemon_status += " (%s)" % main
    return True


def _hook_main_interpreter():
    """From a sub-interpreter of a daemon on CPython 3.12+, import pyprof
    in the process' main interpreter too, so that the requests of
    application-group=%{GLOBAL} are tagged.

    mod_wsgi enters the main interpreter with PyGILState_Ensure()
    (wsgi_acquire_interpreter() in wsgi_interp.c, mod_wsgi 4.9 and 5.0
    alike).  On CPython 3.12+ that hands back the thread state of a
    sub-interpreter once one has been created on the calling thread: in a
    daemon, a WSGIImportScript into %{GLOBAL} that comes after the preload
    of a named application group (wsgi_python_child_init() runs them in
    configuration order on one thread) then runs in that sub-interpreter
    -- mod_wsgi.application_group says so -- and never in the main one,
    where the application itself runs later.  Seen with Debian 13's
    mod_wsgi 5.0.2 and Python 3.13; Debian 12's 4.9.4 with 3.11 runs it in
    the main interpreter.  Importing pyprof in the main interpreter is
    harmless when nothing runs there: subscribers only see the requests of
    their own interpreter, and the Apache child's PyProfSample decides
    which requests are profiled.  Returns a note for _daemon_status, or
    None when there was nothing to do."""
    if sys.version_info < (3, 12):
        return None
    try:
        import _interpreters as xi         # 3.13+
        run = xi.exec
    except ImportError:
        try:
            import _xxsubinterpreters as xi    # 3.12
            run = xi.run_string
        except ImportError:
            return None

    def number(interp):
        return int(interp[0] if isinstance(interp, tuple) else interp)

    try:
        main = number(xi.get_main())
        if number(xi.get_current()) == main:
            return None
        where = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        failed = run(main, "import sys\n"
                           "if %r not in sys.path:\n"
                           "    sys.path.append(%r)\n"
                           "import pyprof\n" % (where, where))
    except Exception as exc:  # 3.12 raises, 3.13 returns the failure
        failed = exc
    if failed is not None:
        _warn("requests of application-group=%%{GLOBAL} are not tagged: "
              "importing pyprof in the main interpreter failed: %s" % (failed,))
        return "main interpreter not hooked"
    return "main interpreter hooked too"


#: why daemon_mode is what it is (for diagnosis; not part of the API)
_daemon_status = None
daemon_mode = _setup()
