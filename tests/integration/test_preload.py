"""A child whose Python work is CPU-bound from the first bytecode on is
still sampled.

With the app preloaded (WSGIImportScript, common in production) a request
starts burning CPU at once, in mod_wsgi's sub-interpreter, before the
sampler has ever seen a thread of that interpreter.  A sampler that waits
for the GIL through a thread state of another interpreter is never let in
by a thread spinning in this one (in 3.11 the GIL drop request is per
interpreter), so such requests must not come back with zero samples."""

import json
import os

import pytest

from conftest import unique
from daemon_util import PYEXT

PRELOAD = """\
PyProfSample /app 10ms
PyProfSlowThreshold 200ms
WSGIApplicationGroup pyprof-app
"""

# `import pyprof` preloaded in embedded mode (an interpreter of its own, so
# the app's stays untouched): the Apache child samples already, the import
# must not start a second sampler.
EMBEDDED_IMPORT = """\
import json, os, sys
sys.path.insert(0, %(pyext)r)
import mod_wsgi
import pyprof
with open(os.path.join(%(state)r, "%%d.json" %% os.getpid()), "w") as f:
    json.dump({"process_group": mod_wsgi.process_group,
               "application_group": mod_wsgi.application_group,
               "attached": pyprof.attached(), "daemon_mode": pyprof.daemon_mode,
               "status": pyprof._daemon_status}, f)
"""


@pytest.fixture(scope="module")
def srv(mpm, pyprof_module, module_servers):
    srv = module_servers.create(name="preload", mpm=mpm)
    srv.state = os.path.join(srv.root, "state")
    os.mkdir(srv.state)
    os.chmod(srv.state, 0o777)
    probe = os.path.join(srv.root, "embedded_import.py")
    with open(probe, "w") as f:
        f.write(EMBEDDED_IMPORT % {"pyext": PYEXT, "state": srv.state})
    os.chmod(probe, 0o644)
    srv.extra = PRELOAD + ("WSGIImportScript %s process-group=%%{GLOBAL} "
                           "application-group=pyprof-app\n"
                           "WSGIImportScript %s process-group=%%{GLOBAL} "
                           "application-group=pyprof-probe\n" % (srv.app, probe))
    srv.start()
    return srv


def test_cpu_bound_requests_in_a_preloaded_app_are_sampled(srv):
    tag = unique("preload")
    for i in range(3):
        srv.get_ok("/app/cpu/%s-%d?ms=300" % (tag, i))
    kept = srv.wait_kept(tag, 3)
    assert len(kept) == 3
    samples = {r["uri"]: (r["pid"], r["samples"]) for r in kept}
    assert all(n >= 15 for _, n in samples.values()), (
        "300 ms of CPU at 10 ms per sample: %s (uri: (pid, samples))" % samples)


def test_import_pyprof_preloaded_in_embedded_mode_starts_no_sampler(srv):
    srv.get_ok("/app/fast")       # at least one child is up and has preloaded
    seen = {}
    for name in os.listdir(srv.state):
        with open(os.path.join(srv.state, name)) as f:
            seen[int(name.split(".")[0])] = json.load(f)
    assert seen
    assert all(s == {"process_group": "", "application_group": "pyprof-probe",
                     "attached": True, "daemon_mode": False,
                     "status": "embedded mode: the Apache child samples"}
               for s in seen.values()), seen
