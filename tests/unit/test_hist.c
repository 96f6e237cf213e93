/* test_hist.c: the response-time histogram (pp_hist.c): bucket edges,
 * bucketing, quantile estimates.
 */
#include "unit.h"

#include "pp_hist.h"

#define LAST (PP_HIST_BUCKETS - 1)

static void test_edges_strictly_increase(void **state)
{
    int b;
    (void)state;
    for (b = 0; b < PP_HIST_BUCKETS; b++) {
        assert_true(pp_hist_lo_us(b) < pp_hist_hi_us(b));
        if (b > 0) {
            assert_true(pp_hist_lo_us(b) > pp_hist_lo_us(b - 1));
        }
    }
}

static void test_edges_are_contiguous(void **state)
{
    int b;
    (void)state;
    for (b = 0; b + 1 < PP_HIST_BUCKETS; b++) {
        assert_true(pp_hist_hi_us(b) == pp_hist_lo_us(b + 1));
    }
}

static void test_edges_span_1ms_to_60s(void **state)
{
    (void)state;
    assert_true(pp_hist_lo_us(0) == 0);
    assert_true(pp_hist_lo_us(1) == PP_HIST_MIN_US);
    assert_true(pp_hist_hi_us(LAST - 1) == PP_HIST_MAX_US);
    assert_true(pp_hist_lo_us(LAST) == PP_HIST_MAX_US);
    assert_true(pp_hist_hi_us(LAST) == INT64_MAX);
}

static void test_edges_are_log_spaced(void **state)
{
    int b;
    double r0 = (double)pp_hist_lo_us(2) / (double)pp_hist_lo_us(1);
    (void)state;
    for (b = 2; b < LAST; b++) {
        double r = (double)pp_hist_hi_us(b) / (double)pp_hist_lo_us(b);
        assert_true(r > r0 * 0.99 && r < r0 * 1.01);
    }
}

static void test_bucket_of_lower_edge_is_that_bucket(void **state)
{
    int b;
    (void)state;
    for (b = 0; b < PP_HIST_BUCKETS; b++) {
        assert_int_equal(pp_hist_bucket(pp_hist_lo_us(b)), b);
    }
}

static void test_bucket_just_below_upper_edge_is_that_bucket(void **state)
{
    int b;
    (void)state;
    for (b = 0; b < LAST; b++) {
        assert_int_equal(pp_hist_bucket(pp_hist_hi_us(b) - 1), b);
    }
}

static void test_bucket_zero_below_1ms(void **state)
{
    (void)state;
    assert_int_equal(pp_hist_bucket(0), 0);
    assert_int_equal(pp_hist_bucket(1), 0);
    assert_int_equal(pp_hist_bucket(999), 0);
    assert_int_equal(pp_hist_bucket(-5), 0);
    assert_int_equal(pp_hist_bucket(1000), 1);
}

static void test_bucket_last_from_60s(void **state)
{
    (void)state;
    assert_int_equal(pp_hist_bucket(PP_HIST_MAX_US - 1), LAST - 1);
    assert_int_equal(pp_hist_bucket(PP_HIST_MAX_US), LAST);
    assert_int_equal(pp_hist_bucket(3600LL * 1000000), LAST);
    assert_int_equal(pp_hist_bucket(INT64_MAX), LAST);
}

static void test_every_value_lies_inside_its_bucket(void **state)
{
    uint64_t counts[PP_HIST_BUCKETS] = {0}, sum = 0;
    int64_t us;
    unsigned n = 0;
    int b;
    (void)state;

    /* ~1% steps from 1 us to two minutes */
    for (us = 1; us < 120LL * 1000000; us += us / 97 + 1) {
        b = pp_hist_bucket(us);
        assert_true(b >= 0 && b < PP_HIST_BUCKETS);
        assert_true(pp_hist_lo_us(b) <= us && us < pp_hist_hi_us(b));
        counts[b]++;
        n++;
    }
    for (b = 0; b < PP_HIST_BUCKETS; b++) {
        sum += counts[b];
        assert_true(counts[b] > 0); /* every bucket got some */
    }
    assert_int_equal(sum, n);
}

static void test_quantile_of_empty_is_zero(void **state)
{
    uint64_t counts[PP_HIST_BUCKETS] = {0};
    (void)state;
    assert_true(pp_hist_quantile_us(counts, 0.5, 0) == 0);
    assert_true(pp_hist_quantile_us(counts, 0.99, 12345) == 0);
}

static void test_quantile_of_single_value_lies_in_its_bucket(void **state)
{
    uint64_t counts[PP_HIST_BUCKETS] = {0};
    int b = pp_hist_bucket(10000);
    int64_t p50, p99;
    (void)state;

    counts[b] = 100; /* 100 requests at 10 ms */
    p50 = pp_hist_quantile_us(counts, 0.5, 0);
    p99 = pp_hist_quantile_us(counts, 0.99, 0);
    assert_true(p50 >= pp_hist_lo_us(b) && p50 <= pp_hist_hi_us(b));
    assert_true(p99 >= p50 && p99 <= pp_hist_hi_us(b));
}

static void test_quantile_is_clamped_to_max(void **state)
{
    uint64_t counts[PP_HIST_BUCKETS] = {0};
    int b = pp_hist_bucket(10000);
    (void)state;

    counts[b] = 100;
    assert_true(pp_hist_quantile_us(counts, 0.5, 10000) <= 10000);
    assert_true(pp_hist_quantile_us(counts, 0.99, 10000) <= 10000);
    assert_true(pp_hist_quantile_us(counts, 1.0, 10000) == 10000);
    assert_true(pp_hist_quantile_us(counts, 0.5, 10000) >= pp_hist_lo_us(b));
}

static void test_quantile_of_bimodal_distribution(void **state)
{
    uint64_t counts[PP_HIST_BUCKETS] = {0};
    int fast = pp_hist_bucket(2000), slow = pp_hist_bucket(800000);
    int64_t p50, p95;
    (void)state;

    counts[fast] = 90; /* 90 at 2 ms, 10 at 800 ms */
    counts[slow] = 10;
    p50 = pp_hist_quantile_us(counts, 0.50, 800000);
    p95 = pp_hist_quantile_us(counts, 0.95, 800000);
    assert_true(p50 >= pp_hist_lo_us(fast) && p50 < pp_hist_hi_us(fast));
    assert_true(p95 >= pp_hist_lo_us(slow) && p95 <= 800000);
}

static void test_quantile_is_monotonic_in_q(void **state)
{
    uint64_t counts[PP_HIST_BUCKETS] = {0};
    int64_t prev = 0;
    int b;
    double q;
    (void)state;

    for (b = 0; b < PP_HIST_BUCKETS - 1; b++) {
        counts[b] = (uint64_t)(b % 7 + 1);
    }
    for (q = 0.01; q <= 1.0; q += 0.01) {
        int64_t v = pp_hist_quantile_us(counts, q, 0);
        assert_true(v >= prev);
        prev = v;
    }
}

static void test_quantile_in_bucket_zero_is_below_1ms(void **state)
{
    uint64_t counts[PP_HIST_BUCKETS] = {0};
    int64_t v;
    (void)state;

    counts[0] = 10;
    v = pp_hist_quantile_us(counts, 0.5, 0);
    assert_true(v >= 0 && v <= PP_HIST_MIN_US);
}

static void test_quantile_in_last_bucket_reports_max(void **state)
{
    uint64_t counts[PP_HIST_BUCKETS] = {0};
    (void)state;

    counts[LAST] = 3;
    assert_true(pp_hist_quantile_us(counts, 0.5, 90LL * 1000000) ==
                90LL * 1000000);
    assert_true(pp_hist_quantile_us(counts, 0.5, 0) >= PP_HIST_MAX_US);
}

static void test_counts_sum_to_number_of_values(void **state)
{
    uint64_t counts[PP_HIST_BUCKETS] = {0}, sum = 0;
    uint32_t x = 12345;
    int i, b;
    (void)state;

    for (i = 0; i < 10000; i++) {
        x = x * 1103515245u + 12345u; /* spread over 0 .. ~2^31 us */
        counts[pp_hist_bucket((int64_t)(x >> 1))]++;
    }
    for (b = 0; b < PP_HIST_BUCKETS; b++) {
        sum += counts[b];
    }
    assert_int_equal(sum, 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges_strictly_increase),
        cmocka_unit_test(test_edges_are_contiguous),
        cmocka_unit_test(test_edges_span_1ms_to_60s),
        cmocka_unit_test(test_edges_are_log_spaced),
        cmocka_unit_test(test_bucket_of_lower_edge_is_that_bucket),
        cmocka_unit_test(test_bucket_just_below_upper_edge_is_that_bucket),
        cmocka_unit_test(test_bucket_zero_below_1ms),
        cmocka_unit_test(test_bucket_last_from_60s),
        cmocka_unit_test(test_every_value_lies_inside_its_bucket),
        cmocka_unit_test(test_quantile_of_empty_is_zero),
        cmocka_unit_test(test_quantile_of_single_value_lies_in_its_bucket),
        cmocka_unit_test(test_quantile_is_clamped_to_max),
        cmocka_unit_test(test_quantile_of_bimodal_distribution),
        cmocka_unit_test(test_quantile_is_monotonic_in_q),
        cmocka_unit_test(test_quantile_in_bucket_zero_is_below_1ms),
        cmocka_unit_test(test_quantile_in_last_bucket_reports_max),
        cmocka_unit_test(test_counts_sum_to_number_of_values),
    };
    return cmocka_run_group_tests_name("pp_hist", tests, NULL, NULL);
}
