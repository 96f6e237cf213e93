/* test_alloc.c: PyProfAllocations without Python (pp_alloc.c): the
 * directive's parser, the sampling estimator on synthetic allocation
 * streams with a seeded generator, the live set and its filter, and a
 * request's estimates flushed into its record.
 */
#include "unit.h"

#include <math.h>

#include "pp_alloc.h"
#include "pp_store.h"

/* ---- the directive ---- */

static void test_parse_sizes_and_off(void **state)
{
    uint64_t m = 7;
    (void)state;

    assert_null(pp_alloc_parse("Off", &m));
    assert_int_equal(m, 0);
    assert_null(pp_alloc_parse("off", &m));
    assert_int_equal(m, 0);
    assert_null(pp_alloc_parse("64K", &m));
    assert_int_equal(m, 65536);
    assert_null(pp_alloc_parse("1M", &m));
    assert_int_equal(m, 1048576);
    assert_null(pp_alloc_parse("1", &m));
    assert_int_equal(m, 1);
    assert_null(pp_alloc_parse("1G", &m));
    assert_int_equal(m, 1ULL << 30);
    assert_null(pp_alloc_parse("262144", &m));
    assert_int_equal(m, 262144);
}

static void test_parse_refuses_with_message(void **state)
{
    static const char *bad[] = {"0", "2G", "", "on", "64Q", "-1", "1.5M", NULL};
    int i;
    (void)state;

    for (i = 0; bad[i]; i++) {
        uint64_t m = 7;
        const char *err = pp_alloc_parse(bad[i], &m);
        if (!err) {
            fail_msg("pp_alloc_parse(\"%s\") accepted as %llu", bad[i],
                     (unsigned long long)m);
        }
        assert_non_null(strstr(err, "Off"));
        assert_non_null(strstr(err, "256K"));
    }
    assert_non_null(pp_alloc_parse(NULL, &(uint64_t){0}));
}

/* ---- maths ---- */

static void test_gap_has_the_mean(void **state)
{
    pp_alloc_rng_t r;
    double sum = 0;
    int i, n = 200000;
    (void)state;

    pp_alloc_rng_seed(&r, 12345);
    for (i = 0; i < n; i++) {
        int64_t g = pp_alloc_gap(&r, 65536);
        assert_true(g >= 1);
        sum += (double)g;
    }
    /* standard error of the mean of exponentials: mean / sqrt(n), 0.22% */
    assert_true(fabs(sum / n - 65536.0) < 0.01 * 65536.0);
}

static void test_unit_is_in_half_open_interval(void **state)
{
    pp_alloc_rng_t r;
    int i;
    (void)state;

    pp_alloc_rng_seed(&r, 0); /* 0: a fixed nonzero state */
    for (i = 0; i < 100000; i++) {
        double u = pp_alloc_rng_unit(&r);
        assert_true(u > 0.0 && u <= 1.0);
    }
}

static void test_weight(void **state)
{
    double b, c;
    (void)state;

    pp_alloc_weight(100000, 65536, &b, &c);
    assert_true(b == 100000.0 && c == 1.0);
    pp_alloc_weight(65536, 65536, &b, &c);
    assert_true(b == 65536.0 && c == 1.0);
    pp_alloc_weight(1000, 65536, &b, &c);
    assert_true(fabs(b - 1000.0 / (1.0 - exp(-1000.0 / 65536.0))) < 1e-6);
    assert_true(fabs(c - 1.0 / (1.0 - exp(-1000.0 / 65536.0))) < 1e-9);
    /* mean 1: every allocation, each standing for itself (nearly) */
    pp_alloc_weight(1, 1, &b, &c);
    assert_true(b == 1.0 && c == 1.0);
}

/* The hooks' sampling, on a stream: count down, sample at zero or below,
 * redraw; allocations of at least the mean always, the countdown left
 * alone. */
typedef struct stream {
    pp_alloc_rng_t r;
    int64_t left;
    uint64_t mean;
    double est_bytes, est_count;
    uint64_t samples;
} stream_t;

static void stream_init(stream_t *s, uint64_t mean, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    pp_alloc_rng_seed(&s->r, seed);
    s->mean = mean;
    s->left = pp_alloc_gap(&s->r, mean);
}

static void stream_alloc(stream_t *s, uint64_t n)
{
    double b, c;

    if (n < s->mean && (s->left -= (int64_t)n) > 0) {
        return;
    }
    if (n < s->mean) {
        s->left = pp_alloc_gap(&s->r, s->mean);
    }
    pp_alloc_weight(n, s->mean, &b, &c);
    s->est_bytes += b;
    s->est_count += c;
    s->samples++;
}

static void test_estimate_of_a_mixed_stream(void **state)
{
    stream_t s;
    pp_alloc_rng_t sizes;
    double truth = 0, count = 0;
    int i;
    (void)state;

    stream_init(&s, 65536, 42);
    pp_alloc_rng_seed(&sizes, 7);
    /* 10^6 allocations: small objects, some buffers, a few big blocks */
    for (i = 0; i < 1000000; i++) {
        double u = pp_alloc_rng_unit(&sizes);
        uint64_t n = u < 0.9    ? 16 + (uint64_t)(u * 500)
                     : u < 0.99 ? 1000 + (uint64_t)(u * 8000)
                                : 100000 + (uint64_t)(u * 1000);
        truth += (double)n;
        count += 1;
        stream_alloc(&s, n);
    }
    /* relative standard error about sqrt(mean / bytes): ~0.6% here;
     * 3 sigma */
    assert_true(fabs(s.est_bytes - truth) < 3 * sqrt(65536.0 / truth) * truth);
    assert_true(fabs(s.est_count - count) < 0.05 * count);
    assert_true(s.samples > 1000);
}

static void test_large_allocations_are_exact(void **state)
{
    stream_t s;
    int i;
    (void)state;

    stream_init(&s, 65536, 3);
    for (i = 0; i < 1000; i++) {
        stream_alloc(&s, 65536 + (uint64_t)i);
    }
    assert_true(s.samples == 1000);
    assert_true(s.est_bytes == 1000.0 * 65536 + 999.0 * 1000 / 2);
    assert_true(s.est_count == 1000.0);
}

static void test_exact_mode_counts_everything(void **state)
{
    stream_t s;
    int i;
    (void)state;

    stream_init(&s, 1, 9);
    for (i = 1; i <= 5000; i++) {
        stream_alloc(&s, (uint64_t)i);
    }
    assert_true(s.samples == 5000);
    assert_true(s.est_bytes == 5000.0 * 5001 / 2);
}

/* ---- the live set ---- */

static void test_live_set_add_take_and_filter(void **state)
{
    static pp_alloc_live_t l;
    pp_alloc_live_entry_t e, out;
    uintptr_t p;
    uint32_t i, n = PP_ALLOC_LIVE_CAP / 4 * 3; /* as many as fit */
    (void)state;

    assert_int_equal(pp_alloc_live_init(&l, PP_ALLOC_LIVE_CAP), 0);
    memset(&e, 0, sizeof(e));
    for (i = 0; i < n; i++) {
        e.ptr = 0x10000 + (uintptr_t)i * 48;
        e.bytes = i + 1;
        assert_int_equal(pp_alloc_live_add(&l, &e), 0);
        assert_true(pp_alloc_live_maybe(&l, e.ptr));
    }
    assert_int_equal(l.used, n);
    /* full at 3/4 of the capacity */
    e.ptr = 0x10000 + (uintptr_t)(n + 100) * 48;
    assert_int_equal(pp_alloc_live_add(&l, &e), -1);
    /* an address never added */
    assert_int_equal(pp_alloc_live_take(&l, 0x10000 + 7 * 48 + 16, &out), 0);
    /* take every other one (backward shifts all over the table) */
    for (i = 0; i < n; i += 2) {
        p = 0x10000 + (uintptr_t)i * 48;
        assert_int_equal(pp_alloc_live_take(&l, p, &out), 1);
        assert_true(out.ptr == p && out.bytes == i + 1);
        assert_int_equal(pp_alloc_live_take(&l, p, &out), 0);
    }
    for (i = 1; i < n; i += 2) {
        p = 0x10000 + (uintptr_t)i * 48;
        assert_int_equal(pp_alloc_live_take(&l, p, &out), 1);
        assert_true(out.bytes == i + 1);
    }
    assert_int_equal(l.used, 0);
    /* every count went back to zero: frees are all fast path again */
    for (i = 0; i < sizeof(l.filter); i++) {
        assert_int_equal(l.filter[i], 0);
    }
    pp_alloc_live_free(&l);
}

static void test_top_stacks(void **state)
{
    pp_alloc_stack_t in[20], out[PP_ALLOC_STACKS];
    uint32_t i, n;
    (void)state;

    for (i = 0; i < 20; i++) {
        in[i].node = i + 1;
        in[i].bytes = (i + 1) * 100;
        in[i].count = 1;
    }
    n = pp_alloc_top_stacks(in, 20, out, PP_ALLOC_STACKS, 999);
    assert_int_equal(n, PP_ALLOC_STACKS);
    assert_int_equal(out[0].node, 20);
    assert_int_equal(out[14].node, 6);
    /* the 5 smallest folded into [other stacks] */
    assert_int_equal(out[15].node, 999);
    assert_true(out[15].bytes == 100 + 200 + 300 + 400 + 500);
    assert_int_equal(out[15].count, 5);
    n = pp_alloc_top_stacks(in, 3, out, PP_ALLOC_STACKS, 999);
    assert_int_equal(n, 3);
    assert_int_equal(out[0].node, 3);
}

/* ---- a request's estimates into its record ---- */

static void test_flush_into_the_record(void **state)
{
    const char *err = NULL;
    pp_store_t *st = pp_store_create(4u << 20, 8, 16, &err);
    pp_req_info_t info;
    pp_record_t *rec = calloc(1, sizeof(*rec));
    pp_location_t *loc;
    uint32_t f1, f2, n1, n2;
    uint64_t serial;
    int idx, loc_idx, slot;
    (void)state;

    assert_non_null(st);
    assert_non_null(rec);
    loc_idx = pp_store_location_register(st, "/app", 10000);
    memset(&info, 0, sizeof(info));
    info.id = "alloc";
    info.method = "GET";
    info.uri = "/app/x";
    info.vhost = "v";
    info.pid = 1;
    info.tid = 1;
    info.location = loc_idx;
    info.interval_us = 10000;
    info.max_depth = 128;
    idx = pp_store_claim(st, &info, 0);
    assert_true(idx >= 0);
    serial = pp_store_slot(st, idx)->rec.req.serial;
    f1 = pp_store_intern_frame(st, "keep", 4, "a.py", 4, 10);
    f2 = pp_store_intern_frame(st, "churn", 5, "a.py", 4, 20);
    n1 = pp_store_intern_stack(st, &f1, 1, 0);
    n2 = pp_store_intern_stack(st, &f2, 1, 0);

    /* mean 1000: allocations of >= 1000 bytes count exactly */
    assert_int_equal(pp_alloc_setup(st, 1000), 0);
    assert_int_equal(pp_alloc_mean(), 1000);
    /* outside any request */
    pp_alloc_sampled(0x5000, 3000, 0);
    pp_alloc_begin(idx, serial);
    assert_true(pp_alloc_current(&slot, &serial) && slot == idx);
    pp_alloc_sampled(0x1000, 2000, n1);
    pp_alloc_sampled(0x2000, 5000, n2);
    pp_alloc_sampled(0x3000, 1500, n1);
    pp_alloc_freed(0x1000);
    pp_alloc_freed(0x9990); /* never sampled */
    pp_alloc_end(st, idx, serial);
    assert_false(pp_alloc_current(&slot, &serial));
    /* freed after the end: no longer the request's business */
    pp_alloc_freed(0x3000);

    assert_true(pp_store_read_record(&pp_store_slot(st, idx)->rec, rec));
    assert_true(rec->req.flags & PP_REQ_ALLOC);
    assert_true(rec->req.alloc_bytes == 8500);
    assert_true(rec->req.alloc_count == 3);
    assert_true(rec->req.alloc_live_bytes == 6500);
    assert_int_equal(rec->req.alloc_samples, 3);
    assert_int_equal(rec->req.alloc_mean, 1000);
    assert_int_equal(rec->req.alloc_nstacks, 2);
    assert_int_equal(rec->alloc_stacks[0].node, n2);
    assert_true(rec->alloc_stacks[0].bytes == 5000);
    assert_int_equal(rec->alloc_stacks[1].node, n1);
    assert_true(rec->alloc_stacks[1].bytes == 3500);
    assert_int_equal(rec->alloc_stacks[1].count, 2);
    loc = pp_store_location(st, loc_idx);
    assert_true(atomic_load(&loc->alloc_bytes) == 8500);
    assert_true(atomic_load(&loc->alloc_retained) == 6500);
    assert_true(atomic_load(&st->c.alloc_outside_bytes) == 3000);

    /* a second end, or one for another serial, writes nothing */
    pp_alloc_end(st, idx, serial + 1);
    {
        pp_alloc_view_t *v = calloc(1, sizeof(*v));
        assert_non_null(v);
        pp_alloc_view_load(v, st, rec);
        assert_int_equal(v->n, 2);
        assert_string_equal(v->e[0].f[0].function, "churn");
        assert_int_equal(v->e[0].depth, 1);
        free(v);
    }
    pp_alloc_stop();
    assert_int_equal(pp_alloc_mean(), 0);
    pp_store_destroy(st);
    free(rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_sizes_and_off),
        cmocka_unit_test(test_parse_refuses_with_message),
        cmocka_unit_test(test_gap_has_the_mean),
        cmocka_unit_test(test_unit_is_in_half_open_interval),
        cmocka_unit_test(test_weight),
        cmocka_unit_test(test_estimate_of_a_mixed_stream),
        cmocka_unit_test(test_large_allocations_are_exact),
        cmocka_unit_test(test_exact_mode_counts_everything),
        cmocka_unit_test(test_live_set_add_take_and_filter),
        cmocka_unit_test(test_top_stacks),
        cmocka_unit_test(test_flush_into_the_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
