"""The build's choice of Python ([7]): `make` stops with one line naming the
supported versions when the Python it would build for is not one of them,
before compiling anything; the version comes from the Python itself.

A stand-in "python" (a script answering the version question as CPython
3.12 or 3.10 would) is what `make PYTHON=...` is given: no Debian release
ships 3.12, so no real one can be installed here.
"""

import os
import stat
import subprocess

import pytest

from conftest import REPO

SUPPORTED = "3.11 3.13 3.14 3.15"


def fake_python(tmp_path, version):
    path = tmp_path / ("python" + version)
    major, minor = version.split(".")
    path.write_text("#!/bin/sh\n"
                    "# answers only what the Makefile asks: sys.version_info[:2]\n"
                    "echo %s.%s\n" % (major, minor))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def make(*args):
    # a make of its own: not the variables of the `make PYTHON=... integration`
    # that runs this suite (command-line variables travel in MAKEFLAGS)
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "PYTHON",
                        "PYCONFIG")}
    return subprocess.run(["make", "--no-print-directory", "-C", REPO] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120, env=env)


@pytest.mark.parametrize("version", ["3.12", "3.10", "2.7"])
def test_an_unsupported_python_stops_the_build_with_one_line(tmp_path, version):
    py = fake_python(tmp_path, version)
    r = make("all", "PYTHON=" + py, "PYCONFIG=/bin/false")
    assert r.returncode != 0, r.stdout + r.stderr
    ours = [l for l in r.stderr.splitlines() if l.startswith("mod_pyprof:")]
    assert ours == ["mod_pyprof: CPython %s (%s) is not supported; supported: %s"
                    % (version, py, SUPPORTED)], r.stderr
    # nothing was compiled for it
    assert "apxs" not in r.stdout and " -shared " not in r.stdout, r.stdout


def test_a_missing_python_is_named(tmp_path):
    r = make("all", "PYTHON=" + str(tmp_path / "python3.15"))
    assert r.returncode != 0
    assert ("mod_pyprof: no Python at %s" % (tmp_path / "python3.15")) in r.stderr, r.stderr


def test_the_python_mod_wsgi_links_is_the_default():
    """Without PYTHON=, the Makefile builds for the libpython that the
    installed mod_wsgi.so links, whatever python3 is first on PATH."""
    wsgi = os.environ.get("PYPROF_WSGI_SO") or "/usr/lib/apache2/modules/mod_wsgi.so"
    ldd = subprocess.run(["ldd", "/usr/lib/apache2/modules/mod_wsgi.so"],
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    linked = [w for w in ldd.split() if w.startswith("libpython")]
    assert linked, ldd
    want = linked[0][len("libpython"):].split(".so")[0]     # "3.13"
    r = make("-s", "pycheck", "print-PY_VER", "print-PYTHON")
    assert r.returncode == 0, r.stderr
    assert "PY_VER=%s" % want in r.stdout, (r.stdout, wsgi)
    assert "PYTHON=/usr/bin/python%s" % want in r.stdout, r.stdout
