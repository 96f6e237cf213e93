/* test_classify.c: what a request's record says about how its time was
 * spent, from the samples' kinds to the request page's "Where the time
 * went": record_sample's counts and off-CPU weights by kind
 * (pp_store_sample.c), the kernel's run-queue count noted at the end
 * (pp_store_req.c), and the cut of the app's time (pp_req_time_split,
 * pp_render_request.c).  The sampler's own decisions (pp_sample_on_cpu,
 * pp_sample_how_wchan) are in test_sampler.c, which links pp_sampler.c.
 */
#include "unit.h"

#include <time.h>

#include "pp_overview.h"
#include "pp_render.h"
#include "pp_render_int.h"
#include "pp_store.h"
#include "pp_store_testing.h"

#define START_US 1700000000000000LL

typedef struct fix {
    pp_store_t *st;
    int idx;
    uint64_t serial;
    uint32_t node;
    pp_record_t rec; /* the slot as last read */
} fix_t;

static int setup(void **state)
{
    const char *err = NULL;
    fix_t *f = calloc(1, sizeof(*f));
    /* the rest zeroed, as the module's claim gets it */
    pp_req_info_t info = {.id = "req-1",
                          .method = "GET",
                          .uri = "/app/x",
                          .vhost = "www.example.org",
                          .tid = 4242,
                          .interval_us = 10000,
                          .max_depth = 128,
                          .start_us = START_US};

    if (!f || !(f->st = pp_store_create(4ULL << 20, 4, 8, &err))) {
        return -1;
    }
    info.pid = (int32_t)getpid();
    info.location = pp_store_location_register(f->st, "/app", 10000);
    if ((f->idx = pp_store_claim(f->st, &info, 0)) < 0) {
        return -1;
    }
    f->serial = pp_store_slot(f->st, f->idx)->rec.req.serial;
    f->node = pp_store_intern_node(
        f->st, 0, pp_store_intern_frame(f->st, "main", 4, "app.py", 6, 1));
    *state = f;
    return f->node ? 0 : -1;
}

static int teardown(void **state)
{
    fix_t *f = *state;

    pp_store_destroy(f->st);
    free(f);
    return 0;
}

static void sample(fix_t *f, uint64_t weight_us, uint64_t cpu_us, int how)
{
    pp_store_sample(f->st, f->idx, f->serial, f->node, START_US, weight_us,
                    cpu_us, how);
}

static const pp_req_t *read_back(fix_t *f)
{
    assert_true(pp_store_read_slot(f->st, (uint32_t)f->idx, &f->rec));
    return &f->rec.req;
}

/* Waiting for a core is a kind of off CPU, like the GIL: counted within
 * samples_off_cpu, apart from the GIL, and its time off CPU (the weight
 * less the CPU time) summed apart from the rest. */
static void test_wait_core_is_counted_within_off_cpu(void **state)
{
    fix_t *f = *state;
    const pp_req_t *q;

    sample(f, 10000, 9000, PP_SAMPLE_ON_CPU);
    sample(f, 10000, 1000, PP_SAMPLE_WAIT_CORE);
    sample(f, 12000, 0, PP_SAMPLE_WAIT_CORE);
    sample(f, 10000, 0, PP_SAMPLE_GIL_WAIT);
    sample(f, 10000, 2000, PP_SAMPLE_OFF_CPU);
    sample(f, 10000, 0, PP_SAMPLE_WAIT_CORE | PP_SAMPLE_TRUNCATED);
    q = read_back(f);
    assert_int_equal(q->samples, 6);
    assert_int_equal(q->samples_on_cpu, 1);
    assert_int_equal(q->samples_off_cpu, 5);
    assert_int_equal(q->samples_gil_wait, 1);
    assert_int_equal(q->samples_wait_core, 3);
    assert_int_equal(q->off_core_us, 9000 + 12000 + 10000);
    assert_int_equal(q->off_gil_us, 10000);
    assert_int_equal(q->off_other_us, 8000);
    assert_true(q->flags & PP_REQ_TRUNCATED);
    assert_int_equal(q->sampled_cpu_us, 12000);
}

/* A CPU time above a sample's weight (clock and weight read apart) adds no
 * negative time off CPU. */
static void test_off_cpu_time_is_never_negative(void **state)
{
    fix_t *f = *state;
    const pp_req_t *q;

    sample(f, 1000, 1500, PP_SAMPLE_WAIT_CORE);
    sample(f, 1000, 1500, PP_SAMPLE_OFF_CPU);
    q = read_back(f);
    assert_int_equal(q->off_core_us, 0);
    assert_int_equal(q->off_other_us, 0);
}

/* The kernel's count of the thread's run-queue waits, noted when it
 * unregisters, only for the request it served. */
static void test_run_delay_is_noted_for_its_request_only(void **state)
{
    fix_t *f = *state;
    const pp_req_t *q;

    pp_store_note_run_delay(f->st, f->idx, f->serial + 1, 777);
    q = read_back(f);
    assert_false(q->flags & PP_REQ_RUN_DELAY);
    pp_store_note_run_delay(f->st, f->idx, f->serial, 4321);
    q = read_back(f);
    assert_true(q->flags & PP_REQ_RUN_DELAY);
    assert_int_equal(q->run_delay_us, 4321);
}

/* ---- the cut of a request's time (no store: hand-made records) ---- */

/* 1,000 ms, all of it the app in Python: 250 ms of CPU, 45 samples. */
static void busy_request(pp_req_t *q)
{
    memset(q, 0, sizeof(*q));
    q->start_us = START_US;
    q->duration_us = 1000000;
    q->handler_start_us = START_US;
    q->app_end_us = START_US + 1000000;
    q->sampled_cpu_us = 250000;
    q->samples_on_cpu = 5;
    q->samples_off_cpu = 40;
}

/* The app's time in Python, cut four ways (ms): on CPU, waiting for a
 * core, for the GIL, and off CPU otherwise. */
#define assert_cut(s, on_, core_, gil_, off_)        \
    do {                                             \
        assert_float_equal((s).on, (on_), 1e-9);     \
        assert_float_equal((s).core, (core_), 1e-9); \
        assert_float_equal((s).gil, (gil_), 1e-9);   \
        assert_float_equal((s).off, (off_), 1e-9);   \
    } while (0)

/* On a busy core a thread runs in slices shorter than the interval: few
 * samples see it on CPU for half of one, yet its CPU clock says how long
 * it ran.  The cut takes the clock, not the count, and the kernel's
 * run-queue count for the wait for a core: the time blocked is what is
 * left, cut between the GIL and sleep as the samples saw it. */
static void test_split_measures_cpu_and_the_wait_for_a_core(void **state)
{
    pp_req_t q;
    pp_time_split_t s;

    (void)state;
    busy_request(&q);
    q.samples_wait_core = 30;
    q.samples_gil_wait = 2;
    q.off_core_us = 500000; /* the samples' weights overstate the wait */
    q.off_gil_us = 50000;
    q.off_other_us = 150000;
    q.flags = PP_REQ_RUN_DELAY;
    q.run_delay_us = 550000;
    pp_req_time_split(&q, &s);
    assert_float_equal(s.total, 1000, 1e-9);
    assert_float_equal(s.app, 1000, 1e-9);
    assert_float_equal(s.before + s.after + s.outside, 0, 1e-9);
    /* 200 ms blocked: a quarter on a futex, the rest asleep */
    assert_cut(s, 250, 550, 50, 150);
}

/* Without the kernel's count (a request still running, no
 * CONFIG_SCHED_INFO) the time not on CPU is cut by the samples' time off
 * CPU of each kind: weights, so one late, long sample counts for its
 * length. */
static void test_split_without_the_kernel_count_uses_the_weights(void **state)
{
    pp_req_t q;
    pp_time_split_t s;

    (void)state;
    busy_request(&q);
    q.samples_wait_core = 10;
    q.samples_gil_wait = 10;
    q.off_core_us = 450000;
    q.off_gil_us = 150000;
    q.off_other_us = 150000;
    pp_req_time_split(&q, &s);
    assert_cut(s, 250, 450, 150, 150);
}

/* The parts never exceed the app's time in Python, whatever the counts
 * say (clocks read apart, a kernel count that covers Apache's part too). */
static void test_split_parts_stay_within_the_app(void **state)
{
    pp_req_t q;
    pp_time_split_t s;

    (void)state;
    busy_request(&q);
    q.sampled_cpu_us = 800000;
    q.flags = PP_REQ_RUN_DELAY;
    q.run_delay_us = 900000;
    q.off_other_us = 100000;
    pp_req_time_split(&q, &s);
    assert_float_equal(s.on, 800, 1e-9);
    assert_float_equal(s.core, 200, 1e-9);
    assert_float_equal(s.gil + s.off, 0, 1e-9);
    q.sampled_cpu_us = 2000000;
    pp_req_time_split(&q, &s);
    assert_float_equal(s.on, 1000, 1e-9);
    assert_float_equal(s.core + s.gil + s.off, 0, 1e-9);
}

/* A quiet machine, a request that computes then sleeps: no wait for a
 * core, and the sleep is all off CPU. */
static void test_split_of_a_quiet_request(void **state)
{
    pp_req_t q;
    pp_time_split_t s;

    (void)state;
    busy_request(&q);
    q.sampled_cpu_us = 500000;
    q.off_other_us = 480000;
    q.flags = PP_REQ_RUN_DELAY;
    q.run_delay_us = 0;
    pp_req_time_split(&q, &s);
    assert_cut(s, 500, 0, 0, 500);
}

/* ---- GIL blame: the record's side ---- */

static pp_gil_holder_t holder(uint64_t serial, int32_t tid, uint32_t frame)
{
    pp_gil_holder_t h;

    memset(&h, 0, sizeof(h));
    h.serial = serial;
    h.tid = tid;
    h.frame = frame;
    h.location = serial ? 0 : PP_GIL_NO_LOCATION;
    if (serial) {
        snprintf(h.id, sizeof(h.id), "holder-%llu", (unsigned long long)serial);
        snprintf(h.method, sizeof(h.method), "GET");
        snprintf(h.uri, sizeof(h.uri), "/app/cpu/%llu",
                 (unsigned long long)serial);
    }
    return h;
}

static void gil_sample(fix_t *f, uint64_t weight_us, int how,
                       const pp_gil_holder_t *h)
{
    pp_store_sample_gil(f->st, f->idx, f->serial, f->node, START_US, weight_us,
                        0, how, h);
}

/* Waiting to enter Python is off CPU, counted and weighed apart, and cut
 * out of the app's time before the rest is split; a GIL wait in Python is
 * off CPU too, its weight summed as gil_wait_us. */
static void test_gil_enter_and_wait_are_weighed_apart(void **state)
{
    fix_t *f = *state;
    pp_gil_holder_t h = holder(7, 0, 0);
    pp_time_split_t s;
    pp_req_t q;

    gil_sample(f, 5000, PP_SAMPLE_GIL_ENTER, &h);
    gil_sample(f, 5000, PP_SAMPLE_GIL_ENTER, &h);
    gil_sample(f, 3000, PP_SAMPLE_GIL_WAIT, &h);
    gil_sample(f, 2000, PP_SAMPLE_ON_CPU, &h); /* not a wait: not charged */
    q = *read_back(f);
    assert_int_equal(q.samples, 4);
    assert_int_equal(q.samples_gil_enter, 2);
    assert_int_equal(q.gil_enter_us, 10000);
    assert_int_equal(q.samples_gil_wait, 1);
    assert_int_equal(q.gil_wait_us, 3000);
    /* all of them on or off CPU (enter and wait off) */
    assert_int_equal(q.samples_on_cpu + q.samples_off_cpu, 4);
    assert_int_equal(q.samples_on_cpu, 1);
    assert_int_equal(q.ngil_holders, 1);
    assert_int_equal(f->rec.gil_holders[0].samples, 3);
    assert_int_equal(f->rec.gil_holders[0].wait_us, 13000);

    q.duration_us = 20000;
    pp_req_time_split(&q, &s);
    assert_float_equal(s.enter, 10, 1e-9);
    assert_true(s.on + s.core + s.gil + s.off <= 10 + 1e-9);
}

/* One entry per holder (its request, or its thread when it served none)
 * and frame; what does not fit in PP_GIL_HOLDERS - 1 entries goes to the
 * last, which says so. */
static void test_gil_holders_fold_into_other(void **state)
{
    fix_t *f = *state;
    pp_gil_holder_t h;
    uint32_t i;

    for (i = 1; i <= 10; i++) {
        h = holder(i, 0, 0);
        gil_sample(f, 1000 * i, PP_SAMPLE_GIL_WAIT, &h);
    }
    h = holder(1, 0, 0);
    gil_sample(f, 500, PP_SAMPLE_GIL_WAIT, &h); /* the same again */
    h = holder(1, 0, 9);                        /* same request, other frame */
    gil_sample(f, 1, PP_SAMPLE_GIL_WAIT, &h);
    (void)read_back(f);
    assert_int_equal(f->rec.req.ngil_holders, PP_GIL_HOLDERS);
    assert_int_equal(f->rec.gil_holders[0].serial, 1);
    assert_int_equal(f->rec.gil_holders[0].samples, 2);
    assert_int_equal(f->rec.gil_holders[0].wait_us, 1500);
    assert_string_equal(f->rec.gil_holders[0].id, "holder-1");
    for (i = 1; i < PP_GIL_HOLDERS - 1; i++) {
        assert_int_equal(f->rec.gil_holders[i].serial, i + 1);
    }
    /* 8, 9, 10 and (1, frame 9) */
    assert_int_equal(f->rec.gil_holders[PP_GIL_HOLDERS - 1].location,
                     PP_GIL_OTHER);
    assert_int_equal(f->rec.gil_holders[PP_GIL_HOLDERS - 1].samples, 4);
    assert_int_equal(f->rec.gil_holders[PP_GIL_HOLDERS - 1].wait_us,
                     8000 + 9000 + 10000 + 1);
}

/* The request's JSON lists its holders largest first: the holder's request
 * id (null for none), its URI, its innermost frame, the wait and samples. */
static void test_gil_holders_json(void **state)
{
    fix_t *f = *state;
    uint32_t frame =
        pp_store_intern_frame(f->st, "build_rows", 10, "/srv/views.py", 13, 88);
    pp_gil_holder_t a = holder(3, 0, frame), b = holder(0, 77, 0);
    pp_render_opts_t opt;
    pp_request_view_t v;
    unit_buf_t buf = {NULL, 0, 0};
    pp_sink_t out = unit_sink(&buf);
    const char *j;

    gil_sample(f, 2000, PP_SAMPLE_GIL_ENTER, &b);
    gil_sample(f, 9000, PP_SAMPLE_GIL_WAIT, &a);
    gil_sample(f, 1000, PP_SAMPLE_GIL_WAIT, &a);
    (void)read_back(f);
    memset(&opt, 0, sizeof(opt));
    opt.base = "/server-profile";
    pp_request_load(&v, f->st, &f->rec, 1);
    pp_render_request_json(&out, &v, &opt);
    pp_request_free(&v);
    j = unit_buf_str(&buf);
    assert_non_null(strstr(j, "\"gil_wait_ms\":12.000,\"gil_enter_ms\":2.000,"
                              "\"samples_gil_enter\":1"));
    assert_non_null(strstr(
        j, "\"gil_holders\":[{\"request_id\":\"holder-3\",\"method\":\"GET\","
           "\"uri\":\"/app/cpu/3\",\"location\":\"/app\",\"tid\":0,"
           "\"other\":false,\"function\":\"build_rows\",\"file\":"
           "\"/srv/views.py\",\"line\":88,\"ms\":10.000,\"samples\":2},"
           "{\"request_id\":null,\"method\":\"\",\"uri\":\"\",\"location\":"
           "null,\"tid\":77,\"other\":false,\"function\":\"\",\"file\":\"\","
           "\"line\":0,\"ms\":2.000,\"samples\":1}]"));
    unit_buf_free(&buf);
}

/* The wait is also counted per location, written with the sample: suffered
 * by the waiter's, caused by the holder's, and by (waiter location,
 * holder frame) in the holder's rows, whose requests delayed grow when
 * the waiter ends; a holder serving no request goes to a store counter.
 * pp_gil_rows_load reads the rows back, frames resolved. */
static void test_gil_wait_per_location(void **state)
{
    fix_t *f = *state;
    uint32_t frame =
        pp_store_intern_frame(f->st, "build_rows", 10, "/srv/views.py", 13, 88);
    pp_gil_holder_t a = holder(3, 0, frame), b = holder(0, 77, 0);
    const pp_location_t *loc = pp_store_location(f->st, 0);
    pp_gil_rows_t rows;

    gil_sample(f, 4000, PP_SAMPLE_GIL_ENTER, &a);
    gil_sample(f, 6000, PP_SAMPLE_GIL_WAIT, &a);
    gil_sample(f, 500, PP_SAMPLE_GIL_WAIT, &b);
    assert_int_equal(atomic_load(&loc->gil_wait_us), 10500);
    assert_int_equal(atomic_load(&loc->gil_blocking_us), 10000);
    assert_int_equal(atomic_load(&f->st->c.gil_blocking_no_request_us), 500);
    pp_store_finish(f->st, f->idx, 200, 20000, 0, PP_KEEP_NONE);
    assert_int_equal(pp_gil_rows_load(&rows, f->st), 0);
    assert_int_equal(rows.n, 1);
    assert_int_equal(rows.rows[0].holder, 0);
    assert_int_equal(rows.rows[0].waiter, 0);
    assert_string_equal(rows.rows[0].f.function, "build_rows");
    assert_int_equal(rows.rows[0].f.line, 88);
    assert_int_equal(rows.rows[0].samples, 2);
    assert_int_equal(rows.rows[0].wait_us, 10000);
    assert_int_equal(rows.rows[0].delayed, 1);
    assert_string_equal(rows.path[0], "/app");
    pp_gil_rows_free(&rows);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_wait_core_is_counted_within_off_cpu, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off_cpu_time_is_never_negative,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_run_delay_is_noted_for_its_request_only, setup, teardown),
        cmocka_unit_test(test_split_measures_cpu_and_the_wait_for_a_core),
        cmocka_unit_test(test_split_without_the_kernel_count_uses_the_weights),
        cmocka_unit_test(test_split_parts_stay_within_the_app),
        cmocka_unit_test(test_split_of_a_quiet_request),
        cmocka_unit_test_setup_teardown(
            test_gil_enter_and_wait_are_weighed_apart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gil_holders_fold_into_other, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gil_holders_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gil_wait_per_location, setup,
                                        teardown),
    };

    return cmocka_run_group_tests_name("classification", tests, NULL, NULL);
}
