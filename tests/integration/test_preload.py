"""A child whose Python work is CPU-bound from the first bytecode on is
still sampled.

With the app preloaded (WSGIImportScript, common in production) a request
starts burning CPU at once, in mod_wsgi's sub-interpreter, before the
sampler has ever seen a thread of that interpreter.  A sampler that waits
for the GIL through a thread state of another interpreter is never let in
by a thread spinning in this one (in 3.11 the GIL drop request is per
interpreter), so such requests must not come back with zero samples."""

import pytest

from conftest import unique

PRELOAD = """\
PyProfSample /app 10ms
PyProfSlowThreshold 200ms
WSGIApplicationGroup pyprof-app
"""


@pytest.fixture(scope="module")
def srv(mpm, pyprof_module, module_servers):
    srv = module_servers.create(name="preload", mpm=mpm)
    srv.extra = PRELOAD + ("WSGIImportScript %s process-group=%%{GLOBAL} "
                           "application-group=pyprof-app\n" % srv.app)
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
