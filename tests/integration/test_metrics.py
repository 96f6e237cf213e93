"""/server-profile/metrics: Prometheus text exposition, checked by Debian's
`promtool check metrics`, with counts compared against the requests sent,
and scraped by a real Prometheus server (Debian `prometheus`) on 127.0.0.1.

One server (first selected MPM):
    /app      apps/app.py, sampled every 10 ms (answers 200)
    /h        apps/hostile.py: /h/status/NNN answers NNN
    /a-b_c.d  odd but valid prefix, nothing behind it (httpd answers 404)
    /q"b\\c    a prefix with a quote and a backslash (PyProfSample accepts
              them), nothing behind it
"""

import http.client
import os
import subprocess
import threading
import time

import pytest
import requests

from conftest import unique, wait_for
from views_util import (HOSTILE_SOURCE, PROMETHEUS, PROMTOOL, free_port, metric,
                        parse_prometheus, serve, stop_process)

ODD = "/a-b_c.d"
QUOTED = '/q"b\\c'
EXTRA = """\
PyProfSample /app 10ms
PyProfSample /h 10ms
PyProfSample %s 10ms
PyProfSample %s 10ms
PyProfSlowThreshold 200ms
""" % (ODD, QUOTED)

COUNT = "pyprof_request_duration_seconds_count"


@pytest.fixture(scope="module")
def srv(pyprof_module, module_servers):
    return serve(module_servers, "metrics", EXTRA, mounts=[("/h", HOSTILE_SOURCE)])


def scrape(srv):
    r = srv.get("/server-profile/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), \
        r.headers["Content-Type"]
    return r.text


def promtool_check(text):
    proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode("utf-8"),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


def settled_count(srv, location, status_class, want, timeout=10):
    """The count once it reaches `want` (log_transaction may lag the response)."""
    def value():
        v = metric(parse_prometheus(scrape(srv)), COUNT, location=location,
                   status_class=status_class)
        return v if v is not None and v >= want else None
    return wait_for(value, timeout, 0.1) or metric(parse_prometheus(scrape(srv)), COUNT,
                                                    location=location,
                                                    status_class=status_class)


def raw_get(srv, path):
    """GET with the path bytes exactly as given (requests would re-quote them)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=15)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.fixture(scope="module")
def traffic(srv):
    tag = unique("metrics")
    for i in range(7):
        srv.get_ok("/app/fast/%s-%d" % (tag, i))
    srv.get_ok("/app/slow/%s?ms=250" % tag)
    for i in range(3):
        assert srv.get("/h/status/404/%s-%d" % (tag, i)).status_code == 404
    for i in range(2):
        assert srv.get("/h/status/503/%s-%d" % (tag, i)).status_code == 503
    assert srv.get("/h/status/200/%s" % tag).status_code == 200
    for i in range(4):
        assert srv.get("%s/%s-%d" % (ODD, tag, i)).status_code == 404
    assert raw_get(srv, "%s/%s" % (QUOTED, tag)) == 404
    srv.get_ok("/server-profile")          # not under any prefix
    return tag


def test_metrics_pass_promtool_check(srv, traffic):
    text = scrape(srv)
    rc, out = promtool_check(text)
    assert rc == 0, "promtool check metrics (rc %d):\n%s\n--- metrics ---\n%s" % (
        rc, out, text[:3000])
    assert out.strip() == "", out        # no lint findings either


def test_promtool_is_a_real_check():
    """Sanity of the oracle: promtool rejects a broken exposition."""
    rc, out = promtool_check("# TYPE x histogram\nx_bucket{le=\"1\"} 2\nx_bucket{le=\"+Inf\"} 1\n"
                             "x_count 1\nx_sum 1\nbroken line here\n")
    assert rc != 0, out


def test_2xx_count_equals_the_requests_sent(srv, traffic):
    sent = srv.sent_under("/app")
    assert sent >= 8
    assert settled_count(srv, "/app", "2xx", sent) == sent
    time.sleep(0.2)
    samples = parse_prometheus(scrape(srv))
    assert metric(samples, COUNT, location="/app", status_class="2xx") == sent
    assert metric(samples, COUNT, location="/app", status_class="4xx") is None


def test_status_classes_from_the_app_and_from_httpd(srv, traffic):
    assert settled_count(srv, "/h", "4xx", 3) == 3
    samples = parse_prometheus(scrape(srv))
    assert metric(samples, COUNT, location="/h", status_class="5xx") == 2
    assert metric(samples, COUNT, location="/h", status_class="2xx") == 1
    assert metric(samples, COUNT, location=ODD, status_class="4xx") == 4
    assert metric(samples, COUNT, location=ODD, status_class="2xx") is None


def test_histogram_buckets_are_cumulative_and_end_at_the_count(srv, traffic):
    samples = parse_prometheus(scrape(srv))
    series = {}
    for name, labels, value in samples:
        if name == "pyprof_request_duration_seconds_bucket":
            key = (labels["location"], labels["status_class"])
            le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
            series.setdefault(key, []).append((le, value))
    assert ("/app", "2xx") in series and ("/h", "4xx") in series, sorted(series)
    for key, buckets in series.items():
        les = [le for le, _ in buckets]
        assert les == sorted(les) and les[-1] == float("inf"), (key, les)
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), (key, counts)
        assert counts[-1] == metric(samples, COUNT, location=key[0], status_class=key[1])
        total = metric(samples, "pyprof_request_duration_seconds_sum",
                       location=key[0], status_class=key[1])
        assert total is not None and total >= 0
    app = dict(series[("/app", "2xx")])
    # 7 fast requests are under 250 ms; the slow one is over it
    assert app[float("inf")] - max(v for le, v in app.items() if le <= 0.245) >= 1
    assert metric(samples, "pyprof_request_duration_seconds_sum", location="/app",
                  status_class="2xx") >= 0.25


def test_label_values_are_escaped(srv, traffic):
    text = scrape(srv)
    assert 'location="/q\\"b\\\\c"' in text, [l for l in text.splitlines() if "/q" in l]
    samples = parse_prometheus(text)
    assert metric(samples, "pyprof_inflight_requests", location=QUOTED) == 0
    assert metric(samples, "pyprof_inflight_requests", location=ODD) == 0
    assert metric(samples, COUNT, location=QUOTED, status_class="4xx") == 1


def test_inflight_gauge_counts_a_running_request(srv):
    tag = unique("gauge")
    done = threading.Event()

    def slow():
        try:
            srv.get("/app/slow/%s?ms=1500" % tag)
        finally:
            done.set()

    threading.Thread(target=slow, daemon=True).start()
    seen = wait_for(lambda: metric(parse_prometheus(scrape(srv)), "pyprof_inflight_requests",
                                   location="/app") == 1, 1.2, 0.05)
    assert done.wait(10)
    assert seen, "running request not counted in pyprof_inflight_requests"
    assert wait_for(lambda: metric(parse_prometheus(scrape(srv)), "pyprof_inflight_requests",
                                   location="/app") == 0, 5)


def test_sampler_counters_are_present_and_move(srv, traffic):
    samples = parse_prometheus(scrape(srv))
    for name in ("pyprof_samples_total", "pyprof_sampler_cpu_seconds_total",
                 "pyprof_sampler_gil_wait_seconds_total", "pyprof_traces_kept_total",
                 "pyprof_traces_evicted_total"):
        assert metric(samples, name) is not None, name
    assert metric(samples, "pyprof_samples_total") > 0
    assert metric(samples, "pyprof_traces_kept_total") >= 1
    for reason in ("slots_full", "frames_full", "lost"):
        assert metric(samples, "pyprof_dropped_total", reason=reason) == 0, reason
    # the phases of the sampler's ticks: reading stacks took time, and
    # none of them more than the sampler's whole wall time could hold
    phases = {p: metric(samples, "pyprof_sampler_phase_seconds_total", phase=p)
              for p in ("walk", "classify", "store")}
    assert all(v is not None for v in phases.values()), phases
    assert phases["walk"] > 0, phases
    assert all(v >= 0 for v in phases.values()), phases
    before = metric(samples, "pyprof_samples_total")
    srv.get_ok("/app/slow/%s?ms=100" % unique("more"))
    assert wait_for(lambda: metric(parse_prometheus(scrape(srv)),
                                   "pyprof_samples_total") > before, 5)


# -- a real Prometheus --------------------------------------------------------

PROM_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pyprof
    metrics_path: /server-profile/metrics
    static_configs:
      - targets: ['127.0.0.1:{port}']
"""


def test_a_real_prometheus_scrapes_the_series(srv, traffic, tmp_path):
    assert os.path.exists(PROMETHEUS), "%s missing: Debian package prometheus " \
        "(scripts/install-deps.sh)" % PROMETHEUS
    sent = srv.sent_under("/app")
    assert settled_count(srv, "/app", "2xx", sent) == sent
    config = tmp_path / "prometheus.yml"
    config.write_text(PROM_CONFIG.format(port=srv.port))
    (tmp_path / "data").mkdir()
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen([PROMETHEUS, "--config.file=%s" % config,
                             "--storage.tsdb.path=%s" % (tmp_path / "data"),
                             "--web.listen-address=127.0.0.1:%d" % port,
                             "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp_path))
    api = "http://127.0.0.1:%d/api/v1/query" % port
    found = {}
    try:
        def query(expr):
            try:
                r = requests.get(api, params={"query": expr}, timeout=3)
                body = r.json()
            except (requests.RequestException, ValueError):
                return None
            return body["data"]["result"] if body.get("status") == "success" else None

        def arrived():
            if proc.poll() is not None:
                return "exited"
            result = query(COUNT)
            for series in result or ():
                m = series["metric"]
                if m.get("location") == "/app" and m.get("status_class") == "2xx":
                    found["app"] = series
                    return True
            return None

        wait_for(arrived, 30, 0.5)
        quoted = query('pyprof_inflight_requests{location=%s}'
                       % ('"' + QUOTED.replace("\\", "\\\\").replace('"', '\\"') + '"'))
        up = query('up{job="pyprof"}')
    finally:
        code = stop_process(proc, timeout=15)
        log.close()
    plog = (tmp_path / "prometheus.log").read_text(errors="replace")
    assert "app" in found, "series never arrived in Prometheus (exit %s):\n%s" % (
        code, plog[-3000:])
    series = found["app"]
    assert series["metric"]["__name__"] == COUNT
    assert series["metric"]["job"] == "pyprof"
    assert series["metric"]["instance"] == "127.0.0.1:%d" % srv.port
    assert float(series["value"][1]) == sent
    assert up and float(up[0]["value"][1]) == 1, up
    assert quoted and quoted[0]["metric"]["location"] == QUOTED, quoted
    assert code is not None, "prometheus did not stop"
