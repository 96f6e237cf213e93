"""PyProfKeep and PyProfMaxDepth bound what is stored: the newest traces
win, and a deep stack keeps its deepest frames."""

import re

import pytest

from conftest import serving, unique

LIMITS = """\
PyProfSample /app 10ms
PyProfSlowThreshold 200ms
PyProfKeep 4
PyProfMaxDepth 3
"""


@pytest.fixture(scope="module")
def srv(mpm, pyprof_module):
    yield from serving(name="limits", mpm=mpm, extra=LIMITS)


def test_keep_limits_traces_and_the_newest_win(srv):
    tag = unique("keep")
    # Oldest first and also the slowest, so "slowest first" cannot be confused
    # with "newest win".
    for i, ms in enumerate([400, 380, 360, 340, 320, 300]):
        srv.get_ok("/app/slow/%s-%d?ms=%d" % (tag, i, ms))
    srv.wait_kept(tag + "-5", 1)
    kept = srv.kept(tag)
    assert sorted(int(re.search(r"-(\d)", r["uri"]).group(1)) for r in kept) == [2, 3, 4, 5]
    assert len(srv.profile()["requests"]) <= 4


def test_max_depth_keeps_the_deepest_frames(srv):
    tag = unique("depth")
    srv.get_ok("/app/slow/%s?ms=250" % tag)
    [req] = srv.wait_kept(tag, 1)
    stacks = srv.request_detail(req["id"])["stacks"]
    assert stacks
    for stack in stacks:
        names = [f["function"] for f in stack["frames"]]
        # at most 3 frames plus a truncation marker at the root
        assert len(names) <= 4, names
        # a sample taken in sleep_for, 4 frames deep, lost its root; one
        # taken in view_slow before the sleep (a slow ASan build) is a
        # whole 3-frame stack and keeps it
        if names[-1] == "sleep_for":
            assert "application" not in names, names
    sleeping = [[f["function"] for f in s["frames"]] for s in stacks
                if s["frames"][-1]["function"] == "sleep_for"]
    assert sleeping and all(n[-3:] == ["dispatch", "view_slow", "sleep_for"] for n in sleeping), sleeping
