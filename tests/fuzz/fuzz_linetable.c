/* fuzz_linetable.c: libFuzzer target for the GIL-free reader's location
 * table decoder (pp_linetable_line), which reads bytes copied from
 * another thread's memory without the GIL: torn, stale or garbage.
 *
 * Checked for every input: no read past the copy (the table is a heap
 * copy of exactly its length, so ASan sees one byte more), no undefined
 * behaviour (UBSan, fatal), and the answer for every code unit equals a
 * reference that first decodes the whole table into address ranges with
 * 128-bit arithmetic (written from Objects/locations.md, not from
 * pp_linetable.c) and then looks the unit up.  Input: 4 bytes of
 * firstlineno (little endian, any int), then the table.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "pp_linetable.h"

typedef __int128 i128;

typedef struct range {
    int64_t start, end; /* code units [start, end) */
    int line;           /* -1: no location */
} range_t;

/* Decode every entry; the ranges up to the first problem, then a final
 * range [at, INT64_MAX) of -1 (past the table, or after a malformed entry
 * or an impossible line: no line either way). */
static size_t ref_decode(const uint8_t *p, size_t n, int first, range_t *r,
                         size_t cap)
{
    size_t pos = 0, nr = 0;
    i128 line = first;
    int64_t at = 0;

    while (pos < n && nr + 1 < cap) {
        uint8_t b = p[pos];
        int code = (b >> 3) & 15, len = (b & 7) + 1;
        i128 delta = 0;

        if (!(b & 0x80)) {
            break;
        }
        pos++;
        if (code == 13 || code == 14) {
            uint64_t v = 0;
            int k, done = 0;
            for (k = 0; k < 5 && pos < n; k++) {
                uint8_t c = p[pos++];
                v |= (uint64_t)(c & 63) << (6 * k);
                if (!(c & 64)) {
                    done = 1;
                    break;
                }
            }
            if (!done) {
                break; /* cut by the end, or longer than five bytes */
            }
            delta = (v & 1) ? -(i128)(v >> 1) : (i128)(v >> 1);
        }
        else if (code >= 10 && code <= 12) {
            delta = code - 10;
        }
        line += delta;
        if (line < 0 || line > INT_MAX) {
            break;
        }
        r[nr].start = at;
        r[nr].end = at + len;
        r[nr].line = code == 15 ? -1 : (int)line;
        nr++;
        at += len;
        /* payload bytes never have bit 7 set in a table CPython writes;
         * in garbage, the next byte with it starts the next entry */
        while (pos < n && !(p[pos] & 0x80)) {
            pos++;
        }
    }
    r[nr].start = at;
    r[nr].end = INT64_MAX;
    r[nr].line = -1;
    return nr + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static range_t ranges[70000];
    uint32_t f;
    int first;
    size_t n, nr, i;
    uint8_t *table;
    int64_t unit = 0;

    if (size < 4 || size - 4 > 65536) {
        return 0;
    }
    memcpy(&f, data, 4);
    first = (int)f;
    n = size - 4;
    table = malloc(n ? n : 1);
    if (!table) {
        return 0;
    }
    memcpy(table, data + 4, n);
    nr = ref_decode(table, n, first, ranges, sizeof(ranges) / sizeof(*ranges));
    if (pp_linetable_line(table, n, first, -1) != first ||
        pp_linetable_line(table, n, first, INT64_MIN) != first) {
        fz_fail("pp_linetable_line", "a negative unit is not firstlineno", NULL,
                0, 0);
    }
    for (i = 0; i < nr; i++) {
        /* every unit of short ranges, the ends of long ones */
        for (unit = ranges[i].start;
             unit < ranges[i].end && unit < ranges[i].start + 8; unit++) {
            int got = pp_linetable_line(table, n, first, unit);
            if (got != ranges[i].line) {
                char why[160];
                snprintf(why, sizeof(why),
                         "unit %lld: line %d, reference %d (firstlineno %d, "
                         "%zu bytes)",
                         (long long)unit, got, ranges[i].line, first, n);
                fz_fail("pp_linetable_line", why, NULL, 0, 0);
            }
        }
    }
    if (pp_linetable_line(table, n, first, INT64_MAX) != -1) {
        fz_fail("pp_linetable_line", "a unit past any table has a line", NULL,
                0, 0);
    }
    free(table);
    return 0;
}
