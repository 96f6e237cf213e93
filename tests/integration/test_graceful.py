"""`apache2 -k graceful` under traffic: every request is still answered and
the store outlives the old generation of children."""

import time

import pytest

from conftest import Traffic, serving, unique, wait_for

MAIN = """\
PyProfSample /app 10ms
PyProfSlowThreshold 200ms
"""


@pytest.fixture
def srv(mpm, pyprof_module):
    yield from serving(name="graceful", mpm=mpm, extra=MAIN)


def test_graceful_restart_keeps_serving_and_keeps_the_store(srv, record_property):
    tag = unique("graceful")
    for i in range(3):
        srv.get_ok("/app/slow/%s-before-%d?ms=250" % (tag, i))
    before = srv.wait_kept(tag + "-before", 3)
    assert len(before) == 3
    old_pids = srv.pids_serving(want=2)

    traffic = Traffic(srv, "/app/fast")
    traffic.start()
    try:
        time.sleep(0.3)
        srv.graceful()
        new_pid = wait_for(
            lambda: (lambda p: p if p not in old_pids else None)(int(srv.get_ok("/app/pid").text)),
            15, 0.1)
        assert new_pid, "no child of the new generation answered within 15 s"
        time.sleep(0.5)
    finally:
        traffic.halt.set()
        traffic.join(15)

    record_property("graceful_retries", traffic.retries)
    if traffic.retries:
        print("graceful: %d request(s) needed a retry" % traffic.retries)
    assert traffic.failures == [], traffic.failures
    assert len(traffic.statuses) > 10
    assert set(traffic.statuses) == {200}, sorted(set(traffic.statuses))

    # Traces kept before the restart are still listed, by the new children.
    after_ids = {r["id"] for r in srv.kept(tag + "-before")}
    assert after_ids == {r["id"] for r in before}
    detail = srv.request_detail(before[0]["id"])
    assert any("sleep_for" in [f["function"] for f in s["frames"]] for s in detail["stacks"])
    # And the new generation writes to the same store.
    srv.get_ok("/app/slow/%s-after?ms=250" % tag)
    [after] = srv.wait_kept(tag + "-after", 1)
    assert int(after["pid"]) not in old_pids
    assert len(srv.kept(tag)) == 4
