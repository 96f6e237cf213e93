/* test_parse.c: directive value parsers (pp_parse.c).
 *
 * Every refusal must come with a message and leave the output untouched, so
 * the glue can fail "apachectl configtest" naming the accepted form.
 */
#include "unit.h"

#include <limits.h>

#include "pp_parse.h"
#include "pp_store.h"

#define MS 1000LL
#define S 1000000LL
#define SENTINEL_I64 (-777)

/* Interval bounds as PyProfSample uses them: 1 ms .. 10 s. */
static int64_t dur_ok(const char *s, int64_t min, int64_t max)
{
    int64_t v = SENTINEL_I64;
    const char *err = pp_parse_duration(s, min, max, &v);

    if (err) {
        fail_msg("pp_parse_duration(\"%s\") refused: %s", s, err);
    }
    return v;
}

static void dur_bad(const char *s, int64_t min, int64_t max)
{
    int64_t v = SENTINEL_I64;
    const char *err = pp_parse_duration(s, min, max, &v);

    if (!err) {
        fail_msg("pp_parse_duration(\"%s\") accepted as %lld us", s,
                 (long long)v);
    }
    assert_true(strlen(err) > 10);
    assert_true(v == SENTINEL_I64);
}

/* ---- durations ---- */

static void test_duration_milliseconds(void **state)
{
    (void)state;
    assert_true(dur_ok("10ms", 1, 10 * S) == 10000);
}

static void test_duration_microseconds(void **state)
{
    (void)state;
    assert_true(dur_ok("500us", 1, 10 * S) == 500);
}

static void test_duration_seconds(void **state)
{
    (void)state;
    assert_true(dur_ok("1s", 1, 10 * S) == 1000000);
}

static void test_duration_fractional_seconds(void **state)
{
    (void)state;
    assert_true(dur_ok("2.5s", 1, 10 * S) == 2500000);
    assert_true(dur_ok("0.5ms", 1, 10 * S) == 500);
}

static void test_duration_accepts_the_minimum(void **state)
{
    (void)state;
    assert_true(dur_ok("1ms", 1 * MS, 10 * S) == 1000);
}

static void test_duration_accepts_the_maximum(void **state)
{
    (void)state;
    assert_true(dur_ok("10s", 1 * MS, 10 * S) == 10 * S);
}

static void test_duration_refuses_unknown_unit(void **state)
{
    (void)state;
    dur_bad("10parsecs", 1, 10 * S);
    dur_bad("10m", 1, 10 * S);
    dur_bad("10msx", 1, 10 * S);
}

static void test_duration_refuses_negative(void **state)
{
    (void)state;
    dur_bad("-5ms", 1, 10 * S);
    dur_bad("+5ms", 1, 10 * S);
}

static void test_duration_refuses_zero(void **state)
{
    (void)state;
    dur_bad("0", 0, 10 * S);
    dur_bad("0ms", 0, 10 * S);
    dur_bad("0.0001ms", 0, 10 * S); /* rounds to 0 us */
}

/* The whole part is refused before it can overflow int64_t once scaled to
 * millionths (it was one digit late: UB, caught by UBSan in fuzz_parse). */
static void test_duration_refuses_values_that_would_overflow(void **state)
{
    (void)state;
    dur_bad("9223372036859ms", 1, INT64_MAX);
    dur_bad("9223372036855s", 1, INT64_MAX);
    dur_bad("99999999999999999999999us", 1, INT64_MAX);
    dur_bad("9223372036854.775807s", 1, INT64_MAX);
    /* the largest whole part that still fits is accepted */
    assert_true(dur_ok("9223372036853us", 1, INT64_MAX) == 9223372036853LL);
}

static void test_duration_refuses_empty_and_null(void **state)
{
    int64_t v = SENTINEL_I64;
    (void)state;
    dur_bad("", 1, 10 * S);
    assert_non_null(pp_parse_duration(NULL, 1, 10 * S, &v));
    assert_true(v == SENTINEL_I64);
}

static void test_duration_refuses_unit_without_number(void **state)
{
    (void)state;
    dur_bad("ms", 1, 10 * S);
    dur_bad(".ms", 1, 10 * S);
}

static void test_duration_refuses_bare_number(void **state)
{
    (void)state;
    dur_bad("10", 1, 10 * S);
}

static void test_duration_refuses_space_before_unit(void **state)
{
    (void)state;
    dur_bad("10 ms", 1, 10 * S);
    dur_bad(" 10ms", 1, 10 * S);
    dur_bad("10ms ", 1, 10 * S);
}

static void test_duration_refuses_exponent(void **state)
{
    (void)state;
    dur_bad("1e3ms", 1, 10 * S);
}

static void test_duration_refuses_huge_number(void **state)
{
    (void)state;
    dur_bad("99999999999999999999s", 1, INT64_MAX);
    dur_bad("99999999999999999999us", 1, INT64_MAX);
    dur_bad("9223372036854775807s", 1, INT64_MAX);
}

static void test_duration_refuses_above_maximum(void **state)
{
    (void)state;
    dur_bad("11s", 1 * MS, 10 * S);
    dur_bad("10.000001s", 1 * MS, 10 * S);
}

static void test_duration_refuses_below_minimum(void **state)
{
    (void)state;
    dur_bad("500us", 1 * MS, 10 * S);
    dur_bad("999us", 1 * MS, 10 * S);
}

/* ---- sizes ---- */

static uint64_t size_ok(const char *s)
{
    uint64_t v = 777;
    const char *err = pp_parse_size(s, 1, UINT64_MAX, &v);
    if (err) {
        fail_msg("pp_parse_size(\"%s\") refused: %s", s, err);
    }
    return v;
}

static void size_bad(const char *s, uint64_t min, uint64_t max)
{
    uint64_t v = 777;
    const char *err = pp_parse_size(s, min, max, &v);
    if (!err) {
        fail_msg("pp_parse_size(\"%s\") accepted as %llu", s,
                 (unsigned long long)v);
    }
    assert_true(strlen(err) > 10);
    assert_true(v == 777);
}

static void test_size_megabytes(void **state)
{
    (void)state;
    assert_true(size_ok("16M") == 16ULL << 20);
}

static void test_size_gigabytes(void **state)
{
    (void)state;
    assert_true(size_ok("1G") == 1ULL << 30);
}

static void test_size_kilobytes(void **state)
{
    (void)state;
    assert_true(size_ok("512K") == 512ULL << 10);
}

static void test_size_plain_bytes(void **state)
{
    (void)state;
    assert_true(size_ok("1048576") == 1048576);
}

static void test_size_refuses_unknown_suffix(void **state)
{
    (void)state;
    size_bad("16X", 1, UINT64_MAX);
    size_bad("16MM", 1, UINT64_MAX);
    size_bad("16 M", 1, UINT64_MAX);
}

static void test_size_refuses_empty(void **state)
{
    uint64_t v = 777;
    (void)state;
    size_bad("", 1, UINT64_MAX);
    size_bad("M", 1, UINT64_MAX);
    assert_non_null(pp_parse_size(NULL, 1, UINT64_MAX, &v));
}

static void test_size_refuses_negative(void **state)
{
    (void)state;
    size_bad("-1M", 0, UINT64_MAX);
}

static void test_size_refuses_overflow(void **state)
{
    (void)state;
    size_bad("99999999999999999999", 1, UINT64_MAX);
    size_bad("17179869184G", 1, UINT64_MAX);       /* 2^64 bytes */
    size_bad("18014398509481984K", 1, UINT64_MAX); /* 2^64 bytes */
    size_bad("17179869185G", 1, UINT64_MAX);       /* 2^64 + 1G: wraps to 1G */
    size_bad("18446744073709551617", 1, UINT64_MAX); /* 2^64 + 1 */
}

static void test_size_refuses_out_of_range(void **state)
{
    (void)state;
    size_bad("65G", 1, 64ULL << 30);
    size_bad("1K", 4096, 64ULL << 30);
}

/* ---- integers ---- */

static void test_int_in_range(void **state)
{
    long v = -1;
    (void)state;
    assert_null(pp_parse_int("200", 1, 100000, &v));
    assert_int_equal(v, 200);
    assert_null(pp_parse_int("1", 1, 1, &v));
    assert_int_equal(v, 1);
}

static void test_int_refuses_non_number(void **state)
{
    long v = 42;
    (void)state;
    assert_non_null(pp_parse_int("", 0, 100, &v));
    assert_non_null(pp_parse_int("abc", 0, 100, &v));
    assert_non_null(pp_parse_int("12x", 0, 100, &v));
    assert_non_null(pp_parse_int(" 12", 0, 100, &v));
    assert_non_null(pp_parse_int("1.5", 0, 100, &v));
    assert_non_null(pp_parse_int(NULL, 0, 100, &v));
    assert_int_equal(v, 42);
}

static void test_int_refuses_out_of_range(void **state)
{
    long v = 42;
    (void)state;
    assert_non_null(pp_parse_int("0", 1, 100, &v));
    assert_non_null(pp_parse_int("101", 1, 100, &v));
    assert_non_null(pp_parse_int("-1", 0, 100, &v));
    assert_int_equal(v, 42);
}

static void test_int_refuses_overflow(void **state)
{
    long v = 42;
    (void)state;
    assert_non_null(pp_parse_int("99999999999999999999999", 0, LONG_MAX, &v));
    assert_int_equal(v, 42);
}

/* ---- prefixes ---- */

static void test_prefix_accepts_path(void **state)
{
    (void)state;
    assert_null(pp_parse_prefix("/app"));
    assert_null(pp_parse_prefix("/app/v1/"));
}

static void test_prefix_accepts_root(void **state)
{
    (void)state;
    assert_null(pp_parse_prefix("/"));
}

static void test_prefix_refuses_relative(void **state)
{
    (void)state;
    assert_non_null(pp_parse_prefix("app"));
}

static void test_prefix_refuses_empty(void **state)
{
    (void)state;
    assert_non_null(pp_parse_prefix(""));
    assert_non_null(pp_parse_prefix(NULL));
}

static void test_prefix_refuses_space(void **state)
{
    (void)state;
    assert_non_null(pp_parse_prefix("/a b"));
    assert_non_null(pp_parse_prefix("/a\tb"));
}

static void test_prefix_refuses_query_and_fragment(void **state)
{
    (void)state;
    assert_non_null(pp_parse_prefix("/a?x"));
    assert_non_null(pp_parse_prefix("/a#x"));
}

static void test_prefix_refuses_control_chars(void **state)
{
    (void)state;
    assert_non_null(pp_parse_prefix("/a\x01"));
    assert_non_null(pp_parse_prefix("/a\nb"));
    assert_non_null(pp_parse_prefix("/a\x7f"));
}

static void test_prefix_refuses_too_long(void **state)
{
    char p[PP_PREFIX_MAX + 1];
    (void)state;

    memset(p, 'a', sizeof(p));
    p[0] = '/';
    p[PP_PREFIX_MAX - 1] = '\0'; /* PP_PREFIX_MAX-1 bytes: the longest */
    assert_null(pp_parse_prefix(p));
    p[PP_PREFIX_MAX - 1] = 'a';
    p[PP_PREFIX_MAX] = '\0'; /* PP_PREFIX_MAX bytes: too long */
    assert_non_null(pp_parse_prefix(p));
}

/* ---- prefix matching ---- */

static void test_prefix_match_exact(void **state)
{
    (void)state;
    assert_int_equal(pp_prefix_match("/app", "/app"), 4);
}

static void test_prefix_match_trailing_slash(void **state)
{
    (void)state;
    assert_int_equal(pp_prefix_match("/app", "/app/"), 4);
}

static void test_prefix_match_below(void **state)
{
    (void)state;
    assert_int_equal(pp_prefix_match("/app", "/app/x"), 4);
    assert_int_equal(pp_prefix_match("/app", "/app/x/y"), 4);
}

static void test_prefix_match_refuses_partial_segment(void **state)
{
    (void)state;
    assert_int_equal(pp_prefix_match("/app", "/apple"), -1);
    assert_int_equal(pp_prefix_match("/app", "/ap"), -1);
    assert_int_equal(pp_prefix_match("/app", "/other"), -1);
}

static void test_prefix_match_root_matches_everything(void **state)
{
    (void)state;
    assert_int_equal(pp_prefix_match("/", "/"), 1);
    assert_int_equal(pp_prefix_match("/", "/anything/at/all"), 1);
    assert_int_equal(pp_prefix_match("/", "/apple"), 1);
}

static void test_prefix_match_prefix_with_slash(void **state)
{
    (void)state;
    assert_int_equal(pp_prefix_match("/app/", "/app/x"), 5);
    assert_int_equal(pp_prefix_match("/app/", "/app/"), 5);
    assert_int_equal(pp_prefix_match("/app/", "/apple"), -1);
}

static void test_prefix_match_longer_prefix_has_longer_length(void **state)
{
    int a, b;
    (void)state;
    /* longest prefix wins in the glue: the lengths must order the rows */
    a = pp_prefix_match("/app", "/app/api/v1");
    b = pp_prefix_match("/app/api", "/app/api/v1");
    assert_int_equal(a, 4);
    assert_int_equal(b, 8);
    assert_true(pp_prefix_match("/", "/app/api/v1") < a);
}

static void test_prefix_match_null(void **state)
{
    (void)state;
    assert_int_equal(pp_prefix_match(NULL, "/a"), -1);
    assert_int_equal(pp_prefix_match("/a", NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_milliseconds),
        cmocka_unit_test(test_duration_microseconds),
        cmocka_unit_test(test_duration_seconds),
        cmocka_unit_test(test_duration_fractional_seconds),
        cmocka_unit_test(test_duration_accepts_the_minimum),
        cmocka_unit_test(test_duration_accepts_the_maximum),
        cmocka_unit_test(test_duration_refuses_unknown_unit),
        cmocka_unit_test(test_duration_refuses_negative),
        cmocka_unit_test(test_duration_refuses_zero),
        cmocka_unit_test(test_duration_refuses_empty_and_null),
        cmocka_unit_test(test_duration_refuses_values_that_would_overflow),
        cmocka_unit_test(test_duration_refuses_unit_without_number),
        cmocka_unit_test(test_duration_refuses_bare_number),
        cmocka_unit_test(test_duration_refuses_space_before_unit),
        cmocka_unit_test(test_duration_refuses_exponent),
        cmocka_unit_test(test_duration_refuses_huge_number),
        cmocka_unit_test(test_duration_refuses_above_maximum),
        cmocka_unit_test(test_duration_refuses_below_minimum),
        cmocka_unit_test(test_size_megabytes),
        cmocka_unit_test(test_size_gigabytes),
        cmocka_unit_test(test_size_kilobytes),
        cmocka_unit_test(test_size_plain_bytes),
        cmocka_unit_test(test_size_refuses_unknown_suffix),
        cmocka_unit_test(test_size_refuses_empty),
        cmocka_unit_test(test_size_refuses_negative),
        cmocka_unit_test(test_size_refuses_overflow),
        cmocka_unit_test(test_size_refuses_out_of_range),
        cmocka_unit_test(test_int_in_range),
        cmocka_unit_test(test_int_refuses_non_number),
        cmocka_unit_test(test_int_refuses_out_of_range),
        cmocka_unit_test(test_int_refuses_overflow),
        cmocka_unit_test(test_prefix_accepts_path),
        cmocka_unit_test(test_prefix_accepts_root),
        cmocka_unit_test(test_prefix_refuses_relative),
        cmocka_unit_test(test_prefix_refuses_empty),
        cmocka_unit_test(test_prefix_refuses_space),
        cmocka_unit_test(test_prefix_refuses_query_and_fragment),
        cmocka_unit_test(test_prefix_refuses_control_chars),
        cmocka_unit_test(test_prefix_refuses_too_long),
        cmocka_unit_test(test_prefix_match_exact),
        cmocka_unit_test(test_prefix_match_trailing_slash),
        cmocka_unit_test(test_prefix_match_below),
        cmocka_unit_test(test_prefix_match_refuses_partial_segment),
        cmocka_unit_test(test_prefix_match_root_matches_everything),
        cmocka_unit_test(test_prefix_match_prefix_with_slash),
        cmocka_unit_test(test_prefix_match_longer_prefix_has_longer_length),
        cmocka_unit_test(test_prefix_match_null),
    };
    return cmocka_run_group_tests_name("pp_parse", tests, NULL, NULL);
}
