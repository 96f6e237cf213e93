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

# A tokenizer, not a substitution: one left-to-right pass (two at most,
# see strip_sql_literals) where each step looks at one character and
# consumes a whole token with str.find or a regular expression of one
# character class (no nested repetition, so no backtracking): linear time
# whatever the input.  In doubt a rule strips more, never less: a query's
# data must not reach a page.

_WORD = re.compile(r"[^\W\d][\w$]*")             # identifiers, keywords
_WORDCHARS = re.compile(r"[\w$]*")
_NUMBER = re.compile(r"0[xX][0-9A-Fa-f_]+|0[bB][01_]+|0[oO][0-7_]+"
                     r"|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][-+]?\d+)?")
_DIGITS = re.compile(r"\d*")
# Words, blanks and operators, up to the next character a literal, a
# comment or a number may start at: copied as one block.  Each
# alternative starts with a different character and the run ends where
# none matches, so the match never backtracks.
_RUN = re.compile(r"(?:[^\W\d][\w$]*|[^\w'\"`$./-]|\.(?!\d)|-(?![\d.-])|/(?!\*))+")
_TRAILING_WORD = re.compile(r"[\w$]+\Z")
_QUOTE_OR_BACKSLASH = {q: re.compile(r"[\\%s]" % q) for q in "'\""}
_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")
_COMMENT_MARK = re.compile(r"/\*|\*/")
# a letter glued to a string: E'\n' (PostgreSQL escapes), X'ff', B'01',
# N'national'; U&'\0041' is handled apart
_STRING_PREFIXES = frozenset("eExXbBnN")
# after these, a "double-quoted" token can only be a name, in MySQL too
_NAME_KEYWORDS = frozenset(["FROM", "JOIN", "INTO", "UPDATE", "TABLE", "AS"])


def _string_end(sql, i, backslash):
    """(end, ambiguous) of the string whose quote is sql[i]; a doubled quote
    escapes, and with `backslash` a backslash does too (MySQL, PostgreSQL's
    E'' strings).  ambiguous: a backslash escaped a quote, which in a
    standard string (PostgreSQL's default) ends it.  Unterminated: the end
    of the text, -1."""
    q = sql[i]
    find = _QUOTE_OR_BACKSLASH[q].search
    n = len(sql)
    j = i + 1
    ambiguous = False
    while True:
        m = find(sql, j)
        if m is None:
            return -1, ambiguous
        k = m.start()
        if sql[k] == "\\":
            if backslash:
                ambiguous |= sql.startswith(q, k + 1)
                j = k + 2
            else:
                j = k + 1
        elif k + 1 < n and sql[k + 1] == q:
            j = k + 2
        else:
            return k + 1, ambiguous


def _name_end(sql, i):
    """End of the quoted name ("name", `name`) at sql[i]: only a doubled
    quote escapes, since the name is kept as written (a backslash taken
    for an escape could carry the name over a string).  Unterminated: the
    end of the text."""
    q = sql[i]
    n = len(sql)
    j = i + 1
    while True:
        k = sql.find(q, j)
        if k < 0:
            return n
        if k + 1 < n and sql[k + 1] == q:
            j = k + 2
        else:
            return k + 1


def _block_comment_end(sql, i):
    """End of the /* comment */ at sql[i], nested ones nesting (PostgreSQL),
    or -1 when it is never closed."""
    depth = 0
    j = i
    while True:
        m = _COMMENT_MARK.search(sql, j)
        if m is None:
            return -1
        depth += 1 if m.group() == "/*" else -1
        j = m.end()
        if depth == 0:
            return j


def _ends_operand(c):
    """Does a token ending in c end an operand (so that '-' after it is
    binary and '.' after it qualifies a name)?"""
    return c is not None and (c.isalnum() or c in "_$?)]'\"`")


def _strip(sql, backslash):
    """One pass of strip_sql_literals: (text, left_open, before_ambiguous):
    whether a string or comment was left open at the end, and the text
    made before the first string a backslash made ambiguous (or None)."""
    out = []
    n = len(sql)
    i = 0
    last = None          # the last character of the last token
    word = None          # that token upper-cased, when it was a word
    left_open = False
    before_ambiguous = None

    def emit(text, w=None):
        nonlocal last, word
        out.append(text)
        if not text.isspace():
            last = text.rstrip()[-1]
            word = w

    def prefix(k):
        # the k characters before the quote at i, when they start a token
        # (E'..', U&'..'): taken off the run they ended and returned
        if i < k or (i > k and _WORDCHARS.match(sql, i - k - 1).end() > i - k - 1):
            return ""
        text = sql[i - k:i]
        if out and out[-1].endswith(text):
            out[-1] = out[-1][:-k]
        return text

    def string(quote_at, escapes=backslash, definite=False):
        # a literal (after its prefix, if any) to its closing quote
        nonlocal left_open, before_ambiguous
        end, ambiguous = _string_end(sql, quote_at, escapes)
        if ambiguous and not definite and before_ambiguous is None:
            before_ambiguous = "".join(out)
        emit("?")
        if end < 0:
            left_open = True
            return n
        return end

    while i < n:
        c = sql[i]
        m = _RUN.match(sql, i)
        if m:                                   # names, blanks, operators
            text = m.group()
            out.append(text)
            tail = text.rstrip()[-7:]
            if tail:
                last = tail[-1]
                m = _TRAILING_WORD.search(tail)
                # a keyword (at most 6 letters) ends the run, or no word
                word = m.group().upper() if m and m.start() > 0 or \
                    (m and len(tail) < 7) else None
            i += len(text)
        elif c == "'":
            if sql[i - 1:i] in _STRING_PREFIXES and prefix(1):
                if sql[i - 1] in "eE":          # always backslash escapes
                    i = string(i, True, True)
                else:
                    i = string(i)
            elif sql[i - 2:i] in ("u&", "U&") and prefix(2):
                i = string(i)                   # U&'...'
            else:
                i = string(i)
        elif c == '"':
            j = _name_end(sql, i)
            if last == "." or word in _NAME_KEYWORDS or \
                    sql[j:j + 64].lstrip().startswith("."):
                emit(sql[i:j])                  # "schema"."table"
                i = j
            else:                               # MySQL's "string"
                i = string(i)
        elif c == "`":                          # MySQL's `name`
            j = _name_end(sql, i)
            emit(sql[i:j])
            i = j
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
        elif sql.startswith("/*", i):
            i = _block_comment_end(sql, i)
            left_open |= i < 0
            i = n if i < 0 else i
            emit(" ")
        elif c == "$":
            m = _DOLLAR_TAG.match(sql, i)
            if m:                               # $$...$$, $tag$...$tag$
                j = sql.find(m.group(), m.end())
                left_open |= j < 0
                i = n if j < 0 else j + len(m.group())
                emit("?")
            else:                               # $1, or a lone $
                j = _DIGITS.match(sql, i + 1).end()
                emit(sql[i:j])
                i = j
        elif c == "-" or c == ".":
            # -3.5 and .5 are numbers unless the '-' is binary (x-1) or
            # the '.' qualifies a name (t.col)
            m = _NUMBER.match(sql, i + 1 if c == "-" else i)
            if m and not _ends_operand(last) and \
                    _WORDCHARS.match(sql, m.end()).end() == m.end():
                emit("?")
                i = m.end()
            else:
                emit(c)
                i += 1
        elif c.isdecimal():
            prev = sql[i - 1] if i else ""
            m = _NUMBER.match(sql, i)
            end = _WORDCHARS.match(sql, m.end()).end()
            if prev == "?" or (prev == ":" and sql[i - 2:i] != "::"):
                j = _DIGITS.match(sql, i).end()  # ?1, :1 placeholders
                emit(sql[i:j])
                i = j
            elif end > m.end():                 # 1st_table: a MySQL name
                emit(sql[i:end], sql[i:end].upper())
                i = end
            else:
                emit("?")
                i = m.end()
        else:                                   # a lone '$', '\w' no
            emit(c)                             # word starts with
            i += 1
    return "".join(out), left_open, before_ambiguous


def strip_sql_literals(sql):
    """Replace string and numeric literals with '?' and drop comments, so
    query texts carry no data and group by shape.

    Strings: '...' (with '' or backslash escapes), E'...', X'...', B'...',
    N'...', U&'...', $$...$$ and $tag$...$tag$, MySQL "..." (a double-quoted
    token is kept only where it must be a name: next to a '.', or after
    FROM, JOIN, INTO, UPDATE, TABLE or AS); numbers, signed or not, hex and
    binary.  Comments (-- and /* */, nested) are removed.  An unterminated
    string or comment is stripped to the end of the text.  Identifiers
    (t1.col2, `name`), keywords and placeholders (%s, %(name)s, ?, ?1,
    :name, :1, $1) stay.

    A backslash before a quote escapes it in MySQL and ends the string in
    PostgreSQL's standard strings ('C:\\').  The text is read both ways;
    the wrong reading of a valid query leaves a string open, or a comment
    runs to the end (from inside what is really a string), so: the reading
    that closes everything when the other does not, else, when they
    differ, everything from the first such string on is '?'.  Linear time:
    at most two passes, no backtracking.
    """
    text, left_open, before_ambiguous = _strip(sql, True)
    if before_ambiguous is None:
        return text
    plain, plain_left_open, _ = _strip(sql, False)
    if plain == text or (left_open and not plain_left_open):
        return plain
    if plain_left_open and not left_open:
        return text
    return before_ambiguous + "?"
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
