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

#include "pp_render_int.h"
#include "pp_store.h"
#include "pp_store_testing.h"

#define START_US 1700000000000000LL

typedef struct fix {
    pp_store_t *st;
    int idx;
    uint64_t serial;
    uint32_t node;
    pp_record_t *rec;
} fix_t;

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof(*f));
    const char *err = NULL;
    pp_req_info_t info;
    int loc;

    if (!f) {
        return -1;
    }
    f->st = pp_store_create(4ULL << 20, 4, 8, &err);
    f->rec = calloc(1, sizeof(*f->rec));
    if (!f->st || !f->rec) {
        return -1;
    }
    loc = pp_store_location_register(f->st, "/app", 10000);
    memset(&info, 0, sizeof(info));
    info.id = "req-1";
    info.method = "GET";
    info.uri = "/app/x";
    info.vhost = "www.example.org";
    info.pid = (int32_t)getpid();
    info.tid = 4242;
    info.location = loc;
    info.interval_us = 10000;
    info.max_depth = 128;
    info.start_us = START_US;
    f->idx = pp_store_claim(f->st, &info, 0);
    if (f->idx < 0) {
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
    free(f->rec);
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
    assert_true(pp_store_read_slot(f->st, (uint32_t)f->idx, f->rec));
    return &f->rec->req;
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
    assert_float_equal(s.on, 250, 1e-9);
    assert_float_equal(s.core, 550, 1e-9);
    /* 200 ms blocked: a quarter on a futex, the rest asleep */
    assert_float_equal(s.gil, 50, 1e-9);
    assert_float_equal(s.off, 150, 1e-9);
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
    assert_float_equal(s.on, 250, 1e-9);
    assert_float_equal(s.core, 450, 1e-9);
    assert_float_equal(s.gil, 150, 1e-9);
    assert_float_equal(s.off, 150, 1e-9);
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
    assert_float_equal(s.on, 500, 1e-9);
    assert_float_equal(s.core, 0, 1e-9);
    assert_float_equal(s.gil, 0, 1e-9);
    assert_float_equal(s.off, 500, 1e-9);
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
    };

    return cmocka_run_group_tests_name("classification", tests, NULL, NULL);
}
