/* test_overview.c: the overview, its JSON and /metrics as pure functions
 * of a snapshot (pp_overview.h).
 *
 * Every test renders a pp_overview_t made by hand, with no store behind
 * it: hostile location paths, URIs and function names must come out
 * escaped for the output they land in, and counters, histograms and
 * request fields with their exact values.  The last tests read a real
 * store with pp_overview_load and check the snapshot it makes.
 */
#include "unit.h"

#include "pp_overview.h"
#include "pp_render.h"
#include "pp_store.h"

#define NOW_US 1700000060000000LL /* 2023-11-14T22:14:20Z */
#define START_US 1700000000123000LL

UNIT_PAGE_FIXTURE(NOW_US)

static void req(pp_req_t *q, const char *id, const char *uri, int location,
                int status, int64_t duration_us)
{
    memset(q, 0, sizeof(*q));
    snprintf(q->id, sizeof(q->id), "%s", id);
    snprintf(q->method, sizeof(q->method), "GET");
    snprintf(q->uri, sizeof(q->uri), "%s", uri);
    snprintf(q->vhost, sizeof(q->vhost), "www.example.org");
    q->pid = 4321;
    q->tid = 8765;
    q->location = location;
    q->status = status;
    q->interval_us = 10000;
    q->start_us = START_US;
    q->duration_us = duration_us;
    q->samples = 3;
}

/* Two current locations (rows 2 and 5: the first with a hostile path and
 * a capture), one of an earlier configuration (row 7); kept requests
 * naming each of them and a row nobody uses; two requests in flight, one
 * with a stack; counters with distinct values. */
static void make_overview(pp_overview_t *ov)
{
    pp_ov_location_t *l;
    pp_ov_inflight_t *e;
    uint32_t fmain, fevil;
    int b;

    memset(ov, 0, sizeof(*ov));
    ov->loc = calloc(3, sizeof(*ov->loc));
    ov->traces = calloc(3, sizeof(*ov->traces));
    ov->inflight = calloc(2, sizeof(*ov->inflight));
    ov->captured = calloc(1, sizeof(*ov->captured));
    assert_true(ov->loc && ov->traces && ov->inflight && ov->captured);

    l = &ov->loc[0];
    l->row = 2;
    snprintf(l->path, sizeof(l->path), "%s", EVIL_PATH);
    l->interval_us = 10000;
    l->created_us = NOW_US - 10000000; /* 10 s ago */
    l->s.requests = 20;
    l->s.samples = 40;
    l->s.kept = 3;
    l->s.sum_us = 2000000;
    l->s.max_us = 150000;
    l->s.hist[pp_hist_bucket(100000)] = 15;
    l->s.hist[pp_hist_bucket(150000)] = 5;
    l->class_hist[1][pp_hist_bucket(100000)] = 15; /* 2xx */
    l->class_hist[4][pp_hist_bucket(150000)] = 5;  /* 5xx */
    l->class_sum_us[1] = 1500000;
    l->class_sum_us[4] = 500000;
    l->inflight = 2;
    l->capture_id = 9;
    l->capture_n = 3;
    l->capture_left = 1;
    l->capture_first = 0;
    l->ncaptured = 1;

    l = &ov->loc[1];
    l->row = 5;
    snprintf(l->path, sizeof(l->path), "/quiet");
    l->interval_us = 5000;
    l->created_us = NOW_US - 1000000;

    l = &ov->loc[2];
    l->row = 7;
    snprintf(l->path, sizeof(l->path), "/gone");
    ov->nloc = 2;
    ov->nrows = 3;
    pp_overview_index(ov);

    req(&ov->traces[0], "slow-1", EVIL_URI, 2, 503, 150000);
    req(&ov->traces[1], "old-1", "/gone/x", 7, 200, 120000);
    req(&ov->traces[2], "lost-1", "/lost", 11, 200, 110000);
    ov->ntraces = 3;
    ov->ntraces_listed = 3;
    req(&ov->captured[0], "cap-1", "/a/cap", 2, 200, 100000);
    ov->captured[0].flags = PP_REQ_CAPTURED;
    ov->captured[0].capture = 9;
    ov->ncaptured = 1;

    pp_profile_init(&ov->stacks);
    fmain = pp_profile_new_frame(&ov->stacks, "main", "/srv/app/main.py", 1);
    fevil = pp_profile_new_frame(&ov->stacks, EVIL_FN, "/srv/app/e<v>.py", 42);
    assert_true(fmain && fevil);
    e = &ov->inflight[0];
    req(&e->q, "live-1", "/a/live", 2, 0, 0);
    e->q.start_us = NOW_US - 2500000; /* 2.5 s ago */
    e->depth = 2;
    e->frames[0] = fmain;
    e->frames[1] = fevil;
    e->shown = 2;
    e = &ov->inflight[1];
    req(&e->q, "live-2", "/a/new", 2, 0, 0);
    e->q.start_us = NOW_US - 1000;
    ov->ninflight = 2;

    atomic_store(&ov->c.samples, 1234);
    atomic_store(&ov->c.ticks, 99);
    atomic_store(&ov->c.sampler_cpu_ns, 2500000000ULL);
    atomic_store(&ov->c.gil_wait_ns, 750000000ULL);
    atomic_store(&ov->c.walk_ns, 1250000000ULL);
    atomic_store(&ov->c.classify_ns, 125000000ULL);
    atomic_store(&ov->c.store_ns, 62500000ULL);
    atomic_store(&ov->c.torn, 17);
    atomic_store(&ov->c.slots_full, 4);
    atomic_store(&ov->c.frames_full, 6);
    atomic_store(&ov->c.slots_lost, 8);
    atomic_store(&ov->c.traces_evicted, 21);
    for (b = 10; b < 12; b++) {
        atomic_store(&ov->c.sample_cost[b], 50); /* 1 and 2 us */
    }
    ov->created_us = NOW_US - 100000000; /* 100 s ago */
    ov->sampler_mode = PP_SAMPLER_NOGIL;
    ov->total_size = 64ULL << 20;
    ov->arena_used = 3ULL << 20;
    ov->arena_size = 32ULL << 20;
    ov->nslots = 400;
    ov->keep = 1000;
    ov->nframes = 65536;
    ov->nnodes = 262144;
    snprintf(ov->nonce, sizeof(ov->nonce), "%064d", 7);
}

/* What render writes of ov, which it then frees. */
static const char *rendered(pp_overview_t *ov,
                            void (*render)(pp_sink_t *, const pp_overview_t *,
                                           const pp_render_opts_t *))
{
    render(&out, ov, &opt);
    pp_overview_free(ov);
    return unit_buf_str(&buf);
}

/* ---- /metrics ---- */

static void test_metrics_of_a_snapshot(void **state)
{
    pp_overview_t ov;
    const char *m;
    (void)state;

    make_overview(&ov);
    m = rendered(&ov, pp_render_metrics);
    /* the label escapes the quote; the 2xx series counts 15, the 5xx 5 */
    assert_non_null(
        strstr(m, "\npyprof_request_duration_seconds_bucket{location=\"/a\\\"<"
                  "b>&c\",status_class=\"2xx\",le=\"+Inf\"} 15\n"));
    assert_non_null(
        strstr(m, "\npyprof_request_duration_seconds_sum{location=\"/a\\\"<b>&"
                  "c\",status_class=\"2xx\"} 1.500000\n"));
    assert_non_null(
        strstr(m, "\npyprof_request_duration_seconds_count{location=\"/a\\\"<"
                  "b>&c\",status_class=\"5xx\"} 5\n"));
    /* cumulative buckets: everything under 100 ms is 0, all 15 by 1 s */
    assert_non_null(
        strstr(m, "{location=\"/a\\\"<b>&c\",status_class=\"2xx\",le=\"0.001\"}"
                  " 0\n"));
    assert_non_null(
        strstr(m, "{location=\"/a\\\"<b>&c\",status_class=\"2xx\",le=\"60\"}"
                  " 15\n"));
    /* no series for a class or a location with no request */
    assert_null(strstr(m, "status_class=\"4xx\""));
    assert_null(strstr(m, "_bucket{location=\"/quiet\""));
    /* every current location has its gauge, the old one none */
    assert_non_null(
        strstr(m, "\npyprof_inflight_requests{location=\"/a\\\"<b>&c\"} 2\n"));
    assert_non_null(
        strstr(m, "\npyprof_inflight_requests{location=\"/quiet\"} 0\n"));
    assert_null(strstr(m, "/gone"));
    assert_non_null(strstr(m, "\npyprof_samples_total 1234\n"));
    assert_non_null(strstr(m, "\npyprof_sampler_cpu_seconds_total 2.500000\n"));
    assert_non_null(
        strstr(m, "\npyprof_sampler_gil_wait_seconds_total 0.750000\n"));
    assert_non_null(strstr(m, "\npyprof_sampler_phase_seconds_total"
                              "{phase=\"walk\"} 1.250000\n"
                              "pyprof_sampler_phase_seconds_total"
                              "{phase=\"classify\"} 0.125000\n"
                              "pyprof_sampler_phase_seconds_total"
                              "{phase=\"store\"} 0.062500\n"));
    assert_non_null(strstr(m, "\npyprof_traces_evicted_total 21\n"));
    assert_non_null(
        strstr(m, "\npyprof_dropped_total{reason=\"slots_full\"} 4\n"));
    assert_non_null(
        strstr(m, "\npyprof_dropped_total{reason=\"frames_full\"} 6\n"));
    assert_non_null(strstr(m, "\npyprof_dropped_total{reason=\"lost\"} 8\n"));
    assert_int_equal(unit_count(m, "# TYPE pyprof_dropped_total counter"), 1);
    assert_non_null(strstr(m, "\npyprof_store_bytes{kind=\"size\"} 67108864\n"
                              "pyprof_store_bytes{kind=\"frame_text_used\"} "
                              "3145728\n"));
}

/* ---- JSON ---- */

static void test_overview_json_of_a_snapshot(void **state)
{
    pp_overview_t ov;
    (void)state;

    make_overview(&ov);
    assert_null(strchr(rendered(&ov, pp_render_overview_json), '<'));
    unit_assert_json(
        unit_buf_str(&buf),
        "[l['path'] for l in d['locations']] == ['/a\"<b>&c', '/quiet']",
        "d['locations'][0]['requests'] == 20", "d['locations'][0]['kept'] == 3",
        "d['locations'][0]['samples'] == 40",
        "d['locations'][0]['interval_ms'] == 10.0",
        "d['locations'][0]['rate_per_s'] == 2.0",
        "d['locations'][0]['mean_ms'] == 100.0",
        "d['locations'][0]['max_ms'] == 150.0",
        "d['locations'][0]['nominal_samples'] == 200.0",
        "[h['count'] for h in d['locations'][0]['histogram']] == [15, 5]",
        "d['locations'][1]['histogram'] == []",
        "[r['id'] for r in d['requests']] == ['slow-1', 'old-1', 'lost-1']",
        "[r['location'] for r in d['requests']] == ['/a\"<b>&c', '/gone', '']",
        "d['requests'][0]['uri'] == '/x?<img src=y>&z=\"1\"'",
        "d['requests'][0]['status'] == 503",
        "d['requests'][0]['duration_ms'] == 150.0",
        "[r['id'] for r in d['inflight']] == ['live-1', 'live-2']",
        "d['inflight'][0]['elapsed_ms'] == 2500.0",
        "d['sampler']['samples'] == 1234", "d['sampler']['ticks'] == 99",
        "d['sampler']['cpu_s'] == 2.5", "d['sampler']['gil_wait_s'] == 0.75",
        "d['sampler']['samples_per_s'] == 12.34", "d['sampler']['torn'] == 17",
        "d['sampler']['mode'] == 'nogil'",
        "d['sampler']['sample_cost_p50_us'] == 1.45",
        "d['sampler']['sample_cost_p99_us'] == 2.9",
        "d['store']['memory'] == 64 << 20",
        "d['store']['arena_used'] == 3 << 20", "d['store']['slots'] == 400",
        "d['store']['keep'] == 1000", "d['store']['slots_full'] == 4",
        "d['store']['frames_full'] == 6", "d['store']['slots_lost'] == 8",
        "d['store']['traces_evicted'] == 21",
        "d['store']['uptime_s'] == 100.0");
}

static void test_request_and_location_json_of_a_snapshot(void **state)
{
    pp_request_view_t v;
    pp_ov_location_t l;
    pp_record_t *rec = calloc(1, sizeof(*rec));
    uint32_t f, n;
    (void)state;

    assert_non_null(rec);
    req(&rec->req, "r-1", EVIL_URI, 2, 200, 50000);
    memset(&v, 0, sizeof(v));
    v.rec = rec;
    snprintf(v.location, sizeof(v.location), "%s", EVIL_PATH);
    pp_profile_init(&v.p);
    f = pp_profile_new_frame(&v.p, EVIL_FN, "/srv/e.py", 7);
    n = pp_profile_new_node(&v.p, 0, f);
    assert_int_equal(pp_profile_add_resolved(&v.p, n, 3, 30000, 10000), 0);
    pp_render_request_json(&out, &v, &opt);
    assert_null(strchr(unit_buf_str(&buf), '<'));
    unit_assert_json(unit_buf_str(&buf), "d['id'] == 'r-1'",
                     "d['location'] == '/a\"<b>&c'", "d['inflight'] is False",
                     "d['stacks'] == [{'frames': [{'function': "
                     "'<script>f()</script>', 'file': '/srv/e.py', "
                     "'line': 7}], 'count': 3, 'weight_ms': 30.0, "
                     "'cpu_ms': 10.0}]",
                     "'error' not in d");
    unit_buf_reset(&buf);

    memset(&l, 0, sizeof(l));
    snprintf(l.path, sizeof(l.path), "%s", EVIL_PATH);
    snprintf(l.root, sizeof(l.root), "/srv/<app>");
    l.interval_us = 20000;
    l.s.requests = 11;
    pp_render_location_json(&out, &l, &v.p, &opt);
    assert_null(strchr(unit_buf_str(&buf), '<'));
    unit_assert_json(unit_buf_str(&buf), "d['path'] == '/a\"<b>&c'",
                     "d['app_root'] == '/srv/<app>'", "d['requests'] == 11",
                     "d['interval_ms'] == 20.0", "d['samples'] == 3",
                     "d['weight_ms'] == 30.0", "d['view'] == 'all'",
                     "len(d['stacks']) == 1");
    pp_request_free(&v);
    free(rec);
}

/* ---- HTML ---- */

static void test_overview_html_of_a_snapshot(void **state)
{
    pp_overview_t ov;
    const char *h;
    (void)state;

    make_overview(&ov);
    opt.filter_location = 7; /* the old row still names its path */
    h = rendered(&ov, pp_render_overview_html);
    assert_true(unit_utf8_valid(buf.p, buf.n));
    assert_null(strstr(h, "<script>f"));
    assert_null(strstr(h, "<img"));
    assert_null(strstr(h, "\"<b>&c"));
    /* the locations table: link, escaped name, counts */
    assert_non_null(strstr(h, "<tr><td class=mono><a href=\"/server-profile"
                              "/location?path=%2Fa%22%3Cb%3E%26c\" title=\""
                              "flame graph of every sampled request\">/a&quot;"
                              "&lt;b&gt;&amp;c</a></td><td class=num>10 "
                              "ms</td><td class=num>20</td><td class=num>2.00"
                              "/s</td>"));
    assert_non_null(strstr(h, "<td class=num>3</td><td class=num>40<br>"));
    assert_non_null(strstr(h, "<title>87.3ms - 103.7ms: 15 requests"));
    /* the filter form and the capture form offer the current locations */
    assert_int_equal(unit_count(h, "<option value=\"/a&quot;&lt;b&gt;&amp;c\">"
                                   "/a&quot;&lt;b&gt;&amp;c</option>"),
                     2);
    assert_int_equal(unit_count(h, "<option value=\"/quiet\">"), 2);
    assert_null(strstr(h, "<option value=\"/gone\""));
    assert_non_null(strstr(h, "?sort=time&amp;location=%2Fgone#slow"));
    /* in flight: the stack's innermost frame, then the whole stack */
    assert_non_null(strstr(h, "In flight now <span class=muted>(2)</span>"));
    assert_non_null(strstr(
        h, "<td class=num>2.50 s</td><td>GET</td><td class=uri>/a/live</td>"
           "<td class=num>3</td><td class=num>4321</td><td class=mono>"
           "<details><summary>&lt;script&gt;f()&lt;/script&gt; (e&lt;v&gt;"
           ".py:42)</summary><ol class=stack><li>main <span class=muted>"
           "/srv/app/main.py:1</span></li><li>&lt;script&gt;f()&lt;/script"
           "&gt; <span class=muted>/srv/app/e&lt;v&gt;.py:42</span></li>"
           "</ol><a href=\"/server-profile/request/live-1\">call tree so far"
           "</a></details>"));
    assert_non_null(strstr(h, "/a/new</td><td class=num>3</td><td class="
                              "num>4321</td><td class=mono><span class=muted>"
                              "not sampled yet</span>"));
    /* the slow table, filtered: the count and the rows */
    assert_non_null(strstr(h, "Slow requests <span class=muted>(3 kept "
                              "matching the filter, slowest first)"));
    assert_non_null(
        strstr(h, "<td class=uri>/x?&lt;img src=y&gt;&amp;z=&quot;1&quot;"
                  "</td><td class=\"num s5\">503</td>"));
    assert_int_equal(unit_count(h, ">call tree</a>"), 4); /* 3 + 1 captured */
    assert_null(strstr(h, "more in <a href=\"?format=json\">"));
    /* the capture: its location, what it took, its request */
    assert_non_null(strstr(h, "name=nonce value=\"" /* from the snapshot */
                              "0000000000000000000000000000000000000000000000"
                              "000000000000000007\""));
    assert_non_null(strstr(h, "<h3>/a&quot;&lt;b&gt;&amp;c: capture 9, 2 of 3 "
                              "taken</h3>"));
    assert_non_null(strstr(h, "<td class=uri>/a/cap</td>"));
    assert_non_null(strstr(h, "These 1 requests: p50 "));
    /* the sampler's cards, from the counters' copy */
    assert_non_null(strstr(h, "<b>1234</b><span>samples</span>"));
    assert_non_null(strstr(h, "<b>2.500 s</b><span>sampler CPU</span>"));
    assert_non_null(strstr(h, "<b>12.34/s</b><span>samples per second"));
    assert_non_null(strstr(h, "<b>3.0 / 64.0 MiB</b>"));
    /* slots_full + frames_full; lost is counted on its own */
    assert_non_null(strstr(h, "<b>10</b><span>dropped (store full"));
    assert_non_null(strstr(h, "<b>8</b><span>lost (process died"));
    assert_non_null(strstr(h, "<b>17</b><span>samples dropped as torn"));
    assert_null(strstr(h, "The store was renewed"));
    assert_non_null(strstr(h, "</html>"));
}

/* Past PP_OV_HTML_ROWS the HTML lists the first rows and says how many
 * more the JSON has: the snapshot keeps only the rows it lists.  The
 * filter's location is the one selected (by row, not by place). */
static void test_overview_html_lists_the_first_rows(void **state)
{
    pp_overview_t ov;
    const char *h;
    (void)state;

    make_overview(&ov);
    ov.ntraces = PP_OV_HTML_ROWS + 42;
    ov.ntraces_listed = 2;
    opt.filter_location = 5;
    h = rendered(&ov, pp_render_overview_html);
    assert_non_null(strstr(h, "(142 kept matching the filter, slowest "
                              "first)"));
    assert_int_equal(
        unit_count(h, "<option value=\"/quiet\" selected>/quiet</option>"), 1);
    assert_int_equal(unit_count(h, " selected>"), 1);
    assert_non_null(strstr(h, "<p class=muted>42 more in <a href=\"?format="
                              "json\">JSON</a>.</p>"));
    assert_int_equal(unit_count(h, ">call tree</a>"), 3); /* 2 + 1 captured */
}

/* An in-flight stack whose innermost frame did not resolve reads as not
 * sampled yet, and an empty snapshot still makes a whole page. */
static void test_overview_html_of_little(void **state)
{
    pp_overview_t ov;
    const char *h;
    (void)state;

    make_overview(&ov);
    ov.inflight[0].frames[1] = 99; /* no such frame: "[unknown]" */
    h = rendered(&ov, pp_render_overview_html);
    assert_int_equal(unit_count(h, "not sampled yet"), 2);
    assert_null(strstr(h, "<details>"));
    unit_buf_reset(&buf);

    memset(&ov, 0, sizeof(ov));
    pp_overview_index(&ov);
    pp_render_overview_html(&out, &ov, &opt);
    h = unit_buf_str(&buf);
    assert_non_null(strstr(h, "No <code>PyProfSample</code> location is "
                              "configured"));
    assert_non_null(strstr(h, "No profiled request is running."));
    assert_non_null(strstr(h, "No kept request matches."));
    assert_non_null(strstr(h, "No capture armed yet."));
    assert_non_null(strstr(h, "</html>"));
    unit_buf_reset(&buf);
    pp_render_overview_json(&out, &ov, &opt);
    unit_assert_json(unit_buf_str(&buf), "d['locations'] == []",
                     "d['requests'] == []", "d['inflight'] == []",
                     "d['sampler']['samples'] == 0");
    pp_overview_free(&ov);
}

/* A graceful restart that renewed the store is said, with its date. */
static void test_overview_html_says_the_store_was_renewed(void **state)
{
    pp_overview_t ov;
    (void)state;

    make_overview(&ov);
    atomic_store(&ov.c.renewals, 2);
    atomic_store(&ov.c.renewed_us, (uint64_t)START_US);
    atomic_store(&ov.c.locations_reclaimed, 3);
    assert_non_null(strstr(rendered(&ov, pp_render_overview_html),
                           "renewed 2 time(s) at graceful restarts, the last "
                           "at 2023-11-14 22:13:20 UTC,"));
    assert_non_null(strstr(unit_buf_str(&buf), " and 3 location row(s) no "));
}

/* ---- pp_overview_load: the one read of a store ---- */

static int claim(pp_store_t *st, int loc, const char *id, uint32_t flags,
                 uint32_t capture)
{
    pp_req_info_t info = {.id = id,
                          .method = "GET",
                          .uri = "/u",
                          .vhost = "v",
                          .pid = getpid(),
                          .tid = 1,
                          .location = loc,
                          .interval_us = 10000,
                          .max_depth = 128,
                          .start_us = START_US,
                          .flags = flags,
                          .capture = capture};

    return pp_store_claim(st, &info, 0);
}

static uint32_t frame(pp_store_t *st, const char *fn)
{
    return pp_store_intern_frame(st, fn, strlen(fn), "/srv/m.py", 9, 3);
}

/* Rows of this and an earlier configuration, filters, the requests in
 * flight with their stacks, and what /metrics reads and does not. */
static void test_load_reads_rows_requests_and_stacks(void **state)
{
    const char *err = NULL;
    pp_store_t *st = pp_store_create(4ULL << 20, 4, 8, &err);
    pp_overview_t ov;
    const pp_pframe_t *leaf;
    int old, app, idx, i;
    uint32_t node;
    size_t k;
    (void)state;

    assert_non_null(st);
    old = pp_store_location_register(st, "/old", 10000);
    app = pp_store_location_register(st, "/app", 10000);
    idx = claim(st, old, "kept-old", 0, 0);
    pp_store_finish(st, idx, 200, 500000, 0, PP_KEEP_SLOW);
    atomic_fetch_add(&st->generation, 1); /* a graceful restart */
    assert_int_equal(pp_store_location_register(st, "/app", 10000), app);
    idx = claim(st, app, "kept-app", 0, 0);
    pp_store_finish(st, idx, 503, 900000, 0, PP_KEEP_SLOW);
    for (i = 0, node = 0; i < PP_OV_STACK_SHOWN + 5; i++) {
        char fn[16];
        snprintf(fn, sizeof(fn), "f%d", i);
        node = pp_store_intern_node(st, node, frame(st, fn));
    }
    idx = claim(st, app, "live", 0, 0);
    /* the sampler's write, as the module makes it */
    pp_store_sample(st, idx, pp_store_slot(st, idx)->rec.req.serial, node,
                    START_US, 10000, 0, PP_SAMPLE_ON_CPU);
    (void)claim(st, app, "live-unsampled", 0, 0);
    /* every counter a value of its own */
    for (k = 0; k < sizeof(st->c) / sizeof(uint64_t); k++) {
        atomic_store((_Atomic uint64_t *)(void *)&st->c + k, 1000 + k);
    }

    assert_int_equal(pp_overview_load(&ov, st, &opt, PP_OV_HTML), 0);
    assert_int_equal(ov.nloc, 1);
    assert_int_equal(ov.nrows, 2);
    assert_string_equal(ov.loc[0].path, "/app");
    assert_int_equal(ov.loc[0].row, app);
    assert_string_equal(pp_overview_path(&ov, old), "/old");
    assert_string_equal(pp_overview_path(&ov, 63), "");
    assert_int_equal(ov.loc[0].s.requests, 1);
    assert_int_equal(ov.loc[0].inflight, 2);
    assert_int_equal(ov.ntraces, 2);
    assert_string_equal(ov.traces[0].id, "kept-app"); /* slowest first */
    assert_string_equal(ov.traces[1].id, "kept-old");
    assert_int_equal(ov.ninflight, 2);
    assert_string_equal(ov.inflight[0].q.id, "live");
    /* the innermost PP_OV_STACK_SHOWN frames of the stack, root first */
    assert_int_equal(ov.inflight[0].depth, PP_OV_STACK_SHOWN + 5);
    assert_int_equal(ov.inflight[0].shown, PP_OV_STACK_SHOWN);
    leaf = pp_profile_pframe(&ov.stacks,
                             ov.inflight[0].frames[PP_OV_STACK_SHOWN - 1]);
    assert_string_equal(leaf->function, "f44");
    assert_true(leaf->known);
    assert_string_equal(
        pp_profile_pframe(&ov.stacks, ov.inflight[0].frames[0])->function,
        "f5");
    assert_int_equal(ov.inflight[1].shown, 0);
    assert_int_equal(ov.nslots, 4);
    /* the counters, every one of them copied */
    assert_int_equal(atomic_load(&ov.c.samples), 1000);
    assert_int_equal(memcmp(&ov.c, &st->c, sizeof(ov.c)), 0);
    assert_int_equal(strlen(ov.nonce), PP_NONCE_LEN);
    pp_overview_free(&ov);

    opt.filter_status = 5;
    assert_int_equal(pp_overview_load(&ov, st, &opt, PP_OV_JSON), 0);
    assert_int_equal(ov.ntraces, 1);
    assert_int_equal(ov.ntraces_listed, 1);
    assert_string_equal(ov.traces[0].id, "kept-app");
    assert_int_equal(ov.inflight[0].shown, 0); /* no stacks for the JSON */
    pp_overview_free(&ov);

    assert_int_equal(pp_overview_load(&ov, st, &opt, PP_OV_METRICS), 0);
    assert_null(ov.traces);
    assert_int_equal(ov.ninflight, 0);
    assert_int_equal(ov.loc[0].inflight, 2);
    assert_int_equal(ov.loc[0].class_hist[4][pp_hist_bucket(900000)], 1);
    assert_int_equal(ov.loc[0].class_sum_us[4], 900000);
    pp_overview_free(&ov);
    pp_store_destroy(st);
}

/* The HTML keeps PP_OV_HTML_ROWS of the kept requests (the JSON all of
 * them), and a capture's requests whatever the filter. */
static void test_load_keeps_the_html_rows_and_captures(void **state)
{
    const char *err = NULL;
    pp_store_t *st = pp_store_create(32ULL << 20, 4, 128, &err);
    pp_overview_t ov;
    int app, other, idx, i;
    uint32_t cap;
    char id[16];
    (void)state;

    assert_non_null(st);
    app = pp_store_location_register(st, "/app", 10000);
    other = pp_store_location_register(st, "/other", 10000);
    for (i = 0; i < PP_OV_HTML_ROWS + 10; i++) {
        snprintf(id, sizeof(id), "k-%d", i);
        idx = claim(st, i % 2 ? app : other, id, 0, 0);
        pp_store_finish(st, idx, 200, 100000 + i, 0, PP_KEEP_SLOW);
    }
    cap = pp_store_capture_arm(st, app, 3);
    for (i = 0; i < 2; i++) {
        snprintf(id, sizeof(id), "cap-%d", i);
        assert_int_equal(pp_store_capture_take(st, app), cap);
        idx = claim(st, app, id, PP_REQ_CAPTURED, cap);
        pp_store_finish(st, idx, 200, 1000 + i, 0, PP_KEEP_SLOW);
    }

    opt.min_us = 50000; /* leaves the captured ones out of the list */
    assert_int_equal(pp_overview_load(&ov, st, &opt, PP_OV_HTML), 0);
    assert_int_equal(ov.ntraces, PP_OV_HTML_ROWS + 10);
    assert_int_equal(ov.ntraces_listed, PP_OV_HTML_ROWS);
    assert_int_equal(ov.traces[0].duration_us, 100000 + PP_OV_HTML_ROWS + 9);
    assert_string_equal(ov.loc[0].path, "/app");
    assert_int_equal(ov.loc[0].capture_id, cap);
    assert_int_equal(ov.loc[0].capture_n, 3);
    assert_int_equal(ov.loc[0].capture_left, 1);
    assert_int_equal(ov.loc[0].ncaptured, 2);
    assert_string_equal(ov.captured[ov.loc[0].capture_first].id, "cap-0");
    assert_string_equal(ov.captured[ov.loc[0].capture_first + 1].id, "cap-1");
    assert_int_equal(ov.loc[1].capture_id, 0);
    assert_int_equal(ov.loc[1].ncaptured, 0);
    pp_overview_free(&ov);

    assert_int_equal(pp_overview_load(&ov, st, &opt, PP_OV_JSON), 0);
    assert_int_equal(ov.ntraces_listed, PP_OV_HTML_ROWS + 10);
    assert_int_equal(ov.ncaptured, 0);
    pp_overview_free(&ov);
    pp_store_destroy(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_of_a_snapshot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_overview_json_of_a_snapshot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_request_and_location_json_of_a_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overview_html_of_a_snapshot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_overview_html_lists_the_first_rows,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_overview_html_of_little, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_overview_html_says_the_store_was_renewed, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_load_reads_rows_requests_and_stacks, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_load_keeps_the_html_rows_and_captures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
