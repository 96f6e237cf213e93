/* test_linetable.c: the stack reader's location-table decoder
 * (pp_linetable.c) against the CPython the module is built for (3.11,
 * 3.13, 3.14 and 3.15 share the table format), and against tables no
 * compiler writes (torn or hostile bytes: the reader copies them from
 * another thread's memory without the GIL).
 *
 * The reference is co_lines() of every code object of several stdlib
 * modules and of a source with large and backward line jumps
 * (tests/unit/linetables.py, run with the Python the module is built for,
 * the Makefile's PYTHON): the decoder must give the same line for every
 * code unit.
 */
#include "unit.h"

#include <limits.h>

#include "pp_linetable.h"

#ifndef UNIT_MODULE_PYTHON
#define UNIT_MODULE_PYTHON UNIT_PYTHON
#endif

#define SCRIPT "tests/unit/linetables.py"

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

static void test_agrees_with_cpython_co_lines(void **state)
{
    FILE *f = popen(UNIT_MODULE_PYTHON " " SCRIPT, "r");
    char *line = NULL;
    size_t cap = 0, codes = 0, units = 0, located = 0;
    ssize_t len;
    (void)state;

    assert_non_null(f);
    while ((len = getline(&line, &cap, f)) > 0) {
        char *save = NULL, *tok, *hex;
        uint8_t *table;
        size_t n = 0, k;
        int first;
        int64_t unit = 0;

        tok = strtok_r(line, " \n", &save);
        assert_non_null(tok);
        first = atoi(tok);
        hex = strtok_r(NULL, " \n", &save);
        assert_non_null(hex);
        table = malloc(strlen(hex) / 2 + 1);
        assert_non_null(table);
        if (strcmp(hex, "-") != 0) {
            for (k = 0; hex[k] && hex[k + 1]; k += 2) {
                assert_true(hexval(hex[k]) >= 0 && hexval(hex[k + 1]) >= 0);
                table[n++] =
                    (uint8_t)(hexval(hex[k]) << 4 | hexval(hex[k + 1]));
            }
        }
        while ((tok = strtok_r(NULL, " \n", &save))) {
            int want = atoi(tok),
                got = pp_linetable_line(table, n, first, unit);
            if (got != want) {
                fail_msg("code object %zu (firstlineno %d, %zu table bytes): "
                         "unit %lld: line %d, CPython says %d",
                         codes, first, n, (long long)unit, got, want);
            }
            located += want >= 0;
            unit++;
            units++;
        }
        /* past the last unit: no location, as PyCode_Addr2Line */
        assert_int_equal(pp_linetable_line(table, n, first, unit), -1);
        assert_int_equal(pp_linetable_line(table, n, first, -1), first);
        free(table);
        codes++;
    }
    free(line);
    assert_int_equal(pclose(f), 0);
    /* the script really ran over the modules */
    assert_true(codes > 500);
    assert_true(units > 50000);
    assert_true(located > units / 2);
    print_message("%zu code objects, %zu code units, %zu with a line\n", codes,
                  units, located);
}

static void test_short_and_one_line_forms(void **state)
{
    /* short form (code 0, 2 units), one-line +1 (code 11, 1 unit), no
     * location (code 15, 1 unit), one-line +2 (code 12, 3 units) */
    static const uint8_t t[] = {0x80 | 0 << 3 | 1,
                                0x00,
                                0x80 | 11 << 3 | 0,
                                0x05,
                                0x06,
                                0x80 | 15 << 3 | 0,
                                0x80 | 12 << 3 | 2,
                                0x01,
                                0x02};
    (void)state;

    assert_int_equal(pp_linetable_line(t, sizeof(t), 10, 0), 10);
    assert_int_equal(pp_linetable_line(t, sizeof(t), 10, 1), 10);
    assert_int_equal(pp_linetable_line(t, sizeof(t), 10, 2), 11);
    assert_int_equal(pp_linetable_line(t, sizeof(t), 10, 3), -1);
    assert_int_equal(pp_linetable_line(t, sizeof(t), 10, 4), 13);
    assert_int_equal(pp_linetable_line(t, sizeof(t), 10, 6), 13);
    assert_int_equal(pp_linetable_line(t, sizeof(t), 10, 7), -1);
    assert_int_equal(pp_linetable_line(NULL, 0, 10, 0), -1);
    assert_int_equal(pp_linetable_line(NULL, 0, 10, -5), 10);
}

static void test_signed_varint_deltas(void **state)
{
    /* no-column form (13): delta -3 (zigzag 7), then +1000 (2000 =
     * 0b11111_010000: 0x50 then 0x1f), then the long form (14) with
     * delta +1 and its other varints */
    static const uint8_t t[] = {0x80 | 13 << 3 | 0,
                                7,
                                0x80 | 13 << 3 | 0,
                                0x40 | 16,
                                31,
                                0x80 | 14 << 3 | 1,
                                2,
                                0,
                                1,
                                5};
    (void)state;

    assert_int_equal(pp_linetable_line(t, sizeof(t), 50, 0), 47);
    assert_int_equal(pp_linetable_line(t, sizeof(t), 50, 1), 1047);
    assert_int_equal(pp_linetable_line(t, sizeof(t), 50, 2), 1048);
    assert_int_equal(pp_linetable_line(t, sizeof(t), 50, 3), 1048);
    assert_int_equal(pp_linetable_line(t, sizeof(t), 50, 4), -1);
}

static void test_malformed_tables_give_up(void **state)
{
    /* not an entry start */
    static const uint8_t junk[] = {0x05, 0x80};
    /* a varint cut by the end of the copy */
    static const uint8_t cut[] = {0x80 | 13 << 3 | 3, 0x40 | 1};
    /* a varint longer than five bytes */
    static const uint8_t longv[] = {0x80 | 13 << 3, 0x7f, 0x7f, 0x7f,
                                    0x7f,           0x7f, 0x01};
    (void)state;

    assert_int_equal(pp_linetable_line(junk, sizeof(junk), 7, 0), -1);
    assert_int_equal(pp_linetable_line(cut, sizeof(cut), 7, 0), -1);
    assert_int_equal(pp_linetable_line(longv, sizeof(longv), 7, 0), -1);
    /* the length is the caller's: not one byte more is read (ASan and
     * valgrind see the heap copy's end) */
    {
        uint8_t *h = malloc(1);
        assert_non_null(h);
        h[0] = 0x80 | 13 << 3;
        assert_int_equal(pp_linetable_line(h, 1, 7, 0), -1);
        free(h);
    }
}

static void test_huge_deltas_never_overflow(void **state)
{
    /* +2^29-1 per entry (zigzag 2^30-2, five 6-bit groups): the line
     * passes INT_MAX on the fifth entry; before, `line += delta` in int
     * overflowed (undefined behaviour) on garbage copied without the GIL */
    uint8_t t[6 * 8];
    size_t n = 0;
    int e;
    (void)state;

    for (e = 0; e < 8; e++) {
        uint32_t z = (1u << 30) - 2;
        t[n++] = 0x80 | 13 << 3;
        t[n++] = (uint8_t)(0x40 | (z & 63));
        t[n++] = (uint8_t)(0x40 | ((z >> 6) & 63));
        t[n++] = (uint8_t)(0x40 | ((z >> 12) & 63));
        t[n++] = (uint8_t)(0x40 | ((z >> 18) & 63));
        t[n++] = (uint8_t)((z >> 24) & 63);
    }
    assert_int_equal(pp_linetable_line(t, n, 1, 0), (1 << 29));
    assert_int_equal(pp_linetable_line(t, n, 1, 2), 3 * ((1 << 29) - 1) + 1);
    assert_int_equal(pp_linetable_line(t, n, 1, 3), INT_MAX - 2);
    assert_int_equal(pp_linetable_line(t, n, 1, 4), -1); /* > INT_MAX */
    assert_int_equal(pp_linetable_line(t, n, 1, 7), -1);
    /* and downwards: below 0 is no line either */
    t[1] = 0x40 | 1;
    assert_int_equal(pp_linetable_line(t, 6, 1, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agrees_with_cpython_co_lines),
        cmocka_unit_test(test_short_and_one_line_forms),
        cmocka_unit_test(test_signed_varint_deltas),
        cmocka_unit_test(test_malformed_tables_give_up),
        cmocka_unit_test(test_huge_deltas_never_overflow),
    };
    return cmocka_run_group_tests_name("pp_linetable", tests, NULL, NULL);
}
