"""Exports of issue [2], each checked by the tool that reads it:
folded stacks (Brendan Gregg's collapsed format) for a request, a location
and a time window; speedscope files against speedscope's published JSON
schema (python3-jsonschema); pprof (gzipped profile.proto) decoded by
protoc; and the Go-style pull endpoint /server-profile/pprof?seconds=N.

One server (first selected MPM): /app sampled every 10 ms, requests of
200 ms or more kept.
"""

import gzip
import threading
import time

import pytest
import requests

from conftest import Traffic, unique
from views_util import (Pprof, check_speedscope, folded_stacks, frame_function, serve, settle)

EXTRA = """\
PyProfSample /app 10ms
PyProfSlowThreshold 200ms
"""


@pytest.fixture(scope="module")
def srv(pyprof_module, module_servers):
    return serve(module_servers, "exports", EXTRA)


@pytest.fixture(scope="module")
def kept(srv):
    """A kept /app/mixed request: 300 ms in burn_cpu, 300 ms in sleep_for.
    pre=30: clear of the first-burst blind spot (test_preload.py)."""
    tag = unique("export")
    srv.pids_serving(want=2)      # children's interpreters exist before it
    srv.get_ok("/app/mixed/%s?cpu=300&sleep=300&pre=30" % tag)
    [req] = srv.wait_kept(tag, 1)
    settle(srv, "/app")
    return req


def export(srv, path, content_type):
    r = srv.get_ok(path)
    assert r.headers["Content-Type"].startswith(content_type), r.headers["Content-Type"]
    return r


def request_export(srv, req, fmt, content_type):
    return export(srv, srv.request_path(req["id"], fmt), content_type)


LOCATION = "/server-profile/location?path=/app&format="


# -- folded -------------------------------------------------------------------

def check_folded(text):
    stacks = folded_stacks(text)
    assert stacks, "empty folded export"
    for frames, count in stacks:
        assert count > 0
        assert all(frames), frames                      # no empty frame between ';'
        # root first.  (A child's first request also samples mod_wsgi
        # creating its interpreter: imports with no application frame.)
        fns = names(frames)
        if "application" in fns:
            assert fns.index("application") == 0, frames
    assert any(names(f)[0] == "application" for f, _ in stacks), stacks
    return stacks


def names(frames):
    return [frame_function(f) for f in frames]


def test_folded_request_is_root_first_and_counts_every_sample(srv, kept):
    r = request_export(srv, kept, "folded", "text/plain")
    stacks = check_folded(r.text)
    assert sum(c for _, c in stacks) == kept["samples"]
    burn = [names(f) for f, _ in stacks if "burn_cpu" in names(f)]
    assert burn and all(n[-1] == "burn_cpu" and n.index("view_mixed") < n.index("burn_cpu")
                        for n in burn), burn


def test_folded_location_matches_its_json_profile(srv, kept):
    text = export(srv, LOCATION + "folded", "text/plain").text
    doc = srv.get_json(LOCATION + "json")
    stacks = check_folded(text)
    assert sum(c for _, c in stacks) == doc["samples"]
    assert len(stacks) == len(doc["stacks"])
    assert any("burn_cpu" in names(f) for f, _ in stacks)
    by_json = sorted((tuple(fr["function"] for fr in s["frames"]), s["count"])
                     for s in doc["stacks"])
    assert sorted((tuple(names(f)), c) for f, c in stacks) == by_json


def test_folded_window_lists_the_recent_stacks(srv, kept):
    text = export(srv, LOCATION + "folded&since=5m", "text/plain").text
    stacks = check_folded(text)
    assert any("burn_cpu" in names(f) for f, _ in stacks)
    everything = sum(c for _, c in check_folded(export(srv, LOCATION + "folded",
                                                       "text/plain").text))
    assert 0 < sum(c for _, c in stacks) <= everything


# -- speedscope ---------------------------------------------------------------

def speedscope_names(doc):
    return {f["name"] for f in doc["shared"]["frames"]}


def test_speedscope_request_validates_against_the_published_schema(srv, kept):
    r = request_export(srv, kept, "speedscope", "application/json")
    doc = check_speedscope(r.content)
    assert {"application", "view_mixed", "burn_cpu", "sleep_for"} <= speedscope_names(doc)
    [prof] = doc["profiles"]
    assert prof["unit"] == "milliseconds"
    frames = doc["shared"]["frames"]
    for stack in prof["samples"]:
        fns = [frames[i]["name"] for i in stack]
        if "application" in fns:
            assert fns.index("application") == 0, fns        # root first
    weight = sum(prof["weights"])
    assert prof["endValue"] == pytest.approx(weight, abs=0.01)
    assert 0.5 * kept["duration_ms"] <= weight <= 1.05 * kept["duration_ms"], (
        weight, kept["duration_ms"])
    assert kept["id"] in doc["name"] and kept["uri"] in doc["name"]


def test_speedscope_location_validates_against_the_published_schema(srv, kept):
    doc = check_speedscope(export(srv, LOCATION + "speedscope", "application/json").content)
    assert "burn_cpu" in speedscope_names(doc)
    assert doc["name"] == "/app"
    window = check_speedscope(export(srv, LOCATION + "speedscope&since=5m",
                                     "application/json").content)
    assert "burn_cpu" in speedscope_names(window)


def test_speedscope_schema_rejects_a_broken_file():
    """The validator is real: a file without frames does not pass."""
    import json
    bad = json.dumps({"$schema": "https://www.speedscope.app/file-format-schema.json",
                      "profiles": [{"type": "sampled", "name": "x", "unit": "milliseconds",
                                    "startValue": 0, "endValue": 1, "samples": [[0]],
                                    "weights": [1]}]}).encode()
    with pytest.raises(AssertionError, match="schema"):
        check_speedscope(bad)


# -- pprof --------------------------------------------------------------------

def check_pprof_common(prof):
    assert prof.sample_types() == [("samples", "count"), ("wall", "nanoseconds")]
    period_type = prof.msg["period_type"][0]
    assert (prof.s(period_type["type"][0]), prof.s(period_type["unit"][0])) == \
        ("wall", "nanoseconds")
    assert prof.msg["period"] == [10 * 1000 * 1000]
    assert prof.samples
    for sample in prof.samples:
        count, wall = sample["value"]
        assert count > 0 and wall > 0
        stack = prof.stack(sample)
        if "application" in stack:
            assert stack.index("application") == len(stack) - 1, stack   # leaf first
    assert prof.msg["time_nanos"][0] > 1.6e18                  # a real wall-clock time
    assert prof.msg["duration_nanos"][0] > 0


def test_pprof_request_decodes_with_protoc_and_carries_its_labels(srv, kept):
    r = request_export(srv, kept, "pprof", "application/octet-stream")
    assert r.content[:2] == b"\x1f\x8b", "not gzip"
    prof = Pprof(r.content)
    check_pprof_common(prof)
    assert {"application", "view_mixed", "burn_cpu", "sleep_for"} <= prof.function_names()
    assert sum(s["value"][0] for s in prof.samples) == kept["samples"]
    for sample in prof.samples:
        assert prof.labels(sample) == {"request_id": kept["id"], "location": "/app",
                                       "status": 200}
    burn = [prof.stack(s) for s in prof.samples if "burn_cpu" in prof.stack(s)]
    assert burn and all(st[0] == "burn_cpu" for st in burn), burn
    assert prof.msg["duration_nanos"][0] == pytest.approx(kept["duration_ms"] * 1e6, rel=0.01)


def test_pprof_location_decodes_with_protoc(srv, kept):
    prof = Pprof(export(srv, LOCATION + "pprof", "application/octet-stream").content)
    check_pprof_common(prof)
    assert "burn_cpu" in prof.function_names()
    for sample in prof.samples:
        assert prof.labels(sample) == {"location": "/app"}
    doc = srv.get_json(LOCATION + "json")
    assert sum(s["value"][0] for s in prof.samples) == doc["samples"]


def test_pprof_file_names_come_from_the_string_table(srv, kept):
    prof = Pprof(request_export(srv, kept, "pprof", "application/octet-stream").content)
    files = {prof.s(f["filename"][0]) for f in prof.functions.values()}
    assert srv.app in files, files


# -- pull endpoint ------------------------------------------------------------

def test_pull_endpoint_returns_only_samples_taken_during_the_window(srv, kept):
    # Before the window: view_slow (sleep_for) only.  During it: view_cpu.
    tag = unique("pull")
    for i in range(3):
        srv.get_ok("/app/slow/%s-before-%d?ms=120" % (tag, i))
    settle(srv, "/app")
    time.sleep(0.3)
    assert "view_slow" in {fr["function"] for s in srv.get_json(LOCATION + "json")["stacks"]
                           for fr in s["frames"]}

    result = {}

    def pull():
        started = time.monotonic()
        result["r"] = srv.get("/server-profile/pprof?path=/app&seconds=2", timeout=20)
        result["took"] = time.monotonic() - started

    puller = threading.Thread(target=pull, daemon=True)
    puller.start()
    time.sleep(0.3)
    traffic = Traffic(srv, "/app/cpu/%s-during?ms=40&pre=5" % tag, max_requests=200,
                      max_seconds=1.2, pause=0.01)
    traffic.start()
    traffic.join(10)
    puller.join(25)
    assert traffic.statuses and set(traffic.statuses) == {200}, traffic.failures
    r = result["r"]
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"].startswith("application/octet-stream")
    assert 1.9 <= result["took"] < 6, result["took"]
    prof = Pprof(r.content)
    check_pprof_common(prof)
    got = prof.function_names()
    assert {"view_cpu", "burn_cpu"} <= got, got
    assert "view_slow" not in got, got
    assert prof.msg["duration_nanos"][0] == pytest.approx(2e9, rel=0.25)
    for sample in prof.samples:
        assert prof.labels(sample) == {"location": "/app"}


def test_pull_head_is_answered_without_waiting(srv):
    started = time.monotonic()
    r = requests.head(srv.url("/server-profile/pprof?path=/app&seconds=5"), timeout=20)
    took = time.monotonic() - started
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/octet-stream")
    # a GET waits the 5 s; a HEAD has no body to wait for
    assert took < 2.5, took


def test_pulls_past_one_per_process_are_503_with_retry_after(srv):
    if srv.mpm == "prefork":
        pytest.skip("prefork serves one request per process: never two pulls at once")
    # three pulls at once over the MPM's two children: two share a process
    results = [None] * 3

    def pull(i):
        results[i] = srv.get("/server-profile/pprof?path=/app&seconds=2", timeout=20)

    pullers = [threading.Thread(target=pull, args=(i,), daemon=True) for i in range(3)]
    for t in pullers:
        t.start()
    for t in pullers:
        t.join(25)
    codes = sorted(r.status_code for r in results)
    assert 200 in codes and 503 in codes, codes
    for r in results:
        if r.status_code == 503:
            assert r.headers["Retry-After"] == "5", r.headers
            assert "at most 1 at once per process" in r.json()["error"], r.text
    # the turns are given back: a pull after them is served again
    assert srv.get("/server-profile/pprof?path=/app&seconds=1",
                   timeout=20).status_code == 200


def test_pull_endpoint_of_an_unknown_location_is_404(srv):
    r = srv.get("/server-profile/pprof?path=/nope&seconds=1")
    assert r.status_code == 404


def test_export_is_gzip_that_gunzips_to_a_protobuf(srv, kept):
    raw = gzip.decompress(request_export(srv, kept, "pprof", "application/octet-stream").content)
    # field 1 (sample_type), wire type 2: the first byte of the Profile
    assert raw[0] == 0x0a, raw[:8]
