"""Loaded without any PyProfSample, the module samples nothing and keeps
nothing, and the app is served as usual; /server-profile still answers."""

import pytest

from conftest import serving

# Every request would be "slow" if anything were measured.
NO_SAMPLE = "PyProfSlowThreshold 1ms\n"


@pytest.fixture(scope="module")
def srv(mpm, pyprof_module):
    yield from serving(name="inert", mpm=mpm, extra=NO_SAMPLE)


def test_app_is_served_without_sampling(srv):
    assert srv.get_ok("/app/fast").text == "fast\n"
    assert srv.get_ok("/app/slow?ms=250").text == "slept 250 ms\n"
    assert srv.get_ok("/app/cpu?ms=50").text == "burned 50 ms\n"


def test_server_profile_answers_with_empty_lists(srv):
    srv.get_ok("/app/slow?ms=250")
    assert srv.get_ok("/server-profile").headers["Content-Type"].startswith("text/html")
    page = srv.profile()
    assert page["locations"] == []
    assert page["requests"] == []
    assert page["inflight"] == []
