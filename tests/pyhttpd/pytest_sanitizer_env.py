"""pytest plugin: start httpd (and the Python subprocesses that import the
pyext) with the sanitizer runtime in their environment.

The httpd harness (tests/pyhttpd/httpd.py) starts apache2 with a clean
environment (CLEAN_ENV), and two daemon-mode tests run /usr/bin/python3 with
an explicit environment, so neither PassEnv nor an exported variable
reaches them.  An ASan-built module or pyext needs the ASan runtime
preloaded into the uninstrumented program that loads it (apache2,
python3), and ASAN_OPTIONS / UBSAN_OPTIONS to say where reports go.

This plugin adds the variables listed in PYPROF_HTTPD_ENV (whitespace-
separated KEY=VALUE pairs, e.g. "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/
libasan.so.8 ASAN_OPTIONS=...") to the environment of every process whose
program is apache2, apachectl or python3, whatever environment the test
passes; other programs (chromium, protoc, promtool, postgres, npm) are left
alone.  tests/asan-integration.sh loads it with
`python3 -m pytest -p pyhttpd.pytest_sanitizer_env` (tests/ on PYTHONPATH);
the harness' other users import it.
Test harness only; does nothing when PYPROF_HTTPD_ENV is unset.
"""

import os
import shlex
import subprocess

PROGRAMS = ("apache2", "apachectl", "apache2ctl", "python3", "python3.11")

# Sanitizer reports that land in a server's error log (a crash in an httpd
# worker thread is reported on stderr, which httpd sends there, whatever
# log_path says) fail the test that owned the server, like a segfault.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "AddressSanitizer:DEADLYSIGNAL",
                     "runtime error:", "ERROR: LeakSanitizer",
                     "WARNING: ThreadSanitizer")


def _extra_env():
    raw = os.environ.get("PYPROF_HTTPD_ENV", "")
    env = {}
    for item in shlex.split(raw):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError("PYPROF_HTTPD_ENV: %r is not KEY=VALUE" % item)
        env[key] = value
    return env


EXTRA = _extra_env()


def _program(args):
    if isinstance(args, (str, bytes)):
        args = shlex.split(os.fsdecode(args))
    if not args:
        return ""
    return os.path.basename(os.fsdecode(args[0]))


if EXTRA:
    _popen_init = subprocess.Popen.__init__

    def _init(self, args, *a, **kw):
        if _program(args) in PROGRAMS:
            base = kw.get("env")
            env = dict(os.environ if base is None else base)
            env.update(EXTRA)
            kw["env"] = env
        _popen_init(self, args, *a, **kw)

    subprocess.Popen.__init__ = _init


if EXTRA:
    # sanitizer reports in an error log fail a run like a crash
    from pyhttpd import httpd as _httpd
    _httpd.add_crash_markers(SANITIZER_MARKERS)


def pytest_report_header(config):
    if EXTRA:
        return "sanitizer env for apache2/python3 children: %s" % " ".join(
            "%s=%s" % kv for kv in sorted(EXTRA.items()))
    return None
