/* test_pages.c: the request and location HTML pages as pure functions of
 * their snapshots (pp_request_page_t, pp_location_page_t in
 * pp_overview.h).
 *
 * Every test renders a page made by hand, with no store behind it: a
 * hostile URI, location path, application root and function name must
 * come out escaped, the request's wall time cut into the bar's parts with
 * their exact widths, the location's counters and totals as they are,
 * the diff drawn from its two sides, and a load that ran out of memory
 * as the notice the page prints in place of its views.
 */
#include "unit.h"

#include "pp_overview.h"
#include "pp_render.h"

#define NOW_US 1700000060000000LL /* 2023-11-14T22:14:20Z */
#define START_US 1700000000123000LL

UNIT_PAGE_FIXTURE(NOW_US)

/* main -> EVIL_FN x3 (30 ms, 10 on CPU), main -> io x1 (10 ms). */
static void evil_profile(pp_profile_t *p)
{
    uint32_t m, e, io;

    pp_profile_init(p);
    m = pp_profile_new_frame(p, "main", "/srv/app/app.py", 1);
    e = pp_profile_new_frame(p, EVIL_FN, "/srv/app/e.py", 7);
    io = pp_profile_new_frame(p, "io", "/srv/app/app.py", 9);
    {
        uint32_t a[] = {m, e}, b[] = {m, io};
        unit_add_stack(p, a, 2, 3, 30000, 10000);
        unit_add_stack(p, b, 2, 1, 10000, 0);
    }
    pp_profile_sort(p);
}

/* A finished request of 50 ms: 5 ms in Apache before the app and 5 after
 * it; of the app's 40, 20 on CPU and 20 waiting, cut 12 on the GIL and
 * 8 on I/O as the time the samples saw off CPU was (no kernel count of
 * the waits for a core). */
static pp_record_t *make_request(pp_request_page_t *pg)
{
    pp_record_t *rec = calloc(1, sizeof(*rec));
    pp_req_t *q;

    assert_non_null(rec);
    q = &rec->req;
    memset(pg, 0, sizeof(*pg));
    snprintf(q->id, sizeof(q->id), "r-1");
    snprintf(q->method, sizeof(q->method), "GET");
    snprintf(q->uri, sizeof(q->uri), "%s", EVIL_URI);
    snprintf(q->vhost, sizeof(q->vhost), "www.example.org");
    q->pid = 4321;
    q->tid = 8765;
    q->location = 2;
    q->status = 200;
    q->interval_us = 10000;
    q->start_us = START_US;
    q->duration_us = 50000;
    q->cpu_us = 20000;
    q->handler_start_us = START_US + 5000;
    q->app_end_us = START_US + 45000;
    q->samples = 4;
    q->samples_on_cpu = 2;
    q->samples_off_cpu = 2;
    q->samples_gil_wait = 1;
    q->sampled_cpu_us = 20000;
    q->off_gil_us = 12000;
    q->off_other_us = 8000;
    pg->rec = rec;
    snprintf(pg->location, sizeof(pg->location), "%s", EVIL_PATH);
    snprintf(pg->root, sizeof(pg->root), "/srv/app");
    evil_profile(&pg->p);
    assert_int_equal(pp_tree_build(&pg->tree, &pg->p), 0);
    return rec;
}

/* The page of pg, whose record is rec; both freed once it is written. */
static const char *request_html(pp_request_page_t *pg, pp_record_t *rec)
{
    pp_render_request_html(&out, pg, &opt);
    pp_request_page_free(pg);
    free(rec);
    return unit_buf_str(&buf);
}

static void test_request_html_of_a_snapshot(void **state)
{
    pp_request_page_t pg;
    pp_record_t *rec = make_request(&pg);
    const char *h;
    (void)state;

    h = request_html(&pg, rec);
    assert_true(unit_utf8_valid(buf.p, buf.n));
    assert_null(strstr(h, "<img"));
    assert_null(strstr(h, "<script>f()"));
    assert_non_null(strstr(h, "<title>Request r-1"));
    assert_non_null(
        strstr(h, "<h2>GET <span class=mono>" EVIL_URI_ESC "</span></h2>"));
    assert_non_null(strstr(h, "<dt>Status</dt><dd>200</dd><dt>Duration</dt>"
                              "<dd>50.0 ms</dd>"));
    /* the location, linked by its path, encoded in the link */
    assert_non_null(strstr(h, "<dt>Location</dt><dd class=mono><a href=\""
                              "/server-profile/location?path=%2Fa%22%3Cb%3E"
                              "%26c\">" EVIL_PATH_ESC "</a></dd>"));
    /* where the time went: each part its share of the 50 ms */
    assert_non_null(strstr(
        h, "<h2>Where the time went</h2><div class=split>"
           "<span class=\"seg before\" style=\"width:10.00%\" title=\"Apache "
           "before the app: 5.0 ms\"></span>"
           "<span class=\"seg on\" style=\"width:40.00%\" title=\"Python on "
           "CPU: 20.0 ms\"></span>"
           "<span class=\"seg gil\" style=\"width:24.00%\" title=\"GIL "
           "wait in Python: 12.0 ms\"></span>"
           "<span class=\"seg off\" style=\"width:16.00%\" title=\"Python off "
           "CPU (sleep, I/O): 8.0 ms\"></span>"
           "<span class=\"seg after\" style=\"width:10.00%\" title=\"Apache "
           "after the app: 5.0 ms\"></span></div>"));
    assert_non_null(strstr(h, "Python on CPU 20.0 ms (2 samples)"));
    /* the views, drawn from the snapshot's tree */
    assert_non_null(strstr(h, "<h2>Flame graph</h2>"));
    assert_non_null(strstr(h, "<tr><td class=fn title=\"" EVIL_FN_ESC "\">"));
    assert_true(unit_count(h, EVIL_FN_ESC) >= 3);
    assert_non_null(strstr(h, "</html>"));
}

/* The GIL sentence names the largest holder, its request linked (id
 * encoded, method and URI escaped), the share of all its entries, and the
 * function and file of its largest (escaped); in daemon mode the process. */
static void test_request_html_names_the_gil_holder(void **state)
{
    pp_request_page_t pg;
    pp_record_t *rec = make_request(&pg);
    const char *h;
    (void)state;

    rec->req.gil_wait_us = 8000;
    rec->req.gil_enter_us = 2000;
    rec->req.flags |= PP_REQ_DAEMON;
    rec->req.daemon_pid = 999;
    snprintf(rec->req.process_group, sizeof(rec->req.process_group), "g<1>");
    pg.gil.n = 3;
    pg.gil.e[0].h.serial = 5;
    snprintf(pg.gil.e[0].h.id, sizeof(pg.gil.e[0].h.id), "h/1");
    snprintf(pg.gil.e[0].h.method, sizeof(pg.gil.e[0].h.method), "GET");
    snprintf(pg.gil.e[0].h.uri, sizeof(pg.gil.e[0].h.uri), "%s", EVIL_URI);
    pg.gil.e[0].h.wait_us = 6000;
    pg.gil.e[0].f.function = EVIL_FN;
    pg.gil.e[0].f.file = "/srv/app/views.py";
    pg.gil.e[0].f.line = 88;
    pg.gil.e[1].h = pg.gil.e[0].h; /* the same request, another line */
    pg.gil.e[1].h.wait_us = 3000;
    pg.gil.e[1].f = pg.gil.e[0].f;
    pg.gil.e[2].h.tid = 77; /* no request */
    pg.gil.e[2].h.wait_us = 1000;
    pg.gil.e[2].f.function = "";
    pg.gil.e[2].f.file = "";
    h = request_html(&pg, rec);
    assert_non_null(strstr(
        h, "<p class=gilblame>Waited 10 ms for the GIL, 90% behind <a "
           "href=\"/server-profile/request/h%2F1\">GET " EVIL_URI_ESC
           "</a> in <span class=mono>" EVIL_FN_ESC "</span> (<span "
           "class=mono>views.py:88</span>), inside mod_wsgi daemon process "
           "pid 999 (group g&lt;1&gt;).</p>"));
    assert_non_null(strstr(h, "waiting to enter Python 2.0 ms"));
}

/* What the load could not read, the page says in place of its views. */
static void test_request_html_says_the_load_failed(void **state)
{
    pp_request_page_t pg;
    pp_record_t *rec = make_request(&pg);
    const char *h;
    (void)state;

    pp_request_page_free(&pg);
    pg.failed = PP_PAGE_NO_STACKS;
    pp_render_request_html(&out, &pg, &opt);
    h = unit_buf_str(&buf);
    assert_non_null(strstr(h, "<p class=empty>Out of memory reading the "
                              "stacks.</p></main>"));
    assert_null(strstr(h, "Flame graph"));

    unit_buf_reset(&buf);
    pg.failed = PP_PAGE_NO_TREE;
    pp_render_request_html(&out, &pg, &opt);
    assert_non_null(strstr(unit_buf_str(&buf), "<p class=empty>Out of memory "
                                               "building the tree.</p>"));
    free(rec);
}

static void make_location(pp_location_page_t *pg)
{
    pp_ov_location_t *l = &pg->l;

    memset(pg, 0, sizeof(*pg));
    l->row = 2;
    snprintf(l->path, sizeof(l->path), "%s", EVIL_PATH);
    snprintf(l->root, sizeof(l->root), "/srv/<app>");
    l->interval_us = 20000;
    l->s.requests = 11;
    l->s.samples = 4;
    l->s.max_us = 40000;
    pp_profile_init(&pg->rest);
    evil_profile(&pg->p);
    pg->samples = pg->p.samples;
    pg->weight_us = pg->p.weight_us;
    pg->cpu_us = pg->p.cpu_us;
    assert_int_equal(pp_tree_build(&pg->tree, &pg->p), 0);
}

static void test_location_html_of_a_snapshot(void **state)
{
    pp_location_page_t pg;
    const char *h;
    (void)state;

    make_location(&pg);
    pp_render_location_html(&out, &pg, &opt);
    pp_location_page_free(&pg);
    h = unit_buf_str(&buf);
    assert_true(unit_utf8_valid(buf.p, buf.n));
    assert_null(strstr(h, "<b>"));
    assert_null(strstr(h, "<app>"));
    assert_null(strstr(h, "<script>f()"));
    assert_non_null(strstr(h, "<h2>All sampled requests under <span "
                              "class=mono>" EVIL_PATH_ESC "</span></h2><dl "
                              "class=kv><dt>Requests</dt><dd>11, 4 samples "
                              "every 20.0 ms</dd>"));
    assert_non_null(strstr(h, "max 40 ms</dd>"));
    assert_non_null(strstr(h, "<dt>Application root</dt><dd class=mono>"
                              "/srv/&lt;app&gt;</dd>"));
    assert_non_null(
        strstr(h, "/pprof?path=" EVIL_PATH_ESC "&amp;seconds=30</span>"));
    assert_non_null(strstr(h, "<a class=\"tab on\" href=\"?path=%2Fa%22%3Cb"
                              "%3E%26c\">since start</a>"));
    assert_non_null(strstr(h, "<p class=muted>4 samples, 0.0 s of request "
                              "time, 25% of it on CPU.</p><h2>Flame graph"
                              "</h2>"));
    assert_non_null(strstr(h, "<tr><td class=fn title=\"" EVIL_FN_ESC "\">"));
    assert_null(strstr(h, "What grows"));
    assert_non_null(strstr(h, "</html>"));

    /* a window with no sample, and a load that ran out of memory */
    unit_buf_reset(&buf);
    memset(&pg, 0, sizeof(pg));
    pp_render_location_html(&out, &pg, &opt);
    assert_non_null(strstr(unit_buf_str(&buf), "<p class=empty>No samples in "
                                               "this window.</p>"));
    unit_buf_reset(&buf);
    pg.failed = PP_PAGE_NO_STACKS;
    pp_render_location_html(&out, &pg, &opt);
    assert_non_null(strstr(unit_buf_str(&buf), "<p class=empty>Out of memory "
                                               "reading the samples.</p>"));
}

/* The slowest requests (main -> EVIL_FN x3, main -> io x1) against the
 * rest (main -> io x3, main -> EVIL_FN x1): the diff from both trees,
 * then the slow side's own views. */
static void test_location_diff_html_of_a_snapshot(void **state)
{
    pp_location_page_t pg;
    const char *h, *diff, *slow;
    uint32_t m, e, io;
    (void)state;

    make_location(&pg);
    pg.diff = opt.diff = 1;
    m = pp_profile_new_frame(&pg.rest, "main", "/srv/app/app.py", 1);
    io = pp_profile_new_frame(&pg.rest, "io", "/srv/app/app.py", 9);
    e = pp_profile_new_frame(&pg.rest, EVIL_FN, "/srv/app/e.py", 7);
    {
        uint32_t a[] = {m, io}, b[] = {m, e};
        unit_add_stack(&pg.rest, a, 2, 3, 30000, 0);
        unit_add_stack(&pg.rest, b, 2, 1, 10000, 0);
    }
    pp_profile_sort(&pg.rest);
    assert_int_equal(pp_tree_build(&pg.rest_tree, &pg.rest), 0);
    pp_render_location_html(&out, &pg, &opt);
    /* the rest's tree is let go once the diff is drawn */
    assert_null(pg.rest_tree.v);
    pp_location_page_free(&pg);
    h = unit_buf_str(&buf);
    assert_null(strstr(h, "<script>f()"));
    assert_non_null(strstr(h, "<a class=\"tab on\" href=\"?path=%2Fa%22%3Cb"
                              "%3E%26c&amp;view=diff\">slowest 5% vs the rest"
                              "</a>"));
    diff = strstr(h, "<h2>What grows in the slowest requests</h2>");
    assert_non_null(diff);
    assert_non_null(strstr(diff, "4 samples from the slowest requests"));
    assert_non_null(strstr(diff, "against 4 from the rest"));
    assert_non_null(strstr(diff, "<tr><td class=fn>" EVIL_FN_ESC "</td><td "
                                 "class=loc>/srv/app/e.py</td><td class=num>"
                                 "75.0%</td><td class=num>25.0%</td><td "
                                 "class=\"num up\">+50.0</td>"));
    assert_non_null(strstr(diff, "<tr><td class=fn>io</td><td class=loc>"
                                 "/srv/app/app.py</td><td class=num>25.0%"
                                 "</td><td class=num>75.0%</td><td "
                                 "class=\"num down\">-50.0</td>"));
    slow = strstr(diff, "<h3>The slowest requests only</h3><h2>Flame graph");
    assert_non_null(slow);
    assert_non_null(
        strstr(slow, "<tr><td class=fn title=\"" EVIL_FN_ESC "\">"));
    assert_null(strstr(h, "of request time"));

    /* either side short of memory: the notice, no table */
    unit_buf_reset(&buf);
    memset(&pg, 0, sizeof(pg));
    pg.diff = 1;
    pg.failed = PP_PAGE_NO_TREE;
    pp_render_location_html(&out, &pg, &opt);
    h = unit_buf_str(&buf);
    assert_non_null(strstr(h, "<h2>What grows in the slowest requests</h2>"
                              "<p class=empty>Out of memory building the "
                              "tree.</p>"));
    assert_null(strstr(h, "<h3>"));
}

/* The location page's GIL contention, after the profile: one table when
 * the location only made its own requests wait, both ways otherwise. */
static void gil_rows(pp_location_page_t *pg, const int (*hw)[2], size_t n)
{
    size_t i;

    pg->gil.rows = calloc(n, sizeof(*pg->gil.rows));
    assert_non_null(pg->gil.rows);
    pg->gil.n = n;
    for (i = 0; i < n; i++) {
        pg->gil.rows[i].holder = hw[i][0];
        pg->gil.rows[i].waiter = hw[i][1];
        pg->gil.rows[i].f.function = "build_rows";
        pg->gil.rows[i].f.file = "/srv/views.py";
        pg->gil.rows[i].f.line = (uint32_t)(80 + i);
        pg->gil.rows[i].samples = 3;
        pg->gil.rows[i].wait_us = 30000;
        pg->gil.rows[i].delayed = 1;
    }
    snprintf(pg->gil.path[2], sizeof(pg->gil.path[2]), "/app");
    snprintf(pg->gil.path[3], sizeof(pg->gil.path[3]), "/reports");
    snprintf(pg->gil.path[4], sizeof(pg->gil.path[4]), "/api");
}

static void test_location_html_gil_contention(void **state)
{
    static const int self[][2] = {{2, 2}, {2, 2}};
    static const int both[][2] = {{3, 2}, {2, 4}, {3, 4}};
    pp_location_page_t pg;
    const char *h, *gil;
    (void)state;

    make_location(&pg);
    pg.l.gil_wait_us = 60000;
    pg.l.gil_blocking_us = 60000;
    gil_rows(&pg, self, 2);
    pp_render_location_html(&out, &pg, &opt);
    pp_location_page_free(&pg);
    h = unit_buf_str(&buf);
    gil = strstr(h, "<h2>GIL contention</h2>");
    assert_non_null(gil);
    assert_true(gil > strstr(h, "<h2>Flame graph</h2>"));
    assert_non_null(strstr(gil, "<h3>Its own requests, behind each other"
                                "</h3><table class=contention>"));
    assert_null(strstr(gil, "Waited behind"));
    assert_null(strstr(gil, "Made wait</h3>"));
    assert_non_null(strstr(gil, "/srv/views.py:81"));

    unit_buf_reset(&buf);
    make_location(&pg);
    pg.l.gil_wait_us = 30000;
    pg.l.gil_blocking_us = 30000;
    gil_rows(&pg, both, 3);
    pp_render_location_html(&out, &pg, &opt);
    pp_location_page_free(&pg);
    h = unit_buf_str(&buf);
    gil = strstr(h, "<h2>GIL contention</h2>");
    assert_non_null(gil);
    assert_null(strstr(gil, "Its own requests"));
    /* behind /reports (row 0), then making /api wait (row 1); row 2
     * (/reports making /api wait) is neither */
    assert_non_null(strstr(gil, "<h3>Waited behind</h3>"));
    assert_non_null(strstr(gil, "<h3>Made wait</h3>"));
    assert_non_null(strstr(gil, "/srv/views.py:80"));
    assert_non_null(strstr(gil, "/srv/views.py:81"));
    assert_null(strstr(gil, "/srv/views.py:82"));

    /* no wait either way: no section */
    unit_buf_reset(&buf);
    make_location(&pg);
    pp_render_location_html(&out, &pg, &opt);
    pp_location_page_free(&pg);
    assert_null(strstr(unit_buf_str(&buf), "GIL contention"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request_html_of_a_snapshot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_request_html_names_the_gil_holder,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_html_says_the_load_failed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_location_html_of_a_snapshot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_location_diff_html_of_a_snapshot,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_location_html_gil_contention,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
